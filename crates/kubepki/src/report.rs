//! Stage 5, REPORT (pure): the plan as one line per item with its reason, counts, and unified
//! diffs of non-secret text. Private keys never appear: rotated keys show as `key: rotated`, and
//! key material inside rendered files is replaced before any diff is made.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::disk::Disk;
use crate::error::Error;
use crate::plan::{Action, Plan};
use crate::render::{self, Material, b64, cert_label, key_label};
use crate::spec::{ItemId, ItemKind, RenderSpec, Spec};
use crate::x509;
use crate::{Clock, ClockSource, Skew};

/// The before and after text of one file, already free of key material.
#[derive(Debug, Clone)]
pub struct Diff {
    pub label: String,
    pub old: String,
    pub new: String,
    pub key_rotated: bool,
}

pub mod json;
pub mod markdown;
pub mod restarts;

/// How the plan is printed (`--format`): the text report, the versioned JSON document, or a
/// pull-request comment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// One line per change with its reasons, then counts (coloured on a terminal).
    #[default]
    Text,
    /// One JSON document, schema_version 1 (schemas/plan.v1.json).
    Json,
    /// A pull-request comment: summary, table of changes, folded diffs, a Mermaid issuer tree.
    Markdown,
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn sigil(a: Action) -> (&'static str, &'static str) {
    match a {
        Action::Create => ("+", "32"),
        Action::Rekey => ("!", "33;1"),
        Action::Resign => ("~", "33"),
        Action::Render => ("~", "36"),
        Action::Csr => ("?", "35"),
        Action::Wait => ("?", "35"),
        Action::FixMode => ("~", "36"),
        Action::Encrypt | Action::Reencrypt | Action::Decrypt => ("~", "36"),
        Action::External => ("=", "2"),
        Action::Keep => ("=", "2"),
        Action::Blocked => ("x", "31;1"),
    }
}

/// The report's first line when the run's clock is off the system clock (`Clock::skew`): which
/// clock it is, where it comes from, and what that means for what is signed; empty otherwise.
/// It names no distance to the system clock, so that a fixed `--now` always prints the same.
pub fn clock_line(now: OffsetDateTime, clock: &Clock, check: bool) -> String {
    let from = match clock.source {
        ClockSource::System => return String::new(),
        ClockSource::NowFlag => "--now".to_string(),
        ClockSource::SourceDateEpoch(secs) => format!("SOURCE_DATE_EPOCH={secs}"),
    };
    let at = x509::fmt_time(now);
    match (clock.skew(now), check) {
        (Skew::None, _) => String::new(),
        (Skew::Past(_), true) => format!(
            "note: planning at {at} ({from}), earlier than the system clock: expiry and renewal are judged as of then\n"
        ),
        (Skew::Past(_), false) => format!(
            "note: signing at {at} ({from}), earlier than the system clock: what this run signs is dated then\n"
        ),
        (Skew::Future(_), true) => format!(
            "warning: planning at {at} ({from}), later than the system clock: a run at this clock signs certificates that are not valid yet\n"
        ),
        (Skew::Future(_), false) => format!(
            "warning: signing at {at} ({from}), later than the system clock: what this run signs is not valid before {}\n",
            x509::fmt_time(now - crate::spec::BACKDATE)
        ),
    }
}

/// One line per item that changes or has something to say, orphans, then counts.
pub fn plan_text(spec: &Spec, plan: &Plan, style: Style) -> String {
    let width = spec
        .items
        .iter()
        .map(|i| i.name.len())
        .max()
        .unwrap_or(0)
        .min(40);
    let mut out = String::new();
    for s in plan
        .steps
        .iter()
        .filter(|s| s.action != Action::Keep || !s.reasons.is_empty() || s.blocker.is_some())
    {
        let (sig, color) = sigil(s.action);
        let name = &spec.items[s.item].name;
        let head = format!("{sig} {:<9} {name:<width$}", s.action.label());
        let mut why: Vec<String> = s.reasons.iter().map(ToString::to_string).collect();
        why.extend(s.blocker.iter().map(ToString::to_string));
        let reason = if why.is_empty() {
            String::new()
        } else {
            format!("  ({})", why.join("; "))
        };
        let _ = writeln!(out, "{}{}", style.paint(color, head.trim_end()), reason);
    }
    for o in &plan.orphans {
        let note = plan
            .orphan_notes
            .get(o)
            .map_or(String::new(), |n| format!("; {n}"));
        let _ = writeln!(
            out,
            "{}  (not declared in pki.toml; --prune deletes it{note})",
            style.paint("31", &format!("- {:<9} {o}", "orphan"))
        );
    }
    for k in &plan.protected_keys {
        let _ = writeln!(
            out,
            "{}  ({k})",
            style.paint("33", &format!("- {:<9} {}", "orphan", k.path))
        );
    }
    for u in &plan.unnamed {
        let _ = writeln!(
            out,
            "{}  (not declared; its name is not UTF-8, so the tool never reads or prunes it: rename or delete it yourself)",
            style.paint("33", &format!("- {:<9} {u}", "orphan"))
        );
    }
    for k in &plan.kept_keys {
        let _ = writeln!(
            out,
            "{}  (not declared, but the private key of a declared certificate: never pruned; move or delete it yourself)",
            style.paint("33", &format!("- {:<9} {k}", "orphan"))
        );
    }
    if plan.inventory_stale && plan.steps.iter().all(|s| !s.writes()) {
        let _ = writeln!(
            out,
            "{}  (out of date)",
            style.paint(
                "36",
                &format!("~ {:<9} {}", "re-render", crate::layout::INVENTORY)
            )
        );
    }
    out.push_str(&counts(plan));
    for w in &plan.waiting {
        let _ = writeln!(out, "{w}");
    }
    out
}

pub fn counts(plan: &Plan) -> String {
    let n = |a: Action| plan.steps.iter().filter(|s| s.action == a).count();
    let mut parts = Vec::new();
    for a in [
        Action::Create,
        Action::Rekey,
        Action::Resign,
        Action::Render,
        Action::Csr,
        Action::Wait,
        Action::FixMode,
        Action::Encrypt,
        Action::Reencrypt,
        Action::Decrypt,
        Action::Blocked,
        Action::External,
        Action::Keep,
    ] {
        let c = n(a);
        if c > 0 {
            parts.push(format!("{c} {}", a.label()));
        }
    }
    if !plan.orphans.is_empty() {
        parts.push(format!("{} orphan", plan.orphans.len()));
    }
    format!("plan: {}\n", parts.join(", "))
}

/// Unified diffs, one per changed file.
pub fn diff_text(diffs: &[Diff], style: Style) -> String {
    let mut out = String::new();
    for d in diffs {
        let mut old = d.old.clone();
        let mut new = d.new.clone();
        if d.key_rotated {
            old.push_str("private-key: (not shown)\n");
            new.push_str("private-key: rotated\n");
        }
        if old == new {
            continue;
        }
        let diff = similar::TextDiff::from_lines(&old, &new);
        let from = if d.old.is_empty() {
            "/dev/null".to_string()
        } else {
            format!("a/{}", d.label)
        };
        let text = diff
            .unified_diff()
            .context_radius(3)
            .header(&from, &format!("b/{}", d.label))
            .to_string();
        for line in text.lines() {
            let painted = if line.starts_with("+++") || line.starts_with("---") {
                style.paint("1", line)
            } else if line.starts_with('+') {
                style.paint("32", line)
            } else if line.starts_with('-') {
                style.paint("31", line)
            } else if line.starts_with("@@") {
                style.paint("36", line)
            } else {
                line.to_string()
            };
            let _ = writeln!(out, "{painted}");
        }
    }
    out
}

/// Replaces every private key by a marker and every certificate by a short label, so a file on
/// disk can be diffed and shown: each key and certificate this run knows in every form the
/// template helpers make of it (PEM, base64, base64 of base64, quoted, quoted base64), then
/// anything else that still looks like a PEM private key or the base64 of one. The new side of a
/// diff is redacted by provenance instead (`render::render_shown`); the labels are the same, so
/// unchanged lines compare equal.
///
/// Only the items the render `r` binds, and the issuers above them, are looked for by value: a
/// template sees nothing else (`render::context`), so nothing else can be in its file by value,
/// and a diff costs the size of its render, not of the whole cluster. A key from anywhere else
/// (a file edited by hand, a bind changed since) is still caught by its look.
pub fn redact(text: &str, materials: &[Material], spec: &Spec, r: &RenderSpec) -> String {
    let within = bound_and_above(spec, r);
    let mut out = redact_chains(text, materials, spec, &within);
    let mut keys = Vec::new();
    for &id in &within {
        let m = &materials[id];
        let name = &spec.items[id].name;
        if let Some(k) = &m.key_pem {
            out = replace_forms(&out, k, &key_label(name));
            keys.push((pem_body(k), key_label(name)));
        }
        if let (Some(pem), Some(cf)) = (&m.cert_pem, &m.cert) {
            out = replace_forms(&out, pem, &cert_label(name, cf));
        }
    }
    redact_base64_keys(&redact_pem_keys(&out, &keys))
}

/// `text` with the chains and bundles of several certificates (`X.cert.chain`, `X.cert.bundle`)
/// replaced by their certificates' labels, one a line, before any single certificate is: the
/// base64 of a bundle may start with the base64 of its first certificate.
fn redact_chains(text: &str, materials: &[Material], spec: &Spec, within: &[ItemId]) -> String {
    let real = |i: usize| materials[i].clone();
    let labelled = |i: usize| render::labelled(spec, i, materials[i].clone());
    let mut out = text.to_string();
    for &id in within {
        if spec.items[id].kind.as_cert().is_none() {
            continue;
        }
        let (chain, bundle) = render::chain_and_bundle(spec, id, &real);
        let (chain_label, bundle_label) = render::chain_and_bundle(spec, id, &labelled);
        for (value, label) in [(bundle, bundle_label), (chain, chain_label)] {
            if let (Some(v), Some(l)) = (value, label)
                && Some(&v) != materials[id].cert_pem.as_ref()
            {
                out = replace_forms(&out, &v, l.trim_end());
            }
        }
    }
    out
}

/// The items `r` binds and every issuer above them, each once, in spec order (issuers first), as
/// the redaction replaces chains before single certificates.
fn bound_and_above(spec: &Spec, r: &RenderSpec) -> Vec<ItemId> {
    let mut ids = BTreeSet::new();
    for &bound in r.bind.values() {
        let mut at = Some(bound);
        while let Some(id) = at.filter(|&id| ids.insert(id)) {
            at = spec.items[id].kind.as_cert().and_then(|c| c.issuer);
        }
    }
    ids.into_iter().collect()
}

/// `text` with every form the helpers make of `value` replaced by `label`, longest first: its
/// base64 of base64, base64, quoted (JSON) text and text. A trailing newline of the value is left
/// in place, as the new side's labels keep it.
fn replace_forms(text: &str, value: &str, label: &str) -> String {
    let quoted = |v: &str| {
        let q = serde_json::to_string(v).unwrap_or_default();
        q[1..q.len() - 1].to_string()
    };
    let once = b64(value);
    let bare = value.trim_end();
    // A chain's labels, one a line as text, share one line where base64 stood.
    let flat = label.replace('\n', " ");
    let forms = [
        (b64(&once), flat.as_str()),
        (once.clone(), flat.as_str()),
        (quoted(bare), label),
        (bare.to_string(), label),
    ];
    forms
        .iter()
        .filter(|(f, _)| !f.is_empty())
        .fold(text.to_string(), |t, (f, l)| t.replace(f.as_str(), l))
}

/// A PEM block's text without its line breaks and indentation (real ones, or `\n` escapes):
/// the same for a key however a helper laid it out.
fn pem_body(block: &str) -> String {
    block
        .replace("\\n", "")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// Replaces what still looks like a PEM private key (one this run did not know), from its BEGIN
/// marker to the end of its END marker, on one line or several (a quoted key is one line with
/// `\n` in it). One with no END marker (a truncated file) goes to the end of its line when the
/// key continues on that line (quoted), else to the end of the text: its lines are key material.
fn redact_pem_keys(text: &str, known: &[(String, String)]) -> String {
    let mut out = text.to_string();
    let mut from = 0;
    while let Some(rel) = out[from..].find("-----BEGIN ") {
        let start = from + rel;
        let marker_end = out[start + 11..]
            .find("-----")
            .map_or(out.len(), |e| start + 11 + e + 5);
        if !out[start..marker_end].contains("PRIVATE KEY") {
            from = marker_end;
            continue;
        }
        let line_end = out[start..].find('\n').map_or(out.len(), |e| start + e);
        let unterminated = if out[marker_end.min(line_end)..line_end].trim().is_empty() {
            out.len()
        } else {
            line_end
        };
        let stop = out[marker_end..]
            .find("-----END ")
            .and_then(|e| {
                let end = marker_end + e + 9;
                out[end..].find("-----").map(|d| end + d + 5)
            })
            .unwrap_or(unterminated);
        // A known key laid out another way (indented) is named like its other forms.
        let body = pem_body(&out[start..stop]);
        let label = known
            .iter()
            .find(|(k, _)| *k == body)
            .map_or("[private key elided]", |(_, label)| label.as_str())
            .to_string();
        out.replace_range(start..stop, &label);
        from = start + label.len();
    }
    out
}

/// Replaces every run of base64 that decodes to a PEM private key.
fn redact_base64_keys(text: &str) -> String {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    // `=` ends a run (padding is optional here): `KEY=<base64>` in an env file is found too.
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_b64) {
        out.push_str(&rest[..start]);
        let len = rest[start..]
            .find(|c: char| !is_b64(c))
            .unwrap_or(rest.len() - start);
        let run = &rest[start..start + len];
        // Whole groups of four only, so a cut-off run still decodes.
        let whole = &run[..run.len() / 4 * 4];
        let is_key = run.len() >= 40
            && lenient.decode(whole).is_ok_and(|bytes| {
                bytes
                    .windows(b"PRIVATE KEY".len())
                    .any(|w| w == b"PRIVATE KEY")
            });
        out.push_str(if is_key { "[private key elided]" } else { run });
        rest = &rest[start + len..];
        if is_key {
            // The run's padding is part of the key's text, not of what follows it.
            rest = rest
                .strip_prefix("==")
                .or(rest.strip_prefix('='))
                .unwrap_or(rest);
        }
    }
    out.push_str(rest);
    out
}

/// The text form of a certificate as the plan expects it, for `--check --diff`: what is known
/// from pki.toml, with `(known after apply)` for what signing decides.
pub fn planned_description(
    spec: &Spec,
    id: usize,
    old: Option<&x509::CertFacts>,
    new_key: bool,
    ids: PlannedIds,
) -> String {
    let ItemKind::Cert(c) = &spec.items[id].kind else {
        return String::new();
    };
    let later = crate::render::PENDING;
    let issuer = match c.issuer {
        Some(i) => spec.items[i]
            .kind
            .as_cert()
            .map(|ic| ic.subject.to_string())
            .unwrap_or_default(),
        None => c.subject.to_string(),
    };
    let usages: Vec<&str> = c.usages.iter().map(|u| u.name()).collect();
    let mut s = String::new();
    let _ = writeln!(s, "subject: {}", c.subject);
    let _ = writeln!(
        s,
        "issuer: {}",
        old.filter(|o| o.issuer.replace(' ', "") == issuer.replace(' ', ""))
            .map_or(issuer.clone(), |o| o.issuer.clone())
    );
    let _ = writeln!(s, "sans: {}", x509::fmt_sans(&c.sans));
    let _ = writeln!(
        s,
        "usages: {}",
        if c.ca.is_some() {
            "ca".to_string()
        } else {
            usages.join(", ")
        }
    );
    if let Some(ca) = c.ca {
        let _ = writeln!(
            s,
            "path-len: {}",
            ca.path_len.map_or("none".to_string(), |p| p.to_string())
        );
    }
    let _ = writeln!(s, "key: {}", c.alg);
    let fp = match old {
        Some(o) if !new_key => x509::sha256_hex(&o.spki),
        _ => later.to_string(),
    };
    let _ = writeln!(s, "public-key-sha256: {fp}");
    for f in ["not-before", "not-after", "serial"] {
        let _ = writeln!(s, "{f}: {later}");
    }
    let known = |id: Option<Vec<u8>>| id.map_or(later.to_string(), |k| x509::colon_hex(&k));
    let _ = writeln!(s, "subject-key-id: {}", known(ids.subject));
    let _ = writeln!(s, "authority-key-id: {}", ids.authority);
    let _ = writeln!(s, "sha256: {later}");
    s
}

/// The key identifiers a certificate about to be signed will carry, as far as the plan knows
/// them: the subject's when its key stays (kept with its old identifier, see
/// `x509::identity`), the authority's as text (`none` for a root, which carries none).
pub struct PlannedIds {
    pub subject: Option<Vec<u8>>,
    pub authority: String,
}

/// The key identifiers of item `id` after this plan: a key that stays keeps its identifier, and
/// an issuer that keeps its key keeps its own.
fn planned_ids(spec: &Spec, plan: &Plan, id: usize) -> PlannedIds {
    let later = crate::render::PENDING.to_string();
    let ski = |i: usize| -> Option<Vec<u8>> {
        let step = plan.steps.get(i)?;
        let c = spec.items[i].kind.as_cert()?;
        let m = &plan.current[i];
        if step.new_key() {
            return None;
        }
        let spki = m
            .key_spki
            .as_deref()
            .or(m.cert.as_ref().map(|cf| cf.spki.as_slice()))?;
        let old = m.cert.as_ref();
        if step.action.signs() {
            Some(x509::identity(&c.subject, spki, old).1)
        } else {
            old.and_then(|cf| cf.ski.clone())
        }
    };
    let authority = match spec.items[id].kind.as_cert().and_then(|c| c.issuer) {
        None => "none".to_string(),
        Some(i) => ski(i).map_or(later, |k| x509::colon_hex(&k)),
    };
    PlannedIds {
        subject: ski(id),
        authority,
    }
}

/// Diffs for `--check --diff`: the planned text of each certificate and rendered file.
pub fn planned_diffs(spec: &Spec, plan: &Plan, disk: &Disk) -> Vec<Diff> {
    let current = &plan.current;
    let mut diffs = Vec::new();
    for s in &plan.steps {
        match &spec.items[s.item].kind {
            ItemKind::Cert(c) if s.action.signs() => {
                let old = current[s.item].cert.as_ref();
                diffs.push(Diff {
                    label: c.cert_path.clone(),
                    old: old.map(x509::describe).unwrap_or_default(),
                    new: planned_description(
                        spec,
                        s.item,
                        old,
                        s.new_key(),
                        planned_ids(spec, plan, s.item),
                    ),
                    key_rotated: s.new_key(),
                });
            }
            ItemKind::Render(r) if matches!(s.action, Action::Create | Action::Render) => {
                let old = disk
                    .obs(&r.path)
                    .map(|f| crate::render::on_disk_text(&f.bytes))
                    .unwrap_or_default();
                let new = s
                    .shown
                    .clone()
                    .unwrap_or_else(|| format!("{}\n", crate::render::PENDING));
                let new = if crate::render::is_sealed(spec, r) {
                    crate::render::sealed_shown(&new)
                } else {
                    new
                };
                diffs.push(Diff {
                    label: r.path.clone(),
                    old: redact(&old, current, spec, r),
                    new: redact(&new, current, spec, r),
                    key_rotated: false,
                });
            }
            _ => {}
        }
    }
    diffs
}

/// The command that carries out a checked plan: the flags that changed it (`--prune`, `--rekey`
/// and `--renew` with their names) go with it, else a plain run would plan something else.
pub fn run_command(prune: bool, rekey: &BTreeSet<String>, renew: &BTreeSet<String>) -> String {
    let mut command = String::from("cargo xtask pki");
    if prune {
        command.push_str(" --prune");
    }
    for (flag, names) in [("--rekey", rekey), ("--renew", renew)] {
        if !names.is_empty() {
            command.push(' ');
            command.push_str(flag);
            for name in names {
                command.push(' ');
                command.push_str(name);
            }
        }
    }
    command
}

/// The last line of `--check`: whether the output folder is up to date, and if not the command
/// that carries out this very plan; then a note per temporary file an interrupted run left.
pub fn check_summary(
    out: &str,
    plan: &Plan,
    changed: bool,
    prune: bool,
    asked: (&BTreeSet<String>, &BTreeSet<String>),
    (temps, later): (&[String], Option<OffsetDateTime>),
) -> String {
    let orphans = plan.orphans.len();
    let mut text = String::new();
    if let (true, Some(at)) = (changed, later) {
        // A check at a future clock (`--now +60d`) says what a run then would do: running the
        // tool now changes only what is due now, so "run it" would mislead.
        let command = run_command(prune, asked.0, asked.1);
        let _ = writeln!(
            text,
            "{out}/ will be stale at {}: a run then (`{command}`) makes the changes above; `--renew NAME` renews a certificate now",
            x509::fmt_time(at)
        );
    } else if changed {
        let command = run_command(prune, asked.0, asked.1);
        let _ = writeln!(text, "{out}/ is stale: run `{command}`");
    } else if !plan.waiting.is_empty() {
        // Only a person with an external CA's key can go on: a failing check could not be
        // fixed by running the tool, so it passes and says what waits.
        let _ = writeln!(text, "{out}/ is up to date{}", waiting_note(plan));
    } else if orphans > 0 {
        // Orphans change nothing a run would fix: deleting them is the user's decision (and a
        // still-valid credential among them may call for rotating its CA), so they are named
        // without failing the check.
        let _ = writeln!(
            text,
            "{out}/ is up to date; {orphans} {} above: review {}, `cargo xtask pki --prune` deletes {}",
            if orphans == 1 { "orphan" } else { "orphans" },
            if orphans == 1 { "it" } else { "them" },
            if orphans == 1 { "it" } else { "them" },
        );
    } else {
        let _ = writeln!(text, "{out}/ is up to date");
    }
    for t in temps {
        let _ = writeln!(
            text,
            "note: {out}/{t} is a temporary file of an interrupted run; the next run removes it"
        );
    }
    for (csr, why) in &plan.answered_csrs {
        let _ = writeln!(text, "note: {out}/{csr}: {why}; the next run removes it");
    }
    text
}

/// What a writing run removed before anything else: CSRs nothing waits on any more.
pub fn removed_csrs(out: &str, plan: &Plan) -> String {
    plan.answered_csrs
        .iter()
        .map(|(csr, why)| format!("removed {out}/{csr}: {why}\n"))
        .collect()
}

/// What a writing run did before planning: the temporary files of an interrupted run it removed.
pub fn removed_temps(out: &str, removed: &[String]) -> String {
    removed
        .iter()
        .map(|t| format!("removed {out}/{t}: a temporary file of an interrupted run\n"))
        .collect()
}

/// The line of a writing run that finds nothing to do.
pub fn nothing_written(out: &str, plan: &Plan) -> String {
    format!(
        "{out}/ is up to date; nothing written{}\n",
        waiting_note(plan)
    )
}

/// What an up-to-date output folder still waits for: CSRs only an external CA can sign.
fn waiting_note(plan: &Plan) -> String {
    match plan.waiting.len() {
        0 => String::new(),
        1 => "; it waits for an external CA to sign the CSR above".into(),
        n => format!("; it waits for external CAs to sign the {n} CSRs above"),
    }
}

/// What a writing run did: notes on certificates cut to their issuer's lifetime, then counts.
pub fn applied(out: &str, clamped: &[String], w: &crate::apply::Written) -> String {
    let mut text = String::new();
    for name in clamped {
        let _ = writeln!(
            text,
            "note: {name}: notAfter cut to its issuer's notAfter (a leaf never outlives its CA)"
        );
    }
    let n =
        |count: usize, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    let _ = writeln!(
        text,
        "wrote {}, fixed {}, removed {} in {out}/",
        n(w.written.len(), "file"),
        n(w.modes_fixed.len(), "mode"),
        n(w.removed.len(), "orphan"),
    );
    text
}

/// An error as the command line prints it: every diagnostic or problem on its own `error:` line,
/// then what that means for the run.
pub fn error_text(e: &Error) -> String {
    match e {
        Error::Spec { rendered, .. } => rendered.trim_end().to_string(),
        Error::Blocked(problems) | Error::BlockedPlan { problems, .. } => {
            let mut text = String::new();
            for p in problems {
                let _ = writeln!(text, "error: {p}");
            }
            let n = problems.len();
            let _ = write!(
                text,
                "error: {n} problem{} the run; nothing was written",
                if n == 1 { " stops" } else { "s stop" }
            );
            text
        }
        other => format!("error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    /// A render's redaction looks for its own bound items and their issuers by value, however
    /// many other items the spec has: a diff costs the size of its render.
    #[test]
    fn redaction_looks_only_at_what_the_render_binds_and_its_issuers() {
        let extra: String = (0..50)
            .map(|i| format!("\n[[cert]]\nname = \"c{i}\"\ncn = \"c{i}\"\nissuer = \"root\"\nusage = [\"client\"]\ncert = \"c{i}.crt\"\nkey = \"c{i}.key\"\n"))
            .collect();
        let render = "\n[[render]]\nname = \"r\"\ntemplate = \"t.hbs\"\npath = \"r.txt\"\nbind = { s = \"server\" }\n";
        let text = format!("{}{extra}{render}", crate::testing::CHAIN);
        let sources = crate::testing::sources(&text, &[("t.hbs", "{{s.cert.pem}}")]);
        let spec = crate::load(&sources).expect("the spec resolves");
        let crate::spec::ItemKind::Render(r) = &spec.items.last().unwrap().kind else {
            panic!("the render comes last");
        };
        let names: Vec<&str> = super::bound_and_above(&spec, r)
            .into_iter()
            .map(|id| spec.items[id].name.as_str())
            .collect();
        assert_eq!(names, ["root", "mid", "server"]);
    }

    #[test]
    fn a_base64_key_is_elided_with_its_padding() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for key in [
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgx\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxy\n-----END PRIVATE KEY-----\n",
        ] {
            let encoded = b64(key);
            let text = format!("client-key-data: {encoded}\nKEY={encoded}\nnext: x==\n");
            assert_eq!(
                super::redact_base64_keys(&text),
                "client-key-data: [private key elided]\nKEY=[private key elided]\nnext: x==\n",
                "{encoded}"
            );
        }
    }
}
