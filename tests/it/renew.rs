//! `--renew NAME...|all`: certificates re-signed now with the keys they have, as
//! `kubeadm certs renew` does. `all` is every certificate but the CAs (as `kubeadm certs renew
//! all`): a CA is renewed only when named, and then keeps its key and subject, so what it signed
//! is kept and still verifies (openssl judges the chains).

use std::collections::BTreeMap;

use crate::support::*;

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-03-01T00:00:00Z";

/// The CAs' certificates and keys, and the leaves' certificates, in `NODE_CHAIN`.
const CA_FILES: [&str; 4] = ["root.crt", "root.key", "inter.crt", "inter.key"];
const LEAF_CERTS: [&str; 2] = ["server.crt", "nodes/n1/client.crt"];

/// The leaves, each with the purpose openssl checks it for.
const LEAVES: [(&str, &str); 2] = [
    ("server.crt", "sslserver"),
    ("nodes/n1/client.crt", "sslclient"),
];

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

/// The CAs' certificates as they are now (root and inter), in a bundle outside out/ (so that no
/// run sees it), for openssl to verify against later.
fn ca_bundle(f: &Fixture, name: &str) -> std::path::PathBuf {
    let bundle = f.dir.path().join(name);
    std::fs::write(&bundle, f.read("root.crt") + &f.read("inter.crt")).unwrap();
    bundle
}

/// A copy of out/`rel` as it is now, outside out/, for openssl to verify later.
fn keep_copy(f: &Fixture, rel: &str, name: &str) -> std::path::PathBuf {
    let copy = f.dir.path().join(name);
    std::fs::copy(f.path(rel), &copy).unwrap();
    copy
}

/// Each leaf (a file and its openssl purpose) verifies under `bundle`, a day after the renewal.
fn leaves_verify_in(bundle: &std::path::Path, leaves: &[(std::path::PathBuf, &str)]) {
    for (cert, purpose) in leaves {
        let r = openssl_verify(bundle, &[cert], purpose, &["-attime", AFTER_T1]);
        assert_eq!(r.code, 0, "{}: {}", cert.display(), r.all());
    }
}

/// Every certificate still chains up to the root, a day after the renewal.
fn chains_verify(f: &Fixture) {
    let bundle = ca_bundle(f, "bundle-now.pem");
    let leaves: Vec<_> = LEAVES.iter().map(|(c, p)| (f.path(c), *p)).collect();
    leaves_verify_in(&bundle, &leaves);
}

/// The hashes of out/'s CA certificates and keys: what `--renew all` must leave byte for byte.
fn ca_files(f: &Fixture) -> BTreeMap<String, String> {
    let hashes: BTreeMap<String, String> = f
        .hashes()
        .into_iter()
        .filter(|(p, _)| CA_FILES.contains(&p.as_str()))
        .collect();
    assert_eq!(hashes.len(), CA_FILES.len(), "every CA file is there");
    hashes
}

/// The `--check --format json` plan at `T1` with `--renew ARGS`: each item's name and the kinds
/// of its reasons.
fn json_reasons(f: &Fixture, names: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut args = vec!["--check", "--format", "json", "--now", T1, "--renew"];
    args.extend_from_slice(names);
    let r = f.pki(&args);
    assert_eq!(r.code, 1, "{}", r.all());
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let items = doc["items"].as_array().unwrap();
    items
        .iter()
        .map(|i| {
            let kinds = i["reasons"].as_array().map_or(vec![], |rs| {
                rs.iter()
                    .map(|r| r["kind"].as_str().unwrap().to_string())
                    .collect()
            });
            (i["item"].as_str().unwrap().to_string(), kinds)
        })
        .collect()
}

/// The items whose reasons include `renew-flag`, in a JSON plan's reasons.
fn renew_flagged(reasons: &BTreeMap<String, Vec<String>>) -> Vec<&str> {
    reasons
        .iter()
        .filter(|(_, kinds)| kinds.iter().any(|k| k == "renew-flag"))
        .map(|(item, _)| item.as_str())
        .collect()
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
fn renew_all_re_signs_every_leaf_and_keeps_every_ca() {
    let f = made();
    let keys_before = keys(&f);
    let cas_before = ca_files(&f);
    let old_bundle = ca_bundle(&f, "bundle-before.pem");
    let old_facts: Vec<_> = LEAF_CERTS.iter().map(|c| cert_facts(&f.path(c))).collect();
    let (r, changed) = renew(&f, &["all"]);
    // Only the leaves are rewritten: a CA's certificate is what every component trusts, and
    // `--renew all`, as `kubeadm certs renew all`, leaves it alone.
    assert_eq!(
        changed,
        LEAF_CERTS.map(String::from).to_vec().tap_sort(),
        "{}",
        r.stdout
    );
    for leaf in ["server", "client@n1"] {
        let line = format!("~ re-sign   {leaf}  (--renew)");
        assert!(
            r.stdout.contains(&line),
            "{leaf}:
{}",
            r.stdout
        );
    }
    for ca in ["root-ca", "inter"] {
        assert!(
            !r.stdout.contains(&format!("re-sign   {ca} ")),
            "{ca} is kept:
{}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("plan: 2 re-sign"), "{}", r.stdout);
    assert_eq!(ca_files(&f), cas_before, "every CA byte for byte");
    assert_eq!(keys(&f), keys_before);
    for (cert, old) in LEAF_CERTS.iter().zip(&old_facts) {
        let new = cert_facts(&f.path(cert));
        assert_eq!(new.spki, old.spki, "{cert}: the key is kept");
        assert!(new.not_after > old.not_after, "{cert}: re-signed later");
        assert_ne!(new.serial, old.serial, "{cert}: a new certificate");
    }
    // The renewed leaves verify under the CA certificates as they were before the run.
    let leaves: Vec<_> = LEAVES.iter().map(|(c, p)| (f.path(c), *p)).collect();
    leaves_verify_in(&old_bundle, &leaves);
    assert_eq!(f.pki(&["--check", "--now", T1]).code, 0);
}

#[test]
fn renew_all_and_a_ca_renews_that_ca_too_and_what_it_signed_stays_valid() {
    let f = made();
    let keys_before = keys(&f);
    let root_before = f.hashes()["root.crt"].clone();
    let old_inter = cert_facts(&f.path("inter.crt"));
    // What inter signed before the run: it must still verify under the renewed inter.
    let old_leaves: Vec<_> = LEAVES
        .iter()
        .enumerate()
        .map(|(i, (c, p))| (keep_copy(&f, c, &format!("old-leaf-{i}.crt")), *p))
        .collect();
    let (r, changed) = renew(&f, &["all", "inter"]);
    let mut want: Vec<String> = LEAF_CERTS.map(String::from).to_vec();
    want.push("inter.crt".into());
    assert_eq!(changed, want.tap_sort(), "{}", r.stdout);
    assert!(
        r.stdout.contains("~ re-sign   inter  (--renew)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("plan: 3 re-sign"), "{}", r.stdout);
    assert_eq!(f.hashes()["root.crt"], root_before, "the root is kept");
    let new_inter = cert_facts(&f.path("inter.crt"));
    assert_eq!(
        (new_inter.spki, new_inter.subject_raw),
        (old_inter.spki, old_inter.subject_raw)
    );
    assert!(new_inter.not_after > old_inter.not_after);
    assert_eq!(keys(&f), keys_before);
    let new_bundle = ca_bundle(&f, "bundle-after.pem");
    leaves_verify_in(&new_bundle, &old_leaves);
    chains_verify(&f);
}

#[test]
fn the_json_plan_flags_only_the_renewed_items() {
    let f = made();
    let all = json_reasons(&f, &["all"]);
    assert_eq!(renew_flagged(&all), ["client@n1", "server"], "{all:?}");
    // A CA that `all` leaves out has nothing to do, hence no reason at all.
    for ca in ["root-ca", "inter"] {
        assert_eq!(all[ca], Vec::<String>::new(), "{ca}: {all:?}");
    }
    let with_inter = json_reasons(&f, &["all", "inter"]);
    assert_eq!(
        renew_flagged(&with_inter),
        ["client@n1", "inter", "server"],
        "{with_inter:?}"
    );
    assert_eq!(with_inter["root-ca"], Vec::<String>::new());
    // Named alone, a CA is the only item renewed.
    let inter = json_reasons(&f, &["inter"]);
    assert_eq!(renew_flagged(&inter), ["inter"], "{inter:?}");
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
