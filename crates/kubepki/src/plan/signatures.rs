//! Every certificate's signature that the plan may ask about, answered once, before the plan's
//! loop, all of them in parallel. The plan decides item by item in dependency order, so checking
//! inside the loop is serial; but whether a certificate verifies under a key depends on the two
//! byte strings only, and the keys the loop asks about are the signer's key or certificate as they
//! are on disk whenever the signer keeps its key (a signer with a new key re-signs what is below
//! it without asking). So those pairs are answered here, and the loop asks `verifies`, which checks
//! any other pair itself: the answer is the same function of the same bytes either way.
//!
//! A pair is answered without checking the signature only when the last writing run's inventory
//! vouches for it (`Vouched`): the signature was then checked, or made, by that run, over the same
//! bytes, so its answer cannot have changed. Everything else is checked.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::disk::{Disk, Read};
use crate::inventory::DeclaredIssuer;
use crate::spec::{CertSpec, ItemId, ItemKind, Spec};
use crate::x509;

/// Whether a certificate (its DER) verifies under a key (its SPKI DER), for every pair answered.
pub(super) struct Signatures<'d> {
    checked: HashMap<(&'d [u8], &'d [u8]), bool>,
}

impl<'d> Signatures<'d> {
    /// Answers, for every certificate on disk, whether it verifies under its signer's key and
    /// certificate on disk (its own, for a root): checked in parallel, or vouched for.
    pub(super) fn new(spec: &Spec, disk: &'d Disk) -> Signatures<'d> {
        let vouched = Vouched::new(spec, disk);
        let checked = spec
            .items
            .par_iter()
            .enumerate()
            .map(|(id, item)| {
                let ItemKind::Cert(c) = &item.kind else {
                    return vec![];
                };
                let Some(cf) = disk.get(&c.cert_path).and_then(|f| f.as_cert()) else {
                    return vec![];
                };
                let cert: &[u8] = &cf.der;
                let signer = signer_of(spec, id, c);
                if let Some(spki) = vouched.signature_of(spec, disk, id) {
                    return vec![((cert, spki), true)];
                }
                let signer = spec.items[signer].kind.as_cert().unwrap_or(c);
                candidate_keys(disk, &signer.key_path, &signer.cert_path)
                    .into_iter()
                    .map(|spki| ((cert, spki), x509::verifies_under(cert, spki)))
                    .collect::<Vec<_>>()
            })
            .flatten()
            .collect();
        Signatures { checked }
    }

    /// Whether `cert` verifies under `spki`: the answer `new` found for this pair, else checked
    /// now.
    pub(super) fn verifies(&self, cert: &[u8], spki: &[u8]) -> bool {
        match self.checked.get(&(cert, spki)) {
            Some(&verifies) => verifies,
            None => x509::verifies_under(cert, spki),
        }
    }
}

/// The item whose key signs certificate `id`: its declared issuer, or itself for a root.
fn signer_of(spec: &Spec, id: ItemId, c: &CertSpec) -> ItemId {
    c.issuer
        .filter(|&i| spec.items[i].kind.as_cert().is_some())
        .unwrap_or(id)
}

/// The keys a signer may sign with as the plan sees it: the public key of its key file, and that
/// of its certificate (a CA whose key is elsewhere), once each.
fn candidate_keys<'d>(disk: &'d Disk, key_path: &str, cert_path: &str) -> Vec<&'d [u8]> {
    let key = disk
        .get(key_path)
        .and_then(|f| f.as_key())
        .map(|k| &k.spki[..]);
    let cert = disk
        .get(cert_path)
        .and_then(|f| f.as_cert())
        .map(|c| &c.spki[..]);
    let mut keys: Vec<&[u8]> = key.into_iter().collect();
    keys.extend(cert.filter(|c| Some(*c) != key));
    keys
}

/// The signatures the inventory vouches for. The rule (ARCHITECTURE.md, "plan"): certificate
/// L's signature under signer S's key is taken as valid without checking when the inventory the
/// last writing run wrote records
///
/// 1. L's certificate with the fingerprint it has now, and S as L's declared issuer (S = L for a
///    root), as pki.toml declares it now; and
/// 2. S and every CA above it as *able to sign*, each with its own issuer as declared now: its
///    certificate with the fingerprint it has now, its key file with the public key it has now,
///    the two a pair, and the certificate a CA's with keyCertSign.
///
/// Why that is sound: the inventory is written last by a run that changed something, from the
/// files it left (a crash before leaves the older inventory, and the files that crash renamed no
/// longer match it). In that run, by 2, S and every CA above it had a key and a certificate that
/// could sign, so none was external or waited for a CSR, and L was planned under an issuer that
/// signs here: the run either checked L's signature under S's key and kept L only if it verified,
/// or signed L itself with S's key as it left it; a run that finds a problem writes nothing. By 1,
/// the certificate, the key and the issuer are the same now, and whether a signature verifies is
/// a function of those bytes alone. A file changed since (damaged, replaced, restored from
/// elsewhere, another key) has other bytes than the inventory records, and is checked.
struct Vouched {
    /// By item: whether the CA can sign by condition 2 (`false` for every other item).
    signs: Vec<bool>,
}

impl Vouched {
    fn new(spec: &Spec, disk: &Disk) -> Vouched {
        let mut signs = vec![false; spec.items.len()];
        // Issuers come before what they sign (`Spec::items` is in dependency order).
        for (id, item) in spec.items.iter().enumerate() {
            let ItemKind::Cert(c) = &item.kind else {
                continue;
            };
            let above = match c.issuer {
                None => true,
                Some(i) => signs[i],
            };
            signs[id] = c.ca.is_some() && above && recorded_able_to_sign(spec, disk, id, c);
        }
        Vouched { signs }
    }

    /// The key whose signature over certificate `id` the inventory vouches for, if it does.
    fn signature_of<'d>(&self, spec: &Spec, disk: &'d Disk, id: ItemId) -> Option<&'d [u8]> {
        let c = spec.items[id].kind.as_cert()?;
        let signer = signer_of(spec, id, c);
        if !self.signs[signer] || !recorded_as_is(spec, disk, id, c) {
            return None;
        }
        let sc = spec.items[signer].kind.as_cert()?;
        match disk.key(&sc.key_path) {
            Read::Ok(k) => Some(&k.spki),
            _ => None,
        }
    }
}

/// Whether the inventory records certificate `id` as it is now: the fingerprint of its file and
/// the issuer pki.toml declares for it.
fn recorded_as_is(spec: &Spec, disk: &Disk, id: ItemId, c: &CertSpec) -> bool {
    let item = &spec.items[id];
    let Some(recorded) = disk.records().of(&item.name) else {
        return false;
    };
    let Read::Ok(cf) = disk.cert(&c.cert_path) else {
        return false;
    };
    let declared = match c.issuer {
        None => DeclaredIssuer::Root,
        Some(i) => DeclaredIssuer::Ca(spec.items[i].name.clone()),
    };
    recorded.cert_sha256.as_deref() == Some(cf.fingerprint.as_str())
        && recorded.issuer.as_ref() == Some(&declared)
}

/// Whether CA `id` is recorded, and is, able to sign (condition 2 of `Vouched`, for itself): its
/// certificate and key file as the inventory records them, a pair, the certificate a CA's with
/// keyCertSign.
fn recorded_able_to_sign(spec: &Spec, disk: &Disk, id: ItemId, c: &CertSpec) -> bool {
    let (Read::Ok(cf), Read::Ok(key)) = (disk.cert(&c.cert_path), disk.key(&c.key_path)) else {
        return false;
    };
    let key_recorded = disk
        .records()
        .of(&spec.items[id].name)
        .and_then(|r| r.key_sha256.as_deref())
        == Some(x509::sha256_hex(&key.spki).as_str());
    recorded_as_is(spec, disk, id, c)
        && key_recorded
        && cf.spki == key.spki
        && cf.is_ca
        && cf.key_usage.contains(&"keyCertSign")
}
