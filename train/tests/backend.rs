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

/// With the state kept on a device that hashes it there, a step downloads only its loss,
/// the hashes are the CPU's, the state comes down when it is asked for, and a device that
/// stops answering is an error (the state is not invented), with the step's hash kept.
#[test]
fn a_trainer_keeping_the_state_on_a_hashing_device_downloads_it_only_when_asked() {
    use repops::conformance::HashingDevice;
    let mut cpu = Trainer::builtin("mlp-digits").unwrap();
    let dev = Arc::new(HashingDevice::default());
    let (p, d) = (cpu.program().clone(), cpu.dataset().clone());
    let mut other = Trainer::with_backend(p, d, dev.clone()).unwrap();
    other.keep_state_on_device(true);
    for t in 1..=3 {
        let a = cpu.step(t).unwrap();
        let b = other.step(t).unwrap();
        assert_eq!(a.state_hash, b.state_hash, "step {t}");
        assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    }
    // Three losses (one element each) and nothing else.
    assert_eq!(dev.downloaded.load(Ordering::Relaxed), 3);
    let elems: u64 = cpu.state().values().map(|t| t.len() as u64).sum();
    assert_eq!(other.try_state().unwrap(), cpu.state());
    assert_eq!(dev.downloaded.load(Ordering::Relaxed), 3 + elems);
    assert_eq!(other.state_hash(), cpu.state_hash());
    // The device is gone after step 4: the state cannot come back, the hash of step 4
    // (computed on the device) is still known.
    let h4 = cpu.step(4).unwrap().state_hash;
    assert_eq!(other.step(4).unwrap().state_hash, h4);
    dev.broken.store(true, Ordering::Relaxed);
    assert!(other.try_state().is_err());
    assert!(other.state().is_empty());
    assert_eq!(other.state_hash(), h4);
    let dir = tempfile::tempdir().unwrap();
    assert!(other.save_checkpoint(&dir.path().join("ck")).is_err());
    // Back: the state is downloaded and the run goes on.
    dev.broken.store(false, Ordering::Relaxed);
    assert_eq!(other.try_state().unwrap(), cpu.state());
    assert_eq!(
        other.step(5).unwrap().state_hash,
        cpu.step(5).unwrap().state_hash
    );
}
