//! The `scratchcrypt` command-line tool: a thin face over the library.

fn main() {
    eprintln!("scratchcrypt: the command-line interface is not implemented yet");
    std::process::exit(5);
}
