//! One training step with every node output kept (the dispute game needs
//! them), and the fault injector used by tests and `veritraind demo`.
//!
//! Honest execution here is bit-identical to [`train::Trainer`]: the same
//! nodes through [`train::execute_node`] in the same order, and the same
//! state hash.
use repops::Tensor;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use train::{Hash, Input, Program, StepGraph};

/// The named state tensors after a step.
pub type State = BTreeMap<String, Tensor>;

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
}

impl FaultPlan {
    pub fn is_honest(&self) -> bool {
        *self == FaultPlan::default()
    }

    /// Whether the trained result itself is wrong.
    pub fn changes_result(&self) -> bool {
        self.corrupt.is_some() || self.skip_step.is_some() || self.wrong_batch.is_some()
    }
}

/// One fault: `corrupt:STEP:NODE`, `skip:STEP`, `wrong-batch:STEP`,
/// `withhold-checkpoints`, `silent`, `lazy` or `slow:MS`. Several may be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Corrupt { step: u64, node: usize },
    Skip { step: u64 },
    WrongBatch { step: u64 },
    WithholdCheckpoints,
    Silent,
    Slow { ms: u64 },
    Lazy,
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
            "withhold-checkpoints" if parts.len() == 1 => Fault::WithholdCheckpoints,
            "silent" if parts.len() == 1 => Fault::Silent,
            "lazy" if parts.len() == 1 => Fault::Lazy,
            "slow" if parts.len() == 2 => Fault::Slow { ms: num(1, "MS")? },
            _ => {
                return Err(format!(
                    "unknown fault {s:?}: use corrupt:STEP:NODE, skip:STEP, wrong-batch:STEP, \
                     withhold-checkpoints, silent, lazy or slow:MS"
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
            Fault::WithholdCheckpoints => write!(f, "withhold-checkpoints"),
            Fault::Silent => write!(f, "silent"),
            Fault::Slow { ms } => write!(f, "slow:{ms}"),
            Fault::Lazy => write!(f, "lazy"),
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
                Fault::WithholdCheckpoints => p.withhold_checkpoints = true,
                Fault::Silent => p.silent = true,
                Fault::Slow { ms } => p.slow_ms = Some(ms),
                Fault::Lazy => p.lazy = true,
            }
        }
        p
    }
}

/// What one step produced.
pub struct StepOut {
    /// The state after the step.
    pub state: State,
    /// Every node's output, in node order.
    pub outputs: Vec<Tensor>,
    /// `h_t`.
    pub state_hash: Hash,
    /// The loss node's value (reporting only).
    pub loss: f32,
    /// Time spent running the nodes and hashing the new state (nanoseconds).
    pub compute_ns: u64,
    /// Of which hashing the new state.
    pub hash_ns: u64,
}

impl StepOut {
    /// The node output hashes `o_1..o_M` (the op trace).
    pub fn node_hashes(&self) -> Vec<Hash> {
        use rayon::prelude::*;
        self.outputs.par_iter().map(repops::tensor_hash).collect()
    }
}

/// Runs step `t` of `program` from `state` on `backend` (the CPU reference,
/// or a backend that must return its bits), applying `fault` if it targets `t`.
pub fn run_step(
    backend: &dyn repops::Backend,
    program: &Program,
    graph: &StepGraph,
    dataset: &train::Dataset,
    state: &State,
    t: u64,
    fault: &FaultPlan,
) -> train::Result<StepOut> {
    let started = std::time::Instant::now();
    let batch_step = if fault.wrong_batch == Some(t) {
        t + 1
    } else {
        t
    };
    let batch = train::batch_for_step(program, dataset, batch_step)?;
    let mut outputs: Vec<Tensor> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let mut ins: Vec<&Tensor> = Vec::with_capacity(node.inputs.len());
        for i in &node.inputs {
            let x = match i {
                Input::State(s) => state.get(s),
                Input::Batch(b) => batch.get(b),
                Input::Node(k) => outputs.get(*k),
            };
            ins.push(x.ok_or_else(|| train::TrainError::NodeInputs {
                node: node.index,
                detail: format!("input {i:?} is not available"),
            })?);
        }
        let mut out = train::exec::execute_node_on(backend, node, &ins)?;
        if fault.corrupt == Some((t, node.index)) {
            let mut d = out.data().to_vec();
            if let Some(x) = d.first_mut() {
                *x = f32::from_bits(x.to_bits() ^ 1);
            }
            out = Tensor::new(out.shape().to_vec(), d)
                .map_err(|e| train::TrainError::Program(e.to_string()))?;
        }
        outputs.push(out);
    }
    let loss = outputs
        .get(graph.loss)
        .and_then(|o| o.data().first().copied())
        .unwrap_or(f32::NAN);
    let new_state: State = if fault.skip_step == Some(t) {
        let mut s = state.clone();
        if let Some(c) = s.get_mut("opt.step") {
            *c = Tensor::new(c.shape().to_vec(), vec![t as f32; c.data().len()])
                .map_err(|e| train::TrainError::Program(e.to_string()))?;
        }
        s
    } else {
        graph
            .updates
            .iter()
            .map(|(name, &k)| {
                outputs
                    .get(k)
                    .cloned()
                    .map(|o| (name.clone(), o))
                    .ok_or_else(|| {
                        train::TrainError::Program(format!("state {name} has no update node"))
                    })
            })
            .collect::<train::Result<State>>()?
    };
    let hashing = std::time::Instant::now();
    let state_hash = train::state_hash(&new_state);
    let hash_ns = hashing.elapsed().as_nanos() as u64;
    Ok(StepOut {
        state_hash,
        state: new_state,
        outputs,
        loss,
        compute_ns: started.elapsed().as_nanos() as u64,
        hash_ns,
    })
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
