//! Build script: generates Rust bindings for the part of e2fsprogs' libext2fs that
//! `src/format/` uses, and links libext2fs.
//!
//! Why static: the tool is meant to run in a minimal initramfs where `libext2fs.so.2` may be
//! missing. Debian's `libext2fs-dev` ships `libext2fs.a` and `libcom_err.a` (position-independent
//! code, so they link into a PIE), hence libext2fs and its error-table library are linked
//! statically; only libc stays dynamic. Set `SCRATCHCRYPT_EXT2FS_DYNAMIC=1` to link the shared
//! libraries instead (for distributions without the archives).

use std::env;
use std::path::{Path, PathBuf};

/// Directories where distributions put `libext2fs.a`.
const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/format/ext2fs_wrapper.h");
    println!("cargo:rerun-if-env-changed=SCRATCHCRYPT_EXT2FS_DYNAMIC");

    let dynamic = env::var_os("SCRATCHCRYPT_EXT2FS_DYNAMIC").is_some_and(|v| v == "1");
    let static_dir = LIB_DIRS
        .iter()
        .map(Path::new)
        .find(|d| d.join("libext2fs.a").exists() && d.join("libcom_err.a").exists());
    match (dynamic, static_dir) {
        (false, Some(dir)) => {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static=ext2fs");
            println!("cargo:rustc-link-lib=static=com_err");
        }
        _ => {
            println!("cargo:rustc-link-lib=ext2fs");
            println!("cargo:rustc-link-lib=com_err");
        }
    }

    let bindings = bindgen::Builder::default()
        .header("src/format/ext2fs_wrapper.h")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        // Functions called from src/format/fs.rs.
        .allowlist_function("ext2fs_initialize")
        .allowlist_function("ext2fs_close_free")
        .allowlist_function("ext2fs_free")
        .allowlist_function("ext2fs_allocate_tables")
        .allowlist_function("ext2fs_mkdir")
        .allowlist_function("ext2fs_lookup")
        .allowlist_function("ext2fs_expand_dir")
        .allowlist_function("ext2fs_inode_alloc_stats2")
        .allowlist_function("ext2fs_update_bb_inode")
        .allowlist_function("ext2fs_create_resize_inode")
        .allowlist_function("ext2fs_get_journal_params")
        .allowlist_function("ext2fs_default_journal_size")
        .allowlist_function("ext2fs_add_journal_inode3")
        .allowlist_function("ext2fs_init_csum_seed")
        .allowlist_function("ext2fs_group_desc_csum_set")
        .allowlist_function("ext2fs_bg_flags_set")
        .allowlist_function("ext2fs_block_bitmap_loc")
        .allowlist_function("ext2fs_inode_bitmap_loc")
        .allowlist_function("ext2fs_inode_table_loc")
        .allowlist_function("ext2fs_super_and_bgd_loc2")
        .allowlist_function("ext2fs_block_iterate3")
        .allowlist_function("ext2fs_count_used_clusters")
        .allowlist_function("ext2fs_blocks_count")
        .allowlist_function("ext2fs_r_blocks_count_set")
        .allowlist_function("ext2fs_blocks_count_set")
        .allowlist_function("error_message")
        .allowlist_var("unix_io_manager")
        // Constants of ext2_fs.h / ext2fs.h used to configure the superblock.
        .allowlist_var("EXT2_FLAG_.*")
        .allowlist_var("EXT2_MKJOURNAL_.*")
        .allowlist_var("EXT2_BG_.*")
        .allowlist_var("EXT2_ROOT_INO")
        .allowlist_var("EXT2_BAD_INO")
        .allowlist_var("EXT2_JOURNAL_INO")
        .allowlist_var("EXT2_GOOD_OLD_FIRST_INO")
        .allowlist_var("EXT2_FEATURE_.*")
        .allowlist_var("EXT3_FEATURE_.*")
        .allowlist_var("EXT4_FEATURE_.*")
        .allowlist_var("EXT2_DEFM_.*")
        .allowlist_var("EXT2_FLAGS_.*")
        .allowlist_var("EXT2_HASH_.*")
        .allowlist_var("EXT2_CRC32C_CHKSUM")
        .allowlist_var("EXT2_MIN_DESC_SIZE_64BIT")
        .allowlist_var("BLOCK_FLAG_READ_ONLY")
        .allowlist_var("EXT2_DYNAMIC_REV")
        .allowlist_type("ext2_super_block")
        .derive_default(true)
        .generate()
        .unwrap_or_else(|e| {
            panic!("bindgen over <ext2fs/ext2fs.h> failed (is libext2fs-dev installed?): {e}")
        });

    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| panic!("cargo sets OUT_DIR")));
    bindings
        .write_to_file(out.join("ext2fs_bindings.rs"))
        .unwrap_or_else(|e| panic!("write the libext2fs bindings: {e}"));
}
