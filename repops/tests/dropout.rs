//! `dropout`: a mask drawn from Philox by key and step counter (R5), the same on every
//! backend (golden vector `dropout`, fuzz kind 48), a new one each step.

use repops::{Op, Tensor};

fn mask(p: f32, key: u64, step: f32, n: usize) -> Vec<bool> {
    let x = Tensor::new(vec![n], vec![1.0; n]).unwrap();
    let s = Tensor::scalar(step);
    Op::Dropout { p, key }
        .execute(&[&x, &s])
        .unwrap()
        .data()
        .iter()
        .map(|v| *v != 0.0)
        .collect()
}

#[test]
fn the_mask_keeps_about_one_minus_p_and_changes_with_the_step_and_key() {
    let n = 100_000;
    for p in [0.1f32, 0.5, 0.9] {
        let m = mask(p, 7, 3.0, n);
        let kept = m.iter().filter(|k| **k).count() as f64 / n as f64;
        assert!((kept - (1.0 - p as f64)).abs() < 0.01, "p {p}: kept {kept}");
        assert_eq!(m, mask(p, 7, 3.0, n), "a function of key and step");
        assert_ne!(m, mask(p, 7, 4.0, n), "a new mask each step");
        assert_ne!(m, mask(p, 8, 3.0, n), "a new mask for another key");
    }
    assert!(mask(0.0, 1, 0.0, 1000).iter().all(|k| *k));
}

#[test]
fn kept_elements_are_scaled_and_the_backward_is_the_same_mask() {
    let x = Tensor::new(vec![6], vec![1.5, -2.0, 0.25, 3.0, -0.5, 8.0]).unwrap();
    let s = Tensor::scalar(11.0);
    let op = Op::Dropout { p: 0.5, key: 3 };
    let y = op.execute(&[&x, &s]).unwrap();
    for (a, b) in x.data().iter().zip(y.data()) {
        assert!(*b == 0.0 || *b == a * 2.0, "{a} -> {b}");
    }
    let dy = Tensor::new(vec![6], vec![1.0; 6]).unwrap();
    let dx = op.execute(&[&dy, &s]).unwrap();
    for (yv, g) in y.data().iter().zip(dx.data()) {
        assert_eq!(*yv == 0.0, *g == 0.0);
    }
    // p outside [0, 1) is refused.
    for p in [-0.1, 1.0, f32::NAN] {
        assert!(Op::Dropout { p, key: 0 }.execute(&[&x, &s]).is_err());
    }
}
