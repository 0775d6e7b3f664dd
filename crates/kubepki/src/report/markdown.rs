//! The plan as a pull-request comment (`--format markdown`): a summary line, a table of the
//! changes with their reasons, each decoded diff folded in `<details>`, and a Mermaid flowchart
//! of the issuer tree with the changed items marked.

use std::fmt::Write as _;

use super::{Diff, Style, counts, diff_text};
use crate::plan::{Action, Plan, Problem, Step};
use crate::spec::{ItemKind, Spec};

/// The Mermaid class of an item the plan changes, and its style.
const CHANGED_CLASS: &str = "classDef changed fill:#fde68a,stroke:#b45309,stroke-width:2px";

/// What the summary line says: the output folder, the command that carries out the plan, and
/// whether the run was a check and anything would change (or changed).
pub struct Summary<'a> {
    pub out: &'a str,
    pub command: &'a str,
    pub check: bool,
    pub changed: bool,
    /// What stops the run: a blocked run writes nothing, and the comment says why first.
    pub problems: &'a [Problem],
}

/// The comment: what the run would do (`check`) or did, then the details.
pub fn plan_markdown(spec: &Spec, plan: &Plan, diffs: &[Diff], s: &Summary<'_>) -> String {
    let mut md = format!("### kubepki: {}\n\n", summary(s));
    for p in s.problems {
        let _ = writeln!(md, "- :x: {}", inline(&p.to_string()));
    }
    if !s.problems.is_empty() {
        md.push('\n');
    }
    let _ = writeln!(md, "{}", counts(plan).trim_end());
    md.push('\n');
    md.push_str(&table(spec, plan));
    md.push_str(&super::restarts::restart_markdown(
        &crate::restarts::restarts(spec, plan),
    ));
    for d in diffs {
        md.push_str(&folded(d));
    }
    md.push_str(&mermaid(spec, plan));
    md
}

/// One sentence: blocked, stale or up to date, written or not.
fn summary(s: &Summary<'_>) -> String {
    let out = s.out;
    if let n @ 1.. = s.problems.len() {
        let stop = if n == 1 {
            "problem stops"
        } else {
            "problems stop"
        };
        return format!("{n} {stop} the run; nothing was written");
    }
    match (s.check, s.changed) {
        (true, true) => format!("{out}/ is stale: run `{}`", s.command),
        (true, false) | (false, false) => format!("{out}/ is up to date"),
        (false, true) => format!("{out}/ updated"),
    }
}

/// Whether the table lists a step: it changes something or has something to say.
fn listed(s: &Step) -> bool {
    s.action != Action::Keep || !s.reasons.is_empty() || s.blocker.is_some()
}

/// The changes, one row each; nothing when nothing changes.
fn table(spec: &Spec, plan: &Plan) -> String {
    let rows: Vec<&Step> = plan.steps.iter().filter(|s| listed(s)).collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from("| item | action | why |\n| --- | --- | --- |\n");
    for s in rows {
        let mut why: Vec<String> = s.reasons.iter().map(ToString::to_string).collect();
        why.extend(s.blocker.iter().map(ToString::to_string));
        let _ = writeln!(
            md,
            "| `{}` | {} | {} |",
            spec.items[s.item].name,
            s.action.label(),
            cell(&why.join("; "))
        );
    }
    md.push('\n');
    md
}

/// Text made safe for one line of a list: a newline would end the item.
fn inline(text: &str) -> String {
    text.replace('\n', " ")
}

/// Text made safe for a table cell: a `|` would end the cell, a newline the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// One diff, folded, as a `diff` code block (already free of key material).
fn folded(d: &Diff) -> String {
    let body = diff_text(std::slice::from_ref(d), Style { color: false });
    format!(
        "<details><summary>{}</summary>\n\n```diff\n{}```\n\n</details>\n\n",
        d.label, body
    )
}

/// The issuer tree: each certificate a node (CAs as rounded boxes), an edge from each issuer to
/// what it signs, the items the plan changes in the `changed` class.
pub fn mermaid(spec: &Spec, plan: &Plan) -> String {
    let mut md = String::from("```mermaid\nflowchart TD\n");
    for (id, item) in spec.items.iter().enumerate() {
        let ItemKind::Cert(c) = &item.kind else {
            continue;
        };
        let label = label(&item.name);
        let node = if c.ca.is_some() {
            format!("i{}([\"{label} (CA)\"])", id)
        } else {
            format!("i{}[\"{label}\"]", id)
        };
        match c.issuer.filter(|&i| i != id) {
            Some(issuer) => {
                let _ = writeln!(md, "  i{issuer} --> {node}");
            }
            None => {
                let _ = writeln!(md, "  {node}");
            }
        }
    }
    let changed: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.writes() && spec.items[s.item].kind.as_cert().is_some())
        .map(|s| format!("i{}", s.item))
        .collect();
    let _ = writeln!(md, "  {CHANGED_CLASS}");
    if !changed.is_empty() {
        let _ = writeln!(md, "  class {} changed", changed.join(","));
    }
    md.push_str("```\n");
    md
}

/// A name as Mermaid reads it inside a quoted label: a quote would end it.
fn label(name: &str) -> String {
    name.replace('"', "#quot;")
}
