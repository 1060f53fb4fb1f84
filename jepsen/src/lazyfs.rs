//! A FUSE filesystem that forgets what was not fsynced: the harness's "crash with lost
//! unsynced writes" (the idea of Jepsen's LazyFS).
//!
//! ```text
//!   broker ── write ──▶ /dev/fuse ──▶ LazyFs: kept in memory, per file, in order
//!          ── fsync ──▶            ──▶ LazyFs: applied to the backing file + fsync
//!   harness: kill -9 the broker, then LazyFs::crash() drops every write not yet fsynced,
//!            as a power loss drops the page cache; the broker restarts on what is left.
//! ```
//!
//! File contents are what is lazy: creating, renaming, truncating... through the kernel and
//! removing files and directories reach the backing directory at once (so a crash never
//! leaves a half-renamed directory, which real file systems journal anyway). Every open
//! file is in direct-I/O mode and attributes are never cached, so the kernel's own page
//! cache cannot serve data the crash dropped. Needs root and `/dev/fuse`
//! ([`LazyFs::available`]).

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Nothing is cached by the kernel.
const TTL: Duration = Duration::ZERO;

/// A change to a file's contents not yet fsynced.
#[derive(Clone, Debug)]
enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// What a crash dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Files that had unsynced changes.
    pub files: usize,
    /// Bytes written and never fsynced.
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Inode → path relative to the backing directory (the root is "").
    paths: HashMap<u64, PathBuf>,
    /// Inode → its unsynced changes, oldest first.
    pending: HashMap<u64, Vec<Change>>,
}

/// The filesystem served to the kernel.
struct Lazy {
    backing: PathBuf,
    root_ino: u64,
    state: Arc<Mutex<State>>,
}

/// A mounted [`Lazy`] filesystem; unmounted when dropped.
pub struct LazyFs {
    session: Option<BackgroundSession>,
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
}

impl std::fmt::Debug for LazyFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyFs")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

impl LazyFs {
    /// Whether a FUSE filesystem can be mounted here (root and `/dev/fuse`): tried on a
    /// throwaway directory.
    pub fn available() -> bool {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(Self::probe)
    }

    fn probe() -> bool {
        let Ok(dir) = tempfile_dir() else {
            return false;
        };
        let (backing, mountpoint) = (dir.join("backing"), dir.join("mnt"));
        let ok = LazyFs::mount(&backing, &mountpoint)
            .and_then(|fs| {
                std::fs::write(mountpoint.join("probe"), b"x")?;
                drop(fs);
                Ok(())
            })
            .is_ok();
        let _ = std::fs::remove_dir_all(&dir);
        ok
    }

    /// Serves `backing` (created if missing) at `mountpoint` (created if missing).
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<LazyFs> {
        std::fs::create_dir_all(backing)?;
        std::fs::create_dir_all(mountpoint)?;
        let backing = backing.canonicalize()?;
        let state = Arc::new(Mutex::new(State::default()));
        let fs = Lazy {
            root_ino: std::fs::metadata(&backing)?.ino(),
            backing,
            state: state.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("paxlog-lazyfs".into()),
            MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount2(fs, mountpoint, &config)?;
        Ok(LazyFs {
            session: Some(session),
            state,
            mountpoint: mountpoint.to_owned(),
        })
    }

    /// Drops every change not yet fsynced, as a power loss would. Call it while nothing
    /// uses the files (after kill -9 of the process that wrote them).
    pub fn crash(&self) -> Dropped {
        let mut state = lock(&self.state);
        let mut dropped = Dropped::default();
        for (_, changes) in state.pending.drain() {
            dropped.files += 1;
            dropped.bytes += changes
                .iter()
                .map(|c| match c {
                    Change::Write { data, .. } => data.len() as u64,
                    Change::SetLen(_) => 0,
                })
                .sum::<u64>();
        }
        dropped
    }

    /// Bytes written and not yet fsynced.
    pub fn unsynced_bytes(&self) -> u64 {
        lock(&self.state)
            .pending
            .values()
            .flatten()
            .map(|c| match c {
                Change::Write { data, .. } => data.len() as u64,
                Change::SetLen(_) => 0,
            })
            .sum()
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        if let Some(session) = self.session.take()
            && session.umount_and_join().is_err()
        {
            // Still busy (a killed broker not gone yet): detach it; it goes when they do.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

fn tempfile_dir() -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("paxlog-lazyfs-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

/// The file's size once `changes` are applied to `size`.
fn size_after(mut size: u64, changes: &[Change]) -> u64 {
    for c in changes {
        size = match c {
            Change::Write { offset, data } => size.max(offset + data.len() as u64),
            Change::SetLen(len) => *len,
        };
    }
    size
}

fn system_time(secs: i64, nsecs: i64) -> SystemTime {
    let t = Duration::new(secs.unsigned_abs(), nsecs.clamp(0, 999_999_999) as u32);
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + t
    } else {
        SystemTime::UNIX_EPOCH - t
    }
}

impl Lazy {
    /// Backing inode → the inode the kernel sees (the backing root is FUSE's root).
    fn fuse_ino(&self, backing_ino: u64) -> u64 {
        if backing_ino == self.root_ino {
            INodeNo::ROOT.0
        } else {
            backing_ino
        }
    }

    fn path_of(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        if ino == INodeNo::ROOT {
            return Ok(self.backing.clone());
        }
        lock(&self.state)
            .paths
            .get(&ino.0)
            .map(|p| self.backing.join(p))
            .ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path_of(parent)?.join(name))
    }

    /// Attributes of the backing file at `path` (remembering its inode's path), with the
    /// size its unsynced changes give it.
    fn attr(&self, path: &Path) -> Result<FileAttr, Errno> {
        let meta = std::fs::symlink_metadata(path).map_err(errno)?;
        let ino = self.fuse_ino(meta.ino());
        let mut state = lock(&self.state);
        if ino != INodeNo::ROOT.0 {
            let relative = path.strip_prefix(&self.backing).unwrap_or(path);
            state.paths.insert(ino, relative.to_owned());
        }
        let size = state
            .pending
            .get(&ino)
            .map_or(meta.len(), |c| size_after(meta.len(), c));
        let kind = FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: system_time(meta.atime(), meta.atime_nsec()),
            mtime: system_time(meta.mtime(), meta.mtime_nsec()),
            ctime: system_time(meta.ctime(), meta.ctime_nsec()),
            crtime: system_time(meta.ctime(), meta.ctime_nsec()),
            kind,
            perm: (meta.permissions().mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Applies `ino`'s unsynced changes to its backing file and syncs it.
    fn sync(&self, ino: INodeNo) -> Result<(), Errno> {
        let path = self.path_of(ino)?;
        let changes = lock(&self.state).pending.remove(&ino.0);
        let Some(changes) = changes else {
            return Ok(());
        };
        let file = OpenOptions::new().write(true).open(&path).map_err(errno)?;
        for c in &changes {
            match c {
                Change::Write { offset, data } => file.write_all_at(data, *offset),
                Change::SetLen(len) => file.set_len(*len),
            }
            .map_err(errno)?;
        }
        file.sync_all().map_err(errno)
    }

    /// Reads `[offset, offset + size)` as the file is with its unsynced changes.
    fn read_range(&self, ino: INodeNo, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let path = self.path_of(ino)?;
        let file = File::open(&path).map_err(errno)?;
        let on_disk = file.metadata().map_err(errno)?.len();
        let changes = lock(&self.state)
            .pending
            .get(&ino.0)
            .cloned()
            .unwrap_or_default();
        let end = size_after(on_disk, &changes).min(offset + u64::from(size));
        if end <= offset {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        let from_disk = on_disk.saturating_sub(offset).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..from_disk], offset)
            .map_err(errno)?;
        let mut len = on_disk;
        for c in &changes {
            match c {
                Change::Write { offset: at, data } => {
                    let (start, stop) = (*at.max(&offset), (at + data.len() as u64).min(end));
                    if start < stop {
                        buf[(start - offset) as usize..(stop - offset) as usize]
                            .copy_from_slice(&data[(start - at) as usize..(stop - at) as usize]);
                    }
                    len = len.max(at + data.len() as u64);
                }
                Change::SetLen(new) => {
                    // Shrinking then growing again reads zeros in between.
                    if *new < len && *new < end {
                        let from = new.saturating_sub(offset) as usize;
                        buf[from..].fill(0);
                    }
                    len = *new;
                }
            }
        }
        Ok(buf)
    }

    /// Creates `name` in `parent` (creating it is not lazy), failing if it exists and
    /// `exclusive`.
    fn create_file(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        exclusive: bool,
    ) -> Result<FileAttr, Errno> {
        let path = self.child(parent, name)?;
        let file = OpenOptions::new()
            .write(true)
            .create(!exclusive)
            .create_new(exclusive)
            .truncate(false)
            .open(&path)
            .map_err(errno)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(errno)?;
        self.attr(&path)
    }

    fn forget_path(&self, path: &Path) {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            let ino = self.fuse_ino(meta.ino());
            let mut state = lock(&self.state);
            if meta.nlink() <= 1 {
                state.pending.remove(&ino);
            }
            state.paths.remove(&ino);
        }
    }
}

impl Filesystem for Lazy {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|p| self.attr(&p)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.path_of(ino).and_then(|p| self.attr(&p)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = (|| {
            let path = self.path_of(ino)?;
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(errno)?;
            }
            if let Some(size) = size {
                lock(&self.state)
                    .pending
                    .entry(ino.0)
                    .or_default()
                    .push(Change::SetLen(size));
            }
            self.attr(&path)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        match self.create_file(parent, name, mode, true) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.child(parent, name).and_then(|path| {
            std::fs::create_dir(&path).map_err(errno)?;
            self.attr(&path)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.child(parent, name).and_then(|path| {
            self.forget_path(&path);
            std::fs::remove_file(&path).map_err(errno)
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self
            .child(parent, name)
            .and_then(|path| std::fs::remove_dir(&path).map_err(errno))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            let (from, to) = (self.child(parent, name)?, self.child(newparent, newname)?);
            self.forget_path(&to);
            std::fs::rename(&from, &to).map_err(errno)?;
            // Paths under a renamed directory move with it.
            let (old, new) = (
                from.strip_prefix(&self.backing).unwrap_or(&from).to_owned(),
                to.strip_prefix(&self.backing).unwrap_or(&to).to_owned(),
            );
            let mut state = lock(&self.state);
            for path in state.paths.values_mut() {
                if let Ok(rest) = path.strip_prefix(&old) {
                    *path = new.join(rest);
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.path_of(ino) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.create_file(parent, name, mode, flags & O_EXCL != 0) {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_range(ino, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        lock(&self.state)
            .pending
            .entry(ino.0)
            .or_default()
            .push(Change::Write {
                offset,
                data: data.to_vec(),
            });
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) does not make anything durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.sync(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let result = (|| {
            let dir = self.path_of(ino)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, OsStr::new(".").to_owned()),
                (
                    INodeNo::ROOT.0,
                    FileType::Directory,
                    OsStr::new("..").to_owned(),
                ),
            ];
            let mut listed: Vec<_> = std::fs::read_dir(&dir)
                .map_err(errno)?
                .filter_map(Result::ok)
                .collect();
            listed.sort_by_key(|e| e.file_name());
            for e in listed {
                let attr = self.attr(&e.path())?;
                entries.push((attr.ino.0, attr.kind, e.file_name()));
            }
            Ok(entries)
        })();
        match result {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory changes reach the backing directory at once.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 30, 1 << 29, 1 << 29, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        const KEEP_SIZE: i32 = 1;
        if mode & !KEEP_SIZE != 0 {
            reply.error(Errno::EOPNOTSUPP);
            return;
        }
        if mode & KEEP_SIZE == 0 {
            // Growing the file is a (lazy) change like a write of zeros.
            let size = match self.path_of(ino).and_then(|p| self.attr(&p)) {
                Ok(attr) => attr.size,
                Err(e) => return reply.error(e),
            };
            if offset + length > size {
                lock(&self.state)
                    .pending
                    .entry(ino.0)
                    .or_default()
                    .push(Change::SetLen(offset + length));
            }
        }
        reply.ok();
    }
}

/// `O_EXCL` on Linux (the flag `create` gets).
const O_EXCL: i32 = 0o200;

#[cfg(test)]
mod tests;
