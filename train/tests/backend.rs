//! The trainer runs every op on the backend it is given, and a backend with the CPU
//! reference's bits gives the CPU's state hashes.

use repops::{Backend, CpuBackend, DeviceTensor, Op, Tensor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use train::Trainer;

/// Delegates to the CPU reference and counts the ops it ran.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Backend for Counting {
    fn name(&self) -> &str {
        "counting-cpu"
    }
    fn upload(&self, t: &Tensor) -> repops::Result<DeviceTensor> {
        CpuBackend.upload(t)
    }
    fn execute(&self, op: &Op, inputs: &[&DeviceTensor]) -> repops::Result<DeviceTensor> {
        self.0.fetch_add(1, Ordering::Relaxed);
        CpuBackend.execute(op, inputs)
    }
    fn download(&self, t: &DeviceTensor) -> repops::Result<Tensor> {
        CpuBackend.download(t)
    }
}

#[test]
fn a_trainer_on_another_backend_runs_every_node_there_with_the_same_hashes() {
    let mut cpu = Trainer::builtin("mlp-digits").unwrap();
    let counting = Arc::new(Counting::default());
    let p = cpu.program().clone();
    let d = cpu.dataset().clone();
    let mut other = Trainer::with_backend(p, d, counting.clone()).unwrap();
    assert_eq!(other.backend().name(), "counting-cpu");
    assert_eq!(cpu.state_hash(), other.state_hash());
    for t in 1..=3 {
        let a = cpu.step(t).unwrap();
        let b = other.step(t).unwrap();
        assert_eq!(a.state_hash, b.state_hash, "step {t}");
    }
    assert_eq!(
        counting.0.load(Ordering::Relaxed),
        3 * other.graph().nodes.len()
    );
}
