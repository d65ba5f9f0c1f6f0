//! Compiles `proto/registry/v1` with `protox` (pure Rust: no `protoc` to install or download)
//! and generates the tonic services; writes the encoded descriptor set for server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<PathBuf> = [
        "types",
        "command_service",
        "query_service",
        "audit_service",
        "admin_service",
        "access_service",
    ]
    .iter()
    .map(|f| root.join(format!("registry/v1/{f}.proto")))
    .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("registry_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
