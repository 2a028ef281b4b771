//! Query views and the escrow invariant.
use bank::BankRead;
use framework::{Amount, StateError, StateRead};
use proto::verde::v1 as pb;

use crate::dispute::{Dispute, Phase};
use crate::error::{Result, VerdeError};
use crate::{module_address, state_key};

/// Every dispute, in id order, after `after`, at most `limit`.
pub fn disputes<S: StateRead + ?Sized>(s: &S, after: u64, limit: usize) -> Result<Vec<Dispute>> {
    let mut out = Vec::new();
    let mut start = state_key::dispute(after.saturating_add(1));
    loop {
        let page = s.prefix_raw(state_key::DISPUTE_PREFIX, &start, 256)?;
        for (k, v) in &page {
            let p: pb::Dispute =
                prost::Message::decode(v.as_slice()).map_err(|e| StateError::Corrupt {
                    key: String::from_utf8_lossy(k).into_owned(),
                    reason: e.to_string(),
                })?;
            out.push(Dispute::try_from(&p)?);
            if out.len() >= limit {
                return Ok(out);
            }
        }
        match page.last() {
            Some((k, _)) if page.len() == 256 => {
                start = k.clone();
                start.push(0);
            }
            _ => return Ok(out),
        }
    }
}

/// The verde escrow invariant: the module account holds the bonds of open
/// disputes.
pub fn check_escrow<S: StateRead + ?Sized>(s: &S) -> Result<Amount> {
    let mut owed = Amount::ZERO;
    for d in disputes(s, 0, usize::MAX)? {
        if d.phase != Phase::Resolved {
            owed = owed.checked_add(d.bond)?;
        }
    }
    let held = s.balance(&module_address())?;
    if held != owed {
        return Err(VerdeError::EscrowMismatch { held, owed });
    }
    Ok(owed)
}
