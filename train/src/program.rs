//! Training programs and their expansion into the ordered node list of one step.
//!
//! A [`Program`] (serde JSON) fixes the model family and sizes, loss, optimizer and
//! hyper-parameters, batch size, steps, seed, dataset (by root) and the RepOps op
//! version. [`Program::graph`] expands it, deterministically and with no floating-point
//! decisions, into a [`StepGraph`]: forward nodes, reverse-mode backward nodes (the
//! backward walks the forward nodes in reverse order; gradient contributions to one
//! value are summed with `add` in the order they are produced), then optimizer nodes
//! for the parameters in name order. Solver, verifier and referee all call this code.

use crate::error::{Result, TrainError};
use crate::merkle::{self, Hash};
use repops::{MaskFill, Op, OP_VERSION};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// A training program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// Human name.
    pub name: String,
    /// Model family and sizes.
    pub model: Model,
    /// Loss (only softmax cross-entropy in v1).
    pub loss: Loss,
    /// Optimizer and hyper-parameters.
    pub optimizer: Optimizer,
    /// Examples (MLP) or sequences (LM) per step.
    pub batch_size: usize,
    /// Number of steps `T`.
    pub steps: u64,
    /// Seed of all randomness (R5).
    pub seed: u64,
    /// The dataset, by content root.
    pub dataset: DatasetRef,
    /// RepOps op version used by every node.
    pub op_version: u32,
    /// Start from a committed state instead of the seed (fine-tuning): `h_0` is
    /// this state's hash. Absent from seed programs' JSON, so their hashes are
    /// unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_state: Option<StateRef>,
    /// The states a merge ([`Mode::Merge`]) starts from: input 0 is the global state
    /// (its tensors are read as `g/<name>`), input `i >= 1` a contribution (read as
    /// `c<i-1>/<name>`, see [`input_prefix`]); each is fetched by content like
    /// `init_state`, and `h_0` is [`inputs_root`] over them, which the chain computes
    /// from the roots alone. Absent from the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<StateRef>,
    /// What each step does: train (the default, absent from the JSON) or evaluate.
    #[serde(default, skip_serializing_if = "Mode::is_train")]
    pub mode: Mode,
    /// Keep each step's loss in the state as the scalar `loss` (0 before step 1), so
    /// `h_t` commits to it: an evaluation's result is provable from its trace.
    /// Absent from the JSON when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_loss: bool,
    /// A learning-rate schedule (absent: the optimizer's constant rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Clip the gradients' global L2 norm to this (absent: no clipping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f32>,
    /// Micro-batches of `batch_size` examples per training step, whose gradients are
    /// averaged before the update (absent: 1).
    #[serde(default = "one_u32", skip_serializing_if = "is_one_u32")]
    pub grad_accum: u32,
}

fn one_u32() -> u32 {
    1
}

fn is_one_u32(v: &u32) -> bool {
    *v == 1
}

/// Most micro-batches a step may accumulate.
pub const MAX_GRAD_ACCUM: u32 = 64;

/// Linear warmup, then cosine decay, of the optimizer's rate, by the state's step
/// counter (so a fine-tune or a swarm contribution continues its schedule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Steps of warmup: the rate at counter `t <= warmup` is `lr * t / warmup`.
    #[serde(default)]
    pub warmup: u64,
    /// Then a cosine decay over this many steps, to `min_factor * lr`, kept after
    /// (0: no decay).
    #[serde(default)]
    pub decay: u64,
    /// Where the decay ends, as a fraction of the rate.
    #[serde(default)]
    pub min_factor: f32,
}

/// What each step of a program does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mode {
    /// Forward, backward and the optimizer's update on training rows.
    #[default]
    Train,
    /// Forward only, on a batch drawn from rows `rows_from..rows_to` (a held-out
    /// pool): every parameter and optimizer tensor is carried unchanged, `opt.step`
    /// counts the step and `loss` records the batch's loss (so `record_loss` is
    /// required). With `init_state`, this measures a committed model.
    Evaluate {
        /// First row of the pool.
        rows_from: u64,
        /// One past the last row of the pool.
        rows_to: u64,
    },
    /// One step that merges contributions into the global state (DiLoCo's outer
    /// step, as plain outer SGD): with `G` = input 0 and `C_0..C_{k-1}` the other
    /// [`Program::inputs`], every parameter becomes
    /// `G + (outer_lr / k) * ((C_0 - G) + (C_1 - G) + ... )` (sums left to right),
    /// every optimizer moment and `loss` the mean `(C_0 + ... + C_{k-1}) * (1 / k)`,
    /// the Adam powers are `C_0`'s and `opt.step` is `G`'s plus one. The state after
    /// the step has the base layout, so it can start the next round.
    Merge {
        /// The outer learning rate (1 averages the contributions).
        outer_lr: f32,
    },
}

impl Mode {
    /// Whether this is [`Mode::Train`].
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train)
    }
}

/// Most states one merge may read (the global state and up to 32 contributions).
pub const MAX_MERGE_INPUTS: usize = 33;

/// The prefix under which step 1 of a merge reads input `i`'s tensors: `g/` for the
/// global state, `c<i-1>/` for contribution `i - 1`.
pub fn input_prefix(i: usize) -> String {
    match i {
        0 => "g/".to_string(),
        _ => format!("c{}/", i - 1),
    }
}

/// `h_0` of a merge: the Merkle root over `state_leaf(input_prefix(i), root_i)`, so
/// the chain computes it from the inputs' roots and a tensor of input `i` is proven
/// against `root_i` (see [`Program::state_slot`]).
pub fn inputs_root(inputs: &[StateRef]) -> Hash {
    let leaves: Vec<Hash> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| crate::exec::state_leaf(&input_prefix(i), &s.root))
        .collect();
    merkle::root(&leaves)
}

/// Where a state tensor a step reads is committed ([`Program::state_slot`]): leaf
/// `index` of `count`, `state_leaf(leaf_name, tensor_hash)`, under a merge input's
/// root or (`input: None`) under `h_lo` itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSlot {
    /// The committed root the leaf is under, when it is not `h_lo`: merge input
    /// `.0`'s root `.1`.
    pub input: Option<(usize, Hash)>,
    /// The name the leaf hashes (the input's own name, without the merge prefix).
    pub leaf_name: String,
    /// Leaf index.
    pub index: u64,
    /// Leaf count.
    pub count: u64,
}

/// Name of the state scalar a `record_loss` program keeps its last step's loss in.
pub const LOSS_STATE: &str = "loss";

/// Largest `opt.step` a run may reach: the counter is an f32 (exact up to 2^24).
pub const MAX_STEP_COUNTER: u64 = 1 << 24;

/// A committed state a program starts from, by content: the file is fetched from
/// `name` (the sources a dataset may name) and used only if its tensors hash to
/// `root` (see [`crate::checkpoint::decode_initial`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRef {
    /// Where to fetch the safetensors file (an `http(s)://` URL, `grpc://host:port`, or
    /// a local path a daemon allows).
    pub name: String,
    /// The state hash (`h_0`) the file's tensors must have.
    #[serde(with = "merkle::hex32")]
    pub root: Hash,
    /// The file's `opt.step` (0 for a fresh optimizer; a continued run's count
    /// otherwise): step `t`'s state then has `opt.step = step + t`. Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Longest `init_state.name` a program may carry.
pub const MAX_SOURCE_NAME_BYTES: usize = 1024;

/// Model family and sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case", deny_unknown_fields)]
pub enum Model {
    /// Multi-layer perceptron classifier on fixed-size rows.
    Mlp {
        /// Input features.
        input: usize,
        /// Hidden layer widths.
        hidden: Vec<usize>,
        /// Output classes.
        classes: usize,
        /// Hidden activation.
        activation: Activation,
        /// Input features are multiplied by this (e.g. 1/16 for 0..16 pixels).
        input_scale: f32,
    },
    /// Causal transformer language model over bytes.
    Transformer {
        /// Vocabulary (128 for 7-bit ASCII).
        vocab: usize,
        /// Context length.
        ctx: usize,
        /// Model width.
        d_model: usize,
        /// Attention heads (must divide `d_model`).
        heads: usize,
        /// Blocks.
        layers: usize,
        /// MLP hidden width.
        d_mlp: usize,
        /// Layer-norm epsilon.
        ln_eps: f32,
    },
    /// Bring your own model: parameters and forward nodes in RepOps' op vocabulary,
    /// trained with the program's loss and optimizer. Its backward is built by the
    /// same rules as the builtin families' (a node on the gradient path whose op has
    /// no rule is refused), and every party expands it with this code.
    Graph {
        /// What the batch holds (and so which datasets it trains on).
        batch: BatchKind,
        /// The state tensors the forward reads besides the batch.
        params: Vec<GraphParam>,
        /// Forward nodes in execution order.
        nodes: Vec<GraphNode>,
        /// The node whose output is the logits `[N, C]` (the loss is the program's,
        /// on them and the batch's labels).
        logits: String,
    },
}

/// What a program's batch holds, whatever its family: which dataset schemas feed
/// it and the names of its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BatchKind {
    /// Rows of `features` values and a label below `classes` (the digits): `x`
    /// `[B, features]` and the labels `y` `[B]`.
    Rows {
        /// Values per row.
        features: usize,
        /// Labels are below this.
        classes: usize,
    },
    /// Windows of `ctx` tokens below `vocab` (text and token datasets): `tokens`,
    /// their next tokens `targets`, and `positions`, each `[B * ctx]`.
    Tokens {
        /// Window length.
        ctx: usize,
        /// Token ids are below this.
        vocab: usize,
    },
}

impl BatchKind {
    /// The batch tensors' names and shapes for `batch` examples, and the labels'.
    pub fn tensors(&self, batch: usize) -> (BTreeMap<String, Vec<usize>>, &'static str) {
        match *self {
            BatchKind::Rows { features, .. } => (
                BTreeMap::from([
                    ("x".to_string(), vec![batch, features]),
                    ("y".to_string(), vec![batch]),
                ]),
                "y",
            ),
            BatchKind::Tokens { ctx, .. } => (
                ["tokens", "targets", "positions"]
                    .into_iter()
                    .map(|k| (k.to_string(), vec![batch * ctx]))
                    .collect(),
                "targets",
            ),
        }
    }
}

/// A state tensor of a graph program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphParam {
    /// Its name in the state (not `loss`, not under `opt.`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// How the seed state initialises it (R5).
    pub init: Init,
    /// Whether the optimizer updates it (else it is carried unchanged: a buffer).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub trainable: bool,
}

fn yes() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

/// A forward node of a graph program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphNode {
    /// Its name (unique among the batch tensors, the parameters and the nodes).
    pub name: String,
    /// The operator and its parameters.
    pub op: Op,
    /// Its inputs by name: batch tensors, parameters or earlier nodes.
    pub inputs: Vec<String>,
}

impl GraphParam {
    /// A param named `name`.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, init: Init, trainable: bool) -> Self {
        GraphParam {
            name: name.into(),
            shape,
            init,
            trainable,
        }
    }
}

impl GraphNode {
    /// A node named `name` applying `op` to the named `inputs`.
    pub fn new(name: impl Into<String>, op: Op, inputs: &[&str]) -> Self {
        GraphNode {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Most forward nodes a graph program may list.
pub const MAX_GRAPH_NODES: usize = 4096;
/// Most parameters a graph program may list.
pub const MAX_GRAPH_PARAMS: usize = 1024;
/// Longest name in a graph program.
pub const MAX_GRAPH_NAME_BYTES: usize = 128;

impl Model {
    /// What this model's batch holds.
    pub fn batch_kind(&self) -> BatchKind {
        match self {
            Model::Mlp { input, classes, .. } => BatchKind::Rows {
                features: *input,
                classes: *classes,
            },
            Model::Transformer { ctx, vocab, .. } => BatchKind::Tokens {
                ctx: *ctx,
                vocab: *vocab,
            },
            Model::Graph { batch, .. } => *batch,
        }
    }

    /// The family's name.
    pub fn family(&self) -> &'static str {
        match self {
            Model::Mlp { .. } => "mlp",
            Model::Transformer { .. } => "transformer",
            Model::Graph { .. } => "graph",
        }
    }
}

/// Hidden activation of the MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// tanh-GELU.
    Gelu,
    /// tanh.
    Tanh,
}

/// Loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Mean softmax cross-entropy.
    CrossEntropy,
}

/// Optimizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    /// SGD with momentum: `buf = momentum*buf + g; p = p - lr*buf`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum.
        momentum: f32,
    },
    /// AdamW with decoupled weight decay (applied to rank-2 parameters only).
    Adamw {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Denominator epsilon.
        eps: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
}

/// The dataset a program trains on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRef {
    /// Name (builtin `digits` or `corpus`, or a file path resolved by the caller).
    pub name: String,
    /// Merkle root the loaded dataset must have.
    #[serde(with = "merkle::hex32")]
    pub root: Hash,
    /// Rows `0..train_rows` are for training; the rest are held out.
    pub train_rows: u64,
}

/// Where a node input comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// A state tensor (parameter, optimizer moment, counter) by name, before the step.
    State(String),
    /// A batch tensor by name.
    Batch(String),
    /// The output of an earlier node of the same step.
    Node(usize),
}

/// One operator application in a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Position in the step (0-based); leaf `index` of the op root.
    pub index: usize,
    /// Readable label, e.g. `l0.w.grad`.
    pub label: String,
    /// The operator and its parameters.
    pub op: Op,
    /// RepOps op version.
    pub version: u32,
    /// Input references.
    pub inputs: Vec<Input>,
    /// Shapes of the inputs.
    pub input_shapes: Vec<Vec<usize>>,
    /// Output shape.
    pub shape: Vec<usize>,
}

/// Cost estimate of one node, for the referee bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Floating-point operations (an fma counts 2; exp/log/tanh count 20).
    pub flops: u64,
    /// Bytes of input tensors to reveal.
    pub input_bytes: u64,
}

fn numel(s: &[usize]) -> u64 {
    s.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64))
}

impl Node {
    /// Cost estimate: at least one operation per element read or written
    /// (`2·m·n·k` for a matrix product), checked against the real work of
    /// every op by `fuzz/fuzz_targets/cost_model.rs`.
    pub fn cost(&self) -> Cost {
        let out = numel(&self.shape);
        let input_bytes = self
            .input_shapes
            .iter()
            .fold(0u64, |a, s| a.saturating_add(numel(s).saturating_mul(4)));
        let first = self.input_shapes.first().map(|s| numel(s)).unwrap_or(0);
        let largest = self
            .input_shapes
            .iter()
            .map(|s| numel(s))
            .max()
            .unwrap_or(0);
        let flops = match &self.op {
            Op::MatMul { ta, .. } => {
                let s = &self.input_shapes[0];
                let k = if *ta { s[0] } else { s[1] } as u64;
                out.saturating_mul(k).saturating_mul(2)
            }
            Op::BatchedMatMul { ta, .. } => {
                let s = &self.input_shapes[0];
                let k = if *ta { s[1] } else { s[2] } as u64;
                out.saturating_mul(k).saturating_mul(2)
            }
            Op::Exp | Op::Log | Op::Tanh | Op::Sigmoid | Op::Gelu | Op::GeluBackward => {
                out.saturating_mul(20)
            }
            Op::Softmax
            | Op::LogSoftmax
            | Op::CrossEntropy
            | Op::CrossEntropyBackward
            | Op::LayerNorm { .. }
            | Op::LayerNormBackwardInput { .. }
            | Op::LayerNormBackwardGamma { .. } => first.saturating_mul(25),
            Op::AdamWUpdate { .. } => out.saturating_mul(10),
            // A log, an exp and a sine and cosine per pair, then four products;
            // a Philox block per element.
            Op::Rope { .. } | Op::Dropout { .. } => out.saturating_mul(40),
            // Not just the first input: an embedding's backward reads every
            // gradient row, which can outnumber its ids and its table.
            _ => out.max(largest).saturating_mul(2),
        };
        Cost { flops, input_bytes }
    }

    /// Whether the referee may recompute this node whole under these bounds; a
    /// dispute on a node that does not goes on inside it ([`Node::tile_cost`]).
    pub fn fits(&self, max_flops: u64, max_bytes: u64) -> bool {
        let c = self.cost();
        c.flops <= max_flops && c.input_bytes <= max_bytes
    }

    /// The referee's work for one tile of this node (`repops::tile`): FLOPs (the
    /// node's, pro rata, for elements and rows; one fma per step of a fold) and, per
    /// input, the bytes of its slice proof (`repops::slice::proof_bound`; zero for
    /// batch inputs, which the referee rebuilds).
    pub fn tile_cost(&self, tile: &repops::tile::Tile) -> Result<TileCost> {
        use repops::tile::Tile;
        let shapes: Vec<&[usize]> = self.input_shapes.iter().map(Vec::as_slice).collect();
        let ranges = repops::tile::input_ranges(&self.op, &shapes, tile).map_err(|source| {
            TrainError::Op {
                node: self.index,
                label: self.label.clone(),
                source,
            }
        })?;
        let out = numel(&self.shape).max(1);
        let part = |n: usize| {
            let f = self.cost().flops as u128 * n as u128;
            (f.div_ceil(out as u128) as u64).max(1)
        };
        let flops = match tile {
            Tile::Elems(r) => part(r.len()),
            Tile::Rows(r) => part(r.len() * (out as usize / self.rows().max(1))),
            Tile::Block { rows, cols, k, .. } => 2 * (rows.len() * cols.len() * k.len()) as u64,
            // Pro rata over the elements of input 0 it reads (a cross-entropy's rows
            // cost their exps; a column sum's elements one add each).
            Tile::Lanes { .. } => {
                let read: usize = ranges
                    .first()
                    .map_or(0, |r| r.iter().map(|x| x.len()).sum());
                let whole = numel(&self.input_shapes[0]).max(1) as u128;
                let f = self.cost().flops as u128 * read as u128;
                (f.div_ceil(whole) as u64).max(1)
            }
            Tile::Scan { k, .. } => k.len().max(1) as u64,
        };
        let input_bytes = self
            .inputs
            .iter()
            .zip(&shapes)
            .zip(&ranges)
            .map(|((i, s), r)| match i {
                Input::Batch(_) => 0,
                _ => repops::slice::proof_bound(s, r),
            })
            .collect();
        Ok(TileCost { flops, input_bytes })
    }

    /// Rows of a row-local op's input 0 (its shape's product over the last axis).
    fn rows(&self) -> usize {
        let s = self.input_shapes.first().map(Vec::as_slice).unwrap_or(&[]);
        (numel(s) / s.last().map_or(1, |&d| d.max(1) as u64)) as usize
    }

    /// The cost of the smallest tile the game inside this node can reach (element
    /// 0, one step of its fold), or `None` when the op has no tiles.
    pub fn min_tile_cost(&self) -> Option<TileCost> {
        let shapes: Vec<&[usize]> = self.input_shapes.iter().map(Vec::as_slice).collect();
        let k = if repops::tile::fold(&self.op, &shapes).is_some() {
            0..1
        } else {
            0..0
        };
        let t = repops::tile::element_tile(&self.op, &shapes, 0, k).ok()?;
        self.tile_cost(&t).ok()
    }
}

/// The referee's work for one tile ([`Node::tile_cost`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileCost {
    pub flops: u64,
    /// Slice proof bytes per input (zero for batch inputs).
    pub input_bytes: Vec<u64>,
}

impl TileCost {
    /// Whether the tile fits the bounds: FLOPs, all proofs together, and each proof
    /// (one transaction each).
    pub fn fits(&self, max_flops: u64, max_bytes: u64, max_proof: u64) -> bool {
        self.flops <= max_flops
            && self
                .input_bytes
                .iter()
                .fold(0u64, |a, b| a.saturating_add(*b))
                <= max_bytes
            && self.input_bytes.iter().all(|&b| b <= max_proof)
    }
}

/// The expanded step: nodes plus where each new state tensor comes from.
#[derive(Clone, Debug)]
pub struct StepGraph {
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
    /// New value of each state tensor: state name -> node index.
    pub updates: BTreeMap<String, usize>,
    /// Index of the loss node (a scalar).
    pub loss: usize,
    /// Index of the logits node.
    pub logits: usize,
    /// Shapes of the state tensors after a step (what checkpoints hold; a merge's
    /// step reads its inputs instead: [`Program::state_input_shapes`]).
    pub state_shapes: BTreeMap<String, Vec<usize>>,
    /// Shapes of the batch tensors.
    pub batch_shapes: BTreeMap<String, Vec<usize>>,
}

impl StepGraph {
    /// Bytes one step can hold at once, as an upper bound: every node's
    /// output (backward reads the forward's), the batch, the state before the
    /// step (a merge's: every input's) and after. What a device must have free
    /// to run it.
    pub fn planned_peak_bytes(&self) -> u64 {
        let bytes = |s: &Vec<usize>| 4u64.saturating_mul(s.iter().map(|&d| d as u64).product());
        let outputs = self
            .nodes
            .iter()
            .fold(0u64, |a, n| a.saturating_add(bytes(&n.shape)));
        let batch = self
            .batch_shapes
            .values()
            .fold(0u64, |a, s| a.saturating_add(bytes(s)));
        let state = self
            .state_shapes
            .values()
            .fold(0u64, |a, s| a.saturating_add(bytes(s)));
        let mut read = BTreeMap::new();
        for n in &self.nodes {
            for (i, shape) in n.inputs.iter().zip(&n.input_shapes) {
                if let Input::State(name) = i {
                    read.insert(name.as_str(), bytes(shape));
                }
            }
        }
        let before = read.values().fold(0u64, |a, b| a.saturating_add(*b));
        outputs
            .saturating_add(batch)
            .saturating_add(state.max(before))
            .saturating_add(state)
    }
}

/// How a state tensor is initialised (R5).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// `(2u - 1) * a`, `u` the R5 uniform of element `i` on the tensor's stream.
    Uniform(f32),
    /// All `+0.0`.
    Zeros,
    /// All `1.0`.
    Ones,
}

fn perr(msg: impl Into<String>) -> TrainError {
    TrainError::Program(msg.into())
}

fn finite_pos(name: &str, v: f32) -> Result<()> {
    if !v.is_finite() || v <= 0.0 {
        return Err(perr(format!("{name} = {v} must be finite and > 0")));
    }
    Ok(())
}

fn unit(name: &str, v: f32) -> Result<()> {
    if !(0.0..1.0).contains(&v) {
        return Err(perr(format!("{name} = {v} must be in [0, 1)")));
    }
    Ok(())
}

/// Largest dimension accepted in a program, to keep node costs bounded.
pub const MAX_DIM: usize = 1 << 16;

/// Bounds on the node list per layer and outside the layers, for
/// [`Program::footprint`] (checked against the real expansion in tests).
pub const NODES_PER_LAYER_BOUND: u64 = 160;
pub const NODES_FIXED_BOUND: u64 = 256;

/// What a program makes a validator hold and walk, bounded from above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes of the whole training state (parameters and optimizer slots).
    pub state_bytes: u64,
    /// Nodes of one step's graph.
    pub nodes: u64,
}

impl Program {
    /// A builtin program: `mlp-digits` or `tiny-lm`.
    pub fn builtin(name: &str) -> Result<Program> {
        let p = match name {
            "mlp-digits" => Program {
                name: name.into(),
                model: Model::Mlp {
                    input: 64,
                    hidden: vec![64],
                    classes: 10,
                    activation: Activation::Relu,
                    input_scale: 0.0625,
                },
                loss: Loss::CrossEntropy,
                optimizer: Optimizer::Adamw {
                    lr: 0.005,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.0001,
                },
                batch_size: 64,
                steps: 300,
                seed: 1,
                dataset: DatasetRef {
                    name: "digits".into(),
                    root: merkle::parse_hex32(DIGITS_ROOT).map_err(perr)?,
                    train_rows: 1500,
                },
                op_version: OP_VERSION,
                init_state: None,
                inputs: Vec::new(),
                mode: Mode::Train,
                record_loss: false,
                schedule: None,
                clip_norm: None,
                grad_accum: 1,
            },
            "tiny-lm" => Program {
                name: name.into(),
                model: Model::Transformer {
                    vocab: 128,
                    ctx: 32,
                    d_model: 64,
                    heads: 4,
                    layers: 2,
                    d_mlp: 256,
                    ln_eps: 1e-5,
                },
                loss: Loss::CrossEntropy,
                optimizer: Optimizer::Adamw {
                    lr: 0.003,
                    beta1: 0.9,
                    beta2: 0.99,
                    eps: 1e-8,
                    weight_decay: 0.01,
                },
                batch_size: 16,
                steps: 400,
                seed: 1,
                dataset: DatasetRef {
                    name: "corpus".into(),
                    root: merkle::parse_hex32(CORPUS_ROOT).map_err(perr)?,
                    train_rows: 190,
                },
                op_version: OP_VERSION,
                init_state: None,
                inputs: Vec::new(),
                mode: Mode::Train,
                record_loss: false,
                schedule: None,
                clip_norm: None,
                grad_accum: 1,
            },
            "gated-digits" => {
                let mut p = Program::builtin("mlp-digits")?;
                p.name = name.into();
                p.model = gated_digits_model();
                p
            }
            "llama-lm" => {
                let mut p = Program::builtin("tiny-lm")?;
                p.name = name.into();
                p.model = llama_lm_model(32, 128, 64, 4, 2, 128);
                p.schedule = Some(Schedule {
                    warmup: 20,
                    decay: 380,
                    min_factor: 0.1,
                });
                p.clip_norm = Some(1.0);
                p
            }
            "cnn-digits" => {
                let mut p = Program::builtin("mlp-digits")?;
                p.name = name.into();
                p.model = cnn_digits_model();
                p.steps = 600;
                p
            }
            _ => {
                return Err(perr(format!(
                    "no builtin program named {name:?} (try mlp-digits, tiny-lm, gated-digits, cnn-digits, llama-lm)"
                )))
            }
        };
        Ok(p)
    }

    /// Parse a program from JSON and validate it.
    pub fn from_json(s: &str) -> Result<Program> {
        let p: Program =
            serde_json::from_str(s).map_err(|e| perr(format!("not a valid program: {e}")))?;
        p.validate()?;
        Ok(p)
    }

    /// BLAKE3 of the program's canonical JSON (field order as declared).
    pub fn hash(&self) -> Hash {
        *blake3::hash(&serde_json::to_vec(self).unwrap_or_default()).as_bytes()
    }

    /// Check that the program is possible.
    pub fn validate(&self) -> Result<()> {
        if self.op_version != OP_VERSION {
            return Err(perr(format!(
                "op_version {} is not supported (this build implements {OP_VERSION})",
                self.op_version
            )));
        }
        if self.batch_size == 0 || self.batch_size > MAX_DIM {
            return Err(perr(format!(
                "batch_size {} must be in 1..={MAX_DIM}",
                self.batch_size
            )));
        }
        if self.dataset.train_rows == 0 {
            return Err(perr("dataset.train_rows must be > 0"));
        }
        if let Some(init) = &self.init_state {
            if init.name.is_empty() || init.name.len() > MAX_SOURCE_NAME_BYTES {
                return Err(perr(format!(
                    "init_state.name must have 1..={MAX_SOURCE_NAME_BYTES} bytes"
                )));
            }
        }
        for (i, s) in self.inputs.iter().enumerate() {
            if s.name.is_empty() || s.name.len() > MAX_SOURCE_NAME_BYTES {
                return Err(perr(format!(
                    "inputs[{i}].name must have 1..={MAX_SOURCE_NAME_BYTES} bytes"
                )));
            }
            if s.step >= MAX_STEP_COUNTER {
                return Err(perr(format!(
                    "inputs[{i}].step = {} must be below {MAX_STEP_COUNTER}",
                    s.step
                )));
            }
        }
        if let Some(c) = self.clip_norm {
            finite_pos("clip_norm", c)?;
        }
        if self.grad_accum == 0 || self.grad_accum > MAX_GRAD_ACCUM {
            return Err(perr(format!(
                "grad_accum = {} must be in 1..={MAX_GRAD_ACCUM}",
                self.grad_accum
            )));
        }
        if self.grad_accum > 1 && !self.mode.is_train() {
            return Err(perr(
                "grad_accum applies to training steps only (mode train)",
            ));
        }
        if let Some(sch) = &self.schedule {
            if sch.warmup > MAX_STEP_COUNTER || sch.decay > MAX_STEP_COUNTER {
                return Err(perr(format!(
                    "schedule.warmup and schedule.decay must be at most {MAX_STEP_COUNTER}"
                )));
            }
            if !(0.0..=1.0).contains(&sch.min_factor) {
                return Err(perr(format!(
                    "schedule.min_factor = {} must be in [0, 1]",
                    sch.min_factor
                )));
            }
        }
        if let Mode::Merge { outer_lr } = self.mode {
            finite_pos("mode.outer_lr", outer_lr)?;
            if !(2..=MAX_MERGE_INPUTS).contains(&self.inputs.len()) {
                return Err(perr(format!(
                    "mode merge needs 2..={MAX_MERGE_INPUTS} inputs (the global state and the contributions), got {}",
                    self.inputs.len()
                )));
            }
            if self.steps != 1 || self.init_state.is_some() {
                return Err(perr(
                    "mode merge is one step from its inputs (steps = 1, no init_state)",
                ));
            }
        } else if !self.inputs.is_empty() {
            return Err(perr("only mode merge reads inputs"));
        }
        let first = self.first_counter();
        if first.saturating_add(self.steps) > MAX_STEP_COUNTER {
            return Err(perr(format!(
                "the first opt.step + steps = {} exceeds {MAX_STEP_COUNTER} (opt.step is an f32)",
                first.saturating_add(self.steps)
            )));
        }
        if let Mode::Evaluate { rows_from, rows_to } = self.mode {
            if !self.record_loss {
                return Err(perr(
                    "mode evaluate needs record_loss (its result is the loss)",
                ));
            }
            if rows_from >= rows_to || rows_to - rows_from > u32::MAX as u64 {
                return Err(perr(format!(
                    "mode evaluate needs rows_from < rows_to (at most 2^32 rows), got {rows_from}..{rows_to}"
                )));
            }
        }
        let dim = |n: &str, v: usize| -> Result<()> {
            if v == 0 || v > MAX_DIM {
                return Err(perr(format!("{n} = {v} must be in 1..={MAX_DIM}")));
            }
            Ok(())
        };
        match &self.model {
            Model::Mlp {
                input,
                hidden,
                classes,
                input_scale,
                ..
            } => {
                dim("model.input", *input)?;
                for (i, h) in hidden.iter().enumerate() {
                    dim(&format!("model.hidden[{i}]"), *h)?;
                }
                dim("model.classes", *classes)?;
                if !input_scale.is_finite() {
                    return Err(perr("model.input_scale must be finite"));
                }
            }
            Model::Transformer {
                vocab,
                ctx,
                d_model,
                heads,
                layers,
                d_mlp,
                ln_eps,
            } => {
                dim("model.vocab", *vocab)?;
                dim("model.ctx", *ctx)?;
                dim("model.d_model", *d_model)?;
                dim("model.heads", *heads)?;
                dim("model.layers", *layers)?;
                dim("model.d_mlp", *d_mlp)?;
                if d_model % heads != 0 {
                    return Err(perr(format!(
                        "model.heads = {heads} does not divide d_model = {d_model}"
                    )));
                }
                finite_pos("model.ln_eps", *ln_eps)?;
            }
            Model::Graph {
                batch,
                params,
                nodes,
                logits,
            } => {
                match *batch {
                    BatchKind::Rows { features, classes } => {
                        dim("model.batch.features", features)?;
                        dim("model.batch.classes", classes)?;
                    }
                    BatchKind::Tokens { ctx, vocab } => {
                        dim("model.batch.ctx", ctx)?;
                        dim("model.batch.vocab", vocab)?;
                    }
                }
                validate_graph(batch, params, nodes, logits)?;
            }
        }
        match &self.optimizer {
            Optimizer::Sgd { lr, momentum } => {
                finite_pos("optimizer.lr", *lr)?;
                unit("optimizer.momentum", *momentum)?;
            }
            Optimizer::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                finite_pos("optimizer.lr", *lr)?;
                unit("optimizer.beta1", *beta1)?;
                unit("optimizer.beta2", *beta2)?;
                finite_pos("optimizer.eps", *eps)?;
                if !weight_decay.is_finite() || *weight_decay < 0.0 {
                    return Err(perr(format!(
                        "optimizer.weight_decay = {weight_decay} must be finite and >= 0"
                    )));
                }
            }
        }
        Ok(())
    }

    /// `opt.step` of the state the program starts from (step `t`'s state has
    /// `first_counter() + t`): the committed state's for a fine-tune, the global
    /// state's for a merge, else 0.
    pub fn first_counter(&self) -> u64 {
        match (&self.init_state, self.inputs.first()) {
            (Some(i), _) => i.step,
            (None, Some(g)) if self.is_merge() => g.step,
            _ => 0,
        }
    }

    /// Micro-batches per step ([`Program::grad_accum`]).
    pub fn micro_batches(&self) -> usize {
        self.grad_accum.max(1) as usize
    }

    /// Dataset rows one step reads: `batch_size` per micro-batch.
    pub fn rows_per_step(&self) -> usize {
        self.batch_size.saturating_mul(self.micro_batches())
    }

    /// Whether this is a merge ([`Mode::Merge`]).
    pub fn is_merge(&self) -> bool {
        matches!(self.mode, Mode::Merge { .. })
    }

    /// `h_0` when the program commits to it (a fine-tune's `init_state.root`, a
    /// merge's [`inputs_root`]); `None` for a program starting from its seed.
    pub fn committed_h0(&self) -> Option<Hash> {
        if let Some(i) = &self.init_state {
            return Some(i.root);
        }
        self.is_merge().then(|| inputs_root(&self.inputs))
    }

    /// Input `i` of a merge as the program a fine-tune of it would be (the base
    /// model with the input as its `init_state`): each input is fetched and checked
    /// exactly as a committed starting state is.
    pub fn input_program(&self, i: usize) -> Option<Program> {
        let input = self.inputs.get(i)?;
        let mut p = self.clone();
        p.mode = Mode::Train;
        p.inputs = Vec::new();
        p.init_state = Some(input.clone());
        Some(p)
    }

    /// Names and shapes of the tensors step `lo + 1` reads as its state: a merge's
    /// first step reads every input under its [`input_prefix`]; otherwise the
    /// [`Program::state_spec`] layout.
    pub fn state_input_shapes(&self, lo: u64) -> Result<BTreeMap<String, Vec<usize>>> {
        let spec = self.state_spec()?;
        if lo != 0 || !self.is_merge() {
            return Ok(spec.into_iter().map(|(k, (s, _))| (k, s)).collect());
        }
        let mut out = BTreeMap::new();
        for i in 0..self.inputs.len() {
            let prefix = input_prefix(i);
            for (name, (shape, _)) in &spec {
                out.insert(format!("{prefix}{name}"), shape.clone());
            }
        }
        Ok(out)
    }

    /// Where state tensor `name`, as step `lo + 1` reads it, is committed: under
    /// `h_lo` at its position in the state, or, for a merge's first step, under its
    /// input's root (`h_0` is the root over the inputs' roots, which the program
    /// lists) at its position in that input's state.
    pub fn state_slot(&self, lo: u64, name: &str) -> Result<StateSlot> {
        let spec = self.state_spec()?;
        let count = spec.len() as u64;
        let (input, leaf_name) = if lo == 0 && self.is_merge() {
            let (i, rest) = (0..self.inputs.len())
                .find_map(|i| name.strip_prefix(&input_prefix(i)).map(|r| (i, r)))
                .ok_or_else(|| perr(format!("a merge reads no state tensor {name:?}")))?;
            (Some((i, self.inputs[i].root)), rest.to_string())
        } else {
            (None, name.to_string())
        };
        let index = spec
            .keys()
            .position(|k| *k == leaf_name)
            .ok_or_else(|| perr(format!("no state tensor {name:?}")))? as u64;
        Ok(StateSlot {
            input,
            leaf_name,
            index,
            count,
        })
    }

    /// The rows the program draws from exist in a dataset of `rows` rows.
    pub fn validate_rows(&self, rows: u64) -> Result<()> {
        if self.dataset.train_rows > rows {
            return Err(perr(format!(
                "dataset.train_rows = {} exceeds the dataset's {rows} rows",
                self.dataset.train_rows
            )));
        }
        if let Mode::Evaluate { rows_to, .. } = self.mode {
            if rows_to > rows {
                return Err(perr(format!(
                    "mode evaluate reads rows up to {rows_to}, the dataset has {rows}"
                )));
            }
        }
        Ok(())
    }

    /// Validate against a loaded dataset's header.
    pub fn validate_dataset(&self, d: &crate::dataset::Dataset) -> Result<()> {
        use crate::dataset::Schema;
        let h = d.header();
        if d.root() != self.dataset.root {
            return Err(perr(format!(
                "dataset root {} is not the program's {}",
                hex::encode(d.root()),
                hex::encode(self.dataset.root)
            )));
        }
        self.validate_rows(h.rows)?;
        match (self.model.batch_kind(), h.schema) {
            (BatchKind::Rows { features, classes }, Schema::Digits8x8) => {
                if features != 64 || classes < 10 {
                    return Err(perr(format!(
                        "digits rows have 64 features and 10 classes; the model takes {features} features, {classes} classes"
                    )));
                }
            }
            (BatchKind::Tokens { vocab, ctx }, s)
                if s == Schema::Ascii || s.token_bytes().is_some() =>
            {
                if s == Schema::Ascii && vocab < 128 {
                    return Err(perr(format!(
                        "ascii data needs vocab >= 128, model has {vocab}"
                    )));
                }
                let tokens = s.row_tokens(h.row_bytes);
                if (ctx as u64) + 1 > tokens {
                    let unit = if s == Schema::Ascii { "byte" } else { "token" };
                    return Err(perr(format!(
                        "ctx + 1 = {} exceeds the dataset's {tokens}-{unit} rows",
                        ctx + 1
                    )));
                }
                // Every id must be an embedding row: refused before anyone trains (a
                // solver checks this before it claims), not at the step that reads it.
                if s.token_bytes().is_some() {
                    let per_row = tokens as usize;
                    let rb = h.row_bytes as usize;
                    for (r, row) in d.data().chunks(rb).enumerate() {
                        if let Some(t) = (0..per_row)
                            .filter_map(|i| s.token(row, i))
                            .find(|&t| t as usize >= vocab)
                        {
                            return Err(perr(format!(
                                "row {r} has token {t}, outside the model's vocabulary of {vocab}"
                            )));
                        }
                    }
                }
            }
            (_, s) => {
                return Err(perr(format!(
                    "model family {} cannot train on schema {s:?}",
                    self.model.family()
                )));
            }
        }
        Ok(())
    }

    /// The ordered node list of one training step.
    pub fn nodes(&self) -> Result<Vec<Node>> {
        Ok(self.graph()?.nodes)
    }

    /// The full step graph (training: forward, backward, update; evaluation:
    /// forward and the carried state).
    pub fn graph(&self) -> Result<StepGraph> {
        self.validate()?;
        let kind = match self.mode {
            Mode::Train => Kind::Train,
            Mode::Evaluate { .. } => Kind::Evaluate,
            Mode::Merge { outer_lr } => return build_merge(self, outer_lr),
        };
        build(self, self.batch_size, kind)
    }

    /// A forward-only graph for `batch` examples (evaluation).
    pub fn eval_graph(&self, batch: usize) -> Result<StepGraph> {
        self.validate()?;
        if batch == 0 {
            return Err(perr("evaluation batch must be > 0"));
        }
        build(self, batch, Kind::Forward)
    }

    /// This program with its model as a graph ([`Model::Graph`]): the same
    /// parameters (names, shapes, initialisers) and the same forward nodes, so it
    /// trains to the same state hashes. A starting point for one's own model.
    pub fn to_graph(&self) -> Result<Program> {
        self.validate()?;
        let g = build(self, self.batch_size, Kind::Forward)?;
        let name = |i: &Input| match i {
            Input::State(s) | Input::Batch(s) => s.clone(),
            Input::Node(n) => format!("n{n}"),
        };
        let nodes = g.nodes[..g.loss]
            .iter()
            .map(|n| GraphNode {
                name: format!("n{}", n.index),
                // The builtin families' reshapes lead with a batch-dependent dimension:
                // inferred, so that the graph expands at any batch size.
                op: match &n.op {
                    Op::Reshape { shape } if !shape.is_empty() => {
                        let mut shape = shape.clone();
                        shape[0] = 0;
                        Op::Reshape { shape }
                    }
                    op => op.clone(),
                },
                inputs: n.inputs.iter().map(name).collect(),
            })
            .collect();
        let params: Vec<GraphParam> = [
            (param_spec(&self.model), true),
            (buffer_spec(&self.model), false),
        ]
        .into_iter()
        .flat_map(|(spec, trainable)| {
            spec.into_iter()
                .map(move |(name, (shape, init))| GraphParam::new(name, shape, init, trainable))
        })
        .collect();
        let mut p = self.clone();
        p.model = Model::Graph {
            batch: self.model.batch_kind(),
            params,
            nodes,
            logits: format!("n{}", g.logits),
        };
        p.validate()?;
        Ok(p)
    }

    /// Upper bounds on what expanding this program costs, computed from its
    /// sizes alone (no allocation), so a validator can refuse an oversized
    /// program before building anything. Call after [`Program::validate`].
    pub fn footprint(&self) -> Footprint {
        let m = |a: u64, b: u64| a.saturating_mul(b);
        let mut one = self.step_footprint();
        // Each micro-batch repeats the forward and backward.
        one.nodes = m(one.nodes, self.micro_batches() as u64);
        if self.is_merge() {
            // Every input's state plus the merged one; per state tensor at most two
            // nodes per input (a difference and a sum) and two more, and there are
            // fewer state tensors than a training step has nodes.
            let k = self.inputs.len() as u64;
            return Footprint {
                state_bytes: m(one.state_bytes, k.saturating_add(1)),
                nodes: m(one.nodes, m(2, k).saturating_add(2)),
            };
        }
        one
    }

    /// [`Program::footprint`] of one training step from one state.
    fn step_footprint(&self) -> Footprint {
        let m = |a: u64, b: u64| a.saturating_mul(b);
        let slots = match self.optimizer {
            Optimizer::Sgd { .. } => 2,
            Optimizer::Adamw { .. } => 3,
        };
        if let Model::Graph { params, nodes, .. } = &self.model {
            // A forward node's backward rule makes at most three gradient nodes,
            // each followed by at most one accumulating Add; the optimizer (or an
            // evaluation's carry) at most four nodes per param; the loss, its
            // gradient and the counters a few more.
            let elems = |g: &GraphParam| g.shape.iter().fold(1u64, |a, &d| m(a, d as u64));
            let state = params.iter().fold(0u64, |a, g| {
                a.saturating_add(m(elems(g), if g.trainable { slots } else { 1 }))
            });
            return Footprint {
                state_bytes: m(4, state).saturating_add(64),
                nodes: m(8, nodes.len() as u64)
                    .saturating_add(m(8, params.len() as u64))
                    .saturating_add(64),
            };
        }
        let (params, layers) = match &self.model {
            Model::Mlp {
                input,
                hidden,
                classes,
                ..
            } => {
                let mut dims = vec![*input as u64];
                dims.extend(hidden.iter().map(|&h| h as u64));
                dims.push(*classes as u64);
                let p = dims.windows(2).fold(0u64, |acc, w| {
                    acc.saturating_add(m(w[0], w[1]).saturating_add(w[1]))
                });
                (p, dims.len() as u64)
            }
            Model::Transformer {
                vocab,
                ctx,
                d_model,
                layers,
                d_mlp,
                ..
            } => {
                let (v, c, d, l, f) = (
                    *vocab as u64,
                    *ctx as u64,
                    *d_model as u64,
                    *layers as u64,
                    *d_mlp as u64,
                );
                let per_layer = m(4, m(d, d))
                    .saturating_add(m(2, m(d, f)))
                    .saturating_add(f)
                    .saturating_add(m(6, d));
                let p = m(2, m(v, d))
                    .saturating_add(m(c, d))
                    .saturating_add(m(l, per_layer))
                    .saturating_add(m(2, d))
                    .saturating_add(v);
                (p, l.saturating_add(2))
            }
            // Returned above.
            Model::Graph { .. } => (0, 0),
        };
        let state_bytes = m(4, m(params, slots)).saturating_add(64);
        let nodes = m(layers, NODES_PER_LAYER_BOUND).saturating_add(NODES_FIXED_BOUND);
        Footprint { state_bytes, nodes }
    }

    /// Names, shapes and initialisers of all state tensors, sorted by name.
    pub fn state_spec(&self) -> Result<BTreeMap<String, (Vec<usize>, Init)>> {
        self.validate()?;
        let mut s = BTreeMap::new();
        let params = param_spec(&self.model);
        for (name, (shape, init)) in &params {
            s.insert(name.clone(), (shape.clone(), *init));
            match self.optimizer {
                Optimizer::Sgd { .. } => {
                    s.insert(format!("opt.buf.{name}"), (shape.clone(), Init::Zeros));
                }
                Optimizer::Adamw { .. } => {
                    s.insert(format!("opt.m.{name}"), (shape.clone(), Init::Zeros));
                    s.insert(format!("opt.v.{name}"), (shape.clone(), Init::Zeros));
                }
            }
        }
        s.extend(buffer_spec(&self.model));
        s.insert("opt.step".into(), (vec![], Init::Zeros));
        if self.record_loss {
            s.insert(LOSS_STATE.into(), (vec![], Init::Zeros));
        }
        if let Optimizer::Adamw { .. } = self.optimizer {
            s.insert("opt.beta1_pow".into(), (vec![], Init::Ones));
            s.insert("opt.beta2_pow".into(), (vec![], Init::Ones));
        }
        Ok(s)
    }
}

/// A graph program's structure (its shapes are checked when it is expanded, by
/// each op's `output_shape`): bounded counts, well-formed unique names, parameters
/// of sensible shapes, inputs that name the batch, a parameter or an earlier node.
fn validate_graph(
    batch: &BatchKind,
    params: &[GraphParam],
    nodes: &[GraphNode],
    logits: &str,
) -> Result<()> {
    if params.len() > MAX_GRAPH_PARAMS {
        return Err(perr(format!(
            "a graph has at most {MAX_GRAPH_PARAMS} params, got {}",
            params.len()
        )));
    }
    if nodes.is_empty() || nodes.len() > MAX_GRAPH_NODES {
        return Err(perr(format!(
            "a graph has 1..={MAX_GRAPH_NODES} nodes, got {}",
            nodes.len()
        )));
    }
    let name_ok = |what: &str, n: &str| -> Result<()> {
        // Printable ASCII without '/', which a merge's input prefixes use.
        if n.is_empty()
            || n.len() > MAX_GRAPH_NAME_BYTES
            || !n.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'/')
        {
            return Err(perr(format!(
                "{what} name {n:?} must be 1..={MAX_GRAPH_NAME_BYTES} printable ASCII characters without '/'"
            )));
        }
        Ok(())
    };
    let mut known: HashSet<&str> = HashSet::new();
    let (batch_tensors, _) = batch.tensors(1);
    for k in batch_tensors.keys() {
        known.insert(k.as_str());
    }
    for gp in params {
        name_ok("param", &gp.name)?;
        if gp.name == LOSS_STATE || gp.name.starts_with("opt.") {
            return Err(perr(format!(
                "param name {:?} is reserved (loss, opt.*)",
                gp.name
            )));
        }
        if !known.insert(gp.name.as_str()) {
            return Err(perr(format!("name {:?} is used twice", gp.name)));
        }
        if gp.shape.len() > 4 || gp.shape.iter().any(|&d| d == 0 || d > MAX_DIM) {
            return Err(perr(format!(
                "param {:?}: shape {:?} must have at most 4 dims, each in 1..={MAX_DIM}",
                gp.name, gp.shape
            )));
        }
        if let Init::Uniform(a) = gp.init {
            if !a.is_finite() {
                return Err(perr(format!("param {:?}: init must be finite", gp.name)));
            }
        }
    }
    for n in nodes {
        name_ok("node", &n.name)?;
        if let Some(i) = n.inputs.iter().find(|i| !known.contains(i.as_str())) {
            return Err(perr(format!(
                "node {:?}: input {i:?} is neither a batch tensor, a param nor an earlier node",
                n.name
            )));
        }
        if !known.insert(n.name.as_str()) {
            return Err(perr(format!("name {:?} is used twice", n.name)));
        }
    }
    if !nodes.iter().any(|n| n.name == logits) {
        return Err(perr(format!("logits {logits:?} is not a node")));
    }
    Ok(())
}

/// The `gated-digits` example: a graph program on the digits using what the builtin
/// families do not (a transposed weight, a sigmoid gate, `Mul`, `Sub`, `Exp`,
/// `AddScalar`, `Transpose`, a doubly transposed product, `LogSoftmax`) and a
/// buffer (a parameter the optimizer leaves alone). A template for one's own graph.
fn gated_digits_model() -> Model {
    let (param, node) = (GraphParam::new, GraphNode::new);
    let mm = |ta, tb| Op::MatMul { ta, tb };
    Model::Graph {
        batch: BatchKind::Rows {
            features: 64,
            classes: 10,
        },
        params: vec![
            // Stored transposed: [out, in].
            param("wt", vec![32, 64], Init::Uniform(0.125), true),
            param("gate", vec![64, 32], Init::Uniform(0.125), true),
            param("shift", vec![32], Init::Uniform(0.5), false),
            param("v", vec![32, 10], Init::Uniform(0.176_776_7), true),
            param("u", vec![10, 32], Init::Uniform(0.176_776_7), true),
        ],
        nodes: vec![
            node("xs", Op::Scale { s: 0.0625 }, &["x"]),
            node("h", mm(false, true), &["xs", "wt"]),
            node("g", mm(false, false), &["xs", "gate"]),
            node("s", Op::Sigmoid, &["g"]),
            node("hs", Op::Mul, &["h", "s"]),
            node("hb", Op::AddBias, &["hs", "shift"]),
            node("d", Op::Sub, &["hb", "g"]),
            node("e", Op::Exp, &["d"]),
            node("e1", Op::AddScalar { s: -1.0 }, &["e"]),
            node("z", mm(false, false), &["e1", "v"]),
            node("et", Op::Transpose, &["e1"]),
            node("zt", mm(true, true), &["et", "u"]),
            node("zz", Op::Add, &["z", "zt"]),
            node("logits", Op::LogSoftmax, &["zz"]),
        ],
        logits: "logits".into(),
    }
}

/// The `cnn-digits` example: a convolutional network on the 8x8 digits written as a
/// graph. Two 3x3 convolutions (`im2col`, then a matrix product with the kernel as a
/// `[c*3*3, f]` matrix), each followed by ReLU and 2x2 max pooling (`im2col` of each
/// channel's windows as rows, then `max_last`), then a linear head.
fn cnn_digits_model() -> Model {
    // 0: the dimension inferred from the element count (the batch, or batch x channels).
    const B: usize = 0;
    let param = |name: &str, shape, init| GraphParam::new(name, shape, init, true);
    let node = GraphNode::new;
    let conv = |kh| Op::Im2Col {
        kh,
        kw: kh,
        stride: 1,
        pad: 1,
    };
    let pool = Op::Im2Col {
        kh: 2,
        kw: 2,
        stride: 2,
        pad: 0,
    };
    let reshape = |shape: &[usize]| Op::Reshape {
        shape: shape.to_vec(),
    };
    let nchw = Op::Permute {
        perm: vec![0, 3, 1, 2],
    };
    let mm = Op::MatMul {
        ta: false,
        tb: false,
    };
    Model::Graph {
        batch: BatchKind::Rows {
            features: 64,
            classes: 10,
        },
        params: vec![
            param("c1.w", vec![9, 16], Init::Uniform(inv_sqrt(9))),
            param("c1.b", vec![16], Init::Zeros),
            param("c2.w", vec![144, 32], Init::Uniform(inv_sqrt(144))),
            param("c2.b", vec![32], Init::Zeros),
            param("fc.w", vec![128, 10], Init::Uniform(inv_sqrt(128))),
            param("fc.b", vec![10], Init::Zeros),
        ],
        nodes: vec![
            node("xs", Op::Scale { s: 0.0625 }, &["x"]),
            node("img", reshape(&[B, 1, 8, 8]), &["xs"]),
            // conv 1: [B*64, 9] x [9, 16]
            node("c1.cols", conv(3), &["img"]),
            node("c1.mm", mm.clone(), &["c1.cols", "c1.w"]),
            node("c1.z", Op::AddBias, &["c1.mm", "c1.b"]),
            node("c1.a", Op::Relu, &["c1.z"]),
            node("c1.nhwc", reshape(&[B, 8, 8, 16]), &["c1.a"]),
            node("c1.nchw", nchw.clone(), &["c1.nhwc"]),
            // pool 1: each channel's 2x2 windows as rows -> [B, 16, 4, 4]
            node("p1.planes", reshape(&[B, 1, 8, 8]), &["c1.nchw"]),
            node("p1.win", pool.clone(), &["p1.planes"]),
            node("p1.max", Op::MaxLast, &["p1.win"]),
            node("p1.out", reshape(&[B, 16, 4, 4]), &["p1.max"]),
            // conv 2: [B*16, 144] x [144, 32]
            node("c2.cols", conv(3), &["p1.out"]),
            node("c2.mm", mm.clone(), &["c2.cols", "c2.w"]),
            node("c2.z", Op::AddBias, &["c2.mm", "c2.b"]),
            node("c2.a", Op::Relu, &["c2.z"]),
            node("c2.nhwc", reshape(&[B, 4, 4, 32]), &["c2.a"]),
            node("c2.nchw", nchw, &["c2.nhwc"]),
            // pool 2 -> [B, 32, 2, 2] -> [B, 128]
            node("p2.planes", reshape(&[B, 1, 4, 4]), &["c2.nchw"]),
            node("p2.win", pool, &["p2.planes"]),
            node("p2.max", Op::MaxLast, &["p2.win"]),
            node("flat", reshape(&[B, 128]), &["p2.max"]),
            node("fc.mm", mm, &["flat", "fc.w"]),
            node("logits", Op::AddBias, &["fc.mm", "fc.b"]),
        ],
        logits: "logits".into(),
    }
}

/// The params and nodes of a shipped example graph, in the order they are added.
#[derive(Default)]
struct GraphBuild {
    params: Vec<GraphParam>,
    nodes: Vec<GraphNode>,
}

impl GraphBuild {
    fn param(&mut self, name: String, shape: Vec<usize>, init: Init) {
        self.params.push(GraphParam::new(name, shape, init, true));
    }

    fn node(&mut self, name: String, op: Op, inputs: &[&str]) -> String {
        self.nodes.push(GraphNode::new(name.clone(), op, inputs));
        name
    }

    /// Rows `x` (`[B*ctx, heads*dh]`) as heads `[B*heads, ctx, dh]`: nodes `{w}.split`,
    /// `{w}.perm`, `{w}.heads`.
    fn split_heads(&mut self, w: &str, x: &str, ctx: usize, heads: usize, dh: usize) -> String {
        let reshape = |shape: Vec<usize>| Op::Reshape { shape };
        let v = self.node(format!("{w}.split"), reshape(vec![0, ctx, heads, dh]), &[x]);
        let v = self.node(format!("{w}.perm"), swap_heads(), &[&v]);
        self.node(format!("{w}.heads"), reshape(vec![0, ctx, dh]), &[&v])
    }

    /// Causal softmax attention of heads `q`, `k`, `v` (`[B*heads, ctx, dh]`), merged
    /// back into rows `[B*ctx, heads*dh]`: nodes `{pre}.scores` … `{pre}.ctx.merge`.
    fn attend(
        &mut self,
        pre: &str,
        [q, k, v]: [&str; 3],
        ctx: usize,
        heads: usize,
        dh: usize,
    ) -> String {
        let n = |s: &str| format!("{pre}.{s}");
        let bmm = |ta, tb| Op::BatchedMatMul { ta, tb };
        let reshape = |shape: Vec<usize>| Op::Reshape { shape };
        let s = self.node(n("scores"), bmm(false, true), &[q, k]);
        let s = self.node(n("scaled"), Op::Scale { s: inv_sqrt(dh) }, &[&s]);
        let fill = MaskFill::NegInf;
        let s = self.node(n("masked"), Op::CausalMask { fill }, &[&s]);
        let a = self.node(n("att"), Op::Softmax, &[&s]);
        let o = self.node(n("ctx"), bmm(false, false), &[&a, v]);
        let o = self.node(n("ctx.split"), reshape(vec![0, heads, ctx, dh]), &[&o]);
        let o = self.node(n("ctx.perm"), swap_heads(), &[&o]);
        self.node(n("ctx.merge"), reshape(vec![0, heads * dh]), &[&o])
    }

    fn model(self, batch: BatchKind, logits: &str) -> Model {
        Model::Graph {
            batch,
            params: self.params,
            nodes: self.nodes,
            logits: logits.into(),
        }
    }
}

/// `[B, ctx, heads, dh]` <-> `[B, heads, ctx, dh]`.
fn swap_heads() -> Op {
    Op::Permute {
        perm: vec![0, 2, 1, 3],
    }
}

/// A GPT-2-shaped causal LM as a graph: token and learned position embeddings
/// (`pos_rows` rows, at least `ctx`), `layers` pre-LayerNorm blocks (biased q, k, v
/// and output projections, a 4x GELU MLP), a final LayerNorm, and logits through the
/// token embedding (tied, as GPT-2 does). `gpt2_model(50257, 1024, ctx, 768, 12, 12)`
/// has GPT-2 small's 124,439,808 parameters. Initialised with GPT-2's scales
/// (uniform of the same standard deviation).
pub fn gpt2_model(
    vocab: usize,
    pos_rows: usize,
    ctx: usize,
    d: usize,
    heads: usize,
    layers: usize,
) -> Model {
    let dh = d / heads.max(1);
    // Uniform(a) has standard deviation a / sqrt(3).
    let std = |s: f32| Init::Uniform(s * 3f32.sqrt());
    let mm = Op::MatMul {
        ta: false,
        tb: false,
    };
    let ln = Op::LayerNorm { eps: 1e-5 };
    let mut g = GraphBuild::default();
    g.param("wte".into(), vec![vocab, d], std(0.02));
    g.param("wpe".into(), vec![pos_rows, d], std(0.01));
    let te = g.node("tok_emb".into(), Op::Embedding, &["wte", "tokens"]);
    let pe = g.node("pos_emb".into(), Op::Embedding, &["wpe", "positions"]);
    let mut x = g.node("emb".into(), Op::Add, &[&te, &pe]);
    let proj = 0.02 / (2.0 * layers.max(1) as f32).sqrt();
    for l in 0..layers {
        let p = |s: &str| format!("h{l}.{s}");
        for n in ["ln1", "ln2"] {
            g.param(p(&format!("{n}.g")), vec![d], Init::Ones);
            g.param(p(&format!("{n}.b")), vec![d], Init::Zeros);
        }
        for w in ["q", "k", "v"] {
            g.param(p(&format!("w{w}")), vec![d, d], std(0.02));
            g.param(p(&format!("b{w}")), vec![d], Init::Zeros);
        }
        g.param(p("wo"), vec![d, d], std(proj));
        g.param(p("bo"), vec![d], Init::Zeros);
        g.param(p("w1"), vec![d, 4 * d], std(0.02));
        g.param(p("b1"), vec![4 * d], Init::Zeros);
        g.param(p("w2"), vec![4 * d, d], std(proj));
        g.param(p("b2"), vec![d], Init::Zeros);
        let h = g.node(p("ln1"), ln.clone(), &[&x, &p("ln1.g"), &p("ln1.b")]);
        let [q, k, v] = ["q", "k", "v"].map(|w| {
            let y = g.node(p(w), mm.clone(), &[&h, &p(&format!("w{w}"))]);
            let y = g.node(
                p(&format!("{w}.b")),
                Op::AddBias,
                &[&y, &p(&format!("b{w}"))],
            );
            g.split_heads(&p(w), &y, ctx, heads, dh)
        });
        let o = g.attend(&format!("h{l}"), [&q, &k, &v], ctx, heads, dh);
        let o = g.node(p("o"), mm.clone(), &[&o, &p("wo")]);
        let o = g.node(p("o.b"), Op::AddBias, &[&o, &p("bo")]);
        x = g.node(p("res1"), Op::Add, &[&x, &o]);
        let h2 = g.node(p("ln2"), ln.clone(), &[&x, &p("ln2.g"), &p("ln2.b")]);
        let up = g.node(p("up"), mm.clone(), &[&h2, &p("w1")]);
        let up = g.node(p("up.b"), Op::AddBias, &[&up, &p("b1")]);
        let act = g.node(p("gelu"), Op::Gelu, &[&up]);
        let down = g.node(p("down"), mm.clone(), &[&act, &p("w2")]);
        let down = g.node(p("down.b"), Op::AddBias, &[&down, &p("b2")]);
        x = g.node(p("res2"), Op::Add, &[&x, &down]);
    }
    g.param("lnf.g".into(), vec![d], Init::Ones);
    g.param("lnf.b".into(), vec![d], Init::Zeros);
    let h = g.node("lnf".into(), ln, &[&x, "lnf.g", "lnf.b"]);
    g.node(
        "logits".into(),
        Op::MatMul {
            ta: false,
            tb: true,
        },
        &[&h, "wte"],
    );
    g.model(BatchKind::Tokens { ctx, vocab }, "logits")
}

/// GPT-2 small (`gpt2_model(50257, 1024, ctx, 768, 12, layers)`, one sequence of `ctx`
/// tokens a step, AdamW) on 64 rows of random token ids (`2·ctx` u16 ids a row from a
/// fixed xorshift stream): the 124M program the memory and referee benches measure, not
/// a model to learn anything from.
pub fn gpt2_small_on_random_tokens(ctx: usize, layers: usize) -> Result<(Program, crate::Dataset)> {
    const VOCAB: usize = 50257;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..64 * 2 * ctx)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % VOCAB as u64) as u16).to_le_bytes()
        })
        .collect();
    let dataset = crate::Dataset::build(
        "random-tokens",
        crate::dataset::Schema::TokensU16,
        (2 * ctx * 2) as u64,
        8,
        data,
        "random token ids",
        "CC0",
    )?;
    let mut p = Program::builtin("tiny-lm")?;
    p.name = "gpt2-small".into();
    p.model = gpt2_model(VOCAB, 1024, ctx, 768, 12, layers);
    p.batch_size = 1;
    p.steps = 2;
    p.dataset.name = dataset.header().name.clone();
    p.dataset.root = dataset.root();
    p.dataset.train_rows = dataset.rows();
    Ok((p, dataset))
}

/// The `llama-lm` example, a graph: a causal transformer LM in the style of LLaMA
/// (RMSNorm before attention and before a SwiGLU MLP, no biases, rotary position
/// embeddings on the queries and keys).
fn llama_lm_model(
    ctx: usize,
    vocab: usize,
    d: usize,
    heads: usize,
    layers: usize,
    hidden: usize,
) -> Model {
    let dh = d / heads;
    let mm = Op::MatMul {
        ta: false,
        tb: false,
    };
    let rms = Op::RmsNorm { eps: 1e-6 };
    let rope = Op::Rope {
        base: 10_000.0,
        inverse: false,
    };
    let mut g = GraphBuild::default();
    g.param("wte".into(), vec![vocab, d], Init::Uniform(0.1));
    let mut x = g.node("tok_emb".into(), Op::Embedding, &["wte", "tokens"]);
    for l in 0..layers {
        let p = |s: &str| format!("h{l}.{s}");
        g.param(p("ln1.g"), vec![d], Init::Ones);
        g.param(p("ln2.g"), vec![d], Init::Ones);
        for w in ["wq", "wk", "wv"] {
            g.param(p(w), vec![d, d], Init::Uniform(inv_sqrt(d)));
        }
        g.param(p("wo"), vec![d, d], Init::Uniform(inv_sqrt(d) * 0.5));
        g.param(p("w1"), vec![d, hidden], Init::Uniform(inv_sqrt(d)));
        g.param(p("w3"), vec![d, hidden], Init::Uniform(inv_sqrt(d)));
        g.param(
            p("w2"),
            vec![hidden, d],
            Init::Uniform(inv_sqrt(hidden) * 0.5),
        );
        let h = g.node(p("norm1"), rms.clone(), &[&x, &p("ln1.g")]);
        let [q, k, v] = ["q", "k", "v"].map(|w| {
            let y = g.node(p(w), mm.clone(), &[&h, &p(&format!("w{w}"))]);
            g.split_heads(&p(w), &y, ctx, heads, dh)
        });
        // Each head's [ctx, dh] block turned by position.
        let q = g.node(p("q.rope"), rope.clone(), &[&q]);
        let k = g.node(p("k.rope"), rope.clone(), &[&k]);
        let o = g.attend(&format!("h{l}"), [&q, &k, &v], ctx, heads, dh);
        let o = g.node(p("o"), mm.clone(), &[&o, &p("wo")]);
        x = g.node(p("res1"), Op::Add, &[&x, &o]);
        let h2 = g.node(p("norm2"), rms.clone(), &[&x, &p("ln2.g")]);
        let gate = g.node(p("gate"), mm.clone(), &[&h2, &p("w1")]);
        let up = g.node(p("up"), mm.clone(), &[&h2, &p("w3")]);
        let act = g.node(p("silu"), Op::Silu, &[&gate]);
        let m = g.node(p("swiglu"), Op::Mul, &[&act, &up]);
        let down = g.node(p("down"), mm.clone(), &[&m, &p("w2")]);
        x = g.node(p("res2"), Op::Add, &[&x, &down]);
    }
    g.param("lnf.g".into(), vec![d], Init::Ones);
    g.param("head.w".into(), vec![d, vocab], Init::Uniform(inv_sqrt(d)));
    let h = g.node("normf".into(), rms, &[&x, "lnf.g"]);
    g.node("logits".into(), mm, &[&h, "head.w"]);
    g.model(BatchKind::Tokens { ctx, vocab }, "logits")
}

/// Root of the shipped digits dataset.
pub const DIGITS_ROOT: &str = "9fc2b25dbac83de5178ec2a53e8403f483bccc3ce098c6e2469482bc8199886d";
/// Root of the shipped text corpus.
pub const CORPUS_ROOT: &str = "fc7ff5747fbdc3a6a66f1b6461a13da562f7e55c10505770c6deeefb0c375c49";

fn inv_sqrt(n: usize) -> f32 {
    1.0 / (n as f32).sqrt()
}

/// State tensors the optimizer does not update (a graph's non-trainable params).
fn buffer_spec(m: &Model) -> BTreeMap<String, (Vec<usize>, Init)> {
    match m {
        Model::Graph { params, .. } => params
            .iter()
            .filter(|g| !g.trainable)
            .map(|g| (g.name.clone(), (g.shape.clone(), g.init)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Trainable parameters with shapes and initialisers.
fn param_spec(m: &Model) -> BTreeMap<String, (Vec<usize>, Init)> {
    let mut p = BTreeMap::new();
    match m {
        Model::Mlp {
            input,
            hidden,
            classes,
            ..
        } => {
            let mut dims = vec![*input];
            dims.extend(hidden);
            dims.push(*classes);
            for l in 0..dims.len() - 1 {
                p.insert(
                    format!("l{l}.w"),
                    (vec![dims[l], dims[l + 1]], Init::Uniform(inv_sqrt(dims[l]))),
                );
                p.insert(format!("l{l}.b"), (vec![dims[l + 1]], Init::Zeros));
            }
        }
        Model::Transformer {
            vocab,
            ctx,
            d_model,
            layers,
            d_mlp,
            ..
        } => {
            let d = *d_model;
            p.insert("wte".into(), (vec![*vocab, d], Init::Uniform(0.1)));
            p.insert("wpe".into(), (vec![*ctx, d], Init::Uniform(0.1)));
            for l in 0..*layers {
                let b = format!("h{l}");
                p.insert(format!("{b}.ln1.g"), (vec![d], Init::Ones));
                p.insert(format!("{b}.ln1.b"), (vec![d], Init::Zeros));
                for w in ["wq", "wk", "wv"] {
                    p.insert(
                        format!("{b}.attn.{w}"),
                        (vec![d, d], Init::Uniform(inv_sqrt(d))),
                    );
                }
                p.insert(
                    format!("{b}.attn.wo"),
                    (vec![d, d], Init::Uniform(inv_sqrt(d) * 0.5)),
                );
                p.insert(format!("{b}.ln2.g"), (vec![d], Init::Ones));
                p.insert(format!("{b}.ln2.b"), (vec![d], Init::Zeros));
                p.insert(
                    format!("{b}.mlp.w1"),
                    (vec![d, *d_mlp], Init::Uniform(inv_sqrt(d))),
                );
                p.insert(format!("{b}.mlp.b1"), (vec![*d_mlp], Init::Zeros));
                p.insert(
                    format!("{b}.mlp.w2"),
                    (vec![*d_mlp, d], Init::Uniform(inv_sqrt(*d_mlp) * 0.5)),
                );
                p.insert(format!("{b}.mlp.b2"), (vec![d], Init::Zeros));
            }
            p.insert("lnf.g".into(), (vec![d], Init::Ones));
            p.insert("lnf.b".into(), (vec![d], Init::Zeros));
            p.insert(
                "head.w".into(),
                (vec![d, *vocab], Init::Uniform(inv_sqrt(d))),
            );
            p.insert("head.b".into(), (vec![*vocab], Init::Zeros));
        }
        Model::Graph { params, .. } => {
            for gp in params.iter().filter(|g| g.trainable) {
                p.insert(gp.name.clone(), (gp.shape.clone(), gp.init));
            }
        }
    }
    p
}

struct Builder {
    nodes: Vec<Node>,
    shapes: BTreeMap<Input, Vec<usize>>,
    params: HashSet<String>,
    needs_grad: HashSet<usize>,
}

impl Builder {
    fn shape(&self, i: &Input) -> Result<Vec<usize>> {
        match i {
            Input::Node(n) => self
                .nodes
                .get(*n)
                .map(|x| x.shape.clone())
                .ok_or_else(|| perr(format!("reference to missing node {n}"))),
            other => self
                .shapes
                .get(other)
                .cloned()
                .ok_or_else(|| perr(format!("unknown input {other:?}"))),
        }
    }

    fn requires_grad(&self, i: &Input) -> bool {
        match i {
            Input::State(s) => self.params.contains(s),
            Input::Batch(_) => false,
            Input::Node(n) => self.needs_grad.contains(n),
        }
    }

    fn op(&mut self, label: impl Into<String>, op: Op, inputs: Vec<Input>) -> Result<Input> {
        let label = label.into();
        let input_shapes = inputs
            .iter()
            .map(|i| self.shape(i))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[usize]> = input_shapes.iter().map(|s| s.as_slice()).collect();
        let shape = op
            .output_shape(&refs)
            .map_err(|e| perr(format!("while building {label}: {e}")))?;
        let index = self.nodes.len();
        if inputs.iter().any(|i| self.requires_grad(i)) {
            self.needs_grad.insert(index);
        }
        self.nodes.push(Node {
            index,
            label,
            version: op.version(),
            op,
            inputs,
            input_shapes,
            shape,
        });
        Ok(Input::Node(index))
    }

    fn st(&self, name: &str) -> Input {
        Input::State(name.to_string())
    }

    fn label(&self, i: &Input) -> String {
        match i {
            Input::State(s) | Input::Batch(s) => s.clone(),
            Input::Node(n) => self.nodes[*n].label.clone(),
        }
    }

    fn matmul_bias(&mut self, l: &str, x: Input, w: &str, b: Option<&str>) -> Result<Input> {
        let y = self.op(
            format!("{l}.mm"),
            Op::MatMul {
                ta: false,
                tb: false,
            },
            vec![x, self.st(w)],
        )?;
        match b {
            Some(b) => self.op(format!("{l}.bias"), Op::AddBias, vec![y, self.st(b)]),
            None => Ok(y),
        }
    }

    fn layer_norm(&mut self, l: &str, x: Input, eps: f32) -> Result<Input> {
        let (g, b) = (self.st(&format!("{l}.g")), self.st(&format!("{l}.b")));
        self.op(l.to_string(), Op::LayerNorm { eps }, vec![x, g, b])
    }

    fn accumulate(
        &mut self,
        grads: &mut BTreeMap<Input, Input>,
        target: &Input,
        g: Input,
    ) -> Result<()> {
        if !self.requires_grad(target) {
            return Ok(());
        }
        let new = match grads.remove(target) {
            Some(g0) => {
                let l = format!("{}.grad+", self.label(target));
                self.op(l, Op::Add, vec![g0, g])?
            }
            None => g,
        };
        grads.insert(target.clone(), new);
        Ok(())
    }

    fn push_grad(
        &mut self,
        grads: &mut BTreeMap<Input, Input>,
        x: &[Input],
        i: usize,
        op: Op,
        ins: Vec<Input>,
    ) -> Result<()> {
        if self.requires_grad(&x[i]) {
            let l = format!("{}.grad", self.label(&x[i]));
            let g = self.op(l, op, ins)?;
            self.accumulate(grads, &x[i], g)?;
        }
        Ok(())
    }

    /// Reverse-mode backward from the loss node.
    fn backward(&mut self, loss: usize) -> Result<BTreeMap<Input, Input>> {
        let mut grads: BTreeMap<Input, Input> = BTreeMap::new();
        let ln = self.nodes[loss].clone();
        let (logits, labels) = (ln.inputs[0].clone(), ln.inputs[1].clone());
        let gl = self.op(
            format!("{}.grad", self.label(&logits)),
            Op::CrossEntropyBackward,
            vec![logits.clone(), labels],
        )?;
        self.accumulate(&mut grads, &logits, gl)?;
        for n in (0..loss).rev() {
            let Some(gy) = grads.get(&Input::Node(n)).cloned() else {
                continue;
            };
            let node = self.nodes[n].clone();
            let x = &node.inputs;
            match &node.op {
                Op::MatMul {
                    ta: false,
                    tb: false,
                } => {
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        0,
                        Op::MatMul {
                            ta: false,
                            tb: true,
                        },
                        vec![gy.clone(), x[1].clone()],
                    )?;
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        1,
                        Op::MatMul {
                            ta: true,
                            tb: false,
                        },
                        vec![x[0].clone(), gy],
                    )?;
                }
                Op::BatchedMatMul {
                    ta: false,
                    tb: false,
                } => {
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        0,
                        Op::BatchedMatMul {
                            ta: false,
                            tb: true,
                        },
                        vec![gy.clone(), x[1].clone()],
                    )?;
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        1,
                        Op::BatchedMatMul {
                            ta: true,
                            tb: false,
                        },
                        vec![x[0].clone(), gy],
                    )?;
                }
                Op::BatchedMatMul {
                    ta: false,
                    tb: true,
                } => {
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        0,
                        Op::BatchedMatMul {
                            ta: false,
                            tb: false,
                        },
                        vec![gy.clone(), x[1].clone()],
                    )?;
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        1,
                        Op::BatchedMatMul {
                            ta: true,
                            tb: false,
                        },
                        vec![gy, x[0].clone()],
                    )?;
                }
                Op::MatMul { ta, tb } | Op::BatchedMatMul { ta, tb } => {
                    // The other layouts (the plain and `b`-transposed products are
                    // above, in the order the builtin families have always used).
                    let batched = matches!(node.op, Op::BatchedMatMul { .. });
                    let mm = |ta: bool, tb: bool| {
                        if batched {
                            Op::BatchedMatMul { ta, tb }
                        } else {
                            Op::MatMul { ta, tb }
                        }
                    };
                    let (da, db) = match (*ta, *tb) {
                        // C = A^T B: dA = B dC^T, dB = A dC.
                        (true, false) => (
                            (mm(false, true), vec![x[1].clone(), gy.clone()]),
                            (mm(false, false), vec![x[0].clone(), gy]),
                        ),
                        // C = A^T B^T: dA = B^T dC^T, dB = dC^T A^T.
                        (true, true) => (
                            (mm(true, true), vec![x[1].clone(), gy.clone()]),
                            (mm(true, true), vec![gy, x[0].clone()]),
                        ),
                        // C = A B^T (not batched): dA = dC B, dB = dC^T A.
                        (false, true) => (
                            (mm(false, false), vec![gy.clone(), x[1].clone()]),
                            (mm(true, false), vec![gy, x[0].clone()]),
                        ),
                        (false, false) => {
                            return Err(perr("unreachable: the plain product's rule is above"))
                        }
                    };
                    Builder::push_grad(self, &mut grads, x, 0, da.0, da.1)?;
                    Builder::push_grad(self, &mut grads, x, 1, db.0, db.1)?;
                }
                Op::Mul => {
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        0,
                        Op::Mul,
                        vec![gy.clone(), x[1].clone()],
                    )?;
                    Builder::push_grad(self, &mut grads, x, 1, Op::Mul, vec![gy, x[0].clone()])?;
                }
                Op::Sub => {
                    if self.requires_grad(&x[0]) {
                        self.accumulate(&mut grads, &x[0], gy.clone())?;
                    }
                    Builder::push_grad(self, &mut grads, x, 1, Op::Scale { s: -1.0 }, vec![gy])?;
                }
                Op::AddScalar { .. } => {
                    if self.requires_grad(&x[0]) {
                        self.accumulate(&mut grads, &x[0], gy)?;
                    }
                }
                Op::Sigmoid => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::SigmoidBackward,
                    vec![Input::Node(n), gy],
                )?,
                Op::Exp => {
                    Builder::push_grad(self, &mut grads, x, 0, Op::Mul, vec![gy, Input::Node(n)])?
                }
                Op::LogSoftmax => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::LogSoftmaxBackward,
                    vec![Input::Node(n), gy],
                )?,
                Op::Transpose => {
                    Builder::push_grad(self, &mut grads, x, 0, Op::Transpose, vec![gy])?
                }
                Op::Im2Col {
                    kh,
                    kw,
                    stride,
                    pad,
                } => {
                    let s = self.shape(&x[0])?;
                    let op = Op::Col2Im {
                        channels: s[1],
                        height: s[2],
                        width: s[3],
                        kh: *kh,
                        kw: *kw,
                        stride: *stride,
                        pad: *pad,
                    };
                    Builder::push_grad(self, &mut grads, x, 0, op, vec![gy])?
                }
                Op::Silu => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::SiluBackward,
                    vec![x[0].clone(), gy],
                )?,
                // The same mask (key and step) scales the gradient.
                Op::Dropout { p, key } => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::Dropout { p: *p, key: *key },
                    vec![gy, x[1].clone()],
                )?,
                // A rotation's adjoint is the rotation back.
                Op::Rope { base, inverse } => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::Rope {
                        base: *base,
                        inverse: !*inverse,
                    },
                    vec![gy],
                )?,
                Op::RmsNorm { eps } => {
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        0,
                        Op::RmsNormBackwardInput { eps: *eps },
                        vec![x[0].clone(), x[1].clone(), gy.clone()],
                    )?;
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        1,
                        Op::RmsNormBackwardGamma { eps: *eps },
                        vec![x[0].clone(), gy],
                    )?;
                }
                Op::MaxLast => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::MaxLastBackward,
                    vec![x[0].clone(), gy],
                )?,
                Op::AddBias => {
                    if self.requires_grad(&x[0]) {
                        self.accumulate(&mut grads, &x[0], gy.clone())?;
                    }
                    Builder::push_grad(self, &mut grads, x, 1, Op::SumAxis0, vec![gy])?;
                }
                Op::Add => {
                    for xi in x.iter().take(2) {
                        if self.requires_grad(xi) {
                            self.accumulate(&mut grads, xi, gy.clone())?;
                        }
                    }
                }
                Op::Scale { s } => {
                    Builder::push_grad(self, &mut grads, x, 0, Op::Scale { s: *s }, vec![gy])?
                }
                Op::Relu => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::ReluBackward,
                    vec![x[0].clone(), gy],
                )?,
                Op::Gelu => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::GeluBackward,
                    vec![x[0].clone(), gy],
                )?,
                Op::Tanh => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::TanhBackward,
                    vec![Input::Node(n), gy],
                )?,
                Op::Softmax => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::SoftmaxBackward,
                    vec![Input::Node(n), gy],
                )?,
                Op::LayerNorm { eps } => {
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        0,
                        Op::LayerNormBackwardInput { eps: *eps },
                        vec![x[0].clone(), x[1].clone(), gy.clone()],
                    )?;
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        1,
                        Op::LayerNormBackwardGamma { eps: *eps },
                        vec![x[0].clone(), gy.clone()],
                    )?;
                    Builder::push_grad(self, &mut grads, x, 2, Op::SumAxis0, vec![gy])?;
                }
                Op::Embedding => {
                    let vocab = self.shape(&x[0])?[0];
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        0,
                        Op::EmbeddingBackward { vocab },
                        vec![x[1].clone(), gy],
                    )?;
                }
                Op::Reshape { .. } => {
                    let shape = self.shape(&x[0])?;
                    Builder::push_grad(self, &mut grads, x, 0, Op::Reshape { shape }, vec![gy])?;
                }
                Op::Permute { perm } => {
                    let mut inv = vec![0; perm.len()];
                    for (d, &p) in perm.iter().enumerate() {
                        inv[p] = d;
                    }
                    Builder::push_grad(
                        self,
                        &mut grads,
                        x,
                        0,
                        Op::Permute { perm: inv },
                        vec![gy],
                    )?;
                }
                Op::CausalMask { .. } => Builder::push_grad(
                    self,
                    &mut grads,
                    x,
                    0,
                    Op::CausalMask {
                        fill: MaskFill::Zero,
                    },
                    vec![gy],
                )?,
                other => return Err(perr(format!("no backward rule for {}", other.name()))),
            }
        }
        Ok(grads)
    }
}

/// What [`build`] expands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A training step.
    Train,
    /// An evaluation step ([`Mode::Evaluate`]).
    Evaluate,
    /// The forward pass alone (held-out metrics; no state update).
    Forward,
}

/// The forward pass of micro-batch `micro` (its batch tensors are named by
/// [`micro_name`]): the logits and the labels.
fn forward(
    b: &mut Builder,
    p: &Program,
    batch: usize,
    micro: usize,
    train: bool,
) -> Result<(Input, Input)> {
    Ok(match &p.model {
        Model::Mlp {
            hidden,
            activation,
            input_scale,
            ..
        } => {
            let mut h = b.op(
                "x.scaled",
                Op::Scale { s: *input_scale },
                vec![Input::Batch(micro_name("x", micro))],
            )?;
            for l in 0..=hidden.len() {
                let z = b.matmul_bias(
                    &format!("l{l}"),
                    h,
                    &format!("l{l}.w"),
                    Some(&format!("l{l}.b")),
                )?;
                h = if l < hidden.len() {
                    let op = match activation {
                        Activation::Relu => Op::Relu,
                        Activation::Gelu => Op::Gelu,
                        Activation::Tanh => Op::Tanh,
                    };
                    b.op(format!("l{l}.act"), op, vec![z])?
                } else {
                    z
                };
            }
            (h, Input::Batch(micro_name("y", micro)))
        }
        Model::Transformer {
            ctx,
            d_model,
            heads,
            layers,
            ln_eps,
            ..
        } => {
            let (t, d, nh) = (*ctx, *d_model, *heads);
            let dh = d / nh;
            let bt = batch * t;
            let te = b.op(
                "tok_emb",
                Op::Embedding,
                vec![b.st("wte"), Input::Batch(micro_name("tokens", micro))],
            )?;
            let pe = b.op(
                "pos_emb",
                Op::Embedding,
                vec![b.st("wpe"), Input::Batch(micro_name("positions", micro))],
            )?;
            let mut x = b.op("emb", Op::Add, vec![te, pe])?;
            let to_heads = |b: &mut Builder, l: &str, v: Input| -> Result<Input> {
                let r = b.op(
                    format!("{l}.split"),
                    Op::Reshape {
                        shape: vec![batch, t, nh, dh],
                    },
                    vec![v],
                )?;
                let pm = b.op(
                    format!("{l}.perm"),
                    Op::Permute {
                        perm: vec![0, 2, 1, 3],
                    },
                    vec![r],
                )?;
                b.op(
                    format!("{l}.heads"),
                    Op::Reshape {
                        shape: vec![batch * nh, t, dh],
                    },
                    vec![pm],
                )
            };
            for l in 0..*layers {
                let pre = format!("h{l}");
                let h = b.layer_norm(&format!("{pre}.ln1"), x.clone(), *ln_eps)?;
                let q = b.matmul_bias(
                    &format!("{pre}.q"),
                    h.clone(),
                    &format!("{pre}.attn.wq"),
                    None,
                )?;
                let k = b.matmul_bias(
                    &format!("{pre}.k"),
                    h.clone(),
                    &format!("{pre}.attn.wk"),
                    None,
                )?;
                let v = b.matmul_bias(&format!("{pre}.v"), h, &format!("{pre}.attn.wv"), None)?;
                let q = to_heads(b, &format!("{pre}.q"), q)?;
                let k = to_heads(b, &format!("{pre}.k"), k)?;
                let v = to_heads(b, &format!("{pre}.v"), v)?;
                let s = b.op(
                    format!("{pre}.scores"),
                    Op::BatchedMatMul {
                        ta: false,
                        tb: true,
                    },
                    vec![q, k],
                )?;
                let s = b.op(
                    format!("{pre}.scaled"),
                    Op::Scale { s: inv_sqrt(dh) },
                    vec![s],
                )?;
                let s = b.op(
                    format!("{pre}.masked"),
                    Op::CausalMask {
                        fill: MaskFill::NegInf,
                    },
                    vec![s],
                )?;
                let a = b.op(format!("{pre}.att"), Op::Softmax, vec![s])?;
                let o = b.op(
                    format!("{pre}.ctx"),
                    Op::BatchedMatMul {
                        ta: false,
                        tb: false,
                    },
                    vec![a, v],
                )?;
                let o = b.op(
                    format!("{pre}.ctx.split"),
                    Op::Reshape {
                        shape: vec![batch, nh, t, dh],
                    },
                    vec![o],
                )?;
                let o = b.op(
                    format!("{pre}.ctx.perm"),
                    Op::Permute {
                        perm: vec![0, 2, 1, 3],
                    },
                    vec![o],
                )?;
                let o = b.op(
                    format!("{pre}.ctx.merge"),
                    Op::Reshape { shape: vec![bt, d] },
                    vec![o],
                )?;
                let o = b.matmul_bias(&format!("{pre}.o"), o, &format!("{pre}.attn.wo"), None)?;
                x = b.op(format!("{pre}.res1"), Op::Add, vec![x, o])?;
                let h = b.layer_norm(&format!("{pre}.ln2"), x.clone(), *ln_eps)?;
                let m = b.matmul_bias(
                    &format!("{pre}.fc1"),
                    h,
                    &format!("{pre}.mlp.w1"),
                    Some(&format!("{pre}.mlp.b1")),
                )?;
                let m = b.op(format!("{pre}.gelu"), Op::Gelu, vec![m])?;
                let m = b.matmul_bias(
                    &format!("{pre}.fc2"),
                    m,
                    &format!("{pre}.mlp.w2"),
                    Some(&format!("{pre}.mlp.b2")),
                )?;
                x = b.op(format!("{pre}.res2"), Op::Add, vec![x, m])?;
            }
            let h = b.layer_norm("lnf", x, *ln_eps)?;
            let lg = b.matmul_bias("head", h, "head.w", Some("head.b"))?;
            (lg, Input::Batch(micro_name("targets", micro)))
        }
        Model::Graph {
            batch: kind,
            params,
            nodes,
            logits,
        } => {
            let (tensors, labels) = kind.tensors(batch);
            let mut named: BTreeMap<String, Input> = BTreeMap::new();
            for k in tensors.keys() {
                named.insert(k.clone(), Input::Batch(micro_name(k, micro)));
            }
            for gp in params {
                named.insert(gp.name.clone(), Input::State(gp.name.clone()));
            }
            for n in nodes {
                let mut ins =
                    n.inputs
                        .iter()
                        .map(|i| {
                            named.get(i.as_str()).cloned().ok_or_else(|| {
                                perr(format!("node {:?}: unknown input {i:?}", n.name))
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                let op = match (&n.op, ins.first()) {
                    (Op::Reshape { shape }, Some(i)) => Op::Reshape {
                        shape: inferred(shape, &b.shape(i)?)
                            .map_err(|e| perr(format!("node {:?}: {e}", n.name)))?,
                    },
                    // Dropout draws from the step counter (the state's `opt.step`) and,
                    // so that micro-batches get their own masks, from the micro-batch;
                    // evaluation and the forward pass keep every element.
                    (Op::Dropout { p, key }, Some(_)) if train => {
                        ins.push(b.st("opt.step"));
                        Op::Dropout {
                            p: *p,
                            key: key ^ (micro as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                        }
                    }
                    (Op::Dropout { .. }, Some(i)) => Op::Reshape { shape: b.shape(i)? },
                    (op, _) => op.clone(),
                };
                let out = b.op(n.name.clone(), op, ins)?;
                named.insert(n.name.clone(), out);
            }
            let lg = named
                .get(logits.as_str())
                .cloned()
                .ok_or_else(|| perr(format!("logits {logits:?} is not a node")))?;
            (lg, Input::Batch(micro_name(labels, micro)))
        }
    })
}

fn build(p: &Program, batch: usize, kind: Kind) -> Result<StepGraph> {
    let params = param_spec(&p.model);
    let mut b = Builder {
        nodes: vec![],
        shapes: BTreeMap::new(),
        params: params.keys().cloned().collect(),
        needs_grad: HashSet::new(),
    };
    let state_shapes: BTreeMap<String, Vec<usize>> = p
        .state_spec()?
        .into_iter()
        .map(|(k, (s, _))| (k, s))
        .collect();
    for (k, s) in &state_shapes {
        b.shapes.insert(Input::State(k.clone()), s.clone());
    }
    let micro = if kind == Kind::Train {
        p.micro_batches()
    } else {
        1
    };
    let (one, _) = p.model.batch_kind().tensors(batch);
    let mut batch_shapes = BTreeMap::new();
    for i in 0..micro {
        for (k, s) in &one {
            batch_shapes.insert(micro_name(k, i), s.clone());
        }
    }
    for (k, s) in &batch_shapes {
        b.shapes.insert(Input::Batch(k.clone()), s.clone());
    }
    let mut losses = Vec::with_capacity(micro);
    let mut first_logits = None;
    for i in 0..micro {
        let (logits, labels) = forward(&mut b, p, batch, i, kind == Kind::Train)?;
        let label = if i == 0 {
            "loss".to_string()
        } else {
            format!("loss#{i}")
        };
        let loss = b.op(label, Op::CrossEntropy, vec![logits.clone(), labels])?;
        losses.push(idx(&loss));
        first_logits.get_or_insert(logits);
    }
    let logits = first_logits.ok_or_else(|| perr("no micro-batch"))?;
    let Input::Node(logits_idx) = logits else {
        return Err(perr("model produced no logits node"));
    };
    // With micro-batches the step's loss is their mean (summed in order).
    let loss_idx = match losses.as_slice() {
        [one] => *one,
        many => {
            let mut acc = Input::Node(many[0]);
            for &l in &many[1..] {
                acc = b.op("loss.sum", Op::Add, vec![acc, Input::Node(l)])?;
            }
            let mean = b.op(
                "loss.mean",
                Op::Scale {
                    s: 1.0 / many.len() as f32,
                },
                vec![acc],
            )?;
            idx(&mean)
        }
    };
    let mut updates = BTreeMap::new();
    if kind != Kind::Forward && p.record_loss {
        updates.insert(LOSS_STATE.to_string(), loss_idx);
    }
    if kind == Kind::Evaluate {
        let step = b.op("opt.step", Op::AddScalar { s: 1.0 }, vec![b.st("opt.step")])?;
        updates.insert("opt.step".to_string(), idx(&step));
        // Every other tensor is carried as is (an identity node, so that h_t is the
        // root over update nodes like a training step's).
        for (name, shape) in &state_shapes {
            if !updates.contains_key(name) {
                let kept = b.op(
                    format!("{name}.kept"),
                    Op::Reshape {
                        shape: shape.clone(),
                    },
                    vec![b.st(name)],
                )?;
                updates.insert(name.clone(), idx(&kept));
            }
        }
    }
    if kind == Kind::Train {
        let mut grads = match losses.as_slice() {
            [one] => b.backward(*one)?,
            many => {
                // Each micro-batch's gradients, then their mean, parameter by parameter,
                // summed in micro-batch order.
                let each = many
                    .iter()
                    .map(|&l| b.backward(l))
                    .collect::<Result<Vec<_>>>()?;
                let mut mean = BTreeMap::new();
                for name in params.keys() {
                    let mut acc = grad_of(&each[0], name)?;
                    for g in &each[1..] {
                        acc = b.op(
                            format!("{name}.grad.sum"),
                            Op::Add,
                            vec![acc, grad_of(g, name)?],
                        )?;
                    }
                    let m = b.op(
                        format!("{name}.grad.mean"),
                        Op::Scale {
                            s: 1.0 / many.len() as f32,
                        },
                        vec![acc],
                    )?;
                    mean.insert(Input::State(name.clone()), m);
                }
                mean
            }
        };
        let step = b.op("opt.step", Op::AddScalar { s: 1.0 }, vec![b.st("opt.step")])?;
        updates.insert("opt.step".to_string(), idx(&step));
        if let Some(c) = p.clip_norm {
            clip_gradients(&mut b, &mut grads, &params, c)?;
        }
        let base_lr = match p.optimizer {
            Optimizer::Sgd { lr, .. } | Optimizer::Adamw { lr, .. } => lr,
        };
        let lr_t = match &p.schedule {
            Some(sch) => Some(scheduled_lr(&mut b, &step, sch, base_lr)?),
            None => None,
        };
        // A graph's buffers are carried as they are.
        for (name, (shape, _)) in buffer_spec(&p.model) {
            let kept = b.op(
                format!("{name}.kept"),
                Op::Reshape { shape },
                vec![b.st(&name)],
            )?;
            updates.insert(name, idx(&kept));
        }
        match p.optimizer.clone() {
            Optimizer::Sgd { lr, momentum } => {
                for name in params.keys() {
                    let g = grad_of(&grads, name)?;
                    let bn = format!("opt.buf.{name}");
                    let buf = b.op(
                        bn.clone(),
                        Op::SgdMomentumBuf { momentum },
                        vec![b.st(&bn), g],
                    )?;
                    let np = match &lr_t {
                        Some(l) => b.op(
                            format!("{name}.new"),
                            Op::SgdUpdateLr,
                            vec![b.st(name), buf.clone(), l.clone()],
                        )?,
                        None => b.op(
                            format!("{name}.new"),
                            Op::SgdUpdate { lr },
                            vec![b.st(name), buf.clone()],
                        )?,
                    };
                    updates.insert(bn, idx(&buf));
                    updates.insert(name.clone(), idx(&np));
                }
            }
            Optimizer::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let b1 = b.op(
                    "opt.beta1_pow",
                    Op::Scale { s: beta1 },
                    vec![b.st("opt.beta1_pow")],
                )?;
                let b2 = b.op(
                    "opt.beta2_pow",
                    Op::Scale { s: beta2 },
                    vec![b.st("opt.beta2_pow")],
                )?;
                updates.insert("opt.beta1_pow".to_string(), idx(&b1));
                updates.insert("opt.beta2_pow".to_string(), idx(&b2));
                for (name, (shape, _)) in &params {
                    let g = grad_of(&grads, name)?;
                    let (mn, vn) = (format!("opt.m.{name}"), format!("opt.v.{name}"));
                    let m = b.op(mn.clone(), Op::AdamM { beta1 }, vec![b.st(&mn), g.clone()])?;
                    let v = b.op(vn.clone(), Op::AdamV { beta2 }, vec![b.st(&vn), g])?;
                    let wd = if shape.len() == 2 { weight_decay } else { 0.0 };
                    let mut ins = vec![b.st(name), m.clone(), v.clone(), b1.clone(), b2.clone()];
                    let op = match &lr_t {
                        Some(l) => {
                            ins.push(l.clone());
                            Op::AdamWUpdateLr {
                                eps,
                                weight_decay: wd,
                            }
                        }
                        None => Op::AdamWUpdate {
                            lr,
                            eps,
                            weight_decay: wd,
                        },
                    };
                    let np = b.op(format!("{name}.new"), op, ins)?;
                    updates.insert(mn, idx(&m));
                    updates.insert(vn, idx(&v));
                    updates.insert(name.clone(), idx(&np));
                }
            }
        }
    }
    Ok(StepGraph {
        nodes: b.nodes,
        updates,
        loss: loss_idx,
        logits: logits_idx,
        state_shapes,
        batch_shapes,
    })
}

/// `min(1, x)` of a scalar node as `1 - relu(1 - x)` (ops the vocabulary has).
fn min_one(b: &mut Builder, label: &str, x: Input) -> Result<Input> {
    let a = b.op(format!("{label}.neg"), Op::Scale { s: -1.0 }, vec![x])?;
    let a = b.op(format!("{label}.1-x"), Op::AddScalar { s: 1.0 }, vec![a])?;
    let a = b.op(format!("{label}.relu"), Op::Relu, vec![a])?;
    let a = b.op(format!("{label}.neg2"), Op::Scale { s: -1.0 }, vec![a])?;
    b.op(label, Op::AddScalar { s: 1.0 }, vec![a])
}

/// Scales every parameter's gradient by `min(1, c / ||g||)`, `||g||` the L2 norm of all
/// of them together: the squares summed per parameter (R3) and then over parameters in
/// name order, `rsqrt` of the total (a zero total gives `+inf`, so the factor is 1).
fn clip_gradients(
    b: &mut Builder,
    grads: &mut BTreeMap<Input, Input>,
    params: &BTreeMap<String, (Vec<usize>, Init)>,
    c: f32,
) -> Result<()> {
    let mut total: Option<Input> = None;
    for (name, (shape, _)) in params {
        let g = grad_of(grads, name)?;
        let sq = b.op(format!("{name}.grad.sq"), Op::Mul, vec![g.clone(), g])?;
        let flat = b.op(
            format!("{name}.grad.sq.flat"),
            Op::Reshape {
                shape: vec![shape.iter().product()],
            },
            vec![sq],
        )?;
        let s = b.op(format!("{name}.grad.sq.sum"), Op::SumLast, vec![flat])?;
        total = Some(match total {
            None => s,
            Some(t) => b.op(format!("clip.total+{name}"), Op::Add, vec![t, s])?,
        });
    }
    let Some(total) = total else { return Ok(()) };
    let r = b.op("clip.rsqrt", Op::Rsqrt, vec![total])?;
    let cr = b.op("clip.ratio", Op::Scale { s: c }, vec![r])?;
    let factor = min_one(b, "clip.factor", cr)?;
    for name in params.keys() {
        let g = grad_of(grads, name)?;
        let clipped = b.op(
            format!("{name}.grad.clipped"),
            Op::MulScalar,
            vec![g, factor.clone()],
        )?;
        grads.insert(Input::State(name.clone()), clipped);
    }
    Ok(())
}

/// Taylor coefficients of `sin(pi u)` in odd powers of `u` (`pi^k / k!` with signs),
/// `u^1` first; on `|u| <= 1/2` the truncation error is below 1e-9.
const SIN_PI: [f32; 7] = [
    std::f32::consts::PI,
    -5.167_713,
    2.550_164,
    -0.599_264_5,
    0.082_145_89,
    -0.007_370_431,
    0.000_466_302_8,
];

/// The learning rate of the step whose new counter is node `t` (`opt.step` after the
/// increment): `lr * w * d` with warmup `w = min(1, t / warmup)` and cosine decay
/// `d = min + (1 - min) * (1 + cos(pi p)) / 2`, `p = min(1, relu((t - warmup) / decay))`.
/// The cosine is `-sin(pi (p - 1/2))` by its Taylor polynomial in Horner form: every
/// value is defined by the ops, the same bits everywhere.
fn scheduled_lr(b: &mut Builder, t: &Input, s: &Schedule, lr: f32) -> Result<Input> {
    let mut factor: Option<Input> = None;
    if s.warmup > 0 {
        let a = b.op(
            "lr.warmup.ratio",
            Op::Scale {
                s: 1.0 / s.warmup as f32,
            },
            vec![t.clone()],
        )?;
        factor = Some(min_one(b, "lr.warmup", a)?);
    }
    if s.decay > 0 {
        let q = b.op(
            "lr.decay.since",
            Op::AddScalar {
                s: -(s.warmup as f32),
            },
            vec![t.clone()],
        )?;
        let q = b.op(
            "lr.decay.ratio",
            Op::Scale {
                s: 1.0 / s.decay as f32,
            },
            vec![q],
        )?;
        let q = b.op("lr.decay.started", Op::Relu, vec![q])?;
        let p = min_one(b, "lr.decay.progress", q)?;
        let u = b.op("lr.decay.u", Op::AddScalar { s: -0.5 }, vec![p])?;
        let z = b.op("lr.decay.u2", Op::Mul, vec![u.clone(), u.clone()])?;
        let (last, rest) = SIN_PI.split_last().ok_or_else(|| perr("no coefficients"))?;
        let mut acc = b.op("lr.decay.horner", Op::Scale { s: *last }, vec![z.clone()])?;
        for (k, c) in rest.iter().enumerate().rev() {
            acc = b.op(
                format!("lr.decay.horner{k}"),
                Op::AddScalar { s: *c },
                vec![acc],
            )?;
            if k > 0 {
                acc = b.op(
                    format!("lr.decay.horner{k}.z"),
                    Op::Mul,
                    vec![acc, z.clone()],
                )?;
            }
        }
        let sin = b.op("lr.decay.sin", Op::Mul, vec![acc, u])?;
        // (1 + cos) / 2 = (1 - sin) / 2, then min + (1 - min) * that.
        let half = b.op("lr.decay.half", Op::Scale { s: -0.5 }, vec![sin])?;
        let half = b.op("lr.decay.cos", Op::AddScalar { s: 0.5 }, vec![half])?;
        let d = b.op(
            "lr.decay.scaled",
            Op::Scale {
                s: 1.0 - s.min_factor,
            },
            vec![half],
        )?;
        let d = b.op("lr.decay", Op::AddScalar { s: s.min_factor }, vec![d])?;
        factor = Some(match factor {
            None => d,
            Some(w) => b.op("lr.factor", Op::Mul, vec![w, d])?,
        });
    }
    let f = match factor {
        Some(f) => f,
        // Neither phase: the constant rate, as a node.
        None => b.op("lr.one", Op::Scale { s: 0.0 }, vec![t.clone()])?,
    };
    if s.warmup == 0 && s.decay == 0 {
        return b.op("lr", Op::AddScalar { s: lr }, vec![f]);
    }
    b.op("lr", Op::Scale { s: lr }, vec![f])
}

/// The step of a merge ([`Mode::Merge`]): see there for what each tensor becomes.
/// Constants are IEEE quotients of the program's numbers (correctly rounded, so the
/// same bits everywhere), like the transformer's `1/sqrt(d)`.
fn build_merge(p: &Program, outer_lr: f32) -> Result<StepGraph> {
    let spec = p.state_spec()?;
    let params = param_spec(&p.model);
    let mut b = Builder {
        nodes: vec![],
        shapes: BTreeMap::new(),
        params: HashSet::new(),
        needs_grad: HashSet::new(),
    };
    for (name, shape) in p.state_input_shapes(0)? {
        b.shapes.insert(Input::State(name), shape);
    }
    let k = p.inputs.len() - 1;
    let (outer, mean) = (outer_lr / k as f32, 1.0 / k as f32);
    let c = |i: usize, name: &str| Input::State(format!("{}{name}", input_prefix(i + 1)));
    let mut updates = BTreeMap::new();
    for (name, (shape, _)) in &spec {
        let g = Input::State(format!("{}{name}", input_prefix(0)));
        let out = if params.contains_key(name) {
            let mut acc = b.op(
                format!("{name}.delta0"),
                Op::Sub,
                vec![c(0, name), g.clone()],
            )?;
            for i in 1..k {
                let d = b.op(
                    format!("{name}.delta{i}"),
                    Op::Sub,
                    vec![c(i, name), g.clone()],
                )?;
                acc = b.op(format!("{name}.deltas{i}"), Op::Add, vec![acc, d])?;
            }
            let step = b.op(format!("{name}.outer"), Op::Scale { s: outer }, vec![acc])?;
            b.op(format!("{name}.new"), Op::Add, vec![g, step])?
        } else if name == "opt.step" {
            b.op("opt.step", Op::AddScalar { s: 1.0 }, vec![g])?
        } else if name.starts_with("opt.beta") {
            b.op(
                format!("{name}.kept"),
                Op::Reshape {
                    shape: shape.clone(),
                },
                vec![c(0, name)],
            )?
        } else {
            let mut acc = c(0, name);
            for i in 1..k {
                acc = b.op(format!("{name}.sum{i}"), Op::Add, vec![acc, c(i, name)])?;
            }
            b.op(format!("{name}.mean"), Op::Scale { s: mean }, vec![acc])?
        };
        updates.insert(name.clone(), idx(&out));
    }
    // No batch, no logits: the step's reported "loss" is the merged `loss` scalar
    // when the state has one, else the counter.
    let report = updates
        .get(LOSS_STATE)
        .or_else(|| updates.get("opt.step"))
        .copied()
        .ok_or_else(|| perr("a merge needs opt.step"))?;
    Ok(StepGraph {
        nodes: b.nodes,
        updates,
        loss: report,
        logits: report,
        state_shapes: spec.into_iter().map(|(k, (s, _))| (k, s)).collect(),
        batch_shapes: BTreeMap::new(),
    })
}

/// The name of batch tensor `name` in micro-batch `i` (the first keeps the plain name).
pub fn micro_name(name: &str, i: usize) -> String {
    if i == 0 {
        name.to_string()
    } else {
        format!("{name}#{i}")
    }
}

/// A graph's reshape target with its one `0` dimension, if any, inferred from the
/// input's element count (so that a graph expands at any batch size).
fn inferred(shape: &[usize], input: &[usize]) -> std::result::Result<Vec<usize>, String> {
    let zeros = shape.iter().filter(|&&d| d == 0).count();
    if zeros == 0 {
        return Ok(shape.to_vec());
    }
    let known = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    let total = input.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match (zeros, known, total) {
        (1, Some(k), Some(t)) if k > 0 && t.is_multiple_of(k) && t > 0 => Ok(shape
            .iter()
            .map(|&d| if d == 0 { t / k } else { d })
            .collect()),
        _ => Err(format!(
            "reshape {shape:?} of {input:?}: at most one 0 (inferred) dimension, dividing the element count"
        )),
    }
}

fn idx(i: &Input) -> usize {
    match i {
        Input::Node(n) => *n,
        _ => usize::MAX,
    }
}

fn grad_of(grads: &BTreeMap<Input, Input>, name: &str) -> Result<Input> {
    grads
        .get(&Input::State(name.to_string()))
        .cloned()
        .ok_or_else(|| perr(format!("parameter {name} receives no gradient")))
}
