//! Stage 4, APPLY: carries out a plan. First everything is made in memory (keys in parallel, then
//! certificates level by level, each level in parallel, then rendered files); only when all of it
//! succeeded is anything written, so an error leaves the output folder as it was. Writes go in
//! dependency order (a key before its certificate, an issuer before what it signs), each atomic,
//! and `inventory.txt` last.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use rcgen::KeyPair;
use time::OffsetDateTime;

use crate::error::Error;
use crate::fsx;
use crate::issue::{self, Signer};
use crate::layout::{CERT_MODE, INVENTORY, KEY_MODE, csr_path, render_mode};
use crate::plan::{Action, Plan};
use crate::render::{self, Material};
use crate::report;
use crate::scan::{Observed, Sources};
use crate::spec::{ItemId, ItemKind, Spec};
use crate::{inventory, x509};

/// One file to write.
pub struct FileWrite {
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

impl std::fmt::Debug for FileWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileWrite {{ {}, {} bytes, mode {:o} }}",
            self.path,
            self.bytes.len(),
            self.mode
        )
    }
}

/// Everything a plan makes, still in memory.
pub struct Built {
    pub files: Vec<FileWrite>,
    pub materials: Vec<Material>,
    /// Non-secret (old, new) text per changed item, for `--diff`.
    pub diffs: Vec<report::Diff>,
    /// Leaves whose notAfter was cut to their issuer's.
    pub clamped: Vec<String>,
}

pub fn build(
    spec: &Spec,
    sources: &Sources,
    observed: &Observed,
    plan: &Plan,
    now: OffsetDateTime,
) -> Result<Built, Error> {
    let disk = &plan.disk;
    let mut materials = disk.clone();

    // Keys: new ones generated in parallel (RSA generation dominates a large run), others read back.
    let keys: Vec<Option<KeyPair>> = plan
        .steps
        .par_iter()
        .map(|s| -> Result<Option<KeyPair>, Error> {
            let item = &spec.items[s.item];
            let (alg, path) = match &item.kind {
                ItemKind::Cert(c) => (c.alg, &c.key_path),
                ItemKind::KeyPair(k) => (k.alg, &k.private_path),
                ItemKind::Render(_) => return Ok(None),
            };
            if s.action.new_key() || s.csr_new_key {
                return issue::generate_key(alg).map(Some).map_err(Error::Crypto);
            }
            Ok(observed
                .get(path)
                .and_then(|f| x509::parse_key(&f.bytes).ok())
                .map(|k| k.key))
        })
        .collect::<Result<_, _>>()?;
    for (id, k) in keys.iter().enumerate() {
        if let Some(k) = k
            && (plan.steps[id].action.new_key() || plan.steps[id].csr_new_key)
        {
            materials[id].key_pem = Some(issue::key_pem(k));
            materials[id].key_spki = Some(rcgen::PublicKeyData::subject_public_key_info(k));
        }
    }

    // Certificates: by depth in the issuer tree, each level in parallel.
    let depth = depths(spec);
    let max_depth = depth.iter().copied().max().unwrap_or(0);
    let mut clamped = Vec::new();
    for level in 0..=max_depth {
        let signed: Vec<(ItemId, Result<issue::Signed, String>)> = plan
            .steps
            .par_iter()
            .filter(|s| {
                depth[s.item] == level
                    && matches!(s.action, Action::Create | Action::Rekey | Action::Resign)
            })
            .filter_map(|s| {
                let ItemKind::Cert(c) = &spec.items[s.item].kind else {
                    return None;
                };
                let old = disk[s.item].cert.as_ref();
                let r = match (keys[s.item].as_ref(), c.issuer) {
                    (None, _) => Err("no key to sign over".to_string()),
                    (Some(key), None) => issue::sign(c, key, &Signer::SelfSigned, now, old),
                    (Some(key), Some(i)) => match (&materials[i].cert, &keys[i]) {
                        (Some(icf), Some(ikey)) => issue::sign(
                            c,
                            key,
                            &Signer::Ca {
                                cert: icf,
                                key: ikey,
                            },
                            now,
                            old,
                        ),
                        _ => Err(format!(
                            "issuer {} has no usable certificate and key",
                            spec.items[i].name
                        )),
                    },
                };
                Some((s.item, r))
            })
            .collect();
        for (id, r) in signed {
            let signed = r.map_err(|e| Error::Crypto(format!("{}: {e}", spec.items[id].name)))?;
            if signed.clamped {
                clamped.push(spec.items[id].name.clone());
            }
            let cf = x509::parse_cert_der(&signed.der).map_err(Error::Crypto)?;
            materials[id].cert_pem = Some(issue::pem_encode("CERTIFICATE", &signed.der));
            materials[id].cert = Some(cf);
        }
    }

    // Public keys of key pairs.
    for s in &plan.steps {
        if let (ItemKind::KeyPair(_), Some(k)) = (&spec.items[s.item].kind, &keys[s.item]) {
            materials[s.item].public_pem = Some(issue::public_key_pem(
                &rcgen::PublicKeyData::subject_public_key_info(k),
            ));
        }
    }

    // CSRs for leaves under external CAs.
    let mut csrs: BTreeMap<ItemId, String> = BTreeMap::new();
    for s in plan.steps.iter().filter(|s| s.action == Action::Csr) {
        let ItemKind::Cert(c) = &spec.items[s.item].kind else {
            continue;
        };
        let key = keys[s.item]
            .as_ref()
            .ok_or_else(|| Error::Crypto(format!("{}: no key", spec.items[s.item].name)))?;
        let fresh = issue::csr(c, key).map_err(Error::Crypto)?;
        // A CSR on disk that asks for exactly the same (same request body, valid signature) is
        // kept byte for byte: an ECDSA signature differs on every run, and a rerun that changes
        // nothing must write nothing.
        let on_disk = observed
            .get(&csr_path(&c.cert_path))
            .filter(|f| !f.symlink && !s.csr_new_key);
        let csr = match on_disk {
            Some(f)
                if csr_request_info(&f.bytes).is_some_and(|old| {
                    csr_request_info(fresh.as_bytes()).is_some_and(|new| new == old)
                }) =>
            {
                String::from_utf8_lossy(&f.bytes).into_owned()
            }
            _ => fresh,
        };
        csrs.insert(s.item, csr);
    }

    // Rendered files, from the final materials.
    let rendered: Vec<(ItemId, Result<String, String>)> = plan
        .steps
        .par_iter()
        .filter(|s| {
            matches!(s.action, Action::Create | Action::Render)
                && matches!(spec.items[s.item].kind, ItemKind::Render(_))
        })
        .map(|s| {
            let ItemKind::Render(r) = &spec.items[s.item].kind else {
                unreachable!()
            };
            let ctx = render::context(spec, r, &|i| materials[i].clone());
            (
                s.item,
                render::render(&sources.templates, &r.template, &ctx)
                    .map_err(|e| format!("{}: {e}", spec.items[s.item].name)),
            )
        })
        .collect();
    let mut renders = BTreeMap::new();
    let mut errors = Vec::new();
    for (id, r) in rendered {
        match r {
            // A value that is still unknown after apply means an input is missing: never write
            // a placeholder where a certificate or key belongs.
            Ok(t) if t.contains(render::PENDING) => errors.push(format!(
                "{}: an input it reads has no certificate or key yet; nothing was rendered",
                spec.items[id].name
            )),
            Ok(t) => {
                renders.insert(id, t);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(Error::Blocked(errors));
    }

    // The files, in dependency order, and the diffs.
    let mut files = Vec::new();
    let mut diffs = Vec::new();
    for s in &plan.steps {
        let item = &spec.items[s.item];
        let m = &materials[s.item];
        match &item.kind {
            ItemKind::Cert(c) => {
                if s.action.new_key() || s.csr_new_key {
                    files.push(FileWrite {
                        path: c.key_path.clone(),
                        bytes: made(&m.key_pem, &item.name)?,
                        mode: KEY_MODE,
                    });
                }
                if matches!(s.action, Action::Create | Action::Rekey | Action::Resign) {
                    files.push(FileWrite {
                        path: c.cert_path.clone(),
                        bytes: made(&m.cert_pem, &item.name)?,
                        mode: CERT_MODE,
                    });
                    diffs.push(report::Diff {
                        label: c.cert_path.clone(),
                        old: disk[s.item]
                            .cert
                            .as_ref()
                            .map(x509::describe)
                            .unwrap_or_default(),
                        new: m.cert.as_ref().map(x509::describe).unwrap_or_default(),
                        key_rotated: s.action.new_key(),
                    });
                }
                if let Some(csr) = csrs.get(&s.item) {
                    files.push(FileWrite {
                        path: csr_path(&c.cert_path),
                        bytes: csr.clone().into_bytes(),
                        mode: CERT_MODE,
                    });
                }
            }
            ItemKind::KeyPair(k) => {
                if s.action.new_key() {
                    files.push(FileWrite {
                        path: k.private_path.clone(),
                        bytes: made(&m.key_pem, &item.name)?,
                        mode: KEY_MODE,
                    });
                }
                if matches!(s.action, Action::Create | Action::Rekey | Action::Render) {
                    files.push(FileWrite {
                        path: k.public_path.clone(),
                        bytes: made(&m.public_pem, &item.name)?,
                        mode: CERT_MODE,
                    });
                    diffs.push(report::Diff {
                        label: k.public_path.clone(),
                        old: disk[s.item]
                            .public_pem
                            .as_deref()
                            .map(public_summary)
                            .unwrap_or_default(),
                        new: m
                            .public_pem
                            .as_deref()
                            .map(public_summary)
                            .unwrap_or_default(),
                        key_rotated: s.action.new_key(),
                    });
                }
            }
            ItemKind::Render(r) => {
                if let Some(text) = renders.get(&s.item) {
                    let old = observed
                        .get(&r.path)
                        .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
                        .unwrap_or_default();
                    diffs.push(report::Diff {
                        label: r.path.clone(),
                        old: report::redact(&old, disk, spec),
                        new: report::redact(text, &materials, spec),
                        key_rotated: false,
                    });
                    let mode = render_mode(r);
                    files.push(FileWrite {
                        path: r.path.clone(),
                        bytes: text.clone().into_bytes(),
                        mode,
                    });
                }
            }
        }
    }
    Ok(Built {
        files,
        materials,
        diffs,
        clamped,
    })
}

/// The signed part of a PEM certificate request, if it parses and its signature verifies.
fn csr_request_info(pem: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer as _;
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    if p.label != "CERTIFICATE REQUEST" {
        return None;
    }
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&p.contents).ok()?;
    req.verify_signature().ok()?;
    Some(req.certification_request_info.raw.to_vec())
}

/// What `build` made for a file it must write; its absence is a bug, never an empty file.
fn made(text: &Option<String>, item: &str) -> Result<Vec<u8>, Error> {
    text.as_ref()
        .map(|t| t.clone().into_bytes())
        .ok_or_else(|| {
            Error::Crypto(format!(
                "{item}: nothing was made for a file the plan writes"
            ))
        })
}

fn public_summary(pem: &str) -> String {
    match x509::parse_public_key(pem.as_bytes()) {
        Ok(spki) => format!(
            "key: {}\npublic-key-sha256: {}\n",
            x509::key_alg_of_spki(&spki).map_or("unknown", |a| a.name()),
            x509::sha256_hex(&spki)
        ),
        Err(_) => String::new(),
    }
}

/// Depth of each item in the issuer tree (roots and non-certificates are 0).
fn depths(spec: &Spec) -> Vec<usize> {
    let mut d = vec![0; spec.items.len()];
    for (id, item) in spec.items.iter().enumerate() {
        if let ItemKind::Cert(c) = &item.kind
            && let Some(i) = c.issuer
        {
            d[id] = d[i] + 1;
        }
    }
    d
}

/// Removes what an interrupted run (killed mid-write) left: temporary files, never taken for real
/// files. The caller holds the lock, so no other run is writing them.
pub fn remove_temps(out_dir: &Path, observed: &Observed) -> Result<Vec<String>, Error> {
    for t in &observed.temps {
        fsx::remove(out_dir, t)?;
    }
    Ok(observed.temps.clone())
}

/// What apply changed on disk.
#[derive(Debug, Default)]
pub struct Written {
    pub written: Vec<String>,
    pub modes_fixed: Vec<String>,
    pub removed: Vec<String>,
}

/// Writes what `build` made. The caller holds the output folder's lock.
pub fn write(
    out_dir: &Path,
    spec: &Spec,
    observed: &Observed,
    plan: &Plan,
    built: &Built,
    prune: bool,
) -> Result<Written, Error> {
    let mut w = Written::default();
    for f in &built.files {
        let unchanged = observed
            .get(&f.path)
            .is_some_and(|o| !o.symlink && o.bytes == f.bytes && o.mode == f.mode);
        if unchanged {
            continue;
        }
        fsx::write_atomic(out_dir, &f.path, &f.bytes, f.mode)?;
        w.written.push(f.path.clone());
    }
    for s in &plan.steps {
        for (path, _, want) in &s.fix_modes {
            if !w.written.contains(path) {
                fsx::set_mode(out_dir, path, *want)?;
                w.modes_fixed.push(path.clone());
            }
        }
    }
    if prune {
        for o in &plan.orphans {
            fsx::remove(out_dir, o)?;
            w.removed.push(o.clone());
            // Folders the pruned files leave empty go too (a removed node's nodes/<node>/).
            fsx::remove_empty_parents(out_dir, o);
        }
    }
    let text = inventory::inventory(spec, &|i| built.materials[i].clone());
    if observed.get(INVENTORY).map(|f| f.bytes.as_slice()) != Some(text.as_bytes()) {
        fsx::write_atomic(out_dir, INVENTORY, text.as_bytes(), CERT_MODE)?;
        w.written.push(INVENTORY.into());
    }
    Ok(w)
}
