//! Proofs that a range of a tensor's elements is part of the tensor whose R6 hash is
//! known, without the rest of the tensor: BLAKE3 is a Merkle tree over 1 KiB chunks, so
//! the chunks that hold the range and the chaining values of the subtrees beside their
//! path rebuild the root (the construction of Bao, on the unchanged R6 hash).
//!
//! A proof of `n` elements of a tensor of `N` is `4n` bytes rounded out to whole
//! chunks (at most 2 KiB more) plus 32 bytes per tree level, about `log2(4N / 1024)`:
//! one row of GPT-2's 154 MB embedding is 3 KiB of data and ~17 siblings. This is the
//! building block for disputes inside one operator (a referee that reads only the
//! slices of the inputs it recomputes).
use crate::error::{RepOpsError, Result};
use crate::tensor::{hash_header, hash_message, numel, Tensor};
use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, HasherExt, Mode};
use std::ops::Range;

const CHUNK: u64 = 1024;

/// The chunks holding a range of a tensor's elements and the chaining values of the
/// subtrees beside their path (left to right, in tree order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceProof {
    /// The message bytes of the covering chunks (the last may be short: the end of
    /// the message).
    pub chunks: Vec<u8>,
    /// The chaining values of the subtrees that hold none of those chunks.
    pub siblings: Vec<[u8; 32]>,
}

impl SliceProof {
    /// Bytes a proof occupies on the wire (chunks and siblings).
    pub fn len_bytes(&self) -> usize {
        self.chunks.len() + 32 * self.siblings.len()
    }
}

fn bad(m: impl Into<String>) -> RepOpsError {
    RepOpsError::Param {
        op: "slice_proof",
        detail: m.into(),
    }
}

/// The message length and the byte ranges of element ranges `elems`, checked: each
/// non-empty and within the tensor.
fn layout(shape: &[usize], elems: &[Range<usize>]) -> Result<(u64, Vec<Range<u64>>)> {
    let n = numel(shape).ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    if shape.len() > u8::MAX as usize {
        return Err(bad(format!("rank {} is above 255", shape.len())));
    }
    if elems.is_empty() || elems.len() > MAX_RANGES {
        return Err(bad(format!(
            "{} ranges: a proof shows 1..={MAX_RANGES}",
            elems.len()
        )));
    }
    let h = hash_header(shape).len() as u64;
    let total = h + 4 * n as u64;
    let bytes = elems
        .iter()
        .map(|e| {
            if e.start >= e.end || e.end > n {
                return Err(bad(format!(
                    "elements {e:?} are not a non-empty range of 0..{n}"
                )));
            }
            Ok(h + 4 * e.start as u64..h + 4 * e.end as u64)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((total, bytes))
}

/// Most element ranges one proof shows (a tile's rows).
pub const MAX_RANGES: usize = 1 << 16;

/// The chunk-aligned byte ranges a proof shows within a message of `total`: the first
/// chunk (so the header, hence the shape, is always bound) and the chunks covering
/// each of `bytes`, sorted and merged.
fn covering(total: u64, bytes: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut c: Vec<Range<u64>> = std::iter::once(0..CHUNK.min(total))
        .chain(
            bytes
                .iter()
                .map(|b| (b.start / CHUNK * CHUNK)..(b.end.div_ceil(CHUNK) * CHUNK).min(total)),
        )
        .collect();
    c.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(c.len());
    for r in c {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Where the shown chunks lie in the message, and where each begins in
/// `SliceProof::chunks`.
struct Shown {
    ranges: Vec<Range<u64>>,
    at: Vec<u64>,
}

impl Shown {
    fn new(ranges: Vec<Range<u64>>) -> Self {
        let mut at = Vec::with_capacity(ranges.len());
        let mut sum = 0;
        for r in &ranges {
            at.push(sum);
            sum += r.end - r.start;
        }
        Shown { ranges, at }
    }
    fn len(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }
    /// Whether subtree `[offset, offset + len)` holds none of the shown chunks.
    fn outside(&self, offset: u64, len: u64) -> bool {
        // The ranges are sorted and disjoint: only the first one ending after
        // `offset` can meet the subtree (a binary search, so a proof of many ranges
        // costs the verifier O(log) per tree node).
        let i = self.ranges.partition_point(|r| r.end <= offset);
        self.ranges.get(i).is_none_or(|r| r.start >= offset + len)
    }
    /// Where message byte `m` (inside a shown range) is in `SliceProof::chunks`.
    fn index(&self, m: u64) -> Option<usize> {
        let i = self.ranges.partition_point(|r| r.end <= m);
        let r = self.ranges.get(i)?;
        (r.start <= m).then(|| (self.at[i] + m - r.start) as usize)
    }
}

fn chunk_cv(offset: u64, bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h.update(bytes);
    h.finalize_non_root()
}

/// Proves elements `elems` of `t` against `tensor_hash(t)`.
pub fn prove(t: &Tensor, elems: Range<usize>) -> Result<SliceProof> {
    prove_ranges(t, &[elems])
}

/// Proves several element ranges of `t` at once (e.g. the rows of a tile), sharing
/// the siblings of their common paths.
pub fn prove_ranges(t: &Tensor, elems: &[Range<usize>]) -> Result<SliceProof> {
    let (total, bytes) = layout(t.shape(), elems)?;
    let msg = hash_message(t);
    let shown = Shown::new(covering(total, &bytes));
    let mut siblings = Vec::new();
    if total > CHUNK {
        collect(&msg, 0, total, &shown, &mut siblings);
    }
    let chunks = shown
        .ranges
        .iter()
        .flat_map(|r| msg[r.start as usize..r.end as usize].iter().copied())
        .collect();
    Ok(SliceProof { chunks, siblings })
}

/// The prover's walk: the chaining value of every maximal subtree with nothing shown.
fn collect(msg: &[u8], offset: u64, len: u64, shown: &Shown, out: &mut Vec<[u8; 32]>) {
    if shown.outside(offset, len) {
        out.push(chunk_cv_of_subtree(msg, offset, len));
        return;
    }
    if len <= CHUNK {
        return;
    }
    let left = blake3::hazmat::left_subtree_len(len);
    collect(msg, offset, left, shown, out);
    collect(msg, offset + left, len - left, shown, out);
}

fn chunk_cv_of_subtree(msg: &[u8], offset: u64, len: u64) -> [u8; 32] {
    chunk_cv(offset, &msg[offset as usize..(offset + len) as usize])
}

/// Checks that `proof` shows elements `elems` of a tensor of `shape` whose R6 hash is
/// `root`, and returns those elements. Any proof that does not rebuild `root` exactly
/// (a changed byte, a missing or extra sibling, the wrong length) is an error.
pub fn verify(
    root: &[u8; 32],
    shape: &[usize],
    elems: Range<usize>,
    proof: &SliceProof,
) -> Result<Vec<f32>> {
    verify_ranges(root, shape, &[elems], proof).map(|mut v| v.remove(0))
}

/// [`verify`] for several ranges ([`prove_ranges`]): their elements, range by range.
pub fn verify_ranges(
    root: &[u8; 32],
    shape: &[usize],
    elems: &[Range<usize>],
    proof: &SliceProof,
) -> Result<Vec<Vec<f32>>> {
    let (total, bytes) = layout(shape, elems)?;
    let shown = Shown::new(covering(total, &bytes));
    if proof.chunks.len() as u64 != shown.len() {
        return Err(bad(format!(
            "{} bytes of chunks, the ranges need {}",
            proof.chunks.len(),
            shown.len()
        )));
    }
    // The first chunk is always shown, and it begins with the header the shape fixes.
    let h = hash_header(shape);
    let head = h.len().min(proof.chunks.len());
    if proof.chunks[..head] != h[..head] {
        return Err(bad("the chunks do not begin with the tensor's header"));
    }
    let ok = if total <= CHUNK {
        proof.siblings.is_empty() && blake3::hash(&proof.chunks).as_bytes() == root
    } else {
        let mut sib = proof.siblings.iter();
        let left = blake3::hazmat::left_subtree_len(total);
        let l = rebuild(proof, &shown, 0, left, &mut sib)?;
        let r = rebuild(proof, &shown, left, total - left, &mut sib)?;
        sib.next().is_none() && merge_subtrees_root(&l, &r, Mode::Hash).as_bytes() == root
    };
    if !ok {
        return Err(bad("the proof does not rebuild the tensor hash"));
    }
    bytes
        .iter()
        .map(|b| {
            let from = shown
                .index(b.start)
                .ok_or_else(|| bad("a range is not shown"))?;
            let to = from + (b.end - b.start) as usize;
            Ok(proof.chunks[from..to]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        })
        .collect()
}

/// The verifier's walk: the chaining value of subtree `(offset, len)`, from a sibling
/// when nothing in it is shown, else from the shown chunks.
fn rebuild<'a>(
    proof: &SliceProof,
    shown: &Shown,
    offset: u64,
    len: u64,
    sib: &mut impl Iterator<Item = &'a [u8; 32]>,
) -> Result<[u8; 32]> {
    if shown.outside(offset, len) {
        return sib
            .next()
            .copied()
            .ok_or_else(|| bad("too few sibling chaining values"));
    }
    if len <= CHUNK {
        let from = shown
            .index(offset)
            .ok_or_else(|| bad("a chunk is partly shown"))?;
        let chunk = proof
            .chunks
            .get(from..from + len as usize)
            .ok_or_else(|| bad("a chunk is cut short"))?;
        return Ok(chunk_cv(offset, chunk));
    }
    let left = blake3::hazmat::left_subtree_len(len);
    let l = rebuild(proof, shown, offset, left, sib)?;
    let r = rebuild(proof, shown, offset + left, len - left, sib)?;
    Ok(merge_subtrees_non_root(&l, &r, Mode::Hash))
}

/// BLAKE3's chunk size: the leaves of the tree a dispute descends.
pub const CHUNK_BYTES: u64 = CHUNK;

/// Length of the message R6 hashes for a tensor of `shape` (header and data).
pub fn message_len(shape: &[usize]) -> Result<u64> {
    let n = numel(shape).ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    Ok(hash_header(shape).len() as u64 + 4 * n as u64)
}

/// The two children of the BLAKE3 subtree of `len` bytes at `offset` (its left
/// child holds the largest power of two of chunks below `len`), or `None` for one
/// chunk (a leaf).
pub fn children(offset: u64, len: u64) -> Option<((u64, u64), (u64, u64))> {
    (len > CHUNK).then(|| {
        let left = blake3::hazmat::left_subtree_len(len);
        ((offset, left), (offset + left, len - left))
    })
}

/// The chaining value of a parent from its children's (`root`: the hash of the whole
/// message).
pub fn parent_cv(l: &[u8; 32], r: &[u8; 32], root: bool) -> [u8; 32] {
    if root {
        *merge_subtrees_root(l, r, Mode::Hash).as_bytes()
    } else {
        merge_subtrees_non_root(l, r, Mode::Hash)
    }
}

/// The chaining value of the BLAKE3 subtree of `msg` at `offset`, `len` bytes
/// (`root`: the whole message, whose hash it is).
pub fn subtree_cv(msg: &[u8], offset: u64, len: u64, root: bool) -> Result<[u8; 32]> {
    let end = offset
        .checked_add(len)
        .filter(|&e| e <= msg.len() as u64 && len > 0 && offset.is_multiple_of(CHUNK))
        .ok_or_else(|| bad(format!("no subtree of {len} bytes at {offset}")))?;
    let bytes = &msg[offset as usize..end as usize];
    Ok(if root {
        *blake3::hash(bytes).as_bytes()
    } else {
        chunk_cv(offset, bytes)
    })
}

/// The elements of a tensor of `shape` whose bytes meet the chunk of `len` bytes at `offset` (header bytes excluded).
pub fn chunk_elements(shape: &[usize], offset: u64, len: u64) -> Result<Range<usize>> {
    let n = numel(shape).ok_or_else(|| bad(format!("shape {shape:?} overflows")))? as u64;
    let h = hash_header(shape).len() as u64;
    let end = offset + len;
    let first = offset.saturating_sub(h) / 4;
    let last = end.saturating_sub(h).div_ceil(4).min(n);
    if first >= last {
        return Ok(0..0);
    }
    Ok(first as usize..last as usize)
}

/// An upper bound, from the shape and ranges alone, on the bytes of a proof of
/// `elems` ([`SliceProof::len_bytes`]): the first chunk, each range's covering chunks
/// (its bytes and two partial chunks at most) and two siblings per tree level per
/// range. The chain sizes a dispute's last move with it before anything is sent.
pub fn proof_bound(shape: &[usize], elems: &[Range<usize>]) -> u64 {
    let total = message_len(shape).unwrap_or(u64::MAX);
    let depth = 64 - total.div_ceil(CHUNK).max(1).leading_zeros() as u64;
    elems.iter().fold(CHUNK, |a, r| {
        a.saturating_add(4 * r.len() as u64 + 2 * CHUNK + 64 * depth)
    })
}
