//! Referee work per dispute, next to the cost of one full training step, for
//! every builtin program (the digits MLP, the small transformer, and the gated and
//! convolutional graph programs), and for the 124M-parameter GPT-2-shaped program
//! (its costliest node, and how many nodes exceed the chain's bounds). For every node j
//! of one step it
//! times what the chain does at adjudication (rebuild the inputs, run node j
//! with the CPU reference, hash the output) and counts the bytes the solver
//! must put on chain for it (non-batch inputs). The baseline, measured in the
//! same run, is one full training step.
//!
//! `cargo bench -p verde --bench referee`
use std::collections::BTreeMap;
use std::time::Instant;
use train::{Input, Program, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for name in ["mlp-digits", "tiny-lm", "gated-digits", "cnn-digits"] {
        let p = Program::builtin(name)?;
        let mut tr = Trainer::builtin(name)?;
        let state0 = tr.state().clone();
        let batch = tr.batch(1)?;
        // Baseline: one full step (the median of 5).
        let mut steps = Vec::new();
        for t in 1..=5 {
            let s = Instant::now();
            tr.step(t)?;
            steps.push(s.elapsed().as_secs_f64());
        }
        steps.sort_by(f64::total_cmp);
        let step_s = steps[2];
        // One step's node outputs, to feed each node its real inputs.
        let graph = p.graph()?;
        let outs = outputs(&graph.nodes, &state0, &batch)?;
        let (mut worst_t, mut worst_b, mut sum_t) = (0f64, 0u64, 0f64);
        let mut worst_node = String::new();
        for n in &graph.nodes {
            let ins = inputs(n, &state0, &batch, &outs);
            let on_chain: u64 = n
                .inputs
                .iter()
                .zip(&n.input_shapes)
                .filter(|(i, _)| !matches!(i, Input::Batch(_)))
                .map(|(_, s)| 4 * s.iter().product::<usize>() as u64)
                .sum();
            let s = Instant::now();
            let o = train::execute_node(n, &ins)?;
            let _h = repops::tensor_hash(&o);
            let dt = s.elapsed().as_secs_f64();
            sum_t += dt;
            if dt > worst_t {
                worst_t = dt;
                worst_node = format!("{} ({})", n.index, n.op.name());
            }
            worst_b = worst_b.max(on_chain);
        }
        let m = graph.nodes.len() as u64;
        let t = p.steps;
        let rounds = ceil_log2(t) + ceil_log2(m) + 4;
        // Hashes and proofs of the game: per bisection round a hash and a
        // proof (~log2(T+1) siblings), per descent level four hashes.
        let game_bytes = u64::from(ceil_log2(t)) * (32 + 32 * u64::from(ceil_log2(t + 1)))
            + u64::from(ceil_log2(m)) * 4 * 32
            + 2 * 32;
        println!("{name}: T = {t} steps, M = {m} nodes per step, at most {rounds} rounds");
        println!(
            "  one full training step (baseline): {:.3} ms",
            step_s * 1e3
        );
        println!(
            "  referee, worst node {worst_node}: {:.3} ms = {:.2}% of a step; mean node {:.3} ms",
            worst_t * 1e3,
            100.0 * worst_t / step_s,
            sum_t / m as f64 * 1e3
        );
        println!("  bytes on chain: game hashes+proofs ~{game_bytes} B + worst node's inputs {worst_b} B");
    }
    gpt2_small()?;
    Ok(())
}

/// The 124M-parameter GPT-2-shaped program
/// (`train::program::gpt2_small_on_random_tokens`, 1 x 128 tokens): one full step as the baseline, then the referee's work for its costliest
/// node by the cost model and by the clock, its inputs' bytes, and how many of its
/// nodes exceed the chain's default per-node bounds (what bisection inside one
/// operator, issue 13 item 5, is for).
fn gpt2_small() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = 128;
    let (p, dataset) = train::program::gpt2_small_on_random_tokens(ctx, 12)?;
    let graph = p.graph()?;
    let mut tr = Trainer::new(p.clone(), dataset)?;
    let state0 = tr.state().clone();
    let batch = tr.batch(1)?;
    let s = Instant::now();
    tr.step(1)?;
    let step_s = s.elapsed().as_secs_f64();
    let params = tasks::Params::default();
    let costs: Vec<train::Cost> = graph.nodes.iter().map(|n| n.cost()).collect();
    let over_flops = costs
        .iter()
        .filter(|c| c.flops > params.max_referee_flops)
        .count();
    let over_bytes = costs
        .iter()
        .filter(|c| c.input_bytes > params.max_reveal_bytes)
        .count();
    // The first of the costliest.
    let worst = (0..costs.len())
        .rev()
        .max_by_key(|&j| costs[j].flops)
        .unwrap_or(0);
    // Only the costliest node's inputs are computed: every node before it once.
    let outs = outputs(&graph.nodes[..worst], &state0, &batch)?;
    let n = &graph.nodes[worst];
    let ins = inputs(n, &state0, &batch, &outs);
    let s = Instant::now();
    let o = train::execute_node(n, &ins)?;
    let _h = repops::tensor_hash(&o);
    let node_s = s.elapsed().as_secs_f64();
    let c = &costs[worst];
    println!(
        "gpt2-small: 124,439,808 parameters, 1 x {ctx} tokens, M = {} nodes per step",
        graph.nodes.len()
    );
    println!("  one full training step (baseline): {:.2} s", step_s);
    println!(
        "  referee, costliest node {} ({}): {:.2e} FLOPs, {:.0} MB of inputs, {:.2} s = {:.1}% of a step",
        n.index,
        n.op.name(),
        c.flops as f64,
        c.input_bytes as f64 / 1e6,
        node_s,
        100.0 * node_s / step_s
    );
    println!(
        "  nodes over the chain's default bounds: {over_flops} over {:.2e} FLOPs, {over_bytes} over {} MiB of inputs",
        params.max_referee_flops as f64,
        params.max_reveal_bytes >> 20
    );
    inside(&graph.nodes, n, &ins, &o)
}

/// The dispute inside the costliest node at bounds of 2^24 FLOPs and 1 MiB (256 KiB
/// per proof): the output descent's depth and leaf proof, the fold bisection's
/// rounds, and the tile the referee recomputes from proven slices, timed (slice proof
/// checks and the tile) and counted (bytes on chain), for an element in the middle
/// of the output. Also: how many of the 124M program's nodes go over those bounds, and
/// how many of them can be disputed inside (their smallest tile fits).
fn inside(
    nodes: &[train::Node],
    n: &train::Node,
    ins: &[&repops::Tensor],
    out: &repops::Tensor,
) -> Result<(), Box<dyn std::error::Error>> {
    use repops::{slice, tile};
    let (flops, bytes, proof) = (1u64 << 24, 1u64 << 20, 256u64 << 10);
    let over: Vec<&train::Node> = nodes.iter().filter(|m| !m.fits(flops, bytes)).collect();
    let mut missing = BTreeMap::new();
    for m in &over {
        if !m
            .min_tile_cost()
            .is_some_and(|c| c.fits(flops, bytes, proof))
        {
            *missing.entry(m.op.name()).or_insert(0) += 1;
        }
    }
    println!(
        "  at 2^24 FLOPs and 1 MiB per dispute: {} of {} nodes go inside; without tiles yet: {missing:?}",
        over.len(),
        nodes.len()
    );
    let shapes: Vec<&[usize]> = n.input_shapes.iter().map(Vec::as_slice).collect();
    let e = out.len() / 2 + 17;
    let total = slice::message_len(out.shape())?;
    let levels = 64 - total.div_ceil(1024).leading_zeros();
    let elems = slice::chunk_elements(out.shape(), (4 * e as u64 + 34) / 1024 * 1024, 1024)?;
    let leaf = slice::prove(out, elems)?.len_bytes();
    // The fold bisection: halve until the tile fits.
    let fold = tile::fold(&n.op, &shapes).map_or(0, |f| f.len);
    let (mut lo, mut hi, mut rounds) = (0usize, fold, 0);
    let t = loop {
        let t = tile::element_tile(&n.op, &shapes, e, lo..hi)?;
        if hi - lo <= 1 || n.tile_cost(&t)?.fits(flops, bytes, proof) {
            break t;
        }
        (lo, hi) = (lo + (hi - lo) / 2, hi);
        rounds += 1;
    };
    let ranges = tile::input_ranges(&n.op, &shapes, &t)?;
    let proofs = ins
        .iter()
        .zip(&ranges)
        .map(|(x, r)| slice::prove_ranges(x, r))
        .collect::<repops::Result<Vec<_>>>()?;
    let hashes: Vec<_> = ins.iter().map(|x| repops::tensor_hash(x)).collect();
    let acc = tile::element_state_whole(&n.op, ins, e, lo)?;
    let s = Instant::now();
    let mut values = Vec::new();
    for (i, p) in proofs.iter().enumerate() {
        values.push(slice::verify_ranges(&hashes[i], shapes[i], &ranges[i], p)?.concat());
    }
    let st = tile::element_state(&n.op, &shapes, e, lo..hi, &values, Some(&acc))?;
    let ref_s = s.elapsed().as_secs_f64();
    assert_eq!(
        st[0].to_bits(),
        tile::element_state_whole(&n.op, ins, e, hi)?[0].to_bits()
    );
    let c = n.tile_cost(&t)?;
    let on_chain: usize = proofs.iter().map(|p| p.len_bytes()).sum();
    println!(
        "  inside node {} ({}), element {e}: {levels} output levels (leaf proof {leaf} B), {rounds} fold rounds to k in {lo}..{hi}; referee {} FLOPs, {on_chain} B of slice proofs (bound {} B), {:.3} ms to check them and run the tile",
        n.index,
        n.op.name(),
        c.flops,
        c.input_bytes.iter().sum::<u64>(),
        ref_s * 1e3
    );
    Ok(())
}

/// Node `n`'s input tensors: from the state, the batch, or earlier outputs.
fn inputs<'a>(
    n: &train::Node,
    state: &'a BTreeMap<String, repops::Tensor>,
    batch: &'a BTreeMap<String, repops::Tensor>,
    outs: &'a [repops::Tensor],
) -> Vec<&'a repops::Tensor> {
    n.inputs
        .iter()
        .map(|i| match i {
            Input::State(s) => &state[s],
            Input::Batch(b) => &batch[b],
            Input::Node(k) => &outs[*k],
        })
        .collect()
}

/// The outputs of `nodes` (a step's first nodes, in order) from `state` and `batch`.
fn outputs(
    nodes: &[train::Node],
    state: &BTreeMap<String, repops::Tensor>,
    batch: &BTreeMap<String, repops::Tensor>,
) -> Result<Vec<repops::Tensor>, train::TrainError> {
    let mut outs = Vec::with_capacity(nodes.len());
    for n in nodes {
        let o = train::execute_node(n, &inputs(n, state, batch, &outs))?;
        outs.push(o);
    }
    Ok(outs)
}

fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}
