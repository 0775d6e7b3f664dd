//! Finding private key material in what was printed: every form a leak of a PEM private key
//! could take.

use std::collections::BTreeSet;

use super::unbase64;

/// Every form of one private key (PEM: PKCS#8, PKCS#1 or SEC1) that must never be printed. The fine ones are taken
/// from the secret bytes alone (public parts, such as the point an EC key carries, also appear in
/// certificates): stretches of the PEM's base64 lines, of the base64 of the PEM that templates
/// embed (`client-key-data`), and the bytes as hex and as a Rust byte list. The coarse ones are
/// each whole line of the PEM body and the base64 of the whole PEM.
pub fn leak_forms(pem: &str) -> Vec<String> {
    let header = pem.find('\n').expect("a PEM header") + 1;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = unbase64(&body).unwrap_or_else(|e| panic!("a PEM body: {e}"));
    let (s0, s1) = secret_range(&der);
    let secret = &der[s0..s1];
    let mut forms = Vec::new();
    for w in [&secret[..12], &secret[secret.len() - 12..]] {
        forms.push(kubepki::x509::hex(w));
        forms.push(kubepki::x509::hex(w).to_uppercase());
        forms.push(format!("{w:?}").trim_matches(['[', ']']).to_string());
    }
    // Base64 characters that only secret bytes determine, split where the PEM breaks lines.
    let (c0, c1) = (s0.div_ceil(3) * 4, s1 / 3 * 4);
    let embedded = kubepki::render::b64(pem);
    let mut c = c0;
    while c < c1 {
        let end = ((c / 64 + 1) * 64).min(c1);
        if end - c >= 12 {
            forms.push(body[c..end].to_string());
            // The same characters inside the PEM text, and the base64 of that stretch.
            let (p0, p1) = (header + c + c / 64, header + end + c / 64);
            assert_eq!(&pem[p0..p1], &body[c..end]);
            let (a0, a1) = (p0.div_ceil(3), p1 / 3);
            if a1 > a0 + 3 {
                forms.push(embedded[a0 * 4..a1 * 4].to_string());
            }
        }
        c = end;
    }
    assert!(forms.len() >= 8, "too few forms for a key");
    forms.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(String::from),
    );
    forms.push(embedded);
    forms
}

/// One DER element at `pos`: (tag, start of content, end of content).
fn tlv(d: &[u8], pos: usize) -> (u8, usize, usize) {
    let mut i = pos + 2;
    let mut len = usize::from(d[pos + 1]);
    if len & 0x80 != 0 {
        let n = len & 0x7f;
        len = d[i..i + n].iter().fold(0, |a, &b| a << 8 | usize::from(b));
        i += n;
    }
    (d[pos], i, i + len)
}

/// Where the secret of a private key lies: the private scalar of an EC or Ed25519 key, the
/// private exponent of an RSA key. The key is PKCS#8, or PKCS#1 (RSA) or SEC1 (EC) as kubeadm
/// writes them, which have no algorithm identifier after their version.
fn secret_range(der: &[u8]) -> (usize, usize) {
    let (_, outer, _) = tlv(der, 0);
    let (_, _, version_end) = tlv(der, outer);
    if der[version_end] != 0x30 {
        return inner_secret(der, 0);
    }
    let (_, _, alg_end) = tlv(der, version_end);
    let (tag, inner, _) = tlv(der, alg_end);
    assert_eq!(tag, 0x04, "PKCS#8 privateKey");
    let (tag, start, end) = tlv(der, inner);
    if tag == 0x04 {
        return (start, end); // Ed25519: the private key itself
    }
    inner_secret(der, inner)
}

/// Where the secret of the RSAPrivateKey (PKCS#1) or ECPrivateKey (SEC1) sequence at `pos` lies.
fn inner_secret(der: &[u8], pos: usize) -> (usize, usize) {
    let (_, start, _) = tlv(der, pos);
    let (_, v0, after_version) = tlv(der, start);
    if der[v0..after_version] == [1] {
        let (_, s, e) = tlv(der, after_version); // EC: the private scalar
        return (s, e);
    }
    let (_, _, n_end) = tlv(der, after_version);
    let (_, _, e_end) = tlv(der, n_end);
    let (_, s, e) = tlv(der, e_end); // RSA: the private exponent
    (s, e)
}

/// Panics if `text` (what `what` printed) says `PRIVATE KEY` at all, or holds any form of any of
/// `keys` (PEM private keys).
pub fn assert_no_key_material(what: &str, text: &str, keys: &BTreeSet<String>) {
    assert!(
        !text.contains("PRIVATE KEY"),
        "{what} printed `PRIVATE KEY`:\n{text}"
    );
    for key in keys {
        for form in leak_forms(key) {
            assert!(
                !text.contains(&form),
                "{what} printed key material `{form}`:\n{text}"
            );
        }
    }
}
