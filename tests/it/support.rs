//! Shared fixtures: a temporary repository with a pki.toml, the CLI, external tools, and the
//! helpers every module judges with. One topic a submodule, all re-exported here, so a test
//! module needs only `use crate::support::*;`:
//!
//! - `trees`: generated trees (the kubeadm PKI and others), made once per run and copied into
//!   each test's fixture;
//! - `skip`: skipped tests, shown in a plain `cargo test` run and counted at its end;
//! - `process`: child processes with deadlines (kill-on-drop guards, polling, bounded runs);
//! - `openssl`: openssl as a judge (verifying chains, reading public keys);
//! - `leaks`: finding private key material in anything printed;
//! - `report`: reading the plan the CLI prints;
//! - `base64`: a strict base64 decoder of the tests' own;
//! - `sops`: the real sops (offline) and age-keygen, the judges of encryption;
//! - `snap`: insta's settings and the guard that keeps CI from writing snapshots.

#![allow(dead_code)]

mod base64;
mod leaks;
mod openssl;
mod process;
mod report;
mod schema;
mod skip;
mod snap;
mod sops;
mod trees;

pub use base64::*;
pub use leaks::*;
pub use openssl::*;
pub use process::*;
pub use report::*;
pub use schema::*;
pub use skip::*;
pub use snap::*;
pub use sops::*;
pub use trees::*;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root. Tests read their own fixtures (`fixtures()`) and tests/support from it,
/// never its pki.toml or templates/: users edit those (the README tells them to), and a test
/// must not turn red because a user declared their own cluster. Only
/// `generate::shipped_pki_toml_generates_and_passes_the_peers` runs them.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// tests/fixtures: the tests' own pki.toml files and templates.
pub fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures")
}

/// tests/fixtures/kubeadm/pki.toml: the default pki.toml as it was shipped, frozen, so the tests
/// that judge kubeadm's PKI know exactly what was declared.
pub fn kubeadm_spec() -> String {
    let path = fixtures().join("kubeadm/pki.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `cargo xtask`: the binary under test, with no arguments yet.
pub fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

/// `cargo xtask SUBCOMMAND` on the repository at `root` (its pki.toml and templates/) with
/// `--out OUT`, and nothing else yet: no arguments, environment or working folder.
pub fn xtask_on(subcommand: &str, root: &Path, out: &Path) -> Command {
    let mut cmd = xtask();
    cmd.arg(subcommand)
        .arg("--file")
        .arg(root.join("pki.toml"))
        .arg("--out")
        .arg(out)
        .arg("--templates")
        .arg(root.join("templates"));
    cmd
}

/// kubeadm's three roots (the Kubernetes, front-proxy and etcd CAs at kubeadm's paths), with
/// ECDSA P-256 keys by default (fast): the start of a pki.toml.
pub const KUBEADM_ROOTS: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "kubernetes-ca"
cn = "kubernetes"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[ca]]
name = "front-proxy-ca"
cn = "front-proxy-ca"
cert = "pki/front-proxy-ca.crt"
key = "pki/front-proxy-ca.key"

[[ca]]
name = "etcd-ca"
cn = "etcd-ca"
cert = "pki/etcd/ca.crt"
key = "pki/etcd/ca.key"
"#;

/// A root, an intermediate under it, a server certificate and a per-node client under that,
/// for one worker node `n1`: the chain the plan-format and renewal tests start from.
pub const NODE_CHAIN: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[node]]
name = "n1"
ips = ["10.0.0.1"]
role = "worker"

[[ca]]
name = "root-ca"
cn = "root-ca"
cert = "root.crt"
key = "root.key"

[[ca]]
name = "inter"
issuer = "root-ca"
cn = "inter"
validity = "400d"
cert = "inter.crt"
key = "inter.key"

[[cert]]
name = "server"
issuer = "inter"
cn = "server"
dns = ["api.example"]
usage = ["server"]
validity = "300d"
cert = "server.crt"
key = "server.key"

[[cert]]
name = "client"
issuer = "inter"
for-each-node = "all"
cn = "system:node:{node}"
usage = ["client"]
cert = "nodes/{node}/client.crt"
key = "nodes/{node}/client.key"
"#;

/// A scratch repository: `pki.toml`, `templates/` (a copy of tests/fixtures/templates), `out/`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A fixture whose pki.toml is `spec`, with the tests' templates.
    pub fn new(spec: &str) -> Fixture {
        Fixture::with_templates(spec, &fixtures().join("templates"))
    }

    /// A fixture with the kubeadm pki.toml (tests/fixtures/kubeadm) and nothing generated yet.
    /// Most tests want `kubeadm_tree()`, which is generated already.
    pub fn kubeadm() -> Fixture {
        Fixture::new(&kubeadm_spec())
    }

    /// A fixture with the repository's own pki.toml and templates/, as the user left them: for
    /// the one test that judges them, by what they generate and never by what they should hold.
    pub fn shipped() -> Fixture {
        let root = repo_root();
        let spec = std::fs::read_to_string(root.join("pki.toml")).expect("read pki.toml");
        Fixture::with_templates(&spec, &root.join("templates"))
    }

    fn with_templates(spec: &str, from: &Path) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pki.toml"), spec).unwrap();
        let templates = dir.path().join("templates");
        std::fs::create_dir_all(&templates).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), templates.join(entry.file_name())).unwrap();
        }
        Fixture { dir }
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

    /// The bytes of out/`rel`.
    pub fn bytes(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn set_spec(&self, spec: &str) {
        std::fs::write(self.root().join("pki.toml"), spec).unwrap();
    }

    pub fn spec(&self) -> String {
        std::fs::read_to_string(self.root().join("pki.toml")).unwrap()
    }

    /// Replaces the one occurrence of `from` in pki.toml.
    pub fn edit_spec(&self, from: &str, to: &str) {
        self.set_spec(&replace_once(&self.spec(), from, to));
    }

    /// pki.toml and the templates, read as the tool reads them.
    pub fn sources(&self) -> kubepki::scan::Sources {
        kubepki::scan::read_sources(
            &self.root().join("pki.toml"),
            &self.root().join("templates"),
        )
        .expect("read pki.toml")
    }

    /// `cargo xtask pki ARGS` on this fixture, not yet run: no colour, and no
    /// SOURCE_DATE_EPOCH from the environment (a caller may set one).
    pub fn command(&self, args: &[&str]) -> Command {
        let root = self.root();
        let mut cmd = xtask_on("pki", root, &root.join("out"));
        cmd.args(args)
            .current_dir(root)
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    /// `cargo xtask pki ARGS` on this fixture.
    pub fn pki(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run xtask"))
    }

    /// Runs `pki ARGS` and asserts it exits 0.
    pub fn apply(&self, args: &[&str]) -> Run {
        let r = self.pki(args);
        assert_eq!(r.code, 0, "pki {args:?} failed:\n{}{}", r.stdout, r.stderr);
        r
    }

    /// SHA-256 (hex) of every regular file under out/, keyed by relative path.
    pub fn hashes(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        let out = self.out();
        for e in files_under(&out) {
            if !std::fs::symlink_metadata(&e).unwrap().is_file() {
                continue;
            }
            let rel = e.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&e).unwrap();
            map.insert(rel, kubepki::x509::sha256_hex(&bytes));
        }
        map
    }

    /// The relative paths of the regular files under out/ whose names end in `suffix`, sorted.
    pub fn files_ending(&self, suffix: &str) -> Vec<String> {
        self.hashes()
            .into_keys()
            .filter(|p| p.ends_with(suffix))
            .collect()
    }

    /// The text of every file under out/ that is a private key, wherever it lies.
    pub fn private_keys(&self) -> BTreeSet<String> {
        files_under(&self.out())
            .into_iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter(|text| kubepki::x509::parse_key(text.as_bytes()).is_ok())
            .collect()
    }
}

/// Every entry under `dir` that is not a folder, recursively, sorted. Links are listed, never
/// followed.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Paths whose hash differs between two `Fixture::hashes()`, or that are in only one.
pub fn changed_files(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .cloned()
        .collect()
}

/// The permission bits of `path` itself (a link is not followed), set-id and sticky bits
/// included.
pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `text` with the one occurrence of `from` (it must occur exactly once) replaced by `to`.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` must occur once");
    text.replacen(from, to, 1)
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
/// everything); on a developer machine the test is skipped (`skip`: a `SKIPPED:` line in the
/// plain `cargo test` output, and again in a summary at its end), with what to install.
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
        skip(&msg);
    }
    found
}

/// `inner` run on a pseudo-terminal (util-linux `script`, found at `script`) in `dir`, with
/// `NO_COLOR` and `SOURCE_DATE_EPOCH` removed and then `env` set: everything the terminal
/// received, stdout and stderr together, as one `stdout`.
pub fn on_pty(script: &Path, inner: &Command, dir: &Path, env: &[(&str, &str)]) -> Run {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_str().unwrap().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(quote)
        .collect();
    let mut cmd = Command::new(script);
    cmd.args(["-qec", &line.join(" "), "/dev/null"])
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// Runs a command and returns its result (never panics on a non-zero exit).
pub fn run(cmd: &mut Command) -> Run {
    Run::from(cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}")))
}

/// Parses the first certificate of a PEM file.
pub fn cert_facts(path: &Path) -> kubepki::x509::CertFacts {
    kubepki::x509::parse_cert(&std::fs::read(path).unwrap()).unwrap()
}

/// Parses a private key file.
pub fn key_facts(path: &Path) -> kubepki::x509::KeyFacts {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    kubepki::x509::parse_key(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
