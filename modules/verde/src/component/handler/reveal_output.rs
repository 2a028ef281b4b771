//! `MsgRevealOutput`: the output descent inside node `j`. Both reveal the children
//! of the current BLAKE3 subtree of their output (checked against their chaining
//! value of it) and the game follows the leftmost that differs; at a leaf (one
//! 1 KiB chunk) both prove the elements it holds against their output hash, and the
//! first element whose bits differ is the one disputed.
use framework::{BlockCtx, StateWrite};
use repops::slice;

use crate::component::inner;
use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::{bits_from_le, Phase, Turn};
use crate::error::{h32, Result, VerdeError};
use crate::msg::MsgRevealOutput;
use crate::proof::disputed_node;

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgRevealOutput,
) -> Result<()> {
    let id = m.dispute_id;
    let mut d = s.dispute(id)?;
    s.check_phase(ctx, &d, Phase::OutputDescent)?;
    let who = d.party(&m.sender).ok_or_else(|| {
        VerdeError::NotYourMove(format!("{} is not a party of dispute {id}", m.sender))
    })?;
    let is_solver = who == Turn::Solver;
    let (cv, output, slot) = if is_solver {
        (
            d.solver_node,
            d.solver_output.clone(),
            &mut d.solver_children,
        )
    } else {
        (
            d.challenger_node,
            d.challenger_output.clone(),
            &mut d.challenger_children,
        )
    };
    if !slot.is_empty() {
        return Err(VerdeError::NotYourMove(format!(
            "{} already revealed at this level",
            m.sender
        )));
    }
    let cv = cv.ok_or(VerdeError::WrongPhase {
        id,
        phase: "output-descent",
    })?;
    let (off, len) = (d.inner.out_offset, d.inner.out_len);
    let (_, _, node) = disputed_node(s, d.task_id, d.node)?;
    let total = slice::message_len(&node.shape).map_err(|e| VerdeError::Referee(e.to_string()))?;
    let leaf = match (slice::children(off, len), &m.children, &m.slice) {
        (Some(_), Some((l, r)), None) => {
            if slice::parent_cv(l, r, off == 0 && len == total) != cv {
                return Err(VerdeError::BadProof(
                    "the children do not hash to your subtree".into(),
                ));
            }
            *slot = [*l, *r].concat();
            false
        }
        (None, None, Some(p)) => {
            let elems = slice::chunk_elements(&node.shape, off, len)
                .map_err(|e| VerdeError::Referee(e.to_string()))?;
            let root = h32(&output, "output")?;
            let vals = slice::verify(&root, &node.shape, elems, p)
                .map_err(|e| VerdeError::BadProof(format!("the chunk's elements: {e}")))?;
            *slot = vals
                .iter()
                .flat_map(|v| v.to_bits().to_le_bytes())
                .collect();
            true
        }
        (Some(_), _, _) => {
            return Err(VerdeError::BadProof(format!(
                "the subtree at {off} ({len} bytes) has children: reveal them"
            )))
        }
        (None, _, _) => {
            return Err(VerdeError::BadProof(format!(
                "the subtree at {off} ({len} bytes) is one chunk: prove its elements"
            )))
        }
    };
    let actor = if is_solver { "solver" } else { "challenger" };
    d.record(
        ctx.height,
        actor,
        format!("reveal output bytes {off}..{}", off + len),
    );
    if d.solver_children.is_empty() || d.challenger_children.is_empty() {
        let pending = d.solver_children.is_empty();
        s.await_other(&mut d, pending);
        return Ok(());
    }
    d.rounds += 1;
    if leaf {
        let (sv, cv) = (
            bits_from_le(&d.solver_children).unwrap_or_default(),
            bits_from_le(&d.challenger_children).unwrap_or_default(),
        );
        let first = slice::chunk_elements(&node.shape, off, len)
            .map_err(|e| VerdeError::Referee(e.to_string()))?
            .start as u64;
        return match sv.iter().zip(&cv).position(|(a, b)| a != b) {
            Some(i) => {
                let value = sv[i];
                inner::element_found(s, ctx, &mut d, first + i as u64, value)
            }
            // Both chaining values differ but both prove the same elements: only a
            // BLAKE3 collision does that. The challenger's claim is not shown.
            None => s.resolve(
                ctx,
                &mut d,
                true,
                "both parties prove the same elements where their outputs differ",
            ),
        };
    }
    let (sl, sr) = d.solver_children.split_at(32);
    let (cl, cr) = d.challenger_children.split_at(32);
    let ((lo, ll), (ro, rl)) = slice::children(off, len).unwrap_or_default();
    let (sn, cn, o, l) = if sl != cl {
        (h32(sl, "left")?, h32(cl, "left")?, lo, ll)
    } else {
        (h32(sr, "right")?, h32(cr, "right")?, ro, rl)
    };
    d.solver_node = Some(sn);
    d.challenger_node = Some(cn);
    d.inner.out_offset = o;
    d.inner.out_len = l;
    d.solver_children.clear();
    d.challenger_children.clear();
    s.next_move(ctx, &mut d, Phase::OutputDescent, Turn::Both)
}
