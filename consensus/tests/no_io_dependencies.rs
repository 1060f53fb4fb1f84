//! The consensus crate must stay sans-IO: no async runtime, RPC, storage engine or OS
//! randomness may enter its dependency tree (normal dependencies, not dev-dependencies).

use std::process::Command;

#[test]
fn dependency_tree_has_no_io_crates() {
    // Read at run time first: a test binary reused from a build in another checkout of the
    // same sources (a shared target directory) must look at this checkout.
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let manifest = format!("{dir}/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
            &manifest,
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"paxlog-consensus"),
        "unexpected cargo tree output:\n{tree}"
    );
    let forbidden = [
        "tokio",
        "tonic",
        "prost",
        "rocksdb",
        "librocksdb-sys",
        "getrandom",
        "mio",
        "hyper",
    ];
    let found: Vec<&&str> = crates.iter().filter(|c| forbidden.contains(c)).collect();
    assert!(
        found.is_empty(),
        "I/O crates in consensus's dependency tree: {found:?}\n{tree}"
    );
}
