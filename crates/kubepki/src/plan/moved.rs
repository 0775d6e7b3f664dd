//! Files that moved: a certificate or key missing where pki.toml says, while an undeclared file in
//! the output folder holds it (a changed `cert =`/`key =` path, or a file moved by hand). They are
//! named, so the user moves them back, instead of being replaced by new keys and left as orphans.

use std::collections::{BTreeSet, HashMap};

use rayon::prelude::*;

use crate::disk::{Disk, DiskFile};
use crate::spec::{CertSpec, Sans};
use crate::x509::CertFacts;

/// The undeclared files of the output folder that could be an item's, indexed once per plan.
pub(super) struct Undeclared<'d> {
    /// Private keys by their public key (SubjectPublicKeyInfo DER); the first path in sorted
    /// order when several files hold the same key.
    keys: HashMap<&'d [u8], &'d str>,
    certs: Vec<(&'d str, &'d CertFacts)>,
    publics: Vec<(&'d str, &'d [u8])>,
}

impl<'d> Undeclared<'d> {
    pub(super) fn new(disk: &'d Disk, claimed: &BTreeSet<String>) -> Undeclared<'d> {
        let mut u = Undeclared {
            keys: HashMap::new(),
            certs: Vec::new(),
            publics: Vec::new(),
        };
        let files: Vec<(&str, &DiskFile)> = disk
            .files()
            .filter(|(p, _)| !claimed.contains(*p))
            .collect();
        // An undeclared file is read as all three here, so it is decoded here, in parallel
        // (`disk` decodes only what pki.toml declares in advance).
        files.par_iter().for_each(|(_, f)| {
            f.as_key();
            f.as_cert();
            f.as_public_key();
        });
        for (path, f) in files {
            if let Some(k) = f.as_key() {
                u.keys.entry(k.spki.as_slice()).or_insert(path);
            }
            if let Some(c) = f.as_cert() {
                u.certs.push((path, c));
            }
            if let Some(p) = f.as_public_key() {
                u.publics.push((path, p));
            }
        }
        u
    }

    /// The undeclared private key whose public key is `spki`.
    fn key_of(&self, spki: &[u8]) -> Option<&'d str> {
        self.keys.get(spki).copied()
    }

    /// Where the files of certificate `c` are, when they are not where pki.toml says but
    /// undeclared in the output folder: (the certificate's path if it moved too, the key's path).
    /// The key is recognised by its public key: the certificate's on disk (`cert_here`), or else
    /// an undeclared certificate's with the same subject, SANs and usages.
    pub(super) fn cert_files(
        &self,
        c: &CertSpec,
        cert_here: Option<&CertFacts>,
        cert_file_here: bool,
    ) -> Option<(Option<String>, String)> {
        if let Some(cf) = cert_here {
            return self.key_of(&cf.spki).map(|k| (None, k.to_string()));
        }
        if cert_file_here {
            return None;
        }
        // Certificates alike in subject and SANs (etcd's server and peer) are told apart by their
        // usages and, last, by file name.
        let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        let mut found: Vec<(&str, &str)> = self
            .certs
            .iter()
            .filter(|(_, cf)| looks_like(c, cf))
            .filter_map(|(p, cf)| self.key_of(&cf.spki).map(|k| (*p, k)))
            .collect();
        found.sort_by_key(|(p, _)| name(p) != name(&c.cert_path));
        found
            .into_iter()
            .next()
            .map(|(p, k)| (Some(p.to_string()), k.to_string()))
    }

    /// An undeclared private key and an undeclared public key file of the same key: the files of
    /// a key pair that pki.toml no longer names where they are.
    pub(super) fn key_pair(&self) -> Option<(String, String)> {
        // In path order of the private keys, as the folder lists them.
        let mut pairs: Vec<(&str, &str)> = self
            .publics
            .iter()
            .filter_map(|(public, spki)| self.key_of(spki).map(|private| (private, *public)))
            .collect();
        pairs.sort();
        pairs
            .first()
            .map(|(private, public)| (private.to_string(), public.to_string()))
    }
}

/// Whether certificate `cf` is what `c` declares, by the fields a move leaves alone.
fn looks_like(c: &CertSpec, cf: &CertFacts) -> bool {
    let mut usages = cf.usages.clone();
    usages.sort();
    cf.subject.same_as(&c.subject)
        && san_set(&cf.sans) == san_set(&c.sans)
        && cf.is_ca == c.ca.is_some()
        && (c.ca.is_some() || usages == c.usages)
}

/// SANs as a set of `DNS:name` and `IP:address`, the form reasons show them in.
pub(super) fn san_set(s: &Sans) -> BTreeSet<String> {
    s.dns
        .iter()
        .map(|d| format!("DNS:{d}"))
        .chain(s.ips.iter().map(|i| format!("IP:{i}")))
        .collect()
}
