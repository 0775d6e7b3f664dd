//! No private key material in any output: every command (apply, --check, --diff, --check --diff,
//! --rekey, errors, bad input, damaged files) is run, and its stdout and stderr are searched for
//! every private key the tree ever held, in every form a leak could take (PEM lines, the base64
//! that templates embed, the DER as hex or as a Rust byte list), and for "PRIVATE KEY" at all.
//! `Debug` of the library's types that hold keys is searched the same way.

use std::collections::BTreeSet;

use crate::support::*;

/// RSA, ECDSA and Ed25519 keys (their PEM bodies differ in shape), two kubeconfig-style files and
/// a TLS Secret that embed keys, and a key pair.
const SPEC: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "ca"
cn = "test-ca"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "server"
issuer = "ca"
cn = "server"
dns = ["server.example"]
algorithm = "rsa-2048"
usage = ["server"]
cert = "pki/server.crt"
key = "pki/server.key"

[[cert]]
name = "client"
issuer = "ca"
cn = "client"
usage = ["client"]
cert = "pki/client.crt"
key = "pki/client.key"

[[cert]]
name = "edge"
issuer = "ca"
cn = "edge"
algorithm = "ed25519"
usage = ["client"]
cert = "pki/edge.crt"
key = "pki/edge.key"

[[keypair]]
name = "sa"
private = "pki/sa.key"
public = "pki/sa.pub"

[[render]]
name = "client.conf"
template = "kubeconfig.hbs"
path = "client.conf"
bind = { ca = "ca", client = "client" }
secrets = ["client"]
vars = { cluster = "test", server = "https://127.0.0.1:6443" }

[[render]]
name = "edge.conf"
template = "kubeconfig.hbs"
path = "edge.conf"
bind = { ca = "ca", client = "edge" }
secrets = ["client"]
vars = { cluster = "test", server = "https://127.0.0.1:6443" }

[[render]]
name = "server-secret"
template = "tls-secret.yaml.hbs"
path = "server-secret.yaml"
bind = { cert = "server" }
secrets = ["cert"]
vars = { name = "server-tls", namespace = "default" }
"#;

#[test]
fn no_command_prints_private_key_material() {
    let f = Fixture::new(SPEC);
    let mut keys = BTreeSet::new();
    let mut outputs: Vec<(String, String)> = Vec::new();
    // Every private key out/ ever held (the set only grows: rotated keys must not leak either).
    let mut run =
        |f: &Fixture, label: &str, args: &[&str], code: i32, keys: &mut BTreeSet<String>| {
            keys.extend(f.private_keys());
            let r = f.pki(args);
            assert_eq!(r.code, code, "{label}: {}", r.all());
            keys.extend(f.private_keys());
            outputs.push((label.to_string(), r.all()));
        };

    run(&f, "apply", &["--diff"], 0, &mut keys);
    run(&f, "--check", &["--check"], 0, &mut keys);
    run(
        &f,
        "--check --diff (up to date)",
        &["--check", "--diff"],
        0,
        &mut keys,
    );

    // Changes that re-sign and re-render files holding keys, previewed and then made.
    f.set_spec(&SPEC.replace(r#"cn = "client""#, r#"cn = "client-2""#));
    run(
        &f,
        "--check --diff (re-sign)",
        &["--check", "--diff"],
        1,
        &mut keys,
    );
    run(&f, "--diff (re-sign)", &["--diff"], 0, &mut keys);
    run(
        &f,
        "--check --diff --rekey",
        &["--check", "--diff", "--rekey", "client", "server"],
        1,
        &mut keys,
    );
    run(
        &f,
        "--rekey --diff",
        &["--rekey", "client", "server", "edge", "sa", "--diff"],
        0,
        &mut keys,
    );
    run(&f, "--rekey ca", &["--rekey", "ca"], 0, &mut keys);

    // A rendered file that holds a key, edited by hand: its diff shows the edit, not the key.
    let conf = f.read("client.conf");
    std::fs::write(
        f.path("client.conf"),
        conf.replace("kind: Config", "kind: Konfig"),
    )
    .unwrap();
    run(
        &f,
        "--check --diff (edited kubeconfig)",
        &["--check", "--diff"],
        1,
        &mut keys,
    );
    // A private key pasted where a rendered file goes, and one where a certificate goes.
    std::fs::copy(f.path("pki/ca.key"), f.path("edge.conf")).unwrap();
    std::fs::copy(f.path("pki/server.key"), f.path("pki/client.crt")).unwrap();
    run(
        &f,
        "--check --diff (keys misplaced)",
        &["--check", "--diff"],
        1,
        &mut keys,
    );
    run(&f, "--diff (keys misplaced)", &["--diff"], 0, &mut keys);
    // A stray key (an orphan), listed and pruned. (A copy of a declared key would be kept: it
    // cannot be told from the original.)
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(f.path("stray.key"))
        .status()
        .unwrap();
    assert!(made.success());
    run(
        &f,
        "--check (orphan key)",
        &["--check", "--prune"],
        1,
        &mut keys,
    );
    run(&f, "--prune", &["--prune", "--diff"], 0, &mut keys);

    // Damaged keys: a leaf key cut short is replaced, a CA key cut short stops the run.
    let client_key = f.read("pki/client.key");
    std::fs::write(
        f.path("pki/client.key"),
        &client_key[..client_key.len() / 2],
    )
    .unwrap();
    run(
        &f,
        "--check --diff (damaged leaf key)",
        &["--check", "--diff"],
        1,
        &mut keys,
    );
    run(&f, "--diff (damaged leaf key)", &["--diff"], 0, &mut keys);
    let ca_key = f.read("pki/ca.key");
    std::fs::write(f.path("pki/ca.key"), &ca_key[..ca_key.len() - 40]).unwrap();
    run(&f, "damaged CA key", &["--diff"], 2, &mut keys);
    run(
        &f,
        "damaged CA key --check",
        &["--check", "--diff"],
        2,
        &mut keys,
    );
    std::fs::write(f.path("pki/ca.key"), &ca_key).unwrap();

    // Errors: bad input, a template that misuses a bound key, the lock held.
    f.set_spec(&SPEC.replace(r#"issuer = "ca""#, r#"issuer = "cb""#));
    run(&f, "bad input", &[], 2, &mut keys);
    std::fs::write(
        f.root().join("templates/bad.hbs"),
        "a: {{indent client.key.pem 2}}\nb: {{client.key.nope}}\n",
    )
    .unwrap();
    f.set_spec(&format!(
        "{SPEC}\n[[render]]\nname = \"bad\"\ntemplate = \"bad.hbs\"\npath = \"bad\"\nbind = {{ client = \"client\" }}\nsecrets = [\"client\"]\n"
    ));
    run(&f, "template error", &["--diff"], 2, &mut keys);
    f.set_spec(SPEC);
    let lock = std::fs::File::options()
        .write(true)
        .open(f.path(".kubepki.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    run(&f, "locked", &["--rekey", "client"], 2, &mut keys);
    drop(lock);

    assert!(keys.len() >= 11, "rotations were seen: {} keys", keys.len());
    for (label, text) in &outputs {
        assert_no_key_material(label, text, &keys);
    }
}

#[test]
fn debug_of_library_types_never_prints_keys() {
    use kubepki::{apply, plan, scan};
    let f = Fixture::new(SPEC);
    f.apply(&[]);
    let mut keys = f.private_keys();

    let root = f.root();
    let sources = f.sources();
    let spec = kubepki::load(&sources).unwrap();
    let observed = scan::observe(&f.out()).unwrap();
    let shown_observed = format!("{observed:?}");
    let disk = kubepki::disk::decode(observed, &kubepki::layout::key_companions(&spec));
    let now = time::OffsetDateTime::now_utc();
    // A plan that re-keys, so building it makes new keys in memory.
    let opts = plan::Request {
        rekey: ["client".to_string(), "sa".to_string()].into(),
        out: "out".into(),
        diffs: true,
        renew: Default::default(),
    };
    let the_plan = plan::plan(&spec, &sources, &disk, now, &opts);
    let settings = apply::Settings {
        diffs: true,
        ..apply::Settings::at(now)
    };
    let built = apply::build(&spec, &sources, &disk, &the_plan, &settings).unwrap();
    for w in &built.files {
        if let Ok(text) = std::str::from_utf8(&w.bytes)
            && kubepki::x509::parse_key(text.as_bytes()).is_ok()
        {
            keys.insert(text.to_string());
        }
    }
    assert!(keys.len() >= 7, "new keys were made: {}", keys.len());
    let key_facts = key_facts(&f.path("pki/client.key"));
    // The rendered previews in a plan hold keys (kubeconfigs) when nothing they read changes.
    let the_plan_now = plan::plan(&spec, &sources, &disk, now, &plan::Request::default());
    assert!(
        the_plan_now.steps.iter().any(|s| s
            .preview
            .as_deref()
            .is_some_and(|p| p.contains("client-key-data"))),
        "a preview holds a key, so its Debug is tested"
    );

    // A run that fails on a damaged CA key, as an error value.
    let ca_key = f.read("pki/ca.key");
    std::fs::write(f.path("pki/ca.key"), &ca_key[..ca_key.len() / 2]).unwrap();
    let err = kubepki::run(&kubepki::Options {
        spec_file: root.join("pki.toml"),
        templates_dir: root.join("templates"),
        out_dir: f.out(),
        check: false,
        diff: true,
        prune: false,
        rekey: Default::default(),
        now,
        clock: kubepki::Clock::system(now),
        color: false,
        format: kubepki::report::PlanFormat::Text,
        renew: Default::default(),
        identities: Vec::new().into(),
        progress: Default::default(),
    })
    .unwrap_err();

    let shown = [
        ("Sources", format!("{sources:?}")),
        ("Spec", format!("{spec:?}")),
        ("Observed", shown_observed),
        ("Disk", format!("{disk:?}")),
        ("Plan", format!("{the_plan:?}")),
        ("Plan (previews)", format!("{the_plan_now:?}")),
        ("Built.files", format!("{:?}", built.files)),
        ("Built.materials", format!("{:?}", built.materials)),
        ("Built.diffs", format!("{:?}", built.diffs)),
        (
            "disk materials",
            format!("{:?}", plan::current_materials(&spec, &disk)),
        ),
        ("KeyFacts", format!("{key_facts:?}")),
        ("Error", format!("{err:?} {err}")),
    ];
    for (what, text) in &shown {
        assert_no_key_material(what, text, &keys);
    }
}
