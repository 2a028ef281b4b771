//! Program validation at submission: everything a validator will ever
//! compute for a task (node expansion, h_0, one node in the referee — or one
//! tile of it, for a node too costly whole — one dataset chunk per upload) is
//! bounded here, cheapest checks first, so an
//! oversized program is refused before anything big is built.
use crate::error::{Result, TasksError};
use crate::params::Params;
use crate::task::{schema_name, DatasetLayout};
use proto::tasks::v1 as pb;

/// A validated program and what the task records about it.
pub struct Validated {
    pub program: train::Program,
    pub node_count: u64,
    pub layout: DatasetLayout,
    /// FLOPs of one training step (sum over its nodes).
    pub step_flops: u64,
}

fn big(what: &'static str, got: u64, max: u64) -> Result<()> {
    if got > max {
        return Err(TasksError::ProgramTooBig { what, got, max });
    }
    Ok(())
}

/// Parses and validates `json` against the referee bounds and the dataset
/// layout (the chain's own for a builtin dataset, else the submitter's).
pub fn validate_program(
    json: &[u8],
    p: &Params,
    info: Option<&pb::DatasetInfo>,
) -> Result<Validated> {
    if json.len() as u64 > p.max_program_bytes {
        return Err(TasksError::ProgramTooLarge {
            got: json.len() as u64,
            max: p.max_program_bytes,
        });
    }
    let bad = TasksError::InvalidProgram;
    let text = std::str::from_utf8(json).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    let prog = train::Program::from_json(text).map_err(|e| bad(e.to_string()))?;
    prog.validate().map_err(|e| bad(e.to_string()))?;
    // Two steps at least, so that an attester's evidence step (in 1..T) is a state
    // only re-execution gives. A merge is one step by definition (train validates
    // it): its evidence is h_1 itself, and a lazy attester of a wrong merge is
    // slashed with it when anyone disputes.
    let min_steps = if prog.is_merge() { 1 } else { 2 };
    if prog.steps < min_steps || prog.steps > p.max_steps {
        return Err(bad(format!(
            "steps must be {min_steps}..={}, got {}",
            p.max_steps, prog.steps
        )));
    }
    // Bounds from the sizes alone, before anything is allocated.
    let fp = prog.footprint();
    big("state size (bytes)", fp.state_bytes, p.max_state_bytes)?;
    big("node count bound", fp.nodes, p.max_nodes)?;
    let layout = dataset_layout(&prog, info)?;
    if layout.row_bytes == 0 || layout.chunk_rows == 0 || layout.rows <= prog.dataset.train_rows {
        return Err(bad(format!(
            "dataset layout: rows ({}) must exceed train_rows ({}), row_bytes and chunk_rows must be positive",
            layout.rows, prog.dataset.train_rows
        )));
    }
    prog.validate_rows(layout.rows)
        .map_err(|e| bad(e.to_string()))?;
    // Each row proof carries its whole chunk: it must fit one upload.
    big(
        "dataset chunk (bytes)",
        layout.chunk_rows.saturating_mul(layout.row_bytes),
        p.max_chunk_bytes,
    )?;
    use train::program::BatchKind;
    match (prog.model.batch_kind(), layout.schema) {
        (BatchKind::Rows { features, .. }, train::dataset::Schema::Digits8x8)
            if features == 64 && layout.row_bytes == 65 => {}
        (BatchKind::Tokens { ctx, .. }, s)
            if (s == train::dataset::Schema::Ascii || s.token_bytes().is_some())
                && s.row_tokens(layout.row_bytes) > ctx as u64 + 1
                && s.token_bytes()
                    .is_none_or(|w| layout.row_bytes.is_multiple_of(w as u64)) => {}
        _ => {
            return Err(bad(format!(
                "the model family does not fit a {} dataset of {}-byte rows",
                schema_name(layout.schema),
                layout.row_bytes
            )))
        }
    }
    // A dispute may need every row of a batch, each with its whole chunk; the
    // referee rebuilds a builtin dataset's batch from its own copy (rows only).
    let builtin =
        train::Dataset::builtin(&prog.dataset.name).is_ok_and(|d| d.root() == prog.dataset.root);
    let rows_bytes = (prog.rows_per_step() as u64)
        .saturating_mul(if builtin { 1 } else { layout.chunk_rows })
        .saturating_mul(layout.row_bytes);
    if rows_bytes > p.max_reveal_bytes {
        return Err(TasksError::NodeTooExpensive {
            node: 0,
            label: "batch rows".into(),
            what: "reveal bytes",
            got: rows_bytes,
            max: p.max_reveal_bytes,
        });
    }
    let nodes = prog.nodes().map_err(|e| bad(e.to_string()))?;
    big("node count", nodes.len() as u64, p.max_nodes)?;
    let mut step_flops = 0u64;
    for n in &nodes {
        let c = n.cost();
        step_flops = step_flops.saturating_add(c.flops);
        if n.fits(p.max_referee_flops, p.max_reveal_bytes) {
            continue;
        }
        // Too costly whole: a dispute goes on inside it, down to one tile, which
        // must fit (its FLOPs, all its input slices' proofs, each proof).
        if let Some(tc) = n.min_tile_cost() {
            if tc.fits(p.max_referee_flops, p.max_reveal_bytes, p.max_chunk_bytes) {
                continue;
            }
            let total = tc
                .input_bytes
                .iter()
                .fold(0u64, |a, b| a.saturating_add(*b));
            let worst = tc.input_bytes.iter().copied().max().unwrap_or(0);
            let (what, got, max) = if tc.flops > p.max_referee_flops {
                ("smallest tile's flops", tc.flops, p.max_referee_flops)
            } else if total > p.max_reveal_bytes {
                ("smallest tile's proof bytes", total, p.max_reveal_bytes)
            } else {
                (
                    "smallest tile's largest input proof",
                    worst,
                    p.max_chunk_bytes,
                )
            };
            return Err(TasksError::NodeTooExpensive {
                node: n.index,
                label: n.label.clone(),
                what,
                got,
                max,
            });
        }
        for (what, got, max) in [
            ("flops", c.flops, p.max_referee_flops),
            ("input bytes", c.input_bytes, p.max_reveal_bytes),
        ] {
            if got > max {
                return Err(TasksError::NodeTooExpensive {
                    node: n.index,
                    label: n.label.clone(),
                    what,
                    got,
                    max,
                });
            }
        }
    }
    Ok(Validated {
        program: prog,
        node_count: nodes.len() as u64,
        layout,
        step_flops,
    })
}

fn dataset_layout(prog: &train::Program, info: Option<&pb::DatasetInfo>) -> Result<DatasetLayout> {
    let builtin = train::Dataset::builtin(&prog.dataset.name)
        .ok()
        .filter(|d| d.root() == prog.dataset.root);
    match (builtin, info) {
        (Some(d), _) => {
            let h = d.header();
            Ok(DatasetLayout {
                schema: h.schema,
                rows: h.rows,
                row_bytes: h.row_bytes,
                chunk_rows: h.chunk_rows,
            })
        }
        (None, Some(i)) => DatasetLayout::from_proto(i),
        (None, None) => Err(TasksError::InvalidProgram(format!(
            "dataset {:?} is not a builtin with root {}: state its layout (schema, rows, row_bytes, chunk_rows)",
            prog.dataset.name,
            hex::encode(prog.dataset.root)
        ))),
    }
}
