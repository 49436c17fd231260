/* The one header bindgen reads for src/format/ffi.rs. */
#include <ext2fs/ext2fs.h>
#include <et/com_err.h>
