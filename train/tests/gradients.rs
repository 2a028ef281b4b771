//! Finite-difference checks of the generated backward nodes. These compare analytic
//! gradients with central differences, so they use a tolerance; bit-exactness is
//! checked elsewhere.

use repops::Tensor;
use std::collections::BTreeMap;
use train::exec::run_nodes;
use train::{Input, Program, Trainer};

fn check(program: Program, params: &[&str]) {
    let tr = Trainer::new(
        program.clone(),
        train::Dataset::builtin(&program.dataset.name).unwrap(),
    )
    .unwrap();
    let g = tr.graph().clone();
    let batch = tr.batch(1).unwrap();
    let state = tr.state().clone();
    let outs = run_nodes(&g.nodes, &state, &batch, |_, _| {}).unwrap();
    let loss_at = |st: &BTreeMap<String, Tensor>| -> f64 {
        let o = run_nodes(&g.nodes[..=g.loss], st, &batch, |_, _| {}).unwrap();
        o[g.loss].data()[0] as f64
    };
    for name in params {
        let m = g
            .nodes
            .iter()
            .find(|n| n.label == format!("opt.m.{name}"))
            .unwrap();
        let Input::Node(gi) = m.inputs[1] else {
            panic!()
        };
        let grad = &outs[gi];
        let n = grad.len();
        for &e in &[0usize, n / 3, n - 1] {
            let h = 1e-2f32;
            let mut plus = state.clone();
            let mut minus = state.clone();
            plus.get_mut(*name).unwrap().data_mut()[e] += h;
            minus.get_mut(*name).unwrap().data_mut()[e] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h as f64);
            let an = grad.data()[e] as f64;
            let tol = 2e-3 + 0.05 * an.abs().max(fd.abs());
            assert!(
                (fd - an).abs() <= tol,
                "{name}[{e}]: finite difference {fd} vs backward {an}"
            );
        }
    }
}

#[test]
fn mlp_backward_nodes_match_finite_differences() {
    check(
        Program::builtin("mlp-digits").unwrap(),
        &["l0.w", "l0.b", "l1.w", "l1.b"],
    );
}

#[test]
fn transformer_backward_nodes_match_finite_differences() {
    check(
        Program::builtin("tiny-lm").unwrap(),
        &[
            "wte",
            "wpe",
            "h0.ln1.g",
            "h0.ln1.b",
            "h0.attn.wq",
            "h0.attn.wk",
            "h0.attn.wv",
            "h0.attn.wo",
            "h1.mlp.w1",
            "h1.mlp.b1",
            "h1.mlp.w2",
            "h1.mlp.b2",
            "lnf.g",
            "head.w",
            "head.b",
        ],
    );
}
