//! Stage 3, PLAN (pure): compares what pki.toml asks for with what is on disk, field by field, and
//! decides per item what to do and why. No filesystem, no clock (`now` is a parameter), no RNG.
//!
//! Each kind of item has its module (`cert`, `keypair`, `renders`); what an item decided is its
//! `Fate`, which the items planned after it read; why is a `Reason`, and what stops the run a
//! `Problem` (`why`). Files that moved are recognised in `moved`, the run-wide checks (flags,
//! folders, orphans) are here.

mod cert;
mod fate;
mod identity;
mod keypair;
mod moved;
mod renders;
mod seal;
mod signatures;
#[cfg(test)]
mod tests;
mod waits;
mod why;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use time::OffsetDateTime;

use crate::disk::Disk;
use crate::layout::{INVENTORY, RESERVED, csr_path};
use crate::render::Material;
use crate::scan::Sources;
use crate::spec::{CertSpec, Item, ItemId, ItemKind, Spec};

pub(crate) use fate::{Fate, Known};
pub use seal::Reseal;
pub use why::{Blocker, KeyOwner, PinnedKind, Problem, ProtectedKey, Reason, Waiting};

/// What a step does to its item's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Nothing there yet: new key, new certificate (or file).
    Create,
    /// A new key, then a new certificate.
    Rekey,
    /// A new certificate over the existing key.
    Resign,
    /// Rewrite a file derived from others (a rendered file, a public key).
    Render,
    /// A leaf under a CA whose key the tool does not hold: write its key (if missing) and a CSR.
    Csr,
    /// Under a CA whose key is here but whose certificate is still to come from an external CA:
    /// nothing is written; it is signed here once that certificate is in place.
    Wait,
    /// A CA whose certificate exists but whose key does not: used as it is (external CA mode).
    External,
    /// Only file permissions are wrong; they are fixed.
    FixMode,
    /// A plaintext key is encrypted in place (`[encryption]` was added), key kept.
    Encrypt,
    /// An encrypted key gets the declared recipients, key kept.
    Reencrypt,
    /// An encrypted key is decrypted in place (`[encryption]` was removed), key kept.
    Decrypt,
    /// Nothing changes.
    Keep,
    /// Something the tool must not fix by itself (a damaged CA key): the run stops.
    Blocked,
}

impl Action {
    /// The word the plan shows.
    pub fn label(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Rekey => "re-key",
            Action::Resign => "re-sign",
            Action::Render => "re-render",
            Action::Csr => "csr",
            Action::Wait => "wait",
            Action::External => "external",
            Action::FixMode => "fix-mode",
            Action::Encrypt => "encrypt",
            Action::Reencrypt => "re-encrypt",
            Action::Decrypt => "decrypt",
            Action::Keep => "keep",
            Action::Blocked => "blocked",
        }
    }

    /// Whether a new certificate is signed here.
    pub fn signs(self) -> bool {
        matches!(self, Action::Create | Action::Rekey | Action::Resign)
    }

    /// Whether the step writes anything.
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Action::Keep | Action::External | Action::Wait | Action::Blocked
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A file whose permissions are looser than they should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeFix {
    pub path: String,
    pub found: u32,
    pub want: u32,
}

/// What to do with one item, and why.
#[derive(Clone)]
pub struct Step {
    pub item: ItemId,
    pub action: Action,
    pub reasons: Vec<Reason>,
    /// Why the run stops here, for an `Action::Blocked` step.
    pub blocker: Option<Blocker>,
    /// Files whose mode is wrong.
    pub fix_modes: Vec<ModeFix>,
    pub(crate) fate: Fate,
    /// For renders: the text as it would be rendered now, when it can be known before apply.
    pub preview: Option<String>,
    /// For renders: the text as a diff shows it, rendered whatever changes: every key and
    /// certificate as a label, and only the values apply decides as `(known after apply)`.
    pub shown: Option<String>,
    /// How the item's key file is rewritten, key kept, to match `[encryption]`.
    pub reseal: Option<seal::Reseal>,
    /// For a `csr` step: the CSR on disk already asks for what pki.toml declares, over the key
    /// that stays, so nothing is written and the step only waits for the external CA.
    pub csr_in_place: bool,
}

impl Step {
    fn new(item: ItemId, action: Action, reasons: Vec<Reason>, fate: Fate) -> Step {
        Step {
            item,
            action,
            reasons,
            blocker: None,
            fix_modes: Vec::new(),
            fate,
            preview: None,
            shown: None,
            csr_in_place: false,
            reseal: None,
        }
    }

    fn blocked(item: ItemId, blocker: Blocker) -> Step {
        Step {
            blocker: Some(blocker),
            ..Step::new(item, Action::Blocked, vec![], Fate::Blocked)
        }
    }

    /// `keep`, or `fix-mode` when only permissions are wrong.
    fn keep(item: ItemId, fixes: Vec<ModeFix>) -> Step {
        let action = if fixes.is_empty() {
            Action::Keep
        } else {
            Action::FixMode
        };
        let reasons = fixes
            .iter()
            .map(|m| Reason::ModeLoose {
                path: m.path.clone(),
                found: m.found,
                want: m.want,
            })
            .collect();
        Step {
            fix_modes: fixes,
            ..Step::new(item, action, reasons, Fate::Kept)
        }
    }

    /// Whether a new private key is written for the item (a new certificate's, or a CSR's).
    pub fn new_key(&self) -> bool {
        self.fate.new_key()
    }

    /// Whether the step writes anything: its action does, unless it is a CSR already in place.
    pub fn writes(&self) -> bool {
        self.action.writes() && !self.csr_in_place
    }
}

impl fmt::Debug for Step {
    /// The preview is a rendered file, which may hold a private key: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("item", &self.item)
            .field("action", &self.action)
            .field("reasons", &self.reasons)
            .field("blocker", &self.blocker)
            .field("fix_modes", &self.fix_modes)
            .field("fate", &self.fate)
            .field("csr_in_place", &self.csr_in_place)
            .field("reseal", &self.reseal)
            .field(
                "shown",
                &self.shown.as_ref().map(|_| "[rendered text elided]"),
            )
            .field(
                "preview",
                &self.preview.as_ref().map(|_| "[rendered text elided]"),
            )
            .finish()
    }
}

/// The whole decision: one step per item in dependency order, and what else the run found.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub orphans: Vec<String>,
    /// What the user must know about an orphan beyond `--prune` (a certificate still valid), by
    /// its path.
    pub orphan_notes: BTreeMap<String, Reason>,
    /// Each CSR an external CA must sign, with the commands that sign it and what waits on it.
    pub waiting: Vec<Waiting>,
    /// CSRs whose certificates are in place or are made here now: removed by any writing run
    /// (like temporary files, they are the tool's own leftovers and change nothing the plan
    /// decides, so they alone do not make `--check` fail).
    pub answered_csrs: Vec<(String, Reason)>,
    /// Undeclared files that are private keys of certificates or key pairs still declared
    /// (a `key =` path was changed): reported, never pruned.
    pub kept_keys: Vec<String>,
    /// Undeclared private keys of a CA or a key pair: `--prune` stops rather than delete them
    /// (`Plan::prune_problems`); without it they are reported with the orphans.
    pub protected_keys: Vec<ProtectedKey>,
    /// Undeclared entries whose name is not UTF-8, escaped: reported, never read or pruned (a
    /// lossy name would be another file's).
    pub unnamed: Vec<String>,
    /// Problems that stop the run; nothing is written while there are any.
    pub problems: Vec<Problem>,
    pub inventory_stale: bool,
    /// Every item's certificate and key as they are in the output folder now: apply and the
    /// reports start from these.
    pub current: Vec<Material>,
}

impl Plan {
    /// What stops a `--prune` run besides `problems`: deleting a CA's or a key pair's private key
    /// is a decision a person makes (`rm`), never a side effect of tidying up. `out` is the
    /// output folder as the user names it.
    pub fn prune_problems(&self, out: &str) -> Vec<Problem> {
        self.protected_keys
            .iter()
            .map(|key| Problem {
                items: vec![],
                blocker: Blocker::PruneProtectedKey {
                    key: key.clone(),
                    out: out.to_string(),
                },
            })
            .collect()
    }

    /// Whether carrying out the plan changes nothing in the output folder. Orphans are deleted
    /// only with `--prune`: without it they are reported, left alone, and change nothing.
    pub fn changes_nothing(&self, prune: bool) -> bool {
        self.problems.is_empty()
            && !self.inventory_stale
            && (!prune || self.orphans.is_empty())
            && self.steps.iter().all(|s| !s.writes())
    }
}

/// What the user asked of this plan beyond pki.toml (the command line's part of it).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Item names (or base names of per-node items) to give new keys.
    pub rekey: BTreeSet<String>,
    /// Certificates (names, base names, or `all`) to re-sign now with the keys they have.
    pub renew: BTreeSet<String>,
    /// The output folder as the user names it (`out`, or what `--out` says), for the commands
    /// a problem tells the user to run.
    pub out: String,
    /// Whether the report shows diffs (`--diff`): only then is each rendered file that changes
    /// rendered a second time, with labels, for its diff (`Step::shown`).
    pub diffs: bool,
}

/// Plans every item of `spec` against `disk`, at `now`.
pub fn plan(
    spec: &Spec,
    sources: &Sources,
    disk: &Disk,
    now: OffsetDateTime,
    opts: &Request,
) -> Plan {
    let mut problems = rekey_problems(spec, &opts.rekey);
    problems.extend(renew_problems(spec, &opts.renew));
    let current = current_materials(spec, disk);
    let claimed = claimed_paths(spec);
    let undeclared = moved::Undeclared::new(disk, &claimed);
    let signatures = signatures::Signatures::new(spec, disk);
    let mut known: Vec<Known<'_>> = Vec::with_capacity(spec.items.len());
    let mut steps = Vec::with_capacity(spec.items.len());
    let mut id = 0;
    while id < spec.items.len() {
        let item = &spec.items[id];
        let rekey = opts.rekey.contains(&item.name) || opts.rekey.contains(&item.base);
        let (step, k) = match &item.kind {
            ItemKind::Cert(c) => {
                let cx = cert::Inputs {
                    spec,
                    out: &opts.out,
                    disk,
                    now,
                    known: &known,
                    undeclared: &undeclared,
                    signatures: &signatures,
                };
                cert::plan(&cx, id, c, rekey, renewed(item, c, &opts.renew))
            }
            ItemKind::KeyPair(kp) => keypair::plan(id, &item.name, kp, disk, &undeclared, rekey),
            ItemKind::Render(_) => {
                let cx = renders::Inputs {
                    spec,
                    sources,
                    disk,
                    current: &current,
                    known: &known,
                    diffs: opts.diffs,
                };
                let end = renders::batch_end(spec, id);
                let batch = renders::plan_batch(&cx, id..end);
                for (i, (step, k, found)) in (id..end).zip(batch) {
                    problems.extend(found);
                    let step = seal::amend(spec, disk, i, step);
                    record(spec, &mut problems, &mut steps, step);
                    known.push(k);
                }
                id = end;
                continue;
            }
        };
        let step = seal::amend(spec, disk, id, step);
        record(spec, &mut problems, &mut steps, step);
        known.push(k);
        id += 1;
    }
    problems.extend(folder_problems(disk, &claimed));
    let undeclared = undeclared_files(spec, disk, &claimed, &current);
    let orphan_notes = orphan_notes(spec, disk, &undeclared.orphans, &steps, &current, now);
    let waiting = waits::waiting(spec, &steps, &opts.out);
    let answered_csrs = waits::answered(spec, disk, &steps);
    let inventory_stale =
        steps.iter().any(|s| s.writes()) || inventory_differs(spec, disk, &current);
    Plan {
        steps,
        orphans: undeclared.orphans,
        orphan_notes,
        waiting,
        answered_csrs,
        kept_keys: undeclared.kept,
        protected_keys: undeclared.protected,
        unnamed: disk.unnamed.clone(),
        problems: why::group(problems),
        inventory_stale,
        current,
    }
}

/// Appends a planned step, and the problem it is when it is blocked.
fn record(spec: &Spec, problems: &mut Vec<Problem>, steps: &mut Vec<Step>, step: Step) {
    if let Some(b) = &step.blocker {
        problems.push(Problem {
            items: vec![spec.items[step.item].name.clone()],
            blocker: b.clone(),
        });
    }
    steps.push(step);
}

/// `--rekey` names that match no item, or only rendered files (which have no key).
fn rekey_problems(spec: &Spec, rekey: &BTreeSet<String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for name in rekey {
        let named: Vec<&Item> = spec
            .items
            .iter()
            .filter(|i| &i.name == name || &i.base == name)
            .collect();
        let blocker = if named.is_empty() {
            let keyed = spec
                .items
                .iter()
                .filter(|i| !matches!(i.kind, ItemKind::Render(_)));
            let names: BTreeSet<&str> = keyed
                .flat_map(|i| [i.name.as_str(), i.base.as_str()])
                .collect();
            Blocker::RekeyUnknown {
                name: name.clone(),
                nearest: crate::diag::nearest(name, names.iter().copied()).map(String::from),
            }
        } else if named.iter().all(|i| matches!(i.kind, ItemKind::Render(_))) {
            Blocker::RekeyRender { name: name.clone() }
        } else {
            continue;
        };
        problems.push(Problem {
            items: vec![],
            blocker,
        });
    }
    problems
}

/// The word `--renew` takes for every certificate that is not a CA.
pub const RENEW_ALL: &str = "all";

/// Whether `--renew` names the certificate `item`: by its name or its base name, or by `all`
/// when it is not a CA.
fn renewed(item: &Item, c: &CertSpec, renew: &BTreeSet<String>) -> bool {
    let named = renew.contains(&item.name) || renew.contains(&item.base);
    named || (renew.contains(RENEW_ALL) && renewed_by_all(c))
}

/// Whether `--renew all` takes the certificate: every one but the CAs, as `kubeadm certs renew
/// all` does. Re-signing a CA, even over the same key and subject, changes the certificate
/// every component trusts, so each must reload it; a routine renewal should not cause that. A
/// CA is renewed only when `--renew` names it.
fn renewed_by_all(c: &CertSpec) -> bool {
    c.ca.is_none()
}

/// `--renew` names that match no item, or only key pairs and rendered files (no certificate).
fn renew_problems(spec: &Spec, renew: &BTreeSet<String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for name in renew.iter().filter(|n| n.as_str() != RENEW_ALL) {
        let named: Vec<&Item> = spec
            .items
            .iter()
            .filter(|i| &i.name == name || &i.base == name)
            .collect();
        let blocker = if named.is_empty() {
            let certs = spec.items.iter().filter(|i| i.kind.as_cert().is_some());
            let names: BTreeSet<&str> = certs
                .flat_map(|i| [i.name.as_str(), i.base.as_str()])
                .chain([RENEW_ALL])
                .collect();
            Blocker::RenewUnknown {
                name: name.clone(),
                nearest: crate::diag::nearest(name, names.iter().copied()).map(String::from),
            }
        } else if named.iter().all(|i| i.kind.as_cert().is_none()) {
            Blocker::RenewNotCert { name: name.clone() }
        } else {
            continue;
        };
        problems.push(Problem {
            items: vec![],
            blocker,
        });
    }
    problems
}

/// Folders the run cannot write into: a linked folder (the write would land outside the output
/// folder) or a file where a folder must be (the write would fail halfway through the run).
fn folder_problems(disk: &Disk, claimed: &BTreeSet<String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let whole_run = |blocker| Problem {
        items: vec![],
        blocker,
    };
    for d in &disk.linked_dirs {
        let inside = format!("{d}/");
        if let Some(p) = claimed.iter().find(|p| p.starts_with(&inside)) {
            problems.push(whole_run(Blocker::LinkedFolder {
                dir: d.clone(),
                path: p.clone(),
            }));
        }
    }
    // Found here rather than halfway through apply, when the write would fail (or replace a FIFO
    // another program reads). The inventory is written by every changing run.
    let written = claimed.iter().map(String::as_str).chain([INVENTORY]);
    for p in written {
        if let Some(why) = disk.not_a_file(p) {
            let path = p.to_string();
            problems.push(whole_run(Blocker::NotAFile { path, why }));
        }
    }
    for p in claimed {
        let folders = p.match_indices('/').map(|(i, _)| &p[..i]);
        for ancestor in folders {
            if disk.get(ancestor).is_some() || disk.unread_at(ancestor).is_some() {
                problems.push(whole_run(Blocker::FileWhereFolder {
                    file: ancestor.to_string(),
                    path: p.clone(),
                }));
            }
        }
    }
    problems
}

/// Files in the output folder that no item declares, by what may become of them. A private key
/// that belongs to a certificate or public key still declared is kept even when its own path
/// changed (a renamed `key =`): it is the only copy of that key.
fn undeclared_files(
    spec: &Spec,
    disk: &Disk,
    claimed: &BTreeSet<String>,
    current: &[Material],
) -> UndeclaredFiles {
    let mut in_use: BTreeSet<&[u8]> = current
        .iter()
        .filter_map(|m| m.cert.as_ref().map(|c| c.spki.as_slice()))
        .collect();
    for item in &spec.items {
        if let ItemKind::KeyPair(kp) = &item.kind
            && let Some(spki) = disk.get(&kp.public_path).and_then(|f| f.as_public_key())
        {
            in_use.insert(spki);
        }
    }
    let mut undeclared = UndeclaredFiles::default();
    for (p, f) in disk.files() {
        if claimed.contains(p) || RESERVED.contains(&p) {
            continue;
        }
        match f.as_key() {
            // An encrypted file nothing declares could be any item's key: it is never an
            // orphan that `--prune` deletes.
            None if f.is_sealed() => undeclared.kept.push(p.to_string()),
            Some(k) if in_use.contains(k.spki.as_slice()) => undeclared.kept.push(p.to_string()),
            Some(k) => match key_owner(disk, &k.spki) {
                Some(owner) => undeclared.protected.push(ProtectedKey {
                    path: p.to_string(),
                    owner,
                }),
                None => undeclared.orphans.push(p.to_string()),
            },
            None => undeclared.orphans.push(p.to_string()),
        }
    }
    // Special files and files too large to be read are no item's either: orphans, by their name.
    let unread = disk.unread().map(|(p, _)| p);
    let unread = unread.filter(|p| !claimed.contains(*p) && !RESERVED.contains(p));
    undeclared.orphans.extend(unread.map(String::from));
    undeclared.orphans.sort();
    undeclared
}

/// The undeclared files of the output folder, by what may become of them.
#[derive(Default)]
struct UndeclaredFiles {
    /// Private keys of certificates or key pairs still declared: never pruned.
    kept: Vec<String>,
    /// Private keys of a CA or a key pair no item declares: `--prune` stops rather than delete.
    protected: Vec<ProtectedKey>,
    /// Everything else: `--prune` deletes it.
    orphans: Vec<String>,
}

/// Whose private key `spki` is, when losing it cannot be undone by a rerun: a CA certificate's
/// in the output folder (what it signed would have no issuer key), or a public key's (a
/// service-account key: every token it signed would stop working). A leaf's key, or a key of
/// nothing there, is only a file.
fn key_owner(disk: &Disk, spki: &[u8]) -> Option<KeyOwner> {
    use rayon::prelude::*;
    // Every file is read as a certificate and a public key: in parallel (the first match in path
    // order still wins), since most of these readings are first made here (`disk` decodes in
    // advance only what pki.toml declares).
    let files: Vec<(&str, &crate::disk::DiskFile)> = disk.files().collect();
    files.par_iter().find_map_first(|&(p, f)| {
        if f.as_cert().is_some_and(|c| c.is_ca && c.spki == spki) {
            Some(KeyOwner::Ca {
                cert: p.to_string(),
            })
        } else if f.as_public_key() == Some(spki) {
            Some(KeyOwner::KeyPair {
                public: p.to_string(),
            })
        } else {
            None
        }
    })
}

/// Orphan certificates that are still valid at `now`, with the declared CA that signed them: a
/// removed node's credentials keep working until they expire, whatever happens to the files, so
/// the report says so and what to do.
fn orphan_notes(
    spec: &Spec,
    disk: &Disk,
    orphans: &[String],
    steps: &[Step],
    current: &[Material],
    now: OffsetDateTime,
) -> BTreeMap<String, Reason> {
    // A moved certificate is named by its blocker, to be moved back: it is no removed credential.
    let moved: BTreeSet<&str> = steps
        .iter()
        .filter_map(|s| match &s.blocker {
            Some(Blocker::Moved { cert_at, .. }) => cert_at.as_deref(),
            _ => None,
        })
        .collect();
    let cas: Vec<(&str, &[u8])> = spec
        .items
        .iter()
        .zip(current)
        .filter(|(item, _)| item.kind.as_cert().is_some_and(|c| c.ca.is_some()))
        .filter_map(|(item, m)| Some((item.name.as_str(), m.cert.as_ref()?.spki.as_slice())))
        .collect();
    let mut notes = BTreeMap::new();
    for path in orphans.iter().filter(|o| !moved.contains(o.as_str())) {
        let Some(cf) = disk.get(path).and_then(|f| f.as_cert()) else {
            continue;
        };
        if now >= cf.not_after {
            continue;
        }
        let signer = cas
            .iter()
            .find(|(_, spki)| crate::x509::verifies_under(&cf.der, spki))
            .map(|(name, _)| name.to_string());
        let until = cf.not_after;
        notes.insert(path.clone(), Reason::OrphanStillValid { until, signer });
    }
    notes
}

/// Whether the inventory on disk is not what this plan's state would write (checked when no
/// step writes; any write rewrites it).
fn inventory_differs(spec: &Spec, disk: &Disk, current: &[Material]) -> bool {
    let text = crate::inventory::inventory_of(spec, current);
    disk.obs(crate::layout::INVENTORY)
        .map(|f| f.bytes.as_slice())
        != Some(text.as_bytes())
}

/// Every path an item owns (a leaf also owns the CSR it may write).
pub fn claimed_paths(spec: &Spec) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for item in &spec.items {
        match &item.kind {
            ItemKind::Cert(c) => {
                set.insert(c.cert_path.clone());
                set.insert(c.key_path.clone());
                set.insert(csr_path(&c.cert_path));
            }
            ItemKind::KeyPair(k) => {
                set.insert(k.private_path.clone());
                set.insert(k.public_path.clone());
            }
            ItemKind::Render(r) => {
                set.insert(r.path.clone());
            }
        }
    }
    set
}

/// Materials for every item as they are on disk now, made in parallel (each certificate PEM-encoded
/// again, and its facts copied).
pub fn current_materials(spec: &Spec, disk: &Disk) -> Vec<Material> {
    use rayon::prelude::*;
    spec.items
        .par_iter()
        .map(|item| {
            let mut m = Material::default();
            match &item.kind {
                ItemKind::Cert(c) => {
                    if let Some(cf) = disk.get(&c.cert_path).and_then(|f| f.as_cert()) {
                        m.cert_pem = Some(crate::x509::pem_encode("CERTIFICATE", &cf.der));
                        m.cert = Some(cf.clone());
                    }
                    if let Some(k) = disk.get(&c.key_path).and_then(|f| f.as_key()) {
                        m.key_pem = k.pem.clone();
                        m.key_spki = Some(k.spki.clone());
                    }
                }
                ItemKind::KeyPair(kp) => {
                    if let Some(k) = disk.get(&kp.private_path).and_then(|f| f.as_key()) {
                        m.key_pem = k.pem.clone();
                        m.public_pem = Some(crate::x509::public_key_pem(&k.spki));
                        m.key_spki = Some(k.spki.clone());
                    }
                }
                ItemKind::Render(_) => {}
            }
            m
        })
        .collect()
}

/// Files of `wanted` (path, mode) whose permissions are looser than wanted. A stricter mode (a
/// 0400 key) is the owner's choice and stays.
fn mode_fixes(disk: &Disk, wanted: &[(&str, u32)]) -> Vec<ModeFix> {
    wanted
        .iter()
        .filter_map(|&(path, want)| {
            let f = disk.obs(path)?;
            (!f.symlink && f.mode & !want != 0).then(|| ModeFix {
                path: path.to_string(),
                found: f.mode,
                want,
            })
        })
        .collect()
}
