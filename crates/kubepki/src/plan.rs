//! Stage 3, PLAN (pure): compares what pki.toml asks for with what is on disk, field by field, and
//! decides per item what to do and why. No filesystem, no clock (`now` is a parameter), no RNG.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::layout::{CERT_MODE, KEY_MODE, RESERVED, csr_path, render_mode};
use crate::render::{self, Material};
use crate::scan::{Observed, Sources};
use crate::spec::*;
use crate::x509::{self, CertFacts, KeyFacts};

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
    /// A CA whose certificate exists but whose key does not: used as it is (external CA mode).
    External,
    /// Only file permissions are wrong; they are fixed.
    FixMode,
    Keep,
    /// Something the tool must not fix by itself (a damaged CA key): the run stops.
    Blocked,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Rekey => "re-key",
            Action::Resign => "re-sign",
            Action::Render => "re-render",
            Action::Csr => "csr",
            Action::External => "external",
            Action::FixMode => "fix-mode",
            Action::Keep => "keep",
            Action::Blocked => "blocked",
        }
    }

    /// Whether a new private key is generated.
    pub fn new_key(self) -> bool {
        matches!(self, Action::Create | Action::Rekey)
    }

    /// Whether the step writes anything.
    pub fn writes(self) -> bool {
        !matches!(self, Action::Keep | Action::External | Action::Blocked)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[derive(Clone)]
pub struct Step {
    pub item: ItemId,
    pub action: Action,
    pub reasons: Vec<String>,
    /// Files whose mode is wrong: (path, found, wanted).
    pub fix_modes: Vec<(String, u32, u32)>,
    /// For a new CSR under an external CA: write a new key too.
    pub csr_new_key: bool,
    /// For renders: the text as it would be rendered now, when it can be known before apply.
    pub preview: Option<String>,
}

impl fmt::Debug for Step {
    /// The preview is a rendered file, which may hold a private key: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("item", &self.item)
            .field("action", &self.action)
            .field("reasons", &self.reasons)
            .field("fix_modes", &self.fix_modes)
            .field("csr_new_key", &self.csr_new_key)
            .field(
                "preview",
                &self.preview.as_ref().map(|_| "[rendered text elided]"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub orphans: Vec<String>,
    /// Undeclared files that are private keys of certificates or key pairs still declared
    /// (a `key =` path was changed): reported, never pruned.
    pub kept_keys: Vec<String>,
    /// Problems that stop the run; nothing is written while there are any.
    pub problems: Vec<String>,
    pub inventory_stale: bool,
    /// Every item's certificate and key as the plan read them from the output folder: apply and
    /// the reports start from these rather than read and parse the folder again.
    pub disk: Vec<Material>,
}

impl Plan {
    /// Whether carrying out the plan changes nothing in the output folder. Orphans are deleted
    /// only with `--prune`: without it they are reported, left alone, and change nothing.
    pub fn changes_nothing(&self, prune: bool) -> bool {
        self.problems.is_empty()
            && !self.inventory_stale
            && (!prune || self.orphans.is_empty())
            && self.steps.iter().all(|s| !s.action.writes())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Item names (or base names of per-node items) to give new keys.
    pub rekey: BTreeSet<String>,
}

/// What the planner knows about an item after deciding it, for the items that depend on it.
#[derive(Default)]
struct Known {
    /// The key changes in this run.
    new_key: bool,
    /// The certificate (or file) is rewritten in this run.
    rewritten: bool,
    cert: Option<CertFacts>,
    key_spki: Option<Vec<u8>>,
    external: bool,
    /// The run stops on it: what depends on it is not judged again.
    blocked: bool,
    /// A new key and a CSR are written for it: its certificate on disk (if any) no longer matches
    /// its key until an external CA signs.
    pending_csr: bool,
    /// The CA above this item (its issuer or further up) that gets a new key in this run, when
    /// this item is re-signed because of it: everything below is then re-signed too.
    new_key_above: Option<String>,
}

pub fn plan(
    spec: &Spec,
    sources: &Sources,
    observed: &Observed,
    now: OffsetDateTime,
    opts: &Options,
) -> Plan {
    let mut out = Plan::default();
    let mut known: Vec<Known> = Vec::with_capacity(spec.items.len());
    for name in &opts.rekey {
        let named: Vec<&Item> = spec
            .items
            .iter()
            .filter(|i| &i.name == name || &i.base == name)
            .collect();
        if named.is_empty() {
            let keyed = spec
                .items
                .iter()
                .filter(|i| !matches!(i.kind, ItemKind::Render(_)));
            let names: BTreeSet<&str> = keyed
                .flat_map(|i| [i.name.as_str(), i.base.as_str()])
                .collect();
            let hint = crate::diag::nearest(name, names.iter().copied())
                .map_or(String::new(), |n| format!(" (did you mean `{n}`?)"));
            out.problems.push(format!(
                "--rekey names `{name}`, which is not in pki.toml{hint}"
            ));
        } else if named.iter().all(|i| matches!(i.kind, ItemKind::Render(_))) {
            out.problems.push(format!(
                "--rekey names `{name}`, a rendered file: it has no key of its own"
            ));
        }
    }
    let disk = disk_materials(spec, observed);
    let claimed = claimed_paths(spec);
    for (id, item) in spec.items.iter().enumerate() {
        let rekey = opts.rekey.contains(&item.name) || opts.rekey.contains(&item.base);
        let (step, k) = match &item.kind {
            ItemKind::Cert(c) => {
                let cx = CertInputs {
                    spec,
                    observed,
                    now,
                    known: &known,
                    claimed: &claimed,
                };
                plan_cert(&cx, id, c, rekey)
            }
            ItemKind::KeyPair(kp) => plan_keypair(id, &item.name, kp, (observed, &claimed), rekey),
            ItemKind::Render(r) => {
                let cx = RenderInputs {
                    spec,
                    sources,
                    observed,
                    disk: &disk,
                    known: &known,
                };
                plan_render(&cx, id, r, &mut out.problems)
            }
        };
        let mut k = k;
        k.blocked = step.action == Action::Blocked;
        if step.action == Action::Blocked {
            out.problems
                .push(format!("{}: {}", item.name, step.reasons.join("; ")));
        }
        out.steps.push(step);
        known.push(k);
    }
    // A write through a linked folder would land outside the output folder: refuse up front.
    for d in &observed.linked_dirs {
        let inside = format!("{d}/");
        if let Some(p) = claimed.iter().find(|p| p.starts_with(&inside)) {
            out.problems.push(format!(
                "{d} is a symlink to a folder, and {p} would be written through it; the tool never writes through links: replace {d} with a real folder, then rerun"
            ));
        }
    }
    // A file where a folder must be: the write would fail halfway through the run.
    for p in &claimed {
        let mut ancestor = String::new();
        for part in p
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, dirs)| dirs)
        {
            if !ancestor.is_empty() {
                ancestor.push('/');
            }
            ancestor.push_str(part);
            if observed.get(&ancestor).is_some() {
                out.problems.push(format!(
                    "{ancestor} is a file, but {p} must be written inside a folder of that name: move the file away, then rerun"
                ));
            }
        }
    }
    // A private key that belongs to a certificate or public key still declared is never pruned,
    // even when its own path changed (a renamed `key =`): it is the only copy of that key.
    let in_use: BTreeSet<&[u8]> = disk
        .iter()
        .filter_map(|m| m.cert.as_ref().map(|c| c.spki.as_slice()))
        .collect();
    for (p, f) in &observed.files {
        if claimed.contains(p.as_str()) || RESERVED.contains(&p.as_str()) {
            continue;
        }
        let belongs = !f.symlink
            && x509::parse_key(&f.bytes).is_ok_and(|k| {
                in_use.contains(k.spki.as_slice()) || public_in_use(spec, observed, &k.spki)
            });
        if belongs {
            out.kept_keys.push(p.clone())
        } else {
            out.orphans.push(p.clone())
        }
    }
    out.problems = group_by_cause(std::mem::take(&mut out.problems));
    if out.steps.iter().all(|s| !s.action.writes()) {
        let text = crate::inventory::inventory(spec, &|id| disk[id].clone());
        let current = observed
            .get(crate::layout::INVENTORY)
            .map(|f| f.bytes.as_slice());
        out.inventory_stale = current != Some(text.as_bytes());
    } else {
        out.inventory_stale = true;
    }
    out.disk = disk;
    out
}

/// An undeclared private key and an undeclared public key file of the same key: the files of a
/// key pair that pki.toml no longer names where they are.
fn undeclared_key_pair(
    observed: &Observed,
    claimed: &BTreeSet<String>,
) -> Option<(String, String)> {
    let undeclared = || {
        observed
            .files
            .iter()
            .filter(|(p, f)| !f.symlink && !claimed.contains(p.as_str()))
    };
    let publics: Vec<(&String, Vec<u8>)> = undeclared()
        .filter_map(|(p, f)| x509::parse_public_key(&f.bytes).ok().map(|spki| (p, spki)))
        .collect();
    if publics.is_empty() {
        return None;
    }
    undeclared().find_map(|(p, f)| {
        let key = x509::parse_key(&f.bytes).ok()?;
        let (public, _) = publics.iter().find(|(_, spki)| *spki == key.spki)?;
        Some((p.clone(), (*public).clone()))
    })
}

/// Whether `spki` is the public key of a declared key pair, as it is on disk.
fn public_in_use(spec: &Spec, observed: &Observed, spki: &[u8]) -> bool {
    spec.items.iter().any(|i| match &i.kind {
        ItemKind::KeyPair(kp) => observed
            .get(&kp.public_path)
            .is_some_and(|f| x509::parse_public_key(&f.bytes).is_ok_and(|der| der == spki)),
        _ => false,
    })
}

/// Problems are `item: cause`; one cause shared by several items (a template error in a per-node
/// render) is told once, naming them all.
fn group_by_cause(problems: Vec<String>) -> Vec<String> {
    let mut grouped: Vec<(Vec<String>, String)> = Vec::new();
    for p in problems {
        let (item, cause) = match p.split_once(": ") {
            Some((i, c)) if !i.contains(' ') => (i.to_string(), c.to_string()),
            _ => (String::new(), p.clone()),
        };
        match grouped.iter_mut().find(|(_, c)| *c == cause) {
            Some((items, _)) if !item.is_empty() => items.push(item),
            Some(_) => {}
            None => grouped.push((if item.is_empty() { vec![] } else { vec![item] }, cause)),
        }
    }
    grouped
        .into_iter()
        .map(|(items, cause)| {
            if items.is_empty() {
                cause
            } else {
                format!("{}: {cause}", items.join(", "))
            }
        })
        .collect()
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

enum Read<T> {
    Missing,
    Bad(String),
    Ok(T),
}

fn read_key(observed: &Observed, path: &str) -> Read<KeyFacts> {
    match observed.get(path) {
        None => Read::Missing,
        Some(f) if f.symlink => Read::Bad(format!(
            "{path} is a symlink (the tool never follows links in the output folder)"
        )),
        Some(f) => match x509::parse_key(&f.bytes) {
            Ok(k) => Read::Ok(k),
            Err(e) => Read::Bad(format!("{path}: {e}")),
        },
    }
}

fn read_cert(observed: &Observed, path: &str) -> Read<CertFacts> {
    match observed.get(path) {
        None => Read::Missing,
        Some(f) if f.symlink => Read::Bad(format!(
            "{path} is a symlink (the tool never follows links in the output folder)"
        )),
        Some(f) => match x509::parse_cert(&f.bytes) {
            Ok(c) => Read::Ok(c),
            Err(e) => Read::Bad(format!("{path}: {e}")),
        },
    }
}

fn step(item: ItemId, action: Action, reasons: Vec<String>) -> Step {
    Step {
        item,
        action,
        reasons,
        fix_modes: Vec::new(),
        csr_new_key: false,
        preview: None,
    }
}

/// `keep`, or `fix-mode` when only permissions are wrong.
fn keep_or_fix_modes(id: ItemId, fixes: Vec<(String, u32, u32)>) -> Step {
    if fixes.is_empty() {
        return step(id, Action::Keep, vec![]);
    }
    let mut s = step(id, Action::FixMode, mode_reasons(&fixes));
    s.fix_modes = fixes;
    s
}

fn mode_reasons(fixes: &[(String, u32, u32)]) -> Vec<String> {
    fixes
        .iter()
        .map(|(p, found, want)| format!("{p} mode {found:04o}, should be {want:04o}"))
        .collect()
}

fn mode_fixes(observed: &Observed, files: &[(&str, u32)]) -> Vec<(String, u32, u32)> {
    files
        .iter()
        .filter_map(|(p, want)| {
            let f = observed.get(p)?;
            // Only permissions looser than wanted are fixed; a stricter mode (a 0400 key) is the
            // owner's choice.
            (!f.symlink && f.mode & !*want != 0).then(|| (p.to_string(), f.mode, *want))
        })
        .collect()
}

fn plan_cert(cx: &CertInputs<'_>, id: ItemId, c: &CertSpec, rekey: bool) -> (Step, Known) {
    let CertInputs {
        spec,
        observed,
        now,
        known,
        claimed,
    } = *cx;
    let key = read_key(observed, &c.key_path);
    let cert = read_cert(observed, &c.cert_path);
    let is_ca = c.ca.is_some();
    let name = &spec.items[id].base;
    let issuer = c.issuer.map(|i| (&known[i], &spec.items[i]));
    // Under a CA that cannot sign here (its key is elsewhere, or it waits for its own CSR),
    // anything that needs signing gets a CSR instead.
    let under_external = issuer.is_some_and(|(ik, _)| ik.external);
    let disk_cert = match &cert {
        Read::Ok(cf) => Some(cf.clone()),
        _ => None,
    };
    let mut k = Known {
        key_spki: disk_cert.as_ref().map(|c| c.spki.clone()),
        cert: disk_cert.clone(),
        ..Known::default()
    };
    let blocked = |mut reasons: Vec<String>, help: String, k: Known| {
        reasons.push(help);
        (step(id, Action::Blocked, reasons), k)
    };

    // 0. Files that moved. A certificate (or its key) missing where pki.toml now says, while an
    // undeclared file in the output folder holds it (a changed `cert =`/`key =` path, or a moved
    // file): say where, instead of making a new key and leaving the old one an orphan.
    if !rekey
        && matches!(key, Read::Missing)
        && let Some((cert_at, key_at)) = moved_files(observed, claimed, c, disk_cert.as_ref())
    {
        let (what, moves) = match &cert_at {
            Some(cp) => (
                format!(
                    "{} and {} are missing, but its certificate and key are at {cp} and {key_at}",
                    c.cert_path, c.key_path
                ),
                format!(
                    "mv out/{cp} out/{} && mv out/{key_at} out/{}",
                    c.cert_path, c.key_path
                ),
            ),
            None => (
                format!(
                    "{} has no key {}, but its key is at {key_at}",
                    c.cert_path, c.key_path
                ),
                format!("mv out/{key_at} out/{}", c.key_path),
            ),
        };
        let help = format!(
            "if they moved, move them where pki.toml says (`{moves}`) or set the paths back, then rerun; to make {} anew, run with `--rekey {name}`",
            if cert_at.is_some() {
                "them"
            } else {
                "a new key"
            }
        );
        return blocked(vec![what], help, k);
    }

    // 1. Decide about the key.
    let mut key_reasons = Vec::new();
    let key_missing = matches!(key, Read::Missing);
    let key_facts = match key {
        Read::Ok(kf) => {
            if kf.alg != Some(c.alg) {
                key_reasons.push(format!(
                    "key algorithm changed: {} on disk, {} in pki.toml",
                    kf.alg.map_or("unknown", |a| a.name()),
                    c.alg
                ));
            }
            Some(kf)
        }
        Read::Missing => {
            key_reasons.push(format!("key {} missing", c.key_path));
            None
        }
        Read::Bad(e) => {
            key_reasons.push(format!("key unreadable: {e}"));
            None
        }
    };
    if rekey {
        key_reasons.insert(0, "--rekey".into());
    }
    let key_ok = key_facts.is_some() && key_reasons.is_empty();

    // A CA's identity (its key) never changes without --rekey: every decision that would give a
    // CA a new key, or a new certificate over a key that is not its own, is made here, once.
    if is_ca && !rekey {
        let pair = match (&key_facts, &disk_cert) {
            (Some(kf), Some(cf)) => kf.spki == cf.spki,
            _ => true,
        };
        if key_ok && !pair {
            let reasons = vec![format!(
                "{} and {} are not a pair: one of them was replaced",
                c.cert_path, c.key_path
            )];
            let help = format!(
                "restore the matching pair from a backup; to issue a new CA certificate over {} (every certificate below it is then re-signed), delete {} and rerun; or run with `--rekey {name}` for a new key (an interrupted `--rekey {name}` is finished by running it again)",
                c.key_path, c.cert_path
            );
            return blocked(reasons, help, k);
        }
        if !key_ok && !key_missing {
            let help = format!(
                "the tool never replaces a CA key by itself; restore {} from a backup, or run with `--rekey {name}` to make a new key (every certificate below it is then re-signed)",
                c.key_path
            );
            return blocked(key_reasons, help, k);
        }
        if key_missing && let Some(cf) = &disk_cert {
            return plan_external(cx, id, c, cf, k);
        }
        if key_missing {
            // No key, and no readable certificate: a new CA, unless certificates below it are
            // here (its files moved, were lost or damaged): then a new CA needs a decision.
            let below = signed_below(spec, observed, id);
            if !below.is_empty() {
                let n = below.len();
                let what = if matches!(cert, Read::Missing) {
                    format!("{} and {} are missing", c.cert_path, c.key_path)
                } else {
                    format!("{} is missing and {} unreadable", c.key_path, c.cert_path)
                };
                let reasons = vec![format!(
                    "{what}, but {n} certificate{} below {name} {} in the output folder ({})",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "is" } else { "are" },
                    below.join(", ")
                )];
                let help = format!(
                    "if its files moved, put them back or fix `cert`/`key` in pki.toml; to make a new CA on purpose (everything below it is then re-signed), run with `--rekey {name}`"
                );
                return blocked(reasons, help, k);
            }
        }
    }
    if !key_ok && under_external && key_facts.is_some() {
        // The key in use would stop matching its certificate until the external CA signs again.
        let (_, iitem) = issuer.expect("under an issuer");
        let help = format!(
            "{name} is signed by {}, whose key is not here: a new key would not match {} until {} signs a new CSR. To rotate it, remove {} and {} and rerun{} (a new key and CSR are written), then install the signed certificate",
            iitem.name,
            c.cert_path,
            iitem.name,
            c.cert_path,
            c.key_path,
            if is_ca {
                format!(" with `--rekey {name}`")
            } else {
                String::new()
            }
        );
        return blocked(key_reasons, help, k);
    }
    if !key_ok {
        let action = if under_external {
            Action::Csr
        } else if matches!(cert, Read::Missing) && key_missing && !rekey {
            Action::Create
        } else {
            Action::Rekey
        };
        let reasons = if action == Action::Create {
            vec!["new".to_string()]
        } else {
            key_reasons
        };
        let mut s = step(id, action, reasons);
        s.csr_new_key = under_external;
        k.new_key = true;
        k.key_spki = None;
        // A CSR leaves the certificate as it is until the external CA signs it; a CA waiting for
        // its certificate cannot sign either, so what is below it waits too.
        k.rewritten = !under_external;
        k.pending_csr = under_external;
        k.external = under_external && is_ca;
        return (s, k);
    }
    let key_facts = key_facts.expect("checked above");
    k.key_spki = Some(key_facts.spki.clone());

    // 2. The key stays; decide about the certificate.
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    // A CA's new key re-signs everything below it, transitively (not only what it signs itself).
    let new_key_above = issuer.and_then(|(ik, iitem)| {
        if ik.new_key {
            Some(iitem.name.clone())
        } else {
            ik.new_key_above.clone()
        }
    });
    let cf = match cert {
        Read::Missing => {
            reasons.push(format!("certificate {} missing", c.cert_path));
            None
        }
        Read::Bad(e) => {
            reasons.push(format!("certificate unreadable: {e}"));
            None
        }
        Read::Ok(cf) => Some(cf),
    };
    if let Some(cf) = &cf {
        if cf.spki != key_facts.spki {
            reasons.push(format!(
                "certificate {} does not match its key {}",
                c.cert_path, c.key_path
            ));
        }
        compare_fields(c, cf, under_external, &mut reasons);
        let mut clamped_to = None;
        match issuer {
            None => {
                if cf.issuer_raw != cf.subject_raw
                    || !x509::verifies_under(&cf.der, &key_facts.spki)
                {
                    reasons.push("not self-signed by its key".into());
                }
                check_validity(c, cf, &mut reasons);
            }
            Some((ik, iitem)) => {
                let ic = iitem.kind.as_cert().expect("issuers are certificates");
                if ik.new_key {
                    reasons.push(format!("issuer {} gets a new key", iitem.name));
                } else if let Some(top) = &ik.new_key_above {
                    reasons.push(format!(
                        "issuer {} is re-signed under {top}'s new key",
                        iitem.name
                    ));
                } else if let Some(ispki) = &ik.key_spki {
                    if !x509::verifies_under(&cf.der, ispki) {
                        reasons.push(format!(
                            "{} is not signed by the key of issuer {}",
                            c.cert_path, iitem.name
                        ));
                    } else {
                        // What the issuer's certificate will say: as on disk, or as it is about to
                        // be re-signed (over the same key, keeping its name and key id if it can).
                        // (An issuer still waiting for its own certificate has no name to
                        // compare with yet.)
                        let (want_name, want_ski) = if !ik.rewritten && ik.cert.is_none() {
                            (cf.issuer_raw.clone(), None)
                        } else if ik.rewritten {
                            let (n, s) =
                                crate::issue::identity(&ic.subject, ispki, ik.cert.as_ref());
                            (n, Some(s))
                        } else {
                            let icf = ik.cert.as_ref();
                            (
                                icf.map(|x| x.subject_raw.clone()).unwrap_or_default(),
                                icf.and_then(|x| x.ski.clone()),
                            )
                        };
                        if cf.issuer_raw != want_name {
                            reasons
                                .push(format!("issuer name differs from {}'s subject", iitem.name));
                        } else if want_ski.is_some() && cf.aki != want_ski {
                            reasons.push(format!(
                                "authority key id differs from {}'s key id",
                                iitem.name
                            ));
                        }
                    }
                }
                // A leaf cut short to its issuer's notAfter (its full validity would have outlived
                // the issuer) keeps that shorter life while the issuer stays as it is.
                if !ik.rewritten
                    && let Some(icf) = ik.cert.as_ref()
                    && icf.not_after == cf.not_after
                    && cf.not_before + BACKDATE + c.validity >= icf.not_after
                {
                    clamped_to = Some((iitem.name.clone(), icf.not_after));
                }
                // An external CA decides the lifetime of what it signs (a CSR carries none).
                if clamped_to.is_none() && !ik.external {
                    check_validity(c, cf, &mut reasons);
                }
            }
        }
        match (expiry(c, cf, now), &clamped_to) {
            // Re-signing cannot take it past its issuer's notAfter: the issuer must be renewed.
            (Some(e), Some((issuer, at))) if now < cf.not_after => notes.push(format!(
                "{e}, cut to the notAfter of {issuer} ({}): renew {issuer} first",
                x509::fmt_time(*at)
            )),
            (Some(e), _) => reasons.push(e),
            (None, _) => {}
        }
        if now < cf.not_before {
            reasons.push(format!(
                "not valid before {}",
                x509::fmt_time(cf.not_before)
            ));
        }
    }
    let fixes = mode_fixes(
        observed,
        &[(&c.key_path, KEY_MODE), (&c.cert_path, CERT_MODE)],
    );
    // Waiting for an external CA with no certificate that matches the key (the run that made the
    // key and CSR, or any run after it until the CA signs): what reads or is signed by this item
    // waits too. A renewal CSR whose certificate still matches its key holds nothing up.
    let unpaired = cf.as_ref().is_none_or(|cf| cf.spki != key_facts.spki);
    // A CA certificate whose key usage (when it has one) leaves out keyCertSign cannot sign: an
    // external CA granted less than its CSR asked. What it would sign waits, like for a CSR.
    let cannot_sign = is_ca
        && cf
            .as_ref()
            .is_some_and(|cf| !cf.key_usage.is_empty() && !cf.key_usage.contains(&"keyCertSign"));
    k.cert = cf;
    if reasons.is_empty() {
        let mut s = keep_or_fix_modes(id, fixes);
        s.reasons.extend(notes);
        return (s, k);
    }
    k.pending_csr = under_external && (unpaired || cannot_sign);
    k.external = under_external && (unpaired || cannot_sign) && is_ca;
    // Under an external CA the pair on disk stays as it is until it signs.
    k.rewritten = !under_external;
    k.new_key_above = new_key_above;
    let action = if under_external {
        Action::Csr
    } else {
        Action::Resign
    };
    let mut s = step(id, action, reasons);
    s.fix_modes = fixes;
    (s, k)
}

/// Where the files of certificate `c` are, when they are not where pki.toml says but undeclared
/// in the output folder: (the certificate's path if it moved too, the key's path). The key is
/// recognised by its public key: the certificate's on disk, or else an undeclared certificate's
/// with the same subject and SANs.
fn moved_files(
    observed: &Observed,
    claimed: &BTreeSet<String>,
    c: &CertSpec,
    cert_here: Option<&CertFacts>,
) -> Option<(Option<String>, String)> {
    let undeclared = || {
        observed
            .files
            .iter()
            .filter(|(p, f)| !f.symlink && !claimed.contains(p.as_str()))
    };
    let key_of = |spki: &[u8]| {
        undeclared()
            .find(|(_, f)| x509::parse_key(&f.bytes).is_ok_and(|k| k.spki == spki))
            .map(|(p, _)| p.clone())
    };
    if let Some(cf) = cert_here {
        return key_of(&cf.spki).map(|k| (None, k));
    }
    if observed.get(&c.cert_path).is_some() {
        return None;
    }
    // Certificates alike in subject and SANs (etcd's server and peer) are told apart by their
    // usages and, last, by file name.
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let mut found: Vec<(String, String)> = undeclared()
        .filter_map(|(p, f)| {
            let cf = x509::parse_cert(&f.bytes).ok()?;
            let mut usages = cf.usages.clone();
            usages.sort();
            let same = cf.subject.same_as(&c.subject)
                && san_set(&cf.sans) == san_set(&c.sans)
                && cf.is_ca == c.ca.is_some()
                && (c.ca.is_some() || usages == c.usages);
            if !same {
                return None;
            }
            key_of(&cf.spki).map(|k| (p.clone(), k))
        })
        .collect();
    found.sort_by_key(|(p, _)| name(p) != name(&c.cert_path));
    found.into_iter().next().map(|(p, k)| (Some(p), k))
}

/// What every certificate decision reads.
struct CertInputs<'a> {
    spec: &'a Spec,
    observed: &'a Observed,
    now: OffsetDateTime,
    known: &'a [Known],
    claimed: &'a BTreeSet<String>,
}

/// Certificates below CA `id` (transitively) whose files are in the output folder.
fn signed_below<'s>(spec: &'s Spec, observed: &Observed, id: ItemId) -> Vec<&'s str> {
    let below = |mut i: ItemId| {
        while let Some(up) = spec.items[i].kind.as_cert().and_then(|c| c.issuer) {
            if up == id {
                return true;
            }
            i = up;
        }
        false
    };
    spec.items
        .iter()
        .enumerate()
        .filter(|(i, item)| {
            below(*i)
                && item
                    .kind
                    .as_cert()
                    .is_some_and(|c| observed.get(&c.cert_path).is_some())
        })
        .map(|(_, item)| item.name.as_str())
        .collect()
}

/// A CA whose certificate is here but whose key is not: used as it is (external-CA mode), unless
/// its own issuer changed under it, which only the holder of its key can follow.
fn plan_external(
    cx: &CertInputs<'_>,
    id: ItemId,
    c: &CertSpec,
    cf: &CertFacts,
    mut k: Known,
) -> (Step, Known) {
    let name = &cx.spec.items[id].base;
    if let Some(i) = c.issuer {
        let (ik, iname) = (&cx.known[i], &cx.spec.items[i].name);
        let stale = ik.new_key
            || ik.new_key_above.is_some()
            || ik
                .key_spki
                .as_ref()
                .is_some_and(|spki| !x509::verifies_under(&cf.der, spki));
        if stale && !ik.external {
            let reasons = vec![
                format!(
                    "{} no longer verifies under {iname}, and {name}'s key {} is not here to sign a CSR",
                    c.cert_path, c.key_path
                ),
                format!(
                    "bring {} back and rerun, or have {name} re-signed by {iname} where its key is kept",
                    c.key_path
                ),
            ];
            return (step(id, Action::Blocked, reasons), k);
        }
    }
    let mut reasons = vec![format!(
        "{} has no key {}: used as an external CA; what it must sign gets CSRs",
        c.cert_path, c.key_path
    )];
    reasons.extend(expiry(c, cf, cx.now).map(|e| format!("{e}: renew it where its key is kept")));
    k.external = true;
    (step(id, Action::External, reasons), k)
}

/// Why a certificate needs renewing at `now`, if it does.
fn expiry(c: &CertSpec, cf: &CertFacts, now: OffsetDateTime) -> Option<String> {
    if now >= cf.not_after {
        Some(format!("expired on {}", x509::fmt_time(cf.not_after)))
    } else if now >= cf.not_after - c.renew_before {
        Some(format!(
            "expires in {} (renew-before {})",
            fmt_left(cf.not_after - now),
            fmt_duration(c.renew_before)
        ))
    } else {
        None
    }
}

fn check_validity(c: &CertSpec, cf: &CertFacts, reasons: &mut Vec<String>) {
    let have = cf.not_after - cf.not_before;
    // Made here, a certificate lasts validity + BACKDATE; made elsewhere (openssl -days,
    // kubeadm before v1.31) it may not be backdated. Either matches the setting.
    let slack = Duration::seconds(1);
    if have < c.validity - slack || have > c.validity + BACKDATE + slack {
        reasons.push(format!(
            "validity changed: {} on disk, {} in pki.toml",
            fmt_span(have),
            fmt_duration(c.validity)
        ));
    }
}

/// A lifetime read from a certificate, to the hour (certificates made elsewhere are rarely whole
/// days).
fn fmt_span(d: Duration) -> String {
    let (days, hours) = (d.whole_days(), d.whole_hours() % 24);
    match (days, hours) {
        (0, _) => fmt_duration(d.max(Duration::seconds(1))),
        (_, 0) => format!("{days}d"),
        _ => format!("{days}d{hours}h"),
    }
}

fn fmt_left(d: Duration) -> String {
    if d.whole_days() >= 1 {
        format!("{}d", d.whole_days())
    } else if d.whole_hours() >= 1 {
        format!("{}h", d.whole_hours())
    } else {
        // Under an hour left: "0h" would read as already expired.
        format!("{}m", d.whole_minutes().max(0))
    }
}

/// Compares what pki.toml asks for with a certificate's fields. Under an external CA the
/// usages and key usages are the CA's choice (a CSR only requests them), so they are not compared
/// there.
fn compare_fields(c: &CertSpec, cf: &CertFacts, under_external: bool, reasons: &mut Vec<String>) {
    if !cf.subject.same_as(&c.subject) {
        reasons.push(format!("subject changed: {} -> {}", cf.subject, c.subject));
    }
    let have: BTreeSet<String> = san_set(&cf.sans);
    let want: BTreeSet<String> = san_set(&c.sans);
    if have != want || cf.other_sans > 0 {
        let mut d: Vec<String> = want.difference(&have).map(|s| format!("+{s}")).collect();
        d.extend(have.difference(&want).map(|s| format!("-{s}")));
        if cf.other_sans > 0 {
            d.push(format!("-{} other", cf.other_sans));
        }
        reasons.push(format!("SANs changed: {}", d.join(" ")));
    }
    match c.ca {
        Some(ca) => {
            if !cf.is_ca {
                reasons.push("not a CA certificate".into());
            } else if !cf.key_usage.contains(&"keyCertSign")
                && (!under_external || !cf.key_usage.is_empty())
            {
                // (An external CA may leave key usage out: then it restricts nothing.)
                reasons.push("key usage lacks keyCertSign".into());
            } else if cf.path_len != ca.path_len.map(u32::from) {
                reasons.push(format!(
                    "path length changed: {} -> {}",
                    cf.path_len.map_or("none".into(), |p| p.to_string()),
                    ca.path_len.map_or("none".into(), |p| p.to_string())
                ));
            }
        }
        None => {
            if cf.is_ca {
                reasons.push("is a CA certificate, should be a leaf".into());
            }
            // kubeadm's leaves (keyEncipherment on ECDSA keys too) pass; a leaf that cannot sign
            // a handshake, or that could sign certificates, does not. (Under an external CA the
            // key usage is that CA's choice, like the extended key usage.)
            if !under_external
                && (!cf.key_usage.contains(&"digitalSignature")
                    || cf.key_usage.contains(&"keyCertSign"))
            {
                reasons.push(format!("key usage changed: {}", cf.key_usage.join("+")));
            }
            let mut have = cf.usages.clone();
            have.sort();
            if have != c.usages && !under_external {
                let n = |v: &[Usage]| v.iter().map(|u| u.name()).collect::<Vec<_>>().join("+");
                reasons.push(format!(
                    "usages changed: {} -> {}",
                    if have.is_empty() {
                        "none".into()
                    } else {
                        n(&have)
                    },
                    n(&c.usages)
                ));
            }
        }
    }
}

fn san_set(s: &Sans) -> BTreeSet<String> {
    s.dns
        .iter()
        .map(|d| format!("DNS:{d}"))
        .chain(s.ips.iter().map(|i| format!("IP:{i}")))
        .collect()
}

fn plan_keypair(
    id: ItemId,
    name: &str,
    kp: &KeyPairSpec,
    (observed, claimed): (&Observed, &BTreeSet<String>),
    rekey: bool,
) -> (Step, Known) {
    let mut k = Known::default();
    let key = read_key(observed, &kp.private_path);
    let key = match key {
        // Its public half is still here: the key existed and was lost, not never made.
        Read::Missing if !rekey && observed.get(&kp.public_path).is_some() => {
            let reasons = vec![
                format!(
                    "key {} missing, but its public key {} is here",
                    kp.private_path, kp.public_path
                ),
                format!(
                    "a new `{name}` key would invalidate everything signed with the old one (service-account tokens); restore {} from a backup, or run with `--rekey {name}`",
                    kp.private_path
                ),
            ];
            return (step(id, Action::Blocked, reasons), k);
        }
        // Another key pair's files, declared by nothing, are in the output folder: this one may
        // have moved (`private =`/`public =` changed). A new key would replace it for good.
        Read::Missing
            if !rekey && let Some((private, public)) = undeclared_key_pair(observed, claimed) =>
        {
            let reasons = vec![
                format!(
                    "key {} missing, but an undeclared key pair is at {private} and {public}",
                    kp.private_path
                ),
                format!(
                    "if `{name}` moved, move them to {} and {} (or fix the paths in pki.toml); to make a new key pair on purpose, run with `--rekey {name}`",
                    kp.private_path, kp.public_path
                ),
            ];
            return (step(id, Action::Blocked, reasons), k);
        }
        Read::Missing => {
            k.new_key = true;
            k.rewritten = true;
            let (action, why) = if rekey {
                (Action::Rekey, "--rekey")
            } else {
                (Action::Create, "new")
            };
            return (step(id, action, vec![why.to_string()]), k);
        }
        _ if rekey => {
            k.new_key = true;
            k.rewritten = true;
            return (step(id, Action::Rekey, vec!["--rekey".into()]), k);
        }
        Read::Bad(e) => {
            let reasons = vec![
                format!("key unreadable: {e}"),
                format!(
                    "a new `{name}` key would invalidate everything signed with it (service-account tokens); restore {} from a backup, or run with `--rekey {name}`",
                    kp.private_path
                ),
            ];
            return (step(id, Action::Blocked, reasons), k);
        }
        Read::Ok(kf) => kf,
    };
    if key.alg != Some(kp.alg) {
        let reasons = vec![
            format!(
                "key algorithm changed: {} on disk, {} in pki.toml",
                key.alg.map_or("unknown", |a| a.name()),
                kp.alg
            ),
            format!(
                "run with `--rekey {name}` to replace the key (this invalidates everything signed with it)"
            ),
        ];
        return (step(id, Action::Blocked, reasons), k);
    }
    k.key_spki = Some(key.spki.clone());
    let public_ok = match observed.get(&kp.public_path) {
        Some(f) if !f.symlink => x509::parse_public_key(&f.bytes).is_ok_and(|der| der == key.spki),
        _ => false,
    };
    let fixes = mode_fixes(
        observed,
        &[(&kp.private_path, KEY_MODE), (&kp.public_path, CERT_MODE)],
    );
    if !public_ok {
        k.rewritten = true;
        let mut s = step(
            id,
            Action::Render,
            vec![format!(
                "public key {} missing or does not match",
                kp.public_path
            )],
        );
        s.fix_modes = fixes;
        return (s, k);
    }
    (keep_or_fix_modes(id, fixes), k)
}

/// Materials for every item as they are on disk now.
pub fn disk_materials(spec: &Spec, observed: &Observed) -> Vec<Material> {
    spec.items
        .iter()
        .map(|item| {
            let mut m = Material::default();
            match &item.kind {
                ItemKind::Cert(c) => {
                    if let Some(f) = observed.get(&c.cert_path)
                        && let Ok(cf) = x509::parse_cert(&f.bytes)
                    {
                        m.cert_pem = Some(crate::issue::pem_encode("CERTIFICATE", &cf.der));
                        m.cert = Some(cf);
                    }
                    if let Some(f) = observed.get(&c.key_path)
                        && let Ok(k) = x509::parse_key(&f.bytes)
                    {
                        m.key_pem = Some(crate::issue::key_pem(&k.key));
                        m.key_spki = Some(k.spki);
                    }
                }
                ItemKind::KeyPair(kp) => {
                    if let Some(f) = observed.get(&kp.private_path)
                        && let Ok(k) = x509::parse_key(&f.bytes)
                    {
                        m.key_pem = Some(crate::issue::key_pem(&k.key));
                        m.public_pem = Some(crate::issue::public_key_pem(&k.spki));
                        m.key_spki = Some(k.spki);
                    }
                }
                ItemKind::Render(_) => {}
            }
            m
        })
        .collect()
}

/// What every render decision reads.
struct RenderInputs<'a> {
    spec: &'a Spec,
    sources: &'a Sources,
    observed: &'a Observed,
    disk: &'a [Material],
    known: &'a [Known],
}

fn plan_render(
    cx: &RenderInputs<'_>,
    id: ItemId,
    r: &RenderSpec,
    problems: &mut Vec<String>,
) -> (Step, Known) {
    let RenderInputs {
        spec,
        sources,
        observed,
        disk,
        known,
    } = *cx;
    let mut k = Known::default();
    // A key granted to the template that is not here and will not be made (an external CA's):
    // the file could never be rendered, so say so now rather than fail in apply.
    for var in &r.secrets {
        let Some(&i) = r.bind.get(var) else { continue };
        let key_path = match &spec.items[i].kind {
            ItemKind::Cert(c) => &c.key_path,
            ItemKind::KeyPair(kp) => &kp.private_path,
            ItemKind::Render(_) => continue,
        };
        if disk[i].key_pem.is_none() && !known[i].new_key && !known[i].blocked {
            problems.push(format!(
                "{}: reads the private key of {} (`{var}` in `secrets`), which is not in the output folder ({key_path})",
                spec.items[id].name, spec.items[i].name
            ));
        }
    }
    let changed: Vec<&str> = r
        .bind
        .values()
        .filter(|&&i| known[i].rewritten)
        .map(|&i| spec.items[i].name.as_str())
        .collect();
    // Render now, from what is on disk, with placeholders for what apply will make: this catches
    // template errors before anything is written, and gives the new text when nothing it reads changes.
    let materials: BTreeMap<ItemId, Material> = r
        .bind
        .values()
        .map(|&i| {
            let m = if known[i].rewritten {
                Material::default()
            } else {
                disk[i].clone()
            };
            (i, m)
        })
        .collect();
    let ctx = render::context(spec, r, &|i| materials.get(&i).cloned().unwrap_or_default());
    let text = match render::render(&sources.templates, &r.template, &ctx) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(format!("{}: {e}", spec.items[id].name));
            None
        }
    };
    // Inputs that change need not show in the file (a template that names a certificate's path
    // but not its contents). When every changing input is complete on disk, and rendering with
    // its current contents gives the same text as with placeholders and as the file holds, the
    // file does not depend on it: nothing to re-render.
    let unaffected = !changed.is_empty()
        && r.bind.values().filter(|&&i| known[i].rewritten).all(|&i| {
            let m = &disk[i];
            match &spec.items[i].kind {
                ItemKind::Cert(_) => m.cert_pem.is_some() && m.key_pem.is_some(),
                ItemKind::KeyPair(_) => m.key_pem.is_some() && m.public_pem.is_some(),
                ItemKind::Render(_) => false,
            }
        })
        && text.as_deref().is_some_and(|t| {
            let ctx = render::context(spec, r, &|i| disk[i].clone());
            observed
                .get(&r.path)
                .is_some_and(|f| f.bytes == t.as_bytes())
                && render::render(&sources.templates, &r.template, &ctx).as_deref() == Ok(t)
        });
    let want_mode = render_mode(r);
    let fixes = mode_fixes(observed, &[(&r.path, want_mode)]);
    let current = observed.get(&r.path);
    let pending: Vec<&str> = r
        .bind
        .values()
        .filter(|&&i| known[i].pending_csr)
        .map(|&i| spec.items[i].name.as_str())
        .collect();
    let mut s = if !pending.is_empty() {
        // Rendering now would pair a new key with the old certificate (or a placeholder): the
        // file waits, as it is, until the external CA has signed.
        step(
            id,
            Action::Keep,
            vec![format!(
                "waits for the certificate of {} from its external CA",
                pending.join(", ")
            )],
        )
    } else if current.is_none() {
        step(id, Action::Create, vec!["new".into()])
    } else if current.is_some_and(|f| f.symlink) {
        step(
            id,
            Action::Render,
            vec![format!(
                "{} is a symlink; it is replaced by a regular file",
                r.path
            )],
        )
    } else if !changed.is_empty() && !unaffected {
        step(
            id,
            Action::Render,
            vec![format!("input changes: {}", changed.join(", "))],
        )
    } else if text
        .as_deref()
        .is_some_and(|t| current.is_some_and(|f| f.bytes != t.as_bytes()))
    {
        step(
            id,
            Action::Render,
            vec!["rendered text differs: its template, vars or inputs changed".into()],
        )
    } else {
        keep_or_fix_modes(id, fixes.clone())
    };
    s.fix_modes = fixes;
    if changed.is_empty() {
        s.preview = text;
    }
    k.rewritten = s.action.writes() && s.action != Action::FixMode;
    (s, k)
}
