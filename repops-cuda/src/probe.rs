//! Is the CUDA driver / NVRTC loadable? cudarc (dynamic loading) panics on the first
//! call into a library it cannot open, so every path into cudarc asks here first.

// The probes only dlopen the libraries (no symbol is called).
#![allow(unsafe_code)]

use std::sync::OnceLock;

/// True if `libnvrtc` (the names cudarc tries, e.g. `libnvrtc.so.13`, `libnvrtc.so`)
/// can be opened. Cached for the process.
pub fn nvrtc_available() -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only calls `libloading::Library::new` on cudarc's list
    // of candidate names and drops the handle; loading NVRTC runs no user-visible
    // initialisers with preconditions.
    *P.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() })
}

/// True if the CUDA driver library (`libcuda.so.1`, `libcuda.so`) can be opened. A
/// machine can have the library and no device; `CudaContext::new` reports that.
pub fn driver_available() -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    // SAFETY: as above, a dlopen probe of the driver library.
    *P.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// The CUDA version the driver supports (e.g. 13000 for 13.0), or `None` if the driver
/// library is missing or does not answer. Call only after [`driver_available`].
pub fn driver_version() -> Option<i32> {
    if !driver_available() {
        return None;
    }
    let mut v: std::ffi::c_int = 0;
    // SAFETY: the library is loaded (checked above) and `cuDriverGetVersion`, present in
    // every driver since CUDA 2.2, only writes one int through the valid pointer.
    let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
    (r == cudarc::driver::sys::CUresult::CUDA_SUCCESS).then_some(v)
}

/// True if cuBLAS can be opened (only the benchmark uses it).
pub fn cublas_available() -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    // SAFETY: as above, a dlopen probe of cuBLAS.
    *P.get_or_init(|| unsafe { cudarc::cublas::sys::is_culib_present() })
}
