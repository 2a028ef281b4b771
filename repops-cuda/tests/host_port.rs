//! The device math library (`kernels/repops.cuh`) compiled for the host CPU with a C++
//! compiler and checked against `repops::math`, bit for bit. This tests the line-by-line
//! port of the R4 functions without a GPU: the CUDA intrinsics are mapped to their IEEE
//! host equivalents (`emu/host.h`: `__fadd_rn(a, b)` -> `a + b` with contraction off,
//! `__fmaf_rn` -> `fmaf`, ...), which is what they are. Skips (with a message) without `c++`.

use repops::math::Func;
use std::io::Read;
use std::process::{Command, Stdio};

/// The host intrinsics, plus inert warp shuffles (the functions under test use none).
const SHIM: &str = concat!(
    include_str!("../emu/host.h"),
    r#"
#include <cstdio>
static inline float __shfl_down_sync(unsigned, float v, int) { return v; }
static inline float __shfl_sync(unsigned, float v, int) { return v; }
"#
);

// port STRIDE: the six functions and sin_cos of every STRIDE-th bit pattern 0, STRIDE, ...
const MAIN: &str = r#"
#include <cstdlib>
int main(int argc, char** argv) {
  unsigned long long stride = argc > 1 ? std::strtoull(argv[1], 0, 10) : 1;
  static float buf[8 * 4096];
  int k = 0;
  for (unsigned long long x = 0; x <= 0xffffffffull; x += stride) {
    float v = __uint_as_float((unsigned int)x);
    float* r = buf + 8 * k;
    r[0] = rp_exp(v); r[1] = rp_log(v); r[2] = rp_tanh(v);
    r[3] = rp_sigmoid(v); r[4] = rp_gelu(v); r[5] = rp_rsqrt(v);
    rp_sin_cos(v, &r[6], &r[7]);
    if (++k == 4096) { std::fwrite(buf, 4, 8 * 4096, stdout); k = 0; }
  }
  std::fwrite(buf, 4, 8 * k, stdout);
  return 0;
}
"#;

fn canonical(v: f32) -> u32 {
    if v.is_nan() {
        0x7fc0_0000
    } else {
        v.to_bits()
    }
}

#[test]
fn the_cuda_math_port_has_the_cpu_bits_when_compiled_for_the_host() {
    let dir = std::env::temp_dir().join(format!("repops-cuda-host-port-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("port.cpp");
    let exe = dir.join("port");
    std::fs::write(
        &src,
        format!("{SHIM}\n{}\n{MAIN}", repops_cuda::kernels::HEADER),
    )
    .unwrap();
    let cc = Command::new("c++")
        .args([
            "-O2",
            "-std=c++17",
            "-ffp-contract=off",
            "-fno-fast-math",
            "-o",
        ])
        .arg(&exe)
        .arg(&src)
        .output();
    let cc = match cc {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: no C++ compiler (c++): {e}");
            return;
        }
    };
    assert!(
        cc.status.success(),
        "host compile of repops.cuh failed:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    // Every 997th bit pattern (4.3 million inputs, every exponent) by default;
    // REPOPS_HOST_PORT_STRIDE=1 checks all 2^32 (minutes).
    let stride: u64 = std::env::var("REPOPS_HOST_PORT_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(997)
        .max(1);
    let mut child = Command::new(&exe)
        .arg(stride.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::with_capacity(1 << 20, child.stdout.take().unwrap());
    let mut bad = Vec::new();
    let (mut x, mut checked, mut nbad) = (0u64, 0u64, 0u64);
    let mut rec = [0u8; 32];
    while x <= u32::MAX as u64 {
        out.read_exact(&mut rec).unwrap();
        let v = f32::from_bits(x as u32);
        for (j, f) in Func::ALL.iter().enumerate() {
            let got = f32::from_le_bytes(rec[4 * j..4 * j + 4].try_into().unwrap());
            if canonical(got) != canonical(f.eval(v)) {
                nbad += 1;
                if bad.len() < 20 {
                    bad.push(format!(
                        "{}({x:08x}) = {:08x}, cpu {:08x}",
                        f.name(),
                        got.to_bits(),
                        f.eval(v).to_bits()
                    ));
                }
            }
        }
        let (s, c) = repops::math::sin_cos(v);
        for (j, (name, want)) in [(6, ("sin", s)), (7, ("cos", c))] {
            let got = f32::from_le_bytes(rec[4 * j..4 * j + 4].try_into().unwrap());
            if canonical(got) != canonical(want) {
                nbad += 1;
                if bad.len() < 20 {
                    bad.push(format!(
                        "{name}({x:08x}) = {:08x}, cpu {:08x}",
                        got.to_bits(),
                        want.to_bits()
                    ));
                }
            }
        }
        checked += 1;
        x += stride;
    }
    assert!(child.wait().unwrap().success());
    eprintln!("host port: {checked} inputs x 8 functions, {nbad} differences");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
