//! Training parity, the whole-run part of the conformance suite (the op-level part is
//! `repops::conformance`): a builtin program trained on the CPU reference and on a
//! backend in lockstep, through the one step executor with the backend's tensors kept in
//! its memory, comparing `h_t` after every step. Instantiated by repops-cuda's emulator
//! tests and GPU tests and by `cuda-parity`.

use crate::{Dataset, Program, Trainer};
use repops::Backend;
use std::sync::Arc;

/// Result of running one program on the CPU and on a backend in lockstep.
#[derive(Clone, Debug)]
pub struct TrainingParity {
    /// Steps run on both (stops after the first differing state hash).
    pub steps: u64,
    /// First step whose state hash differs, if any (0 = the initial state).
    pub first_divergence: Option<u64>,
    /// Trace root over `h_0..h_T` on the CPU.
    pub cpu_trace_root: [u8; 32],
    /// The same on the backend.
    pub backend_trace_root: [u8; 32],
    /// Seconds spent in the backend's steps and in the CPU's steps.
    pub backend_seconds: f64,
    /// Seconds spent in the CPU's steps.
    pub cpu_seconds: f64,
}

/// Run `program` (a builtin name) for `steps` steps on the CPU and on `backend`.
pub fn training(
    backend: Arc<dyn Backend>,
    program: &str,
    steps: u64,
) -> Result<TrainingParity, String> {
    let p = Program::builtin(program).map_err(|e| e.to_string())?;
    let d = Dataset::builtin(&p.dataset.name).map_err(|e| e.to_string())?;
    let mut cpu = Trainer::new(p.clone(), d.clone()).map_err(|e| e.to_string())?;
    let mut gpu = Trainer::with_backend(p, d, backend).map_err(|e| e.to_string())?;
    // The backend keeps the state and hashes it where it lives, when it can: each
    // h_t compared below is then the device's own hash of its own state.
    gpu.keep_state_on_device(true);
    let (mut hc, mut hg) = (vec![cpu.state_hash()], vec![gpu.state_hash()]);
    let mut first = (hc[0] != hg[0]).then_some(0);
    let (mut tc, mut tg) = (0.0, 0.0);
    let mut t = 0;
    while t < steps && first.is_none() {
        t += 1;
        let c0 = std::time::Instant::now();
        let a = cpu.step(t).map_err(|e| format!("cpu step {t}: {e}"))?;
        tc += c0.elapsed().as_secs_f64();
        let g0 = std::time::Instant::now();
        let b = gpu.step(t).map_err(|e| format!("backend step {t}: {e}"))?;
        tg += g0.elapsed().as_secs_f64();
        hc.push(a.state_hash);
        hg.push(b.state_hash);
        if a.state_hash != b.state_hash {
            first = Some(t);
        }
    }
    Ok(TrainingParity {
        steps: t,
        first_divergence: first,
        cpu_trace_root: crate::merkle::root(&hc),
        backend_trace_root: crate::merkle::root(&hg),
        backend_seconds: tg,
        cpu_seconds: tc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_reference_has_training_parity_with_itself() {
        let r = training(Arc::new(repops::CpuBackend), "mlp-digits", 2).unwrap();
        assert_eq!((r.steps, r.first_divergence), (2, None));
        assert_eq!(r.cpu_trace_root, r.backend_trace_root);
    }
}
