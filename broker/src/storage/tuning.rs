//! RocksDB settings for a log broker's write pattern: every record is written once to the
//! write-ahead log (synced, on the acknowledgement path), then again when its memtable is
//! flushed to a table file, then by compactions. Profiles of a local three-node cluster
//! under publish load showed the kernel's copies of those writes into the page cache as
//! the largest single CPU cost (more than all of paxlog's own code), then LZ4 compressing
//! record payloads that producers send already compressed or random (see
//! `benches/README.md`). So:
//!
//! - **Flushes and compactions use direct I/O** where the data directory's file system
//!   takes it (checked by writing a probe file at open): those writes bypass the page
//!   cache, so the kernel copies nothing, and they do not evict the pages readers use. The
//!   write-ahead log stays buffered (RocksDB has no direct I/O for it) and synced.
//! - **Record batches are kept apart from keys** (RocksDB's integrated BlobDB, as in
//!   WiscKey): a flush writes each batch once into a blob file, and compactions, which the
//!   profile showed rewriting the log over and over, only rewrite the small keys. A blob
//!   file is deleted once retention has removed every batch in it.
//! - **The log and offsets tables are not compressed**: record values are opaque bytes, as
//!   in Kafka (`compression.type=producer`), where the producer chooses compression.

use rocksdb::{DBCompressionType, Options};
use std::path::Path;

use super::Cf;

/// Log values (one record batch each) at least this big are kept in blob files; smaller
/// ones (no-ops, tiny batches) stay inline in the table files.
const MIN_BLOB_SIZE: u64 = 256;

/// Name of the probe file, created and removed at open.
const PROBE: &str = ".paxlog-direct-io-probe";

/// The database-wide options: `direct_io` from [`direct_io_supported`].
pub(super) fn db_options(direct_io: bool) -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_use_direct_io_for_flush_and_compaction(direct_io);
    // Consumers read a partition's log in order: let the kernel read ahead in blob and
    // table files (RocksDB's default advises random access, which turns read-ahead off).
    options.set_advise_random_on_open(false);
    options
}

/// The options of one column family.
pub(super) fn cf_options(cf: Cf) -> Options {
    let mut options = Options::default();
    if matches!(cf, Cf::Log | Cf::Offsets) {
        options.set_compression_type(DBCompressionType::None);
    }
    if cf == Cf::Log {
        // Record batches go to blob files when their memtable is flushed and stay there;
        // compactions then move only keys and blob references, not the records.
        options.set_enable_blob_files(true);
        options.set_min_blob_size(MIN_BLOB_SIZE);
        options.set_blob_compression_type(DBCompressionType::None);
    }
    options
}

/// Whether files in `dir` can be written with `O_DIRECT` (ext4, xfs: yes; tmpfs and some
/// FUSE file systems: no). Any failure of the probe means no: buffered I/O always works.
pub(super) fn direct_io_supported(dir: &Path) -> bool {
    let path = dir.join(PROBE);
    let supported = probe(&path).is_ok();
    let _ = std::fs::remove_file(&path);
    supported
}

#[cfg(target_os = "linux")]
fn probe(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    /// Direct I/O needs buffers, offsets and lengths aligned to the device's logical
    /// block size: 4 KiB covers every common device.
    #[repr(C, align(4096))]
    struct Block([u8; 4096]);
    let block = Box::new(Block([0; 4096]));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    file.write_all(&block.0)?;
    file.sync_all()
}

#[cfg(not(target_os = "linux"))]
fn probe(_path: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Either answer is right for the machine's /tmp; the directory must stay clean.
        let _ = direct_io_supported(dir.path());
        assert_eq!(std::fs::read_dir(dir.path()).expect("read").count(), 0);
    }

    #[test]
    fn a_directory_that_does_not_exist_has_no_direct_io() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!direct_io_supported(&dir.path().join("missing")));
    }
}
