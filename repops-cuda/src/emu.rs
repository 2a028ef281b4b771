//! Unit tests of the kernels and of `exec.rs` without a GPU: the same launch code runs on
//! a host emulation of the CUDA execution model (`emu/emu.cpp`: one std::thread per CUDA
//! thread, barriers for `__syncthreads` and warp shuffles, IEEE host intrinsics), against
//! the CPU reference, bit for bit. What this cannot show — that NVRTC, ptxas and the GPU
//! keep IEEE binary32 — is the PTX audit's and the GPU tests' job. Skips without `c++`.

use crate::exec::{self, Arg, Device, GemmKernel, TransferCounter, GEMM_KERNELS, R};
use cudarc::driver::LaunchConfig;
use repops::{conformance, Backend, DeviceTensor, Op, Tensor};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The emulator binary, compiled once per test process.
fn emulator() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("repops-cuda-emu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let exe = dir.join("emu");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/emu/emu.cpp");
        let out = Command::new("c++")
            .args(["-std=c++20", "-O2", "-ffp-contract=off", "-fno-fast-math"])
            // The kernels reinterpret float arrays as float4, as CUDA code does.
            .arg("-fno-strict-aliasing")
            .args(["-Wno-unknown-pragmas", "-pthread", "-o"])
            .arg(&exe)
            .arg(src)
            .output()
            .map_err(|e| format!("no C++ compiler (c++): {e}"))?;
        if !out.status.success() {
            panic!(
                "emu.cpp does not compile:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(exe)
    })
    .clone()
}

/// Host buffers; every launch is one run of the emulator.
struct Emu {
    exe: PathBuf,
    sm: u32,
    /// Every GEMM runs this kernel (else the production choice for `sm`).
    gemm: Option<GemmKernel>,
    transfers: TransferCounter,
}

impl Device for Emu {
    type Buf = Vec<u8>;

    fn label(&self) -> &str {
        "emu"
    }
    fn upload(&self, bytes: &[u8]) -> R<Vec<u8>> {
        Ok(bytes.to_vec())
    }
    fn zeros(&self, nbytes: usize) -> R<Vec<u8>> {
        Ok(vec![0; nbytes.max(1)])
    }
    fn copy_into(&self, src: &Vec<u8>, dst: &mut Vec<u8>, offset: usize, bytes: usize) -> R<()> {
        let (Some(s), Some(d)) = (src.get(..bytes), dst.get_mut(offset..offset + bytes)) else {
            return Err(self.err("copy_into out of bounds"));
        };
        d.copy_from_slice(s);
        Ok(())
    }
    fn download(&self, b: &Vec<u8>) -> R<Vec<u8>> {
        Ok(b.clone())
    }
    fn sm_count(&self) -> u32 {
        self.sm
    }
    fn forced_gemm(&self) -> Option<GemmKernel> {
        self.gemm
    }
    fn transfers(&self) -> &TransferCounter {
        &self.transfers
    }
    fn launch(&self, kernel: &str, cfg: LaunchConfig, args: &mut [Arg<'_, Vec<u8>>]) -> R<()> {
        let mut job: Vec<u8> = Vec::new();
        job.extend((kernel.len() as u32).to_le_bytes());
        job.extend(kernel.as_bytes());
        let (g, b) = (cfg.grid_dim, cfg.block_dim);
        for v in [g.0, g.1, g.2, b.0, b.1, b.2, args.len() as u32] {
            job.extend(v.to_le_bytes());
        }
        let mut lens = Vec::new();
        let mut push_buf = |job: &mut Vec<u8>, buf: &[u8]| {
            job.push(b'B');
            job.extend((buf.len() as u64).to_le_bytes());
            job.extend(buf);
            lens.push(buf.len());
        };
        let push_scalar = |job: &mut Vec<u8>, tag: u8, bytes: &[u8]| {
            job.push(tag);
            job.extend(bytes);
        };
        for a in args.iter() {
            match a {
                Arg::In(buf) => push_buf(&mut job, buf),
                Arg::Out(buf) => push_buf(&mut job, buf),
                Arg::U64(v) => push_scalar(&mut job, b'Q', &v.to_le_bytes()),
                Arg::I32(v) => push_scalar(&mut job, b'I', &v.to_le_bytes()),
                Arg::U32(v) => push_scalar(&mut job, b'U', &v.to_le_bytes()),
                Arg::F32(v) => push_scalar(&mut job, b'F', &v.to_le_bytes()),
            }
        }
        let mut child = Command::new(&self.exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.err(e))?;
        let mut stdin = child.stdin.take().ok_or_else(|| self.err("no stdin"))?;
        let writer = std::thread::spawn(move || stdin.write_all(&job));
        let mut out = Vec::new();
        child
            .stdout
            .take()
            .ok_or_else(|| self.err("no stdout"))?
            .read_to_end(&mut out)
            .map_err(|e| self.err(e))?;
        let status = child.wait_with_output().map_err(|e| self.err(e))?;
        let _ = writer.join();
        if !status.status.success() {
            return Err(self.err(format!(
                "{kernel}: {}",
                String::from_utf8_lossy(&status.stderr)
            )));
        }
        let mut off = 0;
        let mut k = 0;
        for a in args.iter_mut() {
            let is_buf = matches!(a, Arg::In(_) | Arg::Out(_));
            if is_buf {
                let n = lens[k];
                if let Arg::Out(buf) = a {
                    buf.copy_from_slice(&out[off..off + n]);
                }
                off += n;
                k += 1;
            }
        }
        Ok(())
    }
}

struct EmuBackend(Emu);

impl Backend for EmuBackend {
    fn name(&self) -> &str {
        "emu"
    }
    fn upload(&self, t: &Tensor) -> repops::Result<DeviceTensor> {
        exec::upload(&self.0, t)
    }
    fn execute(&self, op: &Op, inputs: &[&DeviceTensor]) -> repops::Result<DeviceTensor> {
        exec::execute(&self.0, op, inputs)
    }
    fn download(&self, t: &DeviceTensor) -> repops::Result<Tensor> {
        exec::download(&self.0, t)
    }
    fn digests_on_device(&self) -> bool {
        true
    }
    fn digests(&self, ts: &[&DeviceTensor]) -> repops::Result<Vec<repops::Digest>> {
        exec::digests(&self.0, ts)
    }
}

fn backend(sm: u32) -> Option<EmuBackend> {
    backend_with(sm, None)
}

fn backend_with(sm: u32, gemm: Option<GemmKernel>) -> Option<EmuBackend> {
    match emulator() {
        Ok(exe) => Some(EmuBackend(Emu {
            exe,
            sm,
            gemm,
            transfers: TransferCounter::default(),
        })),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

fn report(bad: &[conformance::Mismatch]) -> String {
    bad.iter()
        .map(|m| format!("{}: {}", m.what, m.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_golden_vector_passes_on_the_emulated_device_with_every_gemm_kernel() {
    // The production choice with sm = 1 (the biggest tile) and sm = u32::MAX (the
    // smallest), then every kernel of gemm.cu forced on every product.
    let forced = GEMM_KERNELS.iter().map(|k| (1, Some(*k)));
    for (sm, gemm) in [(1, None), (u32::MAX, None)].into_iter().chain(forced) {
        let Some(b) = backend_with(sm, gemm) else {
            return;
        };
        let (n, bad) = conformance::golden(&b).unwrap();
        assert!(n >= 58);
        assert!(bad.is_empty(), "sm {sm}, {gemm:?}:\n{}", report(&bad));
    }
}

#[test]
fn the_production_gemm_choice_is_table_driven() {
    let sm = 132;
    let name = |shape| exec::gemm_choice(shape, sm).name;
    assert_eq!(name((1, 2048, 2048)), GEMM_KERNELS[0].name);
    assert_eq!(name((1, 1024, 1024)), GEMM_KERNELS[1].name);
    assert_eq!(
        name((1, 64, 64)),
        GEMM_KERNELS[exec::GEMM_PRODUCTION - 1].name
    );
    assert_eq!(name((300, 64, 64)), GEMM_KERNELS[0].name);
    assert_eq!(name((60, 128, 128)), GEMM_KERNELS[1].name);
    assert_eq!(name((50, 128, 128)), GEMM_KERNELS[2].name);
    for k in GEMM_KERNELS {
        assert_eq!(GemmKernel::by_name(k.name), Some(k));
        assert!(crate::kernels::MODULES
            .iter()
            .any(|m| m.entries.contains(&k.name)));
    }
}

/// A value of a GEMM test input: mostly small integers and halves (exact products), with
/// ±0 and, when `tiny` (two cases in three), values whose products underflow, so that
/// accumulators become -0 (an fma over a padded 0 would turn that into +0) and chains
/// round.
fn gemm_value(state: &mut u64, tiny: bool) -> f32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let r = (*state >> 33) as u32;
    match r % 16 {
        0 => -0.0,
        1 => 0.0,
        2 if tiny => -1e-30,
        3 if tiny => 1e-30,
        4 => f32::from_bits(0x3f80_0000 | (r >> 9 & 0x7f_ffff)) - 1.5,
        _ => ((r >> 8) % 9) as f32 * 0.5 - 2.0,
    }
}

fn gemm_case(
    seed: u64,
    (g, m, n, k): (usize, usize, usize, usize),
    (ta, tb): (bool, bool),
) -> (Op, Vec<Tensor>) {
    let mut st = seed;
    let tiny = !seed.is_multiple_of(3);
    let mut t = |shape: Vec<usize>| {
        let len = shape.iter().product();
        let d = (0..len).map(|_| gemm_value(&mut st, tiny)).collect();
        Tensor::new(shape, d).unwrap()
    };
    let a = if ta { vec![k, m] } else { vec![m, k] };
    let b = if tb { vec![n, k] } else { vec![k, n] };
    if g == 0 {
        (Op::MatMul { ta, tb }, vec![t(a), t(b)])
    } else {
        let (a, b) = ([vec![g], a].concat(), [vec![g], b].concat());
        (Op::BatchedMatMul { ta, tb }, vec![t(a), t(b)])
    }
}

#[test]
fn every_gemm_kernel_gives_the_cpu_bits_on_awkward_shapes() {
    // (batches or 0 for mat_mul, M, N, K): K = 1, K below and above every BK, M and N
    // not multiples of any tile, odd sizes (scalar loads and stores) and multiples of 4
    // (float4 loads and stores), batches whose offsets are or are not multiples of 4.
    let shapes: &[(usize, usize, usize, usize)] = &[
        (0, 1, 1, 1),
        (0, 7, 5, 1),
        (0, 33, 17, 3),
        (0, 64, 64, 16),
        (0, 130, 68, 20),
        (0, 129, 131, 37),
        (0, 8, 200, 8),
        (0, 200, 12, 44),
        (3, 5, 9, 7),
        (2, 12, 16, 24),
        (2, 65, 36, 17),
        (4, 20, 20, 4),
    ];
    let mut failures = Vec::new();
    for kernel in GEMM_KERNELS {
        let Some(b) = backend_with(1, Some(kernel)) else {
            return;
        };
        for (si, &dims) in shapes.iter().enumerate() {
            for tr in 0..4 {
                let trans = (tr & 1 == 1, tr & 2 == 2);
                let seed = (si * 4 + tr) as u64 + 1;
                let (op, ins) = gemm_case(seed, dims, trans);
                let refs: Vec<&Tensor> = ins.iter().collect();
                let want = repops::CpuBackend.execute_host(&op, &refs).unwrap();
                let got = b.execute_host(&op, &refs).unwrap();
                let same = want.shape() == got.shape()
                    && want
                        .data()
                        .iter()
                        .zip(got.data())
                        .all(|(w, g)| w.to_bits() == g.to_bits());
                if !same {
                    failures.push(format!("{}: {dims:?} {trans:?} seed {seed}", kernel.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn random_shapes_give_the_cpu_bits_on_the_emulated_device() {
    let Some(b) = backend(4) else { return };
    let bad = conformance::fuzz(&b, conformance::FUZZ_KINDS, 7);
    assert!(bad.is_empty(), "{}", report(&bad));
}

#[test]
fn the_exhaustive_check_kernel_evaluates_every_function() {
    let Some(b) = backend(4) else { return };
    let mut out = exec::zeros_f32(&b.0, 4096).unwrap();
    for (fi, f) in repops::math::Func::ALL.iter().enumerate() {
        let start = 0xbf80_0000u32 - 2048;
        exec::eval_bits(&b.0, fi as i32, start, 4096, &mut out).unwrap();
        let got = exec::down_f32(&b.0, &out, 4096).unwrap();
        for (i, g) in got.iter().enumerate() {
            let x = f32::from_bits(start + i as u32);
            assert_eq!(g.to_bits(), f.eval(x).to_bits(), "{}({x})", f.name());
        }
    }
}

#[test]
fn op_outputs_are_stored_canonical_every_nan_and_nothing_else() {
    // The host's arithmetic (like the GPU's, whose NaN is 0x7fffffff) does not give
    // 0x7fc00000: every NaN below reaches the output only through the kernels' rp_canon.
    let Some(b) = backend(4) else { return };
    let specials = [
        0x7fc0_0001u32,
        0xffc0_0000,
        0x7f80_0001,
        0xffff_ffff,
        0x7f80_0000,
        0xff80_0000,
        0x8000_0000,
        0x0000_0001,
        0x3f80_0000,
    ];
    let v: Vec<f32> = specials.iter().map(|&x| f32::from_bits(x)).collect();
    let x = b
        .upload(&Tensor::new(vec![v.len()], v.clone()).unwrap())
        .unwrap();
    let ones = b
        .upload(&Tensor::new(vec![v.len()], vec![1.0; v.len()]).unwrap())
        .unwrap();
    let inf = b
        .upload(&Tensor::new(vec![v.len()], vec![f32::INFINITY; v.len()]).unwrap())
        .unwrap();
    for (op, ins, want) in [
        (Op::Mul, [&x, &ones], v.clone()),
        (Op::Sub, [&inf, &inf], vec![f32::NAN; v.len()]),
        (Op::Transpose, [&x, &x], v.clone()),
    ] {
        let ins: &[&DeviceTensor] = if matches!(op, Op::Transpose) {
            &ins[..1]
        } else {
            &ins
        };
        let ins: Vec<DeviceTensor> = if matches!(op, Op::Transpose) {
            vec![ins[0].reshaped(&[3, 3]).unwrap()]
        } else {
            ins.iter().map(|t| (*t).clone()).collect()
        };
        let refs: Vec<&DeviceTensor> = ins.iter().collect();
        let got = b.download(&b.execute(&op, &refs).unwrap()).unwrap();
        let want: Vec<f32> = if matches!(op, Op::Transpose) {
            (0..9).map(|i| want[(i % 3) * 3 + i / 3]).collect()
        } else {
            want
        };
        for (g, w) in got.data().iter().zip(&want) {
            let w = if w.is_nan() {
                repops::tensor::CANONICAL_NAN_BITS
            } else {
                w.to_bits()
            };
            assert_eq!(g.to_bits(), w, "{op:?}");
        }
    }
}

#[test]
fn op_outputs_stay_on_the_device_until_downloaded() {
    let Some(b) = backend(4) else { return };
    let x = Tensor::new(vec![2, 3], vec![1.0, -2.0, 3.0, -4.0, 5.0, f32::NAN]).unwrap();
    let dx = b.upload(&x).unwrap();
    let up = b.0.transfers.get();
    assert_eq!((up.host_to_device, up.device_to_host), (24, 0));
    // relu, then a reshape (the same buffer), then add: nothing comes back.
    let r = b.execute(&Op::Relu, &[&dx]).unwrap();
    let r = b
        .execute(&Op::Reshape { shape: vec![3, 2] }, &[&r])
        .unwrap();
    let y = b.execute(&Op::Add, &[&r, &r]).unwrap();
    assert_eq!(y.device_name(), Some("emu"));
    assert_eq!(b.0.transfers.get(), up);
    let got = b.download(&y).unwrap();
    let cpu = {
        let r = repops::CpuBackend.execute_host(&Op::Relu, &[&x]).unwrap();
        let r = r.reshape(&[3, 2]).unwrap();
        repops::CpuBackend
            .execute_host(&Op::Add, &[&r, &r])
            .unwrap()
    };
    assert_eq!(got.hash(), cpu.hash());
    assert_eq!(b.0.transfers.get().device_to_host, 24);
    // A second download is the host copy the first one kept.
    b.download(&y).unwrap();
    assert_eq!(b.0.transfers.get().device_to_host, 24);
    // Another backend's tensor is an error, not a panic.
    let cpu_tensor = DeviceTensor::device("cuda:7", vec![1], std::sync::Arc::new(0u8));
    assert!(b.execute(&Op::Relu, &[&cpu_tensor]).is_err());
}

#[test]
fn device_tensor_hashes_equal_the_host_hash_at_every_chunk_boundary() {
    let Some(b) = backend(4) else { return };
    let p = repops::Philox::new(3, 0);
    let mut shapes: Vec<Vec<usize>> = vec![vec![], vec![0], vec![1], vec![3, 0, 2]];
    // Rank 1: header 26 bytes, so 249 elements end just inside the first 1 KiB chunk
    // and 250 spill into a second; then 3, 4, 5 and 17 chunks (odd and even trees).
    for n in [249, 250, 251, 256, 500, 750, 1018, 1019, 4339] {
        shapes.push(vec![n]);
    }
    shapes.extend([
        vec![7, 37],
        vec![2, 3, 5, 7],
        vec![2, 1, 3, 1, 2, 5],
        vec![1, 2, 1, 2, 1, 2, 3],
    ]);
    let specials = [
        f32::from_bits(0x7fc0_0001),
        f32::from_bits(0xffc0_0000),
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        f32::from_bits(1),
    ];
    let mut tensors = Vec::new();
    for (k, shape) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let mut data: Vec<f32> = (0..n)
            .map(|i| f32::from_bits(p.u32_at(7 * k as u64 + i as u64) & 0xbfff_ffff))
            .collect();
        // Every third tensor carries a NaN payload or an infinity somewhere.
        if k % 3 == 1 && n > 0 {
            data[(k * 31) % n] = specials[k % specials.len()];
        }
        tensors.push(Tensor::new(shape.clone(), data).unwrap());
    }
    let dev: Vec<DeviceTensor> = tensors.iter().map(|t| b.upload(t).unwrap()).collect();
    // A reshaped view: same buffer, another header.
    let view = dev[13].reshaped(&[1, 7, 37]).unwrap();
    let mut refs: Vec<&DeviceTensor> = dev.iter().collect();
    refs.push(&view);
    let before = b.0.transfers.get();
    let got = b.digests(&refs).unwrap();
    let moved = b.0.transfers.get();
    // 36 bytes per tensor hashed on the device; the rank-7 one is hashed from its host
    // copy (kept since its upload), which moves nothing.
    assert_eq!(
        moved.device_to_host - before.device_to_host,
        36 * (refs.len() as u64 - 1)
    );
    // Up: the batch's descriptors, 80 bytes for each tensor hashed there and a sentinel.
    assert_eq!(
        moved.host_to_device - before.host_to_device,
        80 * refs.len() as u64
    );
    for (i, g) in got.iter().enumerate() {
        let host = match tensors.get(i) {
            Some(t) => t.clone(),
            None => tensors[13].clone().reshape(&[1, 7, 37]).unwrap(),
        };
        assert_eq!(
            *g,
            repops::Digest::of(&host),
            "tensor {i} {:?}",
            host.shape()
        );
    }
    assert!(got.iter().any(|g| !g.finite));
}

fn train_on_emu(program: &str, steps: u64) {
    train_on_emu_with(program, steps, true)
}

/// `transfers`: also hold the step to moving at most 1% of its state down (a bound
/// for real models; a state of a few dozen kilobytes is below the per-tensor digests).
fn train_on_emu_with(program: &str, steps: u64, transfers: bool) {
    let Some(b) = backend(4) else { return };
    let b = std::sync::Arc::new(b);
    let r = train::conformance::training(b.clone(), program, steps).unwrap();
    assert_eq!(r.steps, steps);
    assert_eq!(r.first_divergence, None, "{program}");
    assert_eq!(r.cpu_trace_root, r.backend_trace_root, "{program}");
    // Resident state: after the first upload, a step uploads its batch (and the
    // labels' and ids' index lists) but not the state; it downloads the loss and the
    // new state's hashes (36 bytes a tensor), not the state, not every node output.
    let p = train::Program::builtin(program).unwrap();
    let g = p.graph().unwrap();
    let state_bytes: u64 = g
        .state_shapes
        .values()
        .map(|s| 4 * s.iter().product::<usize>() as u64)
        .sum();
    let all_outputs: u64 = g
        .nodes
        .iter()
        .map(|n| 4 * n.shape.iter().product::<usize>() as u64)
        .sum();
    let moved = b.0.transfers.get();
    eprintln!("{program}: {steps} steps moved {moved:?}; state {state_bytes} bytes, all outputs {all_outputs} bytes");
    if !transfers {
        return;
    }
    assert!(
        moved.device_to_host * 100 <= steps * state_bytes,
        "more than 1% of the state came down per step"
    );
    assert!(moved.device_to_host < steps * all_outputs);
}

#[test]
fn a_training_step_of_the_mlp_keeps_the_cpu_state_hash_on_the_emulated_device() {
    train_on_emu("mlp-digits", 1);
}

/// The convolutional graph program (`im2col`, `col2im`, `max_last` and its backward in
/// the step) and the gated one (the ops only graph programs use).
#[test]
fn a_training_step_of_the_graph_programs_keeps_the_cpu_state_hash_on_the_emulated_device() {
    train_on_emu_with("cnn-digits", 1, false);
    train_on_emu_with("gated-digits", 1, false);
}

/// Minutes (every op spawns the emulator and one host thread per CUDA thread):
/// `cargo test -p repops-cuda --lib -- --ignored`.
#[test]
#[ignore = "slow: a tiny-lm step on the emulated device takes minutes"]
fn a_training_step_of_the_transformer_keeps_the_cpu_state_hash_on_the_emulated_device() {
    train_on_emu("tiny-lm", 1);
}
