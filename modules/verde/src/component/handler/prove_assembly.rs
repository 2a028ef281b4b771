//! `MsgProveAssembly`: both op roots agree, so the solver must prove that
//! `h_hi` assembles from the state-update outputs under its op root.
use framework::{BlockCtx, StateWrite};
use tasks::TasksRead;
use train::merkle;

use crate::component::state::VerdeWrite;
use crate::dispute::Phase;
use crate::error::{Result, VerdeError};
use crate::msg::MsgProveAssembly;
use crate::proof::{check_proof, program_of};

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgProveAssembly,
) -> Result<()> {
    let mut d = s.active(ctx, m.dispute_id, Phase::Assembly, &m.solver)?;
    let t = s.task(d.task_id)?;
    let prog = program_of(&t)?;
    let graph = prog
        .graph()
        .map_err(|e| VerdeError::Referee(e.to_string()))?;
    if m.entries.len() != graph.updates.len() {
        return Err(VerdeError::BadProof(format!(
            "{} entries, the state has {} tensors",
            m.entries.len(),
            graph.updates.len()
        )));
    }
    let root = d.solver_op_root.ok_or(VerdeError::WrongPhase {
        id: d.id,
        phase: "op-roots",
    })?;
    let mut leaves = Vec::with_capacity(m.entries.len());
    for (e, (name, &node)) in m.entries.iter().zip(&graph.updates) {
        if &e.name != name {
            return Err(VerdeError::BadProof(format!(
                "entry {:?} out of order, expected {name:?}",
                e.name
            )));
        }
        check_proof(
            &root,
            &e.tensor_hash,
            &e.proof,
            node as u64,
            t.node_count,
            name,
        )?;
        leaves.push(train::exec::state_leaf(name, &e.tensor_hash));
    }
    let assembled = merkle::root(&leaves);
    d.op_kind = "assembly".into();
    d.referee_output = hex::encode(assembled);
    d.record(
        ctx.height,
        "solver",
        "prove the state assembles from the agreed op root".into(),
    );
    let ok = assembled == d.h_hi;
    s.resolve(
        ctx,
        &mut d,
        ok,
        if ok {
            "both op roots agree and h_hi assembles from them"
        } else {
            "h_hi does not assemble from the solver's own op root"
        },
    )
}
