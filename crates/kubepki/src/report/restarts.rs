//! The restart plan's words (`restarts::restarts`): in the text report, and per node after an
//! apply.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::plan::{Action, Plan};
use crate::restarts::{NodeRestarts, Pick, Pickup};
use crate::spec::{ItemKind, Spec};

/// How many item names a line shows for one component before it counts the rest.
const NAMES_SHOWN: usize = 2;

/// The plan's restart section: one line per node, in the order to go through them; nothing when
/// no declared consumer reads a changed file.
pub fn restart_text(plan: &[NodeRestarts], applied: bool) -> String {
    if plan.is_empty() {
        return String::new();
    }
    let when = if applied { "now" } else { "after this run" };
    let mut out = format!(
        "restarts {when}, one node at a time (control-plane nodes first, each healthy before the next):\n"
    );
    for group in groups(plan) {
        let _ = writeln!(out, "  {}: {}", nodes_named(&group.nodes), group.line);
    }
    out
}

/// Consecutive nodes that do the same, one line for them all: a node's own items are written
/// `name@NODE`, so 300 workers that each restart their kubelet are one line. A control-plane node
/// always has a line of its own (they go one at a time, each healthy before the next).
struct Group<'p> {
    nodes: Vec<&'p str>,
    control_plane: bool,
    line: String,
}

fn groups(plan: &[NodeRestarts]) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    for n in plan {
        let line = node_line(n).replace(&format!("@{}", n.node), "@NODE");
        match out.last_mut() {
            Some(g) if !n.control_plane && !g.control_plane && g.line == line => {
                g.nodes.push(&n.node);
            }
            _ => out.push(Group {
                nodes: vec![&n.node],
                control_plane: n.control_plane,
                line,
            }),
        }
    }
    // A group of one says its node's own name in its items, as before.
    for g in out.iter_mut().filter(|g| g.nodes.len() == 1) {
        g.line = g.line.replace("@NODE", &format!("@{}", g.nodes[0]));
    }
    out
}

/// Nodes as a line names them: all of a few, the first and last of many, with the count.
fn nodes_named(nodes: &[&str]) -> String {
    match nodes {
        [one] => (*one).to_string(),
        [_, _] | [_, _, _] => nodes.join(", "),
        [first, .., last] => format!("{first} … {last} ({} nodes, each in turn)", nodes.len()),
        [] => String::new(),
    }
}

/// The restart plan as a Markdown list, for the pull-request comment.
pub fn restart_markdown(plan: &[NodeRestarts]) -> String {
    if plan.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "**Restarts**, one node at a time (control-plane nodes first, each healthy before the next):\n\n",
    );
    for group in groups(plan) {
        let _ = writeln!(out, "- `{}`: {}", nodes_named(&group.nodes), group.line);
    }
    out.push('\n');
    out
}

/// `restart etcd (etcd-server@cp-1), kube-apiserver (...); kubelet reloads by itself (...)`.
fn node_line(n: &NodeRestarts) -> String {
    let named = |p: &&Pick| format!("{} ({})", p.component.name(), names(&p.items));
    let restart: Vec<String> = n
        .picks
        .iter()
        .filter(|p| p.pickup == Pickup::Restart)
        .map(|p| named(&p))
        .collect();
    let reloads: Vec<String> = n
        .picks
        .iter()
        .filter(|p| p.pickup == Pickup::Reloads)
        .map(|p| named(&p))
        .collect();
    let mut parts = Vec::new();
    if !restart.is_empty() {
        parts.push(format!("restart {}", restart.join(", ")));
    }
    if !reloads.is_empty() {
        let verb = if reloads.len() == 1 {
            "reloads by itself"
        } else {
            "reload by themselves"
        };
        parts.push(format!("{} {verb}", reloads.join(", ")));
    }
    parts.join("; ")
}

/// The first item names, then how many more.
fn names(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(NAMES_SHOWN).map(String::as_str).collect();
    match items.len().saturating_sub(NAMES_SHOWN) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// After an apply: which nodes get new files, and the command that stages them.
pub fn deploy_text(plan: &[NodeRestarts]) -> String {
    if plan.is_empty() {
        return String::new();
    }
    let nodes: Vec<&str> = plan.iter().map(|n| n.node.as_str()).collect();
    match nodes.as_slice() {
        [one] => format!(
            "deploy to {one}: `cargo xtask deploy --node {one} --to DIR`, then the restarts above\n"
        ),
        _ => format!(
            "deploy to {}: `cargo xtask deploy --node NODE --to DIR` for each, then the restarts above\n",
            crate::config::quote_list(&nodes).replace('`', "")
        ),
    }
}

/// What a restart cannot make seamless, said under the restart plan: a CA with a new key (what it
/// signs is refused by every component still trusting the old certificate, so rolling restarts
/// fail between the first node and the last) and a service-account key pair with a new key (every
/// token signed with the old one is refused).
pub fn new_key_warnings(spec: &Spec, plan: &Plan) -> String {
    let mut out = String::new();
    for s in plan.steps.iter().filter(|s| s.action == Action::Rekey) {
        let item = &spec.items[s.item];
        match &item.kind {
            ItemKind::Cert(c) if c.ca.is_some() => {
                let _ = writeln!(
                    out,
                    "warning: {} gets a new key: what it signs is refused by every component still trusting its old certificate, until all have the new files (old and new CA do not overlap)",
                    item.name
                );
            }
            ItemKind::KeyPair(_) => {
                let _ = writeln!(
                    out,
                    "warning: {} gets a new key: once kube-apiserver has it, every service-account token signed with the old key is refused, until the pods get new ones",
                    item.name
                );
            }
            _ => {}
        }
    }
    out
}

/// The restart plan in the plan's JSON document.
pub fn restart_json(plan: &[NodeRestarts]) -> Value {
    let nodes: Vec<Value> = plan
        .iter()
        .map(|n| {
            let picks: Vec<Value> = n
                .picks
                .iter()
                .map(|p| json!({"component": p.component.name(), "pickup": p.pickup.name(), "items": p.items}))
                .collect();
            json!({"node": n.node, "control_plane": n.control_plane, "components": picks})
        })
        .collect();
    Value::Array(nodes)
}
