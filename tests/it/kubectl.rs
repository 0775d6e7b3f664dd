//! Rendered kubeconfigs, judged by the real kubectl against a test API server
//! (tests/support/apiserver.py) that authenticates client certificates the way kube-apiserver
//! does; and the guarantees of rendering itself: modes, no HTML escaping, template errors.
//!
//! Network rule: the kubectl on these machines (a version dispatcher) connects to the server
//! before every command, even `config view`, and the default kubeconfigs name 10.0.0.11. Every
//! kubectl run here goes through `ApiServer::kubectl`, which always passes
//! `--server https://127.0.0.1:PORT --tls-server-name kubernetes`: nothing leaves loopback.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;

/// How long the test server may take to print its port.
const STARTUP: Duration = Duration::from_secs(30);
/// How long one kubectl run may take before it is killed and the test fails.
const KUBECTL_LIMIT: Duration = Duration::from_secs(90);
/// The name kubeadm's kubeconfigs give their cluster, and the name kubectl expects on the API
/// server's certificate (`--tls-server-name`).
const CLUSTER: &str = "kubernetes";

/// kubectl and python3, or `None` (the test is skipped, loudly; under CI=true it fails).
fn tools() -> Option<()> {
    let kubectl = tool("kubectl", "kubectl");
    let python = tool("python3", "python3");
    kubectl.and(python).map(|_| ())
}

/// Runs `cmd` with no stdin, capturing its output; kills it and fails the test after `limit`.
fn run_limited(cmd: &mut Command, limit: Duration) -> Run {
    run_with_timeout(cmd, limit)
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish within {limit:?}"))
}

// ---------------------------------------------------------------------------------------------
// The test API server.

/// tests/support/apiserver.py, running. Dropping it kills the process by its PID (also when the
/// test panics), then reaps it.
pub(super) struct ApiServer {
    proc: Proc,
    port: u16,
    log: PathBuf,
    /// HOME and cache folder for kubectl, inside the fixture.
    home: PathBuf,
}

impl ApiServer {
    /// Serves `cert`/`key` (paths under the fixture's out/) and accepts client certificates
    /// that chain to `client_ca` only.
    pub(super) fn start(f: &Fixture, cert: &str, key: &str, client_ca: &str) -> ApiServer {
        let script = repo_root().join("tests/support/apiserver.py");
        // One log per server started in this fixture.
        let log = (1..)
            .map(|n| f.root().join(format!("apiserver-{n}.log")))
            .find(|p| !p.exists())
            .unwrap();
        let home = f.root().join("kubectl-home");
        std::fs::create_dir_all(&home).unwrap();
        let stderr = std::fs::File::create(&log).unwrap();
        let mut proc = Proc::spawn(
            Command::new("python3")
                .arg(&script)
                .arg("--cert")
                .arg(f.path(cert))
                .arg("--key")
                .arg(f.path(key))
                .arg("--client-ca")
                .arg(f.path(client_ca))
                .args(["--port", "0"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(stderr),
        );
        let stdout = proc.child.stdout.take().unwrap();
        // The guard exists before the first wait, so a failed start still kills the process.
        let mut server = ApiServer {
            proc,
            port: 0,
            log,
            home,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        let line = match rx.recv_timeout(STARTUP) {
            Ok(Ok(line)) => line,
            other => panic!(
                "apiserver.py printed no port within {STARTUP:?} ({other:?}); its log:\n{}",
                server.log()
            ),
        };
        server.port = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "apiserver.py's first line is not a port: {line:?}; its log:\n{}",
                server.log()
            )
        });
        server
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// What the server logged so far (requests, identities, refused handshakes).
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The handshakes the server refused, with its reasons. The server logs a refusal just after
    /// sending its alert, so kubectl may exit first: this waits, at most STARTUP, for one.
    fn refusals(&self) -> Vec<String> {
        poll(STARTUP, Duration::from_millis(20), || {
            let found: Vec<String> = self
                .log()
                .lines()
                .filter(|l| l.contains("TLS handshake refused"))
                .map(String::from)
                .collect();
            (!found.is_empty()).then_some(found)
        })
        .unwrap_or_default()
    }

    /// `kubectl --kubeconfig KUBECONFIG --server https://127.0.0.1:PORT --tls-server-name
    /// kubernetes ARGS`: always this loopback server, whatever the kubeconfig names, and TLS
    /// verification on. kubectl's HOME, cache and proxy settings are the test's own.
    pub(super) fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--server")
            .arg(self.url())
            .args(["--tls-server-name", CLUSTER, "--request-timeout", "60s"])
            .args(args)
            .env("HOME", &self.home)
            .env("KUBECACHEDIR", self.home.join("cache"))
            .env_remove("KUBECONFIG")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
        for proxy in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(proxy);
        }
        run_limited(&mut cmd, KUBECTL_LIMIT)
    }

    /// `kubectl auth whoami -o json`, parsed; fails the test if kubectl fails.
    fn whoami(&self, kubeconfig: &Path) -> Json {
        let r = self.kubectl(kubeconfig, &["auth", "whoami", "-o", "json"]);
        assert_eq!(
            r.code,
            0,
            "kubectl auth whoami with {}: {}\nserver log:\n{}",
            kubeconfig.display(),
            r.all(),
            self.log()
        );
        Json::parse(&r.stdout).unwrap_or_else(|e| panic!("whoami output: {e}\n{}", r.stdout))
    }

    /// `kubectl config view --raw -o json`, parsed; fails the test if kubectl fails.
    fn config_view(&self, kubeconfig: &Path) -> Json {
        let r = self.kubectl(kubeconfig, &["config", "view", "--raw", "-o", "json"]);
        assert_eq!(
            r.code,
            0,
            "kubectl config view with {}: {}\nserver log:\n{}",
            kubeconfig.display(),
            r.all(),
            self.log()
        );
        Json::parse(&r.stdout).unwrap_or_else(|e| panic!("config view output: {e}\n{}", r.stdout))
    }
}

// ---------------------------------------------------------------------------------------------
// Judging a kubeconfig.

/// Who a kubeconfig must authenticate as, and the files it must embed.
struct Identity {
    user: String,
    groups: Vec<String>,
    /// The client certificate and key, relative to out/.
    cert: String,
    key: String,
}

impl Identity {
    fn new(user: &str, orgs: &[&str], cert: &str, key: &str) -> Identity {
        let mut groups: Vec<String> = orgs.iter().map(|g| g.to_string()).collect();
        groups.push("system:authenticated".into());
        Identity {
            user: user.into(),
            groups,
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// `whoami` says exactly `want`'s user and groups.
fn assert_whoami(server: &ApiServer, kubeconfig: &Path, want: &Identity) {
    let review = server.whoami(kubeconfig);
    let what = kubeconfig.display();
    assert_eq!(review.at("kind").str(), Some("SelfSubjectReview"), "{what}");
    assert_eq!(
        review.at("apiVersion").str(),
        Some("authentication.k8s.io/v1"),
        "{what}"
    );
    assert_eq!(
        review.at("status.userInfo.username").str(),
        Some(want.user.as_str()),
        "{what}: user name"
    );
    assert_eq!(
        review.at("status.userInfo.groups").strings(),
        want.groups,
        "{what}: groups"
    );
}

/// The one element of a kubeconfig list, by the name kubeadm gives it.
fn only<'a>(config: &'a Json, list: &str, name: &str, what: &str) -> &'a Json {
    let items = config.at(list).list();
    assert_eq!(items.len(), 1, "{what}: {list} should hold one entry");
    assert_eq!(items[0].at("name").str(), Some(name), "{what}: {list} name");
    &items[0]
}

/// `config view` of an embedded-data kubeconfig: kubeadm's names (cluster `kubernetes`, user =
/// the CN, context `USER@kubernetes`), the server, and data that decodes to the files on disk.
fn assert_embedded_config(
    f: &Fixture,
    server: &ApiServer,
    rel: &str,
    ca: &str,
    url: &str,
    want: &Identity,
) {
    let config = server.config_view(&f.path(rel));
    let context = format!("{}@{CLUSTER}", want.user);
    assert_eq!(config.at("kind").str(), Some("Config"), "{rel}");
    assert_eq!(
        config.at("current-context").str(),
        Some(context.as_str()),
        "{rel}"
    );
    let cluster = only(&config, "clusters", CLUSTER, rel);
    assert_eq!(cluster.at("cluster.server").str(), Some(url), "{rel}");
    let bytes_of = |v: &Json, field: &str| {
        let text = v
            .at(field)
            .str()
            .unwrap_or_else(|| panic!("{rel}: no {field}"));
        unbase64(text).unwrap_or_else(|e| panic!("{rel}: {field} is not base64: {e}"))
    };
    assert_eq!(
        bytes_of(cluster, "cluster.certificate-authority-data"),
        f.bytes(ca),
        "{rel}: certificate-authority-data is not {ca}"
    );
    let user = only(&config, "users", &want.user, rel);
    assert_eq!(
        bytes_of(user, "user.client-certificate-data"),
        f.bytes(&want.cert),
        "{rel}: client-certificate-data is not {}",
        want.cert
    );
    assert_eq!(
        bytes_of(user, "user.client-key-data"),
        f.bytes(&want.key),
        "{rel}: client-key-data is not {}",
        want.key
    );
    let ctx = only(&config, "contexts", &context, rel);
    assert_eq!(ctx.at("context.cluster").str(), Some(CLUSTER), "{rel}");
    assert_eq!(
        ctx.at("context.user").str(),
        Some(want.user.as_str()),
        "{rel}"
    );
}

// ---------------------------------------------------------------------------------------------
// The default pki.toml.

#[test]
fn every_default_kubeconfig_authenticates_as_its_kubeadm_identity() {
    if tools().is_none() {
        return;
    }
    let f = kubeadm_tree();
    let ca = "pki/ca.crt";
    let users = |name: &str| {
        (
            format!("pki/users/{name}.crt"),
            format!("pki/users/{name}.key"),
        )
    };
    let mut expected: Vec<(String, Identity)> = Vec::new();
    for (conf, user, orgs, cert) in [
        (
            "admin.conf",
            "kubernetes-admin",
            &["kubeadm:cluster-admins"][..],
            "admin",
        ),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            &["system:masters"][..],
            "super-admin",
        ),
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            &[][..],
            "controller-manager",
        ),
        (
            "scheduler.conf",
            "system:kube-scheduler",
            &[][..],
            "scheduler",
        ),
    ] {
        let (c, k) = users(cert);
        expected.push((conf.into(), Identity::new(user, orgs, &c, &k)));
    }
    for node in ["cp-1", "worker-1", "worker-2"] {
        let conf = if node == "cp-1" {
            "kubelet.conf".to_string()
        } else {
            format!("nodes/{node}/kubelet.conf")
        };
        expected.push((
            conf,
            Identity::new(
                &format!("system:node:{node}"),
                &["system:nodes"],
                &format!("nodes/{node}/kubelet-client.crt"),
                &format!("nodes/{node}/kubelet-client.key"),
            ),
        ));
    }
    for node in ["worker-1", "worker-2"] {
        let (c, k) = users("kube-proxy");
        expected.push((
            format!("nodes/{node}/kube-proxy.conf"),
            Identity::new("system:kube-proxy", &[], &c, &k),
        ));
    }

    // Every kubeconfig the default pki.toml renders is judged here: a new one needs its identity.
    let mut rendered = f.files_ending(".conf");
    let mut listed: Vec<String> = expected.iter().map(|(c, _)| c.clone()).collect();
    rendered.sort();
    listed.sort();
    assert_eq!(rendered, listed, "the kubeconfigs of the default pki.toml");

    let server = ApiServer::start(&f, "pki/apiserver.crt", "pki/apiserver.key", ca);
    for (conf, want) in &expected {
        assert_eq!(mode(&f.path(conf)), 0o600, "{conf} holds a private key");
        assert_embedded_config(&f, &server, conf, ca, "https://10.0.0.11:6443", want);
        assert_whoami(&server, &f.path(conf), want);
    }
    // Each identity came from the certificate the server saw, not from anything kubectl sent.
    let log = server.log();
    for (_, want) in &expected {
        assert!(
            log.contains(&format!("authenticated as user='{}'", want.user)),
            "{log}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures of our own: ECDSA P-256 (fast), a loopback server name in every kubeconfig.

/// Three roots as kubeadm makes them, the API server's serving certificate, and `extra`.
fn three_cas(extra: &str) -> String {
    format!(
        r#"{KUBEADM_ROOTS}
[[cert]]
name = "apiserver"
issuer = "kubernetes-ca"
cn = "kube-apiserver"
dns = ["kubernetes", "localhost"]
ips = ["127.0.0.1"]
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
{extra}"#
    )
}

/// A `[[render]]` of templates/kubeconfig.hbs with the client key embedded.
fn kubeconfig_render(name: &str, ca: &str, client: &str) -> String {
    format!(
        r#"
[[render]]
name = "{name}"
template = "kubeconfig.hbs"
path = "{name}"
bind = {{ ca = "{ca}", client = "{client}" }}
secrets = ["client"]
vars = {{ cluster = "kubernetes", server = "https://127.0.0.1:6443" }}
"#
    )
}

fn start_on(f: &Fixture) -> ApiServer {
    ApiServer::start(f, "pki/apiserver.crt", "pki/apiserver.key", "pki/ca.crt")
}

#[test]
fn client_certificates_of_other_cas_are_refused_and_a_wrong_ca_fails_verification() {
    if tools().is_none() {
        return;
    }
    let mut spec = three_cas(
        r#"
[[cert]]
name = "front-proxy-client"
issuer = "front-proxy-ca"
cn = "front-proxy-client"
usage = ["client"]
cert = "pki/front-proxy-client.crt"
key = "pki/front-proxy-client.key"

[[cert]]
name = "apiserver-etcd-client"
issuer = "etcd-ca"
cn = "kube-apiserver-etcd-client"
usage = ["client"]
cert = "pki/apiserver-etcd-client.crt"
key = "pki/apiserver-etcd-client.key"

# The admin's identity, signed by the front-proxy CA: the name alone must not let it in.
[[cert]]
name = "impostor"
issuer = "front-proxy-ca"
cn = "kubernetes-admin"
o = ["system:masters"]
usage = ["client"]
cert = "pki/impostor.crt"
key = "pki/impostor.key"
"#,
    );
    for (name, ca, client) in [
        ("admin.conf", "kubernetes-ca", "admin"),
        ("front-proxy.conf", "kubernetes-ca", "front-proxy-client"),
        ("etcd-client.conf", "kubernetes-ca", "apiserver-etcd-client"),
        ("impostor.conf", "kubernetes-ca", "impostor"),
        // A serving certificate (serverAuth only) is no client certificate, even from the right CA.
        ("server-cert.conf", "kubernetes-ca", "apiserver"),
        ("wrong-ca.conf", "etcd-ca", "admin"),
    ] {
        spec.push_str(&kubeconfig_render(name, ca, client));
    }
    let f = Fixture::new(&spec);
    f.apply(&[]);

    // The control: the same server and template let the admin in.
    let admin = Identity::new(
        "kubernetes-admin",
        &["kubeadm:cluster-admins"],
        "pki/users/admin.crt",
        "pki/users/admin.key",
    );
    assert_whoami(&start_on(&f), &f.path("admin.conf"), &admin);

    // No client certificate at all (a bearer token instead): the server requires one.
    let ca_data = kubepki::render::b64(&f.read("pki/ca.crt"));
    let token = f.root().join("token.conf");
    std::fs::write(
        &token,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: {ca_data}\ncontexts:\n- name: token@kubernetes\n  context:\n    cluster: kubernetes\n    user: token\ncurrent-context: token@kubernetes\nusers:\n- name: token\n  user:\n    token: not-a-certificate\n"
        ),
    )
    .unwrap();

    // A server of its own for each case, so its log holds that case's refusals only.
    for (kubeconfig, why) in [
        (f.path("front-proxy.conf"), "certificate verify failed"),
        (f.path("etcd-client.conf"), "certificate verify failed"),
        (f.path("impostor.conf"), "certificate verify failed"),
        (f.path("server-cert.conf"), "certificate purpose"),
        (token, "did not return a certificate"),
    ] {
        let conf = kubeconfig.file_name().unwrap().to_string_lossy();
        let server = start_on(&f);
        let r = server.kubectl(&kubeconfig, &["auth", "whoami", "-o", "json"]);
        assert_ne!(
            r.code,
            0,
            "{conf} was let in: {}\n{}",
            r.all(),
            server.log()
        );
        assert!(!r.stdout.contains("username"), "{conf}: {}", r.stdout);
        let refusals = server.refusals();
        assert!(
            !refusals.is_empty() && refusals.iter().all(|l| l.contains(why)),
            "{conf}: the server should refuse the handshake because `{why}`: {}\n{}",
            r.all(),
            server.log()
        );
        assert!(
            !server.log().contains("authenticated as"),
            "{}",
            server.log()
        );
    }

    // kubectl checks the server against the kubeconfig's CA: the etcd CA did not sign it.
    let server = start_on(&f);
    let r = server.kubectl(&f.path("wrong-ca.conf"), &["auth", "whoami", "-o", "json"]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("certificate signed by unknown authority"),
        "{}",
        r.stderr
    );
    assert!(
        !server.log().contains("authenticated as"),
        "{}",
        server.log()
    );
}

#[test]
fn several_organizations_become_several_groups_in_whoami() {
    if tools().is_none() {
        return;
    }
    let mut spec = three_cas(
        r#"
[[cert]]
name = "jane"
issuer = "kubernetes-ca"
cn = "jane"
o = ["system:masters", "ops", "oncall", "team:platform"]
ou = ["sre", "emea"]
usage = ["client"]
cert = "pki/users/jane.crt"
key = "pki/users/jane.key"
"#,
    );
    spec.push_str(&kubeconfig_render("jane.conf", "kubernetes-ca", "jane"));
    let f = Fixture::new(&spec);
    f.apply(&[]);
    let server = start_on(&f);
    // Every O, in order; OU values are no groups.
    let jane = Identity::new(
        "jane",
        &["system:masters", "ops", "oncall", "team:platform"],
        "pki/users/jane.crt",
        "pki/users/jane.key",
    );
    assert_embedded_config(
        &f,
        &server,
        "jane.conf",
        "pki/ca.crt",
        "https://127.0.0.1:6443",
        &jane,
    );
    assert_whoami(&server, &f.path("jane.conf"), &jane);
}

#[test]
fn file_reference_kubeconfig_works_with_kubectl() {
    if tools().is_none() {
        return;
    }
    let f = Fixture::new("");
    let out = f.out();
    let dir = out.to_str().expect("a UTF-8 temporary path");
    let spec = three_cas(&format!(
        r#"
[[render]]
name = "admin-files.conf"
template = "kubeconfig-files.hbs"
path = "admin-files.conf"
bind = {{ ca = "kubernetes-ca", client = "admin" }}
vars = {{ cluster = "kubernetes", server = "https://127.0.0.1:6443", dir = {dir:?} }}
"#
    ));
    f.set_spec(&spec);
    f.apply(&[]);
    let rel = "admin-files.conf";
    let text = f.read(rel);
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert_eq!(
        mode(&f.path(rel)),
        0o644,
        "{rel} names files and holds no key"
    );

    let server = start_on(&f);
    let config = server.config_view(&f.path(rel));
    let path_of = |p: &str| f.path(p).display().to_string();
    let cluster = only(&config, "clusters", CLUSTER, rel);
    assert_eq!(
        cluster.at("cluster.certificate-authority").str(),
        Some(path_of("pki/ca.crt").as_str())
    );
    let user = only(&config, "users", "kubernetes-admin", rel);
    assert_eq!(
        user.at("user.client-certificate").str(),
        Some(path_of("pki/users/admin.crt").as_str())
    );
    assert_eq!(
        user.at("user.client-key").str(),
        Some(path_of("pki/users/admin.key").as_str())
    );
    assert_eq!(
        config.at("current-context").str(),
        Some("kubernetes-admin@kubernetes")
    );
    let admin = Identity::new(
        "kubernetes-admin",
        &["kubeadm:cluster-admins"],
        "pki/users/admin.crt",
        "pki/users/admin.key",
    );
    assert_whoami(&server, &f.path(rel), &admin);
}

// ---------------------------------------------------------------------------------------------
// Rendering: modes, escaping, errors. No external tools.

#[test]
fn rendered_files_with_keys_are_0600_and_nothing_is_html_escaped() {
    // base64 of these 16 bytes ends in `==`; every character HTML escaping would touch is here.
    let note = "a=b&c<d>\"e'f`g=h";
    let mut spec = three_cas(&format!(
        r#"
[[render]]
name = "raw"
template = "raw.hbs"
path = "raw.txt"
bind = {{ client = "admin" }}
secrets = ["client"]
vars = {{ note = {note:?} }}

[[render]]
name = "public"
template = "raw-public.hbs"
path = "public.txt"
bind = {{ client = "admin" }}
vars = {{ note = {note:?} }}
"#
    ));
    spec.push_str(&kubeconfig_render("admin.conf", "kubernetes-ca", "admin"));
    let f = Fixture::new(&spec);
    let templates = f.root().join("templates");
    std::fs::write(
        templates.join("raw.hbs"),
        "note: {{vars.note}}\nquoted: {{quote vars.note}}\nnote-b64: {{base64 vars.note}}\nkey-b64: {{client.key.b64}}\n{{client.key.pem}}",
    )
    .unwrap();
    std::fs::write(
        templates.join("raw-public.hbs"),
        "note: {{vars.note}}\ncert-b64: {{client.cert.b64}}\n",
    )
    .unwrap();
    f.apply(&[]);

    assert_eq!(
        mode(&f.path("raw.txt")),
        0o600,
        "raw.txt holds a private key"
    );
    assert_eq!(
        mode(&f.path("admin.conf")),
        0o600,
        "admin.conf holds a private key"
    );
    assert_eq!(
        mode(&f.path("public.txt")),
        0o644,
        "public.txt holds no key"
    );

    let raw = f.read("raw.txt");
    let field = |text: &str, name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no `{name}:` line in\n{text}"))
            .to_string()
    };
    assert_eq!(field(&raw, "note"), note);
    assert_eq!(field(&raw, "quoted"), r#""a=b&c<d>\"e'f`g=h""#);
    let note_b64 = field(&raw, "note-b64");
    assert!(note_b64.ends_with("=="), "{note_b64}");
    assert_eq!(unbase64(&note_b64).unwrap(), note.as_bytes());
    let key = f.bytes("pki/users/admin.key");
    assert_eq!(unbase64(&field(&raw, "key-b64")).unwrap(), key);
    assert!(
        raw.ends_with(std::str::from_utf8(&key).unwrap()),
        "the key PEM is verbatim at the end:\n{raw}"
    );
    let public = f.read("public.txt");
    assert_eq!(field(&public, "note"), note);
    assert_eq!(
        unbase64(&field(&public, "cert-b64")).unwrap(),
        f.bytes("pki/users/admin.crt")
    );
    let conf = f.read("admin.conf");
    for line in conf.lines().filter(|l| l.contains("-data: ")) {
        let (_, data) = line.split_once("-data: ").unwrap();
        unbase64(data).unwrap_or_else(|e| panic!("admin.conf: {line}: {e}"));
    }
    for (rel, text) in [
        ("raw.txt", &raw),
        ("public.txt", &public),
        ("admin.conf", &conf),
    ] {
        for entity in [
            "&#x3D;", "&amp;", "&lt;", "&gt;", "&quot;", "&#x27;", "&#x60;",
        ] {
            assert!(
                !text.contains(entity),
                "{rel} is HTML-escaped ({entity}):\n{text}"
            );
        }
    }
}

/// Whether `stderr` points at `file` line `line`: `FILE:LINE:COL` (as diagnostics print it) or
/// `FILE` ... `line LINE`.
fn points_at(stderr: &str, file: &str, line: usize) -> bool {
    stderr.contains(&format!("{file}:{line}:"))
        || stderr
            .lines()
            .any(|l| l.contains(file) && l.contains(&format!("line {line}")))
}

#[test]
fn template_errors_name_file_line_and_cause_and_write_nothing() {
    let base = three_cas(
        r#"
[[render]]
name = "msg"
template = "msg.hbs"
path = "msg.txt"
bind = { client = "admin" }
secrets = ["client"]
vars = { greeting = "hello" }
"#,
    );
    // (case, template, line of the error, words of the cause)
    let cases: [(&str, &str, usize, &[&str]); 3] = [
        (
            "undefined variable",
            "# for {{client.cert.subject.cn}}\ngreeting: {{vars.greeting}}\nfarewell: {{vars.farewell}}\n",
            3,
            &["vars.farewell"],
        ),
        (
            "unknown helper",
            "# for {{client.cert.subject.cn}}\n\nshout: {{upcase vars.greeting}}\n",
            3,
            &["upcase", "elper"],
        ),
        (
            "bad syntax",
            "# for {{client.cert.subject.cn}}\ngreeting: {{vars.greeting}\n",
            2,
            &["syntax"],
        ),
    ];
    let good = "greeting: {{vars.greeting}} {{client.cert.subject.cn}}\n";
    for (case, template, line, cause) in cases {
        let check = |r: &Run| {
            assert_eq!(r.code, 2, "{case}: {}", r.all());
            assert!(
                points_at(&r.stderr, "templates/msg.hbs", line),
                "{case}: the error should point at templates/msg.hbs line {line}:\n{}",
                r.stderr
            );
            for word in cause {
                assert!(
                    r.stderr.contains(word),
                    "{case}: no `{word}` in\n{}",
                    r.stderr
                );
            }
        };

        // A first run: out/ is not created.
        let f = Fixture::new(&base);
        std::fs::write(f.root().join("templates/msg.hbs"), template).unwrap();
        check(&f.pki(&[]));
        assert!(
            !f.out().exists(),
            "{case}: a failed first run left {:?}",
            f.hashes()
        );

        // An existing out/: a run that would also make a new certificate changes nothing.
        let f = Fixture::new(&base);
        std::fs::write(f.root().join("templates/msg.hbs"), good).unwrap();
        f.apply(&[]);
        let before = f.hashes();
        std::fs::write(f.root().join("templates/msg.hbs"), template).unwrap();
        f.set_spec(&format!(
            "{base}\n[[cert]]\nname = \"new\"\nissuer = \"kubernetes-ca\"\ncn = \"new\"\nusage = [\"client\"]\ncert = \"new.crt\"\nkey = \"new.key\"\n"
        ));
        check(&f.pki(&[]));
        assert_eq!(f.hashes(), before, "{case}: out/ changed");
        // --check reports the same error, with the same exit code.
        check(&f.pki(&["--check"]));
    }
}

#[test]
fn a_ca_private_key_in_a_template_needs_allow_ca_key() {
    let render = r#"
[[render]]
name = "ca-secret"
template = "tls-secret.yaml.hbs"
path = "ca-secret.yaml"
bind = { cert = "kubernetes-ca" }
secrets = ["cert"]
vars = { name = "kubernetes-ca", namespace = "kube-system" }
"#;
    let spec = three_cas(render);
    let f = Fixture::new(&spec);
    let r = f.pki(&[]);
    assert_eq!(r.code, 2, "{}", r.all());
    let (line, text) = spec
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with("secrets = [\"cert\"]"))
        .unwrap();
    let col = text.find("\"cert\"").unwrap() + 1;
    let at = format!("pki.toml:{}:{col}", line + 1);
    assert!(r.stderr.contains(&at), "no `{at}` in\n{}", r.stderr);
    assert!(r.stderr.contains("allow-ca-key = true"), "{}", r.stderr);
    assert!(r.stderr.contains("kubernetes-ca"), "{}", r.stderr);
    assert!(
        !f.out().exists(),
        "a rejected pki.toml wrote {:?}",
        f.hashes()
    );

    // Allowed explicitly, the file is made, with the CA key, as a secret.
    f.set_spec(&three_cas(&render.replace(
        "secrets = [\"cert\"]",
        "secrets = [\"cert\"]\nallow-ca-key = true",
    )));
    f.apply(&[]);
    assert_eq!(mode(&f.path("ca-secret.yaml")), 0o600);
    let yaml = f.read("ca-secret.yaml");
    let key = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("tls.key: "))
        .unwrap_or_else(|| panic!("no tls.key in\n{yaml}"));
    assert_eq!(unbase64(key).unwrap(), f.bytes("pki/ca.key"));
}

// ---------------------------------------------------------------------------------------------
// The test server's own contract.

#[test]
fn test_apiserver_stops_when_stdin_closes_and_on_sigterm() {
    if tools().is_none() {
        return;
    }
    let f = Fixture::new(&three_cas(""));
    f.apply(&[]);

    let mut server = start_on(&f);
    drop(server.proc.child.stdin.take());
    let status = server.proc.wait_timeout(Duration::from_secs(30));
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "closing stdin should stop the server:\n{}",
        server.log()
    );
    assert!(server.log().contains("stdin closed"), "{}", server.log());

    let mut server = start_on(&f);
    let pid = server.proc.id().to_string();
    let r = run(Command::new("kill").args(["-TERM", &pid]));
    assert_eq!(r.code, 0, "{}", r.all());
    let status = server.proc.wait_timeout(Duration::from_secs(30));
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "SIGTERM should stop the server:\n{}",
        server.log()
    );
    assert!(server.log().contains("signal 15"), "{}", server.log());
}

// ---------------------------------------------------------------------------------------------
// Reading JSON, written here so that the test binary judges with code of its own (base64 is
// support's `unbase64`).

/// A JSON value (enough JSON to read kubectl's output).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

static NULL: Json = Json::Null;

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.err("the end of the input"));
        }
        Ok(v)
    }

    /// The member at a dotted path of object keys (`status.userInfo.username`); Null if absent.
    fn at(&self, path: &str) -> &Json {
        path.split('.').fold(self, |v, key| match v {
            Json::Obj(members) => members
                .iter()
                .find(|(k, _)| k == key)
                .map_or(&NULL, |(_, v)| v),
            _ => &NULL,
        })
    }

    fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    fn list(&self) -> &[Json] {
        match self {
            Json::Arr(items) => items,
            _ => &[],
        }
    }

    /// The strings of an array (anything else in it fails the test).
    fn strings(&self) -> Vec<String> {
        self.list()
            .iter()
            .map(|v| {
                v.str()
                    .unwrap_or_else(|| panic!("not a string: {v:?}"))
                    .to_string()
            })
            .collect()
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn err(&self, want: &str) -> String {
        format!("expected {want} at byte {}", self.i)
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        let hit = self.s[self.i..].starts_with(lit.as_bytes());
        if hit {
            self.i += lit.len();
        }
        hit
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Json::Obj(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(":") {
                        return Err(self.err("`:`"));
                    }
                    members.push((key, self.value()?));
                    self.ws();
                    if self.eat("}") {
                        return Ok(Json::Obj(members));
                    }
                    if !self.eat(",") {
                        return Err(self.err("`,` or `}`"));
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(Json::Arr(items));
                    }
                    if !self.eat(",") {
                        return Err(self.err("`,` or `]`"));
                    }
                }
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') if self.eat("true") => Ok(Json::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(Json::Bool(false)),
            Some(b'n') if self.eat("null") => Ok(Json::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while matches!(
                    self.s.get(self.i),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .map(Json::Num)
                    .ok_or_else(|| self.err("a number"))
            }
            _ => Err(self.err("a JSON value")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if !self.eat("\"") {
            return Err(self.err("a string"));
        }
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return Err(self.err("the closing `\"`"));
            };
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.err("an escape"));
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return Err(self.err("a valid escape")),
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => out.push(b),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| self.err("4 hex digits"))?;
        let v = u32::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).unwrap();
        self.i += 4;
        Ok(v)
    }

    fn unicode(&mut self) -> Result<char, String> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.eat("\\u") {
                return Err(self.err("a low surrogate"));
            }
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err("a low surrogate"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("a Unicode scalar value"))
    }
}

#[test]
fn json_and_base64_readers_decode_what_they_should() {
    let v = Json::parse(
        r#" {"a": {"b": ["x", "y\u00e9\ud83d\ude00\n\"q\""], "n": -1.5e3, "t": true, "z": null}, "e": {}, "l": []} "#,
    )
    .unwrap();
    assert_eq!(v.at("a.b").strings(), ["x", "yé😀\n\"q\""]);
    assert_eq!(v.at("a.n"), &Json::Num(-1500.0));
    assert_eq!(v.at("a.t"), &Json::Bool(true));
    assert_eq!(v.at("a.z"), &Json::Null);
    assert_eq!(v.at("a.missing.deeper"), &Json::Null);
    assert_eq!(v.at("l").list(), &[]);
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\" 1}",
        "\"\\x\"",
        "[1] 2",
        "\"\\ud800\"",
    ] {
        assert!(Json::parse(bad).is_err(), "{bad:?} parsed");
    }
    assert_eq!(unbase64("").unwrap(), b"");
    assert_eq!(unbase64("Zg==").unwrap(), b"f");
    assert_eq!(unbase64("Zm8=").unwrap(), b"fo");
    assert_eq!(unbase64("Zm9v").unwrap(), b"foo");
    assert_eq!(unbase64("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    for bad in ["Zg", "Zg&#x3D;&#x3D;", "Z===", "Zg==Zm9v", "Zm9v\n", "Zm-v"] {
        assert!(unbase64(bad).is_err(), "{bad:?} decoded");
    }
}
