//! External CAs, chains and files that move or are left behind: what a run does when a CA's key
//! is elsewhere, when a root is added above an existing CA, when files moved, and when a node is
//! removed. Certificates are judged by openssl as they are written.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// The clock of every fixture's first run.
const T0: &str = "2026-01-01T00:00:00Z";

/// One CA, a server certificate and a client certificate under it, and a kubeconfig of the
/// client.
const ONE_CA: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "kubernetes-ca"
cn = "kubernetes"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "apiserver"
issuer = "kubernetes-ca"
cn = "kube-apiserver"
dns = ["kubernetes"]
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

[[render]]
name = "admin.conf"
template = "kubeconfig.hbs"
path = "admin.conf"
bind = { ca = "kubernetes-ca", client = "admin" }
secrets = ["client"]
vars = { cluster = "kubernetes", server = "https://10.0.0.1:6443" }
"#;

/// A fixture of `spec`, generated at `T0`.
fn generated(spec: &str) -> Fixture {
    let f = Fixture::new(spec);
    f.apply(&["--now", T0]);
    f
}

/// The plan lines of `stdout` as (action, item).
fn actions(stdout: &str) -> Vec<(String, String)> {
    plan_lines(stdout)
        .into_iter()
        .map(|(a, n, _)| (a, n))
        .collect()
}

fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter()
        .map(|(a, n)| (a.to_string(), n.to_string()))
        .collect()
}

/// `openssl verify` of `cert` against the roots in `ca_file`, with `untrusted` intermediates.
fn openssl_verify_file(ca_file: &Path, untrusted: Option<&Path>, cert: &Path) -> Run {
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-x509_strict", "-attime"])
        .arg(epoch(T0).to_string())
        .arg("-CAfile")
        .arg(ca_file);
    if let Some(u) = untrusted {
        cmd.arg("-untrusted").arg(u);
    }
    run(cmd.arg(cert))
}

/// Seconds since the epoch of an RFC 3339 time, an hour after it (certificates are valid then).
fn epoch(t: &str) -> i64 {
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 time");
    t.unix_timestamp() + 3600
}

// ---------------------------------------------------------------------------------------------
// 7. A root added above an existing CA re-signs only that CA.

#[test]
fn a_root_added_above_an_existing_ca_re_signs_only_that_ca() {
    let f = generated(ONE_CA);
    let kept = ["pki/ca.key", "pki/apiserver.crt", "pki/users/admin.crt"];
    let before: Vec<Vec<u8>> = kept.iter().map(|p| f.bytes(p)).collect();
    f.edit_spec(
        "[[ca]]\nname = \"kubernetes-ca\"\ncn = \"kubernetes\"\n",
        "[[ca]]\nname = \"root\"\ncn = \"offline-root\"\ncert = \"pki/root.crt\"\nkey = \"pki/root.key\"\n\n\
         [[ca]]\nname = \"kubernetes-ca\"\ncn = \"kubernetes\"\nissuer = \"root\"\n",
    );
    let r = f.apply(&["--now", T0]);
    assert_eq!(
        actions(&r.stdout),
        // The kubeconfig embeds the CA's certificate, which is new; nothing else changes.
        pairs(&[
            ("create", "root"),
            ("re-sign", "kubernetes-ca"),
            ("re-render", "admin.conf"),
        ]),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("issuer root is new"), "{}", r.stdout);
    let after: Vec<Vec<u8>> = kept.iter().map(|p| f.bytes(p)).collect();
    assert!(before == after, "a file below the CA was rewritten");
    // What the CA signed before still chains, through the re-signed CA, to the new root.
    for leaf in ["pki/apiserver.crt", "pki/users/admin.crt"] {
        let v = openssl_verify_file(
            &f.path("pki/root.crt"),
            Some(&f.path("pki/ca.crt")),
            &f.path(leaf),
        );
        assert_eq!(v.code, 0, "{leaf}: {}", v.all());
    }
    let r = f.pki(&["--now", T0, "--check"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

// ---------------------------------------------------------------------------------------------
// 8. The commands that move files run as printed, in the output folder the user named.

#[test]
fn the_printed_move_commands_run_as_printed_in_the_named_output_folder() {
    let f = Fixture::new(ONE_CA);
    let pki = |args: &[&str]| {
        let root = f.root();
        run(xtask()
            .arg("pki")
            .arg("--file")
            .arg(root.join("pki.toml"))
            .arg("--out")
            .arg(root.join("build/pki-out"))
            .arg("--templates")
            .arg(root.join("templates"))
            .args(args)
            .current_dir(root)
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH"))
    };
    let r = pki(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    let key = std::fs::read(f.root().join("build/pki-out/pki/apiserver.key")).unwrap();
    f.edit_spec(
        "cert = \"pki/apiserver.crt\"\nkey = \"pki/apiserver.key\"",
        "cert = \"nodes/cp-1/pki/apiserver.crt\"\nkey = \"nodes/cp-1/pki/apiserver.key\"",
    );
    let r = pki(&["--now", T0]);
    assert_eq!(r.code, 2, "{}", r.all());
    let want = "`mkdir -p build/pki-out/nodes/cp-1/pki && mv build/pki-out/pki/apiserver.crt build/pki-out/nodes/cp-1/pki/apiserver.crt && mv build/pki-out/pki/apiserver.key build/pki-out/nodes/cp-1/pki/apiserver.key`";
    assert!(r.stderr.contains(want), "{}", r.stderr);
    let command = want.trim_matches('`');
    let sh = run(Command::new("sh")
        .args(["-c", command])
        .current_dir(f.root()));
    assert_eq!(sh.code, 0, "`{command}` failed as printed: {}", sh.all());
    let r = pki(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    let moved = std::fs::read(f.root().join("build/pki-out/nodes/cp-1/pki/apiserver.key")).unwrap();
    assert!(moved == key, "the moved key was replaced");
}

// ---------------------------------------------------------------------------------------------
// 10. A removed node's certificates: orphans whose credentials stay valid.

const TWO_NODES: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[node]]
name = "w-1"
ips = ["10.0.0.21"]
role = "worker"

[[node]]
name = "w-2"
ips = ["10.0.0.22"]
role = "worker"

[[ca]]
name = "kubernetes-ca"
cn = "kubernetes"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "kubelet-client"
issuer = "kubernetes-ca"
for-each-node = "all"
cn = "system:node:{node}"
o = ["system:nodes"]
usage = ["client"]
cert = "nodes/{node}/kubelet-client.crt"
key = "nodes/{node}/kubelet-client.key"
"#;

#[test]
fn a_removed_nodes_certificates_are_orphans_that_say_they_stay_valid() {
    let f = generated(TWO_NODES);
    f.edit_spec(
        "[[node]]\nname = \"w-2\"\nips = [\"10.0.0.22\"]\nrole = \"worker\"\n",
        "",
    );
    f.apply(&["--now", T0]);
    let r = f.pki(&["--now", T0, "--check"]);
    // Orphans change nothing a run would fix: `--check` passes, and names them.
    assert_eq!(r.code, 0, "{}", r.all());
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("orphan") && l.contains("nodes/w-2/kubelet-client.crt"))
        .unwrap_or_else(|| panic!("no orphan line for the certificate:\n{}", r.stdout));
    for want in [
        "--prune deletes it",
        "stays valid until 2027-01-01T00:00:00Z",
        "Kubernetes has no revocation for client certificates",
        "`--rekey kubernetes-ca`",
        "else let it expire",
    ] {
        assert!(line.contains(want), "`{want}` missing: {line}");
    }
    // The key is an orphan too, but only a certificate is a credential that stays valid.
    let key_line = r
        .stdout
        .lines()
        .find(|l| l.contains("nodes/w-2/kubelet-client.key"))
        .expect("the key is an orphan");
    assert!(!key_line.contains("stays valid"), "{key_line}");
    assert!(
        r.stdout
            .contains("out/ is up to date; 2 orphans above: review them, `cargo xtask pki --prune` deletes them"),
        "{}",
        r.stdout
    );
    // Expired, it is just a file.
    let r = f.pki(&["--now", "2028-01-01T00:00:00Z", "--check"]);
    assert!(!r.stdout.contains("stays valid"), "{}", r.stdout);
}
