//! A block device that refuses to read what was never written, like an unwiped dm-integrity
//! device, built from a FUSE file and a loop device (this host kernel has no device-mapper).
//!
//! # How it works
//! - A FUSE file system ([`StrictFs`]) served by a background thread of the test process exposes
//!   one regular file, `disk`, of the device's size. Its store keeps a bitset of written blocks
//!   and the contents of written blocks that are not all zeros (so a 1 GiB device that was zeroed
//!   costs 32 KiB of bitset, not 1 GiB of memory).
//! - Every open of `disk` is answered with `FOPEN_DIRECT_IO`: the FUSE page cache is bypassed,
//!   so each read the loop device issues reaches the daemon as it is, with no FUSE readahead
//!   that would invent reads of neighbouring blocks and no cached page that would hide a read.
//! - A loop device with a 4096-byte logical block size is attached over the file. The only cache
//!   left above the daemon is the loop device's own page cache, which
//!   `echo 3 > /proc/sys/vm/drop_caches` empties.
//! - The loop device's readahead is switched off (`read_ahead_kb` = 0). With it on (128 KiB by
//!   default), a tool reading used blocks in order, like `e2fsck` in pass 2, makes the kernel
//!   read ahead into free space that nothing ever wrote: measured here, a correct sparse recipe
//!   then showed two refused 68 KiB and 128 KiB readahead requests at the end of the used
//!   blocks. Such a readahead is harmless on the real device (a failed readahead is dropped, and
//!   the block is read again only if something really needs it), the FUSE daemon cannot tell it
//!   from a real read, and which free blocks it touches depends on tool versions. With it off,
//!   every refused read is a block that the kernel or a tool actually needed. ext4's own inode
//!   table readahead is not affected (it is issued by ext4, within the used part of the table).
//! - A read that touches a block never written fails with EIO and is logged as a
//!   [`RefusedRead`] with the first unwritten block, exactly as dm-integrity answers
//!   `INTEGRITY AEAD ERROR` for a sector whose tag was never written.
//! - A write that covers part of a never-written block is refused too (dm-integrity would have
//!   to read the block to recompute its tag); with 4096-byte loop blocks it cannot happen, but
//!   it is logged if it does.
//! - `fallocate(ZERO_RANGE)` (the loop device's write-zeroes with "no unmap") marks the range
//!   as written zeros, which is what the block layer's fallback of writing zero pages does on a
//!   dm-crypt device. `PUNCH_HOLE` (discard, or write-zeroes that may unmap) answers
//!   EOPNOTSUPP, as a dm-integrity device without `allow_discards` does; the block layer then
//!   falls back to writing zero pages for write-zeroes, and discard just fails.
//!
//! [`StrictDevice`] owns all of it; dropping it detaches the loop device, unmounts the FUSE file
//! system, joins its thread and removes the temp dir, also while unwinding from a panic.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyWrite, Request, WriteFlags,
};
use scratchcrypt::loopdev::LoopDevice;

/// Name of the one file the FUSE file system exposes.
const DISK_NAME: &str = "disk";
/// Inode number of that file (1 is the root directory, `FUSE_ROOT_ID` in `fuse_kernel.h`).
const DISK_INO: u64 = 2;
/// `FALLOC_FL_PUNCH_HOLE` of `include/uapi/linux/falloc.h`.
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
/// `FALLOC_FL_ZERO_RANGE` of `include/uapi/linux/falloc.h`.
const FALLOC_FL_ZERO_RANGE: i32 = 0x10;
/// How long attributes may be cached by the kernel: the file never changes size.
const ATTR_TTL: Duration = Duration::from_secs(3600);

/// What kind of access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedKind {
    /// A read that touched a block never written.
    Read,
    /// A write covering part of a block never written (would need a read-modify-write).
    PartialWrite,
}

/// One access the device refused with EIO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedRead {
    /// The first never-written block the request touched (in device blocks).
    pub block: u64,
    /// Byte offset of the whole request.
    pub offset: u64,
    /// Byte length of the whole request.
    pub len: u64,
    /// Read, or partial write of an unwritten block.
    pub kind: RefusedKind,
}

/// The device's contents and its log.
#[derive(Debug)]
struct Store {
    block_size: u64,
    blocks: u64,
    /// One bit per block: set once the block has been written (zeros count as written).
    written: Vec<u64>,
    /// Contents of written blocks that are not all zeros.
    data: HashMap<u64, Box<[u8]>>,
    /// One block of zeros, to compare with.
    zeros: Box<[u8]>,
    refused: Vec<RefusedRead>,
    reads: u64,
    writes: u64,
}

impl Store {
    fn is_written(&self, block: u64) -> bool {
        self.written[(block / 64) as usize] & (1 << (block % 64)) != 0
    }

    fn mark_written(&mut self, block: u64) {
        self.written[(block / 64) as usize] |= 1 << (block % 64);
    }

    fn size(&self) -> u64 {
        self.blocks * self.block_size
    }

    /// Serve a read, or log it as refused and answer EIO.
    fn read(&mut self, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        self.reads += 1;
        let end = (offset + u64::from(size)).min(self.size());
        if offset >= end {
            return Ok(Vec::new());
        }
        let bs = self.block_size;
        if let Some(block) = (offset / bs..end.div_ceil(bs)).find(|&b| !self.is_written(b)) {
            self.refused.push(RefusedRead {
                block,
                offset,
                len: end - offset,
                kind: RefusedKind::Read,
            });
            return Err(Errno::EIO);
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let mut pos = offset;
        while pos < end {
            let block = pos / bs;
            let within = (pos % bs) as usize;
            let n = ((bs - pos % bs).min(end - pos)) as usize;
            if let Some(content) = self.data.get(&block) {
                let at = (pos - offset) as usize;
                out[at..at + n].copy_from_slice(&content[within..within + n]);
            }
            pos += n as u64;
        }
        Ok(out)
    }

    /// Apply a write, all or nothing; a partial write of an unwritten block is refused.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.writes += 1;
        let end = offset + data.len() as u64;
        if end > self.size() {
            return Err(Errno::ENOSPC);
        }
        let bs = self.block_size;
        let partial_unwritten = (offset / bs..end.div_ceil(bs)).find(|&b| {
            let covered = offset <= b * bs && end >= (b + 1) * bs;
            !covered && !self.is_written(b)
        });
        if let Some(block) = partial_unwritten {
            self.refused.push(RefusedRead {
                block,
                offset,
                len: data.len() as u64,
                kind: RefusedKind::PartialWrite,
            });
            return Err(Errno::EIO);
        }
        let mut pos = offset;
        while pos < end {
            let block = pos / bs;
            let within = (pos % bs) as usize;
            let n = ((bs - pos % bs).min(end - pos)) as usize;
            let src = &data[(pos - offset) as usize..(pos - offset) as usize + n];
            if n == bs as usize && src == &self.zeros[..] {
                // Slice equality is a memcmp, fast even in the unoptimised test build.
                self.data.remove(&block);
                self.mark_written(block);
                pos += n as u64;
                continue;
            }
            let mut content = self
                .data
                .remove(&block)
                .unwrap_or_else(|| vec![0u8; bs as usize].into_boxed_slice());
            content[within..within + n].copy_from_slice(src);
            if content[..] != self.zeros[..] {
                self.data.insert(block, content);
            }
            self.mark_written(block);
            pos += n as u64;
        }
        u32::try_from(data.len()).map_err(|_| Errno::EINVAL)
    }

    /// Mark whole blocks of a range as written zeros; partial blocks are written as zeros too,
    /// under the same rule as [`Store::write`].
    fn zero_range(&mut self, offset: u64, len: u64) -> Result<(), Errno> {
        let end = (offset + len).min(self.size());
        let bs = self.block_size;
        let mut pos = offset;
        while pos < end {
            let n = (bs - pos % bs).min(end - pos);
            if n == bs {
                self.data.remove(&(pos / bs));
                self.mark_written(pos / bs);
            } else {
                self.write(pos, &vec![0u8; n as usize])?;
            }
            pos += n;
        }
        Ok(())
    }
}

/// Lock the store; a panic elsewhere while holding the lock leaves it consistent (every update
/// is a few plain assignments), so a poisoned lock is simply taken over.
fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Run a request handler, turning a panic into EIO. A panic would end the daemon thread while
/// the kernel still holds the FUSE connection open: the loop device's I/O, and the test with
/// it, would then hang in uninterruptible sleep instead of failing.
fn guarded<T>(handler: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(handler)).unwrap_or(Err(Errno::EIO))
}

/// The FUSE file system: a root directory holding the file `disk`.
pub struct StrictFs {
    store: Arc<Mutex<Store>>,
    uid: u32,
    gid: u32,
}

impl StrictFs {
    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size, perm, nlink) = match ino {
            1 => (FileType::Directory, 0, 0o755, 2),
            DISK_INO => (FileType::RegularFile, lock(&self.store).size(), 0o600, 1),
            _ => return None,
        };
        let now = SystemTime::now();
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size / 512,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        })
    }
}

impl Filesystem for StrictFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.attr(DISK_INO) {
            Some(attr) if u64::from(parent) == 1 && name == DISK_NAME => {
                reply.entry(&ATTR_TTL, &attr, Generation(0))
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(u64::from(ino)) {
            Some(attr) => reply.attr(&ATTR_TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if u64::from(ino) == DISK_INO {
            // Bypass FUSE's page cache: every loop read must reach `read` below unaltered.
            reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
        } else {
            reply.error(Errno::EISDIR);
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match guarded(|| lock(&self.store).read(offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match guarded(|| lock(&self.store).write(offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The store is memory: every write is durable for the device's lifetime.
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode & FALLOC_FL_PUNCH_HOLE == 0 && mode & FALLOC_FL_ZERO_RANGE != 0 {
            match guarded(|| lock(&self.store).zero_range(offset, length)) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        } else {
            reply.error(Errno::EOPNOTSUPP);
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
        if u64::from(ino) != 1 {
            reply.error(Errno::ENOTDIR);
            return;
        }
        let entries = [
            (1, FileType::Directory, "."),
            (1, FileType::Directory, ".."),
            (DISK_INO, FileType::RegularFile, DISK_NAME),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// A loop device over a strict FUSE file. See the module docs.
pub struct StrictDevice {
    // Teardown order: loop device, then the udev lock, then the FUSE mount it sits on.
    loop_dev: Option<LoopDevice>,
    udev_lock: Option<nix::fcntl::Flock<std::fs::File>>,
    session: Option<fuser::BackgroundSession>,
    store: Arc<Mutex<Store>>,
    mountpoint: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl StrictDevice {
    /// Create a device of `size_bytes` (a multiple of `block_size`) on which no block has been
    /// written yet, with the loop device's logical block size equal to `block_size`.
    pub fn new(size_bytes: u64, block_size: u32) -> io::Result<StrictDevice> {
        let bs = u64::from(block_size);
        if bs == 0 || size_bytes == 0 || !size_bytes.is_multiple_of(bs) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("strict device size {size_bytes} is not a multiple of {block_size}"),
            ));
        }
        let blocks = size_bytes / bs;
        let store = Arc::new(Mutex::new(Store {
            block_size: bs,
            blocks,
            written: vec![0; blocks.div_ceil(64) as usize],
            data: HashMap::new(),
            zeros: vec![0; bs as usize].into_boxed_slice(),
            refused: Vec::new(),
            reads: 0,
            writes: 0,
        }));
        let dir = tempfile::Builder::new().prefix("strict-dev-").tempdir()?;
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint)?;
        let fs = StrictFs {
            store: Arc::clone(&store),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName("scratchcrypt-strict".to_string()),
            MountOption::RW,
            MountOption::NoExec,
        ];
        let mut device = StrictDevice {
            loop_dev: None,
            udev_lock: None,
            session: None,
            store,
            mountpoint,
            dir: Some(dir),
        };
        device.session = Some(fuser::spawn_mount(fs, &device.mountpoint, &config)?);
        let backing = device.mountpoint.join(DISK_NAME);
        device.loop_dev = Some(LoopDevice::attach(&backing, block_size)?);
        device.set_read_ahead_kb(0)?;
        // Where systemd-udevd (250+) runs, it probes every new or rewritten block device with
        // blkid, which reads blocks nobody wrote, at times the test cannot predict. It skips a
        // device while someone holds an exclusive BSD lock on it ("Locking Block Device Access"
        // in systemd's docs), so hold one for the device's lifetime. Blocking: if udev already
        // probes the fresh device, wait for it to finish, then forget what it read.
        let lock_file = std::fs::File::open(device.device_path())?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| io::Error::from(errno))?;
        device.udev_lock = Some(lock);
        device.reset_log();
        Ok(device)
    }

    /// The loop device node, e.g. `/dev/loop3`.
    pub fn device_path(&self) -> &Path {
        match &self.loop_dev {
            Some(dev) => dev.path(),
            None => Path::new(""),
        }
    }

    /// Set the loop device's readahead window (`/sys/block/loopN/queue/read_ahead_kb`).
    /// [`StrictDevice::new`] sets 0; see the module docs for why.
    pub fn set_read_ahead_kb(&self, kb: u32) -> io::Result<()> {
        let name = self
            .device_path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::write(
            format!("/sys/block/{name}/queue/read_ahead_kb"),
            kb.to_string(),
        )
    }

    /// The FUSE file the loop device sits on.
    pub fn backing_path(&self) -> PathBuf {
        self.mountpoint.join(DISK_NAME)
    }

    /// Block size of the device in bytes.
    pub fn block_size(&self) -> u64 {
        lock(&self.store).block_size
    }

    /// Every refused access since creation or the last [`StrictDevice::reset_log`], in order.
    pub fn refused_reads(&self) -> Vec<RefusedRead> {
        lock(&self.store).refused.clone()
    }

    /// How many blocks have been written so far.
    pub fn written_blocks(&self) -> u64 {
        lock(&self.store)
            .written
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// Whether `block` has been written.
    pub fn is_written(&self, block: u64) -> bool {
        let store = lock(&self.store);
        block < store.blocks && store.is_written(block)
    }

    /// Read and write requests the daemon has served (refused ones included).
    pub fn request_counts(&self) -> (u64, u64) {
        let store = lock(&self.store);
        (store.reads, store.writes)
    }

    /// Forget the refused accesses logged so far (the written blocks stay written).
    pub fn reset_log(&self) {
        lock(&self.store).refused.clear();
    }

    /// Detach the loop device, unmount the FUSE file system and remove the temp dir, reporting
    /// the first failure (dropping does the same but cannot report).
    pub fn close(mut self) -> io::Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> io::Result<()> {
        let mut first_err = None;
        if let Some(dev) = self.loop_dev.take() {
            let name = dev
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            if let Err(e) = dev.detach() {
                first_err.get_or_insert(e);
            }
            // The detach completes when the last opener, this lock's file, closes.
            drop(self.udev_lock.take());
            if let Some(name) = name {
                wait_loop_released(&name);
            }
        }
        if let Some(session) = self.session.take() {
            if let Err(e) = session.umount_and_join() {
                // Still busy (something holds the file): detach lazily so the temp dir can go;
                // the daemon thread ends once the last user lets go.
                let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
                first_err.get_or_insert(e);
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.close() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for StrictDevice {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("strict device: cleanup failed: {e}");
        }
    }
}

/// Wait (up to 5 s) until the kernel has let go of a detached loop device's backing file: the
/// detach completes asynchronously and the FUSE mount stays busy until it has.
fn wait_loop_released(name: &str) {
    let backing = format!("/sys/block/{name}/loop/backing_file");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&backing).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(blocks: u64) -> Store {
        Store {
            block_size: 4096,
            blocks,
            written: vec![0; blocks.div_ceil(64) as usize],
            data: HashMap::new(),
            zeros: vec![0; 4096].into_boxed_slice(),
            refused: Vec::new(),
            reads: 0,
            writes: 0,
        }
    }

    /// A partial write of a never-written block is refused and logged; of a written one, merged.
    #[test]
    fn store_partial_write_needs_a_written_block() {
        let mut s = store(4);
        assert_eq!(s.write(4096 + 512, &[7; 512]), Err(Errno::EIO));
        assert_eq!(s.refused[0].kind, RefusedKind::PartialWrite);
        assert_eq!(s.refused[0].block, 1);
        assert!(!s.is_written(1));
        s.write(4096, &[1; 4096]).unwrap();
        s.write(4096 + 512, &[7; 512]).unwrap();
        let back = s.read(4096, 4096).unwrap();
        assert_eq!(&back[..512], &[1; 512][..]);
        assert_eq!(&back[512..1024], &[7; 512][..]);
        assert_eq!(s.refused.len(), 1);
    }

    /// Zeroed blocks count as written, cost no data entry, and read back as zeros.
    #[test]
    fn store_zero_range_marks_blocks_written() {
        let mut s = store(8);
        s.write(0, &[9; 8192]).unwrap();
        s.zero_range(4096, 3 * 4096).unwrap();
        assert!((0..4).all(|b| s.is_written(b)));
        assert!(!s.is_written(4));
        assert_eq!(s.data.len(), 1, "only block 0 holds non-zero data");
        assert_eq!(s.read(4096, 3 * 4096).unwrap(), vec![0; 3 * 4096]);
        assert_eq!(s.read(3 * 4096, 8192), Err(Errno::EIO));
        assert_eq!(s.refused[0].block, 4);
    }

    /// Reads and writes past the end are clipped or refused, never panic.
    #[test]
    fn store_bounds() {
        let mut s = store(2);
        assert_eq!(s.write(4096, &[1; 8192]), Err(Errno::ENOSPC));
        s.write(0, &[1; 8192]).unwrap();
        assert_eq!(s.read(4096, 65536).unwrap().len(), 4096);
        assert!(s.read(8192, 4096).unwrap().is_empty());
    }
}
