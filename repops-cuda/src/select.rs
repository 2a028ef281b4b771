//! Choosing a backend at run time: `auto`, `cpu` or `cuda`.

use crate::{CudaBackend, Error};
use repops::{Backend, CpuBackend};
use std::str::FromStr;
use std::sync::Arc;

/// Which backend to run ops on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// CUDA device 0 if the driver, NVRTC and a device are there, else the CPU.
    #[default]
    Auto,
    /// The CPU reference.
    Cpu,
    /// CUDA device 0; an error if it cannot be used.
    Cuda,
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendKind::Auto),
            "cpu" => Ok(BackendKind::Cpu),
            "cuda" => Ok(BackendKind::Cuda),
            _ => Err(Error::UnknownBackend(s.to_string())),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Auto => "auto",
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
        })
    }
}

/// The backend [`select_backend`] chose, and why when `auto` fell back to the CPU.
#[derive(Clone)]
pub struct Selected {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// For `auto` on a machine where CUDA cannot be used: the reason (for a log line).
    pub fallback_reason: Option<String>,
}

impl std::fmt::Debug for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selected")
            .field("backend", &self.backend.name())
            .field("fallback_reason", &self.fallback_reason)
            .finish()
    }
}

/// The backend for `kind`. `cuda` fails with a clear [`Error`] when the driver, NVRTC or
/// a device is missing; `auto` then falls back to the CPU and says why. Never panics.
pub fn select_backend(kind: BackendKind) -> Result<Selected, Error> {
    match kind {
        BackendKind::Cpu => Ok(Selected {
            backend: Arc::new(CpuBackend),
            fallback_reason: None,
        }),
        BackendKind::Cuda => Ok(Selected {
            backend: Arc::new(CudaBackend::new(0)?),
            fallback_reason: None,
        }),
        BackendKind::Auto => match CudaBackend::new(0) {
            Ok(b) => Ok(Selected {
                backend: Arc::new(b),
                fallback_reason: None,
            }),
            Err(e) => {
                let reason = format!("CUDA backend unavailable, using the CPU: {e}");
                tracing::info!("{reason}");
                Ok(Selected {
                    backend: Arc::new(CpuBackend),
                    fallback_reason: Some(reason),
                })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_parse_and_unknown_names_are_errors() {
        assert_eq!("auto".parse::<BackendKind>().unwrap(), BackendKind::Auto);
        assert_eq!("CPU".parse::<BackendKind>().unwrap(), BackendKind::Cpu);
        assert_eq!("cuda".parse::<BackendKind>().unwrap(), BackendKind::Cuda);
        let e = "tpu".parse::<BackendKind>().unwrap_err();
        assert!(e.to_string().contains("expected auto, cpu or cuda"), "{e}");
        for k in [BackendKind::Auto, BackendKind::Cpu, BackendKind::Cuda] {
            assert_eq!(k.to_string().parse::<BackendKind>().unwrap(), k);
        }
    }

    #[test]
    fn cpu_is_always_available_and_auto_never_fails() {
        let s = select_backend(BackendKind::Cpu).unwrap();
        assert_eq!(s.backend.name(), "cpu");
        let s = select_backend(BackendKind::Auto).unwrap();
        // Either a GPU was found, or the CPU with a reason.
        assert!(s.backend.name().starts_with("cuda") || s.fallback_reason.is_some());
    }

    #[test]
    fn cuda_without_a_driver_is_a_clear_error_not_a_panic() {
        if crate::probe::driver_available() {
            eprintln!("skipped: this machine has libcuda; the error path needs it absent");
            return;
        }
        let e = select_backend(BackendKind::Cuda).unwrap_err();
        assert!(matches!(e, Error::DriverMissing), "{e}");
        assert!(e.to_string().contains("libcuda.so.1"), "{e}");
    }
}
