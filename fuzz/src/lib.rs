//! Shared helpers of the fuzz targets (see `README.md`): a reader that turns
//! the fuzzer's bytes into structured values, and the seed writer every
//! target's `init` calls.
//!
//! Each target's seeds are built by the code that owns the format (signed
//! transactions by `auth::Signer`, checkpoints by `train::checkpoint::encode`,
//! ...), so they stay valid when a format changes: `run.sh seeds` rewrites
//! them by running each target with `VT_FUZZ_WRITE_SEEDS=<dir>`.

/// Reads structured values from fuzz input; past the end it yields zeros, so
/// every input is usable and short inputs mean small values.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.u16() as usize) % (hi - lo + 1)
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// An f32 that is often special: NaN (quiet and signalling, both
    /// signs), infinities, zeros, subnormals, extremes, or any bit pattern.
    pub fn f32(&mut self) -> f32 {
        const SPECIAL: [u32; 12] = [
            0x7fc0_0000, // quiet NaN
            0xffc0_0001, // negative quiet NaN with payload
            0x7f80_0001, // signalling NaN
            0x7f80_0000, // +inf
            0xff80_0000, // -inf
            0x0000_0000, // +0
            0x8000_0000, // -0
            0x0000_0001, // smallest subnormal
            0x807f_ffff, // largest negative subnormal
            0x7f7f_ffff, // f32::MAX
            0x0080_0000, // smallest normal
            0x3f80_0000, // 1.0
        ];
        let tag = self.u8();
        match tag % 4 {
            0 => f32::from_bits(SPECIAL[(tag as usize / 4) % SPECIAL.len()]),
            1 => f32::from_bits(self.u32()),
            // Small ordinary values, where most of the arithmetic is.
            _ => (self.u8() as i8) as f32 / 16.0,
        }
    }
}

/// Writes `seeds` as `<dir>/<name>` and exits, when `VT_FUZZ_WRITE_SEEDS`
/// names a directory (how `run.sh seeds` regenerates the committed corpora);
/// does nothing otherwise.
pub fn write_seeds_if_asked(seeds: impl FnOnce() -> Vec<(&'static str, Vec<u8>)>) {
    let Some(dir) = std::env::var_os("VT_FUZZ_WRITE_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for (name, bytes) in seeds() {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
    std::process::exit(0);
}
