//! Program JSON through parsing, validation and node expansion:
//! `tasks::validate_program`, what `MsgSubmitTask` runs on every validator.
//!
//! Input: first byte picks the dataset layout the submitter states (none, a
//! small or a huge ASCII one, a digits one); the rest is the program JSON.
//!
//! Invariants:
//! - validation enforces its budget: an accepted program's expansion has at
//!   most `max_nodes` nodes, its footprint (the bound computed from sizes
//!   alone, before anything is built, and what the fee charges for) bounds
//!   the real node count and the real state bytes, and every node's cost is
//!   within the referee bounds; libFuzzer's `-timeout` and `-rss_limit_mb`
//!   (set by `run.sh`) bound the time and memory of validating any input;
//! - the program's canonical JSON round-trips (parse → serialize → parse is
//!   the same program with the same hash), since its hash names it on chain.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::tasks::v1::DatasetInfo;

fn info(sel: u8) -> Option<DatasetInfo> {
    let i = |schema: &str, rows, row_bytes, chunk_rows| DatasetInfo {
        schema: schema.into(),
        rows,
        row_bytes,
        chunk_rows,
    };
    match sel % 4 {
        0 => None,
        1 => Some(i("ascii", 1000, 64, 16)),
        2 => Some(i("ascii", u64::MAX, 1 << 16, 1)),
        _ => Some(i("digits8x8", 5000, 65, 64)),
    }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let json = |name: &str| {
        serde_json::to_vec(&train::Program::builtin(name).expect("builtin")).expect("json")
    };
    let mut lm = vec![0u8];
    lm.extend(json("tiny-lm"));
    let mut mlp = vec![0u8];
    mlp.extend(json("mlp-digits"));
    vec![("tiny-lm", lm), ("mlp-digits", mlp)]
}

fn numel(s: &[usize]) -> u64 {
    s.iter().map(|&d| d as u64).product()
}

fuzz_target!(
    init: veritrain_fuzz::write_seeds_if_asked(seeds),
    |data: &[u8]| {
        let Some((&sel, json)) = data.split_first() else { return };
        let p = tasks::Params::default();
        let Ok(v) = tasks::validate_program(json, &p, info(sel).as_ref()) else { return };
        let prog = &v.program;
        let fp = prog.footprint();
        let graph = prog.graph().expect("an accepted program expands");
        let nodes = graph.nodes.len() as u64;
        assert_eq!(nodes, v.node_count);
        assert!(nodes <= p.max_nodes, "{nodes} nodes accepted");
        assert!(fp.nodes >= nodes, "footprint bounds {} nodes, expansion has {nodes}", fp.nodes);
        let state_bytes: u64 = graph.state_shapes.values().map(|s| 4 * numel(s)).sum();
        assert!(
            fp.state_bytes >= state_bytes,
            "footprint bounds {} state bytes, the state has {state_bytes}",
            fp.state_bytes
        );
        assert!(state_bytes <= p.max_state_bytes);
        let mut flops = 0u64;
        for n in &graph.nodes {
            let c = n.cost();
            // Whole, or inside it down to a tile that fits (verde's third level).
            assert!(
                n.fits(p.max_referee_flops, p.max_reveal_bytes)
                    || n.min_tile_cost().is_some_and(|t| {
                        t.fits(p.max_referee_flops, p.max_reveal_bytes, p.max_chunk_bytes)
                    })
            );
            flops = flops.saturating_add(c.flops);
        }
        assert_eq!(flops, v.step_flops);
        let canonical = serde_json::to_string(prog).expect("serialize");
        let back = train::Program::from_json(&canonical).expect("canonical JSON re-parses");
        assert_eq!(&back, prog, "canonical JSON does not round-trip");
        assert_eq!(back.hash(), prog.hash());
    }
);
