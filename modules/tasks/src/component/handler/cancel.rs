//! `MsgCancelTask`: the submitter takes back an unclaimed task's escrow.
use framework::StateWrite;

use crate::component::state::{expect_status, expect_submitter, TasksRead, TasksWrite};
use crate::error::Result;
use crate::msg::MsgCancelTask;
use crate::task::Status;

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, m: &MsgCancelTask) -> Result<()> {
    let mut t = s.task(m.task_id)?;
    expect_submitter(&t, &m.submitter)?;
    expect_status(&t, Status::Open)?;
    let refund = t.reward.checked_add(t.verification_fee)?;
    s.pay(&mut t, &m.submitter, refund, "refund: cancelled")?;
    s.end(
        &mut t,
        Status::Cancelled,
        "cancelled by the submitter before any claim".into(),
    )
}
