//! Generates the `paxlog.v1` Rust code from `proto/paxlog/v1/*.proto`.
//!
//! protox parses the files in pure Rust, so building needs no system `protoc`. The same
//! descriptor set feeds code generation (prost messages, tonic clients and servers) and is
//! written to `OUT_DIR` for `FILE_DESCRIPTOR_SET`, which the broker serves for reflection.

use std::{env, error::Error, fs, path::PathBuf};

/// Include root: imports are written relative to it (`import "paxlog/v1/common.proto"`).
const PROTO_ROOT: &str = "proto";
/// The package directory; every `.proto` file in it is compiled.
const PACKAGE_DIR: &str = "proto/paxlog/v1";
/// File name (without `.bin`) that `tonic::include_file_descriptor_set!` looks up.
const DESCRIPTOR_NAME: &str = "paxlog_v1_descriptor";

fn main() -> Result<(), Box<dyn Error>> {
    let protos = proto_files()?;
    // The directory itself too, so that adding a file reruns the build.
    println!("cargo:rerun-if-changed={PACKAGE_DIR}");
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    // Source info carries the `//` comments: prost turns them into rustdoc and reflection
    // clients (grpcurl describe) show them.
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(&protos)?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join(format!("{DESCRIPTOR_NAME}.bin")),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        // `bytes::Bytes` for every bytes field: payloads are sliced from the receive buffer
        // instead of copied, and consensus values are `Bytes` too.
        .bytes(".")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

/// The `.proto` files of the package, sorted so the generated code is reproducible.
fn proto_files() -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(PACKAGE_DIR)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("no .proto files found in {PACKAGE_DIR}").into());
    }
    Ok(files)
}
