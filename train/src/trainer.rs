//! The trainer: initial state, batches, steps (plain and traced), evaluation, checkpoints.

use crate::checkpoint;
use crate::dataset::{Dataset, Schema};
use crate::error::{Result, TrainError};
use crate::exec::{download_all, run_nodes_on, state_hash};
use crate::merkle::Hash;
use crate::program::{BatchKind, Init, Mode, Program, StepGraph};
use crate::step::{DeviceState, Honest, Record, State, StepExecutor, StepOutput};
use repops::{Backend, CpuBackend, Philox, Tensor};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Philox stream of batch row indices.
pub const STREAM_ROWS: u64 = 1;
/// Philox stream of LM window offsets.
pub const STREAM_OFFSETS: u64 = 2;

/// Philox stream of a state tensor's initialiser: the first 8 bytes (LE) of
/// `BLAKE3("veritrain/init/v1/" || name)`.
pub fn init_stream(name: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"veritrain/init/v1/");
    h.update(name.as_bytes());
    let b = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&b.as_bytes()[..8]);
    u64::from_le_bytes(x)
}

/// Outcome of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepResult {
    /// `h_t`.
    pub state_hash: Hash,
    /// The step's loss (node `loss` output, before the update).
    pub loss: f32,
}

/// Outcome of one traced step.
#[derive(Clone, Debug, PartialEq)]
pub struct TracedStep {
    /// `h_t`.
    pub state_hash: Hash,
    /// Loss.
    pub loss: f32,
    /// `o_1..o_M`: R6 hash of every node output in order.
    pub node_hashes: Vec<Hash>,
    /// `r_t`: Merkle root over `node_hashes`.
    pub op_root: Hash,
}

/// Held-out evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy (nats).
    pub loss: f32,
    /// Classification accuracy (classifiers only).
    pub accuracy: Option<f64>,
    /// Examples (rows or windows) evaluated.
    pub examples: usize,
}

/// Runs a program on a dataset.
pub struct Trainer {
    program: Program,
    graph: StepGraph,
    dataset: Dataset,
    /// The state on the host; empty after a step that kept it on the device only
    /// ([`Trainer::keep_state_on_device`]) until it is asked for.
    state: OnceLock<State>,
    /// The state in the backend's memory, when the last step left it there.
    resident: Option<DeviceState>,
    /// The hash of the current state, once known.
    hash: OnceLock<Hash>,
    /// Steps leave the state on the device (hashed there) when the backend can.
    on_device: bool,
    step: u64,
    backend: Arc<dyn Backend>,
}

/// What [`Trainer::state`] answers when the device cannot give the state back.
static NO_STATE: State = BTreeMap::new();

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("program", &self.program.name)
            .field("backend", &self.backend.name())
            .field("step", &self.step)
            .field("state_hash", &hex::encode(self.state_hash()))
            .finish()
    }
}

fn init_tensor(seed: u64, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data = match init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Uniform(a) => {
            let p = Philox::new(seed, init_stream(name));
            (0..n as u64)
                .map(|i| (2.0 * p.uniform_at(i) - 1.0) * a)
                .collect()
        }
    };
    Tensor::new(shape.to_vec(), data).map_err(|e| TrainError::Program(format!("{name}: {e}")))
}

/// The state before step 1 (R5 initialisation), whose hash is `h_0`. It
/// depends on the program alone, not on the dataset. A fine-tuning program
/// (`init_state`) starts from its committed file instead
/// ([`crate::checkpoint::decode_initial`]).
pub fn initial_state(program: &Program) -> Result<BTreeMap<String, Tensor>> {
    program.validate()?;
    if program.committed_h0().is_some() {
        return Err(TrainError::Program(
            "the program starts from committed states (init_state or inputs): load them".into(),
        ));
    }
    let mut state = BTreeMap::new();
    for (name, (shape, init)) in program.state_spec()? {
        let t = init_tensor(program.seed, &name, &shape, init)?;
        state.insert(name, t);
    }
    Ok(state)
}

/// An `init_state.name` of the form `seed:N` names the state R5 initialises from
/// seed `N` under the program's own state spec: no file to fetch (a swarm starting
/// from scratch commits to it so that every round starts from a committed state).
pub const SEED_SOURCE: &str = "seed:";

/// The initial state a program's `init_state` names when it is a [`SEED_SOURCE`]
/// (checked against `init_state.root` and `.step`); `None` when it names a file.
pub fn seeded_initial(program: &Program) -> Result<Option<BTreeMap<String, Tensor>>> {
    let Some(init) = &program.init_state else {
        return Ok(None);
    };
    let Some(n) = init.name.strip_prefix(SEED_SOURCE) else {
        return Ok(None);
    };
    let seed: u64 = n
        .parse()
        .map_err(|e| TrainError::Program(format!("init_state.name {:?}: {e}", init.name)))?;
    let mut p = program.clone();
    p.init_state = None;
    p.seed = seed;
    let state = initial_state(&p)?;
    if crate::state_hash(&state) != init.root || init.step != 0 {
        return Err(TrainError::Program(format!(
            "the state of {} is not the one init_state commits to",
            init.name
        )));
    }
    Ok(Some(state))
}

impl Trainer {
    /// Initial state `h_0` of `program` on `dataset` (whose root must match), running
    /// ops on the CPU reference.
    pub fn new(program: Program, dataset: Dataset) -> Result<Self> {
        Self::with_backend(program, dataset, Arc::new(CpuBackend))
    }

    /// [`Trainer::new`] running every op on `backend` (e.g. the CUDA backend of
    /// `repops-cuda`). The backend must give the CPU reference's bits; the state hashes
    /// are then the same as on the CPU.
    pub fn with_backend(
        program: Program,
        dataset: Dataset,
        backend: Arc<dyn Backend>,
    ) -> Result<Self> {
        let state = initial_state(&program)?;
        Self::from_initial(program, dataset, backend, state)
    }

    /// A trainer at `h_0` = `state`: the program's seed state, or the committed state
    /// a fine-tune starts from (checked against `init_state.root`; decode the file with
    /// [`crate::checkpoint::decode_initial`]).
    pub fn from_initial(
        program: Program,
        dataset: Dataset,
        backend: Arc<dyn Backend>,
        state: BTreeMap<String, Tensor>,
    ) -> Result<Self> {
        program.validate_dataset(&dataset)?;
        let graph = program.graph()?;
        let shapes: BTreeMap<String, Vec<usize>> = state
            .iter()
            .map(|(k, t)| (k.clone(), t.shape().to_vec()))
            .collect();
        let wrong = || {
            TrainError::Program("the initial state is not the one the program commits to".into())
        };
        let hash = OnceLock::new();
        if let Some(init) = &program.init_state {
            if shapes != graph.state_shapes || crate::state_hash(&state) != init.root {
                return Err(wrong());
            }
        }
        if program.is_merge() {
            if shapes != program.state_input_shapes(0)? {
                return Err(wrong());
            }
            for (i, input) in program.inputs.iter().enumerate() {
                let part = crate::checkpoint::merge_input(&program, &state, i)?;
                if crate::state_hash(&part) != input.root
                    || crate::checkpoint::step_counter(&part) != input.step as f32
                {
                    return Err(wrong());
                }
            }
            let _ = hash.set(crate::program::inputs_root(&program.inputs));
        }
        Ok(Trainer {
            program,
            graph,
            dataset,
            state: OnceLock::from(state),
            resident: None,
            hash,
            on_device: false,
            step: 0,
            backend,
        })
    }

    /// Run later steps and evaluations on `backend` (the state is kept: brought to the
    /// host first if it was only on the old backend's device).
    pub fn set_backend(&mut self, backend: Arc<dyn Backend>) -> Result<()> {
        self.try_state()?;
        self.backend = backend;
        self.resident = None;
        Ok(())
    }

    /// With `true`, steps keep the new state on the device and hash it there (when the
    /// backend can: [`Backend::digests_on_device`]): between checkpoints a step moves
    /// its batch up and 36 bytes per state tensor and the loss down. The state comes to
    /// the host only when asked for ([`Trainer::try_state`], checkpoints, evaluation).
    pub fn keep_state_on_device(&mut self, yes: bool) {
        self.on_device = yes;
    }

    /// The backend ops run on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// A builtin program on its builtin dataset.
    pub fn builtin(name: &str) -> Result<Self> {
        let p = Program::builtin(name)?;
        let d = Dataset::builtin(&p.dataset.name)?;
        Self::new(p, d)
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }
    /// The expanded step graph.
    pub fn graph(&self) -> &StepGraph {
        &self.graph
    }
    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }
    /// The current state tensors. After a step that kept the state on the device, the
    /// first call downloads it; if that fails (the device is gone) this is an empty map
    /// and the error is logged: use [`Trainer::try_state`] to see it.
    pub fn state(&self) -> &BTreeMap<String, Tensor> {
        self.try_state().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the state cannot be brought back from the device");
            &NO_STATE
        })
    }

    /// The current state tensors, downloaded from the device if the last step left
    /// them only there.
    pub fn try_state(&self) -> Result<&State> {
        if let Some(s) = self.state.get() {
            return Ok(s);
        }
        let dev = self.resident.as_ref().ok_or_else(|| {
            TrainError::Program("the state is neither on the host nor on the device".into())
        })?;
        let host = download_all(&*self.backend, dev).map_err(TrainError::Transfer)?;
        Ok(self.state.get_or_init(|| host))
    }
    /// Steps done so far (`t` of `h_t`).
    pub fn current_step(&self) -> u64 {
        self.step
    }
    /// Hash of the current state (kept from the step that computed it, else computed from
    /// the host state; if the device cannot give the state back, the hash of no state, not
    /// remembered).
    pub fn state_hash(&self) -> Hash {
        if let Some(h) = self.hash.get() {
            return *h;
        }
        match self.try_state() {
            Ok(s) => *self.hash.get_or_init(|| state_hash(s)),
            Err(_) => state_hash(self.state()),
        }
    }

    /// Dataset rows of step `t`'s batch (t >= 1): `below(train_rows)` on stream
    /// [`STREAM_ROWS`] at counter `(t-1)*B + b`.
    pub fn batch_rows(&self, t: u64) -> Vec<u64> {
        batch_rows(&self.program, t)
    }

    /// Proofs of the dataset rows of step `t`'s batch against the dataset root (what a
    /// party reveals in a dispute over a node that reads the batch).
    pub fn batch_row_proofs(&self, t: u64) -> Vec<crate::dataset::RowProof> {
        self.batch_rows(t)
            .into_iter()
            .filter_map(|r| self.dataset.row_proof(r))
            .collect()
    }

    /// The batch tensors of step `t`.
    pub fn batch(&self, t: u64) -> Result<BTreeMap<String, Tensor>> {
        batch_for_step(&self.program, &self.dataset, t)
    }
}

/// Dataset rows of step `t`'s batch (t >= 1): `below(train_rows)` on stream
/// [`STREAM_ROWS`] at counter `(t-1)*B + b`; an evaluation draws
/// `rows_from + below(rows_to - rows_from)` the same way.
pub fn batch_rows(program: &Program, t: u64) -> Vec<u64> {
    let b = program.rows_per_step() as u64;
    let p = Philox::new(program.seed, STREAM_ROWS);
    let (from, n) = match program.mode {
        Mode::Train => (0, program.dataset.train_rows),
        Mode::Evaluate { rows_from, rows_to } => (rows_from, rows_to.saturating_sub(rows_from)),
        // A merge reads no rows.
        Mode::Merge { .. } => return Vec::new(),
    };
    let n = n.min(u32::MAX as u64) as u32;
    (0..b)
        .map(|i| from + p.below_at(t.wrapping_sub(1).wrapping_mul(b).wrapping_add(i), n) as u64)
        .collect()
}

/// The batch tensors of step `t` of `program` on `dataset`: what the trainer
/// feeds step `t`, and what the referee rebuilds for a node with batch inputs.
pub fn batch_for_step(
    program: &Program,
    dataset: &Dataset,
    t: u64,
) -> Result<BTreeMap<String, Tensor>> {
    let h = dataset.header();
    batch_from_rows(program, h.schema, h.row_bytes, t, |r| dataset.row(r))
}

/// The batch tensors of step `t` from the rows alone (the referee has only
/// the rows the batch uses, each proven against the dataset root).
pub fn batch_from_rows<'a>(
    program: &Program,
    schema: Schema,
    row_bytes: u64,
    t: u64,
    row: impl Fn(u64) -> Option<&'a [u8]>,
) -> Result<BTreeMap<String, Tensor>> {
    if program.is_merge() {
        return Ok(BTreeMap::new());
    }
    let rows = batch_rows(program, t);
    let b = rows.len() as u64;
    let po = Philox::new(program.seed, STREAM_OFFSETS);
    let offsets: Vec<usize> = match program.model.batch_kind() {
        BatchKind::Tokens { ctx, .. } => {
            let span = (schema.row_tokens(row_bytes) as usize)
                .checked_sub(ctx)
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    TrainError::Dataset(format!(
                        "rows of {} tokens are too short for ctx {ctx}",
                        schema.row_tokens(row_bytes)
                    ))
                })? as u32;
            (0..b)
                .map(|i| {
                    po.below_at(t.wrapping_sub(1).wrapping_mul(b).wrapping_add(i), span) as usize
                })
                .collect()
        }
        BatchKind::Rows { .. } => vec![0; rows.len()],
    };
    let all = make_batch(program, schema, &rows, &offsets, &row)?;
    split_micro_batches(all, program.micro_batches())
}

/// Splits every batch tensor along its first axis into `k` equal micro-batches, named
/// by [`crate::program::micro_name`] (with `k = 1`, the batch as it is).
fn split_micro_batches(
    all: BTreeMap<String, Tensor>,
    k: usize,
) -> Result<BTreeMap<String, Tensor>> {
    if k <= 1 {
        return Ok(all);
    }
    let mut out = BTreeMap::new();
    for (name, t) in all {
        let shape = t.shape().to_vec();
        let first = shape.first().copied().unwrap_or(0);
        if shape.is_empty() || !first.is_multiple_of(k) {
            return Err(TrainError::Program(format!(
                "batch tensor {name} of {shape:?} does not split into {k} micro-batches"
            )));
        }
        let mut part_shape = shape.clone();
        part_shape[0] = first / k;
        let per = t.len() / k;
        for (i, chunk) in t.data().chunks(per.max(1)).take(k).enumerate() {
            let part = Tensor::new(part_shape.clone(), chunk.to_vec())
                .map_err(|e| TrainError::Program(format!("{name}: {e}")))?;
            out.insert(crate::program::micro_name(&name, i), part);
        }
    }
    Ok(out)
}

fn make_batch<'a>(
    program: &Program,
    schema: Schema,
    rows: &[u64],
    offsets: &[usize],
    row_of: &dyn Fn(u64) -> Option<&'a [u8]>,
) -> Result<BTreeMap<String, Tensor>> {
    {
        let mut out = BTreeMap::new();
        let row =
            |r: u64| row_of(r).ok_or_else(|| TrainError::Dataset(format!("row {r} out of range")));
        let mk = |shape: Vec<usize>, d: Vec<f32>| {
            Tensor::new(shape, d).map_err(|e| TrainError::Dataset(e.to_string()))
        };
        match (program.model.batch_kind(), schema) {
            (BatchKind::Rows { features, .. }, Schema::Digits8x8) if features == 64 => {
                let mut x = Vec::with_capacity(rows.len() * features);
                let mut y = Vec::with_capacity(rows.len());
                for &r in rows {
                    let d = row(r)?;
                    x.extend(d[..64].iter().map(|&v| v as f32));
                    y.push(d[64] as f32);
                }
                out.insert("x".to_string(), mk(vec![rows.len(), features], x)?);
                out.insert("y".to_string(), mk(vec![rows.len()], y)?);
            }
            (BatchKind::Tokens { ctx, vocab }, s)
                if s == Schema::Ascii || s.token_bytes().is_some() =>
            {
                let n = rows.len() * ctx;
                let (mut tok, mut tgt, mut pos) = (
                    Vec::with_capacity(n),
                    Vec::with_capacity(n),
                    Vec::with_capacity(n),
                );
                // Ids are below the vocabulary (at most 2^24, so exact as f32).
                let id = |d: &[u8], i: usize| -> Result<f32> {
                    match s.token(d, i) {
                        Some(t) if (t as usize) < vocab => Ok(t as f32),
                        Some(t) => Err(TrainError::Dataset(format!(
                            "token {t} is outside the vocabulary of {vocab}"
                        ))),
                        None => Err(TrainError::Dataset(format!("token {i} past the row's end"))),
                    }
                };
                for (&r, &o) in rows.iter().zip(offsets) {
                    let d = row(r)?;
                    for i in 0..ctx {
                        tok.push(id(d, o + i)?);
                        tgt.push(id(d, o + i + 1)?);
                        pos.push(i as f32);
                    }
                }
                out.insert("tokens".to_string(), mk(vec![n], tok)?);
                out.insert("targets".to_string(), mk(vec![n], tgt)?);
                out.insert("positions".to_string(), mk(vec![n], pos)?);
            }
            _ => {
                return Err(TrainError::Program(
                    "model family does not match the dataset schema".into(),
                ))
            }
        }
        Ok(out)
    }
}

impl Trainer {
    /// The step executor over this trainer's program, dataset and backend.
    pub fn executor(&self) -> StepExecutor<'_> {
        StepExecutor::new(&self.program, &self.graph, &self.dataset, &*self.backend)
    }

    fn run(&mut self, t: u64, record: Record) -> Result<StepOutput> {
        if t != self.step + 1 {
            return Err(TrainError::StepOrder {
                requested: t,
                current: self.step,
            });
        }
        let record = Record {
            host_state: record.host_state && !self.on_device,
            ..record
        };
        // Without a resident copy the step uploads the host state.
        let host = match &self.resident {
            Some(_) => self.state.get(),
            None => Some(self.try_state()?),
        };
        let exec = self.executor();
        let (mut out, dev) = exec.run_resident(t, host, self.resident.as_ref(), record, &Honest)?;
        self.state = if out.state.is_empty() {
            OnceLock::new()
        } else {
            OnceLock::from(std::mem::take(&mut out.state))
        };
        self.hash = OnceLock::new();
        if record.state_hash {
            let _ = self.hash.set(out.state_hash);
        }
        self.resident = Some(dev);
        self.step = t;
        Ok(out)
    }

    /// Run step `t` (must be `current_step() + 1`); returns `h_t`.
    pub fn step(&mut self, t: u64) -> Result<StepResult> {
        let o = self.run(t, Record::STATE)?;
        Ok(StepResult {
            state_hash: o.state_hash,
            loss: o.loss,
        })
    }

    /// Run step `t` exactly like [`Trainer::step`] but without hashing anything; the
    /// returned `state_hash` is all zeros. For measuring the hashing overhead only.
    #[doc(hidden)]
    pub fn step_unhashed(&mut self, t: u64) -> Result<StepResult> {
        let o = self.run(t, Record::NOTHING)?;
        Ok(StepResult {
            state_hash: o.state_hash,
            loss: o.loss,
        })
    }

    /// Run step `t` and also return every node's output hash and the op root `r_t`.
    pub fn step_traced(&mut self, t: u64) -> Result<TracedStep> {
        let o = self.run(t, Record::TRACE)?;
        Ok(TracedStep {
            state_hash: o.state_hash,
            loss: o.loss,
            op_root: o.op_root(),
            node_hashes: o.node_hashes,
        })
    }

    /// Held-out evaluation on rows `train_rows..rows`. Classifier: accuracy (argmax,
    /// lowest index on ties) and loss over all held-out rows. LM: mean loss over windows
    /// at offsets 0, 16 and `row_bytes - ctx - 1` of every held-out row.
    pub fn evaluate(&self) -> Result<Evaluation> {
        let first = self.program.dataset.train_rows;
        let rows_all: Vec<u64> = (first..self.dataset.rows()).collect();
        if rows_all.is_empty() {
            return Err(TrainError::Program("no held-out rows to evaluate".into()));
        }
        let (rows, offsets): (Vec<u64>, Vec<usize>) = match self.program.model.batch_kind() {
            BatchKind::Rows { .. } => (rows_all.clone(), vec![0; rows_all.len()]),
            BatchKind::Tokens { ctx, .. } => {
                let last = self.dataset.header().row_bytes as usize - ctx - 1;
                let mut offs = vec![0, 16.min(last), last];
                offs.dedup();
                rows_all
                    .iter()
                    .flat_map(|&r| offs.iter().map(move |&o| (r, o)))
                    .unzip()
            }
        };
        let g = self.program.eval_graph(rows.len())?;
        let schema = self.dataset.header().schema;
        let batch = make_batch(&self.program, schema, &rows, &offsets, &|r| {
            self.dataset.row(r)
        })?;
        let outs = run_nodes_on(
            &*self.backend,
            &g.nodes,
            self.try_state()?,
            &batch,
            |_, _| {},
        )?;
        let loss = outs[g.loss].data().first().copied().unwrap_or(f32::NAN);
        let accuracy = match self.program.model.batch_kind() {
            BatchKind::Rows { .. } => {
                let logits = &outs[g.logits];
                let c = logits.last_dim();
                let labels = batch
                    .get("y")
                    .map(|t| t.data().to_vec())
                    .unwrap_or_default();
                let correct = logits
                    .data()
                    .chunks(c)
                    .zip(&labels)
                    .filter(|(row, &y)| {
                        let mut best = 0;
                        for j in 1..c {
                            if row[j] > row[best] {
                                best = j;
                            }
                        }
                        best as f32 == y
                    })
                    .count();
                Some(correct as f64 / labels.len() as f64)
            }
            BatchKind::Tokens { .. } => None,
        };
        Ok(Evaluation {
            loss,
            accuracy,
            examples: rows.len(),
        })
    }

    /// Unigram entropy (nats, f64, report only) of the training rows' next-token
    /// distribution, for the LM baseline.
    pub fn unigram_entropy(&self) -> f64 {
        let rb = self.dataset.header().row_bytes as usize;
        let end = (self.program.dataset.train_rows as usize * rb).min(self.dataset.data().len());
        let mut counts = [0u64; 256];
        for &b in &self.dataset.data()[..end] {
            counts[b as usize] += 1;
        }
        let n = end as f64;
        counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.ln()
            })
            .sum()
    }

    /// Write a safetensors checkpoint holding every state tensor (format in
    /// [`crate::checkpoint`]).
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let out = checkpoint::encode(&self.program, self.step, self.try_state()?)?;
        std::fs::write(path, out).map_err(|source| TrainError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Load a checkpoint written by [`Trainer::save_checkpoint`] for `program` on
    /// `dataset` (see [`checkpoint::decode`] for what is rejected).
    pub fn load_checkpoint(program: Program, dataset: Dataset, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_checkpoint_bytes(program, dataset, &bytes)
    }

    /// [`Trainer::load_checkpoint`] from the file's bytes.
    pub fn from_checkpoint_bytes(program: Program, dataset: Dataset, bytes: &[u8]) -> Result<Self> {
        program.validate_dataset(&dataset)?;
        let graph = program.graph()?;
        let (step, state) = checkpoint::decode(&program, &graph.state_shapes, bytes)?;
        Ok(Trainer {
            program,
            graph,
            dataset,
            state: OnceLock::from(state),
            resident: None,
            hash: OnceLock::new(),
            on_device: false,
            step,
            backend: Arc::new(CpuBackend),
        })
    }
}
