//! Write the production and audit PTX of every module to a directory, for reading.
//! `cargo run -p repops-cuda --example dump_ptx -- DIR [ARCH]`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: dump_ptx DIR [ARCH]")?);
    let arch = args.next().unwrap_or_else(|| "compute_90".into());
    std::fs::create_dir_all(&dir)?;
    for m in repops_cuda::kernels::MODULES {
        for (b, tag) in [
            (repops_cuda::kernels::Build::Production, "ptx"),
            (repops_cuda::kernels::Build::Audit, "audit.ptx"),
        ] {
            let ptx = repops_cuda::kernels::compile(&m, &arch, b)?;
            let path = dir.join(format!("{}.{tag}", m.file.trim_end_matches(".cu")));
            std::fs::write(&path, ptx)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
