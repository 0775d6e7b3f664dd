//! The repository's tasks, run as `cargo xtask <task>` (see the cargo-xtask convention): a cargo
//! alias in `.cargo/config.toml` builds and runs this binary. `pki` is the only task so far; the
//! engine lives in the `kubepki` library so other repositories' xtasks can call it too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate, check or update the cluster PKI declared in pki.toml.
    Pki(kubepki::cli::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Pki(args) => kubepki::cli::main(&project_root(), args),
    }
}

/// The repository root: the parent of this crate's folder. Relative paths given on the command
/// line are taken from here, whatever the working directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
