// R6 tensor hashes on the device, so that a step's new state (and, in a dispute, its op
// trace) need not be downloaded to be hashed:
//   BLAKE3("repops/tensor/v1" || dtype:u8 = 0 || rank:u8 || dims:u64 LE... || data LE),
// NaNs hashed as 0x7fc00000. Integer arithmetic only (no float instruction at all).
//
// BLAKE3 splits its input into 1 KiB chunks; chunk i is compressed with counter i, the
// chaining values (CVs) are then merged pairwise, level by level, an odd last CV being
// carried up unchanged: exactly the tree BLAKE3 defines (the left subtree of every parent
// holds the largest power of two of chunks), with ROOT on the last compression.
// A whole batch of tensors (a step's new state) is hashed by two launches:
//   rp_blake3_chunks: one thread per chunk of any tensor -> CV (the root hash itself if
//                     the tensor has one chunk), and the tensor's "not finite" flag;
//   rp_blake3_tree:   one block per tensor merging its CVs level by level -> its hash.
// out[9 t .. 9 t + 8] receives tensor t's hash (little-endian words), out[9 t + 8] is 1
// when any of its elements is a NaN or an infinity (the caller zeroes `out`).

#define B3_CHUNK_START 1u
#define B3_CHUNK_END 2u
#define B3_PARENT 4u
#define B3_ROOT 8u

RP_D u32 b3_iv(int i) {
  const u32 IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                     0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};
  return IV[i];
}

RP_D u32 b3_rotr(u32 x, int n) { return (x >> n) | (x << (32 - n)); }

RP_D void b3_g(u32* v, int a, int b, int c, int d, u32 mx, u32 my) {
  v[a] = v[a] + v[b] + mx;
  v[d] = b3_rotr(v[d] ^ v[a], 16);
  v[c] = v[c] + v[d];
  v[b] = b3_rotr(v[b] ^ v[c], 12);
  v[a] = v[a] + v[b] + my;
  v[d] = b3_rotr(v[d] ^ v[a], 8);
  v[c] = v[c] + v[d];
  v[b] = b3_rotr(v[b] ^ v[c], 7);
}

// The compression function; cv[0..8] becomes the first 8 output words.
RP_D void b3_compress(u32* cv, const u32* block, u64 counter, u32 block_len, u32 flags) {
  const int PERM[16] = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};
  u32 v[16], m[16], t[16];
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = cv[i];
#pragma unroll
  for (int i = 0; i < 4; ++i) v[8 + i] = b3_iv(i);
  v[12] = (u32)counter;
  v[13] = (u32)(counter >> 32);
  v[14] = block_len;
  v[15] = flags;
#pragma unroll
  for (int i = 0; i < 16; ++i) m[i] = block[i];
#pragma unroll
  for (int r = 0; r < 7; ++r) {
    b3_g(v, 0, 4, 8, 12, m[0], m[1]);
    b3_g(v, 1, 5, 9, 13, m[2], m[3]);
    b3_g(v, 2, 6, 10, 14, m[4], m[5]);
    b3_g(v, 3, 7, 11, 15, m[6], m[7]);
    b3_g(v, 0, 5, 10, 15, m[8], m[9]);
    b3_g(v, 1, 6, 11, 12, m[10], m[11]);
    b3_g(v, 2, 7, 8, 13, m[12], m[13]);
    b3_g(v, 3, 4, 9, 14, m[14], m[15]);
#pragma unroll
    for (int i = 0; i < 16; ++i) t[i] = m[PERM[i]];
#pragma unroll
    for (int i = 0; i < 16; ++i) m[i] = t[i];
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) cv[i] = v[i] ^ v[i + 8];
}

// Element i's hashed bits: NaNs canonical.
RP_D u32 b3_elem(const u32* __restrict__ data, u64 i) {
  u32 b = data[i];
  return (b & 0x7fffffffu) > 0x7f800000u ? 0x7fc00000u : b;
}

// Byte q of the header "repops/tensor/v1" || 0 || rank || dims (u64 LE).
RP_D u32 b3_header_byte(u64 q, u32 rank, const u64* dims) {
  const char DOMAIN[16] = {'r', 'e', 'p', 'o', 'p', 's', '/', 't',
                           'e', 'n', 's', 'o', 'r', '/', 'v', '1'};
  if (q < 16) return (u32)(unsigned char)DOMAIN[q];
  if (q == 16) return 0u;
  if (q == 17) return rank;
  u64 e = q - 18;
  return (u32)((dims[e / 8] >> (8 * (e % 8))) & 0xffu);
}

// Byte q of the hashed stream (header, then the elements' canonical bits).
RP_D u32 b3_stream_byte(u64 q, u64 hl, u64 len, const u32* __restrict__ data, u32 rank,
                        const u64* dims) {
  if (q >= len) return 0u;
  if (q < hl) return b3_header_byte(q, rank, dims);
  u64 x = q - hl;
  return (b3_elem(data, x / 4) >> (8 * (x % 4))) & 0xffu;
}

// A batch of tensors, copied one after another into `data` (each at a word offset).
// desc[10 t .. 10 t + 10] = {word offset, elements, rank, dims[6], first chunk}; tensor
// t's chunks are first[t] .. first[t+1] (desc[10 tensors + 9] = total chunks, a sentinel
// record). Level-0 CVs go to cvs[8 c] for global chunk c; the tree kernel uses the
// second half, cvs[8 (total + c)], for the next levels.
RP_D u64 b3_tensor_of(const u64* __restrict__ desc, u64 tensors, u64 c) {
  u64 lo = 0, hi = tensors;  // desc first[lo] <= c < first[hi]
  while (hi - lo > 1) {
    const u64 mid = (lo + hi) / 2;
    if (desc[10 * mid + 9] <= c) lo = mid;
    else hi = mid;
  }
  return lo;
}

// Global chunk gc: its CV into cvs[8 gc ..], its elements' finiteness into out.
RP_D void b3_chunk(const u32* __restrict__ data, const u64* __restrict__ desc, u64 tensors,
                   u32* __restrict__ cvs, u32* __restrict__ out, u64 gc) {
  const u64 t = b3_tensor_of(desc, tensors, gc);
  const u64* d = desc + 10 * t;
  const u32* x = data + d[0];
  const u64 n = d[1];
  const u32 rank = (u32)d[2];
  const u64* dims = d + 3;
  const u64 c = gc - d[9];
  const u64 hl = 18 + 8 * (u64)rank;  // 2 mod 4: an element's bytes straddle two words
  const u64 len = hl + 4 * n;
  const u64 chunks = (len + 1023) / 1024;
  // The elements whose first byte is in this chunk: finite?
  const u64 lo = c * 1024 > hl ? (c * 1024 - hl + 3) / 4 : 0;
  u64 hi = (c * 1024 + 1024 - hl + 3) / 4;
  if (hi > n) hi = n;
  u32 bad = 0;
  for (u64 i = lo; i < hi; ++i) bad |= (x[i] & 0x7f800000u) == 0x7f800000u;
  if (bad) atomicOr(&out[9 * t + 8], 1u);

  const u64 start = c * 1024;
  const u64 bytes = len - start < 1024 ? len - start : 1024;
  const u32 blocks = (u32)((bytes + 63) / 64);
  u32 cv[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) cv[i] = b3_iv(i);
  for (u32 b = 0; b < blocks; ++b) {
    const u64 p0 = start + 64 * (u64)b;
    u32 m[16];
#pragma unroll
    for (int w = 0; w < 16; ++w) {
      const u64 p = p0 + 4 * w;
      if (p >= hl && p + 4 <= len) {
        // p - hl = 4 i + 2: the upper half of element i, the lower half of element i+1.
        const u64 i = (p - hl - 2) / 4;
        m[w] = (b3_elem(x, i) >> 16) | (b3_elem(x, i + 1) << 16);
      } else {
        u32 word = 0;
        for (int k = 0; k < 4; ++k)
          word |= b3_stream_byte(p + k, hl, len, x, rank, dims) << (8 * k);
        m[w] = word;
      }
    }
    const u32 block_len = (u32)(bytes - 64 * (u64)b < 64 ? bytes - 64 * (u64)b : 64);
    u32 flags = (b == 0 ? B3_CHUNK_START : 0u) | (b + 1 == blocks ? B3_CHUNK_END : 0u);
    if (b + 1 == blocks && chunks == 1) flags |= B3_ROOT;
    b3_compress(cv, m, c, block_len, flags);
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) cvs[8 * gc + i] = cv[i];
}

extern "C" __global__ void rp_blake3_chunks(const u32* __restrict__ data,
                                            const u64* __restrict__ desc, u64 tensors,
                                            u32* __restrict__ cvs, u32* __restrict__ out) {
  const u64 total = desc[10 * tensors + 9];
  // Grid-stride: the grid is capped, a batch's chunks are not.
  for (u64 gc = (u64)blockIdx.x * blockDim.x + threadIdx.x; gc < total;
       gc += (u64)gridDim.x * blockDim.x)
    b3_chunk(data, desc, tensors, cvs, out, gc);
}

// One block per tensor: its CVs merged level by level, ping-ponging between its range of
// the two halves of `cvs`.
extern "C" __global__ void rp_blake3_tree(const u64* __restrict__ desc, u64 tensors,
                                          u32* __restrict__ cvs, u32* __restrict__ out) {
  const u64 t = blockIdx.x;
  if (t >= tensors) return;
  const u64 total = desc[10 * tensors + 9];
  const u64 first = desc[10 * t + 9];
  u32* src = cvs + 8 * first;
  u32* dst = cvs + 8 * (total + first);
  u64 count = desc[10 * (t + 1) + 9] - first;
  while (count > 1) {
    const u64 pairs = count / 2;
    for (u64 p = threadIdx.x; p < pairs; p += blockDim.x) {
      u32 block[16], cv[8];
#pragma unroll
      for (int i = 0; i < 16; ++i) block[i] = src[16 * p + i];
#pragma unroll
      for (int i = 0; i < 8; ++i) cv[i] = b3_iv(i);
      b3_compress(cv, block, 0, 64, B3_PARENT | (count == 2 ? B3_ROOT : 0u));
#pragma unroll
      for (int i = 0; i < 8; ++i) dst[8 * p + i] = cv[i];
    }
    if ((count & 1) && threadIdx.x == 0) {
#pragma unroll
      for (int i = 0; i < 8; ++i) dst[8 * pairs + i] = src[8 * (count - 1) + i];
    }
    __syncthreads();
    count = pairs + (count & 1);
    u32* tmp = src;
    src = dst;
    dst = tmp;
  }
  if (threadIdx.x < 8) out[9 * t + threadIdx.x] = src[threadIdx.x];
}
