//! GnuTLS's `certtool --verify` as a second verifier beside openssl: every chain of the default
//! pki.toml under its own CA (and under no other), the purposes each leaf declares, and the host
//! names and addresses of the serving certificates.
//!
//! What is expected comes from pki.toml as declared (which CA signs what, with which usages and
//! SANs), cross-checked against hard-coded kubeadm facts so that a wrong reading of the spec
//! cannot make the expectations agree with a wrong PKI.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use kubepki::spec::{ItemKind, Usage};

use crate::support::*;

/// id-kp-serverAuth and id-kp-clientAuth, as `--verify-purpose` takes them.
const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

fn purpose(u: Usage) -> &'static str {
    match u {
        Usage::Server => SERVER_AUTH,
        Usage::Client => CLIENT_AUTH,
    }
}

/// A leaf as pki.toml declares it.
#[derive(Debug)]
struct Leaf {
    name: String,
    cert: String,
    ca: String,
    usages: Vec<Usage>,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

/// The roots and leaves the fixture's pki.toml declares.
fn declared(f: &Fixture) -> (Vec<String>, Vec<Leaf>) {
    let spec = kubepki::load(&f.sources()).expect("pki.toml resolves");
    let mut roots = Vec::new();
    let mut leaves = Vec::new();
    for item in &spec.items {
        let ItemKind::Cert(c) = &item.kind else {
            continue;
        };
        match (c.issuer, c.ca) {
            (None, Some(_)) => roots.push(c.cert_path.clone()),
            (Some(i), None) => leaves.push(Leaf {
                name: item.name.clone(),
                cert: c.cert_path.clone(),
                ca: spec.items[i].kind.as_cert().unwrap().cert_path.clone(),
                usages: c.usages.clone(),
                dns: c.sans.dns.clone(),
                ips: c.sans.ips.clone(),
            }),
            _ => panic!(
                "{}: the default pki.toml has no intermediate CAs",
                item.name
            ),
        }
    }
    (roots, leaves)
}

struct Certtool {
    bin: PathBuf,
}

/// One `certtool --verify` verdict.
struct Verdict {
    ok: bool,
    /// certtool's "Chain verification output" line (why it said no).
    why: String,
    all: String,
}

impl Certtool {
    fn find() -> Option<Certtool> {
        tool("certtool", "gnutls-bin").map(|bin| Certtool { bin })
    }

    /// `certtool --verify` of `cert` with `ca` as the only trusted certificate, at GnuTLS's
    /// "medium" profile (no key under 2048 RSA bits or 224 EC bits, no SHA-1), plus `extra`.
    fn verify(&self, ca: &Path, cert: &Path, extra: &[&str]) -> Verdict {
        let r = run(Command::new(&self.bin)
            .arg("--verify")
            .arg("--verify-profile=medium")
            .arg(format!("--load-ca-certificate={}", ca.display()))
            .arg(format!("--infile={}", cert.display()))
            .args(extra));
        let all = r.all();
        let why = all
            .lines()
            .find_map(|l| l.strip_prefix("Chain verification output: "))
            .unwrap_or("")
            .to_string();
        // certtool's exit code and its verdict line must agree; the line is what a person reads.
        let ok = r.code == 0;
        assert_eq!(
            ok,
            why.starts_with("Verified."),
            "certtool's exit code {} disagrees with its output:\n{all}",
            r.code
        );
        Verdict { ok, why, all }
    }
}

const NOT_TRUSTED_ISSUER: &str = "The certificate issuer is unknown";
const WRONG_PURPOSE: &str = "does not match the intended purpose";
const WRONG_NAME: &str = "The name in the certificate does not match the expected";

#[test]
fn every_default_chain_verifies_with_gnutls_under_its_own_ca_only() {
    let Some(certtool) = Certtool::find() else {
        return;
    };
    let f = kubeadm_tree();
    let (roots, leaves) = declared(&f);

    // The list is complete: every certificate in out/ is a declared root or leaf, and the default
    // makes 3 roots and 18 leaves (the same count generate.rs checks with openssl).
    assert_eq!(roots.len(), 3, "{roots:?}");
    assert_eq!(leaves.len(), 18, "{leaves:#?}");
    let declared_paths: BTreeSet<&str> = roots
        .iter()
        .map(String::as_str)
        .chain(leaves.iter().map(|l| l.cert.as_str()))
        .collect();
    let on_disk: BTreeSet<String> = f.files_ending(".crt").into_iter().collect();
    assert_eq!(
        on_disk.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        declared_paths,
        "certificates in out/ and in pki.toml differ"
    );
    // The spec is read right: kubeadm's three trust domains, by hand.
    for (cert, ca) in [
        ("pki/apiserver.crt", "pki/ca.crt"),
        ("pki/users/admin.crt", "pki/ca.crt"),
        ("nodes/worker-2/kubelet.crt", "pki/ca.crt"),
        ("pki/front-proxy-client.crt", "pki/front-proxy-ca.crt"),
        ("pki/etcd/server.crt", "pki/etcd/ca.crt"),
        ("pki/etcd/peer.crt", "pki/etcd/ca.crt"),
        ("pki/etcd/healthcheck-client.crt", "pki/etcd/ca.crt"),
        ("pki/apiserver-etcd-client.crt", "pki/etcd/ca.crt"),
    ] {
        assert!(
            leaves.iter().any(|l| l.cert == cert && l.ca == ca),
            "pki.toml should have {ca} sign {cert}: {leaves:#?}"
        );
    }

    // Each root is self-signed and trusted as itself only.
    for root in &roots {
        let v = certtool.verify(&f.path(root), &f.path(root), &[]);
        assert!(v.ok, "{root} does not verify as its own root:\n{}", v.all);
        for other in roots.iter().filter(|r| *r != root) {
            let v = certtool.verify(&f.path(other), &f.path(root), &[]);
            assert!(!v.ok, "{root} verified under {other}:\n{}", v.all);
            assert!(v.why.contains(NOT_TRUSTED_ISSUER), "{root}: {}", v.all);
        }
    }

    for leaf in &leaves {
        let cert = f.path(&leaf.cert);
        let v = certtool.verify(&f.path(&leaf.ca), &cert, &[]);
        assert!(v.ok, "{} under {}:\n{}", leaf.cert, leaf.ca, v.all);
        // Every declared purpose verifies; a purpose not declared does not.
        for u in [Usage::Server, Usage::Client] {
            let flag = format!("--verify-purpose={}", purpose(u));
            let v = certtool.verify(&f.path(&leaf.ca), &cert, &[&flag]);
            if leaf.usages.contains(&u) {
                assert!(v.ok, "{} for {}:\n{}", leaf.name, u.name(), v.all);
            } else {
                assert!(
                    !v.ok,
                    "{} ({:?}) verified for {}",
                    leaf.name,
                    leaf.usages,
                    u.name()
                );
                assert!(v.why.contains(WRONG_PURPOSE), "{}: {}", leaf.name, v.all);
            }
        }
        // Under every other root it fails, whatever the purpose.
        for other in roots.iter().filter(|r| **r != leaf.ca) {
            for &u in &leaf.usages {
                let flag = format!("--verify-purpose={}", purpose(u));
                let v = certtool.verify(&f.path(other), &cert, &[&flag]);
                assert!(!v.ok, "{} verified under {other}:\n{}", leaf.cert, v.all);
                assert!(
                    v.why.contains(NOT_TRUSTED_ISSUER),
                    "{} under {other}: {}",
                    leaf.cert,
                    v.all
                );
            }
        }
    }
}

/// `certtool --verify --verify-hostname NAME` for a serving certificate (serverAuth). GnuTLS
/// matches an address given as the host name against the IP SANs only.
fn name_verifies(certtool: &Certtool, f: &Fixture, ca: &str, cert: &str, name: &str) -> Verdict {
    let host = format!("--verify-hostname={name}");
    let purpose = format!("--verify-purpose={SERVER_AUTH}");
    certtool.verify(&f.path(ca), &f.path(cert), &[&host, &purpose])
}

fn assert_matches(certtool: &Certtool, f: &Fixture, ca: &str, cert: &str, names: &[&str]) {
    for name in names {
        let v = name_verifies(certtool, f, ca, cert, name);
        assert!(v.ok, "{cert} must match {name}:\n{}", v.all);
    }
}

fn assert_no_match(certtool: &Certtool, f: &Fixture, ca: &str, cert: &str, names: &[&str]) {
    for name in names {
        let v = name_verifies(certtool, f, ca, cert, name);
        assert!(!v.ok, "{cert} matched {name}, which it does not name");
        assert!(v.why.contains(WRONG_NAME), "{cert} for {name}: {}", v.all);
    }
}

#[test]
fn serving_certificates_match_their_names_and_addresses_with_gnutls() {
    let Some(certtool) = Certtool::find() else {
        return;
    };
    let f = kubeadm_tree();

    // kube-apiserver, with the SANs kubeadm derives (written out here, not read from pki.toml).
    let api = ("pki/ca.crt", "pki/apiserver.crt");
    assert_matches(
        &certtool,
        &f,
        api.0,
        api.1,
        &[
            "cp-1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
            "10.0.0.11",
        ],
    );
    assert_no_match(
        &certtool,
        &f,
        api.0,
        api.1,
        &[
            // Its CN is not a SAN: clients never match the CN when SANs are present.
            "kube-apiserver",
            "evil.example.com",
            "kubernetes.default.svc.cluster",
            "worker-1",
            "localhost",
            "10.96.0.2",
            "10.0.0.12",
            "10.0.0.21",
            "127.0.0.1",
            "::1",
        ],
    );

    // etcd's serving certificate on cp-1.
    let etcd = ("pki/etcd/ca.crt", "pki/etcd/server.crt");
    assert_matches(
        &certtool,
        &f,
        etcd.0,
        etcd.1,
        &["cp-1", "localhost", "10.0.0.11", "127.0.0.1", "::1"],
    );
    assert_no_match(
        &certtool,
        &f,
        etcd.0,
        etcd.1,
        &[
            "etcd-ca",
            "kubernetes",
            "worker-1",
            "cp-2",
            "10.0.0.21",
            "10.96.0.1",
            "127.0.0.2",
            "::2",
        ],
    );

    // Every serving certificate in pki.toml matches each of its SANs and none of the names of
    // the other serving certificates that it does not carry itself (one node's kubelet never
    // passes for another node).
    let (_, leaves) = declared(&f);
    let servers: Vec<&Leaf> = leaves
        .iter()
        .filter(|l| l.usages.contains(&Usage::Server))
        .collect();
    assert_eq!(
        servers.len(),
        6,
        "apiserver, three kubelets, etcd server and peer"
    );
    let all_names: BTreeSet<String> = servers
        .iter()
        .flat_map(|l| {
            l.dns
                .iter()
                .cloned()
                .chain(l.ips.iter().map(|i| i.to_string()))
        })
        .collect();
    for leaf in servers {
        let own: BTreeSet<String> = leaf
            .dns
            .iter()
            .cloned()
            .chain(leaf.ips.iter().map(|i| i.to_string()))
            .collect();
        assert!(!own.is_empty(), "{} has no SANs", leaf.name);
        let own_v: Vec<&str> = own.iter().map(String::as_str).collect();
        assert_matches(&certtool, &f, &leaf.ca, &leaf.cert, &own_v);
        let others: Vec<&str> = all_names.difference(&own).map(String::as_str).collect();
        assert!(!others.is_empty());
        assert_no_match(&certtool, &f, &leaf.ca, &leaf.cert, &others);
    }
}
