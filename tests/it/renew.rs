//! `--renew NAME...|all`: certificates re-signed now with the keys they have, as
//! `kubeadm certs renew` does; a renewed CA keeps its key and subject, so what it signed is kept
//! and still verifies (openssl judges the chains).

use std::collections::BTreeMap;

use crate::support::*;

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-03-01T00:00:00Z";

const CERTS: [&str; 4] = ["root.crt", "inter.crt", "server.crt", "nodes/n1/client.crt"];

fn made() -> Fixture {
    let f = Fixture::new(NODE_CHAIN);
    let r = f.apply(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    f
}

/// `--renew ARGS` at `T1`, which must succeed; the files that changed, by name.
fn renew(f: &Fixture, names: &[&str]) -> (Run, Vec<String>) {
    let before = f.hashes();
    let mut args = vec!["--renew"];
    args.extend_from_slice(names);
    args.extend(["--now", T1]);
    let r = f.apply(&args);
    assert_eq!(r.code, 0, "{}", r.all());
    (r, changed(&before, &f.hashes()))
}

fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    after
        .iter()
        .filter(|(p, h)| before.get(*p) != Some(h) && p.as_str() != "inventory.txt")
        .map(|(p, _)| p.clone())
        .collect()
}

/// A day after `T1`, in seconds since 1970: openssl judges validity then, not at the system clock.
const AFTER_T1: &str = "1772409600";

/// Every certificate still chains up to the root, a day after the renewal.
fn chains_verify(f: &Fixture) {
    let bundle = f.path("bundle.pem");
    std::fs::write(&bundle, f.read("root.crt") + &f.read("inter.crt")).unwrap();
    for (cert, purpose) in [
        ("server.crt", "sslserver"),
        ("nodes/n1/client.crt", "sslclient"),
    ] {
        let r = openssl_verify(&bundle, &[&f.path(cert)], purpose, &["-attime", AFTER_T1]);
        assert_eq!(r.code, 0, "{cert}: {}", r.all());
    }
}

/// Each private key's bytes, which `--renew` must never change.
fn keys(f: &Fixture) -> BTreeMap<String, String> {
    f.hashes()
        .into_iter()
        .filter(|(p, _)| p.ends_with(".key"))
        .collect()
}

#[test]
fn a_renewed_leaf_is_re_signed_with_its_key() {
    let f = made();
    let keys_before = keys(&f);
    let old = cert_facts(&f.path("server.crt"));
    let (r, changed) = renew(&f, &["server"]);
    assert!(
        r.stdout.contains("~ re-sign   server  (--renew)"),
        "{}",
        r.stdout
    );
    assert_eq!(changed, ["server.crt"]);
    let new = cert_facts(&f.path("server.crt"));
    assert_eq!(new.spki, old.spki, "the key is kept");
    assert!(new.not_after > old.not_after && new.serial != old.serial);
    assert_eq!(keys(&f), keys_before);
    chains_verify(&f);
    // Renewed once, the tree is up to date again: the flag asks for one renewal, not a state.
    assert_eq!(f.pki(&["--check", "--now", T1]).code, 0);
}

#[test]
fn a_renewed_ca_keeps_its_key_and_what_it_signed() {
    let f = made();
    let keys_before = keys(&f);
    let old = cert_facts(&f.path("inter.crt"));
    let (r, changed) = renew(&f, &["inter"]);
    assert!(
        r.stdout.contains("~ re-sign   inter  (--renew)"),
        "{}",
        r.stdout
    );
    assert_eq!(
        changed,
        ["inter.crt"],
        "what inter signed is kept:\n{}",
        r.stdout
    );
    let new = cert_facts(&f.path("inter.crt"));
    assert_eq!((new.spki, new.subject_raw), (old.spki, old.subject_raw));
    assert_eq!(keys(&f), keys_before);
    chains_verify(&f);
}

#[test]
fn renew_all_re_signs_every_certificate_and_no_key() {
    let f = made();
    let keys_before = keys(&f);
    let (r, changed) = renew(&f, &["all"]);
    assert_eq!(
        changed,
        CERTS.map(String::from).to_vec().tap_sort(),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("plan: 4 re-sign"), "{}", r.stdout);
    assert_eq!(keys(&f), keys_before);
    chains_verify(&f);
}

#[test]
fn renew_names_only_certificates() {
    let f = made();
    let r = f.pki(&["--check", "--renew", "servr", "--now", T1]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("--renew names `servr`"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `server`?"), "{}", r.stderr);
    // A check names the command that carries out its plan, --renew included: a plain run would
    // renew nothing.
    let text = f.pki(&["--check", "--renew", "client", "--now", T1]);
    assert!(
        text.stdout
            .contains("out/ is stale: run `cargo xtask pki --renew client`"),
        "{}",
        text.stdout
    );
    let json = f.pki(&[
        "--check", "--renew", "client", "--format", "json", "--now", T1,
    ]);
    assert_eq!(json.code, 1, "{}", json.all());
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let client = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item"] == "client@n1")
        .unwrap();
    assert_eq!(
        client["reasons"],
        serde_json::json!([{"kind": "renew-flag", "text": "--renew"}])
    );
}

/// `sorted()` on a vector, in place, for comparisons.
trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<String> {
    fn tap_sort(mut self) -> Self {
        self.sort();
        self
    }
}
