//! Compiles `veritrain/**/*.proto` with protox (a pure-Rust protobuf compiler,
//! so no system `protoc` is needed) and generates prost messages and tonic
//! services, plus a file descriptor set for gRPC server reflection.

use std::{env, fs, path::PathBuf};

fn protos(dir: &PathBuf, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            protos(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "proto") {
            out.push(p);
        }
    }
    Ok(())
}

const SERDE_PACKAGES: &[&str] = &[
    ".veritrain.base",
    ".veritrain.auth",
    ".veritrain.bank",
    ".veritrain.staking",
    ".veritrain.node",
    ".veritrain.tasks",
    ".veritrain.verde",
    ".veritrain.swarm",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let mut files = Vec::new();
    protos(&root.join("veritrain"), &mut files)?;
    // The directory too, so that a new .proto file is noticed.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("veritrain").display()
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("veritrain_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    let mut builder = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true);
    // JSON (genesis files, `--output json`) for every package whose messages
    // hold no `Any`; transactions are only ever protobuf.
    for pkg in SERDE_PACKAGES {
        builder = builder
            .type_attribute(pkg, "#[derive(serde::Serialize, serde::Deserialize)]")
            .message_attribute(pkg, "#[serde(default)]");
    }
    builder.compile_fds(fds)?;
    Ok(())
}
