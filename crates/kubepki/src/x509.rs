//! Reading certificates and keys back from their bytes (pure), encoding subject names, and the
//! decoded text form that diffs, the inventory and the plan show.

use std::fmt::Write as _;
use std::net::IpAddr;

use ::time::OffsetDateTime;
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use crate::spec::{KeyAlg, Sans, Subject, Usage};

const OID_CN: &[u64] = &[2, 5, 4, 3];
const OID_O: &[u64] = &[2, 5, 4, 10];
const OID_OU: &[u64] = &[2, 5, 4, 11];

/// What the tool reads from a certificate file, field by field.
#[derive(Debug, Clone)]
pub struct CertFacts {
    pub der: Vec<u8>,
    pub subject: Subject,
    pub subject_raw: Vec<u8>,
    pub issuer: String,
    pub issuer_raw: Vec<u8>,
    pub sans: Sans,
    /// SAN entries other than DNS names and IP addresses (never written by this tool).
    pub other_sans: usize,
    pub usages: Vec<Usage>,
    /// keyUsage bits present (`digitalSignature`, `keyCertSign`, ...); empty without the extension.
    pub key_usage: Vec<&'static str>,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub serial: String,
    pub ski: Option<Vec<u8>>,
    pub aki: Option<Vec<u8>>,
    pub spki: Vec<u8>,
    pub key_alg: Option<KeyAlg>,
    pub fingerprint: String,
}

/// What the tool reads from a private key file. The key itself stays in `KeyPair`, whose `Debug`
/// never prints it.
pub struct KeyFacts {
    /// The key itself; `None` for a key encrypted at rest (a SOPS file), whose algorithm and
    /// public key are read from its public half beside it and which only apply decrypts.
    pub key: Option<KeyPair>,
    /// The key's PEM text as it was read (PKCS#8, or an adopted PKCS#1 or SEC1 key in its own
    /// encoding), which renders embed as it is; `None` exactly when `key` is.
    pub pem: Option<String>,
    pub alg: Option<KeyAlg>,
    pub spki: Vec<u8>,
}

impl std::fmt::Debug for KeyFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyFacts { [secret key elided] }")
    }
}

/// Parses the first certificate of a PEM file.
pub fn parse_cert(bytes: &[u8]) -> Result<CertFacts, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(bytes).map_err(|e| pem_problem(&e))?;
    if pem.label != "CERTIFICATE" {
        // Never echo a private key's label: a key in a certificate's place is named as such.
        let found = if pem.label.contains("PRIVATE") {
            "a private key".to_string()
        } else {
            format!("a {}", pem.label)
        };
        return Err(format!("expected a CERTIFICATE, found {found}"));
    }
    parse_cert_der(&pem.contents)
}

/// What is wrong with a file that is not a PEM certificate, in words (the parser's own names for
/// its errors, like `MissingHeader`, mean nothing to a user).
fn pem_problem(e: &x509_parser::nom::Err<x509_parser::error::PEMError>) -> String {
    use x509_parser::error::PEMError;
    let what = match e {
        x509_parser::nom::Err::Error(p) | x509_parser::nom::Err::Failure(p) => match p {
            PEMError::MissingHeader => "it has no `-----BEGIN ...-----` line",
            PEMError::InvalidHeader => "its `-----BEGIN` line is malformed",
            PEMError::IncompletePEM => "it ends before its `-----END ...-----` line",
            PEMError::Base64DecodeError => "its body is not valid base64",
            PEMError::IOError(_) => "it cannot be read",
        },
        x509_parser::nom::Err::Incomplete(_) => "it ends before its `-----END ...-----` line",
    };
    format!("not a PEM file: {what}")
}

/// Parses a DER certificate into the fields the plan compares. (It reads one extension after
/// another into `CertFacts`, so it runs long; each part is a few lines about one field.)
pub fn parse_cert_der(der: &[u8]) -> Result<CertFacts, String> {
    let (_, cert) =
        parse_x509_certificate(der).map_err(|e| format!("not a valid certificate: {e}"))?;
    let subject = Subject {
        cn: cert
            .subject()
            .iter_common_name()
            .filter_map(|a| a.as_str().ok())
            .map(String::from)
            .next(),
        o: cert
            .subject()
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .map(String::from)
            .collect(),
        ou: cert
            .subject()
            .iter_organizational_unit()
            .filter_map(|a| a.as_str().ok())
            .map(String::from)
            .collect(),
    };
    let mut sans = Sans::default();
    let mut other_sans = 0;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.dns.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => sans
                        .ips
                        .push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                    16 => sans
                        .ips
                        .push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                    _ => other_sans += 1,
                },
                _ => other_sans += 1,
            }
        }
    }
    let mut usages = Vec::new();
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        if eku.value.server_auth {
            usages.push(Usage::Server);
        }
        if eku.value.client_auth {
            usages.push(Usage::Client);
        }
    }
    let mut key_usage = Vec::new();
    if let Ok(Some(ku)) = cert.key_usage() {
        let ku = ku.value;
        for (set, name) in [
            (ku.digital_signature(), "digitalSignature"),
            (ku.key_encipherment(), "keyEncipherment"),
            (ku.key_cert_sign(), "keyCertSign"),
            (ku.crl_sign(), "cRLSign"),
        ] {
            if set {
                key_usage.push(name);
            }
        }
    }
    let (is_ca, path_len) = match cert.basic_constraints() {
        Ok(Some(bc)) => (bc.value.ca, bc.value.path_len_constraint),
        _ => (false, None),
    };
    let mut ski = None;
    let mut aki = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => {}
        }
    }
    let spki = cert.public_key().raw.to_vec();
    Ok(CertFacts {
        subject,
        subject_raw: cert.subject().as_raw().to_vec(),
        issuer: cert.issuer().to_string(),
        issuer_raw: cert.issuer().as_raw().to_vec(),
        sans,
        other_sans,
        usages,
        key_usage,
        is_ca,
        path_len,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        // As `raw_serial_as_string` writes it (lower-case hex, colons), without a `format!` per
        // byte.
        serial: hex_with(cert.raw_serial(), b"0123456789abcdef", Some(':')),
        ski,
        aki,
        key_alg: key_alg_of_spki(&spki),
        spki,
        fingerprint: sha256_hex(der),
        der: der.to_vec(),
    })
}

/// `KeyPair::from_pem`, with a P-256 key read directly. `from_pem` tries the algorithms in turn,
/// Ed25519 first, and loading a P-256 key as Ed25519 to be refused cost a third as much as
/// loading it. A key whose DER names the P-256 curve (PKCS#8 and SEC1 both carry its OID) is
/// read as P-256 first, by the function `from_pem` would reach for it after the Ed25519 reading
/// failed (the key's algorithm is another), so the key pair is the same; whatever that does not
/// read, and every other key, goes to `from_pem` as before.
fn key_pair_from_pem(text: &str) -> Result<KeyPair, rcgen::Error> {
    /// The DER of OID 1.2.840.10045.3.1.7 (prime256v1), with its tag and length.
    const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let names_p256 = ::pem::parse(text)
        .is_ok_and(|p| p.contents().windows(P256_OID.len()).any(|w| w == P256_OID));
    if names_p256
        && let Ok(key) = KeyPair::from_pem_and_sign_algo(text, &rcgen::PKCS_ECDSA_P256_SHA256)
    {
        return Ok(key);
    }
    KeyPair::from_pem(text)
}

/// Parses a private key (PKCS#8, PKCS#1 or SEC1 PEM).
pub fn parse_key(bytes: &[u8]) -> Result<KeyFacts, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not a PEM file".to_string())?;
    if !text.contains("PRIVATE KEY-----") {
        return Err("not a PEM private key".into());
    }
    // The parser's own error could quote key bytes; keep only a generic message.
    let key = key_pair_from_pem(text).map_err(|_| "not a valid private key".to_string())?;
    let spki = key.subject_public_key_info();
    Ok(KeyFacts {
        alg: key_alg_of_spki(&spki),
        spki,
        key: Some(key),
        pem: Some(text.to_string()),
    })
}

/// What the plan knows of a key encrypted at rest, read from its public half (the certificate
/// over it, or the key pair's public key): the algorithm and the public key, never the key.
pub fn sealed_key_facts(spki: &[u8]) -> KeyFacts {
    KeyFacts {
        key: None,
        pem: None,
        alg: key_alg_of_spki(spki),
        spki: spki.to_vec(),
    }
}

/// Parses a PEM public key (`PUBLIC KEY`, SubjectPublicKeyInfo) into its DER.
pub fn parse_public_key(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let p = ::pem::parse(bytes).map_err(|e| format!("not a PEM file: {e}"))?;
    if p.tag() != "PUBLIC KEY" {
        // Never echo a private key's label, as for certificates.
        let found = if p.tag().contains("PRIVATE") {
            "a private key".to_string()
        } else {
            format!("a {}", p.tag())
        };
        return Err(format!("expected a PUBLIC KEY, found {found}"));
    }
    Ok(p.into_contents())
}

pub fn key_alg_of_spki(spki: &[u8]) -> Option<KeyAlg> {
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
    match info.parsed().ok()? {
        PublicKey::RSA(rsa) => match rsa.key_size() {
            2048 => Some(KeyAlg::Rsa2048),
            3072 => Some(KeyAlg::Rsa3072),
            4096 => Some(KeyAlg::Rsa4096),
            _ => None,
        },
        PublicKey::EC(ec) => match ec.key_size() {
            256 => Some(KeyAlg::EcdsaP256),
            384 => Some(KeyAlg::EcdsaP384),
            _ => None,
        },
        _ if info.algorithm.algorithm.to_id_string() == "1.3.101.112" => Some(KeyAlg::Ed25519),
        _ => None,
    }
}

/// Whether `cert_der` carries a valid signature by the key `issuer_spki`.
pub fn verifies_under(cert_der: &[u8], issuer_spki: &[u8]) -> bool {
    let Ok((_, cert)) = parse_x509_certificate(cert_der) else {
        return false;
    };
    let Ok((_, key)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(issuer_spki) else {
        return false;
    };
    cert.verify_signature(Some(&key)).is_ok()
}

/// Encodes a subject as DER: O values, then OU values, then CN (Go's `pkix.Name` order), each value
/// its own RDN as openssl writes them (Go groups the values of one type into one multi-valued RDN;
/// both forms carry the same attributes, and Kubernetes reads every O as a group).
pub fn encode_name(subject: &Subject) -> Vec<u8> {
    let attrs = subject
        .o
        .iter()
        .map(|v| (OID_O, v))
        .chain(subject.ou.iter().map(|v| (OID_OU, v)))
        .chain(subject.cn.iter().map(|v| (OID_CN, v)));
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (oid, value) in attrs {
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next()
                            .write_oid(&yasna::models::ObjectIdentifier::from_slice(oid));
                        w.next().write_utf8_string(value);
                    })
                })
            }
        })
    })
}

/// Takes a signed structure (`SEQUENCE { body, algorithm, signature }`, a certificate or a CSR),
/// replaces elements of its body and signs the new body with `key`. The algorithm identifier is
/// kept, so `key` must be the key that signed the original.
pub fn resign(der: &[u8], replace: &[(usize, &[u8])], key: &KeyPair) -> Result<Vec<u8>, String> {
    let bad = |e: yasna::ASN1Error| format!("cannot re-encode: {e}");
    let (body, alg) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let body = r.next().read_der()?;
            let alg = r.next().read_der()?;
            let _sig = r.next().read_der()?;
            Ok((body, alg))
        })
    })
    .map_err(bad)?;
    let mut parts: Vec<Vec<u8>> = Vec::new();
    yasna::parse_der(&body, |r| {
        r.read_sequence_of(|r| {
            parts.push(r.read_der()?);
            Ok(())
        })
    })
    .map_err(bad)?;
    for (i, bytes) in replace {
        let slot = parts.get_mut(*i).ok_or("unexpected structure")?;
        *slot = bytes.to_vec();
    }
    let body = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for p in &parts {
                w.next().write_der(p);
            }
        })
    });
    let sig = key
        .sign(&body)
        .map_err(|e| format!("signing failed: {e}"))?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&body);
            w.next().write_der(&alg);
            w.next().write_bitvec_bytes(&sig, sig.len() * 8);
        })
    }))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    hex(d.as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789abcdef", None)
}

/// `bytes` in hex with the digits of `digits` (lower or upper case), `sep` between bytes: written
/// into one string, where a `format!` per byte made an allocation per byte (an inventory of 1000
/// workers writes a hundred thousand of them).
fn hex_with(bytes: &[u8], digits: &[u8; 16], sep: Option<char>) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if let Some(sep) = sep.filter(|_| i > 0) {
            s.push(sep);
        }
        s.push(char::from(digits[usize::from(b >> 4)]));
        s.push(char::from(digits[usize::from(b & 0xf)]));
    }
    s
}

/// Upper-case hex with colons, as openssl prints key identifiers.
pub fn colon_hex(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789ABCDEF", Some(':'))
}

pub fn fmt_time(t: OffsetDateTime) -> String {
    let f = ::time::format_description::well_known::Rfc3339;
    t.to_offset(::time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_else(|_| t.to_string())
}

/// The decoded text form of a certificate: what diffs and the inventory show. Never key material:
/// the public key appears as its SHA-256 fingerprint.
pub fn describe(c: &CertFacts) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "subject: {}", c.subject);
    let _ = writeln!(s, "issuer: {}", c.issuer);
    let _ = writeln!(s, "sans: {}", fmt_sans(&c.sans));
    let usages: Vec<&str> = c.usages.iter().map(|u| u.name()).collect();
    let _ = writeln!(
        s,
        "usages: {}",
        if c.is_ca {
            "ca".to_string()
        } else {
            usages.join(", ")
        }
    );
    if c.is_ca {
        let _ = writeln!(
            s,
            "path-len: {}",
            c.path_len.map_or("none".to_string(), |p| p.to_string())
        );
    }
    let _ = writeln!(s, "key: {}", c.key_alg.map_or("unknown", |a| a.name()));
    let _ = writeln!(s, "public-key-sha256: {}", sha256_hex(&c.spki));
    let _ = writeln!(s, "not-before: {}", fmt_time(c.not_before));
    let _ = writeln!(s, "not-after: {}", fmt_time(c.not_after));
    let _ = writeln!(s, "serial: {}", c.serial);
    let _ = writeln!(
        s,
        "subject-key-id: {}",
        c.ski.as_deref().map_or("none".into(), colon_hex)
    );
    let _ = writeln!(
        s,
        "authority-key-id: {}",
        c.aki.as_deref().map_or("none".into(), colon_hex)
    );
    let _ = writeln!(s, "sha256: {}", c.fingerprint);
    s
}

pub fn fmt_sans(sans: &Sans) -> String {
    let mut v: Vec<String> = sans.dns.iter().map(|d| format!("DNS:{d}")).collect();
    v.extend(sans.ips.iter().map(|i| format!("IP:{i}")));
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The subject name (DER) and subject key identifier of a certificate for `subject` over the key
/// `spki`. When it replaces `old`, a certificate over the same key with the same subject, the old
/// encoding and identifier are kept: whatever `old` signed keeps chaining to the new certificate
/// (issuer name and authority key identifier match byte for byte), even for a CA that another
/// tool made (openssl and Go use SHA-1 identifiers and other string types).
pub fn identity(subject: &Subject, spki: &[u8], old: Option<&CertFacts>) -> (Vec<u8>, Vec<u8>) {
    match old.filter(|o| o.spki == spki) {
        Some(o) => (
            if o.subject.same_as(subject) {
                o.subject_raw.clone()
            } else {
                encode_name(subject)
            },
            o.ski.clone().unwrap_or_else(|| key_id(spki)),
        ),
        None => (encode_name(subject), key_id(spki)),
    }
}

/// A new key identifier: SHA-256 of the SubjectPublicKeyInfo, first 20 bytes (RFC 7093, method 1).
pub fn key_id(spki: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, spki).as_ref()[..20].to_vec()
}

/// PEM with LF line endings on every platform, so files and diffs are stable.
pub fn pem_encode(tag: &str, der: &[u8]) -> String {
    ::pem::encode_config(
        &::pem::Pem::new(tag, der.to_vec()),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

/// The private key in PKCS#8 PEM.
pub fn key_pem(key: &KeyPair) -> String {
    if key.algorithm() == &rcgen::PKCS_ED25519
        && let Some(v1) = ed25519_pkcs8_v1(key.serialized_der())
    {
        return pem_encode("PRIVATE KEY", &v1);
    }
    pem_encode("PRIVATE KEY", key.serialized_der())
}

/// aws-lc writes Ed25519 keys as PKCS#8 v2 (RFC 5958, with the public key inside), which
/// OpenSSL 3.0 refuses to load. RFC 8410's v1 form carries the same private key and is read by
/// every implementation, so that is what goes to disk.
fn ed25519_pkcs8_v1(der: &[u8]) -> Option<Vec<u8>> {
    let (alg, private) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let _version = r.next().read_u8()?;
            let alg = r.next().read_der()?;
            let private = r.next().read_der()?;
            // The optional attributes and [1] public key follow; they are dropped.
            while r.read_optional(|r| r.read_der())?.is_some() {}
            Ok((alg, private))
        })
    })
    .ok()?;
    Some(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            w.next().write_der(&alg);
            w.next().write_der(&private);
        })
    }))
}

/// A public key (SubjectPublicKeyInfo DER) in PEM.
pub fn public_key_pem(spki: &[u8]) -> String {
    pem_encode("PUBLIC KEY", spki)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hex forms, as `format!` per byte wrote them (and x509-parser's `format_serial`).
    #[test]
    fn hex_forms_are_those_of_format() {
        for bytes in [
            &[][..],
            &[0x00],
            &[0x0a, 0xff, 0x10],
            &[0xde, 0xad, 0xbe, 0xef, 0x01],
        ] {
            let lower: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let upper: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
            let serial: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex(bytes), lower);
            assert_eq!(colon_hex(bytes), upper.join(":"));
            assert_eq!(
                hex_with(bytes, b"0123456789abcdef", Some(':')),
                serial.join(":")
            );
        }
    }
}
