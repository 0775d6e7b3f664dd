//! Every certificate's signature that the plan may ask about, checked once, before the plan's
//! loop, all of them in parallel. The plan decides item by item in dependency order, so checking
//! inside the loop is serial; but whether a certificate verifies under a key depends on the two
//! byte strings only, and the keys the loop asks about are the signer's key or certificate as they
//! are on disk whenever the signer keeps its key (a signer with a new key re-signs what is below
//! it without asking). So those pairs are checked here, and the loop asks `verifies`, which checks
//! any other pair itself: the answer is the same function of the same bytes either way.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::disk::Disk;
use crate::spec::{ItemKind, Spec};
use crate::x509;

/// Whether a certificate (its DER) verifies under a key (its SPKI DER), for every pair checked.
pub(super) struct Signatures<'d> {
    checked: HashMap<(&'d [u8], &'d [u8]), bool>,
}

impl<'d> Signatures<'d> {
    /// Checks every certificate on disk under its signer's key and certificate on disk (its own,
    /// for a root), in parallel.
    pub(super) fn new(spec: &Spec, disk: &'d Disk) -> Signatures<'d> {
        let checked = spec
            .items
            .par_iter()
            .map(|item| {
                let ItemKind::Cert(c) = &item.kind else {
                    return vec![];
                };
                let Some(cf) = disk.get(&c.cert_path).and_then(|f| f.as_cert()) else {
                    return vec![];
                };
                let cert: &[u8] = &cf.der;
                let signer = c
                    .issuer
                    .and_then(|i| spec.items[i].kind.as_cert())
                    .unwrap_or(c);
                candidate_keys(disk, &signer.key_path, &signer.cert_path)
                    .into_iter()
                    .map(|spki| ((cert, spki), x509::verifies_under(cert, spki)))
                    .collect::<Vec<_>>()
            })
            .flatten()
            .collect();
        Signatures { checked }
    }

    /// Whether `cert` verifies under `spki`: the answer `new` found when it checked this pair,
    /// else checked now.
    pub(super) fn verifies(&self, cert: &[u8], spki: &[u8]) -> bool {
        match self.checked.get(&(cert, spki)) {
            Some(&verifies) => verifies,
            None => x509::verifies_under(cert, spki),
        }
    }
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
