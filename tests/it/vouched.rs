//! The signatures a run takes as checked without checking them: only those the last writing run's
//! inventory vouches for (`plan/signatures.rs`, ARCHITECTURE.md "plan"). Each test makes a tree
//! where a weaker rule than the one written down would keep a certificate that does not verify
//! under its issuer, and checks that the run still finds it.

use kubepki::x509;

use crate::support::*;

const T0: &str = "2026-01-01T00:00:00Z";

const SPEC: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "ca"
cn = "test-ca"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[ca]]
name = "ca-b"
cn = "test-ca"
cert = "pki/ca-b.crt"
key = "pki/ca-b.key"

[[cert]]
name = "web"
issuer = "ca"
cn = "web"
dns = ["web.example"]
usage = ["server"]
cert = "pki/web.crt"
key = "pki/web.key"
"#;

/// The line a plan gives a certificate that its issuer's key did not sign.
fn not_signed_by(issuer: &str) -> String {
    format!("pki/web.crt is not signed by the key of issuer {issuer}")
}

/// A tree made by a run, up to date.
fn made() -> Fixture {
    let f = Fixture::new(SPEC);
    let r = f.apply(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    f
}

/// The DER of the certificate at `rel`.
fn der(f: &Fixture, rel: &str) -> Vec<u8> {
    cert_facts(&f.path(rel)).der
}

/// Writes `der` as the certificate at `rel`.
fn write_cert(f: &Fixture, rel: &str, der: &[u8]) {
    std::fs::write(f.path(rel), x509::pem_encode("CERTIFICATE", der)).unwrap();
}

/// `web`'s certificate with every field as it was, signed by `web`'s own key instead of its CA's.
fn web_signed_by_itself(f: &Fixture) -> Vec<u8> {
    let key = key_facts(&f.path("pki/web.key"))
        .key
        .expect("a plaintext key");
    x509::resign(&der(f, "pki/web.crt"), &[], &key).unwrap()
}

/// The raw elements (tag, length and contents) of the DER SEQUENCE `der`.
fn elements(der: &[u8]) -> Vec<&[u8]> {
    let tlv_len = |d: &[u8]| -> (usize, usize) {
        if d[1] < 0x80 {
            (2, d[1] as usize)
        } else {
            let n = (d[1] & 0x7f) as usize;
            let len = d[2..2 + n].iter().fold(0, |l, &b| (l << 8) | b as usize);
            (2 + n, len)
        }
    };
    let (head, len) = tlv_len(der);
    let mut rest = &der[head..head + len];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (h, l) = tlv_len(rest);
        out.push(&rest[..h + l]);
        rest = &rest[h + l..];
    }
    out
}

#[test]
fn a_leaf_signed_by_another_key_is_found_though_its_fields_are_the_same() {
    let f = made();
    write_cert(&f, "pki/web.crt", &web_signed_by_itself(&f));
    let r = f.pki(&["--now", T0, "--check"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains(&not_signed_by("ca")), "{}", r.stdout);
}

#[test]
fn a_leaf_kept_while_its_ca_key_was_away_is_checked_when_the_key_returns() {
    // With the CA's key away, the CA is external: a run keeps the leaf's certificate on disk (it
    // writes a CSR for it) though it does not verify, and its inventory records that certificate.
    // The CA's key file was missing then, so the inventory vouches for nothing under it: once the
    // key is back, the signature is checked again, and the leaf re-signed.
    let f = made();
    let away = f.root().join("ca.key.away");
    std::fs::rename(f.path("pki/ca.key"), &away).unwrap();
    let forged = web_signed_by_itself(&f);
    write_cert(&f, "pki/web.crt", &forged);
    let r = f.apply(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains(&not_signed_by("ca")), "{}", r.stdout);
    let recorded = format!("sha256: {}", x509::sha256_hex(&forged));
    assert!(
        f.read("inventory.txt").contains(&recorded),
        "the inventory records the certificate the run kept"
    );

    std::fs::rename(&away, f.path("pki/ca.key")).unwrap();
    let r = f.pki(&["--now", T0, "--check"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains(&not_signed_by("ca")), "{}", r.stdout);
    let r = f.apply(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    let ca = cert_facts(&f.path("pki/ca.crt"));
    assert!(x509::verifies_under(&der(&f, "pki/web.crt"), &ca.spki));
}

#[test]
fn a_leaf_declared_under_another_ca_is_checked_under_it() {
    // Two CAs with the same name and, forged, the same key identifier: a certificate of one
    // chains to the other by name and authority key id, and only its signature tells them apart.
    // The inventory vouches for `web`'s signature under the CA it was declared under when the
    // inventory was written; moved in pki.toml under the other, it is checked again.
    let f = made();
    let ca_b = key_facts(&f.path("pki/ca-b.key"))
        .key
        .expect("a plaintext key");
    let a = der(&f, "pki/ca.crt");
    let a_extensions = elements(elements(&a)[0])[7].to_vec();
    let b = x509::resign(&der(&f, "pki/ca-b.crt"), &[(7, &a_extensions)], &ca_b).unwrap();
    write_cert(&f, "pki/ca-b.crt", &b);
    assert_eq!(
        cert_facts(&f.path("pki/ca-b.crt")).ski,
        cert_facts(&f.path("pki/ca.crt")).ski
    );
    // ca-b's certificate is still a self-signed CA as declared: kept, and recorded.
    let r = f.apply(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        f.read("inventory.txt")
            .contains(&format!("sha256: {}", x509::sha256_hex(&b))),
        "{}",
        r.stdout
    );

    f.edit_spec(
        "name = \"web\"\nissuer = \"ca\"",
        "name = \"web\"\nissuer = \"ca-b\"",
    );
    let r = f.pki(&["--now", T0, "--check"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains(&not_signed_by("ca-b")), "{}", r.stdout);
}
