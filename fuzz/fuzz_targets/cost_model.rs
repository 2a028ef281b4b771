//! Differential: the program's cost model (`Node::cost`, and the footprint
//! bound the fee and the size checks use) against the work its expansion
//! really does.
//!
//! The input picks a small program (either family, any activation and
//! optimizer, small sizes); every node of one training step is then really
//! executed on the CPU reference with zero tensors of its declared input
//! shapes, in order, with each input taken from where the node says it comes
//! from (state, batch, an earlier node's output).
//!
//! Invariants:
//! - each node's declared input shapes are those of the tensors it really
//!   reads, and its declared output shape is what the op really returns;
//! - `cost().input_bytes` is exactly the bytes of the inputs it reads;
//! - `cost().flops` bounds the work: at least `2·m·n·k` for a (batched)
//!   matrix product, and at least one operation per element it reads or
//!   writes for every other op;
//! - the footprint bounds the real node count and state bytes, and
//!   `planned_peak_bytes` bounds the bytes the step really held.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repops::{Op, Tensor};
use std::collections::BTreeMap;
use train::program::{Activation, DatasetRef, Input, Model, Node, Optimizer};
use train::Program;
use veritrain_fuzz::Reader;

fn program(r: &mut Reader<'_>) -> Program {
    let model = if r.bool() {
        let hidden = (0..r.range(0, 3)).map(|_| r.range(1, 12)).collect();
        Model::Mlp {
            input: r.range(1, 12),
            hidden,
            classes: r.range(1, 12),
            activation: [Activation::Relu, Activation::Gelu, Activation::Tanh][r.range(0, 2)],
            input_scale: 0.5,
        }
    } else {
        let heads = r.range(1, 4);
        Model::Transformer {
            vocab: r.range(1, 16),
            ctx: r.range(1, 8),
            d_model: heads * r.range(1, 4),
            heads,
            layers: r.range(1, 2),
            d_mlp: r.range(1, 16),
            ln_eps: 1e-5,
        }
    };
    let optimizer = if r.bool() {
        Optimizer::Sgd {
            lr: 0.1,
            momentum: 0.5,
        }
    } else {
        Optimizer::Adamw {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    };
    Program {
        name: "fuzz".into(),
        model,
        loss: train::program::Loss::CrossEntropy,
        optimizer,
        batch_size: r.range(1, 6),
        steps: 2,
        seed: 1,
        dataset: DatasetRef {
            name: "fuzz".into(),
            root: [0; 32],
            train_rows: 1,
        },
        op_version: repops::OP_VERSION,
        init_state: None,
        inputs: Vec::new(),
        mode: Default::default(),
        record_loss: false,
        schedule: None,
        clip_norm: None,
        grad_accum: 1,
    }
}

fn numel(s: &[usize]) -> u64 {
    s.iter().map(|&d| d as u64).product()
}

/// A lower bound on the work of `n`, from the shapes it really reads.
fn work(n: &Node, ins: &[&Tensor], out: &Tensor) -> u64 {
    let dims = |t: &Tensor, tr: bool| {
        let s = t.shape();
        let r = s.len();
        if tr {
            (s[r - 1], s[r - 2])
        } else {
            (s[r - 2], s[r - 1])
        }
    };
    match n.op {
        Op::MatMul { ta, tb } | Op::BatchedMatMul { ta, tb } => {
            let (m, k) = dims(ins[0], ta);
            let (_, nn) = dims(ins[1], tb);
            let g = if ins[0].shape().len() == 3 {
                ins[0].shape()[0]
            } else {
                1
            };
            2 * (g * m * nn * k) as u64
        }
        _ => ins
            .iter()
            .map(|t| numel(t.shape()))
            .chain([numel(out.shape())])
            .max()
            .unwrap_or(0),
    }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("mlp", vec![1, 2, 0, 4, 0, 4, 0, 3, 0, 0, 0, 1, 0, 2, 0]),
        ("lm", vec![0; 24]),
    ]
}

fuzz_target!(
    init: veritrain_fuzz::write_seeds_if_asked(seeds),
    |data: &[u8]| {
        let mut r = Reader::new(data);
        let prog = program(&mut r);
        let Ok(graph) = prog.graph() else {
            panic!("a valid small program does not expand: {prog:?}");
        };
        let fp = prog.footprint();
        assert!(fp.nodes >= graph.nodes.len() as u64, "footprint nodes {} < {}", fp.nodes, graph.nodes.len());
        let state: BTreeMap<&String, Tensor> =
            graph.state_shapes.iter().map(|(k, s)| (k, Tensor::zeros(s))).collect();
        let state_bytes: u64 = state.values().map(|t| 4 * numel(t.shape())).sum();
        assert!(fp.state_bytes >= state_bytes, "footprint state bytes {} < {state_bytes}", fp.state_bytes);
        let batch: BTreeMap<&String, Tensor> =
            graph.batch_shapes.iter().map(|(k, s)| (k, Tensor::zeros(s))).collect();
        let mut outs: Vec<Tensor> = Vec::with_capacity(graph.nodes.len());
        let mut held = state_bytes.saturating_mul(2) + batch.values().map(|t| 4 * numel(t.shape())).sum::<u64>();
        for n in &graph.nodes {
            let ins: Vec<&Tensor> = n
                .inputs
                .iter()
                .map(|i| match i {
                    Input::State(s) => &state[s],
                    Input::Batch(b) => &batch[b],
                    Input::Node(j) => {
                        assert!(*j < n.index, "node {} reads a later node {j}", n.index);
                        &outs[*j]
                    }
                })
                .collect();
            let shapes: Vec<Vec<usize>> = ins.iter().map(|t| t.shape().to_vec()).collect();
            assert_eq!(shapes, n.input_shapes, "node {} ({}) declares other input shapes", n.index, n.label);
            let out = train::execute_node(n, &ins)
                .unwrap_or_else(|e| panic!("node {} ({}) fails: {e}", n.index, n.label));
            assert_eq!(out.shape(), n.shape.as_slice(), "node {} ({}) output shape", n.index, n.label);
            let c = n.cost();
            let in_bytes: u64 = ins.iter().map(|t| 4 * numel(t.shape())).sum();
            assert_eq!(c.input_bytes, in_bytes, "node {} ({}) input bytes", n.index, n.label);
            let w = work(n, &ins, &out);
            assert!(
                c.flops >= w,
                "node {} ({} {:?}, inputs {shapes:?}) costs {} flops but does {w} operations",
                n.index, n.label, n.op, c.flops
            );
            held += 4 * numel(out.shape());
            outs.push(out);
        }
        assert!(graph.planned_peak_bytes() >= held, "planned peak {} < held {held}", graph.planned_peak_bytes());
    }
);
