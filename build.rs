//! Build script: nothing yet (the libext2fs bindings arrive with the format issue).

fn main() {}
