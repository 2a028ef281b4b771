//! One training step with every node output kept (the dispute game needs
//! them), and the fault injector used by tests and `veritraind demo`.
//!
//! There is no step logic here: a step is [`train::StepExecutor::run`], the
//! one executor the trainer also uses, and a [`FaultPlan`] is its
//! [`train::StepHook`]. Honest execution is therefore the trainer's, bit for
//! bit, and a diverged state is refused exactly as checkpoint decoding
//! refuses it.
use repops::Tensor;
use std::fmt;
use std::str::FromStr;
use train::{Hash, Program, Record, StepExecutor, StepGraph};

/// The named state tensors after a step.
pub use train::step::State;

/// A deliberately wrong solver, for tests and the demo. **Fault injection**:
/// never configure one on a real network; the solver will be slashed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Flip the lowest bit of element 0 of node `node`'s output at step `step`.
    pub corrupt: Option<(u64, usize)>,
    /// Do no work at this step: keep the previous parameters and moments
    /// (only the step counter advances).
    pub skip_step: Option<u64>,
    /// Train this step on the batch of the next step.
    pub wrong_batch: Option<u64>,
    /// Train this step on held-out rows (the evaluation pool) instead of its batch.
    pub held_out: Option<u64>,
    /// Refuse to serve checkpoints (hashes and traces are still served).
    pub withhold_checkpoints: bool,
    /// Once the result is committed, answer nothing: no dispute moves, no service.
    pub silent: bool,
    /// Verifier only: attest with evidence from the solver's served hashes
    /// without re-executing anything.
    pub lazy: bool,
    /// Sleep this many milliseconds after each training step (a slow machine;
    /// the result is unchanged). For tests that need training to take a while.
    pub slow_ms: Option<u64>,
    /// Apply the faults that change results only to merge tasks (an aggregator that
    /// lies while doing every other task honestly).
    pub only_merges: bool,
}

impl FaultPlan {
    pub fn is_honest(&self) -> bool {
        *self == FaultPlan::default()
    }

    /// The plan for a task running `program` (honest where [`FaultPlan::only_merges`]
    /// spares it).
    pub fn for_program(&self, program: &train::Program) -> FaultPlan {
        if self.only_merges && !program.is_merge() {
            return FaultPlan::default();
        }
        self.clone()
    }

    /// Whether the trained result itself is wrong.
    pub fn changes_result(&self) -> bool {
        self.corrupt.is_some()
            || self.skip_step.is_some()
            || self.wrong_batch.is_some()
            || self.held_out.is_some()
    }
}

/// One fault: `corrupt:STEP:NODE`, `skip:STEP`, `wrong-batch:STEP`,
/// `withhold-checkpoints`, `silent`, `lazy`, `slow:MS` or `only-merges` (the
/// result-changing faults apply to merge tasks only). Several may be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Corrupt { step: u64, node: usize },
    Skip { step: u64 },
    WrongBatch { step: u64 },
    HeldOut { step: u64 },
    WithholdCheckpoints,
    Silent,
    Slow { ms: u64 },
    Lazy,
    OnlyMerges,
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize, what: &str| -> Result<u64, String> {
            parts
                .get(i)
                .ok_or_else(|| format!("fault {s:?}: missing {what}"))?
                .parse::<u64>()
                .map_err(|e| format!("fault {s:?}: {what} is not a number: {e}"))
        };
        let step = |i| -> Result<u64, String> {
            let v = num(i, "STEP")?;
            if v == 0 {
                return Err(format!("fault {s:?}: steps start at 1"));
            }
            Ok(v)
        };
        let f = match parts[0] {
            "corrupt" if parts.len() == 3 => Fault::Corrupt {
                step: step(1)?,
                node: num(2, "NODE")? as usize,
            },
            "skip" if parts.len() == 2 => Fault::Skip { step: step(1)? },
            "wrong-batch" if parts.len() == 2 => Fault::WrongBatch { step: step(1)? },
            "held-out" if parts.len() == 2 => Fault::HeldOut { step: step(1)? },
            "withhold-checkpoints" if parts.len() == 1 => Fault::WithholdCheckpoints,
            "silent" if parts.len() == 1 => Fault::Silent,
            "lazy" if parts.len() == 1 => Fault::Lazy,
            "slow" if parts.len() == 2 => Fault::Slow { ms: num(1, "MS")? },
            "only-merges" if parts.len() == 1 => Fault::OnlyMerges,
            _ => {
                return Err(format!(
                    "unknown fault {s:?}: use corrupt:STEP:NODE, skip:STEP, wrong-batch:STEP, \
                     held-out:STEP, withhold-checkpoints, silent, lazy, slow:MS or only-merges"
                ))
            }
        };
        Ok(f)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Corrupt { step, node } => write!(f, "corrupt:{step}:{node}"),
            Fault::Skip { step } => write!(f, "skip:{step}"),
            Fault::WrongBatch { step } => write!(f, "wrong-batch:{step}"),
            Fault::HeldOut { step } => write!(f, "held-out:{step}"),
            Fault::WithholdCheckpoints => write!(f, "withhold-checkpoints"),
            Fault::Silent => write!(f, "silent"),
            Fault::Slow { ms } => write!(f, "slow:{ms}"),
            Fault::Lazy => write!(f, "lazy"),
            Fault::OnlyMerges => write!(f, "only-merges"),
        }
    }
}

impl FromIterator<Fault> for FaultPlan {
    fn from_iter<I: IntoIterator<Item = Fault>>(iter: I) -> Self {
        let mut p = FaultPlan::default();
        for f in iter {
            match f {
                Fault::Corrupt { step, node } => p.corrupt = Some((step, node)),
                Fault::Skip { step } => p.skip_step = Some(step),
                Fault::WrongBatch { step } => p.wrong_batch = Some(step),
                Fault::HeldOut { step } => p.held_out = Some(step),
                Fault::WithholdCheckpoints => p.withhold_checkpoints = true,
                Fault::Silent => p.silent = true,
                Fault::Slow { ms } => p.slow_ms = Some(ms),
                Fault::Lazy => p.lazy = true,
                Fault::OnlyMerges => p.only_merges = true,
            }
        }
        p
    }
}

impl train::StepHook for FaultPlan {
    fn batch_step(&self, t: u64) -> u64 {
        if self.wrong_batch == Some(t) {
            t + 1
        } else {
            t
        }
    }

    fn held_out(&self, t: u64) -> bool {
        self.held_out == Some(t)
    }

    fn alters_output(&self, t: u64, node: usize) -> bool {
        self.corrupt == Some((t, node))
    }

    /// Flips the lowest bit of element 0.
    fn alter_output(&self, _t: u64, _node: usize, out: &mut Tensor) -> train::Result<()> {
        if let Some(x) = out.data_mut().first_mut() {
            *x = f32::from_bits(x.to_bits() ^ 1);
        }
        Ok(())
    }

    fn alters_state(&self, t: u64) -> bool {
        self.skip_step == Some(t)
    }

    /// Keeps the previous parameters and moments; only the step counter advances.
    fn alter_state(&self, t: u64, before: &State, after: &mut State) -> train::Result<()> {
        let mut s = before.clone();
        if let Some(c) = s.get_mut("opt.step") {
            c.data_mut().fill(t as f32);
        }
        *after = s;
        Ok(())
    }
}

/// What one step produced.
pub struct StepOut {
    /// The state after the step.
    pub state: State,
    /// Every node's output, in node order (empty unless recorded).
    pub outputs: Vec<Tensor>,
    /// `h_t`.
    pub state_hash: Hash,
    /// The loss node's value (reporting only).
    pub loss: f32,
    /// Time spent running the nodes and hashing (nanoseconds).
    pub compute_ns: u64,
    /// Of which after the last node: finishing the hashes.
    pub hash_ns: u64,
    node_hashes: Vec<Hash>,
}

impl StepOut {
    /// The node output hashes `o_1..o_M` (the op trace).
    pub fn node_hashes(&self) -> Vec<Hash> {
        if self.node_hashes.len() == self.outputs.len() {
            return self.node_hashes.clone();
        }
        use rayon::prelude::*;
        self.outputs.par_iter().map(repops::tensor_hash).collect()
    }
}

impl From<train::StepOutput> for StepOut {
    fn from(o: train::StepOutput) -> Self {
        StepOut {
            state: o.state,
            outputs: o.outputs,
            state_hash: o.state_hash,
            loss: o.loss,
            compute_ns: o.compute_ns,
            hash_ns: o.hash_ns,
            node_hashes: o.node_hashes,
        }
    }
}

/// Runs step `t` of `program` from `state` on `backend` (the CPU reference, or a backend
/// that must return its bits) through [`train::StepExecutor`], applying `fault` if it
/// targets `t`, and keeps every node output and hash.
pub fn run_step(
    backend: &dyn repops::Backend,
    program: &Program,
    graph: &StepGraph,
    dataset: &train::Dataset,
    state: &State,
    t: u64,
    fault: &FaultPlan,
) -> train::Result<StepOut> {
    StepExecutor::new(program, graph, dataset, backend)
        .run(t, state, Record::ALL, fault)
        .map(StepOut::from)
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
