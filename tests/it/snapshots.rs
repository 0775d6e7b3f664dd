//! Snapshots of what the CLI prints: each scenario runs the real `cargo xtask pki` one or more
//! times on an inline pki.toml and compares the whole transcript (every command, its exit code,
//! its stdout and its stderr) with a `.snap` file committed under `tests/it/snapshots/`.
//!
//! Random material (serials, fingerprints, key identifiers, temporary paths, process ids) is
//! replaced by insta filters before the comparison, and every run passes a fixed `--now`, so a
//! snapshot changes only when the output really does.
//!
//! Reviewing a change of output:
//!
//! - With cargo-insta installed (`cargo install cargo-insta`): run
//!   `cargo test --test it snapshots`, then `cargo insta review` to accept or reject each new
//!   `.snap.new` file.
//! - Without it: `INSTA_UPDATE=always cargo test --test it snapshots` overwrites the `.snap`
//!   files in place; read `git diff tests/it/snapshots/` and commit what is right (or
//!   `git checkout` it).
//!
//! CI never writes snapshots: under `CI=true` insta's default (`INSTA_UPDATE` unset, that is
//! `auto`) only compares, so a missing or different snapshot fails the test. [`guard_ci`] makes
//! that explicit: under `CI=true` it fails the test if the environment or an insta config file
//! could ask insta to write snapshots (`INSTA_UPDATE` other than `auto` or `no`) or to pass
//! regardless (`INSTA_FORCE_PASS`); it and the settings live in `support::snap`. Locally, a
//! mismatch leaves a `.snap.new` file beside the snapshot; `tests/it/snapshots/.gitignore` keeps
//! it out of commits.

use std::fmt::Write as _;

use crate::support::*;

/// The clock of every first run.
const T0: &str = "2026-01-01T00:00:00Z";

/// A root, an intermediate under it, a server certificate under the intermediate and a Secret
/// rendered from the server's certificate and key: small, and deep enough for cascades.
const CHAIN: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "root-ca"
cn = "root-ca"
cert = "root.crt"
key = "root.key"

[[ca]]
name = "inter"
issuer = "root-ca"
cn = "inter"
cert = "inter.crt"
key = "inter.key"

[[cert]]
name = "server"
issuer = "inter"
cn = "server"
dns = ["api.example"]
ips = ["10.0.0.1"]
usage = ["server"]
cert = "server.crt"
key = "server.key"

[[render]]
name = "server-secret"
template = "tls-secret.yaml.hbs"
path = "server-secret.yaml"
bind = { cert = "server" }
secrets = ["cert"]
vars = { name = "server-tls", namespace = "default" }
"#;

/// One scenario's transcript: the commands run on one fixture and what each printed.
struct Transcript<'a> {
    fixture: &'a Fixture,
    text: String,
}

impl<'a> Transcript<'a> {
    fn new(fixture: &'a Fixture) -> Transcript<'a> {
        Transcript {
            fixture,
            text: String::new(),
        }
    }

    /// A line of prose that says what happens between two runs.
    fn note(&mut self, text: &str) {
        writeln!(self.text, "# {text}").unwrap();
    }

    /// Runs `cargo xtask pki ARGS`, records it, and returns its result. ARGS set `--now`: dates
    /// that follow the wall clock would change every snapshot.
    fn run(&mut self, args: &[&str]) -> Run {
        assert!(
            args.contains(&"--now"),
            "a snapshot run needs --now: {args:?}"
        );
        let r = self.fixture.pki(args);
        writeln!(self.text, "$ cargo xtask pki {}", args.join(" ")).unwrap();
        writeln!(self.text, "[exit {}]", r.code).unwrap();
        for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            if text.is_empty() {
                continue;
            }
            writeln!(self.text, "[{stream}]").unwrap();
            self.text.push_str(text);
            if !text.ends_with('\n') {
                self.text.push_str("\n[no final newline]\n");
            }
        }
        self.text.push('\n');
        r
    }

    /// Compares the transcript with `tests/it/snapshots/NAME.snap`.
    #[track_caller]
    fn assert(self, name: &str) {
        guard_ci();
        transcript_settings(self.fixture).bind(|| insta::assert_snapshot!(name, self.text));
    }
}

/// A fixture for `spec`, already generated at `T0` (silently: the scenario's transcript starts
/// after it).
fn generated(spec: &str) -> Fixture {
    let f = Fixture::new(spec);
    f.apply(&["--now", T0]);
    f
}

#[test]
fn fresh_tree() {
    let spec = format!(
        r#"{KUBEADM_ROOTS}
[vars]
cluster = "kubernetes"
server = "https://10.0.0.11:6443"

[[cert]]
name = "apiserver"
issuer = "kubernetes-ca"
cn = "kube-apiserver"
dns = ["kubernetes", "kubernetes.default.svc"]
ips = ["10.96.0.1"]
usage = ["server"]
cert = "pki/apiserver.crt"
key = "pki/apiserver.key"

[[cert]]
name = "admin"
issuer = "kubernetes-ca"
cn = "kubernetes-admin"
o = ["kubeadm:cluster-admins"]
usage = ["client"]
cert = "pki/users/admin.crt"
key = "pki/users/admin.key"

[[cert]]
name = "etcd-server"
issuer = "etcd-ca"
cn = "etcd"
dns = ["localhost"]
ips = ["127.0.0.1"]
usage = ["server", "client"]
cert = "pki/etcd/server.crt"
key = "pki/etcd/server.key"

[[keypair]]
name = "sa"
private = "pki/sa.key"
public = "pki/sa.pub"

[[render]]
name = "admin.conf"
template = "kubeconfig.hbs"
path = "admin.conf"
bind = {{ ca = "kubernetes-ca", client = "admin" }}
secrets = ["client"]
"#
    );
    let f = Fixture::new(&spec);
    let mut t = Transcript::new(&f);
    t.run(&["--check", "--now", T0]);
    t.run(&["--now", T0]);
    t.assert("fresh_tree");
}

#[test]
fn no_op_rerun() {
    let f = generated(CHAIN);
    let before = f.hashes();
    let mut t = Transcript::new(&f);
    t.run(&["--now", T0]);
    t.run(&["--check", "--now", T0]);
    assert_eq!(f.hashes(), before, "a no-op rerun wrote something");
    t.assert("no_op_rerun");
}

/// A fixture of `CHAIN`, generated, whose server then gets the DNS name new.example in pki.toml.
fn generated_then_san_added() -> Fixture {
    let f = generated(CHAIN);
    f.edit_spec(
        r#"dns = ["api.example"]"#,
        r#"dns = ["api.example", "new.example"]"#,
    );
    f
}

/// The note that opens the transcripts of `generated_then_san_added`.
const SAN_ADDED: &str = "The server gets the DNS name new.example.";

#[test]
fn san_change() {
    let f = generated_then_san_added();
    let mut t = Transcript::new(&f);
    t.note(SAN_ADDED);
    t.run(&["--check", "--now", T0]);
    t.run(&["--now", T0]);
    t.run(&["--check", "--now", T0]);
    t.assert("san_change");
}

#[test]
fn check_diff_after_san_change() {
    let f = generated_then_san_added();
    let mut t = Transcript::new(&f);
    t.note(SAN_ADDED);
    t.run(&["--check", "--diff", "--now", T0]);
    t.assert("check_diff_after_san_change");
}

#[test]
fn ca_rekey_cascade() {
    let f = generated(CHAIN);
    let mut t = Transcript::new(&f);
    t.run(&["--check", "--rekey", "root-ca", "--now", T0]);
    t.run(&["--rekey", "root-ca", "--now", T0]);
    t.run(&["--check", "--now", T0]);
    t.assert("ca_rekey_cascade");
}

#[test]
fn renewal_window() {
    // A run says on its first line whether its clock is earlier or later than the system clock:
    // dates far in the future print the same whenever the test runs.
    let f = Fixture::new(CHAIN);
    f.apply(&["--now", "2100-01-01T00:00:00Z"]);
    let mut t = Transcript::new(&f);
    t.note("Leaves last a year from 2100-01-01 and renew in their last 720h.");
    t.run(&["--check", "--now", "2100-12-01T00:00:00Z"]);
    t.run(&["--check", "--now", "2100-12-15T00:00:00Z"]);
    t.run(&["--now", "2100-12-15T00:00:00Z"]);
    t.assert("renewal_window");
}

#[test]
fn external_ca() {
    let f = generated(CHAIN);
    std::fs::remove_file(f.path("inter.key")).unwrap();
    f.edit_spec(
        r#"dns = ["api.example"]"#,
        r#"dns = ["api.example", "new.example"]"#,
    );
    f.set_spec(&format!(
        r#"{}
[[cert]]
name = "web"
issuer = "inter"
cn = "web"
dns = ["web.example"]
usage = ["server"]
cert = "web.crt"
key = "web.key"
"#,
        f.spec()
    ));
    let mut t = Transcript::new(&f);
    t.note("inter.key moves to an offline store; server gets a new SAN; a new leaf, web.");
    t.run(&["--check", "--now", T0]);
    t.run(&["--now", T0]);
    t.run(&["--check", "--now", T0]);
    assert!(f.path("server.csr").is_file() && f.path("web.csr").is_file());
    assert!(
        !f.path("inter.key").exists(),
        "the external CA's key was made"
    );
    t.assert("external_ca");
}

#[test]
fn bad_spec_with_several_errors() {
    let spec = r#"[defaults]
algorithm = "ecdsa-p265"
validity = "1 year"

[[ca]]
name = "ca"
cn = "test-ca"
cert = "ca.crt"
key = "ca.key"

[[cert]]
name = "leaf"
isuer = "ca"
cn = "leaf"
usage = ["client"]
cert = "leaf.crt"
key = "leaf.key"

[[cert]]
name = "other"
issuer = "ca2"
cn = "other"
usage = ["clinet"]
cert = "ca.crt"
key = "other.key"
"#;
    let f = Fixture::new(spec);
    let mut t = Transcript::new(&f);
    t.run(&["--check", "--now", T0]);
    t.run(&["--now", T0]);
    assert!(!f.out().exists(), "a bad pki.toml wrote out/");
    t.assert("bad_spec_with_several_errors");
}

#[test]
fn issuer_cycle() {
    let spec = r#"[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "a"
issuer = "c"
cn = "a"
cert = "a.crt"
key = "a.key"

[[ca]]
name = "b"
issuer = "a"
cn = "b"
cert = "b.crt"
key = "b.key"

[[ca]]
name = "c"
issuer = "b"
cn = "c"
cert = "c.crt"
key = "c.key"
"#;
    let f = Fixture::new(spec);
    let mut t = Transcript::new(&f);
    t.run(&["--now", T0]);
    assert!(!f.out().exists(), "an issuer cycle wrote out/");
    t.assert("issuer_cycle");
}

#[test]
fn orphan_file() {
    let f = generated(CHAIN);
    std::fs::write(
        f.path("old-client.crt"),
        "left over from an older pki.toml\n",
    )
    .unwrap();
    let mut t = Transcript::new(&f);
    t.note("out/old-client.crt is a file no item declares.");
    t.run(&["--check", "--now", T0]);
    t.run(&["--now", T0]);
    t.run(&["--prune", "--now", T0]);
    t.run(&["--check", "--now", T0]);
    assert!(
        !f.path("old-client.crt").exists(),
        "--prune kept the orphan"
    );
    t.assert("orphan_file");
}

#[test]
fn blocked_run() {
    let f = generated(CHAIN);
    std::fs::copy(f.path("inter.key"), f.path("root.key")).unwrap();
    let before = f.hashes();
    let mut t = Transcript::new(&f);
    t.note("root.key is replaced by inter.key: the root's certificate and key are no pair.");
    t.run(&["--check", "--now", T0]);
    t.run(&["--now", T0]);
    assert_eq!(f.hashes(), before, "a blocked run wrote something");
    t.assert("blocked_run");
}
