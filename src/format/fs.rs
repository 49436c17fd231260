//! A safe, owning handle over libext2fs' `ext2_filsys`.
//!
//! libext2fs keeps everything in memory until `ext2fs_close` flushes superblocks, group
//! descriptors and bitmaps, so closing can fail and that failure matters: [`Ext2Fs::close`]
//! returns it. `Drop` only frees the memory (a dropped handle means the image is abandoned).
//! Every method maps a non-zero `errcode_t` to [`Ext2Error`], whose text comes from com_err.

use std::ffi::{CStr, CString};
use std::os::raw::c_int;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use super::ffi;

/// A libext2fs error code with its com_err message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (libext2fs error {code})")]
pub struct Ext2Error {
    /// The `errcode_t` (an errno, or a code of the ext2 error table).
    pub code: i64,
    /// com_err's text for the code.
    pub message: String,
}

impl Ext2Error {
    fn from_code(code: ffi::errcode_t) -> Ext2Error {
        // SAFETY: error_message accepts any code and returns a pointer to a static or
        // thread-local NUL-terminated string (never null), which is copied before returning.
        let text = unsafe { CStr::from_ptr(ffi::error_message(code)) };
        Ext2Error {
            // errcode_t is C `long`: i64 here, i32 on 32-bit targets.
            #[allow(clippy::useless_conversion)]
            code: i64::from(code),
            message: text.to_string_lossy().into_owned(),
        }
    }

    /// The errno, when the code is one (the ext2 error table's codes are far above errno range).
    pub fn errno(&self) -> Option<i32> {
        i32::try_from(self.code)
            .ok()
            .filter(|c| *c > 0 && *c < 4096)
    }
}

fn check(code: ffi::errcode_t) -> Result<(), Ext2Error> {
    if code == 0 {
        Ok(())
    } else {
        Err(Ext2Error::from_code(code))
    }
}

/// An open filesystem. Invariant: `fs` is a valid, non-null handle returned by libext2fs and
/// owned by this value alone.
pub struct Ext2Fs {
    fs: ffi::ext2_filsys,
}

/// Locations of one block group's metadata (block numbers; 0 means "none").
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupLayout {
    /// Superblock or backup (0 when the group has none, or for group 0 which starts at 0).
    pub super_block: u64,
    /// Blocks taken by superblock, descriptors and reserved GDT blocks at the group's start.
    pub super_and_gdt_blocks: u64,
    /// Block bitmap.
    pub block_bitmap: u64,
    /// Inode bitmap.
    pub inode_bitmap: u64,
    /// First inode-table block.
    pub inode_table: u64,
}

impl Ext2Fs {
    /// `ext2fs_initialize` over the unix I/O manager: lays out a new filesystem for the
    /// existing file `path` from the parameters in `param` (nothing is written until close).
    pub fn initialize(
        path: &Path,
        flags: u32,
        param: &mut ffi::ext2_super_block,
    ) -> Result<Ext2Fs, Ext2Error> {
        let name = CString::new(path.as_os_str().as_bytes()).map_err(|_| Ext2Error {
            code: i64::from(libc::EINVAL),
            message: "path contains a NUL byte".to_string(),
        })?;
        let mut fs: ffi::ext2_filsys = ptr::null_mut();
        // SAFETY: `name` is a NUL-terminated string and `param` a valid superblock, both live
        // for the call (libext2fs copies them); unix_io_manager is an immutable static set up
        // by the library; `fs` receives the new handle.
        let code = unsafe {
            ffi::ext2fs_initialize(
                name.as_ptr(),
                flags as c_int,
                param,
                ffi::unix_io_manager,
                &mut fs,
            )
        };
        check(code)?;
        if fs.is_null() {
            return Err(Ext2Error::from_code(i64::from(libc::ENOMEM)));
        }
        Ok(Ext2Fs { fs })
    }

    /// The in-memory superblock.
    pub fn sb(&self) -> &ffi::ext2_super_block {
        // SAFETY: by the invariant `fs` is valid; libext2fs always allocates `super`, and the
        // borrow of `self` keeps the handle alive for the reference's lifetime.
        unsafe { &*(*self.fs).super_ }
    }

    /// The in-memory superblock, for changes flushed at close.
    pub fn sb_mut(&mut self) -> &mut ffi::ext2_super_block {
        // SAFETY: as in `sb`; `&mut self` makes this the only reference.
        unsafe { &mut *(*self.fs).super_ }
    }

    /// The raw handle's fields (umask, flags, group count).
    fn raw(&mut self) -> &mut ffi::struct_ext2_filsys {
        // SAFETY: by the invariant `fs` is valid and exclusively ours; `&mut self` guards it.
        unsafe { &mut *self.fs }
    }

    /// Blocks in the filesystem.
    pub fn block_count(&self) -> u64 {
        // SAFETY: `fs` is valid (invariant); the call only reads the superblock.
        unsafe { ffi::ext2fs_blocks_count((*self.fs).super_) }
    }

    /// Number of block groups.
    pub fn group_count(&mut self) -> u32 {
        self.raw().group_desc_count
    }

    /// Set the umask libext2fs applies to new directories.
    pub fn set_umask(&mut self, umask: u32) {
        self.raw().umask = umask;
    }

    /// Mark the superblock and both bitmaps dirty so that close writes them.
    pub fn mark_all_dirty(&mut self) {
        self.raw().flags |= (ffi::EXT2_FLAG_DIRTY
            | ffi::EXT2_FLAG_CHANGED
            | ffi::EXT2_FLAG_IB_DIRTY
            | ffi::EXT2_FLAG_BB_DIRTY) as c_int;
    }

    /// Recompute the metadata checksum seed from the superblock (after changing the UUID).
    pub fn init_csum_seed(&mut self) {
        // SAFETY: `fs` is valid (invariant); the call reads the superblock and sets a field.
        unsafe { ffi::ext2fs_init_csum_seed(self.fs) }
    }

    /// Place bitmaps and inode tables of every group (`ext2fs_allocate_tables`).
    pub fn allocate_tables(&mut self) -> Result<(), Ext2Error> {
        // SAFETY: `fs` is valid (invariant).
        check(unsafe { ffi::ext2fs_allocate_tables(self.fs) })
    }

    /// Create directory `name` in `parent` (`inum` 0 lets libext2fs choose; for the root
    /// directory pass parent = inum = 2 and an empty name).
    pub fn mkdir(&mut self, parent: u32, inum: u32, name: &CStr) -> Result<(), Ext2Error> {
        // A null name is how libext2fs is asked for the root directory.
        let name_ptr = if name.is_empty() {
            ptr::null()
        } else {
            name.as_ptr()
        };
        // SAFETY: `fs` is valid (invariant); `name_ptr` is null or points at the NUL-terminated
        // `name`, which outlives the call.
        check(unsafe { ffi::ext2fs_mkdir(self.fs, parent, inum, name_ptr) })
    }

    /// Inode number of `name` in directory `dir`.
    pub fn lookup(&mut self, dir: u32, name: &CStr) -> Result<u32, Ext2Error> {
        let mut ino: ffi::ext2_ino_t = 0;
        let len = c_int::try_from(name.to_bytes().len())
            .map_err(|_| Ext2Error::from_code(i64::from(libc::ENAMETOOLONG)))?;
        // SAFETY: `fs` is valid; `name` points at `len` bytes; a null buffer makes libext2fs
        // allocate its own; `ino` receives the result.
        check(unsafe {
            ffi::ext2fs_lookup(self.fs, dir, name.as_ptr(), len, ptr::null_mut(), &mut ino)
        })?;
        Ok(ino)
    }

    /// Add one block to directory `ino`.
    pub fn expand_dir(&mut self, ino: u32) -> Result<(), Ext2Error> {
        // SAFETY: `fs` is valid (invariant).
        check(unsafe { ffi::ext2fs_expand_dir(self.fs, ino) })
    }

    /// Mark inode `ino` in use in the bitmap and the counters.
    pub fn reserve_inode(&mut self, ino: u32) {
        // SAFETY: `fs` is valid (invariant); libext2fs ignores (and reports through com_err)
        // an inode number beyond the inode count, so any `ino` is memory-safe.
        unsafe { ffi::ext2fs_inode_alloc_stats2(self.fs, ino, 1, 0) }
    }

    /// Write the bad-block inode (inode 1) with an empty list, as mke2fs does.
    pub fn write_empty_badblocks_inode(&mut self) -> Result<(), Ext2Error> {
        // SAFETY: `fs` is valid; a null list means "no bad blocks".
        check(unsafe { ffi::ext2fs_update_bb_inode(self.fs, ptr::null_mut()) })
    }

    /// Create the resize inode and its reserved GDT blocks.
    pub fn create_resize_inode(&mut self) -> Result<(), Ext2Error> {
        // SAFETY: `fs` is valid (invariant).
        check(unsafe { ffi::ext2fs_create_resize_inode(self.fs) })
    }

    /// The journal size libext2fs' default policy gives this filesystem (in blocks).
    pub fn journal_params(&mut self) -> Result<ffi::ext2fs_journal_params, Ext2Error> {
        let mut params = ffi::ext2fs_journal_params::default();
        // SAFETY: `fs` is valid; `params` is a live struct the call fills.
        check(unsafe { ffi::ext2fs_get_journal_params(&mut params, self.fs) })?;
        Ok(params)
    }

    /// The journal size (in blocks) libext2fs' default policy gives a filesystem of `blocks`
    /// blocks, as mke2fs would choose it for that size.
    pub fn default_journal_blocks(blocks: u64) -> Option<u32> {
        // SAFETY: a pure function of its argument (`lib/ext2fs/mkjournal.c`).
        let n = unsafe { ffi::ext2fs_default_journal_size(blocks) };
        u32::try_from(n).ok()
    }

    /// Create the journal inode at libext2fs' default place (the middle of the filesystem)
    /// without zeroing its blocks.
    pub fn add_journal_lazy(
        &mut self,
        params: &mut ffi::ext2fs_journal_params,
    ) -> Result<(), Ext2Error> {
        let flags = (ffi::EXT2_MKJOURNAL_LAZYINIT | ffi::EXT2_MKJOURNAL_NO_MNT_CHECK) as c_int;
        // SAFETY: `fs` is valid; `params` is a live struct; goal ~0 asks for the default spot.
        check(unsafe { ffi::ext2fs_add_journal_inode3(self.fs, params, !0, flags) })
    }

    /// Clusters in use between `start` and `end` (inclusive) according to the block bitmap.
    pub fn count_used_clusters(&mut self, start: u64, end: u64) -> Result<u64, Ext2Error> {
        let mut out: ffi::blk64_t = 0;
        // SAFETY: `fs` is valid and its block bitmap loaded (a new filesystem has it in memory).
        check(unsafe { ffi::ext2fs_count_used_clusters(self.fs, start, end, &mut out) })?;
        Ok(out)
    }

    /// OR `flags` into the descriptor of `group` and refresh its checksum.
    pub fn set_group_flags(&mut self, group: u32, flags: u16) -> Result<(), Ext2Error> {
        self.check_group(group)?;
        // SAFETY: `fs` is valid (invariant) and `group` was checked against the group count.
        unsafe {
            ffi::ext2fs_bg_flags_set(self.fs, group, flags);
            ffi::ext2fs_group_desc_csum_set(self.fs, group);
        }
        Ok(())
    }

    /// Descriptor accessors index an array without bounds checks: refuse groups past the end.
    fn check_group(&mut self, group: u32) -> Result<(), Ext2Error> {
        if group < self.group_count() {
            Ok(())
        } else {
            Err(Ext2Error::from_code(ffi::errcode_t::from(libc::EINVAL)))
        }
    }

    /// Where `group` keeps its metadata.
    pub fn group_layout(&mut self, group: u32) -> Result<GroupLayout, Ext2Error> {
        self.check_group(group)?;
        let (mut sb, mut old, mut new, mut used) = (0u64, 0u64, 0u64, 0u32);
        // SAFETY: `fs` is valid; `group` was checked against the group count; the out pointers
        // are live locals.
        check(unsafe {
            ffi::ext2fs_super_and_bgd_loc2(self.fs, group, &mut sb, &mut old, &mut new, &mut used)
        })?;
        // SAFETY: as above (valid handle, group in range); these accessors only read the
        // in-memory descriptor.
        let (bb, ib, it) = unsafe {
            (
                ffi::ext2fs_block_bitmap_loc(self.fs, group),
                ffi::ext2fs_inode_bitmap_loc(self.fs, group),
                ffi::ext2fs_inode_table_loc(self.fs, group),
            )
        };
        Ok(GroupLayout {
            super_block: sb,
            super_and_gdt_blocks: u64::from(used),
            block_bitmap: bb,
            inode_bitmap: ib,
            inode_table: it,
        })
    }

    /// Every block owned by inode `ino` (data and mapping blocks), in iteration order.
    pub fn inode_blocks<F: FnMut(u64)>(&mut self, ino: u32, mut each: F) -> Result<(), Ext2Error> {
        unsafe extern "C" fn visit<G: FnMut(u64)>(
            _fs: ffi::ext2_filsys,
            blocknr: *mut ffi::blk64_t,
            _blockcnt: ffi::e2_blkcnt_t,
            _ref_blk: ffi::blk64_t,
            _ref_offset: c_int,
            private: *mut std::os::raw::c_void,
        ) -> c_int {
            // SAFETY: `private` is the `&mut F` passed below, alive for the whole iteration,
            // and `blocknr` points at the block number libext2fs is visiting.
            unsafe { (*private.cast::<G>())(*blocknr) };
            0
        }
        let private: *mut F = &mut each;
        // SAFETY: `fs` is valid; READ_ONLY means the callback never changes block numbers; a
        // null block buffer makes libext2fs allocate one; `private` stays valid during the call.
        check(unsafe {
            ffi::ext2fs_block_iterate3(
                self.fs,
                ino,
                ffi::BLOCK_FLAG_READ_ONLY as c_int,
                ptr::null_mut(),
                Some(visit::<F>),
                private.cast(),
            )
        })
    }

    /// Flush everything to the file and free the handle.
    pub fn close(self) -> Result<(), Ext2Error> {
        let mut fs = self.fs;
        std::mem::forget(self);
        // SAFETY: `fs` is valid and owned (invariant); ext2fs_close_free flushes and frees it
        // even on error and sets it to null, and `forget` above keeps Drop from freeing again.
        check(unsafe { ffi::ext2fs_close_free(&mut fs) })
    }
}

impl Drop for Ext2Fs {
    fn drop(&mut self) {
        // SAFETY: `fs` is valid and owned (invariant); ext2fs_free releases it without flushing.
        unsafe { ffi::ext2fs_free(self.fs) }
    }
}
