//! Shared fixtures: a temporary repository with a pki.toml, the CLI, and external tools.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (tests read the default pki.toml and templates from it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A scratch repository: `pki.toml`, `templates/` (a copy of the real ones), `out/`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A fixture whose pki.toml is `spec`.
    pub fn new(spec: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pki.toml"), spec).unwrap();
        let templates = dir.path().join("templates");
        std::fs::create_dir_all(&templates).unwrap();
        for entry in std::fs::read_dir(repo_root().join("templates")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), templates.join(entry.file_name())).unwrap();
        }
        Fixture { dir }
    }

    /// A fixture with the repository's default pki.toml.
    pub fn default_spec() -> Fixture {
        Fixture::new(&std::fs::read_to_string(repo_root().join("pki.toml")).unwrap())
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn out(&self) -> PathBuf {
        self.root().join("out")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.out().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn set_spec(&self, spec: &str) {
        std::fs::write(self.root().join("pki.toml"), spec).unwrap();
    }

    pub fn spec(&self) -> String {
        std::fs::read_to_string(self.root().join("pki.toml")).unwrap()
    }

    /// `cargo xtask pki ARGS` on this fixture.
    pub fn pki(&self, args: &[&str]) -> Run {
        let root = self.root();
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("pki")
            .arg("--file")
            .arg(root.join("pki.toml"))
            .arg("--out")
            .arg(root.join("out"))
            .arg("--templates")
            .arg(root.join("templates"))
            .args(args)
            .current_dir(root)
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .expect("run xtask");
        Run::from(out)
    }

    /// Runs `pki ARGS` and asserts it exits 0.
    pub fn apply(&self, args: &[&str]) -> Run {
        let r = self.pki(args);
        assert_eq!(r.code, 0, "pki {args:?} failed:\n{}{}", r.stdout, r.stderr);
        r
    }

    /// SHA-256 (hex) of every file under out/, keyed by relative path.
    pub fn hashes(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        let out = self.out();
        for e in walk(&out) {
            let rel = e.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&e).unwrap();
            map.insert(rel, kubepki::x509::sha256_hex(&bytes));
        }
        map
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.extend(walk(&p));
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The result of one CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// An external program a test needs. Missing: under `CI=true` the test fails (CI installs
/// everything); on a developer machine it is skipped, loudly, with what to install.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = format!("`{name}` not found; install it with `apt-get install -y {package}`");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg} (CI=true: missing tools fail the run)");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// Runs a command and returns its result (never panics on a non-zero exit).
pub fn run(cmd: &mut Command) -> Run {
    Run::from(cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}")))
}

/// `openssl verify -x509_strict -purpose PURPOSE -CAfile CA CERT` exits 0.
pub fn openssl_verifies(ca: &Path, cert: &Path, purpose: &str) -> Run {
    run(Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
        .arg(ca)
        .arg(cert))
}

/// Parses the first certificate of a PEM file.
pub fn cert_facts(path: &Path) -> kubepki::x509::CertFacts {
    kubepki::x509::parse_cert(&std::fs::read(path).unwrap()).unwrap()
}
