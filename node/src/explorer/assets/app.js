// The Veritrain explorer: a few pages over the node's JSON API (/api/...),
// routed by the URL fragment, kept live by server-sent events (/api/events).
// No framework and nothing fetched from elsewhere: this file is compiled into
// the node. `?live=0` turns live updates off (the headless browser test uses it).
"use strict";

const main = document.getElementById("main");
const params = new URLSearchParams(location.search);
const LIVE = params.get("live") !== "0";

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
async function api(path) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
const short = (a, n = 10) => a && a.length > 2 * n + 1 ? a.slice(0, n) + "…" + a.slice(-6) : (a || "");
const addr = a => a ? `<a class="mono" href="#/account/${esc(a)}">${esc(short(a, 12))}</a>` : '<span class="muted">—</span>';
const badge = s => `<span class="badge ${esc(s)}">${esc(s)}</span>`;
const uvtr = a => `${Number(a || 0).toLocaleString("en-US")} uvtr`;
const time = ms => ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "—";
const card = (k, v, cls = "") => `<div class="card"><div class="k">${esc(k)}</div><div class="v ${cls}">${v}</div></div>`;
function table(cols, rows, empty = "nothing yet") {
  if (!rows.length) return `<p class="muted">${esc(empty)}</p>`;
  return `<table><thead><tr>${cols.map(c => `<th class="${c[2] || ""}">${esc(c[0])}</th>`).join("")}</tr></thead>
    <tbody>${rows.map(r => `<tr>${cols.map(c => `<td class="${c[2] || ""}">${c[1](r)}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}

// ---- pages ---------------------------------------------------------------

async function network() {
  const s = await api("/api/status");
  document.title = `Veritrain · ${s.chain_id} · height ${s.height}`;
  const txs = s.recent_blocks.flatMap(b => b.txs.map(t => ({ ...t, height: b.height }))).slice(0, 20);
  return `<h1>Network <span class="muted">${esc(s.chain_id)}</span></h1>
  <div class="cards">
    ${card("Height", `<a href="#/block/${s.height}">${s.height}</a>`)}
    ${card("Block time", time(s.block_time_ms))}
    ${card("Block interval", s.block_interval_s == null ? "—" : s.block_interval_s.toFixed(2) + " s")}
    ${card("Mempool", s.mempool_size)}
    ${card("Mode", esc(s.mode))}
    ${card("App hash", `<span class="mono">${esc(short(s.app_hash, 12))}</span>`)}
  </div>
  <h2>Validators</h2>
  ${table([["Address", v => `<span class="mono">${esc(v.address)}</span>`], ["Power", v => v.power, "num"]], s.validators, "no validators reported")}
  <h2>Recent blocks</h2>
  ${table([
    ["Height", b => `<a href="#/block/${b.height}">${b.height}</a>`, "num"],
    ["Time", b => time(b.time_ms)],
    ["Txs", b => b.tx_count, "num"],
    ["Failed", b => b.failed_txs, "num"],
    ["App hash", b => `<span class="mono">${esc(short(b.app_hash, 10))}</span>`]], s.recent_blocks.slice(0, 15), "no blocks yet")}
  <h2>Recent transactions</h2>
  ${table([
    ["Hash", t => `<a class="mono" href="#/tx/${esc(t.hash)}">${esc(short(t.hash, 10))}</a>`],
    ["Height", t => `<a href="#/block/${t.height}">${t.height}</a>`, "num"],
    ["Type", t => esc(t.types.join(", "))],
    ["Result", t => t.code === 0 ? badge("ok") : `<span class="badge bad">${esc(t.codespace)} ${t.code}</span>`]], txs, "no transactions in the recent blocks")}`;
}

async function block(h) {
  const b = await api(`/api/blocks/${encodeURIComponent(h)}`);
  return `<h1>Block ${b.height}</h1>
  <div class="cards">${card("Time", time(b.time_ms))}${card("Transactions", b.tx_count)}${card("Failed", b.failed_txs)}
  ${card("App hash", `<span class="mono">${esc(b.app_hash)}</span>`)}${card("Block hash", `<span class="mono">${esc(b.block_hash)}</span>`)}</div>
  <h2>Transactions</h2>
  ${table([["Hash", t => `<a class="mono" href="#/tx/${esc(t.hash)}">${esc(short(t.hash, 10))}</a>`], ["Type", t => esc(t.types.join(", "))],
    ["Result", t => t.code === 0 ? badge("ok") : `<span class="badge bad">${esc(t.codespace)} ${t.code}</span> ${esc(t.log)}`]], b.txs, "no transactions")}
  <h2>Block events</h2>
  ${table([["Type", e => esc(e.type)], ["Attributes", e => `<span class="mono">${esc(JSON.stringify(e.attributes))}</span>`]], b.events, "none")}`;
}

async function tx(hash) {
  const t = await api(`/api/txs/${encodeURIComponent(hash)}`);
  return `<h1>Transaction <span class="mono">${esc(short(t.hash, 12))}</span></h1>
  <div class="cards">${card("Height", `<a href="#/block/${t.height}">${t.height}</a>`)}${card("Result", t.code === 0 ? badge("ok") : `${esc(t.codespace)} ${t.code}`)}</div>
  ${t.log ? `<p class="error">${esc(t.log)}</p>` : ""}
  <h2>Events</h2>
  ${table([["Type", e => esc(e.type)], ["Attributes", e => `<span class="mono">${esc(JSON.stringify(e.attributes))}</span>`]], t.events, "none")}`;
}

async function tasks(q) {
  const status = q.get("status") || "", who = q.get("address") || "";
  const r = await api(`/api/tasks?limit=200&status=${encodeURIComponent(status)}&address=${encodeURIComponent(who)}`);
  const opts = ["", "open", "claimed", "committed", "finalized", "failed", "cancelled", "expired"]
    .map(s => `<option value="${s}" ${s === status ? "selected" : ""}>${s || "any status"}</option>`).join("");
  return `<h1>Tasks</h1>
  <form class="filters" id="taskfilter"><select name="status">${opts}</select>
    <input name="address" placeholder="submitter, solver or verifier address" value="${esc(who)}" size="48">
    <button>Filter</button></form>
  ${table([
    ["Task", t => `<a href="#/task/${t.id}">Task ${t.id}</a>`],
    ["Status", t => badge(t.status) + (t.open_dispute ? ` <a class="badge bad" href="#/dispute/${t.open_dispute}">dispute ${t.open_dispute}</a>` : "")],
    ["Program", t => esc(t.program)], ["Steps", t => t.steps, "num"],
    ["Reward", t => uvtr(t.reward), "num"], ["Submitter", t => addr(t.submitter)], ["Solver", t => addr(t.solver)],
    ["Note", t => `<span class="muted">${esc(t.note)}</span>`]], r.tasks.slice().reverse(), "no tasks match")}`;
}

const STAGES = ["submitted", "claimed", "committed", "verified", "disputed", "finalized"];

async function task(id) {
  const r = await api(`/api/tasks/${encodeURIComponent(id)}`);
  const t = r.task;
  const level = t.verification_level, guarantee = t.guarantee;
  const reached = new Set(r.timeline.map(s => s.stage));
  const flow = STAGES.map(s => `<span class="badge ${reached.has(s) ? "ok" : ""}">${s}</span>`).join(" → ");
  return `<h1>Task ${t.id} ${badge(t.status)}</h1>
  <p class="muted">${esc(r.summary)}</p>
  <p>${flow}</p>
  <div class="cards">
    ${card("Program", esc(t.program) + ` (${t.steps} steps)`)}
    ${card("Reward", uvtr(t.reward))}${card("Verification fee", uvtr(t.verification_fee))}
    ${card("Submitter", addr(t.submitter))}${card("Solver", addr(t.solver))}
    ${card("Verification level", esc(level || "—"))}
  </div>
  <p><b>Guarantee:</b> ${esc(guarantee || "—")}</p>
  <div class="cards">
    ${card("Final state hash", `<span class="mono">${esc(short(t.final_state_hash, 12)) || "—"}</span>`)}
  </div>
  <h2>Timeline</h2>
  <ul class="timeline">${r.timeline.map(s => `<li class="${esc(s.stage)}"><b>${esc(s.stage)}</b>
    ${s.height ? `at height <a href="#/block/${s.height}">${s.height}</a>` : ""} ${s.who ? "by " + addr(s.who) : ""}
    ${s.dispute_id ? `<a href="#/dispute/${s.dispute_id}">dispute ${s.dispute_id}</a>` : ""}
    ${s.outcome ? `<span class="muted">${esc(s.outcome)}</span>` : ""} ${s.note ? `<span class="muted">${esc(s.note)}</span>` : ""}</li>`).join("")}</ul>
  <h2>Payouts</h2>
  ${table([["Recipient", p => addr(p.recipient)], ["Amount", p => uvtr(p.amount), "num"], ["Reason", p => esc(p.reason)]], t.payouts || [], "no payouts yet")}
  ${t.reward_note ? `<p><b>Why:</b> ${esc(t.reward_note)}</p>` : ""}
  <h2>Verifiers</h2>
  ${table([["Verifier", v => addr(v)], ["Attested at", v => { const a = (t.attestations || []).find(x => x.verifier === v); return a ? a.height : '<span class="muted">not yet</span>'; }]], t.verifiers || [], "none selected yet")}
  <h2>Disputes</h2>
  ${table([["Dispute", d => `<a href="#/dispute/${d.id}">Dispute ${d.id}</a>`], ["Phase", d => badge(d.phase)], ["Outcome", d => esc(d.outcome)]], r.disputes, "no disputes")}`;
}

async function disputes() {
  const r = await api("/api/disputes");
  return `<h1>Disputes</h1>
  ${table([["Dispute", d => `<a href="#/dispute/${d.id}">Dispute ${d.id}</a>`], ["Task", d => `<a href="#/task/${d.task_id}">Task ${d.task_id}</a>`],
    ["Phase", d => badge(d.phase)], ["Steps", d => `(${d.lo}, ${d.hi}]`], ["Rounds", d => d.rounds, "num"],
    ["Outcome", d => esc(d.outcome)], ["Slashed", d => d.slashed ? uvtr(d.slashed) : "—", "num"]], r.disputes, "no disputes yet")}`;
}

async function dispute(id) {
  const r = await api(`/api/disputes/${encodeURIComponent(id)}`);
  const d = r.dispute, v = r.verdict;
  const first = r.intervals[0], total = first ? Math.max(1, first.hi - first.lo) : 1, base = first ? first.lo : 0;
  const bars = r.intervals.map((iv, i) => `<div class="row"><span class="label">${i === 0 ? "opened" : "round " + i} · h${iv.height} · (${iv.lo}, ${iv.hi}]</span>
    <span class="track"><span class="bar" style="left:${(100 * (iv.lo - base) / total).toFixed(2)}%;width:${(100 * iv.width / total).toFixed(2)}%"></span></span></div>`).join("");
  return `<h1>Dispute ${d.id} ${badge(d.phase)}</h1>
  <p>On <a href="#/task/${d.task_id}">Task ${d.task_id}</a>: challenger ${addr(d.challenger)} against solver ${addr(d.solver)}, bond ${uvtr(d.bond)}.</p>
  <h2>Bisection: the step interval, round by round</h2>
  <div class="bars">${bars || '<p class="muted">no rounds yet</p>'}</div>
  <h2>Descent through the operator tree</h2>
  ${table([["Height", s => s.height, "num"], ["By", s => esc(s.actor)], ["Level", s => s.level, "num"], ["Node index", s => s.index, "num"]], r.descent, "no descent yet")}
  <h2>Node found</h2>
  ${r.found ? `<p>Step <b>${r.found.step}</b>, node <b>${r.found.node}</b> (<span class="mono">${esc(r.found.op_kind)}</span>)</p>` : '<p class="muted">not yet</p>'}
  <h2>Referee's verdict</h2>
  <div class="verdict ${esc(v.winner)}">${v.outcome ? `<b>${esc(v.outcome)}</b>` : '<span class="muted">pending</span>'}
   ${v.slashed_party ? `<p>Slashed: ${addr(v.slashed_party)} lost <b>${uvtr(v.slashed)}</b></p>` : ""}</div>
  <h2>Transcript</h2>
  ${table([["Height", m => m.height, "num"], ["Actor", m => esc(m.actor)], ["Move", m => `<span class="mono">${esc(m.action)}</span>`]], d.transcript || [], "no moves")}`;
}

async function leaderboard(q) {
  const role = q.get("role") || "all";
  const r = await api(`/api/leaderboard?role=${encodeURIComponent(role)}`);
  const tabs = ["all", "solver", "verifier"].map(x => x === role ? `<b>${x}</b>` : `<a href="#/leaderboard?role=${x}">${x}</a>`).join(" · ");
  return `<h1>Leaderboard</h1><p>By role: ${tabs}</p>
  ${table([["#", (o) => r.operators.indexOf(o) + 1, "num"], ["Operator", o => addr(o.operator)], ["Rewards", o => uvtr(o.rewards), "num"],
    ["Tasks solved", o => o.tasks_solved, "num"], ["Steps verified", o => o.steps_verified, "num"],
    ["Disputes won", o => o.disputes_won, "num"], ["lost", o => o.disputes_lost, "num"], ["Slashed", o => uvtr(o.slashed), "num"],
    ["Last active", o => o.last_active_height, "num"]], r.operators, "no operators have a record yet")}
  <h2>By swarm</h2><p class="muted">${r.swarms.length ? "" : "Swarms do not exist on this chain yet; their boards appear here when they do."}</p>`;
}

async function account(a) {
  const r = await api(`/api/accounts/${encodeURIComponent(a)}`);
  return `<h1>Account <span class="mono">${esc(r.address)}</span></h1>
  <div class="cards">${card("Balance", uvtr(r.balance))}
    ${r.operator ? card("Role", esc(r.operator.role)) + card("Stake", uvtr(r.operator.stake)) + card("Slashed", uvtr(r.operator.slashed_total)) : card("Operator", "not registered")}
    ${r.account ? card("Sequence", r.account.sequence) : ""}</div>
  <h2>Tasks</h2>
  ${table([["Task", t => `<a href="#/task/${t.id}">Task ${t.id}</a>`], ["Status", t => badge(t.status)],
    ["Role", t => [t.submitter === r.address && "submitter", t.solver === r.address && "solver"].filter(Boolean).join(", ") || "verifier"],
    ["Reward", t => uvtr(t.reward), "num"]], r.tasks, "none")}
  <h2>Disputes</h2>
  ${table([["Dispute", d => `<a href="#/dispute/${d.id}">Dispute ${d.id}</a>`], ["Side", d => d.challenger === r.address ? "challenger" : "solver"], ["Outcome", d => esc(d.outcome)]], r.disputes, "none")}`;
}

// ---- routing and live updates --------------------------------------------

let current = "";
async function render(flash) {
  const h = location.hash.replace(/^#\/?/, "");
  const [path, qs] = h.split("?");
  const q = new URLSearchParams(qs || "");
  const [page, arg] = path.split("/");
  current = page || "network";
  try {
    const html = await ({
      "": () => network(), network: () => network(), block: () => block(arg), tx: () => tx(arg),
      tasks: () => tasks(q), task: () => task(arg), disputes: () => disputes(), dispute: () => dispute(arg),
      leaderboard: () => leaderboard(q), account: () => account(arg),
    }[page || ""] || (() => Promise.reject(new Error(`no page ${page}`))))();
    main.innerHTML = html;
    if (flash) main.classList.add("flash"), setTimeout(() => main.classList.remove("flash"), 1300);
    const f = document.getElementById("taskfilter");
    if (f) f.onsubmit = e => { e.preventDefault(); const d = new FormData(f); location.hash = `#/tasks?status=${d.get("status")}&address=${d.get("address")}`; };
    document.body.dataset.page = current;
    document.body.dataset.ready = "1";
  } catch (e) {
    main.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    document.body.dataset.ready = "1";
  }
}

document.getElementById("search").onsubmit = e => {
  e.preventDefault();
  const v = document.getElementById("q").value.trim();
  if (/^vt1/.test(v)) location.hash = `#/account/${v}`;
  else if (/^[0-9A-Fa-f]{64}$/.test(v)) location.hash = `#/tx/${v}`;
  else if (/^b?\d+$/.test(v) && v.startsWith("b")) location.hash = `#/block/${v.slice(1)}`;
  else if (/^\d+$/.test(v)) location.hash = `#/task/${v}`;
};

function live() {
  const badgeEl = document.getElementById("live");
  const es = new EventSource("/api/events");
  let pending = null;
  const soon = () => { if (!pending) pending = setTimeout(() => { pending = null; render(true); }, 300); };
  es.onopen = () => { badgeEl.className = "on"; badgeEl.textContent = "live"; };
  es.onerror = () => { badgeEl.className = "off"; badgeEl.textContent = "reconnecting"; };
  es.addEventListener("block", ev => {
    const b = JSON.parse(ev.data);
    document.getElementById("tip").textContent = `height ${b.height}`;
    document.body.dataset.blockEvents = String(Number(document.body.dataset.blockEvents || 0) + 1);
    if (current === "network") soon();
  });
  es.addEventListener("task", ev => {
    const t = JSON.parse(ev.data);
    const id = (location.hash.match(/^#\/task\/(\d+)/) || [])[1];
    if (current === "tasks" || current === "disputes" || current === "leaderboard" || current === "account" || (id && Number(id) === t.task_id) || current === "dispute") soon();
  });
}

window.addEventListener("hashchange", () => render(false));
api("/api/status").then(s => { document.getElementById("tip").textContent = `height ${s.height}`; }).catch(() => {});
render(false);
if (LIVE && window.EventSource) live();
