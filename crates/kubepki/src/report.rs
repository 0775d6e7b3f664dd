//! Stage 5, REPORT (pure): the plan as one line per item with its reason, counts, and unified
//! diffs of non-secret text. Private keys never appear: rotated keys show as `key: rotated`, and
//! key material inside rendered files is replaced before any diff is made.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::disk::Disk;
use crate::error::Error;
use crate::plan::{Action, Plan};
use crate::render::{Material, b64};
use crate::spec::{ItemKind, Spec};
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
        Action::FixMode => ("~", "36"),
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
        let _ = writeln!(
            out,
            "{}  (not declared in pki.toml; --prune deletes it)",
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
    for k in &plan.kept_keys {
        let _ = writeln!(
            out,
            "{}  (not declared, but the private key of a declared certificate: never pruned; move or delete it yourself)",
            style.paint("33", &format!("- {:<9} {k}", "orphan"))
        );
    }
    if plan.inventory_stale && plan.steps.iter().all(|s| !s.action.writes()) {
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
        Action::FixMode,
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

/// Replaces every private key (PEM or base64 of PEM) by a marker and every certificate by a short
/// label, so rendered files can be diffed and shown.
pub fn redact(text: &str, materials: &[Material], spec: &Spec) -> String {
    let mut out = text.to_string();
    for (id, m) in materials.iter().enumerate() {
        let name = &spec.items[id].name;
        if let Some(k) = &m.key_pem {
            out = out.replace(&b64(k), &format!("[private key of {name} elided]"));
            out = out.replace(k.as_str(), &format!("[private key of {name} elided]"));
        }
        if let (Some(pem), Some(cf)) = (&m.cert_pem, &m.cert) {
            let label = format!("[certificate {name}, sha256 {}]", &cf.fingerprint[..16]);
            out = out.replace(&b64(pem), &label);
            out = out.replace(pem.as_str(), &label);
        }
    }
    // Anything that still looks like a PEM private key (one this run did not know) goes too.
    let mut from = 0;
    while let Some(rel) = out[from..].find("-----BEGIN ") {
        let start = from + rel;
        let line_end = out[start..].find('\n').map_or(out.len(), |e| start + e);
        if !out[start..line_end].contains("PRIVATE KEY") {
            from = line_end;
            continue;
        }
        let stop = match out[line_end..].find("-----END ") {
            Some(e) => out[line_end + e..]
                .find('\n')
                .map_or(out.len(), |n| line_end + e + n),
            None => out.len(),
        };
        out.replace_range(start..stop, "[private key elided]");
        from = start;
    }
    // And the base64 of one, as kubeconfigs and Secrets embed it: a key this run could not read
    // (damaged on disk, or since replaced) is still in the files that embedded it.
    redact_base64_keys(&out)
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
    for f in [
        "not-before",
        "not-after",
        "serial",
        "subject-key-id",
        "authority-key-id",
        "sha256",
    ] {
        let _ = writeln!(s, "{f}: {later}");
    }
    s
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
                    new: planned_description(spec, s.item, old, s.new_key()),
                    key_rotated: s.new_key(),
                });
            }
            ItemKind::Render(r) if matches!(s.action, Action::Create | Action::Render) => {
                let old = disk
                    .obs(&r.path)
                    .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
                    .unwrap_or_default();
                let new = s
                    .preview
                    .clone()
                    .unwrap_or_else(|| format!("{}\n", crate::render::PENDING));
                diffs.push(Diff {
                    label: r.path.clone(),
                    old: redact(&old, current, spec),
                    new: redact(&new, current, spec),
                    key_rotated: false,
                });
            }
            _ => {}
        }
    }
    diffs
}

/// The last line of `--check`: whether the output folder is up to date, and if not the command
/// that carries out this very plan; then a note per temporary file an interrupted run left.
pub fn check_summary(
    out: &str,
    changed: bool,
    prune: bool,
    rekey: &BTreeSet<String>,
    temps: &[String],
) -> String {
    let mut text = String::new();
    if changed {
        let mut flags = String::new();
        if prune {
            flags.push_str(" --prune");
        }
        if !rekey.is_empty() {
            flags.push_str(" --rekey");
            for name in rekey {
                flags.push(' ');
                flags.push_str(name);
            }
        }
        let _ = writeln!(text, "{out}/ is stale: run `cargo xtask pki{flags}`");
    } else {
        let _ = writeln!(text, "{out}/ is up to date");
    }
    for t in temps {
        let _ = writeln!(
            text,
            "note: {out}/{t} is a temporary file of an interrupted run; the next run removes it"
        );
    }
    text
}

/// What a writing run did before planning: the temporary files of an interrupted run it removed.
pub fn removed_temps(out: &str, removed: &[String]) -> String {
    removed
        .iter()
        .map(|t| format!("removed {out}/{t}: a temporary file of an interrupted run\n"))
        .collect()
}

/// The line of a writing run that finds nothing to do.
pub fn nothing_written(out: &str) -> String {
    format!("{out}/ is up to date; nothing written\n")
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
        Error::Blocked(problems) => {
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
