//! openssl as an independent judge of what the tool wrote.

use std::path::Path;
use std::process::Command;

use super::{Run, run};

/// `openssl verify -x509_strict -purpose PURPOSE -CAfile CA CERT` (exit 0: it verifies).
pub fn openssl_verifies(ca: &Path, cert: &Path, purpose: &str) -> Run {
    openssl_verify(ca, &[cert], purpose, &[])
}

/// `openssl verify -x509_strict -purpose PURPOSE -CAfile CA EXTRA... CERTS...`: every one of
/// `certs` under `ca` alone, with further checks (`-verify_hostname NAME`, ...) in `extra`.
pub fn openssl_verify(ca: &Path, certs: &[&Path], purpose: &str, extra: &[&str]) -> Run {
    run(Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
        .arg(ca)
        .args(extra)
        .args(certs))
}

/// The public key of a private key file, as openssl prints it (PEM).
pub fn pubkey_of_key(path: &Path) -> String {
    let r = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(path));
    assert_eq!(
        r.code,
        0,
        "openssl cannot read key {}: {}",
        path.display(),
        r.stderr
    );
    r.stdout
}

/// The public key of a certificate, as openssl prints it (PEM).
pub fn pubkey_of_cert(path: &Path) -> String {
    let r = run(Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(path));
    assert_eq!(
        r.code,
        0,
        "openssl cannot read certificate {}: {}",
        path.display(),
        r.stderr
    );
    r.stdout
}
