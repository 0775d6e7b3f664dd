//! The plan as one JSON document (`--format json`), of `SCHEMA_VERSION` (`schemas/plan.v1.json`).
//! Built from the plan's own types: every reason is its `Reason` serialised, with its rendered
//! `text` beside; no rendered file's text and no key is ever part of it.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::plan::{Action, Plan, Problem, Reason, Step};
use crate::spec::{Item, ItemKind, Spec};

/// The version of the document; a field is removed or changes meaning only with a new one.
pub const SCHEMA_VERSION: u32 = 1;

/// What a run was: a `--check` or not, whether anything would change (or changed), and the
/// problems that stop it (a blocked run writes nothing).
pub struct Run<'a> {
    pub now: OffsetDateTime,
    pub check: bool,
    pub changed: bool,
    pub problems: &'a [Problem],
}

/// The whole plan: the run's mode, counts, one object per item, and the files beside them.
pub fn plan_json(spec: &Spec, plan: &Plan, run: &Run<'_>) -> String {
    let items: Vec<Value> = plan.steps.iter().map(|s| step(spec, s)).collect();
    let doc = json!({
        "schema_version": SCHEMA_VERSION,
        "now": crate::x509::fmt_time(run.now),
        "check": run.check,
        "changed": run.changed,
        "blocked": !run.problems.is_empty(),
        "problems": run.problems.iter().map(problem).collect::<Vec<_>>(),
        "counts": counts(plan),
        "items": items,
        "orphans": plan.orphans,
        "inventory_stale": plan.inventory_stale,
        "restarts": super::restarts::restart_json(&crate::restarts::restarts(spec, plan)),
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value always serialises");
    text.push('\n');
    text
}

/// How many steps take each action, for every action that occurs.
fn counts(plan: &Plan) -> Value {
    let mut map = serde_json::Map::new();
    for s in &plan.steps {
        let n = map.entry(s.action.label()).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    Value::Object(map)
}

/// One item: what it is, what happens to it and why, its files, and the fields that change.
fn step(spec: &Spec, s: &Step) -> Value {
    let item = &spec.items[s.item];
    json!({
        "item": item.name,
        "base": item.base,
        "node": node(item),
        "type": item_type(item),
        "action": s.action.label(),
        "writes": s.writes(),
        "new_key": s.new_key(),
        "reasons": s.reasons.iter().map(reason).collect::<Vec<_>>(),
        "changes": changes(&s.reasons),
        "blocker": s.blocker.as_ref().map(|b| with_text(json!(b), b.to_string())),
        "files": files(item),
        "signed": s.action.signs() || s.action == Action::Csr,
    })
}

/// A problem: the items it stops, its blocker as a reason is, and the line the command prints.
fn problem(p: &Problem) -> Value {
    json!({
        "items": p.items,
        "blocker": with_text(json!(p.blocker), p.blocker.to_string()),
        "text": p.to_string(),
    })
}

/// A reason as its variant's fields, its `kind`, and the sentence the text plan prints.
fn reason(r: &Reason) -> Value {
    with_text(json!(r), r.to_string())
}

fn with_text(mut v: Value, text: String) -> Value {
    if let Value::Object(map) = &mut v {
        map.insert("text".into(), Value::String(text));
    }
    v
}

/// The names of the certificate fields the reasons say differ from pki.toml.
fn changes(reasons: &[Reason]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = reasons.iter().filter_map(changed_field).collect();
    out.dedup();
    out
}

/// The field a reason is about, when it is a difference between the file and pki.toml.
fn changed_field(r: &Reason) -> Option<&'static str> {
    Some(match r {
        Reason::SubjectChanged { .. } => "subject",
        Reason::SansChanged { .. } => "sans",
        Reason::UsagesChanged { .. } => "usages",
        Reason::KeyUsageChanged(_) => "key_usage",
        Reason::PathLenChanged { .. } => "path_len",
        Reason::ValidityChanged { .. } => "validity",
        Reason::KeyAlgChanged { .. } => "key_algorithm",
        Reason::NotCa | Reason::LeafIsCa => "ca",
        _ => return None,
    })
}

pub(super) fn node(item: &Item) -> Option<&str> {
    match &item.kind {
        ItemKind::Cert(c) => c.node.as_ref().map(|n| n.name.as_str()),
        ItemKind::Render(r) => r.node.as_ref().map(|n| n.name.as_str()),
        ItemKind::KeyPair(_) => None,
    }
}

/// `ca`, `cert`, `keypair` or `render`, as pki.toml's tables name them.
pub(super) fn item_type(item: &Item) -> &'static str {
    match &item.kind {
        ItemKind::Cert(c) if c.ca.is_some() => "ca",
        ItemKind::Cert(_) => "cert",
        ItemKind::KeyPair(_) => "keypair",
        ItemKind::Render(_) => "render",
    }
}

/// The item's files in the output folder: the certificate and its key, a key pair's halves, or
/// the rendered file.
pub(super) fn files(item: &Item) -> Vec<&str> {
    match &item.kind {
        ItemKind::Cert(c) => vec![c.cert_path.as_str(), c.key_path.as_str()],
        ItemKind::KeyPair(k) => vec![k.private_path.as_str(), k.public_path.as_str()],
        ItemKind::Render(r) => vec![r.path.as_str()],
    }
}
