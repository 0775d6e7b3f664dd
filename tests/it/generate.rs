//! Generation from pki.toml, judged by openssl: chains, purposes, names, keys, modes.

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
