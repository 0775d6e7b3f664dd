//! Stage 4, APPLY: carries out a plan. First everything is made in memory (keys in parallel, then
//! certificates level by level, each level in parallel, then rendered files); only when all of it
//! succeeded is anything written, so an error leaves the output folder as it was. Writes go in
//! dependency order (a key before its certificate, an issuer before what it signs), each atomic,
//! and `inventory.txt` last.

mod sealing;

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use rcgen::{KeyPair, PublicKeyData as _};
use time::OffsetDateTime;

use crate::disk::Disk;
use crate::error::Error;
use crate::fsx;
use crate::issue::{self, Signer};
use crate::layout::{CERT_MODE, FolderModes, INVENTORY, KEY_MODE, csr_path, render_mode};
use crate::plan::{Action, Blocker, Plan, Problem, Step};
use crate::progress::{Observer, Phase};
use crate::render::{self, Material};
use crate::report::{self, Diff};
use crate::scan::Sources;
use crate::sops::Identity;
use crate::spec::{CertSpec, ItemId, ItemKind, RenderSpec, Spec};
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
    pub diffs: Vec<Diff>,
    /// Leaves whose notAfter was cut to their issuer's.
    pub clamped: Vec<String>,
}

/// The key an item signs with or is signed over: a new one, the one on disk, or the one on disk
/// decrypted (a key encrypted at rest that this run uses), with the PEM text that was encrypted.
enum Key<'d> {
    New(KeyPair),
    Disk(&'d KeyPair),
    Opened(KeyPair, String),
}

impl Key<'_> {
    fn pair(&self) -> &KeyPair {
        match self {
            Key::New(k) | Key::Opened(k, _) => k,
            Key::Disk(k) => k,
        }
    }
}

/// How a build runs: its clock, the age identities that open the keys encrypted at rest that the
/// plan uses (a key that none opens stops the run, naming what it is encrypted to), whether to
/// make diffs, and who hears of its progress.
pub struct Settings<'a> {
    pub now: OffsetDateTime,
    pub identities: &'a [Identity],
    /// Diffs of what changes, made only when asked for (`--diff`): a diff of a rendered file
    /// renders it again and redacts it, work a run that prints no diff must not do.
    pub diffs: bool,
    pub progress: &'a Observer,
}

impl Settings<'static> {
    /// A build at `now` with no identities, no diffs and no progress display.
    pub fn at(now: OffsetDateTime) -> Settings<'static> {
        Settings {
            now,
            identities: &[],
            diffs: false,
            progress: &crate::progress::NONE,
        }
    }
}

/// Makes everything `plan` asks for, in memory.
pub fn build(
    spec: &Spec,
    sources: &Sources,
    disk: &Disk,
    plan: &Plan,
    settings: &Settings<'_>,
) -> Result<Built, Error> {
    let (now, want_diffs, progress) = (settings.now, settings.diffs, settings.progress);
    let ring = sealing::Keyring {
        encryption: spec.encryption.as_ref(),
        identities: settings.identities,
        now,
    };
    let mut materials = plan.current.clone();
    let keys = keys(spec, disk, plan, ring, progress)?;
    for (step, key) in plan.steps.iter().zip(&keys) {
        let m = &mut materials[step.item];
        match key {
            Some(Key::New(k)) => {
                m.key_pem = Some(x509::key_pem(k));
                m.key_spki = Some(k.subject_public_key_info());
                if matches!(spec.items[step.item].kind, ItemKind::KeyPair(_)) {
                    m.public_pem = Some(x509::public_key_pem(&k.subject_public_key_info()));
                }
            }
            Some(Key::Opened(_, pem)) => m.key_pem = Some(pem.clone()),
            _ => {}
        }
    }
    let resealed = resealed(spec, disk, plan, ring)?;
    let clamped = certificates(spec, plan, &keys, &mut materials, (now, progress))?;
    let csrs = csrs(spec, disk, plan, &keys)?;
    let renders = renders(spec, sources, plan, &materials, (want_diffs, progress))?;
    let mut files = Vec::new();
    let mut diffs = Vec::new();
    for s in &plan.steps {
        let made = Made {
            spec,
            disk,
            plan,
            materials: &materials,
            ring,
            resealed: &resealed,
            diffs: want_diffs,
        };
        let (f, d) = match &spec.items[s.item].kind {
            ItemKind::Cert(c) => made.cert_files(s, c, csrs.get(&s.item))?,
            ItemKind::KeyPair(k) => made.keypair_files(s, &k.private_path, &k.public_path)?,
            ItemKind::Render(r) => match (renders.get(&s.item), resealed.get(&s.item)) {
                (Some(rendered), _) => made.render_files(r, rendered)?,
                (None, Some(text)) => (vec![file(&r.path, text.clone(), render_mode(r))], vec![]),
                (None, None) => (vec![], vec![]),
            },
        };
        files.extend(f);
        diffs.extend(d);
    }
    Ok(Built {
        files,
        materials,
        diffs,
        clamped,
    })
}

/// New keys, generated in parallel (RSA generation dominates a large run); the others borrowed
/// from what the plan read, or decrypted when they are encrypted at rest and this run uses them.
/// Every key that does not open is reported, not only the first.
fn keys<'d>(
    spec: &Spec,
    disk: &'d Disk,
    plan: &Plan,
    ring: sealing::Keyring<'_>,
    progress: &Observer,
) -> Result<Vec<Option<Key<'d>>>, Error> {
    let used = sealing::keys_used(spec, plan);
    progress.phase(
        Phase::Keys,
        plan.steps.iter().filter(|s| s.new_key()).count(),
    );
    let keys: Vec<Result<Option<Key<'d>>, Error>> = plan
        .steps
        .par_iter()
        .map(|s| {
            let alg = match &spec.items[s.item].kind {
                ItemKind::Cert(c) => c.alg,
                ItemKind::KeyPair(k) => k.alg,
                ItemKind::Render(_) => return Ok(None),
            };
            if s.new_key() {
                let key = issue::generate_key(alg);
                progress.step();
                return key.map(|k| Some(Key::New(k))).map_err(Error::Crypto);
            }
            let Some(paths) = sealing::key_paths(spec, s.item) else {
                return Ok(None);
            };
            let Some(facts) = disk.get(paths.key).and_then(|f| f.as_key()) else {
                return Ok(None);
            };
            match &facts.key {
                Some(pair) => Ok(Some(Key::Disk(pair))),
                None if used.contains(&s.item) => ring
                    .open(disk, paths, &facts.spki)
                    .map(|(k, pem)| Some(Key::Opened(k, pem)))
                    .map_err(|b| Error::Blocked(vec![sealing::problem(spec, s.item, *b)])),
                None => Ok(None),
            }
        })
        .collect();
    gather(keys)
}

/// The key files the plan rewrites with the key kept (`encrypt`, `decrypt`, `re-encrypt`), by
/// item.
fn resealed(
    spec: &Spec,
    disk: &Disk,
    plan: &Plan,
    ring: sealing::Keyring<'_>,
) -> Result<BTreeMap<ItemId, String>, Error> {
    let texts: Vec<Result<Option<(ItemId, String)>, Error>> = plan
        .steps
        .par_iter()
        .map(|s| {
            let (Some(reseal), Some(paths)) = (&s.reseal, sealing::sealed_paths(spec, s.item))
            else {
                return Ok(None);
            };
            let spki = plan.current[s.item].key_spki.as_deref().unwrap_or_default();
            ring.reseal(disk, paths, reseal, spki)
                .map(|text| Some((s.item, text)))
                .map_err(|b| Error::Blocked(vec![sealing::problem(spec, s.item, *b)]))
        })
        .collect();
    Ok(gather(texts)?.into_iter().flatten().collect())
}

/// Every result, or every problem of them all in one `Error::Blocked` (the first other error as
/// it is).
fn gather<T>(results: Vec<Result<T, Error>>) -> Result<Vec<T>, Error> {
    let mut oks = Vec::new();
    let mut problems = Vec::new();
    for r in results {
        match r {
            Ok(v) => oks.push(v),
            Err(Error::Blocked(p)) => problems.extend(p),
            Err(other) => return Err(other),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Blocked(problems));
    }
    Ok(oks)
}

/// Signs every certificate the plan signs, by depth in the issuer tree, each level in parallel
/// (an issuer is signed before what it signs). Returns the leaves cut to their issuer's notAfter.
fn certificates(
    spec: &Spec,
    plan: &Plan,
    keys: &[Option<Key<'_>>],
    materials: &mut [Material],
    (now, progress): (OffsetDateTime, &Observer),
) -> Result<Vec<String>, Error> {
    let signs =
        |s: &&Step| s.action.signs() && matches!(spec.items[s.item].kind, ItemKind::Cert(_));
    progress.phase(Phase::Signing, plan.steps.iter().filter(signs).count());
    let depth = depths(spec);
    let max_depth = depth.iter().copied().max().unwrap_or(0);
    let mut clamped = Vec::new();
    for level in 0..=max_depth {
        let signed: Vec<(ItemId, Result<issue::Signed, String>)> = plan
            .steps
            .par_iter()
            .filter(|s| depth[s.item] == level && s.action.signs())
            .filter_map(|s| {
                let ItemKind::Cert(c) = &spec.items[s.item].kind else {
                    return None;
                };
                let signed = sign_one(spec, s.item, c, plan, keys, materials, now);
                progress.step();
                Some((s.item, signed))
            })
            .collect();
        for (id, r) in signed {
            let signed = r.map_err(|e| Error::Crypto(format!("{}: {e}", spec.items[id].name)))?;
            if signed.clamped {
                clamped.push(spec.items[id].name.clone());
            }
            let cf = x509::parse_cert_der(&signed.der).map_err(Error::Crypto)?;
            materials[id].cert_pem = Some(x509::pem_encode("CERTIFICATE", &signed.der));
            materials[id].cert = Some(cf);
        }
    }
    Ok(clamped)
}

/// Signs certificate `id` over its key, by itself or by its issuer as this run leaves it.
fn sign_one(
    spec: &Spec,
    id: ItemId,
    c: &CertSpec,
    plan: &Plan,
    keys: &[Option<Key<'_>>],
    materials: &[Material],
    now: OffsetDateTime,
) -> Result<issue::Signed, String> {
    let old = plan.current[id].cert.as_ref();
    let key = keys[id].as_ref().ok_or("no key to sign over")?.pair();
    let Some(i) = c.issuer else {
        return issue::sign(c, key, &Signer::SelfSigned, now, old);
    };
    match (&materials[i].cert, &keys[i]) {
        (Some(cert), Some(ikey)) => {
            let signer = Signer::Ca {
                cert,
                key: ikey.pair(),
            };
            issue::sign(c, key, &signer, now, old)
        }
        _ => Err(format!(
            "issuer {} has no usable certificate and key",
            spec.items[i].name
        )),
    }
}

/// CSRs for certificates under external CAs. A CSR on disk that asks for exactly the same (same
/// request body, valid signature) is kept byte for byte: an ECDSA signature differs on every run,
/// and a rerun that changes nothing must write nothing.
fn csrs(
    spec: &Spec,
    disk: &Disk,
    plan: &Plan,
    keys: &[Option<Key<'_>>],
) -> Result<BTreeMap<ItemId, String>, Error> {
    let mut csrs = BTreeMap::new();
    for s in plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Csr && s.writes())
    {
        let ItemKind::Cert(c) = &spec.items[s.item].kind else {
            continue;
        };
        let name = &spec.items[s.item].name;
        let key = keys[s.item]
            .as_ref()
            .ok_or_else(|| Error::Crypto(format!("{name}: no key")))?;
        let fresh = issue::csr(c, key.pair()).map_err(Error::Crypto)?;
        let on_disk = disk
            .obs(&csr_path(&c.cert_path))
            .filter(|f| !f.symlink && !s.new_key());
        let csr = match on_disk {
            Some(f) if same_request(&f.bytes, fresh.as_bytes()) => {
                String::from_utf8_lossy(&f.bytes).into_owned()
            }
            _ => fresh,
        };
        csrs.insert(s.item, csr);
    }
    Ok(csrs)
}

fn same_request(old: &[u8], new: &[u8]) -> bool {
    csr_request_info(old).is_some_and(|o| csr_request_info(new).is_some_and(|n| n == o))
}

/// A rendered file: its text, and the text a diff shows (redacted by provenance), when diffs are
/// asked for.
struct Rendered {
    text: String,
    shown: Option<String>,
}

/// Rendered files, from the final materials, in parallel. A value that is still unknown after
/// apply means an input is missing: never write a placeholder where a certificate or key belongs.
fn renders(
    spec: &Spec,
    sources: &Sources,
    plan: &Plan,
    materials: &[Material],
    (diffs, progress): (bool, &Observer),
) -> Result<BTreeMap<ItemId, Rendered>, Error> {
    let todo: Vec<(ItemId, &RenderSpec)> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Create | Action::Render))
        .filter_map(|s| match &spec.items[s.item].kind {
            ItemKind::Render(r) => Some((s.item, r)),
            _ => None,
        })
        .collect();
    progress.phase(Phase::Rendering, todo.len());
    let rendered: Vec<(ItemId, Result<Rendered, Blocker>)> = todo
        .into_par_iter()
        .map(|(id, r)| {
            let material = |i: ItemId| materials[i].clone();
            let ctx = render::context(spec, r, &material);
            let text = match render::render(&sources.templates, &r.template, &ctx) {
                Ok(t) if t.contains(render::PENDING) => Err(Blocker::RenderInputMissing),
                Ok(t) => Ok(t),
                Err(e) => Err(Blocker::Template(e)),
            };
            let shown = diffs
                .then(|| render::render_shown(spec, &sources.templates, r, &material))
                .transpose();
            let rendered = match (text, shown) {
                (Ok(text), Ok(shown)) => Ok(Rendered { text, shown }),
                (Err(b), _) => Err(b),
                (Ok(_), Err(e)) => Err(Blocker::Template(e)),
            };
            progress.step();
            (id, rendered)
        })
        .collect();
    let mut renders = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, r) in rendered {
        match r {
            Ok(t) => {
                renders.insert(id, t);
            }
            Err(blocker) => problems.push(Problem {
                items: vec![spec.items[id].name.clone()],
                blocker,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Blocked(problems));
    }
    Ok(renders)
}

/// What `build` made, turned into the files of each step and their diffs.
struct Made<'a> {
    spec: &'a Spec,
    disk: &'a Disk,
    plan: &'a Plan,
    materials: &'a [Material],
    ring: sealing::Keyring<'a>,
    /// Key files rewritten with the key kept, by item.
    resealed: &'a BTreeMap<ItemId, String>,
    /// Whether to make diffs (`--diff`).
    diffs: bool,
}

type FilesAndDiffs = (Vec<FileWrite>, Vec<Diff>);

impl Made<'_> {
    fn name(&self, s: &Step) -> &str {
        &self.spec.items[s.item].name
    }

    /// The item's key file, if this step writes it: a new key (encrypted under `[encryption]`),
    /// or the key kept and its file rewritten to match `[encryption]`.
    fn key_file(&self, s: &Step, path: &str) -> Result<Option<FileWrite>, Error> {
        if s.new_key() {
            let pem = made(&self.materials[s.item].key_pem, self.name(s))?;
            let text = self.ring.key_file_text(&pem)?;
            return Ok(Some(file(path, text, KEY_MODE)));
        }
        Ok(self
            .resealed
            .get(&s.item)
            .map(|text| file(path, text.clone(), KEY_MODE)))
    }

    fn cert_files(
        &self,
        s: &Step,
        c: &CertSpec,
        csr: Option<&String>,
    ) -> Result<FilesAndDiffs, Error> {
        let m = &self.materials[s.item];
        let (mut files, mut diffs) = (Vec::new(), Vec::new());
        files.extend(self.key_file(s, &c.key_path)?);
        if s.action.signs() {
            files.push(file(
                &c.cert_path,
                made(&m.cert_pem, self.name(s))?,
                CERT_MODE,
            ));
        }
        if s.action.signs() && self.diffs {
            let describe = |m: &Material| m.cert.as_ref().map(x509::describe).unwrap_or_default();
            diffs.push(Diff {
                label: c.cert_path.clone(),
                old: describe(&self.plan.current[s.item]),
                new: describe(m),
                key_rotated: s.new_key(),
            });
        }
        if let Some(csr) = csr {
            files.push(file(&csr_path(&c.cert_path), csr.clone(), CERT_MODE));
        }
        Ok((files, diffs))
    }

    fn keypair_files(&self, s: &Step, private: &str, public: &str) -> Result<FilesAndDiffs, Error> {
        let m = &self.materials[s.item];
        let (mut files, mut diffs) = (Vec::new(), Vec::new());
        files.extend(self.key_file(s, private)?);
        if matches!(s.action, Action::Create | Action::Rekey | Action::Render) {
            files.push(file(public, made(&m.public_pem, self.name(s))?, CERT_MODE));
        }
        if matches!(s.action, Action::Create | Action::Rekey | Action::Render) && self.diffs {
            let summary = |m: &Material| {
                m.public_pem
                    .as_deref()
                    .map(public_summary)
                    .unwrap_or_default()
            };
            diffs.push(Diff {
                label: public.to_string(),
                old: summary(&self.plan.current[s.item]),
                new: summary(m),
                key_rotated: s.new_key(),
            });
        }
        Ok((files, diffs))
    }

    fn render_files(&self, r: &RenderSpec, rendered: &Rendered) -> Result<FilesAndDiffs, Error> {
        let path = &r.path;
        let text = if render::is_sealed(self.spec, r) {
            self.ring
                .render_file_text(&rendered.text, &self.secret_keys(r))?
        } else {
            rendered.text.clone()
        };
        let files = vec![file(path, text, render_mode(r))];
        let Some(shown) = rendered.shown.as_deref().filter(|_| self.diffs) else {
            return Ok((files, vec![]));
        };
        let old = self
            .disk
            .obs(path)
            .map(|f| render::on_disk_text(&f.bytes))
            .unwrap_or_default();
        let diff = Diff {
            label: path.to_string(),
            old: report::redact(&old, &self.plan.current, self.spec, r),
            // Redacted by provenance, and by pattern too: a key in `vars` has no provenance.
            new: report::redact(&self.shown(r, shown), self.materials, self.spec, r),
            key_rotated: false,
        };
        Ok((files, vec![diff]))
    }

    /// A rendered file's new text as its diff shows it: an encrypted one as anyone will read it.
    fn shown(&self, r: &RenderSpec, shown: &str) -> String {
        if render::is_sealed(self.spec, r) {
            render::sealed_shown(shown)
        } else {
            shown.to_string()
        }
    }

    /// The keys a render is granted, as this run leaves them (PEM).
    fn secret_keys(&self, r: &RenderSpec) -> Vec<String> {
        let ids = r.secrets.iter().filter_map(|var| r.bind.get(var));
        ids.filter_map(|&i| self.materials[i].key_pem.clone())
            .collect()
    }
}

fn file(path: &str, text: String, mode: u32) -> FileWrite {
    FileWrite {
        path: path.to_string(),
        bytes: text.into_bytes(),
        mode,
    }
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
fn made(text: &Option<String>, item: &str) -> Result<String, Error> {
    text.clone().ok_or_else(|| {
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
pub fn remove_temps(out_dir: &Path, disk: &Disk) -> Result<Vec<String>, Error> {
    for t in &disk.temps {
        fsx::remove(out_dir, t)?;
    }
    Ok(disk.temps.clone())
}

/// Removes the CSRs nothing waits on any more (their certificates are in place, or signed here
/// now). A CSR is public data the tool wrote itself, like a temporary file: it is removed by any
/// writing run, with or without `--prune`, even one that has nothing else to do. The caller
/// holds the lock.
pub fn remove_answered_csrs(out_dir: &Path, plan: &Plan) -> Result<(), Error> {
    for (csr, _) in &plan.answered_csrs {
        fsx::remove(out_dir, csr)?;
    }
    Ok(())
}

/// What apply changed on disk.
#[derive(Debug, Default)]
pub struct Written {
    pub written: Vec<String>,
    pub modes_fixed: Vec<String>,
    pub removed: Vec<String>,
}

/// Whether `f` is on disk already, byte for byte and with its mode: a rerun that changes nothing
/// writes nothing.
fn unchanged(disk: &Disk, f: &FileWrite) -> bool {
    disk.obs(&f.path)
        .is_some_and(|o| !o.symlink && o.bytes == f.bytes && o.mode == f.mode)
}

/// Writes what `build` made. The caller holds the output folder's lock.
pub fn write(
    out_dir: &Path,
    spec: &Spec,
    disk: &Disk,
    plan: &Plan,
    built: &Built,
    prune: bool,
    progress: &Observer,
) -> Result<Written, Error> {
    let mut w = Written::default();
    let folders = FolderModes::new(spec);
    // One batch, in the order `build` made the files (a key before its certificate, an issuer
    // before what it signs): every file's bytes are durable before any is renamed, and the renames
    // keep this order (`fsx::write_batch`).
    let changed: Vec<&FileWrite> = built.files.iter().filter(|f| !unchanged(disk, f)).collect();
    let batch: Vec<fsx::BatchFile<'_>> = changed
        .iter()
        .map(|f| fsx::BatchFile {
            rel: &f.path,
            bytes: &f.bytes,
            mode: f.mode,
        })
        .collect();
    // Made before the batch only so the progress display can count it; written last, below.
    let inventory = inventory::inventory(spec, &|i| built.materials[i].clone());
    let inventory_changed =
        disk.obs(INVENTORY).map(|f| f.bytes.as_slice()) != Some(inventory.as_bytes());
    progress.phase(Phase::Writing, batch.len() + usize::from(inventory_changed));
    fsx::write_batch(out_dir, &batch, &folders, &|| progress.step())?;
    w.written = changed.iter().map(|f| f.path.clone()).collect();
    let written: std::collections::BTreeSet<&str> = w.written.iter().map(String::as_str).collect();
    for fix in plan.steps.iter().flat_map(|s| &s.fix_modes) {
        if !written.contains(fix.path.as_str()) {
            fsx::set_mode(out_dir, &fix.path, fix.want)?;
            w.modes_fixed.push(fix.path.clone());
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
    // The inventory is also the record that pins each CA's key (and the key pair's) to its item
    // (`inventory::Pins`), so it is written last, after every key and certificate. A crash before
    // this write leaves the old record: it pins what was there before the run, and only a run that
    // gave a pinned item a new key left anything it disagrees with; that is a `--rekey` (finished
    // by running the same `--rekey` again, which skips the pin) or a pinned item made anew after
    // all its files were gone (which the next run names, with the same ways out). A crash after
    // it leaves nothing to do: every other file was written before it.
    if inventory_changed {
        fsx::write_atomic(
            out_dir,
            INVENTORY,
            inventory.as_bytes(),
            CERT_MODE,
            &folders,
        )?;
        progress.step();
        w.written.push(INVENTORY.into());
    }
    Ok(w)
}
