use crate::{Event, TypedEvent};
use std::collections::BTreeMap;
use std::ops::Bound;

/// A failure of the storage underneath, or a stored value that does not decode.
/// Either one means this node cannot go on safely; the app halts the block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("storage error: {0}")]
    Storage(String),
    #[error("stored value under {key} does not decode: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Key/value pairs in ascending key order, as prefix scans return them.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Read access to key/value state. Keys are built only by each module's
/// `state_key.rs` and start with `"<module>/"`.
pub trait StateRead {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;

    /// Every `(key, value)` whose key starts with `prefix` and is `>= start`
    /// (`start` empty = from the beginning), in ascending key order, at most
    /// `limit` of them.
    fn prefix_raw(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<KvPairs, StateError>;
}

/// Write access. Writes land in an overlay; nothing reaches disk before Commit.
pub trait StateWrite: StateRead {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: Vec<u8>);
    fn emit(&mut self, event: Event);
}

/// Typed reads on top of [`StateRead`].
pub trait StateReadExt: StateRead {
    fn get_proto<M: prost::Message + Default>(&self, key: &[u8]) -> Result<Option<M>, StateError> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(b) => M::decode(b.as_slice())
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: e.to_string(),
                }),
        }
    }

    fn get_u64(&self, key: &[u8]) -> Result<Option<u64>, StateError> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(b) => <[u8; 8]>::try_from(b.as_slice())
                .map(|a| Some(u64::from_be_bytes(a)))
                .map_err(|_| StateError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: format!("{} bytes, expected 8", b.len()),
                }),
        }
    }

    fn get_amount(&self, key: &[u8]) -> Result<Option<crate::Amount>, StateError> {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(b) => {
                crate::Amount::from_be_slice(&b)
                    .map(Some)
                    .ok_or_else(|| StateError::Corrupt {
                        key: String::from_utf8_lossy(key).into_owned(),
                        reason: format!("{} bytes, expected 16", b.len()),
                    })
            }
        }
    }
}
impl<S: StateRead + ?Sized> StateReadExt for S {}

/// Typed writes on top of [`StateWrite`].
pub trait StateWriteExt: StateWrite {
    fn put_proto<M: prost::Message>(&mut self, key: Vec<u8>, m: &M) {
        self.put_raw(key, m.encode_to_vec());
    }
    fn put_u64(&mut self, key: Vec<u8>, v: u64) {
        self.put_raw(key, v.to_be_bytes().to_vec());
    }
    fn put_amount(&mut self, key: Vec<u8>, v: crate::Amount) {
        self.put_raw(key, v.to_be_bytes().to_vec());
    }
    fn emit_typed<E: TypedEvent>(&mut self, e: &E) {
        self.emit(e.to_event());
    }
}
impl<S: StateWrite + ?Sized> StateWriteExt for S {}

/// Pending writes (`None` = delete) and the events emitted with them.
#[derive(Clone, Debug, Default)]
pub struct Delta {
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub events: Vec<Event>,
}

impl Delta {
    /// Applies `other` on top of `self` (later writes win; events append).
    pub fn merge(&mut self, other: Delta) {
        self.writes.extend(other.writes);
        self.events.extend(other.events);
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.events.is_empty()
    }
}

/// `base` with `delta` on top: reads see the delta first, writes go into it.
pub struct Layered<'a, B: StateRead + ?Sized> {
    base: &'a B,
    delta: &'a mut Delta,
}

impl<'a, B: StateRead + ?Sized> Layered<'a, B> {
    pub fn new(base: &'a B, delta: &'a mut Delta) -> Self {
        Layered { base, delta }
    }
}

impl<B: StateRead + ?Sized> StateRead for Layered<'_, B> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.delta.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get_raw(key),
        }
    }

    fn prefix_raw(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<KvPairs, StateError> {
        let from = if start > prefix { start } else { prefix };
        let overlay: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = self
            .delta
            .writes
            .range::<[u8], _>((Bound::Included(from), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .collect();
        // Deleted keys can hide base entries: fetch more from the base until
        // the merged page is full or the base is exhausted.
        let mut fetch = limit.saturating_add(overlay.len()).max(1);
        loop {
            let base = self.base.prefix_raw(prefix, start, fetch)?;
            let base_complete = base.len() < fetch;
            let base_last = base.last().map(|(k, _)| k.clone());
            let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
            for (k, v) in &overlay {
                match v {
                    Some(v) => {
                        merged.insert((*k).clone(), v.clone());
                    }
                    None => {
                        merged.remove(*k);
                    }
                }
            }
            let mut out: Vec<_> = merged.into_iter().collect();
            if !base_complete {
                // Beyond the last base key read, unseen base keys may exist.
                if let Some(l) = &base_last {
                    out.retain(|(k, _)| k <= l);
                }
            }
            if base_complete || out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
            fetch = fetch.saturating_mul(2);
        }
    }
}

impl<B: StateRead + ?Sized> StateWrite for Layered<'_, B> {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.delta.writes.insert(key, Some(value));
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.delta.writes.insert(key, None);
    }
    fn emit(&mut self, event: Event) {
        self.delta.events.push(event);
    }
}

/// A plain in-memory state, for tests and tools.
#[derive(Clone, Debug, Default)]
pub struct MemState(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl StateRead for MemState {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.0.get(key).cloned())
    }
    fn prefix_raw(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<KvPairs, StateError> {
        let from = if start > prefix { start } else { prefix };
        Ok(self
            .0
            .range::<[u8], _>((Bound::Included(from), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl MemState {
    pub fn apply(&mut self, delta: Delta) {
        for (k, v) in delta.writes {
            match v {
                Some(v) => {
                    self.0.insert(k, v);
                }
                None => {
                    self.0.remove(&k);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
