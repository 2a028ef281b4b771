//! The dispute game on real programs: a cheating solver is caught at exactly
//! the faulty (step, node), a false challenger loses its bond, silence loses on
//! the clock, and money is conserved after every block (the runtime test world
//! checks supply and both escrows after each one).
use bank::BankRead;
use framework::{Address, Amount, StateRead, StateReadExt};
use proptest::prelude::*;
use proto::verde::v1 as pb;
use runtime::testkit;
use staking::{Role, StakingRead, StakingWrite};
use std::collections::BTreeMap;
use tasks::TasksRead;
use train::merkle::{self, Hash};
use train::{Dataset, Program, Trainer};
use verde::{Phase, VerdeMsg, VerdeRead};

/// A party's view of a whole training run.
struct Trace {
    h: Vec<Hash>,
    node_hashes: Vec<Vec<Hash>>,
    outputs: Vec<Vec<repops::Tensor>>,
    states: Vec<BTreeMap<String, repops::Tensor>>,
}

fn program(steps: u64) -> Program {
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.steps = steps;
    p.batch_size = 16;
    p
}

/// Trains `p`, flipping the lowest bit of element 0 of node `j`'s output at step `s`.
/// The digits rows as a dataset the chain does not hold (other chunking, so
/// another root): its rows must be proven in a dispute.
fn ext_dataset() -> Dataset {
    let d = Dataset::builtin("digits").unwrap();
    Dataset::build(
        "ext-digits",
        train::dataset::Schema::Digits8x8,
        65,
        5,
        d.data().to_vec(),
        "",
        "",
    )
    .unwrap()
}

/// Another dataset the chain does not hold (the long GPT-2 test's random tokens).
static EXTRA: std::sync::OnceLock<Dataset> = std::sync::OnceLock::new();

fn dataset_for(p: &Program) -> Dataset {
    Dataset::builtin(&p.dataset.name).unwrap_or_else(|_| {
        EXTRA
            .get()
            .filter(|d| d.root() == p.dataset.root)
            .cloned()
            .unwrap_or_else(ext_dataset)
    })
}

fn simulate(p: &Program, fault: Option<(u64, usize)>) -> Trace {
    simulate_at(p, fault.map(|(t, j)| (t, j, 0)))
}

/// [`simulate`] flipping the lowest bit of element `e` (modulo the output's size) of
/// node `j`'s output at step `s` (and bit 21 too for `e` ≥ 2^32, so that the cheat
/// is not absorbed by rounding downstream).
fn simulate_at(p: &Program, fault: Option<(u64, usize, usize)>) -> Trace {
    simulate_keep(p, fault, None)
}

/// [`simulate_at`] keeping, with `keep = Some(t)`, only what a dispute on step `t`
/// needs (its node outputs and the state before it): a 124M-parameter step's
/// outputs are gigabytes.
fn simulate_keep(p: &Program, fault: Option<(u64, usize, usize)>, keep: Option<u64>) -> Trace {
    let ds = dataset_for(p);
    let graph = p.graph().unwrap();
    let mut state = Trainer::new(p.clone(), ds.clone()).unwrap().state().clone();
    let mut tr = Trace {
        h: vec![train::state_hash(&state)],
        node_hashes: vec![vec![]],
        outputs: vec![vec![]],
        states: vec![if keep.is_none_or(|k| k == 1) {
            state.clone()
        } else {
            BTreeMap::new()
        }],
    };
    for t in 1..=p.steps {
        let batch = train::batch_for_step(p, &ds, t).unwrap();
        let mut outs: Vec<repops::Tensor> = Vec::new();
        for n in &graph.nodes {
            let ins: Vec<&repops::Tensor> = n
                .inputs
                .iter()
                .map(|i| match i {
                    train::Input::State(s) => &state[s],
                    train::Input::Batch(b) => &batch[b],
                    train::Input::Node(k) => &outs[*k],
                })
                .collect();
            let mut out = train::execute_node(n, &ins).unwrap();
            if let Some((_, _, e)) = fault.filter(|f| (f.0, f.1) == (t, n.index)) {
                let mut d = out.data().to_vec();
                let flip = if e >> 32 != 0 { 1 | 1 << 21 } else { 1 };
                let e = (e & 0xffff_ffff) % d.len();
                d[e] = f32::from_bits(d[e].to_bits() ^ flip);
                out = repops::Tensor::new(out.shape().to_vec(), d).unwrap();
            }
            outs.push(out);
        }
        state = graph
            .updates
            .iter()
            .map(|(name, &k)| (name.clone(), outs[k].clone()))
            .collect();
        tr.h.push(train::state_hash(&state));
        tr.node_hashes
            .push(outs.iter().map(repops::tensor_hash).collect());
        let kept = |t: u64| keep.is_none_or(|k| k == t);
        tr.outputs.push(if kept(t) { outs } else { vec![] });
        tr.states.push(if kept(t + 1) {
            state.clone()
        } else {
            BTreeMap::new()
        });
    }
    tr
}

fn pproof(leaves: &[Hash], i: usize) -> Option<pb::MerkleProof> {
    let p = merkle::proof(leaves, i).unwrap();
    Some(pb::MerkleProof {
        index: p.index,
        leaf_count: p.leaf_count,
        siblings: p.siblings.iter().map(|s| s.to_vec()).collect(),
    })
}

/// All levels of train::merkle's tree (level 0 = leaf nodes).
fn levels(leaves: &[Hash]) -> Vec<Vec<Hash>> {
    let mut v = vec![leaves.iter().map(merkle::leaf_node).collect::<Vec<_>>()];
    while v.last().unwrap().len() > 1 {
        let l = v.last().unwrap();
        v.push(
            l.chunks(2)
                .map(|c| {
                    if c.len() == 2 {
                        merkle::internal_node(&c[0], &c[1])
                    } else {
                        c[0]
                    }
                })
                .collect(),
        );
    }
    v
}

fn bytes(t: &repops::Tensor) -> Vec<u8> {
    t.data().iter().flat_map(|f| f.to_le_bytes()).collect()
}

struct World {
    w: testkit::World,
    submitter: Address,
    solver: Address,
    challenger: Address,
    supply: Amount,
    /// Bytes of every verde message sent (accepted or not).
    sent: u64,
}

impl World {
    fn new() -> World {
        World::with(tasks::Params {
            challenge_window_blocks: 200,
            ..Default::default()
        })
    }

    /// A world whose chain has tasks params `tp` (e.g. lowered referee bounds).
    fn with(tp: tasks::Params) -> World {
        let submitter = Address::module("submitter");
        let solver = Address::module("solver");
        let challenger = Address::module("challenger");
        let mut w = testkit::World::new();
        w.fund(&[submitter, solver, challenger], 100_000_000);
        w.setup(|s, c| -> Result<(), String> {
            tasks::init_genesis(
                s,
                &proto::tasks::v1::GenesisState {
                    params: Some(tp.to_proto()),
                },
            )
            .map_err(|e| e.to_string())?;
            let vp = verde::Params {
                max_chunk_bytes: 4096,
                ..Default::default()
            };
            verde::init_genesis(
                s,
                &pb::GenesisState {
                    params: Some(vp.to_proto()),
                },
            )
            .map_err(|e| e.to_string())?;
            s.register(c, solver, Role::Solver, Amount(5_000_000))
                .map_err(|e| e.to_string())?;
            s.register(c, challenger, Role::Verifier, Amount(1_000_000))
                .map_err(|e| e.to_string())
        });
        let supply = w.state.total_supply().unwrap();
        World {
            w,
            submitter,
            solver,
            challenger,
            supply,
            sent: 0,
        }
    }

    fn s(&self) -> &framework::MemState {
        &self.w.state
    }

    fn end_block(&mut self) {
        self.w.advance(1);
    }

    /// One verde message (from protobuf, as a client sends it) in its own block.
    fn send<M: prost::Message>(&mut self, m: &M) -> Result<(), String>
    where
        for<'a> VerdeMsg: TryFrom<&'a M, Error = verde::VerdeError>,
    {
        self.sent += m.encoded_len() as u64;
        let m = VerdeMsg::try_from(m).map_err(|e| e.to_string())?;
        self.w.tx(m).map_err(|e| e.log)
    }

    fn tasks_tx<M>(&mut self, m: &M) -> Result<(), String>
    where
        for<'a> tasks::TasksMsg: TryFrom<&'a M, Error = tasks::TasksError>,
    {
        let m = tasks::TasksMsg::try_from(m).map_err(|e| e.to_string())?;
        self.w.tx(m).map_err(|e| e.log)
    }

    fn open(
        &mut self,
        who: Address,
        id: u64,
        bond: u128,
        (lo, h_lo, proof_lo): (u64, &Hash, Option<pb::MerkleProof>),
        (hi, h_hi, proof_hi): (u64, &Hash, Option<pb::MerkleProof>),
    ) -> Result<(), String> {
        self.send(&pb::MsgOpenDispute {
            challenger: who.to_string(),
            task_id: id,
            bond: Some(proto::base::v1::Coin {
                denom: "uvtr".into(),
                amount: bond.to_string(),
            }),
            lo,
            h_lo: h_lo.to_vec(),
            proof_lo,
            hi,
            h_hi: h_hi.to_vec(),
            proof_hi,
            trace_root: vec![],
        })
    }

    fn submit(
        &mut self,
        json: Vec<u8>,
        fee: u128,
        info: Option<proto::tasks::v1::DatasetInfo>,
    ) -> Result<(), String> {
        let coin = |a: u128| {
            Some(proto::base::v1::Coin {
                denom: "uvtr".into(),
                amount: a.to_string(),
            })
        };
        self.tasks_tx(&proto::tasks::v1::MsgSubmitTask {
            submitter: self.submitter.to_string(),
            program_json: json,
            reward: coin(1_000_000),
            verification_fee: coin(fee),
            dataset: info,
            ..Default::default()
        })
    }

    fn burned(&self) -> Amount {
        self.supply
            .checked_sub(self.s().total_supply().unwrap())
            .unwrap()
    }

    /// Submits, claims and commits `solver`'s trace. Returns the task id.
    fn task(&mut self, p: &Program, solver: &Trace) -> u64 {
        let info = Dataset::builtin(&p.dataset.name).is_err().then(|| {
            let h = dataset_for(p).header().clone();
            proto::tasks::v1::DatasetInfo {
                schema: tasks::task::schema_name(h.schema).into(),
                rows: h.rows,
                row_bytes: h.row_bytes,
                chunk_rows: h.chunk_rows,
            }
        });
        let json = serde_json::to_vec(p).unwrap();
        let sol = self.solver;
        self.submit(json, 100_000, info).unwrap();
        let id = self
            .s()
            .get_u64(tasks::state_key::NEXT_ID)
            .unwrap()
            .unwrap()
            - 1;
        self.tasks_tx(&proto::tasks::v1::MsgClaimTask {
            solver: sol.to_string(),
            task_id: id,
            endpoint: String::new(),
        })
        .unwrap();
        let root = merkle::root(&solver.h);
        let fin = *solver.h.last().unwrap();
        self.tasks_tx(&proto::tasks::v1::MsgCommitResult {
            solver: sol.to_string(),
            task_id: id,
            trace_root: root.to_vec(),
            final_state_hash: fin.to_vec(),
        })
        .unwrap();
        id
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    Honest,
    /// Stops answering once the dispute reaches this phase.
    SilentAt(Phase),
    /// Never moves.
    Silent,
    /// Inside a node: reveals fold states one bit off its own.
    LiesInFold,
}

/// Plays a dispute to the end. The challenger opens on (lo, T] where lo is the
/// last step both traces agree on (0 if none but h_0).
fn play(
    w: &mut World,
    id: u64,
    p: &Program,
    solver: &Trace,
    sb: Behaviour,
    chal: &Trace,
    cb: Behaviour,
) -> verde::Dispute {
    let t_steps = p.steps as usize;
    // An honest challenger only claims steps it really disagrees with: a fault
    // can heal (h_t differs, a later h_t' agrees), so open on (0, last differing].
    let first_diff = (0..=t_steps)
        .find(|&i| solver.h[i] != chal.h[i])
        .expect("traces agree: nothing to dispute");
    let last_diff = (0..=t_steps)
        .rev()
        .find(|&i| solver.h[i] != chal.h[i])
        .unwrap_or(first_diff);
    let (lo, hi) = if first_diff == 0 {
        (0, 0)
    } else {
        (0, last_diff)
    };
    let ch = w.challenger;
    let sh = solver.h.clone();
    w.open(
        ch,
        id,
        200_000,
        (lo as u64, &sh[lo], pproof(&sh, lo)),
        (hi as u64, &sh[hi], pproof(&sh, hi)),
    )
    .unwrap();
    let did = w.s().get_u64(verde::state_key::NEXT_ID).unwrap().unwrap() - 1;
    drive(w, did, p, solver, sb, chal, cb)
}

/// Opens in trace mode (the challenger shows only its own trace root) and
/// plays to the end.
fn play_trace(
    w: &mut World,
    id: u64,
    p: &Program,
    solver: &Trace,
    sb: Behaviour,
    chal: &Trace,
    cb: Behaviour,
) -> verde::Dispute {
    let who = w.challenger;
    let did = open_trace(w, who, id, chal).expect("the trace dispute opens");
    drive(w, did, p, solver, sb, chal, cb)
}

/// Makes both parties' moves until the dispute ends.
fn drive(
    w: &mut World,
    did: u64,
    p: &Program,
    solver: &Trace,
    sb: Behaviour,
    chal: &Trace,
    cb: Behaviour,
) -> verde::Dispute {
    for _ in 0..10_000 {
        let (done, moved) = step(w, did, p, solver, sb, chal, cb);
        if let Some(d) = done {
            return d;
        }
        if !moved {
            w.end_block(); // let the clock run
        }
    }
    panic!("dispute did not end")
}

/// One round of both parties' moves in dispute `did` (the challenger is
/// whoever opened it): the dispute if it has ended, and whether anyone moved.
fn step(
    w: &mut World,
    did: u64,
    p: &Program,
    solver: &Trace,
    sb: Behaviour,
    chal: &Trace,
    cb: Behaviour,
) -> (Option<verde::Dispute>, bool) {
    let graph = p.graph().unwrap();
    let so = w.solver;
    let ch = w.s().dispute(did).unwrap().challenger;
    let sh = solver.h.clone();
    // Another dispute's moves may have let this one's clock run out: a move
    // on an ended dispute is refused, and that is the end of it.
    macro_rules! send {
        ($m:expr) => {
            if let Err(e) = w.send(&$m) {
                let d = w.s().dispute(did).unwrap();
                if d.phase == Phase::Resolved {
                    return (Some(d), true);
                }
                panic!("{e}");
            }
        };
    }
    let d = w.s().dispute(did).unwrap();
    let phase = d.phase;
    if phase == Phase::Resolved {
        return (Some(d), false);
    }
    let solver_silent = sb == Behaviour::SilentAt(phase);
    let chal_silent = cb == Behaviour::SilentAt(phase);
    let hi = d.hi as usize;
    let mut moved = false;
    match phase {
        Phase::BisectReveal if !solver_silent => {
            let m = d.mid as usize;
            send!(pb::MsgRevealMid {
                solver: so.to_string(),
                dispute_id: did,
                h_mid: sh[m].to_vec(),
                proof: pproof(&sh, m),
            });
            moved = true;
        }
        Phase::BisectRespond if !chal_silent => {
            let agree = Some(chal.h[d.mid as usize]) == d.h_mid;
            send!(pb::MsgRespond {
                challenger: ch.to_string(),
                dispute_id: did,
                agree,
            });
            moved = true;
        }
        Phase::OpRoots => {
            if d.solver_op_root.is_none() && !solver_silent {
                let r = merkle::root(&solver.node_hashes[hi]);
                send!(pb::MsgPostOpRoot {
                    sender: so.to_string(),
                    dispute_id: did,
                    op_root: r.to_vec(),
                });
                moved = true;
            }
            if d.challenger_op_root.is_none() && !chal_silent {
                let r = merkle::root(&chal.node_hashes[hi]);
                send!(pb::MsgPostOpRoot {
                    sender: ch.to_string(),
                    dispute_id: did,
                    op_root: r.to_vec(),
                });
                moved = true;
            }
        }
        Phase::TraceDescent => {
            for (who, tr, done, silent) in [
                (so, solver, !d.solver_children.is_empty(), solver_silent),
                (ch, chal, !d.challenger_children.is_empty(), chal_silent),
            ] {
                if done || silent {
                    continue;
                }
                let (l, r) = if d.level == 0 {
                    (tr.h[d.index as usize].to_vec(), vec![])
                } else {
                    let lv = levels(&tr.h);
                    let below = &lv[d.level as usize - 1];
                    (
                        below[2 * d.index as usize].to_vec(),
                        below[2 * d.index as usize + 1].to_vec(),
                    )
                };
                send!(pb::MsgRevealChildren {
                    sender: who.to_string(),
                    dispute_id: did,
                    left: l,
                    right: r,
                });
                moved = true;
            }
        }
        Phase::Descent => {
            for (who, tr, done, silent) in [
                (so, solver, !d.solver_children.is_empty(), solver_silent),
                (ch, chal, !d.challenger_children.is_empty(), chal_silent),
            ] {
                if done || silent {
                    continue;
                }
                let (l, r) = if d.level == 0 {
                    (tr.node_hashes[hi][d.index as usize].to_vec(), vec![])
                } else {
                    let lv = levels(&tr.node_hashes[hi]);
                    let below = &lv[d.level as usize - 1];
                    (
                        below[2 * d.index as usize].to_vec(),
                        below[2 * d.index as usize + 1].to_vec(),
                    )
                };
                send!(pb::MsgRevealChildren {
                    sender: who.to_string(),
                    dispute_id: did,
                    left: l,
                    right: r,
                });
                moved = true;
            }
        }
        Phase::Assembly if !solver_silent => {
            let entries = graph
                .updates
                .iter()
                .map(|(name, &k)| pb::StateEntry {
                    name: name.clone(),
                    tensor_hash: solver.node_hashes[hi][k].to_vec(),
                    proof: pproof(&solver.node_hashes[hi], k),
                })
                .collect::<Vec<_>>();
            // A solver whose h_hi does not assemble gets a clean error and stays silent.
            moved = w
                .send(&pb::MsgProveAssembly {
                    solver: so.to_string(),
                    dispute_id: did,
                    entries,
                })
                .is_ok();
        }
        Phase::OutputDescent => {
            for (who, tr, done, silent) in [
                (so, solver, !d.solver_children.is_empty(), solver_silent),
                (ch, chal, !d.challenger_children.is_empty(), chal_silent),
            ] {
                if done || silent {
                    continue;
                }
                let out = &tr.outputs[hi][d.node as usize];
                send!(agent::dispute::output_reveal(&d.to_proto(), &who.to_string(), out).unwrap());
                moved = true;
            }
        }
        Phase::FoldReveal if !solver_silent => {
            let mut acc = fold_state(p, solver, &d, d.inner.fold_mid);
            if sb == Behaviour::LiesInFold && d.inner.fold_mid < d.inner.fold_hi {
                acc[0] = f32::from_bits(acc[0].to_bits() ^ 1);
            }
            if d.inner.fold_mid == d.inner.fold_hi {
                // A column sum's lanes must combine to the solver's element: a cheater
                // crafts lane 0 to make them, or has no move.
                match craft_lanes(p, &d, acc) {
                    Some(a) => acc = a,
                    None => return (None, false),
                }
            }
            send!(pb::MsgRevealPartial {
                solver: so.to_string(),
                dispute_id: did,
                acc: le_bits(&acc),
            });
            moved = true;
        }
        Phase::FoldRespond if !chal_silent => {
            let mine = fold_state(p, chal, &d, d.inner.fold_mid);
            let agree = mine.iter().map(|v| v.to_bits()).collect::<Vec<_>>() == d.inner.acc_mid;
            send!(pb::MsgRespond {
                challenger: ch.to_string(),
                dispute_id: did,
                agree,
            });
            moved = true;
        }
        Phase::TileInputs if !solver_silent => {
            for m in tile_moves(p, solver, &d, so) {
                send!(m);
            }
            moved = true;
        }
        Phase::Reveal if !solver_silent => {
            let node = &graph.nodes[d.node as usize];
            if !d.rows_needed.is_empty() && (d.rows_proven as usize) < d.rows_needed.len() {
                let ds = dataset_for(p);
                let rows: Vec<pb::RowProof> = d
                    .rows_needed
                    .iter()
                    .map(|&r| {
                        let rp = ds.row_proof(r).unwrap();
                        pb::RowProof {
                            row: r,
                            chunk: rp.chunk,
                            proof: Some(pb::MerkleProof {
                                index: rp.proof.index,
                                leaf_count: rp.proof.leaf_count,
                                siblings: rp.proof.siblings.iter().map(|s| s.to_vec()).collect(),
                            }),
                        }
                    })
                    .collect();
                send!(pb::MsgUploadRows {
                    solver: so.to_string(),
                    dispute_id: did,
                    rows,
                });
                return (None, true);
            }
            for (i, u) in d.inputs.iter().enumerate() {
                if u.complete {
                    continue;
                }
                let Some((t, proof)) = committed(solver, node, hi, i) else {
                    continue;
                };
                let data = bytes(&t);
                let chunks: Vec<&[u8]> = data.chunks(4096).collect();
                for (ci, chunk) in chunks.iter().enumerate() {
                    let last = ci + 1 == chunks.len();
                    let pr = if last { proof.clone() } else { None };
                    let off = (ci * 4096) as u64;
                    send!(pb::MsgUploadInput {
                        solver: so.to_string(),
                        dispute_id: did,
                        input: i as u32,
                        offset: off,
                        data: chunk.to_vec(),
                        proof: pr,
                    });
                }
            }
            moved = true;
        }
        _ => {}
    }
    (None, moved)
}

/// Input `i` of `node` at step `hi` in `tr` with its proof against its commitment
/// (`None` for batch inputs).
fn committed(
    tr: &Trace,
    node: &train::Node,
    hi: usize,
    i: usize,
) -> Option<(repops::Tensor, Option<pb::MerkleProof>)> {
    match &node.inputs[i] {
        train::Input::State(name) => {
            let st = &tr.states[hi - 1];
            let leaves: Vec<Hash> = st
                .iter()
                .map(|(n, t)| train::exec::state_leaf(n, &repops::tensor_hash(t)))
                .collect();
            let pos = st.keys().position(|n| n == name).unwrap();
            Some((st[name].clone(), pproof(&leaves, pos)))
        }
        train::Input::Node(k) => {
            Some((tr.outputs[hi][*k].clone(), pproof(&tr.node_hashes[hi], *k)))
        }
        train::Input::Batch(_) => None,
    }
}

/// Every input of the disputed node at step `d.hi` in `tr`.
fn node_inputs(p: &Program, tr: &Trace, d: &verde::Dispute) -> (train::Node, Vec<repops::Tensor>) {
    let node = p.graph().unwrap().nodes[d.node as usize].clone();
    let hi = d.hi as usize;
    let batch = train::batch_for_step(p, &dataset_for(p), d.hi).unwrap();
    let ins = (0..node.inputs.len())
        .map(|i| match &node.inputs[i] {
            train::Input::Batch(b) => batch[b].clone(),
            _ => committed(tr, &node, hi, i).unwrap().0,
        })
        .collect();
    (node, ins)
}

/// `tr`'s fold state of the disputed element after `upto` steps.
fn fold_state(p: &Program, tr: &Trace, d: &verde::Dispute, upto: u64) -> Vec<f32> {
    let (node, ins) = node_inputs(p, tr, d);
    let refs: Vec<&repops::Tensor> = ins.iter().collect();
    repops::tile::element_state_whole(&node.op, &refs, d.inner.element as usize, upto as usize)
        .unwrap()
}

/// Lanes that combine to the solver's element: `acc` itself, or lanes a cheater
/// crafts to (its whole element in lane 0), if any such combine to it.
fn craft_lanes(p: &Program, d: &verde::Dispute, acc: Vec<f32>) -> Option<Vec<f32>> {
    let node = p.graph().unwrap().nodes[d.node as usize].clone();
    let shapes: Vec<&[usize]> = node.input_shapes.iter().map(Vec::as_slice).collect();
    let target = d.inner.solver_value?;
    let val = |a: &[f32]| {
        repops::tile::element_value(&node.op, &shapes, a)
            .unwrap()
            .to_bits()
    };
    if val(&acc) == target {
        return Some(acc);
    }
    // All of it in lane 0 (scaled back up for a mean), give or take a few ulps.
    let rows = repops::tile::fold(&node.op, &shapes)?.len as f32;
    let scale = if node.op.name() == "mean_axis0" {
        rows
    } else {
        1.0
    };
    for ulps in -64i32..=64 {
        let mut a = vec![0.0; acc.len()];
        a[0] = f32::from_bits(
            (f32::from_bits(target) * scale)
                .to_bits()
                .wrapping_add_signed(ulps),
        );
        if val(&a) == target {
            return Some(a);
        }
    }
    None
}

fn le_bits(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()
}

/// The solver's slice proofs of the disputed tile's inputs still unproven.
fn tile_moves(p: &Program, tr: &Trace, d: &verde::Dispute, so: Address) -> Vec<pb::MsgProveSlice> {
    let (node, _) = node_inputs(p, tr, d);
    let shapes: Vec<&[usize]> = node.input_shapes.iter().map(Vec::as_slice).collect();
    let k = if repops::tile::fold(&node.op, &shapes).is_some() {
        d.inner.fold_lo as usize..d.inner.fold_hi as usize
    } else {
        0..0
    };
    let tile = repops::tile::element_tile(&node.op, &shapes, d.inner.element as usize, k).unwrap();
    let ranges = repops::tile::input_ranges(&node.op, &shapes, &tile).unwrap();
    d.inputs
        .iter()
        .enumerate()
        .filter(|(_, u)| !u.complete)
        .filter_map(|(i, _)| {
            let (t, proof) = committed(tr, &node, d.hi as usize, i)?;
            let slice = repops::slice::prove_ranges(&t, &ranges[i]).unwrap();
            Some(pb::MsgProveSlice {
                solver: so.to_string(),
                dispute_id: d.id,
                input: i as u32,
                tensor_hash: repops::tensor_hash(&t).to_vec(),
                proof,
                slice: Some(agent::dispute::slice_to_pb(&slice)),
            })
        })
        .collect()
}

fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// Nodes whose fault changes the state after their step.
fn effective_nodes(p: &Program, honest: &Trace, s: u64) -> Vec<usize> {
    let m = p.nodes().unwrap().len();
    (0..m)
        .filter(|&j| {
            simulate(
                &Program {
                    steps: s,
                    ..p.clone()
                },
                Some((s, j)),
            )
            .h[s as usize]
                != honest.h[s as usize]
        })
        .collect()
}

#[test]
fn a_cheating_solver_is_slashed_at_the_exact_operator() {
    let p = program(6);
    let honest = simulate(&p, None);
    let m = p.nodes().unwrap().len() as u64;
    // A few representative nodes of step 4 whose fault reaches the state.
    let nodes = effective_nodes(&p, &honest, 4);
    assert!(
        nodes.len() > 10,
        "only {} nodes affect the state",
        nodes.len()
    );
    for &j in [nodes[0], nodes[nodes.len() / 2], nodes[nodes.len() - 1]].iter() {
        let cheat = simulate(&p, Some((4, j)));
        let mut w = World::new();
        let id = w.task(&p, &cheat);
        let before = w.s().balance(&w.challenger).unwrap();
        let d = play(
            &mut w,
            id,
            &p,
            &cheat,
            Behaviour::Honest,
            &honest,
            Behaviour::Honest,
        );
        assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
        assert_eq!(
            (d.hi, d.node),
            (4, j as u64),
            "localised wrongly: {}",
            d.outcome
        );
        eprintln!(
            "node {j} ({}): {} rounds, {} moves, outcome: {}",
            d.op_kind,
            d.rounds,
            d.transcript.len(),
            d.outcome
        );
        assert!(
            d.rounds <= ceil_log2(p.steps) + ceil_log2(m) + 4,
            "{} rounds",
            d.rounds
        );
        assert_eq!(
            d.slashed,
            Amount(200_000 + 500_000),
            "claim bond + solver_slash"
        );
        // Challenger: bond back + half of the slash; the other half burned.
        assert_eq!(
            w.s().balance(&w.challenger).unwrap(),
            before.checked_add(Amount(350_000)).unwrap()
        );
        assert_eq!(w.burned(), Amount(350_000));
        let t = w.s().task(id).unwrap();
        assert_eq!(t.status, tasks::Status::Failed);
        assert_eq!(
            w.s().balance(&w.submitter).unwrap(),
            Amount(100_000_000),
            "submitter refunded in full"
        );
    }
}

#[test]
fn a_false_challenge_loses_its_bond_to_the_solver() {
    let p = program(5);
    let honest = simulate(&p, None);
    let nodes = effective_nodes(&p, &honest, 2);
    let liar = simulate(&p, Some((2, nodes[nodes.len() / 3])));
    let mut w = World::new();
    let id = w.task(&p, &honest);
    let solver_before = w.s().balance(&w.solver).unwrap();
    let d = play(
        &mut w,
        id,
        &p,
        &honest,
        Behaviour::Honest,
        &liar,
        Behaviour::Honest,
    );
    assert!(d.outcome.starts_with("solver wins"), "{}", d.outcome);
    assert_eq!(
        w.s().balance(&w.solver).unwrap(),
        solver_before.checked_add(Amount(200_000)).unwrap()
    );
    // The task then finalizes normally at the end of its window.
    for _ in 0..250 {
        w.end_block();
    }
    let t = w.s().task(id).unwrap();
    assert_eq!(t.status, tasks::Status::Finalized, "{}", t.note);
}

#[test]
fn a_silent_solver_loses_on_the_clock_in_every_phase() {
    let p = program(4);
    let honest = simulate(&p, None);
    let nodes = effective_nodes(&p, &honest, 3);
    let cheat = simulate(&p, Some((3, nodes[1])));
    for phase in [
        Phase::BisectReveal,
        Phase::OpRoots,
        Phase::Descent,
        Phase::Reveal,
    ] {
        let mut w = World::new();
        let id = w.task(&p, &cheat);
        let d = play(
            &mut w,
            id,
            &p,
            &cheat,
            Behaviour::SilentAt(phase),
            &honest,
            Behaviour::Honest,
        );
        assert!(
            d.outcome.starts_with("challenger wins"),
            "{phase:?}: {}",
            d.outcome
        );
        assert!(d.outcome.contains("missed"), "{phase:?}: {}", d.outcome);
    }
}

#[test]
fn a_silent_challenger_loses_its_bond() {
    let p = program(4);
    let honest = simulate(&p, None);
    let nodes = effective_nodes(&p, &honest, 2);
    let cheat = simulate(&p, Some((2, nodes[0])));
    for phase in [Phase::BisectRespond, Phase::OpRoots, Phase::Descent] {
        let mut w = World::new();
        let id = w.task(&p, &cheat);
        let d = play(
            &mut w,
            id,
            &p,
            &cheat,
            Behaviour::Honest,
            &honest,
            Behaviour::SilentAt(phase),
        );
        assert!(
            d.outcome.starts_with("solver wins"),
            "{phase:?}: {}",
            d.outcome
        );
    }
}

#[test]
fn a_wrong_initial_state_is_caught_by_recomputing_h0() {
    let p = program(3);
    let honest = simulate(&p, None);
    let mut cheat = simulate(&p, None);
    cheat.h[0][0] ^= 1;
    let mut w = World::new();
    let id = w.task(&p, &cheat);
    let d = play(
        &mut w,
        id,
        &p,
        &cheat,
        Behaviour::Honest,
        &honest,
        Behaviour::Honest,
    );
    assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
    assert_eq!(d.op_kind, "init");
}

#[test]
fn bad_moves_are_rejected_and_change_nothing() {
    let p = program(4);
    let honest = simulate(&p, None);
    let nodes = effective_nodes(&p, &honest, 2);
    let cheat = simulate(&p, Some((2, nodes[0])));
    let mut w = World::new();
    let id = w.task(&p, &cheat);
    let (ch, so) = (w.challenger, w.solver);
    let sh = cheat.h.clone();
    // A proof for the wrong leaf.
    let e = w.open(
        ch,
        id,
        200_000,
        (0, &sh[0], pproof(&sh, 1)),
        (4, &sh[4], pproof(&sh, 4)),
    );
    assert!(e.unwrap_err().contains("proof"));
    // Bond too low.
    let e = w.open(
        ch,
        id,
        1,
        (0, &sh[0], pproof(&sh, 0)),
        (4, &sh[4], pproof(&sh, 4)),
    );
    assert!(e.unwrap_err().contains("bond"));
    // The solver cannot challenge itself.
    let e = w.open(
        so,
        id,
        200_000,
        (0, &sh[0], pproof(&sh, 0)),
        (4, &sh[4], pproof(&sh, 4)),
    );
    assert!(e.unwrap_err().contains("own task"));
    let snapshot = w.s().0.clone();
    // A real dispute, then moves out of turn.
    w.open(
        ch,
        id,
        200_000,
        (0, &sh[0], pproof(&sh, 0)),
        (4, &sh[4], pproof(&sh, 4)),
    )
    .unwrap();
    assert_ne!(snapshot, w.s().0);
    let did = 1;
    let e = w.send(&pb::MsgRespond {
        challenger: ch.to_string(),
        dispute_id: did,
        agree: true,
    });
    assert!(e.unwrap_err().contains("phase"));
    let e = w.send(&pb::MsgRevealMid {
        solver: ch.to_string(),
        dispute_id: did,
        h_mid: sh[2].to_vec(),
        proof: pproof(&sh, 2),
    });
    assert!(e.unwrap_err().contains("must move"));
    // A second dispute on the same task is accepted: nobody can keep
    // others from disputing by holding the task's only dispute open.
    w.open(
        ch,
        id,
        200_000,
        (0, &sh[0], pproof(&sh, 0)),
        (4, &sh[4], pproof(&sh, 4)),
    )
    .unwrap();
    assert_eq!(w.s().task(id).unwrap().open_disputes, vec![1, 2]);
    // Late: run the clock out, then try to move.
    for _ in 0..12 {
        w.end_block();
    }
    let e = w.send(&pb::MsgRevealMid {
        solver: so.to_string(),
        dispute_id: did,
        h_mid: sh[2].to_vec(),
        proof: pproof(&sh, 2),
    });
    assert!(e.is_err());
    // Disputes on a finished task are refused.
    let e = w.open(
        ch,
        id,
        200_000,
        (0, &sh[0], pproof(&sh, 0)),
        (4, &sh[4], pproof(&sh, 4)),
    );
    assert!(e.unwrap_err().contains("failed"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Random honest, cheating and silent parties: the honest party always
    /// wins, within the move bound, with supply and escrow conserved (checked
    /// after every block inside `World`).
    #[test]
    fn the_honest_party_always_wins(steps in 2u64..9, fault_step in 1u64..9, pick in 0usize..1000, cheater_is_solver: bool, silent in 0usize..7, trace_mode: bool) {
        let fault_step = fault_step.min(steps);
        let p = program(steps);
        let honest = simulate(&p, None);
        let nodes = effective_nodes(&p, &honest, fault_step);
        let bad = simulate(&p, Some((fault_step, nodes[pick % nodes.len()])));
        let phases = [Phase::BisectReveal, Phase::BisectRespond, Phase::OpRoots, Phase::Descent, Phase::Reveal, Phase::TraceDescent];
        let cheater_b = if silent < phases.len() { Behaviour::SilentAt(phases[silent]) } else { Behaviour::Honest };
        let mut w = World::new();
        let m = p.nodes().unwrap().len() as u64;
        let game = if trace_mode { play_trace } else { play };
        let d = if cheater_is_solver {
            let id = w.task(&p, &bad);
            game(&mut w, id, &p, &bad, cheater_b, &honest, Behaviour::Honest)
        } else {
            let id = w.task(&p, &honest);
            game(&mut w, id, &p, &honest, Behaviour::Honest, &bad, cheater_b)
        };
        let winner = if cheater_is_solver { "challenger wins" } else { "solver wins" };
        prop_assert!(d.outcome.starts_with(winner), "{}", d.outcome);
        prop_assert!(d.rounds <= ceil_log2(steps + 1) + ceil_log2(m) + 5, "{} rounds", d.rounds);
    }
}

#[test]
fn a_cheat_on_a_dataset_the_chain_does_not_hold_is_judged_from_proven_rows() {
    let ext = ext_dataset();
    let mut p = program(4);
    p.dataset = train::program::DatasetRef {
        name: "ext-digits".into(),
        root: ext.root(),
        train_rows: 1500,
    };
    let honest = simulate(&p, None);
    let graph = p.graph().unwrap();
    // A node that reads the batch, and one that does not.
    let effective = effective_nodes(&p, &honest, 3);
    let with_batch = *effective
        .iter()
        .find(|&&j| {
            graph.nodes[j]
                .inputs
                .iter()
                .any(|i| matches!(i, train::Input::Batch(_)))
        })
        .unwrap();
    for j in [with_batch, *effective.last().unwrap()] {
        let cheat = simulate(&p, Some((3, j)));
        let mut w = World::new();
        let id = w.task(&p, &cheat);
        let d = play(
            &mut w,
            id,
            &p,
            &cheat,
            Behaviour::Honest,
            &honest,
            Behaviour::Honest,
        );
        assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
        assert_eq!((d.hi, d.node), (3, j as u64));
        if j == with_batch {
            assert!(
                d.transcript
                    .iter()
                    .any(|m| m.action.contains("dataset rows")),
                "rows were uploaded"
            );
        }
    }
    // A wrong layout or an unknown dataset without one is refused at submission.
    let mut w = World::new();
    let json = serde_json::to_vec(&p).unwrap();
    let e = w.submit(json.clone(), 0, None);
    assert!(e.unwrap_err().contains("state its layout"));
    let bad = proto::tasks::v1::DatasetInfo {
        schema: "ascii".into(),
        rows: 1797,
        row_bytes: 65,
        chunk_rows: 5,
    };
    let e = w.submit(json, 0, Some(bad));
    assert!(e.unwrap_err().contains("does not fit"));
}

#[test]
fn a_challenger_needs_no_proofs_for_h0_and_the_final_hash() {
    let p = program(6);
    let honest = simulate(&p, None);
    let j = effective_nodes(&p, &honest, 3)[0];
    let cheat = simulate(&p, Some((3, j)));
    let mut w = World::new();
    let id = w.task(&p, &cheat);
    let (ch, t) = (w.challenger, p.steps);
    let fin = *cheat.h.last().unwrap();
    let open = |w: &mut World, lo: (u64, Hash), hi: (u64, Hash)| {
        w.open(ch, id, 200_000, (lo.0, &lo.1, None), (hi.0, &hi.1, None))
    };
    let e = open(&mut w, (0, [9; 32]), (t, fin)).unwrap_err();
    assert!(e.contains("h_0"), "{e}");
    let e = open(&mut w, (0, honest.h[0]), (t, honest.h[t as usize])).unwrap_err();
    assert!(e.contains("final_state_hash"), "{e}");
    let e = open(&mut w, (0, honest.h[0]), (t - 1, cheat.h[t as usize - 1])).unwrap_err();
    assert!(e.contains("proof_hi"), "{e}");
    open(&mut w, (0, honest.h[0]), (t, fin)).unwrap();
    let d = w
        .s()
        .dispute(w.s().task(id).unwrap().open_disputes[0])
        .unwrap();
    assert_eq!((d.lo, d.hi), (0, t));
    assert_eq!(d.phase, Phase::BisectReveal);
}

#[test]
fn a_silent_sybil_dispute_does_not_shield_a_cheating_solver() {
    // The solver's own second key opens a proof-less dispute right after the
    // commit and then stays silent; an honest challenger can still dispute,
    // wins, and the sybil's dispute ends without shielding anything.
    let p = program(6);
    let honest = simulate(&p, None);
    let j = effective_nodes(&p, &honest, 3)[0];
    let cheat = simulate(&p, Some((3, j)));
    let mut w = World::new();
    let sybil = Address::module("sybil");
    w.w.fund(&[sybil], 1_000_000);
    let id = w.task(&p, &cheat);
    let fin = *cheat.h.last().unwrap();
    w.open(sybil, id, 100_000, (0, &honest.h[0], None), (6, &fin, None))
        .unwrap();
    let before = w.s().balance(&w.challenger).unwrap();
    let d = play(
        &mut w,
        id,
        &p,
        &cheat,
        Behaviour::Honest,
        &honest,
        Behaviour::Honest,
    );
    // The honest challenger's dispute ran regardless of the sybil's: it
    // either won or ended moot because the solver (which here never answers
    // its sybil) lost the sybil's dispute first. Either way the cheat is
    // not paid, the solver is slashed and the honest challenger loses nothing.
    assert!(
        d.outcome.starts_with("challenger wins") || d.outcome.starts_with("moot"),
        "{}",
        d.outcome
    );
    let t = w.s().task(id).unwrap();
    assert_eq!(t.status, tasks::Status::Failed);
    assert!(t.open_disputes.is_empty());
    assert!(w.s().balance(&w.challenger).unwrap() >= before);
    assert!(w.s().operator(&w.solver).unwrap().unwrap().stake < Amount(5_000_000));
    let sybil_d = w.s().dispute(1).unwrap();
    assert_eq!(sybil_d.phase, Phase::Resolved, "{}", sybil_d.outcome);
    assert_eq!(w.s().locks(&w.challenger).unwrap(), 0);
    assert_eq!(w.s().locks(&sybil).unwrap(), 0);
}

#[test]
fn an_attester_of_a_result_later_proven_wrong_is_slashed() {
    let p = program(6);
    let honest = simulate(&p, None);
    let j = effective_nodes(&p, &honest, 3)[0];
    let cheat = simulate(&p, Some((3, j)));
    let mut w = World::new();
    // A second verifier, lazy: it attests with the solver's own hashes.
    let lazy = Address::module("lazy");
    w.w.fund(&[lazy], 10_000_000);
    w.w.setup(|s, c| s.register(c, lazy, Role::Verifier, Amount(9_000_000)));
    w.w.write(|s| {
        let mut tp = tasks::Params {
            challenge_window_blocks: 200,
            verifiers_per_task: 2,
            ..Default::default()
        }
        .to_proto();
        tp.verifiers_per_task = 2;
        framework::StateWriteExt::put_proto(s, tasks::state_key::PARAMS.to_vec(), &tp);
    });
    let id = w.task(&p, &cheat);
    w.end_block();
    let t = w.s().task(id).unwrap();
    assert!(t.verifiers.contains(&lazy), "{:?}", t.verifiers);
    let attest = tasks::msg::MsgAttest::from_trace(
        lazy,
        id,
        t.level,
        &t.selection_seed.unwrap(),
        &cheat.h,
        0,
    );
    w.w.tx(tasks::TasksMsg::Attest(attest)).unwrap();
    let stake = w.s().operator(&lazy).unwrap().unwrap().stake;
    let d = play(
        &mut w,
        id,
        &p,
        &cheat,
        Behaviour::Honest,
        &honest,
        Behaviour::Honest,
    );
    assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
    assert_eq!(
        w.s().operator(&lazy).unwrap().unwrap().stake,
        stake.checked_sub(Amount(100_000)).unwrap(),
        "attester_wrong_slash"
    );
    // The honest challenger was drawn too; it challenged, so it is not
    // slashed for not attesting, and its stake is free again.
    assert_eq!(
        w.s().operator(&w.challenger).unwrap().unwrap().stake,
        Amount(1_000_000)
    );
    assert_eq!(w.s().locks(&w.challenger).unwrap(), 0);
    assert_eq!(w.s().locks(&lazy).unwrap(), 0);
}

#[test]
fn uploads_are_stored_apart_and_deleted_when_the_dispute_ends() {
    let p = program(4);
    let honest = simulate(&p, None);
    let nodes = effective_nodes(&p, &honest, 2);
    let cheat = simulate(&p, Some((2, *nodes.last().unwrap())));
    let mut w = World::new();
    let id = w.task(&p, &cheat);
    let d = play(
        &mut w,
        id,
        &p,
        &cheat,
        Behaviour::Honest,
        &honest,
        Behaviour::Honest,
    );
    assert!(
        d.transcript
            .iter()
            .any(|m| m.action.contains("upload input")),
        "inputs were uploaded"
    );
    let left =
        framework::StateRead::prefix_raw(w.s(), verde::state_key::UPLOAD_PREFIX, &[], 10).unwrap();
    assert!(left.is_empty(), "{} upload keys left", left.len());
    let stored = w
        .s()
        .get_raw(&verde::state_key::dispute(d.id))
        .unwrap()
        .unwrap();
    assert!(stored.len() < 16 << 10, "the record holds no input bytes");
}

#[test]
fn a_challenger_with_only_its_own_run_localises_a_cheat_through_the_trace() {
    let p = program(6);
    let honest = simulate(&p, None);
    let j = effective_nodes(&p, &honest, 3)[0];
    let cheat = simulate(&p, Some((3, j)));
    let mut w = World::new();
    let id = w.task(&p, &cheat);
    let d = play_trace(
        &mut w,
        id,
        &p,
        &cheat,
        Behaviour::Honest,
        &honest,
        Behaviour::Honest,
    );
    assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
    assert_eq!((d.hi, d.node), (3, j as u64), "{}", d.outcome);
    let m = p.nodes().unwrap().len() as u64;
    assert!(
        d.rounds <= ceil_log2(p.steps + 1) + ceil_log2(m) + 5,
        "{} rounds",
        d.rounds
    );
}

#[test]
fn a_garbage_trace_behind_a_correct_final_hash_is_caught() {
    // The model is right (h_T matches) but the committed trace is not: no
    // verifier could attest, so the trace itself must be disputable.
    let p = program(6);
    let honest = simulate(&p, None);
    let mut garbage = simulate(&p, None);
    garbage.h[2][5] ^= 1;
    let mut w = World::new();
    let id = w.task(&p, &garbage);
    let d = play_trace(
        &mut w,
        id,
        &p,
        &garbage,
        Behaviour::Honest,
        &honest,
        Behaviour::Honest,
    );
    assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
    assert_eq!(d.hi, 2, "{}", d.outcome);
}

#[test]
fn a_false_trace_challenge_loses_its_bond() {
    let p = program(5);
    let honest = simulate(&p, None);
    let nodes = effective_nodes(&p, &honest, 2);
    let liar = simulate(&p, Some((2, nodes[0])));
    let mut w = World::new();
    let id = w.task(&p, &honest);
    let d = play_trace(
        &mut w,
        id,
        &p,
        &honest,
        Behaviour::Honest,
        &liar,
        Behaviour::Honest,
    );
    assert!(d.outcome.starts_with("solver wins"), "{}", d.outcome);
    // And a trace root equal to the committed one is refused outright.
    let m = pb::MsgOpenDispute {
        challenger: w.challenger.to_string(),
        task_id: id,
        bond: Some(proto::base::v1::Coin {
            denom: "uvtr".into(),
            amount: "200000".into(),
        }),
        trace_root: merkle::root(&honest.h).to_vec(),
        ..Default::default()
    };
    assert!(w.send(&m).unwrap_err().contains("nothing to dispute"));
}

/// The economics of verifying at the default level, simulated on chain over
/// 1,000 tasks (5% of them cheated on): a verifier that attests only with
/// evidence it cannot get without re-executing, and a lazy one that does not
/// re-execute. Prints each party's income; the lazy one must lose money and
/// the honest ones earn it. `VT_ECONOMICS_TASKS` sets the number of tasks.
#[test]
fn a_lazy_verifier_loses_money_and_an_honest_one_earns_it() {
    let n: u64 = std::env::var("VT_ECONOMICS_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // A re-execution's cost in uvtr (the operator's compute): an assumption
    // of the simulation, well below the fee share it earns.
    const COMPUTE_COST: u128 = 20_000;
    let p = program(3);
    let honest = simulate(&p, None);
    let cheats: Vec<Trace> = effective_nodes(&p, &honest, 2)
        .into_iter()
        .take(5)
        .map(|j| simulate(&p, Some((2, j))))
        .collect();
    let mut w = World::new();
    w.w.check_every = 50;
    let (hv, lazy) = (
        Address::module("honest-verifier"),
        Address::module("lazy-verifier"),
    );
    w.w.fund(&[hv, lazy], 100_000_000);
    let sub = w.submitter;
    w.w.fund(&[sub], 1_100_000 * n as u128);
    let sol = w.solver;
    w.w.fund(&[sol], 1_000_000 * n as u128);
    w.w.setup(|s, c| -> Result<(), String> {
        s.register(c, hv, Role::Verifier, Amount(1_000_000))
            .map_err(|e| e.to_string())?;
        s.register(c, lazy, Role::Verifier, Amount(1_000_000))
            .map_err(|e| e.to_string())
    });
    w.w.write(|s| {
        let tp = tasks::Params {
            challenge_window_blocks: 3,
            ..Default::default()
        };
        framework::StateWriteExt::put_proto(s, tasks::state_key::PARAMS.to_vec(), &tp.to_proto());
    });
    let wealth = |w: &World, a: &Address| -> i128 {
        let st = w.s().operator(a).unwrap().map_or(0, |o| o.stake.0);
        (w.s().balance(a).unwrap().0 + st) as i128
    };
    let parties = [
        ("honest verifier", hv),
        ("lazy verifier", lazy),
        ("whistleblower", w.challenger),
    ];
    let before: Vec<i128> = parties.iter().map(|(_, a)| wealth(&w, a)).collect();
    let mut cost = [0i128; 3];
    let mut draws = [0u64; 3];
    let (mut cheated, mut caught, mut cheats_paid) = (0u64, 0u64, 0u64);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let cheat = (rng >> 33).is_multiple_of(20);
        let trace = if cheat {
            &cheats[(i % 5) as usize]
        } else {
            &honest
        };
        cheated += cheat as u64;
        // The cheater tops its stake up after each slash (it pays for it).
        if w.s().operator(&sol).unwrap().unwrap().stake < Amount(2_000_000) {
            w.w.setup(|s, _| s.add_stake(sol, Amount(5_000_000)));
        }
        let id = w.task(&p, trace);
        w.end_block();
        let t = w.s().task(id).unwrap();
        let v = t.verifiers[0];
        let k = parties.iter().position(|(_, a)| *a == v).unwrap();
        draws[k] += 1;
        // The whistleblower re-executes every task; the honest verifier the
        // tasks it is drawn for; the lazy one nothing. Neither is served the
        // solver's hashes at this level, so evidence needs a re-execution.
        cost[2] += COMPUTE_COST as i128;
        if v == hv {
            cost[0] += COMPUTE_COST as i128;
        }
        if cheat {
            let d = play_trace(
                &mut w,
                id,
                &p,
                trace,
                Behaviour::Honest,
                &honest,
                Behaviour::Honest,
            );
            caught += d.outcome.starts_with("challenger wins") as u64;
        } else if v != lazy {
            let m = tasks::msg::MsgAttest::from_trace(
                v,
                id,
                t.level,
                &t.selection_seed.unwrap(),
                &honest.h,
                p.steps,
            );
            w.w.tx(tasks::TasksMsg::Attest(m)).unwrap();
        } else {
            // The lazy verifier's best move: an attestation without evidence
            // is refused, so it cannot earn the fee.
            let m = tasks::msg::MsgAttest {
                verifier: lazy,
                task_id: id,
                steps_checked: p.steps,
                evidence: vec![],
            };
            assert!(w.w.tx(tasks::TasksMsg::Attest(m)).is_err());
        }
        w.w.advance(6);
        let t = w.s().task(id).unwrap();
        assert!(
            matches!(t.status, tasks::Status::Finalized | tasks::Status::Failed),
            "task {id}: {:?}",
            t.status
        );
        cheats_paid += (cheat && t.status == tasks::Status::Finalized) as u64;
    }
    runtime::check_invariants(w.s()).unwrap();
    eprintln!("{n} tasks, {cheated} cheated on: {caught} caught, {cheats_paid} paid");
    let mut income = [0i128; 3];
    for (k, (name, a)) in parties.iter().enumerate() {
        income[k] = wealth(&w, a) - before[k] - cost[k];
        eprintln!(
            "{name}: drawn {} times, income {} uvtr ({} per task drawn; compute costed at {COMPUTE_COST} per re-execution)",
            draws[k],
            income[k],
            income[k] / draws[k].max(1) as i128
        );
    }
    assert_eq!(cheats_paid, 0);
    assert!(income[1] < 0, "lazy income {}", income[1]);
    assert!(income[0] > 0, "honest income {}", income[0]);
    assert!(income[2] > 0, "whistleblower income {}", income[2]);
}

#[derive(Clone, Copy, Debug)]
enum Verifier {
    Honest,
    Lazy,
    Silent,
}

fn verifier_strategy() -> impl Strategy<Value = Verifier> {
    prop_oneof![
        Just(Verifier::Honest),
        Just(Verifier::Lazy),
        Just(Verifier::Silent)
    ]
}

/// Opens a trace-mode dispute on task `id` from `who`, holding `chal`'s run.
fn open_trace(w: &mut World, who: Address, id: u64, chal: &Trace) -> Option<u64> {
    let m = pb::MsgOpenDispute {
        challenger: who.to_string(),
        task_id: id,
        bond: Some(proto::base::v1::Coin {
            denom: "uvtr".into(),
            amount: "200000".into(),
        }),
        trace_root: merkle::root(&chal.h).to_vec(),
        ..Default::default()
    };
    w.send(&m).ok()?;
    Some(w.s().get_u64(verde::state_key::NEXT_ID).unwrap().unwrap() - 1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Any mix of an honest, cheating or silent solver, honest, lazy or
    /// silent drawn verifiers, a silent sybil dispute and an honest
    /// whistleblower: no cheat is paid, no honest party loses stake, laziness
    /// and silence cost the drawn verifier, and supply and escrow hold after
    /// every block (checked inside the test world).
    #[test]
    fn no_mix_of_parties_pays_a_cheat_or_slashes_an_honest_one(
        steps in 2u64..6,
        fault_step in 1u64..6,
        pick in 0usize..1000,
        solver_kind in 0u8..3,
        a in verifier_strategy(),
        b in verifier_strategy(),
        sybil: bool,
    ) {
        let fault_step = fault_step.min(steps);
        let p = program(steps);
        let honest = simulate(&p, None);
        let nodes = effective_nodes(&p, &honest, fault_step);
        let cheat = solver_kind == 1;
        let trace = if cheat {
            simulate(&p, Some((fault_step, nodes[pick % nodes.len()])))
        } else {
            simulate(&p, None)
        };
        let sb = if solver_kind == 2 { Behaviour::Silent } else { Behaviour::Honest };
        let mut w = World::new();
        let (va, vb, syb) = (Address::module("va"), Address::module("vb"), Address::module("sybil"));
        w.w.fund(&[va, vb, syb], 10_000_000);
        w.w.setup(|s, c| -> Result<(), String> {
            s.register(c, va, Role::Verifier, Amount(1_000_000)).map_err(|e| e.to_string())?;
            s.register(c, vb, Role::Verifier, Amount(1_000_000)).map_err(|e| e.to_string())
        });
        w.w.write(|s| {
            let tp = tasks::Params {
                challenge_window_blocks: 40,
                verifiers_per_task: 2,
                ..Default::default()
            };
            framework::StateWriteExt::put_proto(s, tasks::state_key::PARAMS.to_vec(), &tp.to_proto());
            // The test plays the disputes one after another (daemons play
            // them side by side in the same blocks): clocks long enough for that.
            let vp = verde::Params { move_blocks: 1_000, max_chunk_bytes: 4096, ..Default::default() };
            framework::StateWriteExt::put_proto(s, verde::state_key::PARAMS.to_vec(), &vp.to_proto());
        });
        let wb = w.challenger; // the whistleblower: honest, re-executes everything
        let kinds = [(va, a), (vb, b), (wb, Verifier::Honest)];
        let stake = |w: &World, x: &Address| w.s().operator(x).unwrap().map_or(Amount::ZERO, |o| o.stake);
        let before: Vec<Amount> = kinds.iter().map(|(x, _)| stake(&w, x)).collect();
        let solver_before = stake(&w, &w.solver);
        let id = w.task(&p, &trace);
        let mut disputes: Vec<(u64, Behaviour)> = Vec::new();
        if sybil {
            let fin = *trace.h.last().unwrap();
            w.open(syb, id, 100_000, (0, &honest.h[0], None), (steps, &fin, None)).unwrap();
            disputes.push((w.s().get_u64(verde::state_key::NEXT_ID).unwrap().unwrap() - 1, Behaviour::Silent));
        }
        w.end_block();
        let t = w.s().task(id).unwrap();
        let drawn: Vec<(Address, Verifier)> = kinds.iter().filter(|(x, _)| t.verifiers.contains(x)).copied().collect();
        let mut challenged = false;
        for (v, kind) in &drawn {
            match kind {
                Verifier::Honest if cheat => {
                    if let Some(d) = open_trace(&mut w, *v, id, &honest) {
                        disputes.push((d, Behaviour::Honest));
                        challenged |= *v == wb;
                    }
                }
                Verifier::Honest => {
                    let m = tasks::msg::MsgAttest::from_trace(
                        *v,
                        id,
                        t.level,
                        &t.selection_seed.unwrap(),
                        &trace.h,
                        steps,
                    );
                    w.w.tx(tasks::TasksMsg::Attest(m)).unwrap();
                }
                // Nothing to attest with at the full level (the solver serves
                // no hashes): an evidence-less attestation would be refused.
                Verifier::Lazy | Verifier::Silent => {}
            }
        }
        // The whistleblower disputes a cheat whatever the draw.
        if cheat && !challenged {
            if let Some(d) = open_trace(&mut w, wb, id, &honest) {
                disputes.push((d, Behaviour::Honest));
            }
        }
        // Play every open dispute until all have ended.
        for _ in 0..5_000 {
            let mut moved = false;
            let mut open = false;
            for &(did, cb) in &disputes {
                let (done, m) = step(&mut w, did, &p, &trace, sb, &honest, cb);
                moved |= m;
                open |= done.is_none();
            }
            if !open {
                break;
            }
            if !moved {
                w.end_block();
            }
        }
        for _ in 0..1_200 {
            if w.s().task(id).unwrap().status != tasks::Status::Committed {
                break;
            }
            w.end_block();
        }
        let t = w.s().task(id).unwrap();
        prop_assert!(t.status != tasks::Status::Committed, "task never ended");
        if cheat {
            prop_assert_eq!(t.status, tasks::Status::Failed, "{}", t.note);
        }
        for (k, (x, kind)) in kinds.iter().enumerate() {
            let after = stake(&w, x);
            match kind {
                Verifier::Honest => prop_assert!(after >= before[k], "honest verifier {k} lost stake: {}", t.note),
                _ if t.status == tasks::Status::Finalized && t.verifiers.contains(x) => {
                    prop_assert!(after < before[k], "a drawn {kind:?} verifier was not slashed")
                }
                _ => {}
            }
        }
        if solver_kind == 0 {
            prop_assert_eq!(t.status, tasks::Status::Finalized, "{}", t.note);
            prop_assert!(stake(&w, &w.solver) >= solver_before, "the honest solver lost stake");
        }
    }
}

// ---- Inside one node: nodes too costly for the referee whole (issue 13 item 5) ----

/// Referee bounds lowered to 65,536 FLOPs and 32 KiB of proofs per dispute, so that
/// mlp-digits at batch 256 has nodes of every tile rule too costly to recompute whole
/// (the path a 124M-parameter model takes at the default bounds).
fn inner_params() -> tasks::Params {
    tasks::Params {
        challenge_window_blocks: 200,
        max_referee_flops: 1 << 16,
        max_reveal_bytes: 32 << 10,
        ..Default::default()
    }
}

fn inner_program(steps: u64) -> Program {
    let mut p = program(steps);
    p.batch_size = 256;
    p
}

/// (node, element) cheats inside nodes of each tile rule, and their op kinds.
const INNER_CASES: [(usize, usize, &str); 5] = [
    (1, 777, "mat_mul"),        // fold over K = 64 (partial sums)
    (2, 5000, "add_bias"),      // one row
    (12, 37, "sum_axis0"),      // fold over 256 rows (R3 lanes)
    (13, 2049, "mat_mul"),      // fold over K = 256, both operands strided
    (22, 4000, "adamw_update"), // one element
];

/// The referee's work for the dispute's last tile, and the bytes put on chain for it.
/// A cheat in node `j` at step 2 that changes `h_2`: element `e` or the next one
/// that does (a flipped element behind a ReLU, say, changes nothing).
fn inner_cheat(p: &Program, honest: &Trace, j: usize, e: usize) -> (Trace, usize) {
    for e in e..e + 64 {
        let t = simulate_at(p, Some((2, j, e | 1 << 32)));
        if t.h[2] != honest.h[2] {
            return (t, e);
        }
    }
    panic!("no cheat in node {j} near element {e} reaches the state")
}

fn last_tile_cost(p: &Program, d: &verde::Dispute) -> train::TileCost {
    let node = p.graph().unwrap().nodes[d.node as usize].clone();
    let shapes: Vec<&[usize]> = node.input_shapes.iter().map(Vec::as_slice).collect();
    let k = if repops::tile::fold(&node.op, &shapes).is_some() {
        d.inner.fold_lo as usize..d.inner.fold_hi as usize
    } else {
        0..0
    };
    let t = repops::tile::element_tile(&node.op, &shapes, d.inner.element as usize, k).unwrap();
    node.tile_cost(&t).unwrap()
}

#[test]
fn a_cheat_inside_a_node_too_costly_whole_is_caught_in_one_tile() {
    let p = inner_program(3);
    let tp = inner_params();
    let graph = p.graph().unwrap();
    let m = graph.nodes.len() as u64;
    let honest = simulate(&p, None);
    for (j, e, kind) in INNER_CASES {
        let node = &graph.nodes[j];
        assert_eq!(node.op.name(), kind);
        assert!(
            !node.fits(tp.max_referee_flops, tp.max_reveal_bytes),
            "node {j} fits whole"
        );
        let n: usize = node.shape.iter().product();
        let (faulty, e) = inner_cheat(&p, &honest, j, e);
        for (sb, liar_solver) in [
            (Behaviour::Honest, true),
            (Behaviour::LiesInFold, true),
            (Behaviour::Honest, false),
        ] {
            let (solver, chal) = if liar_solver {
                (&faulty, &honest)
            } else {
                (&honest, &faulty)
            };
            let mut w = World::with(tp.clone());
            let id = w.task(&p, solver);
            let d = play(&mut w, id, &p, solver, sb, chal, Behaviour::Honest);
            let who = if liar_solver { "challenger" } else { "solver" };
            assert!(
                d.outcome.starts_with(&format!("{who} wins")),
                "node {j} {sb:?} liar solver {liar_solver}: {}",
                d.outcome
            );
            assert_eq!((d.hi, d.node), (2, j as u64), "{}", d.outcome);
            assert_eq!(d.inner.element, (e % n) as u64, "the cheated element");
            assert!(
                d.transcript
                    .iter()
                    .any(|mv| mv.action.starts_with("prove input")),
                "judged from proven slices"
            );
            let c = last_tile_cost(&p, &d);
            assert!(
                c.fits(
                    tp.max_referee_flops,
                    tp.max_reveal_bytes,
                    tp.max_chunk_bytes
                ),
                "{c:?}"
            );
            let out_levels = 64
                - repops::slice::message_len(&node.shape)
                    .unwrap()
                    .div_ceil(1024)
                    .leading_zeros();
            let fold_levels = repops::tile::fold(
                &node.op,
                &node
                    .input_shapes
                    .iter()
                    .map(Vec::as_slice)
                    .collect::<Vec<_>>(),
            )
            .map_or(0, |f| ceil_log2(f.len as u64) + 1);
            assert!(
                d.rounds <= ceil_log2(p.steps) + ceil_log2(m) + 4 + out_levels + fold_levels,
                "{} rounds",
                d.rounds
            );
            eprintln!(
                "node {j} ({kind}) solver {sb:?}, liar solver {liar_solver}: element {}, {} rounds, tile {} FLOPs, {} proof bytes: {}",
                d.inner.element,
                d.rounds,
                c.flops,
                c.input_bytes.iter().sum::<u64>(),
                d.outcome
            );
            if !liar_solver {
                // An honest solver inside a node is not slashed.
                assert_eq!(d.slashed, Amount::ZERO);
            }
        }
    }
}

#[test]
fn a_silent_party_loses_inside_a_node_too() {
    let p = inner_program(3);
    let honest = simulate(&p, None);
    let (cheat, _) = inner_cheat(&p, &honest, 13, 2049);
    for phase in [Phase::OutputDescent, Phase::FoldReveal, Phase::TileInputs] {
        let mut w = World::with(inner_params());
        let id = w.task(&p, &cheat);
        let d = play(
            &mut w,
            id,
            &p,
            &cheat,
            Behaviour::SilentAt(phase),
            &honest,
            Behaviour::Honest,
        );
        assert!(
            d.outcome.starts_with("challenger wins"),
            "{phase:?}: {}",
            d.outcome
        );
        assert!(d.outcome.contains("missed"), "{phase:?}: {}", d.outcome);
    }
    for phase in [Phase::OutputDescent, Phase::FoldRespond] {
        let mut w = World::with(inner_params());
        let id = w.task(&p, &cheat);
        let d = play(
            &mut w,
            id,
            &p,
            &cheat,
            Behaviour::Honest,
            &honest,
            Behaviour::SilentAt(phase),
        );
        assert!(
            d.outcome.starts_with("solver wins"),
            "{phase:?}: {}",
            d.outcome
        );
    }
}

/// Plays both parties honestly until dispute `did` reaches `phase` (with the party
/// moves of that phase still owed).
fn drive_to(
    w: &mut World,
    did: u64,
    p: &Program,
    solver: &Trace,
    chal: &Trace,
    phase: Phase,
) -> verde::Dispute {
    for _ in 0..1000 {
        let d = w.s().dispute(did).unwrap();
        if d.phase == phase {
            return d;
        }
        assert_ne!(
            d.phase,
            Phase::Resolved,
            "ended before {phase:?}: {}",
            d.outcome
        );
        step(
            w,
            did,
            p,
            solver,
            Behaviour::Honest,
            chal,
            Behaviour::Honest,
        );
    }
    panic!("never reached {phase:?}")
}

/// Sends `m` and checks that it is refused and leaves dispute `did` as it was.
fn refused<M: prost::Message>(w: &mut World, did: u64, m: &M, why: &str)
where
    for<'a> VerdeMsg: TryFrom<&'a M, Error = verde::VerdeError>,
{
    let before = w.s().dispute(did).unwrap();
    let e = w.send(m).expect_err(why);
    assert_eq!(
        w.s().dispute(did).unwrap(),
        before,
        "{why}: changed the dispute ({e})"
    );
    eprintln!("refused, {why}: {e}");
}

#[test]
fn bad_moves_inside_a_node_are_rejected_and_change_nothing() {
    let p = inner_program(3);
    let honest = simulate(&p, None);
    let (cheat, _) = inner_cheat(&p, &honest, 13, 2049);
    let mut w = World::with(inner_params());
    let id = w.task(&p, &cheat);
    let (so, ch, stranger) = (w.solver, w.challenger, w.submitter);
    let sh = cheat.h.clone();
    w.open(
        ch,
        id,
        200_000,
        (0, &sh[0], pproof(&sh, 0)),
        (3, &sh[3], pproof(&sh, 3)),
    )
    .unwrap();
    let did = w.s().get_u64(verde::state_key::NEXT_ID).unwrap().unwrap() - 1;
    let d = drive_to(&mut w, did, &p, &cheat, &honest, Phase::OutputDescent);
    let out = &honest.outputs[2][13];
    let good = agent::dispute::output_reveal(&d.to_proto(), &ch.to_string(), out).unwrap();
    let mut m = good.clone();
    m.left[0] ^= 1;
    refused(&mut w, did, &m, "children that do not hash to the subtree");
    let mut m = good.clone();
    m.sender = stranger.to_string();
    refused(&mut w, did, &m, "a stranger's reveal");
    let mut m = good.clone();
    (m.left, m.right) = (vec![], vec![]);
    m.slice = Some(agent::dispute::slice_to_pb(
        &repops::slice::prove(out, 0..10).unwrap(),
    ));
    refused(&mut w, did, &m, "a slice above a leaf");
    // Down to the leaf: a slice of another tensor, then of the right one at other elements.
    loop {
        let d = w.s().dispute(did).unwrap();
        if d.phase == Phase::OutputDescent && d.inner.out_len <= 1024 {
            break;
        }
        step(
            &mut w,
            did,
            &p,
            &cheat,
            Behaviour::Honest,
            &honest,
            Behaviour::Honest,
        );
    }
    let d = w.s().dispute(did).unwrap();
    let good = agent::dispute::output_reveal(&d.to_proto(), &ch.to_string(), out).unwrap();
    let mut m = good.clone();
    m.slice = agent::dispute::output_reveal(&d.to_proto(), &ch.to_string(), &honest.outputs[2][1])
        .unwrap()
        .slice;
    refused(&mut w, did, &m, "a slice of another tensor");
    let mut m = good.clone();
    let mut sl = m.slice.clone().unwrap();
    if let Some(b) = sl.chunks.last_mut() {
        *b ^= 1;
    }
    m.slice = Some(sl);
    refused(&mut w, did, &m, "a changed byte in the chunk");
    // The fold: a state of the wrong width, out of turn.
    let d = drive_to(&mut w, did, &p, &cheat, &honest, Phase::FoldReveal);
    refused(
        &mut w,
        did,
        &pb::MsgRevealPartial {
            solver: so.to_string(),
            dispute_id: did,
            acc: vec![0; 8],
        },
        "a fold state of two floats",
    );
    refused(
        &mut w,
        did,
        &pb::MsgRevealPartial {
            solver: ch.to_string(),
            dispute_id: did,
            acc: vec![0; 4],
        },
        "the challenger revealing",
    );
    refused(
        &mut w,
        did,
        &pb::MsgRespond {
            challenger: ch.to_string(),
            dispute_id: did,
            agree: true,
        },
        "an answer before the reveal",
    );
    let _ = d;
    // The tile: a slice of other elements, a tensor hash not under the commitment.
    let d = drive_to(&mut w, did, &p, &cheat, &honest, Phase::TileInputs);
    let good = tile_moves(&p, &cheat, &d, so);
    assert_eq!(good.len(), 2, "both inputs of a product");
    let mut m = good[0].clone();
    let (node, ins) = node_inputs(&p, &cheat, &d);
    let other = repops::slice::prove(&ins[0], 0..3).unwrap();
    m.slice = Some(agent::dispute::slice_to_pb(&other));
    refused(&mut w, did, &m, "a slice of other elements");
    let mut m = good[1].clone();
    m.tensor_hash = repops::tensor_hash(&ins[0]).to_vec();
    refused(
        &mut w,
        did,
        &m,
        "a tensor hash its proof does not commit to",
    );
    let mut m = good[0].clone();
    m.input = node.inputs.len() as u32;
    refused(&mut w, did, &m, "an input the node does not have");
    // Honest play still ends it: the cheat is caught.
    let d = drive(
        &mut w,
        did,
        &p,
        &cheat,
        Behaviour::Honest,
        &honest,
        Behaviour::Honest,
    );
    assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
}

#[test]
fn submission_needs_every_costly_node_to_have_a_tile_that_fits() {
    // At the lowered bounds mlp-digits is accepted: every node over them has tiles.
    let p = inner_program(3);
    let mut w = World::with(inner_params());
    w.submit(serde_json::to_vec(&p).unwrap(), 100_000, None)
        .unwrap();
    // A node without tiles over the bounds is refused, naming it: tiny-lm's layout
    // ops (131 KB each) at 64 KiB.
    let mut w = World::with(tasks::Params {
        max_reveal_bytes: 64 << 10,
        ..inner_params()
    });
    let lm = Program::builtin("tiny-lm").unwrap();
    let e = w
        .submit(serde_json::to_vec(&lm).unwrap(), 100_000, None)
        .unwrap_err();
    let first = lm
        .nodes()
        .unwrap()
        .into_iter()
        .find(|n| !n.fits(1 << 16, 64 << 10) && n.min_tile_cost().is_none())
        .unwrap();
    assert!(
        e.contains(&format!("node {} ({})", first.index, first.label)),
        "{e}"
    );
    // Bounds below one tile's proof refuse even tiled nodes.
    let mut w = World::with(tasks::Params {
        max_reveal_bytes: 4 << 10,
        ..inner_params()
    });
    let mut small = inner_program(3);
    small.batch_size = 32; // its rows (2 KiB) fit
    let e = w
        .submit(serde_json::to_vec(&small).unwrap(), 100_000, None)
        .unwrap_err();
    assert!(e.contains("smallest tile"), "{e}");
}

/// The 124M-parameter GPT-2-shaped program (`train::program::gpt2_small_on_random_tokens`,
/// 1 × 128 tokens) on a chain whose referee recomputes at most 2^24 FLOPs and receives
/// at most 1 MiB per dispute: it trains 2 steps, a cheat in its largest product (the
/// tied-embedding logits, 128×768 · 768×50257: 9.9e9 FLOPs over 155 MB of inputs) at step
/// 2 is localised to it and judged inside it, and the referee's work and the bytes of
/// every dispute message are printed. Minutes and ~10 GB:
/// `VT_LONG=1 cargo test --release -p verde --test game gpt2 -- --nocapture`.
#[test]
fn gpt2_small_a_cheat_in_its_largest_product_costs_the_referee_2_24_flops_and_1_mib() {
    if std::env::var_os("VT_LONG").is_none() {
        eprintln!("skipped: set VT_LONG=1 (minutes, ~10 GB)");
        return;
    }
    let (mut p, ds) = train::program::gpt2_small_on_random_tokens(128, 12).unwrap();
    p.dataset.train_rows = ds.rows() - 1;
    let _ = EXTRA.set(ds);
    let graph = p.graph().unwrap();
    let j = (0..graph.nodes.len())
        .rev()
        .max_by_key(|&k| graph.nodes[k].cost().flops)
        .unwrap();
    let tp = tasks::Params {
        challenge_window_blocks: 200,
        max_referee_flops: 1 << 24,
        max_reveal_bytes: 1 << 20,
        max_state_bytes: 4 << 30,
        max_program_bytes: 1 << 20,
        ..Default::default()
    };
    assert!(!graph.nodes[j].fits(tp.max_referee_flops, tp.max_reveal_bytes));
    let t0 = std::time::Instant::now();
    let honest = simulate_keep(&p, None, Some(2));
    let cheat = simulate_keep(&p, Some((2, j, 3_216_465 | 1 << 32)), Some(2));
    assert_ne!(honest.h[2], cheat.h[2], "the cheat reaches the state");
    let trained = t0.elapsed();
    let mut w = World::with(tp.clone());
    let id = w.task(&p, &cheat);
    let t1 = std::time::Instant::now();
    let d = play(
        &mut w,
        id,
        &p,
        &cheat,
        Behaviour::Honest,
        &honest,
        Behaviour::Honest,
    );
    assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
    assert_eq!((d.hi, d.node), (2, j as u64), "{}", d.outcome);
    let c = last_tile_cost(&p, &d);
    eprintln!(
        "gpt2-small: node {j} ({}, {:.2e} FLOPs whole), two traces trained in {:.0} s, dispute played in {:.1} s: {} rounds, element {}, fold ({}, {}]; the referee's tile {} FLOPs, {} bytes of slice proofs; every dispute message {} bytes; {}",
        graph.nodes[j].op.name(),
        graph.nodes[j].cost().flops as f64,
        trained.as_secs_f64(),
        t1.elapsed().as_secs_f64(),
        d.rounds,
        d.inner.element,
        d.inner.fold_lo,
        d.inner.fold_hi,
        c.flops,
        c.input_bytes.iter().sum::<u64>(),
        w.sent,
        d.outcome
    );
    assert!(c.flops <= 1 << 24, "{c:?}");
    assert!(w.sent <= 1 << 20, "{} bytes on chain", w.sent);
}
