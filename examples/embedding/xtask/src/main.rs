//! This repository's tasks, run as `cargo xtask <task>`: `pki` is kubepki's, `inventory` is
//! our own.

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
    /// Generate, check or update the PKI declared in pki.toml.
    Pki(kubepki::cli::Args),
    /// Print inventory.txt, the key-free summary of the PKI that reviewers read.
    Inventory {
        /// The output folder `cargo xtask pki` wrote.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let root = project_root();
    match Cli::parse().cmd {
        Cmd::Pki(args) => kubepki::cli::main(&root, args),
        Cmd::Inventory { out } => {
            let path = root.join(out).join("inventory.txt");
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!(
                        "error: {}: {e} (run `cargo xtask pki` first)",
                        path.display()
                    );
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// The repository root, the parent of this crate's folder: kubepki takes the relative paths of
/// its flags (`pki.toml`, `out`, `templates`) from here, whatever the working directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
