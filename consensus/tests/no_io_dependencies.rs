//! The consensus crate must stay sans-IO: no async runtime, RPC, storage engine or OS
//! randomness may enter its dependency tree (normal dependencies, not dev-dependencies).

use std::process::Command;

#[test]
fn dependency_tree_has_no_io_crates() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
            manifest,
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
