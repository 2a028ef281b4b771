//! Checkpoints: the state after a step as a safetensors file holding every
//! state tensor (f32, little-endian), with metadata `veritrain.state_hash`
//! (hex), `veritrain.step` and `veritrain.program_hash` (hex). Used by
//! `vt-train --checkpoint-dir`, by `solverd` (served to verifiers and to the
//! submitter as the trained model) and by `verifierd`, which trusts nothing in
//! the file: [`decode`] recomputes the state hash.
use crate::error::{Result, TrainError};
use crate::exec::state_hash;
use crate::merkle;
use crate::program::{input_prefix, Program};
use repops::Tensor;
use std::collections::{BTreeMap, HashMap};

/// A state map as checkpoint bytes.
pub fn encode(program: &Program, step: u64, state: &BTreeMap<String, Tensor>) -> Result<Vec<u8>> {
    // safetensors stores f32 little-endian: on a little-endian machine that is the
    // tensors' memory, viewed in place (no copy of the state before the file is
    // written); elsewhere the bytes are built.
    let built: Vec<Vec<u8>> = if cfg!(target_endian = "little") {
        Vec::new()
    } else {
        state
            .values()
            .map(|t| t.data().iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect()
    };
    let views = state
        .iter()
        .enumerate()
        .map(|(i, (k, t))| {
            let b: &[u8] = match built.get(i) {
                Some(b) => b,
                None => bytemuck::cast_slice(t.data()),
            };
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape().to_vec(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| TrainError::Checkpoint(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = HashMap::new();
    meta.insert(
        "veritrain.state_hash".to_string(),
        hex::encode(state_hash(state)),
    );
    meta.insert("veritrain.step".to_string(), step.to_string());
    meta.insert(
        "veritrain.program_hash".to_string(),
        hex::encode(program.hash()),
    );
    safetensors::serialize(views, &Some(meta)).map_err(|e| TrainError::Checkpoint(e.to_string()))
}

/// An upper bound on the size of a checkpoint file of a state with these tensor
/// shapes ([`encode`]'s output): the f32 data, plus the safetensors header (each
/// tensor's name, dtype, shape and offsets as JSON; the metadata; the length and
/// alignment). What a receiver allows a served checkpoint or model to be, so no
/// fixed cap limits model size and no sender can make it allocate more.
pub fn max_file_bytes(shapes: &BTreeMap<String, Vec<usize>>) -> u64 {
    shapes.iter().fold(4096u64, |a, (name, shape)| {
        let data = shape.iter().fold(4u64, |n, &d| n.saturating_mul(d as u64));
        // `"name":{"dtype":"F32","shape":[..],"data_offsets":[a,b]},` with the name
        // possibly escaped (6 bytes a character at worst), 21 digits a number.
        let header = 64 + 6 * name.len() as u64 + 22 * (shape.len() as u64 + 2);
        a.saturating_add(data).saturating_add(header)
    })
}

/// What [`decode`] requires of every state tensor's values: no NaN and no infinity
/// (the first offender in name order is the error). The step executor refuses a new
/// state by this same function, so a diverged run stops at the step whose checkpoint
/// would be refused, and is never committed.
pub fn check_finite(state: &BTreeMap<String, Tensor>) -> repops::Result<()> {
    state.iter().try_for_each(|(name, t)| t.check_finite(name))
}

/// Parses checkpoint bytes for `program` (whose state tensors have
/// `state_shapes`). Rejects: unparsable files, missing metadata, another
/// program, missing, extra or mis-shaped tensors, non-finite values, a state
/// hash that differs from the recorded one, and a step counter that disagrees
/// with the metadata. Returns the step and the state.
pub fn decode(
    program: &Program,
    state_shapes: &BTreeMap<String, Vec<usize>>,
    bytes: &[u8],
) -> Result<(u64, BTreeMap<String, Tensor>)> {
    decode_hashed(program, state_shapes, bytes).map(|(step, state, _)| (step, state))
}

/// [`decode`], also returning the state hash it checked (so callers need not hash again).
pub fn decode_hashed(
    program: &Program,
    state_shapes: &BTreeMap<String, Vec<usize>>,
    bytes: &[u8],
) -> Result<(u64, BTreeMap<String, Tensor>, crate::merkle::Hash)> {
    let (meta, state, got) = decode_state(state_shapes, bytes)?;
    let get = |k: &str| {
        meta.get(k)
            .cloned()
            .ok_or_else(|| ck(format!("metadata {k} is missing")))
    };
    let want_hash = merkle::parse_hex32(&get("veritrain.state_hash")?).map_err(ck)?;
    let step: u64 = get("veritrain.step")?
        .parse()
        .map_err(|e| ck(format!("veritrain.step is not an integer: {e}")))?;
    let ph = get("veritrain.program_hash")?;
    if ph != hex::encode(program.hash()) {
        return Err(ck(format!(
            "checkpoint is for program {ph}, not {}",
            hex::encode(program.hash())
        )));
    }
    if got != want_hash {
        return Err(ck(format!(
            "state hash {} does not match the recorded {}",
            hex::encode(got),
            hex::encode(want_hash)
        )));
    }
    // A run from a committed state counts on from that state's counter.
    let first = program.first_counter();
    let counter = step_counter(&state);
    if counter != first.saturating_add(step) as f32 {
        return Err(ck(format!(
            "opt.step = {counter} disagrees with metadata step {step} (first counter {first})"
        )));
    }
    Ok((step, state, got))
}

/// The committed state a program starts from (`program.init_state`): the file's
/// tensors must have exactly `state_shapes`, be finite, hash to the program's
/// `init_state.root` and carry `opt.step = init_state.step` (so the run's
/// checkpoints decode like any other). The file is addressed by its content
/// alone: its metadata (another program's hash, a step) is not consulted.
pub fn decode_initial(
    program: &Program,
    state_shapes: &BTreeMap<String, Vec<usize>>,
    bytes: &[u8],
) -> Result<BTreeMap<String, Tensor>> {
    let Some(init) = &program.init_state else {
        return Err(ck(
            "the program starts from its seed, not a committed state".into(),
        ));
    };
    let (_, state, got) = decode_state(state_shapes, bytes)?;
    if got != init.root {
        return Err(ck(format!(
            "initial state hashes to {}, the program commits to {}",
            hex::encode(got),
            hex::encode(init.root)
        )));
    }
    let counter = step_counter(&state);
    if counter != init.step as f32 {
        return Err(ck(format!(
            "the initial state must have opt.step = {} (init_state.step), this one has {counter}",
            init.step
        )));
    }
    Ok(state)
}

/// A merge's starting state: input `i`'s state (checked by whoever loaded it:
/// [`decode_initial`] of [`Program::input_program`]) under [`input_prefix`]`(i)`, for
/// every input in order.
pub fn merge_inputs(
    program: &Program,
    inputs: Vec<BTreeMap<String, Tensor>>,
) -> Result<BTreeMap<String, Tensor>> {
    if !program.is_merge() || inputs.len() != program.inputs.len() {
        return Err(ck(format!(
            "a merge of {} inputs was given {} states",
            program.inputs.len(),
            inputs.len()
        )));
    }
    let mut state = BTreeMap::new();
    for (i, part) in inputs.into_iter().enumerate() {
        let prefix = input_prefix(i);
        state.extend(part.into_iter().map(|(k, t)| (format!("{prefix}{k}"), t)));
    }
    Ok(state)
}

/// Input `i`'s own state out of a merge's starting state (the tensors under its
/// prefix, named as in the input).
pub fn merge_input(
    program: &Program,
    state: &BTreeMap<String, Tensor>,
    i: usize,
) -> Result<BTreeMap<String, Tensor>> {
    let prefix = input_prefix(i);
    let mut part = BTreeMap::new();
    for name in program.state_spec()?.into_keys() {
        let t = state
            .get(&format!("{prefix}{name}"))
            .ok_or_else(|| ck(format!("the merge's input {i} has no tensor {name:?}")))?;
        part.insert(name, t.clone());
    }
    Ok(part)
}

/// The state a fine-tune of `program` starts from, made from a trained state (e.g. a
/// pretraining checkpoint's): every parameter of `program` taken from `trained` (same
/// name and shape), every optimizer slot fresh (its initialiser), so `opt.step = 0`.
/// Write it with [`encode`] and put its [`crate::state_hash`] in `init_state.root`.
pub fn fine_tune_state(
    program: &Program,
    trained: &BTreeMap<String, Tensor>,
) -> Result<BTreeMap<String, Tensor>> {
    let mut seed_program = program.clone();
    seed_program.init_state = None;
    let mut state = crate::trainer::initial_state(&seed_program)?;
    for (name, t) in state.iter_mut() {
        if name.starts_with("opt.") {
            continue;
        }
        let Some(src) = trained.get(name) else {
            return Err(ck(format!("the trained state has no parameter {name:?}")));
        };
        if src.shape() != t.shape() {
            return Err(ck(format!(
                "parameter {name} has shape {:?} in the trained state, the program wants {:?}",
                src.shape(),
                t.shape()
            )));
        }
        *t = src.clone();
    }
    check_finite(&state).map_err(|e| ck(e.to_string()))?;
    Ok(state)
}

/// Every tensor of a safetensors state file, whatever program wrote it (finite f32
/// only; nothing is checked against a program). For [`fine_tune_state`]'s input.
pub fn read_tensors(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| ck(format!("not a safetensors file: {e}")))?;
    let shapes = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.shape().to_vec()))
        .collect();
    decode_state(&shapes, bytes).map(|(_, state, _)| state)
}

fn ck(m: String) -> TrainError {
    TrainError::Checkpoint(m)
}

/// The state's `opt.step` (-1 when it has none).
pub fn step_counter(state: &BTreeMap<String, Tensor>) -> f32 {
    state
        .get("opt.step")
        .and_then(|t| t.data().first().copied())
        .unwrap_or(-1.0)
}

/// A decoded state file: its metadata, its tensors and their state hash.
type Decoded = (
    HashMap<String, String>,
    BTreeMap<String, Tensor>,
    crate::merkle::Hash,
);

/// Parses a safetensors file into exactly the tensors `state_shapes` names (f32, those
/// shapes, finite) and returns its metadata, the state and the state's hash.
fn decode_state(state_shapes: &BTreeMap<String, Vec<usize>>, bytes: &[u8]) -> Result<Decoded> {
    let (_, md) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| ck(format!("not a safetensors file: {e}")))?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| ck(format!("not a safetensors file: {e}")))?;
    let meta = md.metadata().clone().unwrap_or_default();
    let mut state = BTreeMap::new();
    for (name, view) in st.tensors() {
        let Some(want_shape) = state_shapes.get(&name) else {
            return Err(ck(format!("unexpected tensor {name:?}")));
        };
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(ck(format!(
                "tensor {name} has dtype {:?}, want F32",
                view.dtype()
            )));
        }
        if view.shape() != want_shape.as_slice() {
            return Err(ck(format!(
                "tensor {name} has shape {:?}, want {:?}",
                view.shape(),
                want_shape
            )));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let t =
            Tensor::new(want_shape.clone(), data).map_err(|e| ck(format!("tensor {name}: {e}")))?;
        state.insert(name, t);
    }
    check_finite(&state).map_err(|e| ck(e.to_string()))?;
    if let Some(missing) = state_shapes.keys().find(|k| !state.contains_key(*k)) {
        return Err(ck(format!("tensor {missing:?} is missing")));
    }
    let got = state_hash(&state);
    Ok((meta, state, got))
}
