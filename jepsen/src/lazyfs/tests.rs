//! The lazy filesystem on a real FUSE mount (root only; skipped with a message elsewhere).

use super::*;
use std::io::Write;

fn mounted() -> Option<(tempfile::TempDir, LazyFs, PathBuf)> {
    if !LazyFs::available() {
        eprintln!("skipped: FUSE mounts need root and /dev/fuse");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    let fs = LazyFs::mount(&dir.path().join("backing"), &mnt).expect("mount");
    Some((dir, fs, mnt))
}

#[test]
fn what_was_fsynced_survives_a_crash_and_the_rest_is_lost() {
    let Some((dir, fs, mnt)) = mounted() else {
        return;
    };
    let mut file = File::create(mnt.join("wal")).expect("create");
    file.write_all(b"synced;").expect("write");
    file.sync_data().expect("fdatasync");
    file.write_all(b"not synced").expect("write");
    drop(file);
    // Before the crash, readers see everything written (as from the page cache).
    assert_eq!(
        std::fs::read(mnt.join("wal")).expect("read"),
        b"synced;not synced"
    );
    assert_eq!(fs.unsynced_bytes(), 10);
    assert_eq!(
        std::fs::read(dir.path().join("backing/wal")).expect("backing"),
        b"synced;",
        "nothing unsynced reached the disk"
    );

    let dropped = fs.crash();
    assert_eq!(
        dropped,
        Dropped {
            files: 1,
            bytes: 10
        }
    );
    assert_eq!(std::fs::read(mnt.join("wal")).expect("read"), b"synced;");
    assert_eq!(std::fs::metadata(mnt.join("wal")).expect("stat").len(), 7);
}

#[test]
fn overwrites_truncations_and_renames_read_back_as_written() {
    let Some((_dir, fs, mnt)) = mounted() else {
        return;
    };
    let path = mnt.join("a");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("create");
    file.write_all(b"0123456789").expect("write");
    file.write_all_at(b"ab", 3).expect("overwrite");
    assert_eq!(std::fs::read(&path).expect("read"), b"012ab56789");
    file.set_len(4).expect("shrink");
    file.set_len(6).expect("grow");
    assert_eq!(std::fs::read(&path).expect("read"), b"012a\0\0");
    file.sync_all().expect("fsync");
    drop(file);

    // A rename carries the unsynced changes of the file with it.
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    file.write_all(b"tail").expect("append");
    drop(file);
    std::fs::rename(&path, mnt.join("b")).expect("rename");
    assert_eq!(std::fs::read(mnt.join("b")).expect("read"), b"012a\0\0tail");
    let names: Vec<_> = std::fs::read_dir(&mnt)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("b")]);

    fs.crash();
    assert_eq!(std::fs::read(mnt.join("b")).expect("read"), b"012a\0\0");
}

#[test]
fn a_removed_file_leaves_nothing_behind() {
    let Some((_dir, fs, mnt)) = mounted() else {
        return;
    };
    std::fs::write(mnt.join("gone"), b"unsynced").expect("write");
    std::fs::remove_file(mnt.join("gone")).expect("remove");
    assert_eq!(fs.unsynced_bytes(), 0);
    assert_eq!(fs.crash(), Dropped::default());
    assert!(!mnt.join("gone").exists());
}
