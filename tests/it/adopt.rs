//! Adopting an existing cluster (`pki import --from-kubeadm`) and starting one (`pki init`): a
//! tree made by `tests/support/kubeadm-tree.sh` with the openssl CLI in kubeadm's layout is
//! imported, `--check` must then find nothing to do, every certificate and key must be the
//! source's byte for byte, and openssl (and certtool) must accept what the tool makes from there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, Run, files_under, mode, run, tool, xtask_on};

/// A scratch repository without pki.toml: the import writes it.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        Repo {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn out(&self, rel: &str) -> PathBuf {
        self.root().join("out").join(rel)
    }

    /// `cargo xtask pki ARGS` with this repository's paths.
    fn pki(&self, args: &[&str]) -> Run {
        let root = self.root();
        run(xtask_on("pki", root, &root.join("out"))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH"))
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.pki(args);
        assert_eq!(r.code, 0, "pki {args:?}:\n{}", r.all());
        r
    }

    fn import(&self, tree: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["import", "--from-kubeadm", tree.to_str().unwrap()];
        args.extend(extra);
        self.pki(&args)
    }

    /// Every file of out/ by relative path, with its bytes.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let out = self.root().join("out");
        files_under(&out)
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(&out).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    }
}

/// A kubeadm tree made by the fixture script: `args` after the folder.
fn kubeadm_tree(dir: &Path, args: &[&str]) -> Option<()> {
    tool("openssl", "openssl")?;
    let script = support::repo_root().join("tests/support/kubeadm-tree.sh");
    let r = run(Command::new("bash").arg(script).arg(dir).args(args));
    assert_eq!(r.code, 0, "kubeadm-tree.sh {args:?}:\n{}", r.all());
    Some(())
}

/// Where an imported file of cp-1's tree lands in out/: the node's own under out/nodes/cp-1/.
fn out_path(src: &str, node: &str) -> String {
    let own = ["pki/apiserver.", "pki/etcd/server.", "pki/etcd/peer."];
    if own.iter().any(|p| src.starts_with(p)) {
        format!("nodes/{node}/{src}")
    } else {
        src.to_string()
    }
}

/// `kubectl config view --raw` of one field of a kubeconfig file (no server is contacted).
fn kubeconfig_field(kubectl: &Path, file: &Path, path: &str) -> String {
    let r = run(Command::new(kubectl)
        .arg("config")
        .arg("view")
        .arg("--raw")
        .arg("--kubeconfig")
        .arg(file)
        .arg("-o")
        .arg(format!("jsonpath={{{path}}}")));
    assert_eq!(
        r.code,
        0,
        "kubectl config view {}:\n{}",
        file.display(),
        r.all()
    );
    r.stdout
}

/// The checks of one imported tree: `--check` clean, every certificate and key the source's byte
/// for byte (keys 0600), the kubeconfigs' embedded certificates in pki/users/ byte for byte, and
/// each rendered kubeconfig holding the same CA, client certificate and server as its source.
fn check_import(alg: &str) {
    let src = tempfile::tempdir().unwrap();
    let Some(()) = kubeadm_tree(src.path(), &[alg]) else {
        return;
    };
    let Some(kubectl) = tool("kubectl", "kubectl") else {
        return;
    };
    let repo = Repo::new();
    let r = repo.import(src.path(), &[]);
    assert_eq!(r.code, 0, "import:\n{}", r.all());
    assert!(!r.all().contains("not imported"), "{}", r.all());
    let check = repo.pki(&["--check"]);
    assert_eq!(check.code, 0, "--check after import:\n{}", check.all());
    assert!(check.stdout.contains("up to date"), "{}", check.stdout);
    for p in files_under(&src.path().join("pki")) {
        let rel = p
            .strip_prefix(src.path())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let out = repo.out(&out_path(&rel, "cp-1"));
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(&out).unwrap(),
            "{rel} is not the source's"
        );
        if rel.ends_with(".key") {
            assert_eq!(mode(&out), 0o600, "{rel}");
        }
    }
    let users = [
        ("admin", "pki/users/admin"),
        ("kubelet", "nodes/cp-1/kubelet-client"),
        ("scheduler", "pki/users/scheduler"),
    ];
    for (conf, item) in users {
        let (from, to) = (
            src.path().join(format!("{conf}.conf")),
            repo.out(&out_path(&format!("{conf}.conf"), "")),
        );
        let to = if conf == "kubelet" {
            repo.out("nodes/cp-1/kubelet.conf")
        } else {
            to
        };
        let field = |f: &Path, path: &str| kubeconfig_field(&kubectl, f, path);
        let cert = ".users[0].user.client-certificate-data";
        let embedded = String::from_utf8(
            run(Command::new("base64")
                .arg("-w0")
                .arg(repo.out(&format!("{item}.crt"))))
            .stdout
            .into(),
        )
        .unwrap();
        assert_eq!(
            field(&from, cert),
            embedded,
            "{item}.crt is not {conf}.conf's certificate"
        );
        for path in [
            cert,
            ".clusters[0].cluster.certificate-authority-data",
            ".clusters[0].cluster.server",
            ".current-context",
        ] {
            assert_eq!(field(&from, path), field(&to, path), "{conf}.conf: {path}");
        }
        assert_eq!(mode(&to), 0o600, "{conf}.conf");
    }
}

#[test]
fn an_rsa_kubeadm_tree_imports_byte_for_byte_and_checks_clean() {
    check_import("rsa");
}

#[test]
fn an_ecdsa_kubeadm_tree_imports_byte_for_byte_and_checks_clean() {
    check_import("ecdsa");
}

/// A cluster with a second control-plane node: cp-2's own files merge into the same pki.toml as
/// another node of the per-node entries, byte for byte, and `--check` stays clean.
#[test]
fn a_second_control_plane_node_merges_into_the_import() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some(()) = kubeadm_tree(first.path(), &["ecdsa"]) else {
        return;
    };
    let first_dir = first.path().to_str().unwrap();
    kubeadm_tree(
        second.path(),
        &["ecdsa", "--join", first_dir, "cp-2", "10.0.0.12"],
    );
    let repo = Repo::new();
    repo.ok(&["import", "--from-kubeadm", first_dir]);
    let r = repo.import(second.path(), &["--node", "cp-2"]);
    assert_eq!(r.code, 0, "second import:\n{}", r.all());
    assert_eq!(
        repo.pki(&["--check"]).code,
        0,
        "{}",
        repo.pki(&["--check"]).all()
    );
    for rel in [
        "pki/apiserver.crt",
        "pki/apiserver.key",
        "pki/etcd/server.crt",
        "pki/etcd/peer.key",
    ] {
        let want = std::fs::read(second.path().join(rel)).unwrap();
        assert_eq!(
            want,
            std::fs::read(repo.out(&format!("nodes/cp-2/{rel}"))).unwrap(),
            "cp-2's {rel}"
        );
    }
    let spec = std::fs::read_to_string(repo.root().join("pki.toml")).unwrap();
    assert_eq!(spec.matches("[[node]]").count(), 2, "{spec}");
    assert!(repo.out("nodes/cp-2/kubelet.conf").is_file());
    // A tree of another cluster (other CAs) is not a node of this one: refused, nothing written.
    let other = tempfile::tempdir().unwrap();
    kubeadm_tree(other.path(), &["ecdsa"]);
    let before = repo.files();
    let r = repo.import(other.path(), &["--node", "cp-3"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("differ from out/"), "{}", r.stderr);
    assert_eq!(before, repo.files());
}

/// After an import, a new SAN re-signs only the apiserver, over its key, and openssl and
/// certtool accept the result for a TLS server under the imported CA.
#[test]
fn a_new_san_after_import_resigns_only_the_apiserver() {
    let src = tempfile::tempdir().unwrap();
    let Some(()) = kubeadm_tree(src.path(), &["rsa"]) else {
        return;
    };
    let repo = Repo::new();
    repo.ok(&["import", "--from-kubeadm", src.path().to_str().unwrap()]);
    let before = repo.files();
    let spec_path = repo.root().join("pki.toml");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    let from = "dns = [\"{node}\", \"kubernetes\"";
    assert_eq!(spec.matches(from).count(), 1, "{spec}");
    std::fs::write(
        &spec_path,
        spec.replacen(
            from,
            "dns = [\"api.example.com\", \"{node}\", \"kubernetes\"",
            1,
        ),
    )
    .unwrap();
    repo.ok(&[]);
    let after = repo.files();
    let changed: Vec<&String> = after
        .keys()
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert_eq!(
        changed,
        ["inventory.txt", "nodes/cp-1/pki/apiserver.crt"],
        "changed files"
    );
    let (ca, cert) = (
        repo.out("pki/ca.crt"),
        repo.out("nodes/cp-1/pki/apiserver.crt"),
    );
    let openssl = run(Command::new("openssl")
        .args([
            "verify",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "api.example.com",
            "-CAfile",
        ])
        .arg(&ca)
        .arg(&cert));
    assert_eq!(openssl.code, 0, "openssl verify:\n{}", openssl.all());
    if let Some(certtool) = tool("certtool", "gnutls-bin") {
        let r = run(Command::new(certtool)
            .arg("--verify")
            .arg(format!("--load-ca-certificate={}", ca.display()))
            .arg(format!("--infile={}", cert.display()))
            .arg("--verify-hostname=api.example.com"));
        assert_eq!(r.code, 0, "certtool --verify:\n{}", r.all());
    }
}

/// An import never overwrites a pki.toml or out/ unless asked, and reports what it could not map
/// (an unknown file, a certificate signed by none of the CAs) instead of dropping it.
#[test]
fn import_refuses_to_overwrite_and_reports_what_it_cannot_map() {
    let src = tempfile::tempdir().unwrap();
    let Some(()) = kubeadm_tree(src.path(), &["ecdsa"]) else {
        return;
    };
    let stray = tempfile::tempdir().unwrap();
    kubeadm_tree(stray.path(), &["ecdsa"]);
    std::fs::copy(
        stray.path().join("pki/front-proxy-client.crt"),
        src.path().join("pki/stray.crt"),
    )
    .unwrap();
    std::fs::copy(
        stray.path().join("pki/front-proxy-client.key"),
        src.path().join("pki/stray.key"),
    )
    .unwrap();
    std::fs::write(src.path().join("pki/notes.txt"), "hello\n").unwrap();
    // A leaf of the tree's own CA whose subject has more than pki.toml can declare (C=US).
    let pki = src.path().join("pki");
    let sh = "openssl ecparam -name prime256v1 -genkey -noout -out extra.key && \
        openssl req -new -key extra.key -subj /C=US/CN=extra -out extra.csr && \
        printf 'keyUsage=critical,digitalSignature\\nextendedKeyUsage=clientAuth\\nauthorityKeyIdentifier=keyid\\n' > ext && \
        openssl x509 -req -in extra.csr -CA ca.crt -CAkey ca.key -days 365 -extfile ext -out extra.crt && \
        printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign\\n' > ext && \
        openssl x509 -req -in extra.csr -CA ca.crt -CAkey ca.key -days 365 -extfile ext -out inter.crt && \
        cp extra.key inter.key && rm extra.csr ext";
    let r = run(Command::new("sh").arg("-c").arg(sh).current_dir(&pki));
    assert_eq!(r.code, 0, "{}", r.all());
    let repo = Repo::new();
    let r = repo.import(src.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("not imported: pki/stray.crt: signed by none of the CAs"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("not imported: pki/notes.txt"),
        "{}",
        r.stdout
    );
    assert!(!repo.out("pki/stray.crt").exists());
    let spec = std::fs::read_to_string(repo.root().join("pki.toml")).unwrap();
    let extra = &spec[spec.find("# From pki/extra.crt.").expect("extra imported")..];
    assert!(
        extra
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("# Guessed: its subject holds more"),
        "{extra}"
    );
    assert_eq!(
        spec.matches("# Guessed: its subject").count(),
        1,
        "only extra's subject differs"
    );
    let before = repo.files();
    let again = repo.import(src.path(), &[]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(before, repo.files());
    let forced = repo.import(src.path(), &["--force"]);
    assert_eq!(forced.code, 0, "{}", forced.all());
    assert_eq!(repo.pki(&["--check"]).code, 0);
}

/// `init --preset P` then `cargo xtask pki`: every certificate verifies with openssl under the
/// roots of the tree (the self-signed CAs it made), and `--check` is clean.
#[test]
fn init_presets_generate_trees_openssl_accepts() {
    let Some(openssl) = tool("openssl", "openssl") else {
        return;
    };
    for preset in ["kubeadm", "hard-way", "minimal"] {
        let repo = Repo::new();
        let r = repo.ok(&["init", "--preset", preset]);
        assert!(r.stdout.contains("next:"), "{}", r.stdout);
        assert_eq!(
            repo.pki(&["init", "--preset", preset]).code,
            2,
            "init over an existing pki.toml"
        );
        repo.ok(&[]);
        assert_eq!(repo.pki(&["--check"]).code, 0, "{preset}: --check");
        let certs: Vec<PathBuf> = files_under(&repo.root().join("out"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "crt"))
            .collect();
        let roots: Vec<&PathBuf> = certs
            .iter()
            .filter(|p| {
                let f = support::cert_facts(p);
                f.is_ca && f.issuer_raw == f.subject_raw
            })
            .collect();
        assert!(!roots.is_empty(), "{preset}: no CA");
        let bundle = repo.root().join("roots.pem");
        let text: String = roots
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        std::fs::write(&bundle, text).unwrap();
        for cert in &certs {
            let r = run(Command::new(&openssl)
                .arg("verify")
                .arg("-CAfile")
                .arg(&bundle)
                .arg(cert));
            assert_eq!(
                r.code,
                0,
                "{preset}: openssl verify {}:\n{}",
                cert.display(),
                r.all()
            );
        }
        assert!(certs.len() > roots.len(), "{preset}: no leaf");
    }
}
