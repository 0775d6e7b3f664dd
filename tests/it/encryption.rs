//! `[encryption]`: every private key in out/, and every rendered file that holds one, written as
//! a SOPS file encrypted to age recipients, judged by the real `sops` (3.x) with identities made
//! by `age-keygen` at test time. `--check` needs no identity and plans the same as with one; a
//! run that must use a key it cannot open writes nothing and says which identity is missing.
//! sops runs with `--disable-version-check` inside `unshare -n` where the machine allows it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// An age identity made by `age-keygen`: its file and its recipient (`age1...`).
struct Age {
    key_file: PathBuf,
    recipient: String,
}

fn age_identity(keygen: &Path, dir: &Path, name: &str) -> Age {
    let (key_file, recipient) = age_keygen(keygen, dir, name);
    Age {
        key_file,
        recipient,
    }
}

/// What `sops decrypt` prints of out/`rel` (a YAML file without a YAML extension is named as
/// YAML, as the README says for `admin.conf`).
fn sops_decrypt(sops_bin: &Path, f: &Fixture, key: &Path, rel: &str, yaml: bool) -> String {
    let path = f.path(rel);
    let path = path.to_str().unwrap();
    let args: Vec<&str> = if yaml {
        vec![
            "decrypt",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            path,
        ]
    } else {
        vec!["decrypt", path]
    };
    let r = run_sops(sops_bin, f.root(), key, &args);
    assert_eq!(r.code, 0, "sops decrypt {rel}: {}", r.stderr);
    r.stdout
}

const SPEC: &str = r#"
RECIPIENTS

[defaults]
algorithm = "ecdsa-p256"

[vars]
cluster = "kubernetes"
server = "https://10.0.0.11:6443"

[[ca]]
name = "kubernetes-ca"
cn = "kubernetes-ca"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "apiserver"
issuer = "kubernetes-ca"
cn = "kube-apiserver"
dns = ["kubernetes", "kubernetes.default"]
ips = ["10.0.0.11"]
usage = ["server"]
cert = "pki/apiserver.crt"
key = "pki/apiserver.key"

[[cert]]
name = "admin"
issuer = "kubernetes-ca"
cn = "kubernetes-admin"
o = ["kubeadm:cluster-admins"]
usage = ["client"]
cert = "pki/admin.crt"
key = "pki/admin.key"

[[keypair]]
name = "sa"
private = "pki/sa.key"
public = "pki/sa.pub"

[[render]]
name = "admin.conf"
template = "kubeconfig.hbs"
path = "admin.conf"
bind = { ca = "kubernetes-ca", client = "admin" }
secrets = ["client"]

[[render]]
name = "apiserver-tls-secret"
template = "tls-secret.yaml.hbs"
path = "gitops/apiserver-tls-secret.yaml"
bind = { cert = "apiserver" }
secrets = ["cert"]
vars = { name = "apiserver-tls", namespace = "kube-system" }
"#;

fn spec_for(recipients: &[&Age]) -> String {
    let table = if recipients.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = recipients
            .iter()
            .map(|a| format!("\"{}\"", a.recipient))
            .collect();
        format!("[encryption]\nage-recipients = [{}]\n", list.join(", "))
    };
    SPEC.replace("RECIPIENTS", &table)
}

/// `pki ARGS` with `identity` as the only age identity, or with none at all.
fn pki(f: &Fixture, args: &[&str], identity: Option<&Age>) -> Run {
    let mut cmd = f.command(args);
    cmd.env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE");
    if let Some(age) = identity {
        cmd.env("SOPS_AGE_KEY_FILE", &age.key_file);
    }
    Run::from(cmd.output().expect("run xtask"))
}

const KEYS: [&str; 4] = [
    "pki/ca.key",
    "pki/apiserver.key",
    "pki/admin.key",
    "pki/sa.key",
];

/// Every key of the fixture, decrypted by the real sops with `identity`: path -> PEM.
fn decrypted_keys(sops_bin: &Path, f: &Fixture, identity: &Age) -> BTreeMap<String, String> {
    KEYS.iter()
        .map(|rel| {
            let pem = sops_decrypt(sops_bin, f, &identity.key_file, rel, false);
            (rel.to_string(), pem)
        })
        .collect()
}

/// Asserts no file under out/ holds a private key in any form: every key file and key-holding
/// render is a SOPS file.
fn assert_out_holds_no_key(f: &Fixture, keys: &BTreeSet<String>) {
    for path in files_under(&f.out()) {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert_no_key_material(&path.display().to_string(), &text, keys);
    }
    for rel in KEYS
        .iter()
        .chain(&["admin.conf", "gitops/apiserver-tls-secret.yaml"])
    {
        assert!(
            kubepki::sops::recipients_of(&f.read(rel)).is_ok(),
            "{rel} is not a SOPS file:\n{}",
            f.read(rel)
        );
    }
}

/// The public key (SPKI DER) of a PEM private key.
fn spki_of_key(pem: &str) -> Vec<u8> {
    kubepki::x509::parse_key(pem.as_bytes())
        .unwrap_or_else(|e| panic!("a decrypted key: {e}"))
        .spki
}

/// Every decrypted key matches its certificate (or the key pair's public key).
fn assert_keys_match(f: &Fixture, keys: &BTreeMap<String, String>) {
    for (rel, pem) in keys {
        let public = if rel == "pki/sa.key" {
            kubepki::x509::parse_public_key(&f.bytes("pki/sa.pub")).unwrap()
        } else {
            cert_facts(&f.path(&rel.replace(".key", ".crt"))).spki
        };
        assert_eq!(
            spki_of_key(pem),
            public,
            "{rel} does not match its public half"
        );
    }
}

/// The value of `key:` in a YAML text, on its own line.
fn yaml_value(text: &str, key: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{text}"));
    line.split_once(':').unwrap().1.trim().to_string()
}

fn unb64_text(b64: &str) -> String {
    String::from_utf8(unbase64(b64).unwrap()).unwrap()
}

#[test]
fn keys_are_encrypted_at_rest_and_check_needs_no_identity() {
    let Some((sops_bin, keygen)) = sops_tools() else {
        return;
    };
    let ids = tempfile::tempdir().unwrap();
    let a = age_identity(&keygen, ids.path(), "a");
    let f = Fixture::new(&spec_for(&[&a]));
    // A fresh tree needs no identity: new keys are encrypted in memory, never decrypted.
    let first = pki(&f, &[], None);
    assert_eq!(first.code, 0, "{}", first.all());
    let keys = decrypted_keys(&sops_bin, &f, &a);
    let pems: BTreeSet<String> = keys.values().cloned().collect();
    assert_keys_match(&f, &keys);
    assert_out_holds_no_key(&f, &pems);
    let mut printed = vec![first];

    // The kubeconfig: only `client-key-data` is encrypted; sops gives back the key.
    let conf = f.read("admin.conf");
    assert!(conf.contains("server: https://10.0.0.11:6443"), "{conf}");
    assert!(conf.contains("client-certificate-data: LS0t"), "{conf}");
    let conf = sops_decrypt(&sops_bin, &f, &a.key_file, "admin.conf", true);
    let key = unb64_text(&yaml_value(&conf, "client-key-data"));
    assert_eq!(key, keys["pki/admin.key"]);

    // The Secret: readable apiVersion, kind and metadata; decrypted, a kubernetes.io/tls Secret.
    let secret = f.read("gitops/apiserver-tls-secret.yaml");
    assert!(secret.contains("kind: Secret") && secret.contains("name: apiserver-tls"));
    assert!(
        secret.contains("encrypted_regex: ^(data|stringData)$"),
        "{secret}"
    );
    let secret = sops_decrypt(
        &sops_bin,
        &f,
        &a.key_file,
        "gitops/apiserver-tls-secret.yaml",
        false,
    );
    assert_eq!(yaml_value(&secret, "type"), "kubernetes.io/tls");
    let tls_key = unb64_text(&yaml_value(&secret, "tls.key"));
    let tls_crt = unbase64(&yaml_value(&secret, "tls.crt")).unwrap();
    let crt = kubepki::x509::parse_cert(&tls_crt).unwrap();
    assert_eq!(spki_of_key(&tls_key), crt.spki);

    // A rerun writes nothing, with or without an identity.
    let before = f.hashes();
    for identity in [None, Some(&a)] {
        let again = pki(&f, &[], identity);
        assert_eq!(again.code, 0, "{}", again.all());
        assert_eq!(
            f.hashes(),
            before,
            "a rerun rewrote files:\n{}",
            again.stdout
        );
        printed.push(again);
    }

    // --check: no identity needed, the same plan either way.
    let check = pki(&f, &["--check"], None);
    assert_eq!(check.code, 0, "{}", check.all());
    assert_eq!(check.stdout, pki(&f, &["--check"], Some(&a)).stdout);
    printed.push(check);

    // A SAN change: --check says so without an identity, the same as with one.
    f.edit_spec(
        r#""kubernetes.default"]"#,
        r#""kubernetes.default", "api.example"]"#,
    );
    let stale = pki(&f, &["--check", "--diff"], None);
    assert_eq!(stale.code, 1, "{}", stale.all());
    assert!(stale.stdout.contains("apiserver"), "{}", stale.stdout);
    assert_eq!(
        stale.stdout,
        pki(&f, &["--check", "--diff"], Some(&a)).stdout
    );
    printed.push(stale);

    // Applying it needs the CA key: without an identity, nothing is written and the run names
    // what the key is encrypted to.
    let locked = pki(&f, &[], None);
    assert_eq!(locked.code, 2, "{}", locked.all());
    assert!(
        locked.stderr.contains("pki/ca.key is encrypted to"),
        "{}",
        locked.stderr
    );
    assert!(locked.stderr.contains(&a.recipient), "{}", locked.stderr);
    assert!(
        locked.stderr.contains("SOPS_AGE_KEY_FILE"),
        "{}",
        locked.stderr
    );
    assert_eq!(f.hashes(), before, "a blocked run wrote files");
    printed.push(locked);

    let applied = pki(&f, &["--diff"], Some(&a));
    assert_eq!(applied.code, 0, "{}", applied.all());
    let after = decrypted_keys(&sops_bin, &f, &a);
    assert_eq!(after, keys, "a re-sign changed a key");
    assert_keys_match(&f, &after);
    assert_out_holds_no_key(&f, &pems);
    let crt = cert_facts(&f.path("pki/apiserver.crt"));
    assert!(
        crt.sans.dns.iter().any(|d| d == "api.example"),
        "{:?}",
        crt.sans.dns
    );
    printed.push(applied);
    let rerun = pki(&f, &["--check"], None);
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    printed.push(rerun);

    for (i, run) in printed.iter().enumerate() {
        assert_no_key_material(&format!("run {i}"), &run.all(), &pems);
    }
}

#[test]
fn a_recipient_change_re_encrypts_every_key_and_keeps_it() {
    let Some((sops_bin, keygen)) = sops_tools() else {
        return;
    };
    let ids = tempfile::tempdir().unwrap();
    let a = age_identity(&keygen, ids.path(), "a");
    let b = age_identity(&keygen, ids.path(), "b");
    let f = Fixture::new(&spec_for(&[&a]));
    assert_eq!(pki(&f, &[], None).code, 0);
    let keys = decrypted_keys(&sops_bin, &f, &a);
    let pems: BTreeSet<String> = keys.values().cloned().collect();
    let inventory = f.read("inventory.txt");

    f.set_spec(&spec_for(&[&a, &b]));
    let check = pki(&f, &["--check"], None);
    assert_eq!(check.code, 1, "{}", check.all());
    let added = format!("recipients changed: +{}", b.recipient);
    assert!(
        check.stdout.contains("re-encrypt") && check.stdout.contains(&added),
        "{}",
        check.stdout
    );
    assert_eq!(check.stdout, pki(&f, &["--check"], Some(&a)).stdout);
    // Re-encrypting needs an identity that opens the files.
    let locked = pki(&f, &[], None);
    assert_eq!(locked.code, 2, "{}", locked.all());
    let applied = pki(&f, &[], Some(&a));
    assert_eq!(applied.code, 0, "{}", applied.all());
    // B alone now opens every key and render, and the keys are the same.
    assert_eq!(decrypted_keys(&sops_bin, &f, &b), keys);
    let conf = sops_decrypt(&sops_bin, &f, &b.key_file, "admin.conf", true);
    assert_eq!(
        unb64_text(&yaml_value(&conf, "client-key-data")),
        keys["pki/admin.key"]
    );
    assert_eq!(f.read("inventory.txt"), inventory, "fingerprints changed");
    let before = f.hashes();
    assert_eq!(pki(&f, &[], Some(&b)).code, 0);
    assert_eq!(
        f.hashes(),
        before,
        "a rerun after re-encrypting rewrote files"
    );

    // A removed: B's identity alone does it, and A no longer opens anything.
    f.set_spec(&spec_for(&[&b]));
    let applied = pki(&f, &[], Some(&b));
    assert_eq!(applied.code, 0, "{}", applied.all());
    assert!(
        applied.stdout.contains(&format!("-{}", a.recipient)),
        "{}",
        applied.stdout
    );
    assert_eq!(decrypted_keys(&sops_bin, &f, &b), keys);
    let refused = run_sops(
        &sops_bin,
        f.root(),
        &a.key_file,
        &["decrypt", f.path("pki/ca.key").to_str().unwrap()],
    );
    assert_ne!(refused.code, 0, "a removed recipient still opens ca.key");
    assert_eq!(f.read("inventory.txt"), inventory, "fingerprints changed");
    for run in [check, locked, applied] {
        assert_no_key_material("a recipient change", &run.all(), &pems);
    }
}

#[test]
fn turning_encryption_on_and_off_keeps_every_key() {
    let Some((sops_bin, keygen)) = sops_tools() else {
        return;
    };
    let ids = tempfile::tempdir().unwrap();
    let a = age_identity(&keygen, ids.path(), "a");
    let f = Fixture::new(&spec_for(&[]));
    assert_eq!(pki(&f, &[], None).code, 0);
    let plain: BTreeMap<String, String> = KEYS
        .iter()
        .map(|rel| (rel.to_string(), f.read(rel)))
        .collect();
    let pems: BTreeSet<String> = plain.values().cloned().collect();
    let inventory = f.read("inventory.txt");

    // On: every plaintext key is encrypted in place; no identity is needed for that.
    f.set_spec(&spec_for(&[&a]));
    let check = pki(&f, &["--check"], None);
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(check.stdout.contains("encrypt "), "{}", check.stdout);
    let render_reason = "admin.conf is in plaintext and pki.toml has [encryption]";
    assert!(check.stdout.contains(render_reason), "{}", check.stdout);
    let on = pki(&f, &[], None);
    assert_eq!(on.code, 0, "{}", on.all());
    assert_eq!(decrypted_keys(&sops_bin, &f, &a), plain);
    assert_out_holds_no_key(&f, &pems);
    assert_eq!(f.read("inventory.txt"), inventory);
    let again = pki(&f, &["--check"], None);
    assert_eq!(again.code, 0, "{}", again.all());

    // Off: decrypting needs the identity; then the files are the plaintext keys again.
    f.set_spec(&spec_for(&[]));
    let planned = pki(&f, &["--check"], None);
    let render_reason = "admin.conf is encrypted and pki.toml has no [encryption]";
    assert!(planned.stdout.contains(render_reason), "{}", planned.stdout);
    let locked = pki(&f, &[], None);
    assert_eq!(locked.code, 2, "{}", locked.all());
    let off = pki(&f, &[], Some(&a));
    assert_eq!(off.code, 0, "{}", off.all());
    for (rel, pem) in &plain {
        assert_eq!(&f.read(rel), pem, "{rel} changed");
    }
    assert_eq!(f.read("inventory.txt"), inventory);
    let conf = f.read("admin.conf");
    assert_eq!(
        unb64_text(&yaml_value(&conf, "client-key-data")),
        plain["pki/admin.key"]
    );
    for run in [check, on, locked] {
        assert_no_key_material("encryption on and off", &run.all(), &pems);
    }
}

#[test]
fn a_bad_recipient_points_at_its_place() {
    let f = Fixture::new(&SPEC.replace(
        "RECIPIENTS",
        "[encryption]\nage-recipients = [\"age1nope\"]\n",
    ));
    let r = f.pki(&["--check"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("`age1nope` is not an age recipient"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("pki.toml:3:"), "{}", r.stderr);
    let f = Fixture::new(&SPEC.replace("RECIPIENTS", "[encryption]\nage-recipients = []\n"));
    let r = f.pki(&["--check"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("`age-recipients` is empty"),
        "{}",
        r.stderr
    );
}

const NODES_SPEC: &str = r#"
RECIPIENTS

[defaults]
algorithm = "ecdsa-p256"

[vars]
cluster = "kubernetes"
server = "https://10.0.0.11:6443"

[[node]]
name = "cp-1"
ips = ["10.0.0.11"]
role = "control-plane"

[[node]]
name = "worker-1"
ips = ["10.0.0.21"]
role = "worker"

[[ca]]
name = "kubernetes-ca"
cn = "kubernetes-ca"
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
usage = ["client"]
cert = "pki/users/admin.crt"
key = "pki/users/admin.key"

[[cert]]
name = "kubelet"
issuer = "kubernetes-ca"
for-each-node = "all"
cn = "system:node:{node}"
o = ["system:nodes"]
dns = ["{node}"]
ips = ["{node.ip}"]
usage = ["server", "client"]
cert = "nodes/{node}/kubelet.crt"
key = "nodes/{node}/kubelet.key"

[[keypair]]
name = "sa"
private = "pki/sa.key"
public = "pki/sa.pub"

[[render]]
name = "admin.conf"
template = "kubeconfig.hbs"
path = "admin.conf"
bind = { ca = "kubernetes-ca", client = "admin" }
secrets = ["client"]

[[render]]
name = "kubelet.conf"
template = "kubeconfig.hbs"
for-each-node = "all"
path = "nodes/{node}/kubelet.conf"
bind = { ca = "kubernetes-ca", client = "kubelet" }
secrets = ["client"]
"#;

/// `deploy ARGS` on the fixture, with `identity` as the only age identity, or none.
fn deploy(f: &Fixture, args: &[&str], identity: Option<&Age>) -> std::process::Output {
    let root = f.root();
    let mut cmd = xtask_on("deploy", root, &root.join("out"));
    cmd.args(args)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE");
    if let Some(age) = identity {
        cmd.env("SOPS_AGE_KEY_FILE", &age.key_file);
    }
    cmd.output().expect("run xtask deploy")
}

/// The relative paths of the files under `dir`, sorted.
fn tree(dir: &Path) -> Vec<String> {
    files_under(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn deploy_writes_one_nodes_files_decrypted_and_nothing_else() {
    let Some((_, keygen)) = sops_tools() else {
        return;
    };
    let ids = tempfile::tempdir().unwrap();
    let a = age_identity(&keygen, ids.path(), "a");
    let table = format!("[encryption]\nage-recipients = [\"{}\"]\n", a.recipient);
    let f = Fixture::new(&NODES_SPEC.replace("RECIPIENTS", &table));
    assert_eq!(pki(&f, &[], None).code, 0);
    let before = f.hashes();
    let target = tempfile::tempdir().unwrap();
    let cp1 = target.path().join("cp-1");
    let cp1_arg = cp1.to_str().unwrap();

    // Without an identity nothing is written, and the run says what is missing.
    let locked = deploy(&f, &["--node", "cp-1", "--to", cp1_arg], None);
    let stderr = String::from_utf8_lossy(&locked.stderr);
    assert_eq!(locked.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pki/ca.key is encrypted to"), "{stderr}");
    assert!(!cp1.exists() || tree(&cp1).is_empty(), "{:?}", tree(&cp1));

    let done = deploy(&f, &["--node", "cp-1", "--to", cp1_arg], Some(&a));
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    assert_eq!(done.status.code(), Some(0), "{stderr}");
    // A control-plane node: the CA key, its own files at the top, never the users' keys (they
    // are inside the kubeconfigs) nor another node's.
    let expected = [
        "admin.conf",
        "kubelet.conf",
        "kubelet.crt",
        "kubelet.key",
        "pki/apiserver.crt",
        "pki/apiserver.key",
        "pki/ca.crt",
        "pki/ca.key",
        "pki/sa.key",
        "pki/sa.pub",
    ];
    assert_eq!(tree(&cp1), expected);
    for key in [
        "pki/ca.key",
        "pki/apiserver.key",
        "kubelet.key",
        "pki/sa.key",
    ] {
        assert_eq!(mode(&cp1.join(key)), 0o600, "{key}");
        let pem = std::fs::read_to_string(cp1.join(key)).unwrap();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{key} is not a plaintext key"
        );
    }
    for (key, cert) in [
        ("pki/ca.key", "pki/ca.crt"),
        ("pki/apiserver.key", "pki/apiserver.crt"),
        ("kubelet.key", "kubelet.crt"),
    ] {
        assert_eq!(
            pubkey_of_key(&cp1.join(key)),
            pubkey_of_cert(&cp1.join(cert)),
            "{key}"
        );
    }
    let ca = cp1.join("pki/ca.crt");
    let verified = openssl_verifies(&ca, &cp1.join("pki/apiserver.crt"), "sslserver");
    assert_eq!(verified.code, 0, "{}", verified.all());
    let verified = openssl_verifies(&ca, &cp1.join("kubelet.crt"), "sslclient");
    assert_eq!(verified.code, 0, "{}", verified.all());
    let conf = std::fs::read_to_string(cp1.join("kubelet.conf")).unwrap();
    let key = unb64_text(&yaml_value(&conf, "client-key-data"));
    assert_eq!(
        key,
        std::fs::read_to_string(cp1.join("kubelet.key")).unwrap()
    );
    let cp1_keys: BTreeSet<String> = [
        "pki/ca.key",
        "pki/apiserver.key",
        "kubelet.key",
        "pki/sa.key",
    ]
    .iter()
    .map(|k| std::fs::read_to_string(cp1.join(k)).unwrap())
    .collect();
    assert_no_key_material("deploy's stderr", &stderr, &cp1_keys);

    // The real peers on the deployed files: gnutls verifies the chains, and kubectl reaches an
    // API server that serves the deployed apiserver pair, with the deployed kubeconfigs.
    for (cert, purpose) in [
        ("pki/apiserver.crt", "1.3.6.1.5.5.7.3.1"),
        ("kubelet.crt", "1.3.6.1.5.5.7.3.2"),
    ] {
        let Some(certtool) = tool("certtool", "gnutls-bin") else {
            return;
        };
        let verified = run(Command::new(certtool)
            .arg("--verify")
            .arg("--load-ca-certificate")
            .arg(&ca)
            .arg(format!("--verify-purpose={purpose}"))
            .arg("--infile")
            .arg(cp1.join(cert)));
        assert_eq!(
            verified.code,
            0,
            "certtool --verify {cert}: {}",
            verified.all()
        );
    }
    assert_kubectl_authenticates(&cp1);

    // A worker, as a tar stream: the CA certificate and its own files; no CA key, nothing of
    // cp-1's.
    let worker = deploy(&f, &["--node", "worker-1", "--tar"], Some(&a));
    assert_eq!(
        worker.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&worker.stderr)
    );
    let unpacked = target.path().join("worker-1");
    std::fs::create_dir_all(&unpacked).unwrap();
    let mut untar = Command::new("tar");
    untar
        .arg("-x")
        .arg("-C")
        .arg(&unpacked)
        .stdin(std::process::Stdio::piped());
    let mut child = untar.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &worker.stdout).unwrap();
    assert!(child.wait().unwrap().success(), "tar refused the stream");
    assert_eq!(
        tree(&unpacked),
        ["kubelet.conf", "kubelet.crt", "kubelet.key", "pki/ca.crt"]
    );
    assert_eq!(mode(&unpacked.join("kubelet.key")), 0o600);
    let worker_key = std::fs::read_to_string(unpacked.join("kubelet.key")).unwrap();
    assert!(!cp1_keys.contains(&worker_key));
    // The stream holds the worker's own key, never a form of any of cp-1's.
    let stream = String::from_utf8_lossy(&worker.stdout);
    for form in cp1_keys.iter().flat_map(|k| leak_forms(k)) {
        assert!(
            !stream.contains(&form),
            "the worker's tar holds cp-1's key material"
        );
    }
    let verified = openssl_verifies(
        &unpacked.join("pki/ca.crt"),
        &unpacked.join("kubelet.crt"),
        "sslserver",
    );
    assert_eq!(verified.code, 0, "{}", verified.all());

    // Deploying never changes out/, and never writes plaintext into it.
    let inside = f.path("nodes/cp-1/plain");
    let refused = deploy(
        &f,
        &["--node", "cp-1", "--to", inside.to_str().unwrap()],
        Some(&a),
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(!inside.exists());
    assert_eq!(f.hashes(), before, "deploy changed out/");
}

/// kubectl, with the deployed `admin.conf` and `kubelet.conf`, authenticates to a test API
/// server that serves the deployed `pki/apiserver.crt`/`.key` and trusts the deployed CA.
fn assert_kubectl_authenticates(deployed: &Path) {
    if tool("kubectl", "kubectl").is_none() || tool("python3", "python3").is_none() {
        return;
    }
    // The server reads its files from a fixture's out/: the deployed tree, copied there.
    let host = Fixture {
        dir: tempfile::tempdir().unwrap(),
    };
    for rel in tree(deployed) {
        let to = host.path(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(deployed.join(&rel), &to).unwrap();
    }
    let server = crate::kubectl::ApiServer::start(
        &host,
        "pki/apiserver.crt",
        "pki/apiserver.key",
        "pki/ca.crt",
    );
    for (conf, user) in [
        ("admin.conf", "kubernetes-admin"),
        ("kubelet.conf", "system:node:cp-1"),
    ] {
        let r = server.kubectl(&host.path(conf), &["auth", "whoami", "-o", "json"]);
        assert_eq!(
            r.code,
            0,
            "kubectl auth whoami with the deployed {conf}: {}",
            r.all()
        );
        assert!(
            r.stdout.contains(&format!("\"username\": \"{user}\"")),
            "{conf}: {}",
            r.stdout
        );
    }
}

const ETCD_SPEC: &str = r#"
RECIPIENTS

[defaults]
algorithm = "ecdsa-p256"

[[node]]
name = "cp-1"
ips = ["127.0.0.1"]
role = "control-plane"

[[ca]]
name = "etcd-ca"
cn = "etcd-ca"
cert = "pki/etcd/ca.crt"
key = "pki/etcd/ca.key"

[[cert]]
name = "etcd-server"
issuer = "etcd-ca"
for-each-node = "control-plane"
cn = "{node}"
dns = ["{node}", "localhost"]
ips = ["{node.ip}"]
usage = ["server", "client"]
cert = "nodes/{node}/pki/etcd/server.crt"
key = "nodes/{node}/pki/etcd/server.key"

[[cert]]
name = "etcd-peer"
issuer = "etcd-ca"
for-each-node = "control-plane"
cn = "{node}"
dns = ["{node}", "localhost"]
ips = ["{node.ip}"]
usage = ["server", "client"]
cert = "nodes/{node}/pki/etcd/peer.crt"
key = "nodes/{node}/pki/etcd/peer.key"

[[cert]]
name = "etcd-healthcheck-client"
issuer = "etcd-ca"
cn = "kube-etcd-healthcheck-client"
usage = ["client"]
cert = "pki/etcd/healthcheck-client.crt"
key = "pki/etcd/healthcheck-client.key"
"#;

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn etcd_runs_on_a_nodes_deployed_files() {
    let Some((_, keygen)) = sops_tools() else {
        return;
    };
    let (Some(etcd), Some(etcdctl)) = (tool("etcd", "etcd-server"), tool("etcdctl", "etcd-client"))
    else {
        return;
    };
    let ids = tempfile::tempdir().unwrap();
    let a = age_identity(&keygen, ids.path(), "a");
    let table = format!("[encryption]\nage-recipients = [\"{}\"]\n", a.recipient);
    let f = Fixture::new(&ETCD_SPEC.replace("RECIPIENTS", &table));
    assert_eq!(pki(&f, &[], None).code, 0);
    let node = tempfile::tempdir().unwrap();
    let etc = node.path().join("etc-kubernetes");
    let done = deploy(
        &f,
        &["--node", "cp-1", "--to", etc.to_str().unwrap()],
        Some(&a),
    );
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let pki_dir = etc.join("pki/etcd");
    let file = |name: &str| pki_dir.join(name).display().to_string();
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("https://127.0.0.1:{peer}");
    let log = node.path().join("etcd.log");
    let mut member = Proc::spawn(
        Command::new(etcd)
            .arg("--name=cp-1")
            .arg(format!("--data-dir={}", node.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=cp-1={peer_url}"))
            .arg("--client-cert-auth")
            .arg(format!("--trusted-ca-file={}", file("ca.crt")))
            .arg(format!("--cert-file={}", file("server.crt")))
            .arg(format!("--key-file={}", file("server.key")))
            .arg("--peer-client-cert-auth")
            .arg(format!("--peer-trusted-ca-file={}", file("ca.crt")))
            .arg(format!("--peer-cert-file={}", file("peer.crt")))
            .arg(format!("--peer-key-file={}", file("peer.key")))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let etcdctl_run = |args: &[&str]| {
        let mut cmd = Command::new(&etcdctl);
        cmd.arg(format!("--endpoints={client_url}"))
            .arg(format!("--cacert={}", file("ca.crt")))
            .arg(format!("--cert={}", file("healthcheck-client.crt")))
            .arg(format!("--key={}", file("healthcheck-client.key")))
            .arg("--dial-timeout=2s")
            .arg("--command-timeout=3s")
            .args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(20)).unwrap_or_else(|r| r)
    };
    let put = poll(Duration::from_secs(40), Duration::from_millis(200), || {
        let r = etcdctl_run(&["put", "kubepki", "deployed"]);
        (r.code == 0).then_some(r)
    });
    let etcd_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        put.is_some(),
        "etcdctl never reached etcd; its log:\n{etcd_log}"
    );
    let got = etcdctl_run(&["get", "kubepki", "--print-value-only"]);
    assert_eq!(got.stdout.trim(), "deployed", "{}", got.all());
    member.kill();
}
