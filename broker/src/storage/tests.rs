use super::*;
use crate::error::Fatal;

#[test]
fn fresh_directory_is_claimed_and_reopens_for_the_same_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Db::open(dir.path(), 3).expect("first open");
    assert_eq!(
        storage.identity(),
        NodeIdentity {
            node_id: 3,
            format_version: FORMAT_VERSION
        }
    );
    for cf in Cf::ALL {
        assert!(
            storage.db().cf_handle(cf.name()).is_some(),
            "{} exists",
            cf.name()
        );
    }
    drop(storage);
    let storage = Db::open(dir.path(), 3).expect("reopen as the same node");
    assert_eq!(storage.node_id(), 3);
}

#[test]
fn another_node_id_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Db::open(dir.path(), 1).expect("first open"));
    let err = Db::open(dir.path(), 2).expect_err("node 2 must not open node 1's data");
    assert!(
        matches!(
            err,
            Fatal::WrongNode {
                found: 1,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("belongs to node 1") && text.contains("--id 1"),
        "{text}"
    );
}

#[test]
fn newer_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Db::open(dir.path(), 1).expect("first open");
    let newer = NodeIdentity {
        node_id: 1,
        format_version: FORMAT_VERSION + 1,
    };
    let meta = storage.db().cf_handle(Cf::Meta.name()).expect("meta cf");
    storage
        .db()
        .put_cf(meta, IDENTITY_KEY, newer.encode())
        .expect("overwrite identity");
    drop(storage);
    let err = Db::open(dir.path(), 1).expect_err("newer format");
    assert!(matches!(err, Fatal::UnsupportedFormat { .. }), "{err}");
}

#[test]
fn data_without_identity_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Db::open(dir.path(), 1).expect("first open");
    let db = storage.db();
    db.put_cf(db.cf_handle(Cf::Log.name()).expect("log cf"), b"k", b"v")
        .expect("put");
    db.delete_cf(
        db.cf_handle(Cf::Meta.name()).expect("meta cf"),
        IDENTITY_KEY,
    )
    .expect("delete");
    drop(storage);
    let err = Db::open(dir.path(), 1).expect_err("data but no identity");
    assert!(matches!(err, Fatal::CorruptIdentity { .. }), "{err}");
}

#[test]
fn locked_directory_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = Db::open(dir.path(), 1).expect("first open");
    let err = Db::open(dir.path(), 1).expect_err("RocksDB's lock is held");
    assert!(err.to_string().contains("another broker"), "{err}");
}

#[test]
fn the_handle_is_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Db>();
    shareable::<GroupStore>();
    shareable::<GroupCommit>();
}
