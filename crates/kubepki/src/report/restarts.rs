//! The restart plan's words (`restarts::restarts`): in the text report, and per node after an
//! apply.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::restarts::{NodeRestarts, Pick, Pickup};

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
    for n in plan {
        let _ = writeln!(out, "  {}: {}", n.node, node_line(n));
    }
    out
}

/// The restart plan as a Markdown list, for the pull-request comment.
pub fn restart_markdown(plan: &[NodeRestarts]) -> String {
    if plan.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "**Restarts**, one node at a time (control-plane nodes first, each healthy before the next):\n\n",
    );
    for n in plan {
        let _ = writeln!(out, "- `{}`: {}", n.node, node_line(n));
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
    format!(
        "deploy to {}: `cargo xtask deploy --node NODE --to DIR` for each, then the restarts above\n",
        nodes.join(", ")
    )
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
