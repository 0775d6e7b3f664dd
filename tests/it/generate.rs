//! Generation from pki.toml, judged by openssl: chains, purposes, names, keys, modes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// (certificate, its CA, openssl purpose) for every certificate of the default pki.toml.
const DEFAULT_CHAINS: &[(&str, &str, &str)] = &[
    ("pki/apiserver.crt", "pki/ca.crt", "sslserver"),
    (
        "pki/apiserver-kubelet-client.crt",
        "pki/ca.crt",
        "sslclient",
    ),
    ("pki/users/admin.crt", "pki/ca.crt", "sslclient"),
    ("pki/users/super-admin.crt", "pki/ca.crt", "sslclient"),
    (
        "pki/users/controller-manager.crt",
        "pki/ca.crt",
        "sslclient",
    ),
    ("pki/users/scheduler.crt", "pki/ca.crt", "sslclient"),
    ("pki/users/kube-proxy.crt", "pki/ca.crt", "sslclient"),
    ("nodes/cp-1/kubelet-client.crt", "pki/ca.crt", "sslclient"),
    (
        "nodes/worker-1/kubelet-client.crt",
        "pki/ca.crt",
        "sslclient",
    ),
    ("nodes/worker-2/kubelet.crt", "pki/ca.crt", "sslserver"),
    (
        "pki/front-proxy-client.crt",
        "pki/front-proxy-ca.crt",
        "sslclient",
    ),
    ("pki/etcd/server.crt", "pki/etcd/ca.crt", "sslserver"),
    ("pki/etcd/server.crt", "pki/etcd/ca.crt", "sslclient"),
    ("pki/etcd/peer.crt", "pki/etcd/ca.crt", "sslserver"),
    ("pki/etcd/peer.crt", "pki/etcd/ca.crt", "sslclient"),
    (
        "pki/etcd/healthcheck-client.crt",
        "pki/etcd/ca.crt",
        "sslclient",
    ),
    (
        "pki/apiserver-etcd-client.crt",
        "pki/etcd/ca.crt",
        "sslclient",
    ),
];

const CAS: [&str; 3] = ["pki/ca.crt", "pki/front-proxy-ca.crt", "pki/etcd/ca.crt"];

#[test]
fn default_pki_verifies_with_openssl_against_its_own_ca_only() {
    let f = kubeadm_tree();
    for ca in CAS {
        let r = openssl_verifies(&f.path(ca), &f.path(ca), "any");
        assert_eq!(
            r.code,
            0,
            "{ca} is not a valid self-signed root: {}",
            r.all()
        );
    }
    for (cert, ca, purpose) in DEFAULT_CHAINS {
        let r = openssl_verifies(&f.path(ca), &f.path(cert), purpose);
        assert_eq!(r.code, 0, "{cert} under {ca} for {purpose}: {}", r.all());
        for other in CAS.iter().filter(|c| *c != ca) {
            let r = openssl_verifies(&f.path(other), &f.path(cert), purpose);
            assert_ne!(r.code, 0, "{cert} must not verify under {other}");
        }
    }
    // Purposes are enforced: a client-only certificate is not a server certificate, and back.
    let r = openssl_verifies(
        &f.path("pki/ca.crt"),
        &f.path("pki/users/admin.crt"),
        "sslserver",
    );
    assert_ne!(
        r.code, 0,
        "a client certificate passed as a server certificate"
    );
    let r = openssl_verifies(
        &f.path("pki/ca.crt"),
        &f.path("pki/apiserver.crt"),
        "sslclient",
    );
    assert_ne!(
        r.code, 0,
        "the apiserver serving certificate passed as a client certificate"
    );
}

#[test]
fn etcd_trusts_nothing_of_the_kubernetes_ca() {
    let f = kubeadm_tree();
    let etcd_ca = cert_facts(&f.path("pki/etcd/ca.crt"));
    let k8s_ca = cert_facts(&f.path("pki/ca.crt"));
    assert_ne!(etcd_ca.spki, k8s_ca.spki);
    for cert in [
        "pki/etcd/server.crt",
        "pki/etcd/peer.crt",
        "pki/etcd/healthcheck-client.crt",
        "pki/apiserver-etcd-client.crt",
    ] {
        let c = cert_facts(&f.path(cert));
        assert_eq!(c.aki, etcd_ca.ski, "{cert} is not signed by the etcd CA");
    }
}

/// `openssl verify` with a hostname or IP check.
fn verify_name(f: &Fixture, ca: &str, cert: &str, flag: &str, name: &str) -> bool {
    openssl_verify(&f.path(ca), &[&f.path(cert)], "sslserver", &[flag, name]).code == 0
}

#[test]
fn server_names_match_as_kubeadm_derives_them() {
    let f = kubeadm_tree();
    let api = ("pki/ca.crt", "pki/apiserver.crt");
    for host in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "cp-1",
    ] {
        assert!(
            verify_name(&f, api.0, api.1, "-verify_hostname", host),
            "apiserver must match {host}"
        );
    }
    for ip in ["10.96.0.1", "10.0.0.11"] {
        assert!(
            verify_name(&f, api.0, api.1, "-verify_ip", ip),
            "apiserver must match {ip}"
        );
    }
    assert!(!verify_name(
        &f,
        api.0,
        api.1,
        "-verify_hostname",
        "evil.example.com"
    ));
    assert!(!verify_name(&f, api.0, api.1, "-verify_ip", "10.0.0.12"));
    // An IP is an IP SAN, never a DNS name: matching "10.96.0.1" as a host name must fail.
    assert!(!verify_name(
        &f,
        api.0,
        api.1,
        "-verify_hostname",
        "10.96.0.1"
    ));

    let etcd = ("pki/etcd/ca.crt", "pki/etcd/server.crt");
    for host in ["cp-1", "localhost"] {
        assert!(
            verify_name(&f, etcd.0, etcd.1, "-verify_hostname", host),
            "etcd must match {host}"
        );
    }
    for ip in ["10.0.0.11", "127.0.0.1", "::1"] {
        assert!(
            verify_name(&f, etcd.0, etcd.1, "-verify_ip", ip),
            "etcd must match {ip}"
        );
    }
    assert!(!verify_name(&f, etcd.0, etcd.1, "-verify_ip", "10.0.0.21"));
}

#[test]
fn every_key_matches_its_certificate_and_modes_are_right() {
    let f = kubeadm_tree();
    let mut certs = 0;
    for (rel, _) in f.hashes() {
        let path = f.path(&rel);
        let mode = mode(&path);
        if let Some(stem) = rel.strip_suffix(".crt") {
            certs += 1;
            assert_eq!(mode, 0o644, "{rel}");
            let key = f.path(&format!("{stem}.key"));
            assert_eq!(
                pubkey_of_cert(&path),
                pubkey_of_key(&key),
                "{rel} does not match its key"
            );
        } else if rel.ends_with(".key") || rel.ends_with(".conf") {
            assert_eq!(mode, 0o600, "{rel} holds a private key and must be 0600");
        } else if rel.ends_with(".pub") {
            assert_eq!(mode, 0o644, "{rel}");
        }
    }
    assert_eq!(certs, 21, "the default pki.toml makes 3 CAs and 18 leaves");
    assert_eq!(pubkey_of_key(&f.path("pki/sa.key")), f.read("pki/sa.pub"));
    // The temporary files of atomic writes never remain.
    assert!(f.hashes().keys().all(|p| !p.contains(".tmp")));
}

#[test]
fn certificates_follow_rfc5280_profile() {
    let f = kubeadm_tree();
    let text = |p: &str| {
        run(Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(f.path(p)))
        .stdout
    };
    let ca = text("pki/ca.crt");
    assert!(
        ca.contains("X509v3 Basic Constraints: critical\n                CA:TRUE"),
        "{ca}"
    );
    assert!(ca.contains("X509v3 Key Usage: critical\n                Digital Signature, Certificate Sign, CRL Sign"), "{ca}");
    assert!(ca.contains("X509v3 Subject Key Identifier"), "{ca}");
    let leaf = text("pki/apiserver.crt");
    assert!(leaf.contains("CA:FALSE"), "{leaf}");
    assert!(
        leaf.contains("Digital Signature, Key Encipherment"),
        "{leaf}"
    );
    assert!(leaf.contains("TLS Web Server Authentication"), "{leaf}");
    assert!(leaf.contains("X509v3 Authority Key Identifier"), "{leaf}");
    let leaf = cert_facts(&f.path("pki/apiserver.crt"));
    let ca = cert_facts(&f.path("pki/ca.crt"));
    assert_eq!(leaf.aki, ca.ski);
    // Serials: positive, at least 64 bits, random (two certificates never share one).
    let serial_bytes = leaf.serial.split(':').count();
    assert!(
        serial_bytes >= 8,
        "serial {} is shorter than 64 bits",
        leaf.serial
    );
    assert_ne!(leaf.serial, ca.serial);
    // Backdated five minutes, one year of validity (kubeadm's numbers).
    let span = leaf.not_after - leaf.not_before;
    assert_eq!(
        span,
        time::Duration::hours(8760) + time::Duration::minutes(5)
    );
    let ca_span = ca.not_after - ca.not_before;
    assert_eq!(
        ca_span,
        time::Duration::hours(87600) + time::Duration::minutes(5)
    );
}

#[test]
fn several_organizations_become_several_groups() {
    let f = Fixture::new(
        r#"
[[ca]]
name = "ca"
cn = "test-ca"
o = ["ca-org-1", "ca-org-2"]
cert = "ca.crt"
key = "ca.key"

[[cert]]
name = "ops"
issuer = "ca"
cn = "jane"
o = ["system:masters", "ops", "oncall", "team:platform"]
ou = ["sre", "emea"]
usage = ["client"]
cert = "ops.crt"
key = "ops.key"
"#,
    );
    f.apply(&[]);
    let subject = run(Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(f.path("ops.crt")))
    .stdout;
    assert_eq!(
        subject.trim(),
        "subject=CN=jane,OU=emea,OU=sre,O=team:platform,O=oncall,O=ops,O=system:masters"
    );
    // The issuer name of the leaf is the CA's subject, byte for byte: openssl builds the chain.
    let r = openssl_verifies(&f.path("ca.crt"), &f.path("ops.crt"), "sslclient");
    assert_eq!(r.code, 0, "{}", r.all());
    let c = cert_facts(&f.path("ops.crt"));
    assert_eq!(
        c.subject.o,
        ["system:masters", "ops", "oncall", "team:platform"]
    );
    // A rerun sees the subject as unchanged.
    let r = f.apply(&["--check"]);
    assert!(r.stdout.contains("up to date"), "{}", r.stdout);
}

#[test]
fn every_key_algorithm_signs_and_verifies() {
    let algs = [
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
        "ecdsa-p256",
        "ecdsa-p384",
        "ed25519",
    ];
    let mut spec = String::new();
    for (i, alg) in algs.iter().enumerate() {
        // Each algorithm as a CA, signing a leaf of the next algorithm: every pairing of signer
        // and subject key type across the list.
        let leaf_alg = algs[(i + 1) % algs.len()];
        spec.push_str(&format!(
            r#"
[[ca]]
name = "ca-{alg}"
cn = "ca {alg}"
algorithm = "{alg}"
cert = "{alg}/ca.crt"
key = "{alg}/ca.key"

[[cert]]
name = "leaf-{alg}"
issuer = "ca-{alg}"
cn = "leaf"
dns = ["leaf.example"]
algorithm = "{leaf_alg}"
usage = ["server", "client"]
cert = "{alg}/leaf.crt"
key = "{alg}/leaf.key"
"#
        ));
    }
    let f = Fixture::new(&spec);
    f.apply(&[]);
    for (i, alg) in algs.iter().enumerate() {
        let ca = f.path(&format!("{alg}/ca.crt"));
        let leaf = f.path(&format!("{alg}/leaf.crt"));
        for purpose in ["sslserver", "sslclient"] {
            let r = openssl_verifies(&ca, &leaf, purpose);
            assert_eq!(r.code, 0, "{alg}: {}", r.all());
        }
        let facts = cert_facts(&leaf);
        let want = kubepki::spec::KeyAlg::parse(algs[(i + 1) % algs.len()]).unwrap();
        assert_eq!(facts.key_alg, Some(want), "{alg}/leaf.crt");
        assert_eq!(cert_facts(&ca).key_alg, kubepki::spec::KeyAlg::parse(alg));
        assert_eq!(
            pubkey_of_cert(&leaf),
            pubkey_of_key(&f.path(&format!("{alg}/leaf.key")))
        );
        // keyEncipherment only where the leaf key is RSA.
        let text = run(Command::new("openssl")
            .args(["x509", "-noout", "-ext", "keyUsage", "-in"])
            .arg(&leaf))
        .stdout;
        assert_eq!(
            text.contains("Key Encipherment"),
            want.is_rsa(),
            "{alg}: {text}"
        );
    }
}

#[test]
fn per_node_entries_expand_for_a_large_cluster() {
    let mut spec = String::from(
        r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "etcd-ca"
cn = "etcd-ca"
cert = "etcd-ca.crt"
key = "etcd-ca.key"

[[ca]]
name = "ca"
cn = "kubernetes"
cert = "ca.crt"
key = "ca.key"

[[cert]]
name = "etcd-server"
issuer = "etcd-ca"
for-each-node = "control-plane"
cn = "{node}"
dns = ["{node}", "localhost"]
ips = ["{node.ip}", "127.0.0.1"]
usage = ["server", "client"]
cert = "nodes/{node}/etcd/server.crt"
key = "nodes/{node}/etcd/server.key"

[[cert]]
name = "kubelet-client"
issuer = "ca"
for-each-node = "all"
cn = "system:node:{node}"
o = ["system:nodes"]
usage = ["client"]
cert = "nodes/{node}/kubelet-client.crt"
key = "nodes/{node}/kubelet-client.key"
"#,
    );
    for i in 1..=3 {
        spec.push_str(&format!(
            "\n[[node]]\nname = \"cp-{i}\"\nips = [\"10.1.0.{i}\"]\nrole = \"control-plane\"\n"
        ));
    }
    for i in 1..=50 {
        spec.push_str(&format!(
            "\n[[node]]\nname = \"w-{i}\"\nips = [\"10.2.0.{i}\"]\nrole = \"worker\"\n"
        ));
    }
    let f = Fixture::new(&spec);
    let r = f.apply(&[]);
    assert!(r.stdout.contains("plan: 58 create"), "{}", r.stdout);
    for i in 1..=3 {
        let c = cert_facts(&f.path(&format!("nodes/cp-{i}/etcd/server.crt")));
        assert_eq!(c.subject.cn.as_deref(), Some(format!("cp-{i}").as_str()));
        assert!(c.sans.ips.contains(&format!("10.1.0.{i}").parse().unwrap()));
        assert!(verify_name(
            &f,
            "etcd-ca.crt",
            &format!("nodes/cp-{i}/etcd/server.crt"),
            "-verify_ip",
            &format!("10.1.0.{i}")
        ));
    }
    assert!(
        !f.path("nodes/w-1/etcd/server.crt").exists(),
        "workers get no etcd certificate"
    );
    for i in [1, 25, 50] {
        let c = cert_facts(&f.path(&format!("nodes/w-{i}/kubelet-client.crt")));
        assert_eq!(
            c.subject.cn.as_deref(),
            Some(format!("system:node:w-{i}").as_str())
        );
        assert_eq!(c.subject.o, ["system:nodes"]);
    }
}

// ---------------------------------------------------------------------------------------------
// The repository's own pki.toml and templates/.

/// A certificate file in out/ and what it says of itself.
struct Generated {
    rel: String,
    facts: kubepki::x509::CertFacts,
}

/// The public key of a public key file, as openssl prints it (PEM).
fn pubkey_of_pub(path: &Path) -> String {
    let r = run(Command::new("openssl")
        .args(["pkey", "-pubin", "-pubout", "-in"])
        .arg(path));
    assert_eq!(
        r.code,
        0,
        "openssl cannot read {}: {}",
        path.display(),
        r.stderr
    );
    r.stdout
}

/// The value of the first `name: value` line of a kubeconfig, if any.
fn kubeconfig_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// What the repository ships, as the user has edited it: the only test that runs the
/// repository's pki.toml and templates/ (every other one uses tests/fixtures). It expects
/// nothing of what they declare (nodes, server URL, algorithms, paths): what it judges is read
/// from the generated files. Every certificate verifies with openssl under the root its issuer
/// chain leads to (issuers found among the generated CAs by subject and key identifier), for
/// each purpose it declares and no other, and under no other root; every certificate and public
/// key file has its private key in out/, and every private key is used; every file holding a
/// private key is readable by its owner only; every kubeconfig embeds CAs of out/ and a client
/// certificate and key of out/ that belong together and verify under those CAs.
#[test]
fn shipped_pki_toml_generates_and_passes_the_peers() {
    let f = Fixture::shipped();
    let r = f.apply(&[]);
    assert!(!r.stdout.contains("nothing written"), "{}", r.stdout);
    let rels: Vec<String> = f.hashes().into_keys().collect();
    let text = |rel: &str| String::from_utf8_lossy(&f.bytes(rel)).into_owned();

    let certs: Vec<Generated> = rels
        .iter()
        .filter(|rel| text(rel).starts_with("-----BEGIN CERTIFICATE-----"))
        .map(|rel| Generated {
            rel: rel.clone(),
            facts: cert_facts(&f.path(rel)),
        })
        .collect();
    assert!(
        !certs.is_empty(),
        "the shipped pki.toml made no certificate"
    );
    let keys: Vec<&String> = rels
        .iter()
        .filter(|rel| kubepki::x509::parse_key(&f.bytes(rel)).is_ok())
        .collect();
    let pubs: Vec<&String> = rels
        .iter()
        .filter(|rel| text(rel).starts_with("-----BEGIN PUBLIC KEY-----"))
        .collect();

    // The issuer of `c`: the one generated CA whose subject is `c`'s issuer name and whose key
    // identifier `c` names as its authority's.
    let issuer_of = |c: &Generated| -> &Generated {
        let found: Vec<&Generated> = certs
            .iter()
            .filter(|i| {
                i.facts.is_ca
                    && i.facts.subject_raw == c.facts.issuer_raw
                    && (c.facts.aki.is_none() || i.facts.ski == c.facts.aki)
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{}: issuer {} among the generated CAs",
            c.rel,
            c.facts.issuer
        );
        found[0]
    };
    let is_root = |c: &Generated| c.facts.is_ca && c.facts.subject_raw == c.facts.issuer_raw;
    let roots: Vec<&Generated> = certs.iter().filter(|c| is_root(c)).collect();
    assert!(
        !roots.is_empty(),
        "no self-signed root among the certificates"
    );

    // Certificates by chain: (root, the CAs between), each with openssl's untrusted bundle.
    let mut chains: BTreeMap<(String, Vec<String>), Vec<&Generated>> = BTreeMap::new();
    for c in &certs {
        let mut chain = vec![c];
        while !is_root(chain.last().unwrap()) {
            let next = issuer_of(chain.last().unwrap());
            assert!(chain.len() < 16, "{}: an issuer loop", c.rel);
            chain.push(next);
        }
        let root = chain.pop().unwrap().rel.clone();
        // (A root's chain is itself: nothing lies between.)
        let between = chain.get(1..).unwrap_or_default();
        let between = between.iter().map(|i| i.rel.clone()).collect();
        chains.entry((root, between)).or_default().push(c);
    }
    for (n, ((root, between), members)) in chains.iter().enumerate() {
        let untrusted = f.root().join(format!("untrusted-{n}.pem"));
        let bundle: Vec<u8> = between.iter().flat_map(|rel| f.bytes(rel)).collect();
        std::fs::write(&untrusted, bundle).unwrap();
        let mut extra = vec![];
        if !between.is_empty() {
            extra = vec!["-untrusted", untrusted.to_str().unwrap()];
        }
        // One openssl run for many certificates; it prints `PATH: OK` for each that verifies.
        let verified = |ca: &str, which: &[&&Generated], purpose: &str| -> BTreeSet<String> {
            let paths: Vec<PathBuf> = which.iter().map(|c| f.path(&c.rel)).collect();
            let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
            let r = openssl_verify(&f.path(ca), &paths, purpose, &extra);
            which
                .iter()
                .filter(|c| {
                    let ok = format!("{}: OK", f.path(&c.rel).display());
                    r.stdout.lines().any(|l| l == ok)
                })
                .map(|c| c.rel.clone())
                .collect()
        };
        // A certificate without extended key usages is checked for any purpose; one with them
        // for each purpose, which it must pass exactly when it declares it.
        let (plain, with_usages): (Vec<&&Generated>, Vec<&&Generated>) =
            members.iter().partition(|c| c.facts.usages.is_empty());
        let server_client = [
            (kubepki::spec::Usage::Server, "sslserver"),
            (kubepki::spec::Usage::Client, "sslclient"),
        ];
        let mut checks = vec![(plain.clone(), "any", plain.clone())];
        for (usage, purpose) in server_client {
            let declared: Vec<&&Generated> = with_usages
                .iter()
                .copied()
                .filter(|c| c.facts.usages.contains(&usage))
                .collect();
            checks.push((with_usages.clone(), purpose, declared));
        }
        for (which, purpose, want) in checks {
            if which.is_empty() {
                continue;
            }
            let want: BTreeSet<String> = want.iter().map(|c| c.rel.clone()).collect();
            assert_eq!(
                verified(root, &which, purpose),
                want,
                "what verifies under {root} (between: {between:?}) for {purpose}"
            );
            for other in roots.iter().filter(|o| o.rel != *root) {
                assert_eq!(
                    verified(&other.rel, &which, purpose),
                    BTreeSet::new(),
                    "what verifies under {} for {purpose}, though {root} issued it",
                    other.rel
                );
            }
        }
    }

    // Keys: every certificate and public key file has its private key, and no key is unused.
    let key_pubs: Vec<(&String, String)> = keys
        .iter()
        .map(|k| (*k, pubkey_of_key(&f.path(k))))
        .collect();
    let mut used = BTreeSet::new();
    let public: Vec<(&String, String)> = certs
        .iter()
        .map(|c| (&c.rel, pubkey_of_cert(&f.path(&c.rel))))
        .chain(pubs.iter().map(|p| (*p, pubkey_of_pub(&f.path(p)))))
        .collect();
    for (rel, public) in &public {
        let owner: Vec<&String> = key_pubs
            .iter()
            .filter(|(_, k)| k == public)
            .map(|(k, _)| *k)
            .collect();
        assert!(
            !owner.is_empty(),
            "{rel}: no private key in out/ matches it"
        );
        used.extend(owner);
    }
    for k in &keys {
        assert!(
            used.contains(k),
            "{k}: a private key of no certificate or public key"
        );
    }

    // Whatever holds a private key, as PEM or as the base64 templates embed, is the owner's only.
    let pems: Vec<String> = keys.iter().map(|k| text(k)).collect();
    for rel in &rels {
        let t = text(rel);
        if pems
            .iter()
            .any(|p| t.contains(p.trim()) || t.contains(&kubepki::render::b64(p)))
        {
            let m = mode(&f.path(rel));
            assert_eq!(m & 0o077, 0, "{rel} holds a private key but has mode {m:o}");
        }
    }

    // Kubeconfigs: embedded data decodes to files of out/ that belong together.
    let decode = |rel: &str, t: &str, field: &str| -> Option<Vec<u8>> {
        kubeconfig_field(t, field)
            .map(|v| unbase64(v).unwrap_or_else(|e| panic!("{rel}: {field} is not base64: {e}")))
    };
    let by_bytes = |bytes: &[u8]| rels.iter().find(|r| f.bytes(r) == bytes).cloned();
    for rel in &rels {
        let t = text(rel);
        if !t.lines().any(|l| l.trim() == "kind: Config") {
            continue;
        }
        for field in [
            "apiVersion",
            "clusters",
            "contexts",
            "current-context",
            "users",
        ] {
            assert!(kubeconfig_field(&t, field).is_some(), "{rel}: no {field}");
        }
        let server = kubeconfig_field(&t, "server").unwrap_or_default();
        assert!(server.starts_with("https://"), "{rel}: server {server:?}");
        let Some(ca) = decode(rel, &t, "certificate-authority-data") else {
            continue;
        };
        // The CA data is one CA certificate of out/, or a bundle of them (a CA and the CAs
        // above it), each byte for byte a certificate file.
        let bundle = String::from_utf8(ca).unwrap_or_else(|_| panic!("{rel}: CA data is not text"));
        let end = "-----END CERTIFICATE-----";
        let blocks: Vec<&str> = bundle
            .split_inclusive(end)
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .collect();
        assert!(!blocks.is_empty(), "{rel}: no certificate in its CA data");
        for block in &blocks {
            let ca = certs
                .iter()
                .find(|c| text(&c.rel).trim() == *block)
                .unwrap_or_else(|| panic!("{rel}: a CA it embeds is no certificate of out/"));
            assert!(
                ca.facts.is_ca,
                "{rel}: embeds {}, which is not a CA",
                ca.rel
            );
        }
        let ca_file = f.root().join(format!("{}.ca.pem", rel.replace('/', "_")));
        std::fs::write(&ca_file, &bundle).unwrap();
        let (Some(cert), Some(key)) = (
            decode(rel, &t, "client-certificate-data"),
            decode(rel, &t, "client-key-data"),
        ) else {
            continue;
        };
        let cert =
            by_bytes(&cert).unwrap_or_else(|| panic!("{rel}: its certificate is no file of out/"));
        let key = by_bytes(&key).unwrap_or_else(|| panic!("{rel}: its key is no file of out/"));
        assert_eq!(
            pubkey_of_cert(&f.path(&cert)),
            pubkey_of_key(&f.path(&key)),
            "{rel}: {cert} and {key} do not belong together"
        );
        // Trusted as kubectl trusts it: every certificate of the CA data is an anchor.
        let r = openssl_verify(
            &ca_file,
            &[&f.path(&cert)],
            "sslclient",
            &["-partial_chain"],
        );
        assert_eq!(r.code, 0, "{rel}: {cert} under its CA data: {}", r.all());
    }

    // And a rerun finds nothing to do.
    let r = f.apply(&["--check"]);
    assert!(r.stdout.contains("up to date"), "{}", r.stdout);
}
