//! The CUDA sources (`repops-cuda/kernels/*.cu`), their NVRTC options, and compilation.
//!
//! Every module is compiled as `repops.cuh` followed by the module's own `.cu` file, with
//! [`NVRTC_FLAGS`]. The PTX is cached per GPU architecture for the process, so each
//! device compiles once.

use crate::Error;
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The device library shared by all modules (R1 primitives, R4 functions, R3 warp tree).
pub const HEADER: &str = include_str!("../kernels/repops.cuh");

/// The flags the contract (R1) requires; nothing else changes floating point behaviour.
pub const NVRTC_FLAGS: [&str; 4] = [
    "--fmad=false",
    "--prec-div=true",
    "--prec-sqrt=true",
    "--ftz=false",
];

/// One `.cu` file and the kernels (`extern "C" __global__`) it defines.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// File name under `kernels/`.
    pub file: &'static str,
    /// Source text.
    pub source: &'static str,
    /// Entry points, each loaded by the backend and scanned by the PTX audit.
    pub entries: &'static [&'static str],
}

/// Every kernel module of the backend.
pub const MODULES: [Module; 5] = [
    Module {
        file: "elementwise.cu",
        source: include_str!("../kernels/elementwise.cu"),
        entries: &[
            "rp_scale",
            "rp_add_scalar",
            "rp_relu",
            "rp_gelu_k",
            "rp_tanh_k",
            "rp_sigmoid_k",
            "rp_exp_k",
            "rp_log_k",
            "rp_rsqrt_k",
            "rp_add",
            "rp_sub",
            "rp_mul",
            "rp_relu_backward",
            "rp_gelu_backward",
            "rp_tanh_backward",
            "rp_sigmoid_backward",
            "rp_sgd_momentum_buf",
            "rp_sgd_update",
            "rp_adam_m",
            "rp_adam_v",
            "rp_add_bias",
            "rp_adamw_update",
            "rp_causal_mask",
            "rp_eval_bits",
            "rp_silu_k",
            "rp_silu_backward",
            "rp_rope",
            "rp_dropout",
        ],
    },
    Module {
        file: "rows.cu",
        source: include_str!("../kernels/rows.cu"),
        entries: &[
            "rp_softmax",
            "rp_softmax_backward",
            "rp_log_softmax",
            "rp_log_softmax_backward",
            "rp_cross_entropy_rows",
            "rp_cross_entropy_backward",
            "rp_sum_last",
            "rp_layer_norm",
            "rp_layer_norm_backward_input",
            "rp_layer_norm_stats",
            "rp_max_last",
            "rp_max_last_backward",
            "rp_rms_norm",
            "rp_rms_norm_backward_input",
            "rp_rms_stats",
        ],
    },
    Module {
        file: "gemm.cu",
        source: include_str!("../kernels/gemm.cu"),
        entries: &[
            "rp_gemm_128",
            "rp_gemm_32",
            "rp_gemm_w128_k8",
            "rp_gemm_w128_k16",
            "rp_gemm_w128_t128",
            "rp_gemm_w128x64",
            "rp_gemm_w64",
        ],
    },
    Module {
        file: "layout.cu",
        source: include_str!("../kernels/layout.cu"),
        entries: &[
            "rp_sum_axis0",
            "rp_layer_norm_backward_gamma",
            "rp_embedding",
            "rp_embedding_backward",
            "rp_transpose",
            "rp_permute",
            "rp_im2col",
            "rp_col2im",
        ],
    },
    Module {
        file: "hash.cu",
        source: include_str!("../kernels/hash.cu"),
        entries: &["rp_blake3_chunks", "rp_blake3_tree"],
    },
];

impl Module {
    /// The text NVRTC compiles: the header, then the module (with a `#line` so that
    /// compiler messages name the module's own lines).
    pub fn full_source(&self) -> String {
        format!(
            "#line 1 \"repops.cuh\"\n{HEADER}\n#line 1 \"{}\"\n{}",
            self.file, self.source
        )
    }
}

/// How a module is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// What the backend runs.
    Production,
    /// The PTX audit's build: `FMA(...)` becomes a call of the opaque external function
    /// `repops_fma_marker` (relocatable device code), so an `fma` instruction in this
    /// PTX can only come from the compiler.
    Audit,
}

/// NVRTC options for `arch` (e.g. `compute_90`).
pub fn options(arch: &str, build: Build) -> CompileOptions {
    let mut options: Vec<String> = NVRTC_FLAGS.iter().map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture={arch}"));
    options.push("--std=c++17".into());
    if build == Build::Audit {
        options.push("--relocatable-device-code=true".into());
        options.push("-DREPOPS_PTX_AUDIT".into());
    }
    CompileOptions {
        options,
        ..Default::default()
    }
}

/// Compile one module to PTX text. Fails with [`Error::NvrtcMissing`] (never a panic)
/// when NVRTC cannot be loaded.
pub fn compile(module: &Module, arch: &str, build: Build) -> Result<String, Error> {
    if !crate::probe::nvrtc_available() {
        return Err(Error::NvrtcMissing);
    }
    let mut opts = options(arch, build);
    opts.name = Some(module.file.to_string());
    let ptx = compile_ptx_with_opts(module.full_source(), opts).map_err(|e| Error::Compile {
        module: module.file,
        detail: match e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                log.to_string_lossy().into_owned()
            }
            other => format!("{other:?}"),
        },
    })?;
    Ok(ptx.to_src())
}

/// The production PTX of every module for `arch`, compiled and audited
/// ([`crate::ptx`]) once per process.
pub fn production_ptx(arch: &str) -> Result<Arc<Vec<String>>, Error> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<String>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().map_err(|_| Error::Poisoned)?.get(arch) {
        return Ok(p.clone());
    }
    let ptx = MODULES
        .iter()
        .map(|m| compile(m, arch, Build::Production))
        .collect::<Result<Vec<_>, _>>()?;
    // Never load PTX that has not passed the audit for this very architecture.
    let report = crate::ptx::audit_compiled(&MODULES, arch, &ptx)?;
    if !report.violations.is_empty() {
        return Err(Error::Audit {
            arch: arch.to_string(),
            violations: report.violations.join("\n"),
        });
    }
    let ptx = Arc::new(ptx);
    cache
        .lock()
        .map_err(|_| Error::Poisoned)?
        .insert(arch.to_string(), ptx.clone());
    Ok(ptx)
}
