//! `scratchcrypt generate` (hidden): the man pages and shell completions, rendered from the
//! same clap definitions that parse the command line, so they cannot drift from it.
//!
//! The Debian package (`scripts/build-deb.sh`) runs the freshly built binary to write them
//! before `cargo deb` packs them.

use std::io::Write;
use std::path::PathBuf;

use clap::{Command, CommandFactory, Subcommand};
use clap_complete::Shell;

use scratchcrypt::Error;

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Write scratchcrypt.1 and one page per command (scratchcrypt-encrypt.1, ...) into DIR.
    Man {
        /// The directory to write the pages to (created if missing).
        dir: PathBuf,
    },
    /// Print the completion script for SHELL on stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: Shell,
    },
}

pub fn run(g: Generate) -> Result<(), Error> {
    let cmd = crate::Cli::command();
    match g {
        Generate::Man { dir } => {
            let io = |source| Error::Io {
                what: "write the man pages into",
                path: dir.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(io)?;
            clap_mangen::generate_to(cmd, &dir).map_err(io)?;
        }
        Generate::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut without_hidden(&cmd), "scratchcrypt", &mut out);
            std::io::stdout()
                .write_all(&out)
                .map_err(|source| Error::Io {
                    what: "write the completion script to",
                    path: PathBuf::from("stdout"),
                    source,
                })?;
        }
    }
    Ok(())
}

/// `cmd` without its hidden subcommands (this one among them): clap_complete offers hidden
/// subcommands too, and a user's tab key has no business with a packaging command.
fn without_hidden(cmd: &Command) -> Command {
    let mut out = Command::new("scratchcrypt")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cmd.get_arguments().cloned());
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    out.subcommands(cmd.get_subcommands().filter(|c| !c.is_hide_set()).cloned())
}
