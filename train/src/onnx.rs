//! Import of an ONNX model's forward pass as a graph program ([`Model::Graph`]) and
//! its weights as a state to start from (`Program::init_state`).
//!
//! The subset: `MatMul`, `Gemm`, `Add`, `Sub`, `Mul`, `Div` (by a constant), `Relu`,
//! `Gelu` (tanh form), `Tanh`, `Sigmoid`, `Exp`, `Softmax` and `LogSoftmax`
//! (last axis), `LayerNormalization` (last axis), `Gather` (embedding lookups),
//! `Reshape`, `Flatten`, `Transpose`, `Conv` (square stride and symmetric padding, no
//! groups or dilation), `MaxPool` (no padding), `Identity`,
//! `Dropout` (inference: the identity), `Constant`, shape arithmetic on constants
//! (`Shape`, `Gather`, `Unsqueeze`, `Squeeze`, `Concat`, `Cast`), and the causal-mask
//! pattern (`Add` of a constant `0 / -inf` upper triangle, or `Where` of a constant
//! triangle with `-inf`). Anything else is refused with the node, its operator and why.
//!
//! The batch runs along axis 0 of every tensor that depends on the input ("batch
//! first"); the importer writes that axis as `0` (inferred) in every reshape, so the
//! program runs at any batch size, including micro-batches. A float input `[B, ..]`
//! becomes the rows batch (`x`, reshaped to the input's shape); an integer input
//! `[B, T]` becomes the token batch (`tokens`, reshaped to `[B, T]`), so `ctx = T`.
//! The graph's one output is the logits, `[B, C]` or `[B, T, V]` (flattened to rows).
//!
//! Every float initializer the graph computes with becomes a trainable parameter
//! (its ONNX name, made a valid state name) whose value is in [`Imported::weights`];
//! constant index tensors become buffers (non-trainable). Only the field numbers of
//! `onnx.proto` that the importer reads are declared below; prost skips the rest.
use crate::error::{Result, TrainError};
use crate::program::{
    BatchKind, GraphNode, GraphParam, Init, Model, MAX_GRAPH_NAME_BYTES, MAX_GRAPH_NODES,
    MAX_GRAPH_PARAMS,
};
use crate::{Program, StateRef};
use repops::ops::{MaskFill, Op};
use repops::Tensor;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The largest ONNX file the importer reads (weights are inline; external data is
/// refused).
pub const MAX_ONNX_BYTES: usize = 1 << 31;

/// What [`import`] makes of an ONNX model.
#[derive(Debug)]
pub struct Imported {
    /// The forward pass as a graph program's model.
    pub model: Model,
    /// The parameters' and buffers' values, by state name.
    pub weights: BTreeMap<String, Tensor>,
}

impl Imported {
    /// `base` (its dataset, optimizer, batch size, steps, seed) training this model
    /// from the imported weights: the program, with `init_state` naming `source`
    /// and committing to the state's hash, and that state (optimizer slots fresh).
    pub fn into_program(
        self,
        mut base: Program,
        source: String,
    ) -> Result<(Program, BTreeMap<String, Tensor>)> {
        base.model = self.model;
        base.init_state = None;
        base.validate()?;
        // Expanded once here, so a graph the importer got wrong fails at import.
        base.nodes()?;
        let state = crate::checkpoint::fine_tune_state(&base, &self.weights)?;
        base.init_state = Some(StateRef {
            name: source,
            root: crate::state_hash(&state),
            step: 0,
        });
        base.validate()?;
        Ok((base, state))
    }
}

/// The onnx.proto messages, reduced to the fields the importer reads (field numbers
/// as in onnx.proto; public so tests can write hostile models).
#[allow(missing_docs)]
pub mod pb {
    // onnx.proto's TensorProto.DataType values the importer reads.
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const DOUBLE: i32 = 11;
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        #[prost(string, tag = "7")]
        pub domain: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, optional, tag = "2")]
        pub f: Option<f32>,
        #[prost(int64, optional, tag = "3")]
        pub i: Option<i64>,
        #[prost(bytes = "vec", optional, tag = "4")]
        pub s: Option<Vec<u8>>,
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        #[prost(float, repeated, tag = "7")]
        pub floats: Vec<f32>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
        #[prost(int32, tag = "14")]
        pub data_location: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorType>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorType {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
    }
}

use pb::{BOOL, DOUBLE, FLOAT, INT32, INT64, INT8, UINT8};

/// The opsets whose semantics the mapping follows (Softmax on one axis since 13,
/// `Gelu` since 20).
const OPSETS: std::ops::RangeInclusive<i64> = 13..=22;

/// At most this many elements in one constant or shape (before any allocation): a
/// parameter's bound (`MAX_DIM`-sized dims aside, a state tensor this large is
/// already 256 MiB of f32).
const MAX_ELEMS: usize = 1 << 26;

fn err(m: impl Into<String>) -> TrainError {
    TrainError::Program(format!("onnx: {}", m.into()))
}

/// An error about node `n`, naming it and its operator.
fn node_err(n: &pb::NodeProto, why: impl std::fmt::Display) -> TrainError {
    err(format!("node {:?} ({}): {why}", n.name, n.op_type))
}

/// A constant: initializers, `Constant` nodes and what is folded from them. Values
/// are kept as f64 (exact for every f32 and every index the importer accepts).
#[derive(Clone, Debug)]
struct Const {
    shape: Vec<usize>,
    data: Vec<f64>,
    float: bool,
    /// The initializer it is (a trainable parameter when a float one is computed with).
    source: Option<String>,
}

impl Const {
    fn scalar(&self) -> Option<f64> {
        (self.data.len() == 1).then(|| self.data[0])
    }
    fn ints(&self) -> Result<Vec<i64>> {
        self.data
            .iter()
            .map(|&v| {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(v as i64)
                } else {
                    Err(err(format!("{v} is not an integer")))
                }
            })
            .collect()
    }
}

/// A value the graph computes: our node (or batch tensor) name, its shape at the
/// ONNX file's batch size, and whether axis 0 carries the batch.
#[derive(Clone, Debug)]
struct Act {
    name: String,
    shape: Vec<usize>,
    batched: bool,
}

#[derive(Clone, Debug)]
enum Value {
    Act(Act),
    Const(Const),
}

fn numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|n| *n <= MAX_ELEMS)
        .ok_or_else(|| err(format!("shape {shape:?} is too large")))
}

fn dims(raw: &[i64], what: &str) -> Result<Vec<usize>> {
    if raw.len() > 8 {
        return Err(err(format!("{what}: rank {} is above 8", raw.len())));
    }
    let d = raw
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(format!("{what}: dimension {d}"))))
        .collect::<Result<Vec<_>>>()?;
    numel(&d)?;
    Ok(d)
}

fn tensor_const(t: &pb::TensorProto) -> Result<Const> {
    let what = format!("tensor {:?}", t.name);
    if t.data_location != 0 {
        return Err(err(format!(
            "{what}: external data is not supported (save the model with its weights inline)"
        )));
    }
    let shape = dims(&t.dims, &what)?;
    let n = numel(&shape)?;
    let raw = &t.raw_data;
    let fixed = |size: usize| -> Result<()> {
        if raw.len() != n * size {
            return Err(err(format!(
                "{what}: {} bytes of raw data for {n} elements",
                raw.len()
            )));
        }
        Ok(())
    };
    let (data, float): (Vec<f64>, bool) = match t.data_type {
        FLOAT if !raw.is_empty() => {
            fixed(4)?;
            let v = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect();
            (v, true)
        }
        FLOAT => (t.float_data.iter().map(|&v| v as f64).collect(), true),
        DOUBLE if !raw.is_empty() => {
            fixed(8)?;
            let v = raw
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b)
                })
                .collect();
            (v, true)
        }
        DOUBLE => (t.double_data.clone(), true),
        INT64 if !raw.is_empty() => {
            fixed(8)?;
            let v = raw
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    i64::from_le_bytes(b) as f64
                })
                .collect();
            (v, false)
        }
        INT64 => (t.int64_data.iter().map(|&v| v as f64).collect(), false),
        INT32 if !raw.is_empty() => {
            fixed(4)?;
            let v = raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect();
            (v, false)
        }
        INT32 | UINT8 | INT8 | BOOL if raw.is_empty() => {
            (t.int32_data.iter().map(|&v| v as f64).collect(), false)
        }
        UINT8 | BOOL => {
            fixed(1)?;
            (raw.iter().map(|&b| b as f64).collect(), false)
        }
        INT8 => {
            fixed(1)?;
            (raw.iter().map(|&b| b as i8 as f64).collect(), false)
        }
        other => {
            return Err(err(format!(
            "{what}: data type {other} is not supported (float, double, int8/32/64, uint8, bool)"
        )))
        }
    };
    if data.len() != n {
        return Err(err(format!(
            "{what}: {} values for shape {shape:?}",
            data.len()
        )));
    }
    Ok(Const {
        shape,
        data,
        float,
        source: None,
    })
}

/// A node's attributes by name.
struct Attrs<'a>(HashMap<&'a str, &'a pb::AttributeProto>);

impl<'a> Attrs<'a> {
    fn of(n: &'a pb::NodeProto) -> Self {
        Attrs(n.attribute.iter().map(|a| (a.name.as_str(), a)).collect())
    }
    fn int(&self, k: &str, default: i64) -> i64 {
        self.0.get(k).and_then(|a| a.i).unwrap_or(default)
    }
    fn float(&self, k: &str, default: f32) -> f32 {
        self.0.get(k).and_then(|a| a.f).unwrap_or(default)
    }
    fn ints(&self, k: &str) -> Option<&'a [i64]> {
        self.0.get(k).map(|a| a.ints.as_slice())
    }
    fn string(&self, k: &str) -> Option<String> {
        self.0
            .get(k)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
    fn names(&self) -> impl Iterator<Item = &&'a str> {
        self.0.keys()
    }
}

/// The graph being built.
struct Builder {
    values: HashMap<String, Value>,
    params: Vec<GraphParam>,
    nodes: Vec<GraphNode>,
    weights: BTreeMap<String, Tensor>,
    /// Initializer name -> its parameter, so a weight used twice is one parameter.
    param_of: HashMap<String, String>,
    used: HashSet<String>,
    suffix: HashMap<String, usize>,
}

/// `s` made a valid graph name: printable ASCII without '/', at most the bound.
fn clean(s: &str) -> String {
    let mut out: String = s
        .trim_start_matches('/')
        .chars()
        .map(|c| match c {
            '/' => '.',
            c if c.is_ascii_graphic() => c,
            _ => '_',
        })
        .collect();
    if out.is_empty() {
        out.push('v');
    }
    out.truncate(MAX_GRAPH_NAME_BYTES - 8);
    out
}

impl Builder {
    fn fresh(&mut self, hint: &str) -> String {
        let base = clean(hint);
        let mut name = base.clone();
        // Suffixes continue from the last one given for this base, so a file whose
        // nodes all share one name costs linear, not quadratic, time.
        let next = self.suffix.entry(base.clone()).or_insert(0);
        while self.used.contains(&name) || name.starts_with("opt.") {
            *next += 1;
            name = format!("{base}#{next}");
        }
        self.used.insert(name.clone());
        name
    }

    fn node(&mut self, hint: &str, op: Op, inputs: &[&str]) -> String {
        let name = self.fresh(hint);
        self.nodes.push(GraphNode::new(name.clone(), op, inputs));
        name
    }

    /// An activation for `c`: its parameter (trainable when it is a float
    /// initializer) or a buffer holding its values.
    fn param(&mut self, hint: &str, c: &Const, shape: Vec<usize>) -> Result<Act> {
        if let Some(p) = c.source.as_ref().and_then(|s| self.param_of.get(s)) {
            let have = self.weights.get(p).map(|t| t.shape().to_vec());
            if have.as_deref() == Some(shape.as_slice()) {
                return Ok(Act {
                    name: p.clone(),
                    shape,
                    batched: false,
                });
            }
        }
        if shape.is_empty() || shape.len() > 4 {
            return Err(err(format!(
                "{hint}: a weight of rank {} (parameters have rank 1 to 4)",
                shape.len()
            )));
        }
        let name = self.fresh(c.source.as_deref().unwrap_or(hint));
        let trainable = c.float && c.source.is_some();
        let data: Vec<f32> = c.data.iter().map(|&v| v as f32).collect();
        if data.iter().any(|v| !v.is_finite()) {
            return Err(err(format!("{hint}: a weight holds a NaN or infinity")));
        }
        let t = Tensor::new(shape.clone(), data).map_err(|e| err(e.to_string()))?;
        self.params.push(GraphParam::new(
            name.clone(),
            shape.clone(),
            Init::Zeros,
            trainable,
        ));
        self.weights.insert(name.clone(), t);
        if let Some(s) = &c.source {
            self.param_of.insert(s.clone(), name.clone());
        }
        Ok(Act {
            name,
            shape,
            batched: false,
        })
    }

    /// `op` applied to `inputs`, giving an activation of `shape`.
    fn emit(&mut self, hint: &str, op: Op, inputs: &[&Act], shape: Vec<usize>) -> Act {
        let batched = inputs.iter().any(|a| a.batched);
        let names: Vec<&str> = inputs.iter().map(|a| a.name.as_str()).collect();
        let name = self.node(hint, op, &names);
        Act {
            name,
            shape,
            batched,
        }
    }

    /// `a` viewed as `shape` (a node only when the shape changes).
    fn reshape(&mut self, hint: &str, a: &Act, shape: Vec<usize>) -> Result<Act> {
        if numel(&shape)? != numel(&a.shape)? {
            return Err(err(format!(
                "{hint}: cannot view {:?} as {shape:?}",
                a.shape
            )));
        }
        if shape == a.shape {
            return Ok(a.clone());
        }
        let mut target = shape.clone();
        if a.batched {
            if target.is_empty() {
                return Err(err(format!(
                    "{hint}: the batch axis cannot be reshaped away"
                )));
            }
            // The batch axis is inferred, so the program runs at any batch size.
            target[0] = 0;
        }
        Ok(self.emit(hint, Op::Reshape { shape: target }, &[a], shape))
    }

    fn act(&mut self, hint: &str, v: &Value) -> Result<Act> {
        match v {
            Value::Act(a) => Ok(a.clone()),
            Value::Const(c) => self.param(hint, c, c.shape.clone()),
        }
    }
}

fn get<'a>(b: &'a Builder, n: &pb::NodeProto, i: usize) -> Result<&'a Value> {
    let name = n
        .input
        .get(i)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| node_err(n, format!("input {i} is missing")))?;
    b.values.get(name).ok_or_else(|| {
        err(format!(
            "node {:?}: input {name:?} is not defined before it",
            n.name
        ))
    })
}

/// Input `i` as an activation (a constant becomes a parameter).
fn input_act(b: &mut Builder, n: &pb::NodeProto, i: usize, h: &str) -> Result<Act> {
    let v = get(b, n, i)?.clone();
    b.act(h, &v)
}

fn opt_input<'a>(b: &'a Builder, n: &pb::NodeProto, i: usize) -> Result<Option<&'a Value>> {
    match n.input.get(i) {
        Some(s) if !s.is_empty() => get(b, n, i).map(Some),
        _ => Ok(None),
    }
}

fn konst<'a>(v: &'a Value, what: &str) -> Result<&'a Const> {
    match v {
        Value::Const(c) => Ok(c),
        Value::Act(_) => Err(err(format!("{what} must be a constant"))),
    }
}

/// `axis` (negative from the end) of a rank-`rank` tensor.
fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if !(0..r.max(1)).contains(&v) {
        return Err(err(format!("axis {a} of a rank-{rank} tensor")));
    }
    Ok(v as usize)
}

/// Row-major strides.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

fn permute_const(c: &Const, perm: &[usize]) -> Const {
    let out: Vec<usize> = perm.iter().map(|&p| c.shape[p]).collect();
    let (si, so) = (strides(&c.shape), strides(&out));
    let mut data = vec![0.0; c.data.len()];
    for (o, slot) in data.iter_mut().enumerate() {
        let mut src = 0;
        for (d, &p) in perm.iter().enumerate() {
            src += (o / so[d]) % out[d] * si[p];
        }
        *slot = c.data[src];
    }
    Const {
        shape: out,
        data,
        float: c.float,
        source: None,
    }
}

/// The shape without leading 1s (how a broadcast operand lines up from the right).
fn squeezed(shape: &[usize]) -> &[usize] {
    let k = shape.iter().take_while(|&&d| d == 1).count();
    &shape[k..]
}

/// Whether `c` (broadcast to `[.., t, t]`) is the causal pattern: `fill` where
/// column > row, `keep` elsewhere.
fn is_causal(c: &Const, t: usize, keep: impl Fn(f64) -> bool, fill: impl Fn(f64) -> bool) -> bool {
    squeezed(&c.shape) == [t, t]
        && (0..t * t).all(|k| {
            let (i, j) = (k / t, k % t);
            let v = c.data[k];
            if j > i {
                fill(v)
            } else {
                keep(v)
            }
        })
}

/// A value that is -inf, or so negative that its softmax weight is exactly 0 in f32.
fn masks(v: f64) -> bool {
    v <= -1.0e9
}

/// Imports `bytes` (an ONNX `ModelProto`). The batch axis is taken from the file's
/// input and written as inferred.
pub fn import(bytes: &[u8]) -> Result<Imported> {
    use prost::Message;
    if bytes.len() > MAX_ONNX_BYTES {
        return Err(err(format!(
            "the file is {} bytes; at most {MAX_ONNX_BYTES}",
            bytes.len()
        )));
    }
    let m = pb::ModelProto::decode(bytes).map_err(|e| err(format!("not an ONNX model: {e}")))?;
    let opset = m
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| err("the model imports no ai.onnx opset"))?;
    if !OPSETS.contains(&opset) {
        return Err(err(format!(
            "opset {opset} is not supported (export with opset_version in {}..={})",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let g = m.graph.ok_or_else(|| err("the model has no graph"))?;
    let mut b = Builder {
        values: HashMap::new(),
        params: Vec::new(),
        nodes: Vec::new(),
        weights: BTreeMap::new(),
        param_of: HashMap::new(),
        suffix: HashMap::new(),
        used: ["x", "y", "tokens", "targets", "positions", "loss"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    for t in &g.initializer {
        let mut c = tensor_const(t)?;
        c.source = Some(t.name.clone());
        b.values.insert(t.name.clone(), Value::Const(c));
    }
    let inputs: Vec<&pb::ValueInfoProto> = g
        .input
        .iter()
        .filter(|i| !b.values.contains_key(&i.name))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(err(format!(
            "the graph must have exactly one input (besides its weights), it has {}",
            inputs.len()
        )));
    };
    let tt = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| err(format!("input {:?} is not a tensor", input.name)))?;
    let shape: Vec<Option<usize>> = tt
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| {
                    d.dim_value
                        .and_then(|v| usize::try_from(v).ok())
                        .filter(|v| *v > 0)
                })
                .collect()
        })
        .unwrap_or_default();
    if shape.len() < 2 || shape[1..].iter().any(|d| d.is_none()) {
        return Err(err(format!(
            "input {:?} must be [batch, ..] with every other dimension fixed, got {shape:?}",
            input.name
        )));
    }
    // The file's batch size, for tracking shapes only: every reshape infers it.
    let batch_size = shape[0].unwrap_or(1);
    let rest: Vec<usize> = shape[1..].iter().map(|d| d.unwrap_or(1)).collect();
    let full: Vec<usize> = std::iter::once(batch_size)
        .chain(rest.iter().copied())
        .collect();
    let float_input = match tt.elem_type {
        FLOAT => true,
        INT64 | INT32 => false,
        t => {
            return Err(err(format!(
                "input {:?} has data type {t}: a float input (rows) or int64/int32 token ids",
                input.name
            )))
        }
    };
    let (batch_tensor, features) = if float_input {
        ("x", numel(&rest)?)
    } else {
        if rest.len() != 1 {
            return Err(err(format!(
                "token input {:?} must be [batch, ctx], got {shape:?}",
                input.name
            )));
        }
        ("tokens", rest[0])
    };
    let flat = Act {
        name: batch_tensor.into(),
        shape: if float_input {
            vec![batch_size, features]
        } else {
            vec![batch_size * features]
        },
        batched: true,
    };
    let x = b.reshape("input", &flat, full)?;
    b.values.insert(input.name.clone(), Value::Act(x));

    for n in &g.node {
        // Each ONNX node adds at most a handful of graph nodes and params; past the
        // graph bounds the program would be refused anyway, so stop early.
        if b.nodes.len() > MAX_GRAPH_NODES || b.params.len() > MAX_GRAPH_PARAMS {
            return Err(err(format!(
                "the model is larger than a graph program allows ({MAX_GRAPH_NODES} nodes, \
                 {MAX_GRAPH_PARAMS} parameters)"
            )));
        }
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(err(format!(
                "node {:?}: operator {}::{} is outside the ONNX standard domain",
                n.name, n.domain, n.op_type
            )));
        }
        let outs = convert(&mut b, n)?;
        for (name, v) in n.output.iter().zip(outs) {
            if !name.is_empty() {
                b.values.insert(name.clone(), v);
            }
        }
    }

    let [out] = g.output.as_slice() else {
        return Err(err(format!(
            "the graph must have exactly one output (the logits), it has {}",
            g.output.len()
        )));
    };
    let Some(Value::Act(logits)) = b.values.get(&out.name).cloned() else {
        return Err(err(format!(
            "output {:?} must be computed from the input",
            out.name
        )));
    };
    if !logits.batched || logits.shape.len() < 2 {
        return Err(err(format!(
            "output {:?} must be [batch, classes] or [batch, ctx, vocab], got {:?}",
            out.name, logits.shape
        )));
    }
    let classes = *logits.shape.last().unwrap_or(&0);
    let batch = if float_input {
        if logits.shape.len() != 2 {
            return Err(err(format!(
                "a rows model's output must be [batch, classes], got {:?}",
                logits.shape
            )));
        }
        BatchKind::Rows { features, classes }
    } else {
        if logits.shape.len() != 3 || logits.shape[1] != features {
            return Err(err(format!(
                "a token model's output must be [batch, {features}, vocab], got {:?}",
                logits.shape
            )));
        }
        BatchKind::Tokens {
            ctx: features,
            vocab: classes,
        }
    };
    let rows = numel(&logits.shape)? / classes.max(1);
    let logits = b.reshape("logits", &logits, vec![rows, classes])?;
    Ok(Imported {
        model: Model::Graph {
            batch,
            params: b.params,
            nodes: b.nodes,
            logits: logits.name,
        },
        weights: b.weights,
    })
}

/// One ONNX node: its outputs' values.
fn convert(b: &mut Builder, n: &pb::NodeProto) -> Result<Vec<Value>> {
    let at = Attrs::of(n);
    let hint = if n.output.first().is_some_and(|o| !o.is_empty()) {
        n.output[0].clone()
    } else {
        n.name.clone()
    };
    let h = hint.as_str();
    let fail = |why: String| node_err(n, why);
    let unary = |b: &mut Builder, op: Op| -> Result<Vec<Value>> {
        let x = input_act(b, n, 0, h)?;
        let shape = x.shape.clone();
        Ok(vec![Value::Act(b.emit(h, op, &[&x], shape))])
    };
    // Operators computed on constants are folded here: shape arithmetic.
    let all_const = !n.input.is_empty()
        && n.input
            .iter()
            .filter(|i| !i.is_empty())
            .all(|i| matches!(b.values.get(i), Some(Value::Const(_))));
    match n.op_type.as_str() {
        "Constant" => {
            let t =
                at.0.get("value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| fail("only a tensor `value` is supported".into()))?;
            Ok(vec![Value::Const(tensor_const(t)?)])
        }
        "Identity" | "Dropout" => Ok(vec![get(b, n, 0)?.clone()]),
        "Shape" => {
            let v = get(b, n, 0)?;
            let s = match v {
                Value::Act(a) => a.shape.clone(),
                Value::Const(c) => c.shape.clone(),
            };
            if matches!(v, Value::Act(a) if a.batched) {
                // The batch size would be frozen into whatever uses it.
                return Err(fail(
                    "the shape of a batched tensor: export with constant folding, and reshape \
                     with -1 or a fixed size"
                        .into(),
                ));
            }
            Ok(vec![Value::Const(Const {
                shape: vec![s.len()],
                data: s.iter().map(|&d| d as f64).collect(),
                float: false,
                source: None,
            })])
        }
        "Cast" if all_const => {
            let mut c = konst(get(b, n, 0)?, "Cast's input")?.clone();
            let to = at.int("to", FLOAT as i64) as i32;
            c.float = matches!(to, FLOAT | DOUBLE);
            if !c.float {
                c.data.iter_mut().for_each(|v| *v = v.trunc());
            }
            c.source = None;
            Ok(vec![Value::Const(c)])
        }
        "Unsqueeze" | "Squeeze" if all_const || opset_axes_const(b, n) => {
            let v = get(b, n, 0)?.clone();
            let shape = match &v {
                Value::Act(a) => a.shape.clone(),
                Value::Const(c) => c.shape.clone(),
            };
            let axes: Vec<i64> = match opt_input(b, n, 1)? {
                Some(a) => konst(a, "axes")?.ints()?,
                None => at.ints("axes").map(|a| a.to_vec()).unwrap_or_default(),
            };
            let out = if n.op_type == "Unsqueeze" {
                let r = shape.len() + axes.len();
                let mut ax = axes
                    .iter()
                    .map(|&a| axis(a, r))
                    .collect::<Result<Vec<_>>>()?;
                ax.sort_unstable();
                let mut it = shape.iter();
                (0..r)
                    .map(|i| {
                        if ax.contains(&i) {
                            1
                        } else {
                            *it.next().unwrap_or(&1)
                        }
                    })
                    .collect()
            } else {
                let ax = axes
                    .iter()
                    .map(|&a| axis(a, shape.len()))
                    .collect::<Result<Vec<_>>>()?;
                shape
                    .iter()
                    .enumerate()
                    .filter(|(i, d)| {
                        !(if ax.is_empty() {
                            **d == 1
                        } else {
                            ax.contains(i)
                        })
                    })
                    .map(|(_, d)| *d)
                    .collect::<Vec<_>>()
            };
            match v {
                Value::Const(mut c) => {
                    c.shape = out;
                    c.source = None;
                    Ok(vec![Value::Const(c)])
                }
                Value::Act(a) => {
                    if a.batched && out.first() != a.shape.first() {
                        return Err(fail("the batch axis must stay first".into()));
                    }
                    Ok(vec![Value::Act(b.reshape(h, &a, out)?)])
                }
            }
        }
        "Concat" if all_const => {
            let cs = (0..n.input.len())
                .map(|i| konst(get(b, n, i)?, "Concat's input").cloned())
                .collect::<Result<Vec<_>>>()?;
            if cs.iter().any(|c| c.shape.len() != 1) {
                return Err(fail(
                    "only 1-D constants (shape arithmetic) are concatenated".into(),
                ));
            }
            let data: Vec<f64> = cs.iter().flat_map(|c| c.data.iter().copied()).collect();
            Ok(vec![Value::Const(Const {
                shape: vec![data.len()],
                float: cs.iter().any(|c| c.float),
                data,
                source: None,
            })])
        }
        "Gather" if all_const => {
            let data = konst(get(b, n, 0)?, "data")?;
            let idx = konst(get(b, n, 1)?, "indices")?;
            if data.shape.len() != 1 || at.int("axis", 0) != 0 {
                return Err(fail("constant gathers only from a 1-D constant".into()));
            }
            let len = data.data.len() as i64;
            let picked = idx
                .ints()?
                .into_iter()
                .map(|i| {
                    let j = if i < 0 { i + len } else { i };
                    usize::try_from(j)
                        .ok()
                        .and_then(|j| data.data.get(j).copied())
                        .ok_or_else(|| fail(format!("index {i} out of {len}")))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(vec![Value::Const(Const {
                shape: idx.shape.clone(),
                data: picked,
                float: data.float,
                source: None,
            })])
        }
        "Gather" => {
            if at.int("axis", 0) != 0 {
                return Err(fail("only axis 0 (an embedding lookup)".into()));
            }
            let table = konst(get(b, n, 0)?, "the embedding table")?.clone();
            if table.shape.len() != 2 || !table.float {
                return Err(fail(format!(
                    "the table must be a float [vocab, dim] weight, got {:?}",
                    table.shape
                )));
            }
            let ids = match get(b, n, 1)?.clone() {
                Value::Act(a) => a,
                Value::Const(c) => {
                    let v = table.shape[0] as f64;
                    let mut c = c;
                    if c.data
                        .iter()
                        .any(|&i| i < 0.0 || i >= v || i.fract() != 0.0)
                    {
                        return Err(fail(format!("a constant index outside 0..{v}")));
                    }
                    c.float = false;
                    c.source = None;
                    let shape = c.shape.clone();
                    b.param(&format!("{h}.ids"), &c, shape)?
                }
            };
            let t = b.param(h, &table, table.shape.clone())?;
            let mut shape = ids.shape.clone();
            shape.push(table.shape[1]);
            Ok(vec![Value::Act(b.emit(
                h,
                Op::Embedding,
                &[&t, &ids],
                shape,
            ))])
        }
        "Reshape" => {
            let x = get(b, n, 0)?.clone();
            let target = konst(get(b, n, 1)?, "Reshape's shape")?.ints()?;
            let from = match &x {
                Value::Act(a) => a.shape.clone(),
                Value::Const(c) => c.shape.clone(),
            };
            let total = numel(&from)?;
            let allowzero = at.int("allowzero", 0) != 0;
            let mut out = Vec::with_capacity(target.len());
            let mut infer = None;
            for (i, &d) in target.iter().enumerate() {
                out.push(match d {
                    -1 if infer.is_none() => {
                        infer = Some(i);
                        1
                    }
                    0 if !allowzero => {
                        *from.get(i).ok_or_else(|| fail("0 past the rank".into()))?
                    }
                    d if d > 0 => d as usize,
                    d => return Err(fail(format!("dimension {d} in {target:?}"))),
                });
            }
            if let Some(i) = infer {
                let known = numel(&out)?;
                if known == 0 || total % known != 0 {
                    return Err(fail(format!("cannot view {from:?} as {target:?}")));
                }
                out[i] = total / known;
            }
            match x {
                Value::Const(mut c) => {
                    if numel(&out)? != total {
                        return Err(fail(format!("cannot view {from:?} as {target:?}")));
                    }
                    c.shape = out;
                    Ok(vec![Value::Const(c)])
                }
                Value::Act(a) => Ok(vec![Value::Act(b.reshape(h, &a, out)?)]),
            }
        }
        "Flatten" => {
            let x = input_act(b, n, 0, h)?;
            let ax = axis(at.int("axis", 1), x.shape.len() + 1)?;
            let out = vec![numel(&x.shape[..ax])?, numel(&x.shape[ax..])?];
            if x.batched && ax == 0 {
                return Err(fail("the batch axis must stay first".into()));
            }
            Ok(vec![Value::Act(b.reshape(h, &x, out)?)])
        }
        "Transpose" => {
            let v = get(b, n, 0)?.clone();
            let rank = match &v {
                Value::Act(a) => a.shape.len(),
                Value::Const(c) => c.shape.len(),
            };
            let perm: Vec<usize> = match at.ints("perm") {
                Some(p) => p.iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            let mut seen = perm.clone();
            seen.sort_unstable();
            if seen != (0..rank).collect::<Vec<_>>() {
                return Err(fail(format!("perm {perm:?} is not a permutation")));
            }
            match v {
                Value::Const(c) => Ok(vec![Value::Const(permute_const(&c, &perm))]),
                Value::Act(a) => {
                    if a.batched && perm[0] != 0 {
                        return Err(fail("the batch axis must stay first".into()));
                    }
                    let shape: Vec<usize> = perm.iter().map(|&p| a.shape[p]).collect();
                    let op = if rank == 2 {
                        Op::Transpose
                    } else {
                        Op::Permute { perm }
                    };
                    Ok(vec![Value::Act(b.emit(h, op, &[&a], shape))])
                }
            }
        }
        "MatMul" => matmul(b, n, h, false, false),
        "Gemm" => {
            if at.float("alpha", 1.0) != 1.0 || at.float("beta", 1.0) != 1.0 {
                return Err(fail(
                    "alpha and beta must be 1 (as a linear layer exports)".into(),
                ));
            }
            let (ta, tb) = (at.int("transA", 0) != 0, at.int("transB", 0) != 0);
            let mut y = matmul(b, n, h, ta, tb)?;
            if let Some(c) = opt_input(b, n, 2)?.cloned() {
                let Value::Act(prod) = y.remove(0) else {
                    return Err(fail("the product is constant".into()));
                };
                y = vec![add_like(b, h, prod, c, "Gemm's bias")?];
            }
            Ok(y)
        }
        "Add" => {
            let (a, c) = (get(b, n, 0)?.clone(), get(b, n, 1)?.clone());
            match (a, c) {
                (Value::Act(x), Value::Const(c)) | (Value::Const(c), Value::Act(x)) => {
                    let t = *x.shape.last().unwrap_or(&0);
                    if x.shape.len() >= 2
                        && x.shape[x.shape.len() - 2] == t
                        && is_causal(&c, t, |v| v == 0.0, masks)
                    {
                        let shape = x.shape.clone();
                        let op = Op::CausalMask {
                            fill: MaskFill::NegInf,
                        };
                        return Ok(vec![Value::Act(b.emit(h, op, &[&x], shape))]);
                    }
                    if let Some(s) = c.scalar() {
                        let shape = x.shape.clone();
                        let op = Op::AddScalar { s: s as f32 };
                        return Ok(vec![Value::Act(b.emit(h, op, &[&x], shape))]);
                    }
                    Ok(vec![add_like(b, h, x, Value::Const(c), "Add's operand")?])
                }
                (Value::Act(x), Value::Act(y)) => {
                    if x.shape == y.shape {
                        let shape = x.shape.clone();
                        return Ok(vec![Value::Act(b.emit(h, Op::Add, &[&x, &y], shape))]);
                    }
                    let (big, small) = if x.batched { (x, y) } else { (y, x) };
                    Ok(vec![add_like(
                        b,
                        h,
                        big,
                        Value::Act(small),
                        "Add's operand",
                    )?])
                }
                (Value::Const(_), Value::Const(_)) => Err(fail(
                    "adding two constants (export with constant folding)".into(),
                )),
            }
        }
        "Sub" | "Mul" | "Div" => {
            let (a, c) = (get(b, n, 0)?.clone(), get(b, n, 1)?.clone());
            match (a, c) {
                (Value::Act(x), Value::Act(y)) if x.shape == y.shape && n.op_type != "Div" => {
                    let op = if n.op_type == "Sub" { Op::Sub } else { Op::Mul };
                    let shape = x.shape.clone();
                    Ok(vec![Value::Act(b.emit(h, op, &[&x, &y], shape))])
                }
                (Value::Act(x), Value::Const(c)) if c.scalar().is_some() => {
                    let s = c.scalar().unwrap_or(1.0);
                    let op = match n.op_type.as_str() {
                        "Sub" => Op::AddScalar { s: -s as f32 },
                        "Mul" => Op::Scale { s: s as f32 },
                        _ if s != 0.0 && (1.0 / s).is_finite() => Op::Scale {
                            s: (1.0 / s) as f32,
                        },
                        _ => return Err(fail(format!("division by {s}"))),
                    };
                    let shape = x.shape.clone();
                    Ok(vec![Value::Act(b.emit(h, op, &[&x], shape))])
                }
                (Value::Const(c), Value::Act(x)) if c.scalar().is_some() && n.op_type == "Mul" => {
                    let op = Op::Scale {
                        s: c.scalar().unwrap_or(1.0) as f32,
                    };
                    let shape = x.shape.clone();
                    Ok(vec![Value::Act(b.emit(h, op, &[&x], shape))])
                }
                _ => Err(fail(
                    "only two tensors of one shape, or a tensor and a constant scalar \
                     (division: by a constant scalar)"
                        .into(),
                )),
            }
        }
        "Relu" => unary(b, Op::Relu),
        "Tanh" => unary(b, Op::Tanh),
        "Sigmoid" => unary(b, Op::Sigmoid),
        "Exp" => unary(b, Op::Exp),
        "Gelu" => match at.string("approximate").as_deref() {
            Some("tanh") => unary(b, Op::Gelu),
            _ => Err(fail(
                "only the tanh approximation (torch.nn.GELU(approximate='tanh')): RepOps' gelu \
                 is that function"
                    .into(),
            )),
        },
        "Softmax" | "LogSoftmax" => {
            let x = input_act(b, n, 0, h)?;
            let last = x.shape.len().saturating_sub(1);
            if axis(at.int("axis", -1), x.shape.len())? != last {
                return Err(fail("only over the last axis".into()));
            }
            unary(
                b,
                if n.op_type == "Softmax" {
                    Op::Softmax
                } else {
                    Op::LogSoftmax
                },
            )
        }
        "LayerNormalization" => {
            let x = input_act(b, n, 0, h)?;
            if axis(at.int("axis", -1), x.shape.len())? + 1 != x.shape.len() {
                return Err(fail("only over the last axis".into()));
            }
            let d = *x.shape.last().unwrap_or(&0);
            let weight = |b: &mut Builder, i: usize, what: &str| -> Result<Act> {
                let c = match opt_input(b, n, i)? {
                    Some(v) => konst(v, what)?.clone(),
                    None => Const {
                        shape: vec![d],
                        data: vec![0.0; d],
                        float: false,
                        source: None,
                    },
                };
                if numel(&c.shape)? != d {
                    return Err(fail(format!("{what} of shape {:?} for width {d}", c.shape)));
                }
                b.param(&format!("{h}.{what}"), &c, vec![d])
            };
            let g = weight(b, 1, "scale")?;
            let beta = weight(b, 2, "bias")?;
            if n.output.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(fail(
                    "only the first output (no mean or inverse deviation)".into(),
                ));
            }
            let op = Op::LayerNorm {
                eps: at.float("epsilon", 1e-5),
            };
            let shape = x.shape.clone();
            Ok(vec![Value::Act(b.emit(h, op, &[&x, &g, &beta], shape))])
        }
        "Where" => {
            let cond = konst(get(b, n, 0)?, "Where's condition (the causal-mask pattern)")?.clone();
            let (a, c) = (get(b, n, 1)?.clone(), get(b, n, 2)?.clone());
            let (x, fill, keep_when) = match (a, c) {
                (Value::Act(x), Value::Const(f)) => (x, f, true),
                (Value::Const(f), Value::Act(x)) => (x, f, false),
                _ => return Err(fail("only the causal-mask pattern".into())),
            };
            let t = *x.shape.last().unwrap_or(&0);
            let keep = |v: f64| (v != 0.0) == keep_when;
            let ok = fill.scalar().is_some_and(masks)
                && x.shape.len() >= 2
                && x.shape[x.shape.len() - 2] == t
                && is_causal(&cond, t, keep, |v| !keep(v));
            if !ok {
                return Err(fail(
                    "only the causal-mask pattern (-inf above the diagonal)".into(),
                ));
            }
            let shape = x.shape.clone();
            let op = Op::CausalMask {
                fill: MaskFill::NegInf,
            };
            Ok(vec![Value::Act(b.emit(h, op, &[&x], shape))])
        }
        "Conv" => conv(b, n, h, &at),
        "MaxPool" => pool(b, n, h, &at),
        other => Err(fail(format!(
            "operator {other} is not in the supported subset{}",
            if all_const {
                " (it computes on constants: export with do_constant_folding=True)"
            } else {
                ""
            }
        ))),
    }
}

/// Whether an `Unsqueeze`/`Squeeze` takes its axes from a constant (or an attribute),
/// so it is a reshape.
fn opset_axes_const(b: &Builder, n: &pb::NodeProto) -> bool {
    match n.input.get(1) {
        Some(a) if !a.is_empty() => matches!(b.values.get(a), Some(Value::Const(_))),
        _ => true,
    }
}

/// `x + c` where `c` lines up with the trailing axes of `x` (a bias, a positional
/// table): flattened to one bias over those axes.
fn add_like(b: &mut Builder, h: &str, x: Act, c: Value, what: &str) -> Result<Value> {
    let cshape = match &c {
        Value::Act(a) => {
            if a.batched {
                return Err(err(format!(
                    "{h}: {what}: two batched tensors of shapes {:?} and {:?} (broadcasting \
                     is supported only for a bias over trailing axes)",
                    x.shape, a.shape
                )));
            }
            a.shape.clone()
        }
        Value::Const(k) => k.shape.clone(),
    };
    let tail = squeezed(&cshape).to_vec();
    let k = tail.len();
    if k == 0 || k >= x.shape.len() || x.shape[x.shape.len() - k..] != tail[..] {
        return Err(err(format!(
            "{h}: {what} of shape {cshape:?} does not line up with the trailing axes of {:?}",
            x.shape
        )));
    }
    let width = numel(&tail)?;
    let bias = match c {
        Value::Const(k) => b.param(h, &k, vec![width])?,
        Value::Act(a) => b.reshape(&format!("{h}.bias"), &a, vec![width])?,
    };
    let lead = numel(&x.shape[..x.shape.len() - k])?;
    let rows = b.reshape(&format!("{h}.rows"), &x, vec![lead, width])?;
    let y = b.emit(h, Op::AddBias, &[&rows, &bias], vec![lead, width]);
    Ok(Value::Act(b.reshape(
        &format!("{h}.out"),
        &y,
        x.shape.clone(),
    )?))
}

/// `MatMul` (and `Gemm`'s product): a 2-D weight times `[.., K]` rows, or two
/// batched tensors of one rank (batched products over the leading axes).
fn matmul(b: &mut Builder, n: &pb::NodeProto, h: &str, ta: bool, tb: bool) -> Result<Vec<Value>> {
    let fail = |why: String| node_err(n, why);
    let (a, w) = (get(b, n, 0)?.clone(), get(b, n, 1)?.clone());
    match (a, w) {
        (Value::Act(x), Value::Const(w)) => {
            if w.shape.len() != 2 {
                return Err(fail(format!(
                    "a weight of shape {:?} (must be 2-D)",
                    w.shape
                )));
            }
            let (k, nn) = if tb {
                (w.shape[1], w.shape[0])
            } else {
                (w.shape[0], w.shape[1])
            };
            let wp = b.param(h, &w, w.shape.clone())?;
            let r = x.shape.len();
            if r < 2 || (ta && r != 2) {
                return Err(fail(format!("an input of shape {:?}", x.shape)));
            }
            let xk = if ta { x.shape[0] } else { x.shape[r - 1] };
            if xk != k {
                return Err(fail(format!("shapes {:?} and {:?}", x.shape, w.shape)));
            }
            let rows = numel(&x.shape)? / k;
            let x2 = if ta {
                x.clone()
            } else {
                b.reshape(&format!("{h}.rows"), &x, vec![rows, k])?
            };
            let y = b.emit(h, Op::MatMul { ta, tb }, &[&x2, &wp], vec![rows, nn]);
            let mut out = if ta {
                vec![x.shape[1], nn]
            } else {
                x.shape[..r - 1].to_vec()
            };
            if !ta {
                out.push(nn);
            }
            Ok(vec![Value::Act(b.reshape(&format!("{h}.out"), &y, out)?)])
        }
        (Value::Act(x), Value::Act(y)) if !ta && !tb => {
            let r = x.shape.len();
            if r < 2 || y.shape.len() != r || x.shape[..r - 2] != y.shape[..r - 2] {
                return Err(fail(format!(
                    "shapes {:?} and {:?} (batched products need one rank and the same leading axes)",
                    x.shape, y.shape
                )));
            }
            let (m, k, k2, nn) = (
                x.shape[r - 2],
                x.shape[r - 1],
                y.shape[r - 2],
                y.shape[r - 1],
            );
            if k != k2 {
                return Err(fail(format!("shapes {:?} and {:?}", x.shape, y.shape)));
            }
            if r == 2 {
                let op = Op::MatMul {
                    ta: false,
                    tb: false,
                };
                return Ok(vec![Value::Act(b.emit(h, op, &[&x, &y], vec![m, nn]))]);
            }
            let g = numel(&x.shape[..r - 2])?;
            let x3 = b.reshape(&format!("{h}.a"), &x, vec![g, m, k])?;
            let y3 = b.reshape(&format!("{h}.b"), &y, vec![g, k, nn])?;
            let op = Op::BatchedMatMul {
                ta: false,
                tb: false,
            };
            let z = b.emit(h, op, &[&x3, &y3], vec![g, m, nn]);
            let mut out = x.shape[..r - 2].to_vec();
            out.extend([m, nn]);
            Ok(vec![Value::Act(b.reshape(&format!("{h}.out"), &z, out)?)])
        }
        _ => Err(fail(
            "only an activation times a 2-D weight, or two activations".into(),
        )),
    }
}

/// The square window, stride and padding of a `Conv` or pooling node.
fn window(
    n: &pb::NodeProto,
    at: &Attrs<'_>,
    k: Option<(usize, usize)>,
) -> Result<(usize, usize, usize, usize)> {
    let fail = |why: String| node_err(n, why);
    for name in at.names() {
        if ![
            "kernel_shape",
            "strides",
            "pads",
            "dilations",
            "group",
            "ceil_mode",
            "auto_pad",
            "storage_order",
        ]
        .contains(name)
        {
            return Err(fail(format!("attribute {name} is not supported")));
        }
    }
    let pair = |k: &str, d: i64| -> Result<usize> {
        match at.ints(k) {
            None => Ok(d as usize),
            Some([a, b]) if a == b && *a >= 0 => Ok(*a as usize),
            Some(v) => Err(fail(format!("{k} {v:?}: only equal values for both axes"))),
        }
    };
    let (kh, kw) = match (at.ints("kernel_shape"), k) {
        (Some([a, b]), _) if *a > 0 && *b > 0 => (*a as usize, *b as usize),
        (None, Some(k)) => k,
        (v, _) => return Err(fail(format!("kernel_shape {v:?}"))),
    };
    let stride = pair("strides", 1)?;
    let pad = match at.ints("pads") {
        None => 0,
        Some([a, b, c, d]) if a == c && b == d && a == b && *a >= 0 => *a as usize,
        Some(v) => {
            return Err(fail(format!(
                "pads {v:?}: only the same padding on every side"
            )))
        }
    };
    if pair("dilations", 1)? != 1 || at.int("group", 1) != 1 || at.int("ceil_mode", 0) != 0 {
        return Err(fail(
            "dilation, groups and ceil_mode are not supported".into(),
        ));
    }
    if at.string("auto_pad").is_some_and(|s| s != "NOTSET") {
        return Err(fail("auto_pad: give explicit pads".into()));
    }
    if stride == 0 {
        return Err(fail("stride 0".into()));
    }
    Ok((kh, kw, stride, pad))
}

fn conv(b: &mut Builder, n: &pb::NodeProto, h: &str, at: &Attrs<'_>) -> Result<Vec<Value>> {
    let fail = |why: String| node_err(n, why);
    let x = input_act(b, n, 0, h)?;
    let w = konst(get(b, n, 1)?, "Conv's kernel")?.clone();
    let (&[nb, c, hh, ww], &[f, wc, kh, kw]) = (&x.shape[..], &w.shape[..]) else {
        return Err(fail(format!(
            "input {:?} and kernel {:?} must be [N, C, H, W] and [F, C, kh, kw]",
            x.shape, w.shape
        )));
    };
    let (kh2, kw2, stride, pad) = window(n, at, Some((kh, kw)))?;
    if wc != c || (kh2, kw2) != (kh, kw) {
        return Err(fail(format!(
            "kernel {:?} for input {:?}",
            w.shape, x.shape
        )));
    }
    let (oh, ow) = repops::ops::window_outs(hh, ww, [kh, kw, stride, pad])
        .ok_or_else(|| fail("the window does not fit the image".into()))?;
    let wp = b.param(h, &w, vec![f, c * kh * kw])?;
    let op = Op::Im2Col {
        kh,
        kw,
        stride,
        pad,
    };
    let cols = b.emit(
        &format!("{h}.cols"),
        op,
        &[&x],
        vec![nb * oh * ow, c * kh * kw],
    );
    let mm = Op::MatMul {
        ta: false,
        tb: true,
    };
    let mut y = b.emit(&format!("{h}.mm"), mm, &[&cols, &wp], vec![nb * oh * ow, f]);
    if let Some(bias) = opt_input(b, n, 2)?.cloned() {
        let bias = konst(&bias, "Conv's bias")?.clone();
        if numel(&bias.shape)? != f {
            return Err(fail(format!("bias {:?} for {f} filters", bias.shape)));
        }
        let bp = b.param(&format!("{h}.bias"), &bias, vec![f])?;
        y = b.emit(
            &format!("{h}.z"),
            Op::AddBias,
            &[&y, &bp],
            vec![nb * oh * ow, f],
        );
    }
    let nhwc = b.reshape(&format!("{h}.nhwc"), &y, vec![nb, oh, ow, f])?;
    let perm = Op::Permute {
        perm: vec![0, 3, 1, 2],
    };
    Ok(vec![Value::Act(b.emit(
        h,
        perm,
        &[&nhwc],
        vec![nb, f, oh, ow],
    ))])
}

fn pool(b: &mut Builder, n: &pb::NodeProto, h: &str, at: &Attrs<'_>) -> Result<Vec<Value>> {
    let fail = |why: String| node_err(n, why);
    let x = input_act(b, n, 0, h)?;
    let [nb, c, hh, ww] = x.shape[..] else {
        return Err(fail(format!("input {:?} must be [N, C, H, W]", x.shape)));
    };
    if n.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(fail("only the first output (no indices)".into()));
    }
    let (kh, kw, stride, pad) = window(n, at, None)?;
    if pad != 0 {
        return Err(fail("padding is not supported for pooling".into()));
    }
    let (oh, ow) = repops::ops::window_outs(hh, ww, [kh, kw, stride, 0])
        .ok_or_else(|| fail("the window does not fit the image".into()))?;
    let planes = b.reshape(&format!("{h}.planes"), &x, vec![nb * c, 1, hh, ww])?;
    let op = Op::Im2Col {
        kh,
        kw,
        stride,
        pad: 0,
    };
    let win = b.emit(
        &format!("{h}.win"),
        op,
        &[&planes],
        vec![nb * c * oh * ow, kh * kw],
    );
    let m = b.emit(
        &format!("{h}.max"),
        Op::MaxLast,
        &[&win],
        vec![nb * c * oh * ow],
    );
    Ok(vec![Value::Act(b.reshape(h, &m, vec![nb, c, oh, ow])?)])
}
