//! Edge cases at the edges of the inputs: the clock as given on the command line, what a
//! template sees of items that do not exist yet, and the umask under which folders are made.

use std::process::Command;

use kubepki::render::{Material, PENDING};
use kubepki::spec::ItemKind;

use crate::support::*;

const SPEC: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "ca"
cn = "test-ca"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "leaf"
issuer = "ca"
cn = "leaf"
usage = ["client"]
cert = "pki/users/leaf.crt"
key = "pki/users/leaf.key"

[[keypair]]
name = "sa"
private = "pki/sa.key"
public = "pki/sa.pub"

[[render]]
name = "conf"
template = "secret.yaml.hbs"
path = "manifests/secret.yaml"
bind = { ca = "ca", leaf = "leaf", sa = "sa" }
secrets = ["ca", "leaf", "sa"]
allow-ca-key = true
"#;

/// The time elements of `cert`'s DER, in order, as openssl's asn1parse names them:
/// (`UTCTIME` or `GENERALIZEDTIME`, value).
fn times(cert: &std::path::Path) -> Vec<(String, String)> {
    let r = run(Command::new("openssl").args(["asn1parse", "-in"]).arg(cert));
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("prim: ")?;
            let (tag, value) = rest.split_once(':')?;
            let tag = tag.trim();
            tag.ends_with("TIME")
                .then(|| (tag.to_string(), value.trim().to_string()))
        })
        .collect()
}

#[test]
fn the_clock_is_taken_in_utc_whatever_offset_it_is_written_with() {
    if tool("openssl", "openssl").is_none() {
        return;
    }
    let f = Fixture::new(SPEC);
    write_template(&f);
    // 2049-12-31T23:00Z: notBefore (5 minutes earlier) is in 2049, a UTCTime (RFC 5280 4.1.2.5),
    // though the local date written is in 2050.
    f.apply(&["--now", "2050-01-01T04:00:00+05:00"]);
    let t = times(&f.path("pki/ca.crt"));
    assert_eq!(t[0], ("UTCTIME".into(), "491231225500Z".into()), "{t:?}");
    assert_eq!(t[1].0, "GENERALIZEDTIME", "notAfter is in 2059: {t:?}");
    // 2050-01-01T03:00Z, written as a 2049 local time: a GeneralizedTime, and no crash.
    let g = Fixture::new(SPEC);
    write_template(&g);
    g.apply(&["--now", "2049-12-31T22:00:00-05:00"]);
    let t = times(&g.path("pki/users/leaf.crt"));
    assert_eq!(
        t[0],
        ("GENERALIZEDTIME".into(), "20500101025500Z".into()),
        "{t:?}"
    );
    let r = openssl_verify(
        &g.path("pki/ca.crt"),
        &[&g.path("pki/users/leaf.crt")],
        "sslclient",
        // 2050-01-01T03:00:00Z
        &["-attime", "2524618800"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
}

fn write_template(f: &Fixture) {
    std::fs::write(
        f.root().join("templates/secret.yaml.hbs"),
        "ca: {{ca.cert.b64}}\ncakey: {{ca.key.b64}}\ncert: {{leaf.cert.b64}}\nkey: {{leaf.key.b64}}\npub: {{sa.public_key.b64}}\nsakey: {{sa.key.b64}}\n",
    )
    .unwrap();
}

#[test]
fn values_not_known_yet_read_as_the_placeholder_in_every_form() {
    // Before apply has made them, a certificate's, a key's and a public key's base64 forms are
    // all the placeholder itself, as their PEM forms are: never the base64 of the placeholder.
    let f = Fixture::new(SPEC);
    write_template(&f);
    let spec = kubepki::load(&f.sources()).expect("valid");
    let r = spec
        .items
        .iter()
        .find_map(|i| match &i.kind {
            ItemKind::Render(r) => Some(r),
            _ => None,
        })
        .unwrap();
    let ctx = kubepki::render::context(&spec, r, &|_| Material::default());
    for (item, part, form) in [
        ("ca", "cert", "pem"),
        ("ca", "cert", "b64"),
        ("ca", "key", "pem"),
        ("ca", "key", "b64"),
        ("leaf", "cert", "b64"),
        ("leaf", "key", "b64"),
        ("sa", "public_key", "pem"),
        ("sa", "public_key", "b64"),
        ("sa", "key", "pem"),
        ("sa", "key", "b64"),
    ] {
        assert_eq!(ctx[item][part][form], PENDING, "{item}.{part}.{form}");
    }
}

#[test]
fn new_folders_follow_the_umask() {
    // Under `umask 077` every folder the run makes is private (0700); files keep their own
    // modes (keys 0600, certificates 0644).
    let f = Fixture::new(SPEC);
    write_template(&f);
    let cmd = f.command(&[]);
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("umask 077 && exec \"$@\"")
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .current_dir(f.root())
        .env("NO_COLOR", "1")
        .env_remove("SOURCE_DATE_EPOCH");
    let r = run(&mut sh);
    assert_eq!(r.code, 0, "{}", r.all());
    for dir in ["", "pki", "pki/users", "manifests"] {
        assert_eq!(mode(&f.path(dir)), 0o700, "out/{dir}");
    }
    assert_eq!(mode(&f.path("pki/users/leaf.key")), 0o600);
    assert_eq!(mode(&f.path("pki/users/leaf.crt")), 0o644);
}

#[test]
fn every_render_sees_the_file_vars_under_its_own() {
    let spec = r#"[defaults]
algorithm = "ecdsa-p256"

[vars]
server = "https://10.0.0.1:6443"
cluster = "global"

[[node]]
name = "w-1"
ips = ["10.0.0.21"]
role = "worker"

# A PKI declares a CA: a file without one is refused.
[[ca]]
name = "ca"
cn = "ca"
cert = "ca.crt"
key = "ca.key"

[[render]]
name = "plain"
template = "vars.hbs"
path = "plain.txt"

[[render]]
name = "own"
template = "vars.hbs"
path = "own.txt"
vars = { cluster = "mine" }

[[render]]
name = "per-node"
template = "vars.hbs"
path = "{node}.txt"
for-each-node = "all"
vars = { cluster = "{node}" }
"#;
    let f = Fixture::new(spec);
    std::fs::write(
        f.root().join("templates/vars.hbs"),
        "{{vars.server}} {{vars.cluster}}\n",
    )
    .unwrap();
    f.apply(&[]);
    assert_eq!(f.read("plain.txt"), "https://10.0.0.1:6443 global\n");
    assert_eq!(f.read("own.txt"), "https://10.0.0.1:6443 mine\n");
    assert_eq!(f.read("w-1.txt"), "https://10.0.0.1:6443 w-1\n");
    // One place to change the API server's address: every file that uses it follows.
    f.edit_spec("https://10.0.0.1:6443", "https://10.0.0.2:6443");
    let r = f.apply(&[]);
    assert!(r.stdout.contains("plan: 3 re-render"), "{}", r.stdout);
    assert_eq!(f.read("own.txt"), "https://10.0.0.2:6443 mine\n");
}

#[test]
fn one_mistake_is_reported_once() {
    // A bad node address, used through `{node.ip}` by two per-node entries: one error.
    let spec = r#"[defaults]
algorithm = "ecdsa-p256"

[[node]]
name = "w-1"
ips = ["10.0.0.312"]
role = "worker"

[[node]]
name = "w-2"
ips = ["10.0.0.22"]
role = "worker"

[[ca]]
name = "ca"
cn = "ca"
cert = "ca.crt"
key = "ca.key"

[[cert]]
name = "kubelet"
issuer = "ca"
for-each-node = "all"
cn = "{node}"
ips = ["{node.ip}"]
usage = ["server"]
cert = "{node}/kubelet.crt"
key = "{node}/kubelet.key"

[[render]]
name = "info"
template = "info.hbs"
path = "{node}/info.txt"
for-each-node = "all"
"#;
    let f = Fixture::new(spec);
    std::fs::write(f.root().join("templates/info.hbs"), "{{node.name}}\n").unwrap();
    let r = f.pki(&[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("invalid IP address `10.0.0.312`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("pki.toml has 1 error;"), "{}", r.stderr);

    // A template error shared by every instance of a per-node render: told once, naming them.
    f.edit_spec("10.0.0.312", "10.0.0.21");
    std::fs::write(f.root().join("templates/info.hbs"), "{{node.nmae}}\n").unwrap();
    let r = f.pki(&[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(
        r.stderr.matches("undefined variable `node.nmae`").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("info@w-1, info@w-2: "), "{}", r.stderr);
    assert!(r.stderr.contains("1 problem stops the run"), "{}", r.stderr);
}

#[test]
fn check_names_the_command_that_carries_out_its_plan() {
    let f = Fixture::new(SPEC);
    std::fs::write(
        f.root().join("templates/secret.yaml.hbs"),
        "{{leaf.cert.pem}}\n",
    )
    .unwrap();
    f.apply(&[]);
    let r = f.pki(&["--check", "--rekey", "leaf"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("run `cargo xtask pki --rekey leaf`"),
        "{}",
        r.stdout
    );
    let r = f.pki(&["--check"]);
    assert_eq!(r.code, 0, "{}", r.all());
}
