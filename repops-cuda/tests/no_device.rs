//! On a machine without the CUDA driver, NVRTC or a device, everything that touches the
//! CUDA backend returns an error (or falls back to the CPU): it never panics.

use repops_cuda::{select_backend, BackendKind, CudaBackend, Error};

#[test]
fn opening_a_device_is_an_error_or_works_but_never_panics() {
    match CudaBackend::new(0) {
        Ok(b) => eprintln!("CUDA device present: {b:?}"),
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::DriverMissing | Error::NvrtcMissing | Error::NoDevice { .. }
                ),
                "{e}"
            );
            let s = select_backend(BackendKind::Auto).unwrap();
            assert_eq!(s.backend.name(), "cpu");
            let reason = s.fallback_reason.unwrap();
            assert!(reason.contains(&e.to_string()), "{reason}");
            let err = select_backend(BackendKind::Cuda).unwrap_err();
            assert_eq!(err.to_string(), e.to_string());
        }
    }
}

#[test]
fn an_unknown_backend_name_is_a_clear_error() {
    let e = "metal".parse::<BackendKind>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown backend \"metal\": expected auto, cpu or cuda"
    );
}
