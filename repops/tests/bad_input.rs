//! Every operator rejects bad input with an error that says what is wrong.

use repops::{Backend, CpuBackend, MaskFill, Op, RepOpsError, Tensor};

fn t(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape)
}

fn err(op: Op, ins: &[&Tensor]) -> String {
    let b: Box<dyn Backend> = Box::new(CpuBackend);
    b.execute_host(&op, ins).unwrap_err().to_string()
}

#[test]
fn mismatched_matmul_shapes_name_both_operands() {
    let e = err(
        Op::MatMul {
            ta: false,
            tb: false,
        },
        &[&t(&[2, 3]), &t(&[4, 5])],
    );
    assert!(
        e.contains("contracted dims differ: [2, 3] (ta=false) vs [4, 5] (tb=false)"),
        "{e}"
    );
    let e = err(
        Op::BatchedMatMul {
            ta: false,
            tb: true,
        },
        &[&t(&[2, 3, 4]), &t(&[3, 5, 4])],
    );
    assert!(e.contains("batch dims differ"), "{e}");
    let e = err(
        Op::MatMul {
            ta: false,
            tb: false,
        },
        &[&t(&[2, 3, 1]), &t(&[3, 5])],
    );
    assert!(e.contains("must have rank 2"), "{e}");
}

#[test]
fn wrong_arity_and_broadcast_shapes_are_reported() {
    let e = err(Op::Add, &[&t(&[2])]);
    assert!(e.contains("expected 2 inputs, got 1"), "{e}");
    let e = err(Op::Add, &[&t(&[2]), &t(&[3])]);
    assert!(e.contains("inputs 0 and 1 differ: [2] vs [3]"), "{e}");
    let e = err(Op::AddBias, &[&t(&[4, 3]), &t(&[4])]);
    assert!(e.contains("input 1 must have shape [3], got [4]"), "{e}");
    let e = err(
        Op::LayerNorm { eps: 1e-5 },
        &[&t(&[4, 3]), &t(&[3]), &t(&[2])],
    );
    assert!(e.contains("input 2 must have shape [3]"), "{e}");
    let e = err(
        Op::CausalMask {
            fill: MaskFill::NegInf,
        },
        &[&t(&[2, 3, 4])],
    );
    assert!(e.contains("last two dims must be equal"), "{e}");
}

#[test]
fn invalid_parameters_are_refused() {
    let e = err(Op::Scale { s: f32::NAN }, &[&t(&[2])]);
    assert!(e.contains("s = NaN is not finite"), "{e}");
    let e = err(
        Op::LayerNorm { eps: 0.0 },
        &[&t(&[1, 3]), &t(&[3]), &t(&[3])],
    );
    assert!(e.contains("eps = 0 must be > 0"), "{e}");
    let e = err(Op::Permute { perm: vec![0, 0] }, &[&t(&[2, 2])]);
    assert!(e.contains("is not a permutation of 0..2"), "{e}");
    let e = err(Op::Reshape { shape: vec![5] }, &[&t(&[2, 2])]);
    assert!(e.contains("cannot view [2, 2] as [5]"), "{e}");
    let e = err(
        Op::AdamWUpdate {
            lr: f32::INFINITY,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        &[&t(&[2]), &t(&[2]), &t(&[2]), &t(&[]), &t(&[])],
    );
    assert!(e.contains("lr = inf is not finite"), "{e}");
}

#[test]
fn indices_must_be_integers_in_range() {
    let table = t(&[4, 2]);
    for (bad, what) in [
        (4.0, "index 4 "),
        (-1.0, "index -1 "),
        (1.5, "index 1.5 "),
        (f32::NAN, "index NaN "),
    ] {
        let ids = Tensor::new(vec![2], vec![0.0, bad]).unwrap();
        let e = err(Op::Embedding, &[&table, &ids]);
        assert!(e.contains(what) && e.contains("at position 1"), "{e}");
        let e = err(Op::EmbeddingBackward { vocab: 4 }, &[&ids, &t(&[2, 2])]);
        assert!(e.contains(what), "{e}");
    }
}

#[test]
fn a_tensor_with_the_wrong_element_count_cannot_be_built() {
    let e = Tensor::new(vec![2, 3], vec![0.0; 5]).unwrap_err();
    assert_eq!(
        e,
        RepOpsError::DataLength {
            shape: vec![2, 3],
            want: 6,
            got: 5
        }
    );
    assert!(Tensor::new(vec![usize::MAX, 3], vec![]).is_err());
    let nan = Tensor::new(vec![2], vec![1.0, f32::INFINITY]).unwrap();
    assert!(nan
        .check_finite("x")
        .unwrap_err()
        .to_string()
        .contains("x: non-finite value inf at element 1"));
}

#[test]
fn nan_inputs_propagate_as_the_canonical_nan() {
    let x = Tensor::new(vec![3], vec![f32::from_bits(0xffc0_1234), 1.0, 2.0]).unwrap();
    let y = Op::Exp.execute(&[&x]).unwrap();
    assert_eq!(y.data()[0].to_bits(), 0x7fc0_0000);
    let s = Op::Softmax.execute(&[&x]).unwrap();
    assert!(s.data().iter().all(|v| v.to_bits() == 0x7fc0_0000));
}
