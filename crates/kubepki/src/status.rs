//! `pki status` (pure): every declared certificate as it is in the output folder, judged at a
//! given time, and its three printed forms (a table, versioned JSON, Prometheus textfile
//! metrics). It reads certificates only: keys play no part in any answer, so a tree whose keys
//! are kept elsewhere gives the same status as the tree that holds them.

use std::fmt::Write as _;

use time::{Duration, OffsetDateTime};

use crate::disk::{Disk, Read};
use crate::report::Style;
use crate::scan::Observed;
use crate::spec::{CertSpec, ItemKind, KeyAlg, Spec};
use crate::x509::{self, CertFacts};

/// The version of the JSON form (`schemas/status.v1.json`). It changes only when a field is
/// removed or changes meaning; new fields may be added within a version.
pub const SCHEMA_VERSION: u32 = 1;

/// Every declared certificate at one moment.
#[derive(Debug, Clone)]
pub struct Status {
    /// The time the certificates are judged at.
    pub now: OffsetDateTime,
    /// `--warn-within`: what expires within it is `Urgency::Expiring` and fails the gate.
    pub warn_within: Option<Duration>,
    /// CAs first, then leaves, each in declaration order.
    pub certs: Vec<CertStatus>,
}

/// One declared certificate.
#[derive(Debug, Clone)]
pub struct CertStatus {
    /// Its name in pki.toml (shared by every node's instance).
    pub item: String,
    /// The node of a per-node instance.
    pub node: Option<String>,
    /// Whether pki.toml declares it a CA.
    pub ca: bool,
    /// The certificate's path inside the output folder.
    pub file: String,
    /// The item that signs it: its declared issuer, or itself for a root.
    pub issuer: String,
    /// What the file holds.
    pub found: Found,
}

/// What a declared certificate's file holds.
#[derive(Debug, Clone)]
pub enum Found {
    /// No file at the declared path.
    Missing,
    /// A file that is not a usable certificate, with why (never its bytes).
    Unreadable(String),
    /// A certificate, with what status says of it.
    Cert(Judged),
}

/// A certificate read from disk, judged at `Status::now`.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The certificate's subject, as text.
    pub subject: String,
    /// The certificate's issuer name, as text.
    pub issuer_dn: String,
    /// The algorithm of the certificate's public key, if it is one this tool knows.
    pub key_alg: Option<KeyAlg>,
    /// The certificate's notBefore.
    pub not_before: OffsetDateTime,
    /// The certificate's notAfter.
    pub not_after: OffsetDateTime,
    /// When this tool renews it: notAfter minus the item's renew-before.
    pub renew_at: OffsetDateTime,
    /// Whether a key outside what pki.toml declares signed it (`signed_outside`); `None` when its
    /// issuer's certificate cannot be read, so nobody can tell.
    pub external: Option<bool>,
    /// How soon something must happen.
    pub urgency: Urgency,
}

/// How soon a certificate needs attention, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// notAfter has passed.
    Expired,
    /// It expires within `--warn-within`.
    Expiring,
    /// Its renewal date has passed: the next `cargo xtask pki` re-signs it.
    RenewDue,
    /// Nothing to do yet.
    Ok,
}

/// The printed forms of a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people (coloured on a terminal).
    Text,
    /// The versioned JSON document (`schema_version`).
    Json,
    /// Prometheus textfile-collector metrics.
    Prometheus,
}

impl Urgency {
    /// The word the table and the JSON use.
    pub fn name(self) -> &'static str {
        match self {
            Urgency::Expired => "expired",
            Urgency::Expiring => "expiring",
            Urgency::RenewDue => "renew-due",
            Urgency::Ok => "ok",
        }
    }

    /// The ANSI colour of its row.
    fn color(self) -> &'static str {
        match self {
            Urgency::Expired => "31;1",
            Urgency::Expiring => "31",
            Urgency::RenewDue => "33",
            Urgency::Ok => "32",
        }
    }
}

/// Only the files that can be declared certificates: status never decodes a key, so none of its
/// answers can depend on one (and RSA keys, slow to load, cost nothing).
pub fn certificates_only(spec: &Spec, mut observed: Observed) -> Observed {
    let paths: Vec<&str> = cert_specs(spec)
        .map(|(_, c)| c.cert_path.as_str())
        .collect();
    observed
        .files
        .retain(|path, _| paths.contains(&path.as_str()));
    observed
}

/// The status of every certificate `spec` declares, as `disk` holds them, at `now`.
pub fn status(
    spec: &Spec,
    disk: &Disk,
    now: OffsetDateTime,
    warn_within: Option<Duration>,
) -> Status {
    let mut certs: Vec<CertStatus> = cert_specs(spec)
        .map(|(id, c)| {
            let item = &spec.items[id];
            let issuer = c.issuer.map_or(&item.name, |i| &spec.items[i].name);
            CertStatus {
                item: item.base.clone(),
                node: c.node.as_ref().map(|n| n.name.clone()),
                ca: c.ca.is_some(),
                file: c.cert_path.clone(),
                issuer: issuer.clone(),
                found: found(spec, disk, c, now, warn_within),
            }
        })
        .collect();
    // A stable sort keeps the declaration order within CAs and within leaves.
    certs.sort_by_key(|c| !c.ca);
    Status {
        now,
        warn_within,
        certs,
    }
}

/// Whether a `--warn-within` gate fails: a certificate expires within the window (or already
/// has), or a declared certificate is missing or unreadable (nothing says when it expires).
pub fn gate_fails(status: &Status) -> bool {
    gate_summary(status).is_some()
}

/// Why the `--warn-within` gate fails, as the line the command prints on stderr: how many
/// certificates expired, expire within the duration, or are missing or unreadable. `None` when
/// the gate passes (or there is none).
pub fn gate_summary(status: &Status) -> Option<String> {
    let within = status.warn_within?;
    let (mut expired, mut expiring, mut missing) = (0, 0, 0);
    for c in &status.certs {
        match &c.found {
            Found::Missing | Found::Unreadable(_) => missing += 1,
            Found::Cert(j) if j.urgency == Urgency::Expired => expired += 1,
            Found::Cert(j) if j.urgency == Urgency::Expiring => expiring += 1,
            Found::Cert(_) => {}
        }
    }
    let within = crate::spec::fmt_duration(within);
    let parts: Vec<String> = [
        (expired, "expired".to_string()),
        (expiring, format!("expire within {within}")),
        (missing, "are missing or unreadable".to_string()),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "--warn-within {within} fails: of {} certificates, {}; `cargo xtask pki` renews what is due (`--renew NAME` renews now)",
        status.certs.len(),
        parts.join(", ")
    ))
}

/// Every certificate item with its id, in declaration order.
fn cert_specs(spec: &Spec) -> impl Iterator<Item = (usize, &CertSpec)> {
    spec.items
        .iter()
        .enumerate()
        .filter_map(|(id, item)| match &item.kind {
            ItemKind::Cert(c) => Some((id, c)),
            _ => None,
        })
}

fn found(
    spec: &Spec,
    disk: &Disk,
    c: &CertSpec,
    now: OffsetDateTime,
    warn: Option<Duration>,
) -> Found {
    match disk.cert(&c.cert_path) {
        Read::Missing => Found::Missing,
        Read::Bad(why) => Found::Unreadable(why),
        Read::Ok(cf) => {
            let renew_at = cf.not_after - c.renew_before;
            Found::Cert(Judged {
                subject: cf.subject.to_string(),
                issuer_dn: cf.issuer.clone(),
                key_alg: cf.key_alg,
                not_before: cf.not_before,
                not_after: cf.not_after,
                renew_at,
                external: signed_outside(spec, disk, c, cf),
                urgency: urgency(now, cf.not_after, renew_at, warn),
            })
        }
    }
}

/// Whether the certificate was signed by a key pki.toml does not declare for it: a root that is
/// not self-signed (an intermediate of someone else's CA), or a certificate that does not verify
/// under its declared issuer's certificate in the output folder. It is told from certificates
/// alone, so a CA whose key is kept elsewhere (external-CA mode) is not external by this test:
/// what it signs verifies under its certificate. `None` when the issuer's certificate is unreadable.
fn signed_outside(spec: &Spec, disk: &Disk, c: &CertSpec, cf: &CertFacts) -> Option<bool> {
    let issuer_spki = match c.issuer.and_then(|i| spec.items[i].kind.as_cert()) {
        None => cf.spki.as_slice(),
        Some(ic) => match disk.cert(&ic.cert_path) {
            Read::Ok(icf) => icf.spki.as_slice(),
            Read::Missing | Read::Bad(_) => return None,
        },
    };
    Some(!x509::verifies_under(&cf.der, issuer_spki))
}

/// How urgent a certificate is at `now`: expiry first, then the warning window, then renewal.
fn urgency(
    now: OffsetDateTime,
    not_after: OffsetDateTime,
    renew_at: OffsetDateTime,
    warn_within: Option<Duration>,
) -> Urgency {
    if now >= not_after {
        Urgency::Expired
    } else if warn_within.is_some_and(|w| not_after - now <= w) {
        Urgency::Expiring
    } else if now >= renew_at {
        Urgency::RenewDue
    } else {
        Urgency::Ok
    }
}

/// The status in the chosen form.
pub fn render(status: &Status, format: Format, style: Style) -> String {
    match format {
        Format::Text => text(status, style),
        Format::Json => json(status),
        Format::Prometheus => prometheus(status),
    }
}

const HEADER: [&str; 10] = [
    "ITEM",
    "NODE",
    "FILE",
    "ISSUER",
    "KEY",
    "NOT AFTER",
    "LEFT",
    "RENEWS",
    "EXTERNAL",
    "STATE",
];

/// The table: one row per certificate, padded columns, the row coloured by urgency; then a line
/// of counts.
fn text(status: &Status, style: Style) -> String {
    let rows: Vec<([String; 10], Option<&'static str>)> = status
        .certs
        .iter()
        .map(|c| text_row(c, status.now))
        .collect();
    let mut widths = HEADER.map(str::len);
    for (cells, _) in &rows {
        for (w, cell) in widths.iter_mut().zip(cells) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = format!("status at {}\n", x509::fmt_time(status.now));
    out.push_str(&padded(&HEADER.map(String::from), &widths));
    for (cells, color) in &rows {
        let line = padded(cells, &widths);
        match color {
            Some(code) => out.push_str(&paint(style, code, &line)),
            None => out.push_str(&line),
        }
    }
    out.push_str(&unreadable(status));
    out.push_str(&counts(status));
    out
}

/// Why each unreadable certificate is, one line each (the table has no room for it).
fn unreadable(status: &Status) -> String {
    let mut out = String::new();
    for c in &status.certs {
        if let Found::Unreadable(why) = &c.found {
            let _ = writeln!(out, "unreadable: {why}");
        }
    }
    out
}

/// One row's cells, and its colour.
fn text_row(c: &CertStatus, now: OffsetDateTime) -> ([String; 10], Option<&'static str>) {
    let dash = || "-".to_string();
    let mut cells = [
        c.item.clone(),
        c.node.clone().unwrap_or_else(dash),
        c.file.clone(),
        c.issuer.clone(),
        dash(),
        dash(),
        dash(),
        dash(),
        dash(),
        dash(),
    ];
    let color = match &c.found {
        Found::Missing => {
            cells[9] = "missing".into();
            Some("31;1")
        }
        Found::Unreadable(_) => {
            cells[9] = "unreadable".into();
            Some("31;1")
        }
        Found::Cert(j) => {
            cells[4] = j.key_alg.map_or("unknown", KeyAlg::name).into();
            cells[5] = x509::fmt_time(j.not_after);
            cells[6] = fmt_left(j.not_after - now);
            cells[7] = x509::fmt_time(j.renew_at);
            cells[8] = j
                .external
                .map_or("?", |e| if e { "yes" } else { "no" })
                .into();
            cells[9] = j.urgency.name().into();
            Some(j.urgency.color())
        }
    };
    (cells, color)
}

/// A line in colour on a terminal, its line feed outside the escapes.
fn paint(style: Style, code: &str, line: &str) -> String {
    if style.color {
        format!("\x1b[{code}m{}\x1b[0m\n", line.trim_end_matches('\n'))
    } else {
        line.to_string()
    }
}

/// Cells padded to their columns' widths, two spaces apart, without trailing blanks.
fn padded(cells: &[String; 10], widths: &[usize; 10]) -> String {
    let mut line = String::new();
    for (cell, w) in cells.iter().zip(widths) {
        let _ = write!(line, "{cell:<w$}  ");
    }
    format!("{}\n", line.trim_end())
}

/// The time left in its largest whole unit (`364d`, `5h`, `12m`), or `expired`.
fn fmt_left(d: Duration) -> String {
    if d <= Duration::ZERO {
        "expired".into()
    } else if d.whole_days() >= 1 {
        format!("{}d", d.whole_days())
    } else if d.whole_hours() >= 1 {
        format!("{}h", d.whole_hours())
    } else {
        format!("{}m", d.whole_minutes().max(1))
    }
}

/// The closing line: how many certificates, and how many need something.
fn counts(status: &Status) -> String {
    let n_missing = status
        .certs
        .iter()
        .filter(|c| !matches!(c.found, Found::Cert(_)))
        .count();
    let n_of = |u: Urgency| {
        status
            .certs
            .iter()
            .filter(|c| matches!(&c.found, Found::Cert(j) if j.urgency == u))
            .count()
    };
    format!(
        "{} certificates: {} expired, {} expiring, {} renew-due, {} ok, {n_missing} missing or unreadable\n",
        status.certs.len(),
        n_of(Urgency::Expired),
        n_of(Urgency::Expiring),
        n_of(Urgency::RenewDue),
        n_of(Urgency::Ok),
    )
}

/// The JSON document of `SCHEMA_VERSION` (README, "Status and monitoring"). Every field is
/// always present; what a missing certificate cannot tell is `null`.
fn json(status: &Status) -> String {
    let certs: Vec<serde_json::Value> = status.certs.iter().map(json_cert).collect();
    let doc = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "now": x509::fmt_time(status.now),
        "warn_within_seconds": status.warn_within.map(|w| w.whole_seconds()),
        "certificates": certs,
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

fn json_cert(c: &CertStatus) -> serde_json::Value {
    let (state, error, judged) = match &c.found {
        Found::Missing => ("missing", None, None),
        Found::Unreadable(why) => ("unreadable", Some(why.as_str()), None),
        Found::Cert(j) => (j.urgency.name(), None, Some(j)),
    };
    let time = |f: fn(&Judged) -> OffsetDateTime| judged.map(|j| x509::fmt_time(f(j)));
    serde_json::json!({
        "item": c.item,
        "node": c.node,
        "ca": c.ca,
        "file": c.file,
        "issuer": c.issuer,
        "state": state,
        "error": error,
        "subject": judged.map(|j| j.subject.as_str()),
        "issuer_dn": judged.map(|j| j.issuer_dn.as_str()),
        "key_algorithm": judged.and_then(|j| j.key_alg).map(KeyAlg::name),
        "not_before": time(|j| j.not_before),
        "not_after": time(|j| j.not_after),
        "renew_at": time(|j| j.renew_at),
        "not_after_unix": judged.map(|j| j.not_after.unix_timestamp()),
        "renew_at_unix": judged.map(|j| j.renew_at.unix_timestamp()),
        "external": judged.and_then(|j| j.external),
    })
}

/// One Prometheus metric family: its name, type, help and a value per certificate (`None`
/// leaves the certificate out of it).
struct Family {
    name: &'static str,
    help: &'static str,
    value: fn(&CertStatus) -> Option<i64>,
}

const FAMILIES: [Family; 4] = [
    Family {
        name: "kubepki_certificate_expiry_timestamp_seconds",
        help: "The certificate's notAfter, in seconds since the Unix epoch.",
        value: |c| judged(c).map(|j| j.not_after.unix_timestamp()),
    },
    Family {
        name: "kubepki_certificate_renew_timestamp_seconds",
        help: "When cargo xtask pki renews the certificate (notAfter minus renew-before), in seconds since the Unix epoch.",
        value: |c| judged(c).map(|j| j.renew_at.unix_timestamp()),
    },
    Family {
        name: "kubepki_certificate_external",
        help: "1 if the certificate is signed by a key pki.toml does not declare for it, else 0.",
        value: |c| judged(c).and_then(|j| j.external).map(i64::from),
    },
    Family {
        name: "kubepki_certificate_readable",
        help: "1 if the declared certificate file holds a readable certificate, 0 if it is missing or unreadable.",
        value: |c| Some(i64::from(judged(c).is_some())),
    },
];

fn judged(c: &CertStatus) -> Option<&Judged> {
    match &c.found {
        Found::Cert(j) => Some(j),
        Found::Missing | Found::Unreadable(_) => None,
    }
}

/// Textfile-collector metrics: each family with its HELP and TYPE lines, one sample per
/// certificate, then the time the status was taken at.
fn prometheus(status: &Status) -> String {
    let mut out = String::new();
    for family in &FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        for c in &status.certs {
            if let Some(v) = (family.value)(c) {
                let _ = writeln!(out, "{}{} {v}", family.name, labels(c));
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP kubepki_status_timestamp_seconds The time the certificates were judged at, in seconds since the Unix epoch."
    );
    let _ = writeln!(out, "# TYPE kubepki_status_timestamp_seconds gauge");
    let _ = writeln!(
        out,
        "kubepki_status_timestamp_seconds {}",
        status.now.unix_timestamp()
    );
    out
}

/// A certificate's label set: item, node (empty for a shared certificate), file and issuer.
fn labels(c: &CertStatus) -> String {
    format!(
        "{{item=\"{}\",node=\"{}\",file=\"{}\",issuer=\"{}\"}}",
        label_value(&c.item),
        label_value(c.node.as_deref().unwrap_or("")),
        label_value(&c.file),
        label_value(&c.issuer)
    )
}

/// A label value escaped as the text exposition format requires: backslash, double quote and
/// line feed.
fn label_value(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests;
