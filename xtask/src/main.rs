//! The repository's tasks, run as `cargo xtask <task>` (see the cargo-xtask convention): a cargo
//! alias in `.cargo/config.toml` builds and runs this binary. `pki` is the only task so far; the
//! engine lives in the `kubepki` library so other repositories' xtasks can call it too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;

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
    /// Compare generation time with openssl scripts and cfssl, side by side (ratios).
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Pki(args) => kubepki::cli::main(&project_root(), args),
        Cmd::Bench(args) => match bench::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// The repository root: the parent of this crate's folder. Relative paths given on the command
/// line are taken from here, whatever the working directory.
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
