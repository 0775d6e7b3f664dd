//! The repository's tasks, run as `cargo xtask <task>` (see the cargo-xtask convention): a cargo
//! alias in `.cargo/config.toml` builds and runs this binary. `pki` is the task, `deploy` places one node's files; `bench` and
//! `completions` serve them. The engine lives in the `kubepki` library so other repositories'
//! xtasks can call it too.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

mod bench;

/// mimalloc instead of the system allocator: see the README's "Performance" for the measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version = kubepki::cli::VERSION)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate, check or update the cluster PKI declared in pki.toml.
    Pki(kubepki::cli::Args),
    /// Write one node's files, decrypted, in its kubeadm layout (a folder, or a tar stream).
    Deploy(kubepki::deploy::Args),
    /// Compare generation time with openssl scripts and cfssl, side by side (ratios).
    Bench(bench::Args),
    /// Print a completion script for SHELL, for a shell alias `xtask='cargo xtask'` (see README).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Pki(args) => kubepki::cli::main(&project_root(), args),
        Cmd::Deploy(args) => kubepki::deploy::main(&project_root(), args),
        Cmd::Completions { shell } => {
            completions(shell);
            ExitCode::SUCCESS
        }
        Cmd::Bench(args) => match bench::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Writes the completion script of the whole command line to stdout. A shell completes the word
/// it is given, and `cargo xtask` is two words: the script completes `xtask`, which an alias makes
/// `cargo xtask`.
fn completions(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut Cli::command(), "xtask", &mut std::io::stdout());
}

/// The repository root: the parent of this crate's folder. Relative paths given on the command
/// line are taken from here, whatever the working directory.
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
