//! The restart plan: per node, in order, which components restart or reload because a file they
//! read (`consumers`) changes: a SAN change of the apiserver, a CA re-key, a kubelet serving
//! certificate; in the text and the JSON; a misspelt component is a diagnostic.

use serde_json::Value;

use crate::support::*;

const T0: &str = "2026-01-01T00:00:00Z";

/// Two nodes, as kubeadm's files name what reads them.
const SPEC: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[node]]
name = "cp-1"
ips = ["10.0.0.1"]
role = "control-plane"

[[node]]
name = "w-1"
ips = ["10.0.0.2"]
role = "worker"

[[ca]]
name = "kubernetes-ca"
consumers = ["kube-apiserver", "kubelet"]
cn = "kubernetes"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[ca]]
name = "etcd-ca"
consumers = ["etcd", "kube-apiserver"]
cn = "etcd-ca"
cert = "pki/etcd/ca.crt"
key = "pki/etcd/ca.key"

[[cert]]
name = "apiserver"
consumers = ["kube-apiserver"]
issuer = "kubernetes-ca"
for-each-node = "control-plane"
cn = "kube-apiserver"
dns = ["kubernetes"]
usage = ["server"]
cert = "nodes/{node}/apiserver.crt"
key = "nodes/{node}/apiserver.key"

[[cert]]
name = "kubelet-serving"
consumers = ["kubelet"]
issuer = "kubernetes-ca"
for-each-node = "all"
cn = "system:node:{node}"
dns = ["{node}"]
usage = ["server"]
cert = "nodes/{node}/kubelet.crt"
key = "nodes/{node}/kubelet.key"

[[cert]]
name = "etcd-server"
consumers = ["etcd"]
issuer = "etcd-ca"
for-each-node = "control-plane"
cn = "{node}"
dns = ["{node}"]
usage = ["server", "client"]
cert = "nodes/{node}/etcd-server.crt"
key = "nodes/{node}/etcd-server.key"
"#;

fn made() -> Fixture {
    let f = Fixture::new(SPEC);
    let r = f.apply(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    f
}

/// The restart section of a `--check` at `T0`, one line per node (without the heading).
fn restart_lines(f: &Fixture, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--check", "--now", T0];
    all.extend_from_slice(args);
    let r = f.pki(&all);
    assert_eq!(r.code, 1, "{}", r.all());
    let Some((_, section)) = r.stdout.split_once("each healthy before the next):\n") else {
        panic!("no restart plan:\n{}", r.stdout);
    };
    section
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn a_san_change_of_the_apiserver_is_picked_up_on_its_node_only() {
    let f = made();
    f.edit_spec(
        r#"dns = ["kubernetes"]"#,
        r#"dns = ["kubernetes", "api.example"]"#,
    );
    assert_eq!(
        restart_lines(&f, &[]),
        ["cp-1: kube-apiserver (apiserver@cp-1) reloads by itself"]
    );
}

#[test]
fn a_ca_re_key_restarts_every_reader_control_plane_first() {
    let f = made();
    assert_eq!(
        restart_lines(&f, &["--rekey", "etcd-ca"]),
        ["cp-1: restart etcd (etcd-ca, etcd-server@cp-1), kube-apiserver (etcd-ca)"]
    );
    let md = f.pki(&[
        "--check", "--rekey", "etcd-ca", "--format", "markdown", "--now", T0,
    ]);
    assert!(
        md.stdout.contains(
            "- `cp-1`: restart etcd (etcd-ca, etcd-server@cp-1), kube-apiserver (etcd-ca)\n"
        ),
        "{}",
        md.stdout
    );
    assert_eq!(
        restart_lines(&f, &["--rekey", "kubernetes-ca"]),
        [
            "cp-1: restart kube-apiserver (kubernetes-ca, apiserver@cp-1), kubelet (kubernetes-ca, kubelet-serving@cp-1)",
            "w-1: restart kubelet (kubernetes-ca, kubelet-serving@w-1)",
        ]
    );
}

#[test]
fn a_kubelet_serving_certificate_reloads_by_itself_and_json_says_so() {
    let f = made();
    assert_eq!(
        restart_lines(&f, &["--renew", "kubelet-serving@w-1"]),
        ["w-1: kubelet (kubelet-serving@w-1) reloads by itself"]
    );
    let r = f.pki(&[
        "--check",
        "--renew",
        "kubelet-serving",
        "--format",
        "json",
        "--now",
        T0,
    ]);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("schemas/plan.v1.json")).unwrap(),
    )
    .unwrap();
    validate(&schema, &doc, "$");
    let expected = serde_json::json!([
        {"node": "cp-1", "control_plane": true, "components": [
            {"component": "kubelet", "pickup": "reloads", "items": ["kubelet-serving@cp-1"]}]},
        {"node": "w-1", "control_plane": false, "components": [
            {"component": "kubelet", "pickup": "reloads", "items": ["kubelet-serving@w-1"]}]},
    ]);
    assert_eq!(doc["restarts"], expected);
}

#[test]
fn after_an_apply_each_node_is_named_with_what_to_deploy() {
    let f = made();
    let r = f.apply(&["--renew", "etcd-server", "--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("  cp-1: restart etcd (etcd-server@cp-1)\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("deploy to cp-1: `cargo xtask deploy --node cp-1 --to DIR`"),
        "{}",
        r.stdout
    );
    // Nothing read by a declared consumer changed: no restart section at all.
    let r = f.pki(&["--check", "--now", T0]);
    assert!(!r.stdout.contains("restart"), "{}", r.stdout);
}

#[test]
fn a_misspelt_component_names_the_nearest() {
    let f = Fixture::new(&SPEC.replace(r#"consumers = ["etcd"]"#, r#"consumers = ["etcdd"]"#));
    let r = f.pki(&["--check", "--now", T0]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("unknown component `etcdd` in consumers"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--> pki.toml:"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `etcd`?"), "{}", r.stderr);
}

/// Workers that do the same are one line (their own items written `name@NODE`); control-plane
/// nodes keep a line each; a CA's new key is said not to be seamless.
#[test]
fn like_workers_share_a_line_and_a_new_ca_key_is_a_warning() {
    let workers: String = (2..=6)
        .map(|i| {
            format!(
                "[[node]]\nname = \"w-{i}\"\nips = [\"10.0.0.{}\"]\nrole = \"worker\"\n\n",
                i + 1
            )
        })
        .collect();
    let f = Fixture::new(&SPEC.replacen("[[ca]]", &format!("{workers}[[ca]]"), 1));
    assert_eq!(f.apply(&["--now", T0]).code, 0);
    let r = f.pki(&["--check", "--rekey", "kubernetes-ca", "--now", T0]);
    assert_eq!(r.code, 1, "{}", r.all());
    let lines: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(lines[0].starts_with("  cp-1: restart "), "{}", r.stdout);
    assert!(
        lines[1].starts_with("  w-1 … w-6 (6 nodes, each in turn): restart kubelet (kubernetes-ca, kubelet-serving@NODE)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("warning: kubernetes-ca gets a new key: what it signs is refused"),
        "{}",
        r.stdout
    );
}
