//! The step executor: the one implementation of "run step `t` of a program from a state",
//! used by [`crate::Trainer`], by the daemons (`agent::exec`, with fault injection as a
//! [`StepHook`]) and, through [`crate::execute_node`], by the referee.
//!
//! A step builds the batch of `t`, runs every node of the [`StepGraph`] in order on a
//! backend with the step's tensors in the backend's memory ([`repops::DeviceTensor`]),
//! takes the update nodes' outputs as the new state, refuses a state that
//! [`crate::checkpoint::decode`] would refuse (NaN or infinity anywhere:
//! [`crate::checkpoint::check_finite`]), and hashes what the caller asks for
//! ([`Record`]). It downloads only what it must: the new state (hashes, checkpoints),
//! the loss, and node outputs when the trace or the outputs are recorded. Each output
//! that is hashed is hashed right after it is downloaded, while it is still in cache,
//! and with more than one thread on rayon tasks that overlap the next nodes. On the CPU
//! backend "upload" and "download" share the tensors; nothing is copied.

use crate::checkpoint;
use crate::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::exec::{run_graph, state_hash, state_leaf, upload_all};
use crate::merkle::{self, Hash};
use crate::program::{Program, StepGraph};
use repops::{Backend, DeviceTensor, Tensor};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

/// The named state tensors (parameters, optimizer moments, counters).
pub type State = BTreeMap<String, Tensor>;

/// A [`State`] in a backend's memory.
pub type DeviceState = BTreeMap<String, DeviceTensor>;

/// Tensors with fewer elements are hashed inline rather than in a rayon task.
const SPAWN_MIN_ELEMS: usize = 1024;

/// What a step records besides the new state and the loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// `h_t`, the R6 hash of the new state (else all zeros).
    pub state_hash: bool,
    /// `o_1..o_M`, the R6 hash of every node output (the op trace).
    pub node_hashes: bool,
    /// Every node output itself (what a dispute uploads).
    pub outputs: bool,
    /// The new state on the host ([`StepOutput::state`]). Without it, on a backend that
    /// hashes on its device ([`Backend::digests_on_device`]), the new state stays there
    /// (in the returned [`DeviceState`]), is hashed and checked for non-finite values
    /// there, and `StepOutput::state` is empty; the op trace, when recorded without the
    /// outputs, is hashed there too. Other backends download it anyway.
    pub host_state: bool,
}

impl Record {
    /// Nothing hashed (a benchmark baseline).
    pub const NOTHING: Record = Record {
        state_hash: false,
        node_hashes: false,
        outputs: false,
        host_state: true,
    };
    /// `h_t` only: a plain training step.
    pub const STATE: Record = Record {
        state_hash: true,
        node_hashes: false,
        outputs: false,
        host_state: true,
    };
    /// `h_t` and the op trace.
    pub const TRACE: Record = Record {
        state_hash: true,
        node_hashes: true,
        outputs: false,
        host_state: true,
    };
    /// `h_t`, the op trace and every node output.
    pub const ALL: Record = Record {
        state_hash: true,
        node_hashes: true,
        outputs: true,
        host_state: true,
    };
}

/// Deliberate deviations from the honest step, for fault injection in tests and demos
/// (`agent::exec::FaultPlan`). Every method defaults to the honest behaviour.
pub trait StepHook: Sync {
    /// The step whose batch step `t` trains on.
    fn batch_step(&self, t: u64) -> u64 {
        t
    }
    /// Whether step `t` trains on held-out rows (the evaluation pool, rows
    /// `train_rows..`) instead of its own batch: what a contributor gaming an
    /// evaluation would do.
    fn held_out(&self, _t: u64) -> bool {
        false
    }
    /// Whether [`StepHook::alter_output`] changes node `node`'s output at step `t`.
    fn alters_output(&self, _t: u64, _node: usize) -> bool {
        false
    }
    /// Change node `node`'s output at step `t` before later nodes read it and before it
    /// is hashed (called only when [`StepHook::alters_output`] says so).
    fn alter_output(&self, _t: u64, _node: usize, _out: &mut Tensor) -> Result<()> {
        Ok(())
    }
    /// Whether [`StepHook::alter_state`] changes the state after step `t`.
    fn alters_state(&self, _t: u64) -> bool {
        false
    }
    /// Change the state after step `t` (`before` is the state the step started from).
    fn alter_state(&self, _t: u64, _before: &State, _after: &mut State) -> Result<()> {
        Ok(())
    }
}

/// The honest step: no hook.
#[derive(Clone, Copy, Debug, Default)]
pub struct Honest;

impl StepHook for Honest {}

/// What one step produced.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The state after the step.
    pub state: State,
    /// `h_t` (all zeros unless [`Record::state_hash`]).
    pub state_hash: Hash,
    /// The loss node's value (before the update; reporting only).
    pub loss: f32,
    /// `o_1..o_M` (empty unless [`Record::node_hashes`]).
    pub node_hashes: Vec<Hash>,
    /// Every node output in node order (empty unless [`Record::outputs`]).
    pub outputs: Vec<Tensor>,
    /// Nanoseconds spent running the nodes and hashing.
    pub compute_ns: u64,
    /// Of which after the last node: waiting for the hashes and finishing `h_t`.
    pub hash_ns: u64,
}

impl StepOutput {
    /// `r_t`: the Merkle root over the node hashes.
    pub fn op_root(&self) -> Hash {
        merkle::root(&self.node_hashes)
    }
}

/// Runs steps of one program on one dataset and backend.
#[derive(Clone, Copy)]
pub struct StepExecutor<'a> {
    /// The program.
    pub program: &'a Program,
    /// Its step graph (`program.graph()`).
    pub graph: &'a StepGraph,
    /// The dataset the batches come from.
    pub dataset: &'a Dataset,
    /// Where the ops run.
    pub backend: &'a dyn Backend,
}

impl std::fmt::Debug for StepExecutor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepExecutor")
            .field("program", &self.program.name)
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl<'a> StepExecutor<'a> {
    /// An executor of `program` (whose graph is `graph`) on `dataset` and `backend`.
    pub fn new(
        program: &'a Program,
        graph: &'a StepGraph,
        dataset: &'a Dataset,
        backend: &'a dyn Backend,
    ) -> Self {
        StepExecutor {
            program,
            graph,
            dataset,
            backend,
        }
    }

    /// Run step `t` (>= 1) from `state` (the state after `t - 1`), recording `record`,
    /// with `hook` applied ([`Honest`] for the real thing).
    pub fn run(
        &self,
        t: u64,
        state: &State,
        record: Record,
        hook: &dyn StepHook,
    ) -> Result<StepOutput> {
        self.run_resident(t, Some(state), None, record, hook)
            .map(|(o, _)| o)
    }

    /// [`StepExecutor::run`] with `resident`, when given, being the state already in the
    /// backend's memory (the previous step's [`DeviceState`]), so that it is not uploaded
    /// again; `state` is then the host copy if there is one (a hook that alters the state
    /// needs it). Also returns the new state in the backend's memory.
    ///
    /// The step's tensors stay in the backend's memory; what is downloaded is the new
    /// state (for its hash, checkpoints and the next step's caller), the loss, and, when
    /// recorded, every node output (for the op trace or a dispute).
    pub fn run_resident(
        &self,
        t: u64,
        state: Option<&State>,
        resident: Option<&DeviceState>,
        record: Record,
        hook: &dyn StepHook,
    ) -> Result<(StepOutput, DeviceState)> {
        let started = Instant::now();
        let backend = self.backend;
        let batch = if hook.held_out(t) {
            let mut p = self.program.clone();
            p.mode = crate::program::Mode::Evaluate {
                rows_from: p.dataset.train_rows,
                rows_to: self.dataset.rows(),
            };
            crate::trainer::batch_for_step(&p, self.dataset, hook.batch_step(t))?
        } else {
            crate::trainer::batch_for_step(self.program, self.dataset, hook.batch_step(t))?
        };
        let batch = upload_all(backend, &batch).map_err(TrainError::Transfer)?;
        let no_host = || TrainError::Program("the step needs the state on the host".into());
        let uploaded;
        let dev_state = match resident {
            Some(r) => r,
            None => {
                let host = state.ok_or_else(no_host)?;
                uploaded = upload_all(backend, host).map_err(TrainError::Transfer)?;
                &uploaded
            }
        };
        let n = self.graph.nodes.len();
        // On a backend that hashes where its tensors live, what is only hashed is not
        // downloaded (unless a hook must see the host state).
        let on_device = backend.digests_on_device() && !hook.alters_state(t);
        let host_state = record.host_state || !on_device;
        let mut hashed = vec![record.node_hashes; n];
        let mut needed = vec![record.outputs || (record.node_hashes && !on_device); n];
        let mut update = vec![false; n];
        for &i in self.graph.updates.values() {
            if let Some(w) = hashed.get_mut(i) {
                *w |= record.state_hash;
            }
            if let Some(w) = needed.get_mut(i) {
                *w |= host_state;
            }
            if let Some(w) = update.get_mut(i) {
                *w = true;
            }
        }
        if let Some(w) = needed.get_mut(self.graph.loss) {
            *w = true;
        }
        let alter = |i: usize, o: DeviceTensor| -> Result<DeviceTensor> {
            if !hook.alters_output(t, i) {
                return Ok(o);
            }
            let mut h = backend.download(&o).map_err(TrainError::Transfer)?;
            hook.alter_output(t, i, &mut h)?;
            backend.upload(&h).map_err(TrainError::Transfer)
        };
        // Each output that is needed on the host is downloaded right after its node
        // runs, and hashed while it is still in cache: with more than one thread by
        // rayon tasks while the next nodes run (the update nodes come last, so the other
        // thread hashes one parameter's new tensors while this one updates the next);
        // the scope waits for all of them. With one thread, inline.
        let slots: Vec<OnceLock<Hash>> = (0..n).map(|_| OnceLock::new()).collect();
        let mut hosts: Vec<Option<Tensor>> = vec![None; n];
        let nodes = &self.graph.nodes;
        let parallel = rayon::current_num_threads() > 1;
        let outs = rayon::scope(|scope| {
            run_graph(backend, nodes, dev_state, &batch, alter, |i, o| {
                if !needed.get(i).copied().unwrap_or(false) {
                    return Ok(());
                }
                let h = backend.download(o).map_err(TrainError::Transfer)?;
                if let Some(slot) = slots
                    .get(i)
                    .filter(|_| hashed.get(i).copied().unwrap_or(false))
                {
                    // A task costs more than hashing a few hundred bytes.
                    if !parallel || h.len() < SPAWN_MIN_ELEMS {
                        let _ = slot.set(repops::tensor_hash(&h));
                    } else {
                        let h = h.clone();
                        scope.spawn(move |_| {
                            let _ = slot.set(repops::tensor_hash(&h));
                        });
                    }
                }
                hosts[i] = Some(h);
                Ok(())
            })
        })?;
        let hashing = Instant::now();
        // What was not downloaded is hashed on the device: the op trace, and the new
        // state (whose finiteness is checked there too).
        let remote: Vec<usize> = (0..n)
            .filter(|&i| !needed[i] && (hashed[i] || update[i]))
            .collect();
        let mut non_finite = None;
        if !remote.is_empty() {
            let ts: Vec<&DeviceTensor> = remote.iter().filter_map(|&i| outs.get(i)).collect();
            let digests = backend.digests(&ts).map_err(TrainError::Transfer)?;
            for (&i, g) in remote.iter().zip(&digests) {
                if hashed[i] {
                    let _ = slots[i].set(g.hash);
                }
                if update[i] && !g.finite && non_finite.is_none() {
                    non_finite = Some(i);
                }
            }
        }
        if let Some(i) = non_finite {
            let name = self
                .graph
                .updates
                .iter()
                .find(|(_, &j)| j == i)
                .map_or("?", |(k, _)| k.as_str());
            return Err(TrainError::NonFinite {
                step: t,
                detail: format!("training diverged: {name} has a NaN or an infinity"),
            });
        }
        let node_hashes: Vec<Option<Hash>> = slots.into_iter().map(|s| s.into_inner()).collect();
        let loss = hosts
            .get(self.graph.loss)
            .and_then(|o| o.as_ref())
            .and_then(|o| o.data().first().copied())
            .unwrap_or(f32::NAN);
        let mut new_state = State::new();
        let mut new_dev = DeviceState::new();
        let mut leaves = Vec::with_capacity(self.graph.updates.len());
        let no_update =
            |name: &str| TrainError::Program(format!("state {name} has no update node"));
        for (name, &i) in &self.graph.updates {
            if record.state_hash {
                let th = node_hashes
                    .get(i)
                    .copied()
                    .flatten()
                    .ok_or_else(|| no_update(name))?;
                leaves.push(state_leaf(name, &th));
            }
            if host_state {
                let h = hosts.get_mut(i).ok_or_else(|| no_update(name))?;
                // Kept outputs share their elements with the state.
                let h = if record.outputs { h.clone() } else { h.take() };
                new_state.insert(name.clone(), h.ok_or_else(|| no_update(name))?);
            }
            new_dev.insert(
                name.clone(),
                outs.get(i).cloned().ok_or_else(|| no_update(name))?,
            );
        }
        drop(outs);
        if new_dev.len() != self.graph.state_shapes.len() {
            return Err(TrainError::Program(
                "update set does not cover the state".into(),
            ));
        }
        let altered = hook.alters_state(t);
        if altered {
            hook.alter_state(t, state.ok_or_else(no_host)?, &mut new_state)?;
            new_dev = upload_all(backend, &new_state).map_err(TrainError::Transfer)?;
        }
        if host_state {
            checkpoint::check_finite(&new_state).map_err(|e| TrainError::NonFinite {
                step: t,
                detail: format!("training diverged: {e}"),
            })?;
        }
        // Same leaves, same (name) order as `state_hash(&new_state)`.
        let state_hash = match (record.state_hash, altered) {
            (false, _) => Hash::default(),
            (true, false) => merkle::root(&leaves),
            (true, true) => state_hash(&new_state),
        };
        let node_hashes = if record.node_hashes {
            node_hashes.iter().map(|h| h.unwrap_or_default()).collect()
        } else {
            Vec::new()
        };
        let outputs = if record.outputs {
            hosts.into_iter().flatten().collect()
        } else {
            Vec::new()
        };
        Ok((
            StepOutput {
                state: new_state,
                state_hash,
                loss,
                node_hashes,
                outputs,
                compute_ns: started.elapsed().as_nanos() as u64,
                hash_ns: hashing.elapsed().as_nanos() as u64,
            },
            new_dev,
        ))
    }
}
