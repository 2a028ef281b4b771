//! Host tensors (f32, row-major) and the R6 tensor hash.

use crate::error::{RepOpsError, Result};
use std::sync::Arc;

/// Canonical quiet NaN bit pattern (R1).
pub const CANONICAL_NAN_BITS: u32 = 0x7fc0_0000;

/// Domain tag of the R6 tensor hash.
pub const TENSOR_HASH_DOMAIN: &[u8] = b"repops/tensor/v1";

/// Dtype code of f32 in the R6 hash (the only dtype RepOps v1 stores).
pub const DTYPE_F32: u8 = 0;

/// A dense row-major f32 tensor held in host memory.
///
/// Integer data (token ids, class labels, positions) is carried as exact f32 integers
/// below 2^24. Rank 0 (a scalar) has shape `[]` and one element.
///
/// Clones share the elements (copy on write: [`Tensor::data_mut`] copies them first if
/// another clone holds them), so handing a tensor to a backend, keeping it in a state
/// map and hashing it on another thread copy nothing.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Arc<Vec<f32>>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.shape)?;
        if self.data.len() <= 8 {
            write!(f, "{:?}", self.data)
        } else {
            write!(f, "[{} elements]", self.data.len())
        }
    }
}

/// Product of dims, or `None` on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

impl Tensor {
    /// Build a tensor, checking that `data.len()` equals the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let want = numel(&shape).ok_or_else(|| RepOpsError::Param {
            op: "tensor",
            detail: format!("shape {shape:?} overflows usize"),
        })?;
        if want != data.len() {
            return Err(RepOpsError::DataLength {
                shape,
                want,
                got: data.len(),
            });
        }
        if shape.len() > 255 {
            return Err(RepOpsError::Param {
                op: "tensor",
                detail: format!("rank {} exceeds 255", shape.len()),
            });
        }
        Ok(Tensor {
            shape,
            data: Arc::new(data),
        })
    }

    /// A tensor of `+0.0`.
    pub fn zeros(shape: &[usize]) -> Self {
        let n = numel(shape).unwrap_or(0);
        Tensor {
            shape: shape.to_vec(),
            data: Arc::new(vec![0.0; n]),
        }
    }

    /// A rank-0 tensor.
    pub fn scalar(v: f32) -> Self {
        Tensor {
            shape: vec![],
            data: Arc::new(vec![v]),
        }
    }

    /// Same data viewed under another shape with the same element count.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != Some(self.data.len()) {
            return Err(RepOpsError::Shape {
                op: "reshape",
                detail: format!("cannot view {:?} as {:?}", self.shape, shape),
            });
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// Dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Row-major elements.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// Mutable row-major elements (copied first if a clone shares them).
    pub fn data_mut(&mut self) -> &mut [f32] {
        Arc::make_mut(&mut self.data).as_mut_slice()
    }
    /// Consume into the element vector (copied if a clone shares it).
    pub fn into_data(self) -> Vec<f32> {
        Arc::try_unwrap(self.data).unwrap_or_else(|d| (*d).clone())
    }
    /// Rank (number of dims).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// True if the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Size of the last dim (1 for a scalar).
    pub fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Replace every NaN with the canonical quiet NaN (R1).
    pub fn canonicalize(&mut self) {
        if !self.data.iter().any(|v| v.is_nan()) {
            return;
        }
        for v in self.data_mut() {
            if v.is_nan() {
                *v = f32::from_bits(CANONICAL_NAN_BITS);
            }
        }
    }

    /// Error if any element is NaN or infinite.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        match self.data.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(pos) => Err(RepOpsError::NonFinite {
                what: what.to_string(),
                pos,
                value: self.data[pos],
            }),
        }
    }

    /// The R6 hash of this tensor.
    pub fn hash(&self) -> [u8; 32] {
        tensor_hash(self)
    }
}

/// The R6 header of a tensor of `shape`: domain, dtype, rank, dims.
pub fn hash_header(shape: &[usize]) -> Vec<u8> {
    let mut h = TENSOR_HASH_DOMAIN.to_vec();
    h.extend_from_slice(&[DTYPE_F32, shape.len() as u8]);
    for &d in shape {
        h.extend_from_slice(&(d as u64).to_le_bytes());
    }
    h
}

/// The whole message R6 hashes for `t` (the header, then the data little-endian with
/// canonical NaNs), built in memory: the definition [`tensor_hash`] computes faster.
pub fn hash_message(t: &Tensor) -> Vec<u8> {
    let mut msg = hash_header(t.shape());
    msg.reserve(4 * t.len());
    for v in t.data() {
        let bits = if v.is_nan() {
            CANONICAL_NAN_BITS
        } else {
            v.to_bits()
        };
        msg.extend_from_slice(&bits.to_le_bytes());
    }
    msg
}

/// R6: `BLAKE3("repops/tensor/v1" || dtype:u8 || rank:u8 || dims:u64 LE... || data LE)`,
/// NaNs hashed as `0x7fc00000`.
///
/// How the bytes reach BLAKE3 does not change the digest; it changes the speed a lot.
/// `blake3::Hasher` hashes whole chunks (1 KiB) in parallel SIMD lanes (16 with
/// AVX-512) only in subtrees aligned to its chunk counter. Fed the header first and then
/// the data, the data's first chunks sit at counters 1, 2–3, 4–7, … and hash 1, 2, 4
/// lanes wide (a 16 KiB tensor hashed about 4× slower than its raw bytes). So the header
/// and the first `PREFIX - header` data bytes are copied into one `PREFIX`-byte buffer
/// (16 chunks, hashed 16 lanes wide) and the rest of the data, now starting at chunk 16,
/// is hashed in place. That needs the in-memory bytes to be the hashed bytes: a
/// little-endian machine and no NaN other than the canonical one (op outputs are
/// canonicalised already); otherwise the whole canonical byte string is built and
/// hashed in one call.
pub fn tensor_hash(t: &Tensor) -> [u8; 32] {
    /// 16 chunks: the widest SIMD batch of BLAKE3 (AVX-512).
    const PREFIX: usize = 16 * 1024;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // A non-short-circuiting fold vectorises; `any` would not.
    let odd_nan = t.data.iter().fold(false, |acc, v| {
        acc | (v.is_nan() & (v.to_bits() != CANONICAL_NAN_BITS))
    });
    let in_place = cfg!(target_endian = "little") && !odd_nan;
    BUF.with(|cell| {
        // A re-entrant call (none today) would get a fresh buffer instead of a panic.
        let mut fresh = Vec::new();
        let mut guard = cell.try_borrow_mut();
        let buf: &mut Vec<u8> = match guard.as_mut() {
            Ok(b) => b,
            Err(_) => &mut fresh,
        };
        buf.clear();
        buf.extend_from_slice(TENSOR_HASH_DOMAIN);
        buf.extend_from_slice(&[DTYPE_F32, t.shape.len() as u8]);
        for &d in &t.shape {
            buf.extend_from_slice(&(d as u64).to_le_bytes());
        }
        let mut h = blake3::Hasher::new();
        if in_place {
            let bytes: &[u8] = bytemuck::cast_slice(t.data.as_slice());
            let take = PREFIX.saturating_sub(buf.len()).min(bytes.len());
            buf.extend_from_slice(&bytes[..take]);
            h.update(buf);
            h.update(&bytes[take..]);
        } else {
            buf.extend(t.data.iter().flat_map(|v| {
                let bits = if v.is_nan() {
                    CANONICAL_NAN_BITS
                } else {
                    v.to_bits()
                };
                bits.to_le_bytes()
            }));
            h.update(buf);
            if buf.capacity() > 4 * PREFIX {
                *buf = Vec::new();
            }
        }
        *h.finalize().as_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_payloads_hash_like_the_canonical_nan() {
        let a = Tensor::new(vec![2], vec![f32::from_bits(0x7fc0_0001), 1.0]).unwrap();
        let b = Tensor::new(vec![2], vec![f32::from_bits(0xffc0_0000), 1.0]).unwrap();
        assert_eq!(tensor_hash(&a), tensor_hash(&b));
    }

    /// The R6 definition, byte by byte, for comparison with the fast path.
    fn reference_hash(t: &Tensor) -> [u8; 32] {
        *blake3::hash(&hash_message(t)).as_bytes()
    }

    #[test]
    fn fast_tensor_hash_equals_the_byte_by_byte_definition() {
        let p = crate::Philox::new(7, 0);
        // Around every boundary the fast path has: chunk (256 floats), the 16-chunk
        // prefix less the header, and multiples of it.
        let mut sizes = vec![
            0usize, 1, 2, 3, 10, 64, 255, 256, 257, 640, 4090, 4096, 8192,
        ];
        for base in [4096usize, 8192, 12288, 16384, 65536] {
            for d in 0..12 {
                sizes.push(base + d - 6);
            }
        }
        sizes.push(100_003);
        for &n in &sizes {
            let data: Vec<f32> = (0..n as u64).map(|i| p.uniform_at(i) - 0.5).collect();
            let shapes: Vec<Vec<usize>> = if n == 1 {
                vec![vec![], vec![1], vec![1, 1, 1, 1]]
            } else if n % 2 == 0 && n > 0 {
                vec![vec![n], vec![2, n / 2], vec![1, 2, 1, n / 2]]
            } else {
                vec![vec![n], vec![1, n]]
            };
            for shape in shapes {
                let t = Tensor::new(shape.clone(), data.clone()).unwrap();
                assert_eq!(tensor_hash(&t), reference_hash(&t), "n={n} shape={shape:?}");
                if n > 0 {
                    // NaNs (with payloads and signs) near the start, the middle and the end.
                    let mut d = data.clone();
                    for (j, pos) in [0, n / 2, n - 1].into_iter().enumerate() {
                        d[pos] = f32::from_bits(0x7fc0_0000 | (j as u32 + 1) | ((j as u32) << 31));
                    }
                    let t = Tensor::new(shape.clone(), d).unwrap();
                    assert_eq!(
                        tensor_hash(&t),
                        reference_hash(&t),
                        "NaN n={n} shape={shape:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn shape_is_part_of_the_hash() {
        let a = Tensor::new(vec![2, 3], vec![0.0; 6]).unwrap();
        let b = Tensor::new(vec![3, 2], vec![0.0; 6]).unwrap();
        assert_ne!(tensor_hash(&a), tensor_hash(&b));
    }

    #[test]
    fn clones_share_their_elements_until_one_is_written() {
        let a = Tensor::new(vec![3], vec![1.0, 2.0, 3.0]).unwrap();
        let mut b = a.clone();
        assert!(std::ptr::eq(a.data(), b.data()));
        b.data_mut()[0] = 9.0;
        assert_eq!(a.data(), &[1.0, 2.0, 3.0]);
        assert_eq!(b.data(), &[9.0, 2.0, 3.0]);
        assert_eq!(a.clone().into_data(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn wrong_data_length_is_an_error_not_a_panic() {
        assert!(matches!(
            Tensor::new(vec![2, 2], vec![0.0; 3]),
            Err(RepOpsError::DataLength { .. })
        ));
    }
}
