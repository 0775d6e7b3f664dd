//! The plan as a pull-request comment (`--format markdown`): a summary line, a table of the
//! changes with their reasons, each decoded diff folded in `<details>`, and a Mermaid flowchart
//! of the issuer tree with the changed items marked. The comment is held to `BUDGET`: what does
//! not fit is cut at whole rows, lines or blocks, with a line that says what was left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{Diff, Style, counts, diff_text};
use crate::plan::{Action, Plan, Problem, Step};
use crate::spec::{CertSpec, Spec};

/// The Mermaid class of an item the plan changes, and its style.
const CHANGED_CLASS: &str = "classDef changed fill:#fde68a,stroke:#b45309,stroke-width:2px";

/// The most the comment holds, in bytes. GitHub refuses a comment over 65,536 characters; bytes
/// count at least as many as characters, so a byte budget is safe for any text. The 5,536 left
/// over hold the lines that say what was cut (written even when nothing else fits, four at
/// most) and whatever a CI job adds around the body (a header, a link to the run).
pub const BUDGET: usize = 60_000;

/// From this many per-node instances of one name under one issuer on, the diagram draws them as
/// one node (`client@* (150 nodes)`): below it (a small control plane of up to three, or the
/// two nodes of a test chain), each instance is its own node, which is still readable.
const GROUP_FROM: usize = 4;

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

/// The comment: what the run would do (`check`) or did, then the details, within `BUDGET`.
pub fn plan_markdown(spec: &Spec, plan: &Plan, diffs: &[Diff], s: &Summary<'_>) -> String {
    comment(spec, plan, diffs, s, BUDGET)
}

/// The comment within `budget` bytes (the unit tests cut a small tree with a small budget).
fn comment(spec: &Spec, plan: &Plan, diffs: &[Diff], s: &Summary<'_>, budget: usize) -> String {
    // The summary, the problems and the counts are always kept: they are what the comment is for,
    // and they are short (a line each).
    let head = head(plan, s);
    let mut room = budget.saturating_sub(head.len());
    // The rest takes the room in order of what a reviewer needs most: the table (every change
    // and why), the restart plan (what an operator must do), then the diagram before the diffs.
    // The diagram is grouped per node, so its size follows the names in pki.toml, not the
    // cluster's size: a few hundred bytes that show the whole tree at a glance. The diffs are the
    // bulk (about a kilobyte each) and the least needed in a comment: `--diff` prints them all.
    let table = spend(&mut room, |r| table(spec, plan, s, r));
    let restarts = spend(&mut room, |r| restarts(spec, plan, s, r));
    let diagram = spend(&mut room, |r| diagram(spec, plan, r));
    let diffs = spend(&mut room, |r| folded_diffs(diffs, s, r));
    // Printed in the order a reader goes through them, whatever the order of the cuts.
    [head, table, restarts, diffs, diagram].concat()
}

/// The section `make` writes within `room`, its length taken from `room`.
fn spend(room: &mut usize, make: impl FnOnce(usize) -> String) -> String {
    let text = make(*room);
    *room = room.saturating_sub(text.len());
    text
}

/// The summary line, one line per problem, and the counts.
fn head(plan: &Plan, s: &Summary<'_>) -> String {
    let mut md = format!("### kubepki: {}\n\n", summary(s));
    for p in s.problems {
        let _ = writeln!(md, "- :x: {}", inline(&p.to_string()));
    }
    if !s.problems.is_empty() {
        md.push('\n');
    }
    let _ = writeln!(md, "{}", counts(plan).trim_end());
    md.push('\n');
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

/// The first `k` of `n` parts as `render(k)` gives them, with as many as fit in `room` together
/// with `rest`'s line for the others. Parts are whole (a row, a line, a `<details>` block), so a
/// cut never falls inside one. With no part fitting, only `rest`'s line is left: it is written
/// even when it does not fit, since a comment must say what it leaves out (`BUDGET`'s margin
/// holds it).
fn fit(
    n: usize,
    room: usize,
    render: impl Fn(usize) -> String,
    rest: impl Fn(usize) -> String,
) -> String {
    let all = render(n);
    if all.len() <= room {
        return all;
    }
    let cut = |k: usize| match k {
        0 => rest(n),
        k => render(k) + &rest(n - k),
    };
    // `cut(k)` grows with `k` (a part adds at least two bytes; the count of the rest loses at
    // most one digit), so a binary search finds the largest `k < n` that fits: `lo` always fits
    // or is 0, `hi` never fits.
    let (mut lo, mut hi) = (0, n);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if cut(mid).len() <= room {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    cut(lo)
}

/// The line that stands for what a section left out: how many, of what, and how to see them.
fn left_out(count: usize, what: &str, see: &str) -> String {
    format!(
        "… {count} more {what} left out to keep this comment under GitHub's size limit; {see}.\n\n"
    )
}

/// How to see everything a section cut: the same plan as a text report (`diff` with `--diff`).
fn see_all(s: &Summary<'_>, diff: bool) -> String {
    if s.check {
        let flag = if diff { " --diff" } else { "" };
        format!("`{} --check{flag}` shows all", s.command)
    } else {
        // The run is done: running it again plans nothing, so the way to see it all was the
        // text report of this very run.
        let diff = if diff { ", with `--diff`" } else { "" };
        format!("the same run's text report (without `--format markdown`{diff}) shows all")
    }
}

/// Whether the table lists a step: it changes something or has something to say.
fn listed(s: &Step) -> bool {
    s.action != Action::Keep || !s.reasons.is_empty() || s.blocker.is_some()
}

/// The changes, one row each, as many as fit in `room`; nothing when nothing changes.
fn table(spec: &Spec, plan: &Plan, s: &Summary<'_>, room: usize) -> String {
    let rows: Vec<String> = plan
        .steps
        .iter()
        .filter(|step| listed(step))
        .map(|step| row(spec, step))
        .collect();
    let render = |k: usize| match k {
        0 => String::new(),
        k => format!(
            "| item | action | why |\n| --- | --- | --- |\n{}\n",
            rows[..k].concat()
        ),
    };
    fit(rows.len(), room, render, |n| {
        left_out(n, "rows", &see_all(s, false))
    })
}

/// One row of the table: the item, its action, and its reasons.
fn row(spec: &Spec, s: &Step) -> String {
    let mut why: Vec<String> = s.reasons.iter().map(ToString::to_string).collect();
    why.extend(s.blocker.iter().map(ToString::to_string));
    format!(
        "| `{}` | {} | {} |\n",
        spec.items[s.item].name,
        s.action.label(),
        cell(&why.join("; "))
    )
}

/// The restart plan, one line a node, as many nodes as fit in `room`.
fn restarts(spec: &Spec, plan: &Plan, s: &Summary<'_>, room: usize) -> String {
    let nodes = crate::restarts::restarts(spec, plan);
    let render = |k: usize| super::restarts::restart_markdown(&nodes[..k]);
    fit(nodes.len(), room, render, |n| {
        left_out(n, "nodes' restarts", &see_all(s, false))
    })
}

/// Text made safe for one line of a list: a newline would end the item.
fn inline(text: &str) -> String {
    text.replace('\n', " ")
}

/// Text made safe for a table cell: a `|` would end the cell, a newline the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The diffs, each folded, in plan order, as many as fit in `room`.
fn folded_diffs(diffs: &[Diff], s: &Summary<'_>, room: usize) -> String {
    let blocks: Vec<String> = diffs.iter().map(folded).collect();
    fit(
        blocks.len(),
        room,
        |k| blocks[..k].concat(),
        |n| left_out(n, "diffs", &see_all(s, true)),
    )
}

/// One diff, folded, as a `diff` code block (already free of key material).
fn folded(d: &Diff) -> String {
    let body = diff_text(std::slice::from_ref(d), Style { color: false });
    format!(
        "<details><summary>{}</summary>\n\n```diff\n{}```\n\n</details>\n\n",
        d.label, body
    )
}

/// The issuer tree when it fits in `room`, whole (a cut diagram would not parse); otherwise the
/// line that says it was left out.
fn diagram(spec: &Spec, plan: &Plan, room: usize) -> String {
    let tree = mermaid(spec, plan);
    if tree.len() <= room {
        return tree;
    }
    "… the issuer tree left out to keep this comment under GitHub's size limit; each `issuer` in pki.toml declares it.\n\n".to_string()
}

/// One node of the diagram: a certificate, or the per-node instances of one name under one
/// issuer (`GROUP_FROM` or more), named by its first item.
struct Shape<'a> {
    id: usize,
    cert: &'a CertSpec,
    /// The items it stands for, in spec order (one for a single certificate).
    items: Vec<usize>,
}

/// The issuer tree: each certificate a node (CAs as rounded boxes), an edge from each issuer to
/// what it signs, the items the plan changes in the `changed` class. Many per-node instances of
/// one name under one issuer are one node (`Shape`), so the diagram stays readable at any size.
pub fn mermaid(spec: &Spec, plan: &Plan) -> String {
    let shapes = shapes(spec);
    let shape_of: BTreeMap<usize, usize> = shapes
        .iter()
        .flat_map(|sh| sh.items.iter().map(|&i| (i, sh.id)))
        .collect();
    // An issuer that is not drawn (not a certificate) keeps its own id, as it always had.
    let node_of = |item: usize| shape_of.get(&item).copied().unwrap_or(item);
    let changed: BTreeSet<usize> = plan
        .steps
        .iter()
        .filter(|s| s.writes() && spec.items[s.item].kind.as_cert().is_some())
        .map(|s| s.item)
        .collect();
    let mut md = String::from("```mermaid\nflowchart TD\n");
    let mut marked = Vec::new();
    for sh in &shapes {
        let n = sh.items.iter().filter(|i| changed.contains(i)).count();
        if n > 0 {
            marked.push(format!("i{}", sh.id));
        }
        let node = node(spec, sh, n);
        // The issuers of a shape's items, each edge once: one for a single certificate, or for
        // instances under one issuer; several when per-node issuers are drawn one by one.
        let issuers: BTreeSet<usize> = sh
            .items
            .iter()
            .filter_map(|&i| issuer_of(sh.cert, i))
            .map(node_of)
            .collect();
        let mut issuers = issuers.into_iter();
        match issuers.next() {
            Some(first) => {
                let _ = writeln!(md, "  i{first} --> {node}");
            }
            None => {
                let _ = writeln!(md, "  {node}");
            }
        }
        for other in issuers {
            let _ = writeln!(md, "  i{other} --> i{}", sh.id);
        }
    }
    let _ = writeln!(md, "  {CHANGED_CLASS}");
    if !marked.is_empty() {
        let _ = writeln!(md, "  class {} changed", marked.join(","));
    }
    md.push_str("```\n");
    md
}

/// The issuer of item `id` (its certificate `cert`), unless it signs itself.
fn issuer_of(cert: &CertSpec, id: usize) -> Option<usize> {
    cert.issuer.filter(|&i| i != id)
}

/// The diagram's nodes in spec order, each at its first item: the per-node instances
/// (`base@node`) of one name, CA or not, whose issuers share a name, are one shape when there are
/// `GROUP_FROM` or more of them; every other certificate is a shape of its own.
fn shapes(spec: &Spec) -> Vec<Shape<'_>> {
    let certs: Vec<(usize, &CertSpec)> = spec
        .items
        .iter()
        .enumerate()
        .filter_map(|(id, item)| item.kind.as_cert().map(|c| (id, c)))
        .collect();
    // Keyed by the issuer's name in pki.toml, not the issuer item, so that instances under
    // per-node issuers (`node-ca@n1` signs `x@n1`) group as their issuers do.
    let group_of = |id: usize, c: &CertSpec| {
        let item = &spec.items[id];
        let issuer = issuer_of(c, id).map(|i| spec.items[i].base.as_str());
        (item.name != item.base).then_some((item.base.as_str(), issuer, c.ca.is_some()))
    };
    let mut groups: BTreeMap<_, Vec<usize>> = BTreeMap::new();
    for &(id, c) in &certs {
        if let Some(key) = group_of(id, c) {
            groups.entry(key).or_default().push(id);
        }
    }
    let mut shapes = Vec::new();
    for &(id, cert) in &certs {
        let items = match group_of(id, cert).map(|key| &groups[&key]) {
            Some(members) if members.len() >= GROUP_FROM => {
                if members[0] != id {
                    continue; // drawn at its group's first instance
                }
                members.clone()
            }
            _ => vec![id],
        };
        shapes.push(Shape { id, cert, items });
    }
    shapes
}

/// A shape as Mermaid declares it: `i2["server"]`, `i0(["root-ca (CA)"])`, or for a group
/// `i3["client@* (150 nodes, 12 of 150 changed)"]` (`changed` of its instances change).
fn node(spec: &Spec, sh: &Shape<'_>, changed: usize) -> String {
    let item = &spec.items[sh.id];
    let mut text = match sh.items.len() {
        1 => label(&item.name),
        n => {
            let of = match changed {
                0 => String::new(),
                c => format!(", {c} of {n} changed"),
            };
            format!("{}@* ({n} nodes{of})", label(&item.base))
        }
    };
    if sh.cert.ca.is_some() {
        text.push_str(" (CA)");
        format!("i{}([\"{text}\"])", sh.id)
    } else {
        format!("i{}[\"{text}\"]", sh.id)
    }
}

/// A name as Mermaid reads it inside a quoted label: a quote would end it.
fn label(name: &str) -> String {
    name.replace('"', "#quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{made_tree, sources, t0};

    /// A root and a per-node client certificate read by the kubelet, on `nodes` workers.
    fn spec_text(nodes: usize) -> String {
        let mut spec = String::from(
            r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "root"
cn = "root"
cert = "root.crt"
key = "root.key"

[[cert]]
name = "client"
issuer = "root"
for-each-node = "all"
cn = "system:node:{node}"
usage = ["client"]
consumers = ["kubelet"]
cert = "nodes/{node}/client.crt"
key = "nodes/{node}/client.key"
"#,
        );
        for i in 1..=nodes {
            spec.push_str(&format!(
                "\n[[node]]\nname = \"w{i}\"\nips = [\"10.0.0.{i}\"]\nrole = \"worker\"\n"
            ));
        }
        spec
    }

    /// The tree of `spec_text(nodes)` made at `t0`, planned a day later with `--renew all root`: the
    /// spec, the plan and its diffs.
    fn renewed(nodes: usize) -> (Spec, Plan, Vec<Diff>) {
        let sources = sources(&spec_text(nodes), &[]);
        let (spec, obs) = made_tree(&sources, true);
        let disk = crate::disk::decode(obs, &crate::layout::key_companions(&spec));
        let request = crate::plan::Request {
            renew: ["all".to_string(), "root".to_string()].into(),
            out: "out".into(),
            diffs: true,
            ..Default::default()
        };
        let plan = crate::plan::plan(&spec, &sources, &disk, t0() + time::Duration::DAY, &request);
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        let diffs = super::super::planned_diffs(&spec, &plan, &disk);
        (spec, plan, diffs)
    }

    const SUMMARY: Summary<'static> = Summary {
        out: "out",
        command: "cargo xtask pki --renew all root",
        check: true,
        changed: true,
        problems: &[],
    };

    /// The number a `… N more WHAT left out` line of `md` states, if it has one.
    fn left(md: &str, what: &str) -> Option<usize> {
        let end = format!(" more {what} left out");
        md.lines()
            .find(|l| l.starts_with("… ") && l.contains(&end))
            .map(|l| l["… ".len()..l.find(&end).unwrap()].parse().unwrap())
    }

    /// Whether every `<details>` of `md` closes before the next opens.
    fn balanced(md: &str) -> bool {
        let mut open = false;
        for line in md.lines() {
            match line {
                l if l.starts_with("<details>") && !open => open = true,
                "</details>" if open => open = false,
                l if l.starts_with("<details>") || l == "</details>" => return false,
                _ => {}
            }
        }
        !open
    }

    /// How many nodes a restart line names: `w1`, `w1, w2`, or `w1 … w6 (6 nodes, each in turn)`.
    fn nodes_in(line: &str) -> usize {
        let named = line[3..].split("`: ").next().unwrap_or_default();
        match named.split_once(" (") {
            Some((_, count)) => count.split(' ').next().unwrap().parse().unwrap(),
            None => named.split(", ").count(),
        }
    }

    /// At every budget, from nothing to all of it: the head is kept; each section is whole, cut
    /// at whole parts with a line that counts the rest, or only that line; the sections take the
    /// room in order (table, restarts, diagram, diffs); and the comment stays within the budget
    /// but for the lines that say what was cut.
    #[test]
    fn every_budget_cuts_whole_parts_in_order_and_says_what_it_left_out() {
        let (spec, plan, diffs) = renewed(6);
        let full = comment(&spec, &plan, &diffs, &SUMMARY, usize::MAX);
        assert!(!full.lines().any(|l| l.starts_with("… ")), "{full}");
        let head = head(&plan, &SUMMARY);
        let (rows, nodes) = (1 + 6, 6);
        for budget in (0..=full.len() + 1).step_by(37) {
            let md = comment(&spec, &plan, &diffs, &SUMMARY, budget);
            assert!(md.starts_with(&head), "{md}");
            let cut: usize = md
                .lines()
                .filter(|l| l.starts_with("… "))
                .map(|l| l.len() + 2)
                .sum();
            assert!(md.len() <= budget.max(head.len()) + cut, "{budget}:\n{md}");
            assert_eq!(md == full, budget >= full.len(), "{budget}:\n{md}");
            assert!(balanced(&md), "{budget}:\n{md}");

            let shown_rows = md.lines().filter(|l| l.starts_with("| `")).count();
            assert!(
                md.lines()
                    .filter(|l| l.starts_with("| "))
                    .all(|l| l.ends_with(" |"))
            );
            assert_eq!(
                md.contains("| item | action | why |\n| --- | --- | --- |\n"),
                shown_rows > 0
            );
            assert_eq!(
                shown_rows + left(&md, "rows").unwrap_or(0),
                rows,
                "{budget}:\n{md}"
            );
            let shown_nodes: usize = md
                .lines()
                .filter(|l| l.starts_with("- `w"))
                .map(nodes_in)
                .sum();
            let restarts = shown_nodes + left(&md, "nodes' restarts").unwrap_or(0);
            assert_eq!(restarts, nodes, "{budget}:\n{md}");
            let shown_diffs = md.matches("<details>").count();
            let all_diffs = shown_diffs + left(&md, "diffs").unwrap_or(0);
            assert_eq!(all_diffs, diffs.len(), "{budget}:\n{md}");
            let tree = md.contains("```mermaid\nflowchart TD\n");
            assert_ne!(
                tree,
                md.contains("… the issuer tree left out"),
                "{budget}:\n{md}"
            );
            if tree {
                assert!(md.ends_with("```\n"), "{budget}:\n{md}");
            }

            // What comes later in the order is shown only when all before it is whole.
            let whole_table = shown_rows == rows;
            let whole_restarts = whole_table && shown_nodes == nodes;
            assert!(shown_nodes == 0 || whole_table, "{budget}:\n{md}");
            assert!(!tree || whole_restarts, "{budget}:\n{md}");
            assert!(
                shown_diffs == 0 || (whole_restarts && tree),
                "{budget}:\n{md}"
            );
        }
    }

    /// A cut says how to see it all: the same plan as a `--check` text report, with `--diff`
    /// for the diffs; after an applied run, that run's text report.
    #[test]
    fn the_cut_lines_name_the_command_that_shows_all() {
        let (spec, plan, diffs) = renewed(6);
        let md = comment(&spec, &plan, &diffs, &SUMMARY, 0);
        assert!(md.contains("more rows left out to keep this comment under GitHub's size limit; `cargo xtask pki --renew all root --check` shows all.\n"), "{md}");
        assert!(md.contains("more diffs left out to keep this comment under GitHub's size limit; `cargo xtask pki --renew all root --check --diff` shows all.\n"), "{md}");
        let applied = Summary {
            check: false,
            ..SUMMARY
        };
        let md = comment(&spec, &plan, &diffs, &applied, 0);
        assert!(
            md.contains("; the same run's text report (without `--format markdown`) shows all.\n"),
            "{md}"
        );
    }

    /// From `GROUP_FROM` instances on, one node stands for them all and counts the changed ones;
    /// below it, each instance is its own node, as before.
    #[test]
    fn per_node_instances_group_from_group_from_on() {
        let (spec, plan, _) = renewed(GROUP_FROM);
        let tree = mermaid(&spec, &plan);
        assert_eq!(
            tree,
            format!(
                "```mermaid\nflowchart TD\n  i0([\"root (CA)\"])\n  i0 --> i1[\"client@* ({GROUP_FROM} nodes, {GROUP_FROM} of {GROUP_FROM} changed)\"]\n  {CHANGED_CLASS}\n  class i0,i1 changed\n```\n"
            )
        );
        let (spec, plan, _) = renewed(GROUP_FROM - 1);
        let tree = mermaid(&spec, &plan);
        for i in 1..GROUP_FROM {
            assert!(
                tree.contains(&format!("  i0 --> i{i}[\"client@w{i}\"]\n")),
                "{tree}"
            );
        }
        assert!(!tree.contains("@*"), "{tree}");
    }

    /// A group with no changed instance is not marked, nor does its label count any.
    #[test]
    fn an_unchanged_group_is_not_marked() {
        let sources = sources(&spec_text(5), &[]);
        let (spec, obs) = made_tree(&sources, true);
        let disk = crate::disk::decode(obs, &crate::layout::key_companions(&spec));
        let plan = crate::plan::plan(&spec, &sources, &disk, t0(), &Default::default());
        let tree = mermaid(&spec, &plan);
        assert!(
            tree.contains("  i0 --> i1[\"client@* (5 nodes)\"]\n"),
            "{tree}"
        );
        assert!(!tree.contains("class "), "{tree}");
    }
}
