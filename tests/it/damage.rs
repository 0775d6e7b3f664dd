//! A damaged out/: every kind of damage is detected, named in the output with its file, and
//! handled safely. Leaves are repaired; a CA key is never replaced (the run stops instead); links
//! are never followed; and after each repair the tree is consistent as openssl judges it.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use crate::support::*;

const SPEC: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "ca"
cn = "test-ca"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[ca]]
name = "other-ca"
cn = "other-ca"
cert = "pki/other-ca.crt"
key = "pki/other-ca.key"

[[cert]]
name = "server"
issuer = "ca"
cn = "server"
dns = ["server.example"]
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
name = "other-client"
issuer = "other-ca"
cn = "client"
usage = ["client"]
cert = "pki/other-client.crt"
key = "pki/other-client.key"

[[render]]
name = "client.conf"
template = "kubeconfig.hbs"
path = "client.conf"
bind = { ca = "ca", client = "client" }
secrets = ["client"]
vars = { cluster = "test", server = "https://127.0.0.1:6443" }
"#;

/// (certificate, key, its CA's certificate, openssl purpose)
const LEAVES: &[(&str, &str, &str, &str)] = &[
    (
        "pki/server.crt",
        "pki/server.key",
        "pki/ca.crt",
        "sslserver",
    ),
    (
        "pki/client.crt",
        "pki/client.key",
        "pki/ca.crt",
        "sslclient",
    ),
    (
        "pki/other-client.crt",
        "pki/other-client.key",
        "pki/other-ca.crt",
        "sslclient",
    ),
];

/// A fixture for SPEC, applied: generated once per test binary, and copied.
fn applied() -> Fixture {
    generated(SPEC, &[], &[])
}

/// The tree is whole: every certificate verifies with openssl under its own CA, every key is the
/// key of its certificate, the kubeconfig holds the current pair, and a rerun has nothing to do.
fn assert_consistent(f: &Fixture) {
    for ca in ["pki/ca.crt", "pki/other-ca.crt"] {
        let r = openssl_verifies(&f.path(ca), &f.path(ca), "any");
        assert_eq!(r.code, 0, "{ca}: {}", r.all());
        let key = ca.replace(".crt", ".key");
        assert_eq!(
            cert_facts(&f.path(ca)).spki,
            key_facts(&f.path(&key)).spki,
            "{ca}"
        );
    }
    for (cert, key, ca, purpose) in LEAVES {
        let r = openssl_verifies(&f.path(ca), &f.path(cert), purpose);
        assert_eq!(r.code, 0, "{cert} under {ca}: {}", r.all());
        assert_eq!(
            cert_facts(&f.path(cert)).spki,
            key_facts(&f.path(key)).spki,
            "{cert} does not match {key}"
        );
        assert_eq!(mode(&f.path(key)), 0o600, "{key}");
        assert_eq!(mode(&f.path(cert)), 0o644, "{cert}");
    }
    let conf = f.read("client.conf");
    let b64 = |rel: &str| kubepki::render::b64(&f.read(rel));
    assert!(conf.contains(&b64("pki/client.crt")), "stale certificate");
    assert!(conf.contains(&b64("pki/client.key")), "stale key");
    assert!(conf.contains(&b64("pki/ca.crt")), "stale CA");
    let r = f.pki(&["--check"]);
    assert_eq!(r.code, 0, "not up to date after the repair:\n{}", r.all());
    assert!(f.hashes().keys().all(|p| !p.contains(".tmp-")));
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The first half of the file, as a full disk or an interrupted copy leaves it.
    Truncated,
    /// Bytes that are no PEM at all.
    Garbage,
}

fn damage(f: &Fixture, rel: &str, how: Damage) {
    let old = f.bytes(rel);
    let new = match how {
        Damage::Truncated => old[..old.len() / 2].to_vec(),
        Damage::Garbage => b"\x00\xff\xfe garbage \x7f\n".repeat(20),
    };
    std::fs::write(f.path(rel), new).unwrap();
}

#[test]
fn damaged_leaf_files_are_resigned_or_rekeyed() {
    // (file, damage, the action, whether the key stays)
    let cases = [
        ("pki/server.crt", Damage::Truncated, "re-sign", true),
        ("pki/server.crt", Damage::Garbage, "re-sign", true),
        ("pki/client.key", Damage::Truncated, "re-key", false),
        ("pki/client.key", Damage::Garbage, "re-key", false),
    ];
    for (rel, how, action, key_kept) in cases {
        let f = applied();
        let key = rel.replace(".crt", ".key");
        let key_before = f.bytes(&key);
        let ca_before = (f.bytes("pki/ca.key"), f.bytes("pki/ca.crt"));
        damage(&f, rel, how);
        let r = f.apply(&[]);
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains(rel))
            .unwrap_or_else(|| panic!("{rel} ({how:?}) is not named:\n{}", r.stdout));
        assert!(
            line.contains(action),
            "{rel} ({how:?}): expected {action}:\n{}",
            r.stdout
        );
        assert_eq!(
            f.bytes(&key) == key_before,
            key_kept,
            "{rel} ({how:?}): key kept should be {key_kept}"
        );
        assert_eq!(
            (f.bytes("pki/ca.key"), f.bytes("pki/ca.crt")),
            ca_before,
            "a leaf's damage touched its CA"
        );
        assert_consistent(&f);
    }
}

#[test]
fn ca_certificate_garbage_is_resigned_with_the_same_key() {
    for how in [Damage::Truncated, Damage::Garbage] {
        let f = applied();
        let key_before = f.bytes("pki/ca.key");
        let leaves_before: Vec<Vec<u8>> = LEAVES.iter().map(|l| f.bytes(l.0)).collect();
        damage(&f, "pki/ca.crt", how);
        let r = f.apply(&[]);
        assert!(
            r.stdout
                .lines()
                .any(|l| l.contains("re-sign") && l.contains("pki/ca.crt")),
            "{how:?}:\n{}",
            r.stdout
        );
        assert_eq!(f.bytes("pki/ca.key"), key_before, "the CA key was replaced");
        // Same key, same name: what it signed before still verifies under the new certificate.
        let leaves_after: Vec<Vec<u8>> = LEAVES.iter().map(|l| f.bytes(l.0)).collect();
        assert_eq!(
            leaves_after, leaves_before,
            "leaves were re-signed needlessly"
        );
        assert_consistent(&f);
    }
}

#[test]
fn ca_key_garbage_stops_the_run_and_writes_nothing() {
    for how in [Damage::Truncated, Damage::Garbage] {
        let f = applied();
        damage(&f, "pki/ca.key", how);
        // Something else to do too: it must not be done either.
        std::fs::remove_file(f.path("pki/server.crt")).unwrap();
        let before = f.hashes();
        for args in [&[][..], &["--check"][..]] {
            let r = f.pki(args);
            assert_eq!(r.code, 2, "{how:?} {args:?}: {}", r.all());
            for needle in [
                "pki/ca.key",
                "the tool never replaces a CA key by itself",
                "--rekey ca",
                "nothing was written",
            ] {
                assert!(r.stderr.contains(needle), "`{needle}`:\n{}", r.stderr);
            }
            assert_eq!(f.hashes(), before, "{how:?} {args:?}: out/ changed");
        }
    }
}

#[test]
fn a_certificate_from_another_ca_is_resigned() {
    let f = applied();
    let key_before = f.bytes("pki/client.key");
    std::fs::copy(f.path("pki/other-client.crt"), f.path("pki/client.crt")).unwrap();
    let r = f.apply(&[]);
    assert!(
        r.stdout.lines().any(|l| l.contains("re-sign")
            && l.contains("pki/client.crt is not signed by the key of issuer ca")),
        "{}",
        r.stdout
    );
    assert_eq!(f.bytes("pki/client.key"), key_before);
    assert_consistent(&f);
}

#[test]
fn swapped_keys_are_kept_and_both_certificates_resigned() {
    // Each key is intact and private; only the pairing is wrong. Keys are never thrown away when
    // they are sound, so each certificate is re-signed over the key now at its path.
    let f = applied();
    let server_key = f.bytes("pki/server.key");
    let client_key = f.bytes("pki/client.key");
    std::fs::write(f.path("pki/server.key"), &client_key).unwrap();
    std::fs::write(f.path("pki/client.key"), &server_key).unwrap();
    let r = f.apply(&[]);
    for (cert, key) in [
        ("pki/server.crt", "pki/server.key"),
        ("pki/client.crt", "pki/client.key"),
    ] {
        let msg = format!("certificate {cert} does not match its key {key}");
        assert!(
            r.stdout
                .lines()
                .any(|l| l.contains("re-sign") && l.contains(&msg)),
            "`{msg}`:\n{}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("re-render client.conf"), "{}", r.stdout);
    assert_eq!(f.bytes("pki/server.key"), client_key);
    assert_eq!(f.bytes("pki/client.key"), server_key);
    assert_consistent(&f);
}

#[test]
fn loose_key_permissions_are_fixed_and_reported() {
    let f = applied();
    let before = f.hashes();
    for rel in ["pki/server.key", "client.conf"] {
        std::fs::set_permissions(f.path(rel), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let r = f.apply(&[]);
    for rel in ["pki/server.key", "client.conf"] {
        assert!(
            r.stdout.lines().any(|l| l.contains("fix-mode")
                && l.contains(&format!("{rel} mode 0644, should be 0600"))),
            "{rel}:\n{}",
            r.stdout
        );
        assert_eq!(mode(&f.path(rel)), 0o600, "{rel}");
    }
    assert!(r.stdout.contains("fixed 2 modes"), "{}", r.stdout);
    assert_eq!(f.hashes(), before, "only modes change");
    assert_consistent(&f);
}

/// A file outside out/, and what it holds.
fn outside(f: &Fixture, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let dir = f.root().join("outside");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let content = format!("{name}: not the tool's to touch\n").into_bytes();
    std::fs::write(&path, &content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    (path, content)
}

#[test]
fn a_symlink_where_a_key_or_certificate_goes_is_replaced_never_followed() {
    for rel in ["pki/server.key", "pki/client.crt"] {
        let f = applied();
        let (target, content) = outside(&f, "target");
        std::fs::remove_file(f.path(rel)).unwrap();
        symlink(&target, f.path(rel)).unwrap();
        let r = f.apply(&[]);
        assert!(
            r.stdout.contains(&format!(
                "{rel} is a symlink (the tool never follows links in the output folder)"
            )),
            "{rel}:\n{}",
            r.stdout
        );
        assert_eq!(
            std::fs::read(&target).unwrap(),
            content,
            "{rel}: target written"
        );
        assert_eq!(mode(&target), 0o644, "{rel}: target's mode changed");
        let meta = std::fs::symlink_metadata(f.path(rel)).unwrap();
        assert!(meta.file_type().is_file(), "{rel} is still a link");
        assert_consistent(&f);
    }
    // Where a CA key should be, a link is never followed either; the CA key is never replaced by
    // the tool, so the run stops and says why.
    let f = applied();
    let (target, content) = outside(&f, "ca-key");
    std::fs::remove_file(f.path("pki/ca.key")).unwrap();
    symlink(&target, f.path("pki/ca.key")).unwrap();
    let r = f.pki(&[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("pki/ca.key is a symlink"), "{}", r.stderr);
    assert_eq!(std::fs::read(&target).unwrap(), content);
    assert!(
        std::fs::symlink_metadata(f.path("pki/ca.key"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_symlinked_folder_inside_out_is_refused() {
    let f = applied();
    // out/pki is moved outside and linked back; a file in it is missing, so a run must write.
    let elsewhere = f.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::rename(f.path("pki"), elsewhere.join("pki")).unwrap();
    symlink(elsewhere.join("pki"), f.path("pki")).unwrap();
    std::fs::remove_file(elsewhere.join("pki/server.crt")).unwrap();
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let outside_before = snapshot(&elsewhere.join("pki"));
    let out_before = f.hashes();
    let r = f.pki(&[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("pki is a symlink to a folder, and pki/ca.crt would be written through it"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("the tool never writes through links"),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(&elsewhere.join("pki")), outside_before);
    assert_eq!(f.hashes(), out_before);
}
