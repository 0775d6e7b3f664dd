//! The library API as another repository uses it: `examples/embedding` is a workspace of its
//! own whose xtask embeds `kubepki::cli::Args` and calls `kubepki::cli::main`. This builds it
//! with cargo, runs `cargo xtask pki` there, and has openssl verify what it made.
//!
//! The example is built with `--locked` (its Cargo.lock is committed) and `--offline`: its
//! Cargo.lock holds a subset of this workspace's packages at the same versions (checked below),
//! so every crate it needs is already downloaded when this workspace's tests run.
//!
//! Where it builds: its binaries go to `embedding/` in this workspace's target folder, never
//! into the example's folder, and apart from this workspace's binaries (both workspaces have an
//! `xtask`). Its intermediate artifacts go to this workspace's build folder (cargo's
//! `build.build-dir`, by default the target folder; set through `CARGO_BUILD_BUILD_DIR`), so the
//! dependencies this workspace compiled at the same versions and features are reused: a first run
//! on a fresh machine builds kubepki, the example's xtask and the few dependencies whose features
//! differ between the two workspaces (handlebars and its derive macros). `cargo test` does not
//! hold that folder's lock while tests run, so this nested cargo does not wait for its parent. A
//! cargo without `build-dir` ignores it and compiles everything once more into `embedding/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// The example's folder in this repository.
fn example_dir() -> PathBuf {
    repo_root().join("examples/embedding")
}

/// The `[[package]]` entries of a Cargo.lock as name and version.
fn locked_packages(lock: &Path) -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(lock).unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
    let mut res = BTreeSet::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("name = ") {
            name = Some(value.trim_matches('"').to_string());
        } else if let Some(value) = line.strip_prefix("version = ")
            && let Some(name) = name.take()
        {
            res.insert((name, value.trim_matches('"').to_string()));
        }
    }
    res
}

/// This workspace's target folder: the binary under test is `TARGET/debug/xtask`.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xtask"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// `cargo --offline --locked ARGS` in the example's folder, building as the module comment says.
fn example_cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["--offline", "--locked"])
        .args(args)
        .current_dir(example_dir())
        .env("CARGO_TARGET_DIR", target_dir().join("embedding"))
        .env(
            "CARGO_BUILD_BUILD_DIR",
            std::env::var_os("CARGO_BUILD_BUILD_DIR").unwrap_or_else(|| target_dir().into()),
        )
        .env("NO_COLOR", "1")
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Runs `cmd`, allowing a first build of the example's dependencies.
fn run_example(what: &str, cmd: &mut Command) -> Run {
    match run_with_timeout(cmd, Duration::from_secs(600)) {
        Ok(r) => r,
        Err(r) => panic!("{what} did not finish in 600 s:\n{}", r.all()),
    }
}

#[test]
fn the_example_lock_matches_this_workspace() {
    // Same versions as here: nothing to download, and the same sources compiled.
    let ours = locked_packages(&repo_root().join("Cargo.lock"));
    let example = locked_packages(&example_dir().join("Cargo.lock"));
    let foreign: Vec<_> = example.iter().filter(|p| !ours.contains(*p)).collect();
    assert!(
        foreign.is_empty(),
        "examples/embedding/Cargo.lock has packages that Cargo.lock does not: {foreign:?}; \
         regenerate it: `cp Cargo.lock examples/embedding/ && cd examples/embedding && \
         cargo tree --offline > /dev/null`"
    );
    assert!(example.iter().any(|(name, _)| name == "kubepki"));
}

#[test]
fn the_readme_shows_the_example_as_it_is() {
    // The README's "Embedding" section quotes these files whole, each in one code block.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let (_, section) = readme
        .split_once("## Embedding in another repository's xtask\n")
        .expect("README.md has an Embedding section");
    let section = section.split("\n## ").next().unwrap();
    for (file, lang) in [
        ("xtask/Cargo.toml", "toml"),
        (".cargo/config.toml", "toml"),
        ("xtask/src/main.rs", "rust"),
    ] {
        let text = std::fs::read_to_string(example_dir().join(file)).unwrap();
        assert!(
            section.contains(&format!("```{lang}\n{text}```\n")),
            "README.md's Embedding section does not show examples/embedding/{file} as it is"
        );
    }
}

#[test]
fn another_repository_embeds_the_cli_in_its_xtask() {
    let Some(_) = tool("openssl", "openssl") else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let out_arg = out.to_str().unwrap();
    let lock_before = std::fs::read(example_dir().join("Cargo.lock")).unwrap();

    let started = Instant::now();
    let r = run_example(
        "cargo xtask pki",
        &mut example_cargo(&["xtask", "pki", "--out", out_arg]),
    );
    eprintln!(
        "examples/embedding: build and `cargo xtask pki` took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        r.code,
        0,
        "cargo xtask pki in examples/embedding (if cargo says the lock file needs to be updated, \
         regenerate examples/embedding/Cargo.lock as its README says):\n{}",
        r.all()
    );
    assert_plan(
        "examples/embedding",
        &r.stdout,
        &[
            ("create", "demo-ca", "new"),
            ("create", "server", "new"),
            ("create", "server.env", "new"),
        ],
    );

    // openssl, not our code, judges the chain, the purpose and the names.
    let v = openssl_verify(
        &out.join("ca.crt"),
        &[&out.join("server.crt")],
        "sslserver",
        &["-verify_hostname", "demo.example"],
    );
    assert_eq!(v.code, 0, "openssl verify: {}", v.all());
    assert!(v.stdout.contains("server.crt: OK"), "{}", v.stdout);
    assert_eq!(
        pubkey_of_cert(&out.join("server.crt")),
        pubkey_of_key(&out.join("server.key"))
    );
    // The example's own template, rendered with its own vars.
    let env = std::fs::read_to_string(out.join("server.env")).unwrap();
    assert!(
        env.contains("TLS_CERT_FILE=/etc/demo/server.crt\n"),
        "{env}"
    );

    // The same binary again: the engine sees its own work as up to date, and the example's own
    // task beside `pki` works.
    let r = run_example(
        "cargo xtask pki --check",
        &mut example_cargo(&["xtask", "pki", "--check", "--out", out_arg]),
    );
    assert_eq!(r.code, 0, "cargo xtask pki --check:\n{}", r.all());
    assert!(r.stdout.contains("out/ is up to date"), "{}", r.stdout);
    let r = run_example(
        "cargo xtask inventory",
        &mut example_cargo(&["xtask", "inventory", "--out", out_arg]),
    );
    assert_eq!(r.code, 0, "cargo xtask inventory:\n{}", r.all());
    assert!(r.stdout.contains("[cert server]"), "{}", r.stdout);

    // Nothing was written into the example's folder.
    assert_eq!(
        std::fs::read(example_dir().join("Cargo.lock")).unwrap(),
        lock_before
    );
    for generated in ["out", "target"] {
        assert!(
            !example_dir().join(generated).exists(),
            "examples/embedding/{generated} was made"
        );
    }
}
