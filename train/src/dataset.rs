//! Content-addressed datasets: the VTDS v1 file format and its Merkle root.
//!
//! File layout (all integers little-endian):
//! ```text
//! 0        8 bytes   magic "VTDSET01"
//! 8        u32       H = header length in bytes
//! 12       H bytes   header, UTF-8 JSON: {"name", "schema", "rows", "row_bytes",
//!                    "chunk_rows", "root" (hex), "description", "licence"}
//! 12+H     rows * row_bytes bytes of row data, row-major; nothing after it
//! ```
//! Rows are fixed-size byte records. Rows are grouped into chunks of `chunk_rows`
//! consecutive rows (the last chunk may be shorter); chunk `c`'s leaf value is
//! `BLAKE3("veritrain/dataset/chunk/v1" || chunk bytes)` and the dataset root is the
//! [`crate::merkle`] root over the chunk leaves in order. A loader recomputes the root
//! and rejects the file if it differs from the header's root or from the root the
//! program expects.
//!
//! Schemas: `digits8x8` (row = 64 pixel bytes in `0..=16`, then the label in `0..=9`),
//! `ascii` (row = `row_bytes` bytes of 7-bit text, vocabulary 128), `tokens_u16` and
//! `tokens_u32` (row = `row_bytes / 2` or `/ 4` token ids, little-endian; a program
//! trains on them only if every id is below its vocabulary).

use crate::error::{Result, TrainError};
use crate::merkle::{self, Hash, Proof};
use serde::{Deserialize, Serialize};

/// File magic.
pub const MAGIC: &[u8; 8] = b"VTDSET01";
const CHUNK_DOMAIN: &[u8] = b"veritrain/dataset/chunk/v1";

/// Row schema of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schema {
    /// 64 pixels in `0..=16` then a label in `0..=9` (65 bytes).
    Digits8x8,
    /// 7-bit ASCII text.
    Ascii,
    /// Token ids, u16 little-endian.
    TokensU16,
    /// Token ids, u32 little-endian.
    TokensU32,
}

impl Schema {
    /// Bytes per token of a token schema (`None`: not tokens).
    pub fn token_bytes(self) -> Option<usize> {
        match self {
            Schema::TokensU16 => Some(2),
            Schema::TokensU32 => Some(4),
            Schema::Digits8x8 | Schema::Ascii => None,
        }
    }

    /// Tokens per row for a language model: bytes for `ascii`, ids for token schemas.
    pub fn row_tokens(self, row_bytes: u64) -> u64 {
        match self.token_bytes() {
            Some(w) => row_bytes / w as u64,
            None => row_bytes,
        }
    }

    /// Token `i` of `row` (an ASCII byte, or a little-endian id); `None` past the end.
    pub fn token(self, row: &[u8], i: usize) -> Option<u32> {
        match self {
            Schema::TokensU16 => row
                .get(2 * i..2 * i + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32),
            Schema::TokensU32 => row
                .get(4 * i..4 * i + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Schema::Ascii | Schema::Digits8x8 => row.get(i).map(|&b| b as u32),
        }
    }

    /// The schema's name in layouts and on chain.
    pub fn name(self) -> &'static str {
        match self {
            Schema::Digits8x8 => "digits8x8",
            Schema::Ascii => "ascii",
            Schema::TokensU16 => "tokens_u16",
            Schema::TokensU32 => "tokens_u32",
        }
    }

    /// [`Schema::name`] parsed back.
    pub fn parse(s: &str) -> Option<Schema> {
        Some(match s {
            "digits8x8" => Schema::Digits8x8,
            "ascii" => Schema::Ascii,
            "tokens_u16" => Schema::TokensU16,
            "tokens_u32" => Schema::TokensU32,
            _ => return None,
        })
    }
}

/// The JSON header of a dataset file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetHeader {
    /// Short name.
    pub name: String,
    /// Row schema.
    pub schema: Schema,
    /// Number of rows.
    pub rows: u64,
    /// Bytes per row.
    pub row_bytes: u64,
    /// Rows per Merkle chunk.
    pub chunk_rows: u64,
    /// Merkle root over the chunks.
    #[serde(with = "merkle::hex32")]
    pub root: Hash,
    /// What the data is.
    pub description: String,
    /// Licence and provenance.
    pub licence: String,
}

/// A loaded, verified dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    header: DatasetHeader,
    data: Vec<u8>,
    leaves: Vec<Hash>,
}

/// Proof that one row belongs to a dataset root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowProof {
    /// Row index.
    pub row: u64,
    /// Bytes of the whole chunk holding the row (hex in JSON).
    #[serde(with = "hex_bytes")]
    pub chunk: Vec<u8>,
    /// Merkle proof of the chunk leaf.
    pub proof: Proof,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

fn bad(msg: impl Into<String>) -> TrainError {
    TrainError::Dataset(msg.into())
}

/// Leaf value of one chunk.
pub fn chunk_leaf(chunk: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(CHUNK_DOMAIN);
    h.update(chunk);
    *h.finalize().as_bytes()
}

/// Bytes of one chunk, saturating: a chunk larger than any file is the whole
/// file, which is what the exact product would give (headers are untrusted,
/// so the product may overflow).
fn chunk_bytes(row_bytes: u64, chunk_rows: u64) -> usize {
    usize::try_from(row_bytes.saturating_mul(chunk_rows)).unwrap_or(usize::MAX)
}

fn chunk_leaves(data: &[u8], row_bytes: u64, chunk_rows: u64) -> Vec<Hash> {
    let cb = chunk_bytes(row_bytes, chunk_rows);
    if cb == 0 {
        return vec![];
    }
    data.chunks(cb).map(chunk_leaf).collect()
}

fn check_schema(schema: Schema, row_bytes: u64, data: &[u8]) -> Result<()> {
    match schema {
        Schema::Digits8x8 => {
            if row_bytes != 65 {
                return Err(bad(format!(
                    "schema digits8x8 needs row_bytes 65, header says {row_bytes}"
                )));
            }
            for (r, row) in data.chunks(65).enumerate() {
                if let Some(p) = row[..64].iter().position(|&v| v > 16) {
                    return Err(bad(format!(
                        "row {r}: pixel {p} = {} is outside 0..=16",
                        row[p]
                    )));
                }
                if row[64] > 9 {
                    return Err(bad(format!("row {r}: label {} is outside 0..=9", row[64])));
                }
            }
        }
        Schema::Ascii => {
            if let Some(p) = data.iter().position(|&b| b >= 128) {
                return Err(bad(format!("byte {p} = {} is not 7-bit ASCII", data[p])));
            }
        }
        Schema::TokensU16 | Schema::TokensU32 => {
            let w = schema.token_bytes().unwrap_or(1) as u64;
            if !row_bytes.is_multiple_of(w) || row_bytes / w < 2 {
                return Err(bad(format!(
                    "schema {} needs rows of at least 2 tokens of {w} bytes, header says {row_bytes} bytes",
                    schema.name()
                )));
            }
        }
    }
    Ok(())
}

impl Dataset {
    /// Build a dataset from row data (computes the root).
    pub fn build(
        name: &str,
        schema: Schema,
        row_bytes: u64,
        chunk_rows: u64,
        data: Vec<u8>,
        description: &str,
        licence: &str,
    ) -> Result<Self> {
        if row_bytes == 0 || chunk_rows == 0 {
            return Err(bad("row_bytes and chunk_rows must be positive"));
        }
        if !(data.len() as u64).is_multiple_of(row_bytes) {
            return Err(bad(format!(
                "{} bytes of data is not a whole number of {row_bytes}-byte rows",
                data.len()
            )));
        }
        check_schema(schema, row_bytes, &data)?;
        let leaves = chunk_leaves(&data, row_bytes, chunk_rows);
        let header = DatasetHeader {
            name: name.to_string(),
            schema,
            rows: data.len() as u64 / row_bytes,
            row_bytes,
            chunk_rows,
            root: merkle::root(&leaves),
            description: description.to_string(),
            licence: licence.to_string(),
        };
        Ok(Dataset {
            header,
            data,
            leaves,
        })
    }

    /// Parse and verify a VTDS file image. If `expected_root` is given, the file's root
    /// must equal it.
    pub fn from_bytes(bytes: &[u8], expected_root: Option<&Hash>) -> Result<Self> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(bad("not a VTDS v1 file (bad magic)"));
        }
        let hl = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let body_start = 12usize
            .checked_add(hl)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad(format!("header length {hl} runs past the end of the file")))?;
        let header: DatasetHeader = serde_json::from_slice(&bytes[12..body_start])
            .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
        if header.row_bytes == 0 || header.chunk_rows == 0 {
            return Err(bad("row_bytes and chunk_rows must be positive"));
        }
        let want = header
            .rows
            .checked_mul(header.row_bytes)
            .ok_or_else(|| bad("rows * row_bytes overflows"))?;
        let got = (bytes.len() - body_start) as u64;
        if got != want {
            return Err(bad(format!(
                "header declares {} rows of {} bytes ({want} bytes) but the file holds {got} bytes of rows",
                header.rows, header.row_bytes
            )));
        }
        let data = bytes[body_start..].to_vec();
        check_schema(header.schema, header.row_bytes, &data)?;
        let leaves = chunk_leaves(&data, header.row_bytes, header.chunk_rows);
        let root = merkle::root(&leaves);
        if root != header.root {
            return Err(bad(format!(
                "content root {} does not match the header root {}",
                hex::encode(root),
                hex::encode(header.root)
            )));
        }
        if let Some(e) = expected_root {
            if &root != e {
                return Err(bad(format!(
                    "dataset root {} is not the expected root {}",
                    hex::encode(root),
                    hex::encode(e)
                )));
            }
        }
        Ok(Dataset {
            header,
            data,
            leaves,
        })
    }

    /// Read and verify a VTDS file.
    pub fn load(path: &std::path::Path, expected_root: Option<&Hash>) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, expected_root)
    }

    /// The VTDS file image.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        let mut out = Vec::with_capacity(12 + header.len() + self.data.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.data);
        out
    }

    /// One of the datasets shipped in `train/data/`: `digits` or `corpus`.
    pub fn builtin(name: &str) -> Result<Self> {
        match name {
            "digits" => Self::from_bytes(include_bytes!("../data/digits.vtds"), None),
            "corpus" => Self::from_bytes(include_bytes!("../data/corpus.vtds"), None),
            _ => Err(bad(format!("no builtin dataset named {name:?}"))),
        }
    }

    /// Header.
    pub fn header(&self) -> &DatasetHeader {
        &self.header
    }
    /// Merkle root.
    pub fn root(&self) -> Hash {
        self.header.root
    }
    /// Number of rows.
    pub fn rows(&self) -> u64 {
        self.header.rows
    }
    /// Row `i`'s bytes.
    pub fn row(&self, i: u64) -> Option<&[u8]> {
        if i >= self.header.rows {
            return None;
        }
        let rb = self.header.row_bytes as usize;
        let s = i as usize * rb;
        self.data.get(s..s + rb)
    }
    /// All row bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Proof that row `i` belongs to [`Dataset::root`].
    pub fn row_proof(&self, i: u64) -> Option<RowProof> {
        if i >= self.header.rows {
            return None;
        }
        let c = (i / self.header.chunk_rows) as usize;
        let cb = chunk_bytes(self.header.row_bytes, self.header.chunk_rows);
        let start = c.saturating_mul(cb);
        let end = start.saturating_add(cb).min(self.data.len());
        Some(RowProof {
            row: i,
            chunk: self.data[start..end].to_vec(),
            proof: merkle::proof(&self.leaves, c)?,
        })
    }
}

/// Verify a row proof against a dataset root and return the row's bytes.
pub fn verify_row(root: &Hash, row_bytes: u64, chunk_rows: u64, p: &RowProof) -> Option<Vec<u8>> {
    if row_bytes == 0 || chunk_rows == 0 || p.proof.index != p.row / chunk_rows {
        return None;
    }
    if !merkle::verify(root, &chunk_leaf(&p.chunk), &p.proof) {
        return None;
    }
    // The layout comes from the caller and the row from the prover: no
    // product or sum of them may wrap (a wrapped offset could name bytes of
    // another row).
    let off = (p.row % chunk_rows).checked_mul(row_bytes)?;
    let end = off.checked_add(row_bytes)?;
    p.chunk
        .get(usize::try_from(off).ok()?..usize::try_from(end).ok()?)
        .map(|s| s.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset::build(
            "t",
            Schema::Ascii,
            4,
            3,
            b"abcdefghijklmnopqrstuvwx".to_vec(),
            "",
            "",
        )
        .unwrap()
    }

    #[test]
    fn a_dataset_round_trips_through_its_file_format() {
        let d = tiny();
        let e = Dataset::from_bytes(&d.to_bytes(), Some(&d.root())).unwrap();
        assert_eq!(e.root(), d.root());
        assert_eq!(e.row(5), Some(&b"uvwx"[..]));
    }

    #[test]
    fn every_row_proof_verifies_and_yields_the_row() {
        let d = tiny();
        for i in 0..d.rows() {
            let p = d.row_proof(i).unwrap();
            assert_eq!(verify_row(&d.root(), 4, 3, &p).as_deref(), d.row(i));
        }
    }

    #[test]
    fn a_flipped_byte_is_reported_as_a_root_mismatch() {
        let d = tiny();
        let mut b = d.to_bytes();
        let n = b.len();
        b[n - 1] = b'y';
        let err = Dataset::from_bytes(&b, None).unwrap_err().to_string();
        assert!(err.contains("does not match the header root"), "{err}");
    }

    #[test]
    fn a_truncated_file_is_reported_with_its_sizes() {
        let d = tiny();
        let b = d.to_bytes();
        let err = Dataset::from_bytes(&b[..b.len() - 3], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds 21 bytes"), "{err}");
        let err = Dataset::from_bytes(&b[..5], None).unwrap_err().to_string();
        assert!(err.contains("bad magic"), "{err}");
    }

    #[test]
    fn the_wrong_expected_root_is_rejected() {
        let d = tiny();
        let err = Dataset::from_bytes(&d.to_bytes(), Some(&[7u8; 32]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not the expected root"), "{err}");
    }

    #[test]
    fn verify_row_with_a_row_size_near_u64_max_is_refused_not_an_overflow() {
        // Found by fuzz/proofs: `off + row_bytes` overflowed.
        let d = tiny();
        let p = d.row_proof(4).unwrap();
        assert_eq!(verify_row(&d.root(), u64::MAX - 1, 3, &p), None);
        assert_eq!(verify_row(&d.root(), u64::MAX / 2, 3, &p), None);
    }

    #[test]
    fn a_chunk_size_that_overflows_u64_is_one_chunk_not_an_overflow() {
        // Found by fuzz/dataset: `row_bytes * chunk_rows` overflowed while
        // hashing the chunks of a header's layout.
        let data = b"abcdefghijkl".to_vec();
        let d = Dataset::build("t", Schema::Ascii, 4, u64::MAX / 2, data.clone(), "", "").unwrap();
        let one = Dataset::build("t", Schema::Ascii, 4, 3, data, "", "").unwrap();
        assert_eq!(d.root(), one.root());
        let e = Dataset::from_bytes(&d.to_bytes(), Some(&d.root())).unwrap();
        for i in 0..e.rows() {
            assert_eq!(e.row_proof(i).unwrap().chunk, b"abcdefghijkl");
        }
    }

    #[test]
    fn the_shipped_datasets_verify() {
        let d = Dataset::builtin("digits").unwrap();
        assert_eq!(d.rows(), 1797);
        let c = Dataset::builtin("corpus").unwrap();
        assert!(c.rows() > 100);
    }
}
