//! What a certificate signing request in the output folder asks for. Pure, like `x509`: the plan
//! reads a CSR it wrote in an earlier run to tell whether it still asks for what pki.toml
//! declares (then nothing is written, and the run only waits for the external CA to sign it).

use std::collections::BTreeSet;
use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;

use crate::spec::{CertSpec, Usage};
use crate::x509;

/// Whether `pem` is a CSR with a valid signature, over the public key `spki`, that asks for
/// exactly the subject, SANs, CA flag (with path length) and extended key usages `c` declares:
/// what `issue::csr` would write for `c` over that key, up to the signature.
pub(crate) fn asks_for(pem: &[u8], c: &CertSpec, spki: &[u8]) -> bool {
    let Ok((_, p)) = x509_parser::pem::parse_x509_pem(pem) else {
        return false;
    };
    if p.label != "CERTIFICATE REQUEST" {
        return false;
    }
    let Ok((_, req)) = X509CertificationRequest::from_der(&p.contents) else {
        return false;
    };
    let info = &req.certification_request_info;
    req.verify_signature().is_ok()
        && info.subject_pki.raw == spki
        && info.subject.as_raw() == x509::encode_name(&c.subject).as_slice()
        && Requested::of(&req) == Requested::declared(c)
}

/// The extensions a CSR requests that the plan compares, in a form independent of order.
#[derive(Debug, PartialEq, Eq, Default)]
struct Requested {
    dns: BTreeSet<String>,
    ips: BTreeSet<IpAddr>,
    /// Names of other kinds, which this tool never requests.
    other_names: usize,
    /// `Some(path length)` for a CA.
    ca: Option<Option<u32>>,
    usages: BTreeSet<Usage>,
}

impl Requested {
    fn of(req: &X509CertificationRequest<'_>) -> Requested {
        let mut r = Requested::default();
        for ext in req.requested_extensions().into_iter().flatten() {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(d) => {
                                r.dns.insert(d.to_ascii_lowercase());
                            }
                            GeneralName::IPAddress(b) => match ip(b) {
                                Some(a) => {
                                    r.ips.insert(a);
                                }
                                None => r.other_names += 1,
                            },
                            _ => r.other_names += 1,
                        }
                    }
                }
                ParsedExtension::BasicConstraints(bc) if bc.ca => {
                    r.ca = Some(bc.path_len_constraint);
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    if eku.server_auth {
                        r.usages.insert(Usage::Server);
                    }
                    if eku.client_auth {
                        r.usages.insert(Usage::Client);
                    }
                }
                _ => {}
            }
        }
        r
    }

    fn declared(c: &CertSpec) -> Requested {
        Requested {
            dns: c.sans.dns.iter().map(|d| d.to_ascii_lowercase()).collect(),
            ips: c.sans.ips.iter().copied().collect(),
            other_names: 0,
            ca: c.ca.map(|ca| ca.path_len.map(u32::from)),
            usages: c.usages.iter().copied().collect(),
        }
    }
}

fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
