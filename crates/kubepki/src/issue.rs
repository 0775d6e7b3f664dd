//! rcgen glue: key generation and signing. Every field that rcgen would otherwise default is set
//! here explicitly: validity (rcgen's default runs 1975 to 4096), a random serial (rcgen's default
//! is a hash of the public key, which repeats when a key is re-signed), key identifiers.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use time::OffsetDateTime;

use crate::spec::{BACKDATE, CertSpec, KeyAlg, Usage};
use crate::x509::{self, CertFacts};

/// Generates a fresh private key.
pub(crate) fn generate_key(alg: KeyAlg) -> Result<KeyPair, String> {
    let r = match alg {
        KeyAlg::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
        KeyAlg::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
        }
        KeyAlg::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
        }
        KeyAlg::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyAlg::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyAlg::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
    };
    r.map_err(|e| format!("failed to generate a {alg} key: {e}"))
}

/// Who signs a certificate.
pub(crate) enum Signer<'a> {
    /// A root signs itself with its own key.
    SelfSigned,
    /// A CA signs with its key; `cert` is its current certificate, whose subject becomes the
    /// issuer name (byte for byte) and whose key identifier becomes the authority key identifier.
    Ca {
        cert: &'a CertFacts,
        key: &'a KeyPair,
    },
}

/// The result of signing: DER, and whether notAfter was cut to the issuer's notAfter.
pub(crate) struct Signed {
    pub der: Vec<u8>,
    pub clamped: bool,
}

/// A random positive 16-byte serial (126 random bits: the top bit is clear so it is positive, the
/// next set so its length never varies). RFC 5280 asks for at most 20 octets, unique per issuer;
/// CA/Browser Forum practice, for at least 64 bits of randomness.
pub(crate) fn random_serial() -> Vec<u8> {
    let mut s = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut s)
        .expect("the system random number generator failed");
    s[0] = (s[0] & 0x7f) | 0x40;
    s.to_vec()
}

fn params(spec: &CertSpec) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    // rcgen's view of the subject only matters for SAN criticality (critical when the subject is
    // empty); the real subject is written by `x509::encode_name`.
    if let Some(cn) = spec
        .subject
        .cn
        .as_ref()
        .or(spec.subject.o.first())
        .or(spec.subject.ou.first())
    {
        p.distinguished_name.push(DnType::CommonName, cn.as_str());
    }
    p.subject_alt_names = spec
        .sans
        .dns
        .iter()
        .filter_map(|d| d.clone().try_into().ok().map(SanType::DnsName))
        .chain(spec.sans.ips.iter().map(|ip| SanType::IpAddress(*ip)))
        .collect();
    match spec.ca {
        Some(ca) => {
            p.is_ca = IsCa::Ca(match ca.path_len {
                Some(n) => BasicConstraints::Constrained(n),
                None => BasicConstraints::Unconstrained,
            });
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
        }
        None => {
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            if spec.alg.is_rsa() {
                // TLS 1.2 RSA key exchange encrypts to the key; harmless elsewhere, and kubeadm sets it.
                p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
            }
            p.extended_key_usages = spec
                .usages
                .iter()
                .map(|u| match u {
                    Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
                    Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
                })
                .collect();
        }
    }
    p
}

/// Signs a certificate for `spec` over `key` at time `now`. `old` is the certificate it
/// replaces, if any (see [`x509::identity`]).
pub(crate) fn sign(
    spec: &CertSpec,
    key: &KeyPair,
    signer: &Signer<'_>,
    now: OffsetDateTime,
    old: Option<&CertFacts>,
) -> Result<Signed, String> {
    let mut p = params(spec);
    let now = now.replace_nanosecond(0).unwrap_or(now);
    p.not_before = now - BACKDATE;
    p.not_after = now
        .checked_add(spec.validity)
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| {
            format!(
                "a validity of {} from {} ends after the year 9999",
                crate::spec::fmt_duration(spec.validity),
                x509::fmt_time(now)
            )
        })?;
    let mut clamped = false;
    if let Signer::Ca { cert, .. } = signer
        && p.not_after > cert.not_after
    {
        p.not_after = cert.not_after;
        clamped = true;
    }
    p.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    let (subject, ski) = x509::identity(&spec.subject, &key.subject_public_key_info(), old);
    p.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    let fail = |e: rcgen::Error| format!("failed to sign: {e}");
    let der = match signer {
        Signer::SelfSigned => {
            let cert = p.self_signed(key).map_err(fail)?;
            x509::resign(cert.der(), &[(3, &subject), (5, &subject)], key)?
        }
        Signer::Ca {
            cert: ca,
            key: ca_key,
        } => {
            p.use_authority_key_identifier_extension = true;
            let issuer =
                Issuer::from_ca_cert_der(&ca.der.as_slice().into(), *ca_key).map_err(fail)?;
            let cert = p.signed_by(key, &issuer).map_err(fail)?;
            x509::resign(cert.der(), &[(3, &ca.subject_raw), (5, &subject)], ca_key)?
        }
    };
    Ok(Signed { der, clamped })
}

/// A certificate signing request for `spec`, for a CA whose key the tool does not hold. It names
/// the subject and SANs and requests the key usages, extended key usages and, for a CA,
/// basicConstraints CA:TRUE; the external CA decides what it grants.
pub(crate) fn csr(spec: &CertSpec, key: &KeyPair) -> Result<String, String> {
    let mut p = params(spec);
    if spec.ca.is_none() {
        p.is_ca = IsCa::NoCa;
    }
    let req = p
        .serialize_request(key)
        .map_err(|e| format!("failed to make a CSR: {e}"))?;
    let der = x509::resign(req.der(), &[(1, &x509::encode_name(&spec.subject))], key)?;
    Ok(x509::pem_encode("CERTIFICATE REQUEST", &der))
}
