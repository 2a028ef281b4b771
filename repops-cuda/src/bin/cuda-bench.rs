//! `cuda-bench`: the RepOps GEMM against cuBLAS SGEMM (FP32, TF32 off), and a training
//! step on the CUDA backend against the CPU reference. Needs a GPU.
//!
//! ```text
//! cargo run --release -p repops-cuda --bin cuda-bench
//! cargo run --release -p repops-cuda --bin cuda-bench -- --sizes 1024,4096 --reps 50 --train-steps 100
//! ```
//!
//! Per size, one line `n repops-GF/s cuBLAS-GF/s ratio` for the production choice of
//! kernel (preceded by `gemm-choice n kernel`), then one line per GEMM kernel of
//! `repops_cuda::GEMM_KERNELS` forced: `gemm-variant kernel n GF/s ratio bits`, where bits
//! is `same` when its C has the production C's bits (R2: it must), or
//! `gemm-variant kernel n error: ...` when it cannot run (the bench goes on).
//! PyTorch's fp32 eager step on the same models: `python3 repops-cuda/bench/torch_step.py`.

// cuBLAS handle configuration (`cublasSetMathMode`) is an FFI call.
#![allow(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::Parser;
use cudarc::cublas::{sys as cublas_sys, CudaBlas, Gemm, GemmConfig};
use repops::{Backend, CpuBackend};
use repops_cuda::{gemm_choice, probe, CudaBackend, GEMM_KERNELS};
use std::sync::Arc;
use std::time::Instant;
use train::Trainer;

#[derive(Parser, Debug)]
#[command(about = "RepOps CUDA GEMM vs cuBLAS SGEMM, and training steps")]
struct Args {
    /// Square GEMM sizes (M = N = K).
    #[arg(long, value_delimiter = ',', default_values_t = [512usize, 1024, 2048, 4096])]
    sizes: Vec<usize>,
    /// Timed repetitions per size (after 3 warm-up runs).
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Timed repetitions of each forced GEMM kernel per size (0 skips the variants).
    #[arg(long, default_value_t = 10)]
    variant_reps: usize,
    /// Training steps per program and backend (0 skips the training benchmark).
    #[arg(long, default_value_t = 50)]
    train_steps: u64,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
}

fn time(
    reps: usize,
    sync: &dyn Fn() -> Result<()>,
    run: &mut dyn FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..3 {
        run()?;
    }
    sync()?;
    let t = Instant::now();
    for _ in 0..reps {
        run()?;
    }
    sync()?;
    Ok(t.elapsed().as_secs_f64() / reps as f64)
}

fn main() -> Result<()> {
    let a = Args::parse();
    if std::env::var_os("NVIDIA_TF32_OVERRIDE").is_some_and(|v| v != "0") {
        bail!("NVIDIA_TF32_OVERRIDE is set: unset it so that cuBLAS computes in FP32");
    }
    let cuda = Arc::new(CudaBackend::new(a.device).context("opening the CUDA backend")?);
    println!("device: {} ({})", cuda.device_name(), cuda.arch());
    if !probe::cublas_available() {
        bail!("cuBLAS (libcublas.so.13) cannot be loaded: it is needed for the baseline");
    }
    let stream = cuda.stream().clone();
    let blas = CudaBlas::new(stream.clone()).context("cuBLAS handle")?;
    // SAFETY: a valid handle; CUBLAS_DEFAULT_MATH is plain FP32 (no TF32 tensor ops).
    let st = unsafe {
        cublas_sys::cublasSetMathMode(
            *blas.handle(),
            cublas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH,
        )
    };
    if st != cublas_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        bail!("cublasSetMathMode: {st:?}");
    }
    let sync = || cuda.synchronize().map_err(anyhow::Error::from);
    let sm_count = stream
        .context()
        .attribute(
            cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        )
        .context("SM count")?
        .max(1) as u32;
    println!("SMs: {sm_count}");
    println!(
        "{:>6} {:>12} {:>12} {:>8}",
        "size", "repops GF/s", "cuBLAS GF/s", "ratio"
    );
    for &n in &a.sizes {
        let host: Vec<f32> = (0..n * n)
            .map(|i| ((i % 97) as f32 - 48.0) / 64.0)
            .collect();
        let da = cuda.upload_f32(&host)?;
        let db = cuda.upload_f32(&host)?;
        let mut dc = cuda.alloc_zeros(n * n)?;
        let nn = n as u64;
        let choice = gemm_choice((1, nn, nn), sm_count);
        println!("gemm-choice {n} {}", choice.name);
        let ours = time(a.reps, &sync, &mut || {
            cuda.gemm_device_with(choice, &da, &db, &mut dc, (1, nn, nn, nn), (false, false))
                .map_err(anyhow::Error::from)
        })?;
        let ni = n as i32;
        // Row-major C = A B is column-major C^T = B^T A^T: cuBLAS gets (B, A).
        let cfg = GemmConfig {
            transa: cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            transb: cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            m: ni,
            n: ni,
            k: ni,
            alpha: 1.0f32,
            lda: ni,
            ldb: ni,
            beta: 0.0f32,
            ldc: ni,
        };
        // cuBLAS gets typed f32 buffers holding the same data.
        let ba = stream.clone_htod(&host)?;
        let bb = stream.clone_htod(&host)?;
        let mut bc = stream.alloc_zeros::<f32>(n * n)?;
        let theirs = time(a.reps, &sync, &mut || {
            // SAFETY: all three buffers hold n*n f32 and the leading dimensions are n.
            unsafe { blas.gemm(cfg, &bb, &ba, &mut bc) }.map_err(|e| anyhow::anyhow!("{e:?}"))
        })?;
        let flops = 2.0 * (n as f64).powi(3);
        println!(
            "{n:>6} {:>12.0} {:>12.0} {:>8.3}",
            flops / ours / 1e9,
            flops / theirs / 1e9,
            theirs / ours
        );
        if a.variant_reps == 0 {
            continue;
        }
        // Every kernel forced on the same product: its speed, and its bits against the
        // production kernel's C (just computed into dc).
        let want = cuda.download_f32(&dc, n * n)?;
        for k in GEMM_KERNELS {
            let mut vc = cuda.alloc_zeros(n * n)?;
            let run = time(a.variant_reps, &sync, &mut || {
                cuda.gemm_device_with(k, &da, &db, &mut vc, (1, nn, nn, nn), (false, false))
                    .map_err(anyhow::Error::from)
            })
            .and_then(|t| Ok((t, cuda.download_f32(&vc, n * n)?)));
            match run {
                Ok((t, got)) => {
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    println!(
                        "gemm-variant {} {n} {:.0} {:.3} {}",
                        k.name,
                        flops / t / 1e9,
                        theirs / t,
                        if same { "same" } else { "DIFFERENT" }
                    );
                }
                Err(e) => {
                    let msg = format!("{e:#}").replace('\n', " ");
                    println!("gemm-variant {} {n} error: {msg}", k.name);
                }
            }
        }
    }
    if a.train_steps > 0 {
        println!("training step (cuda: state downloaded and hashed on the host each step; cuda-resident: state hashed on the device):");
        for program in ["mlp-digits", "tiny-lm"] {
            for (label, backend, resident) in [
                ("cpu", Arc::new(CpuBackend) as Arc<dyn Backend>, false),
                ("cuda", cuda.clone() as Arc<dyn Backend>, false),
                ("cuda-resident", cuda.clone() as Arc<dyn Backend>, true),
            ] {
                let p = train::Program::builtin(program)?;
                let d = train::Dataset::builtin(&p.dataset.name)?;
                let mut tr = Trainer::with_backend(p, d, backend)?;
                // cuda-resident: the state stays on the device and is hashed there.
                tr.keep_state_on_device(resident);
                let before = cuda.transfers();
                let t = Instant::now();
                for s in 1..=a.train_steps {
                    tr.step(s)?;
                }
                let per = t.elapsed().as_secs_f64() / a.train_steps as f64;
                let after = cuda.transfers();
                let moved = if label != "cpu" {
                    format!(
                        ", {:.1} KiB up and {:.1} KiB down per step",
                        (after.host_to_device - before.host_to_device) as f64
                            / 1024.0
                            / a.train_steps as f64,
                        (after.device_to_host - before.device_to_host) as f64
                            / 1024.0
                            / a.train_steps as f64
                    )
                } else {
                    String::new()
                };
                println!(
                    "  {program:>10} {label:>4}: {:.3} ms/step, state hash {}{moved}",
                    per * 1e3,
                    hex::encode(tr.state_hash())
                );
            }
        }
    }
    Ok(())
}
