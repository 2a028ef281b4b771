//! Height-ordered queues in state: keys `prefix || height u64 BE || "/" || rest`,
//! so a prefix scan yields entries in (height, rest) order. Modules use them for
//! deadlines and timed payouts, drained in their end-block hooks.
use crate::{StateError, StateWrite};

/// The key of a queue entry.
pub fn queue_key(prefix: &[u8], height: u64, rest: &[u8]) -> Vec<u8> {
    [prefix, &height.to_be_bytes(), b"/", rest].concat()
}

/// One entry taken from a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueEntry {
    pub height: u64,
    /// The key after `height` and `/`.
    pub rest: Vec<u8>,
    pub value: Vec<u8>,
}

/// Removes and returns, in key order, up to `max` entries due at or before
/// `height`. Call it until it returns nothing (handling an entry may add new
/// ones).
pub fn take_due<S: StateWrite + ?Sized>(
    s: &mut S,
    prefix: &[u8],
    height: u64,
    max: usize,
) -> Result<Vec<DueEntry>, StateError> {
    let mut out = Vec::new();
    for (k, value) in s.prefix_raw(prefix, b"", max)? {
        let tail = &k[prefix.len()..];
        let h = tail
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .filter(|_| tail.get(8) == Some(&b'/'))
            .ok_or_else(|| StateError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: "not a queue key".into(),
            })?;
        if h > height {
            break;
        }
        out.push(DueEntry {
            height: h,
            rest: tail[9..].to_vec(),
            value,
        });
        s.delete(k);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod queue_tests;
