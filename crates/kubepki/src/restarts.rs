//! The restart plan (pure): for each node, which components must restart or reload because a
//! file they read (`consumers` in pki.toml) is written by the plan, in the order to do it.

use crate::plan::{Action, Plan};
use std::collections::{HashMap, HashSet};

use crate::spec::{Component, Item, ItemId, ItemKind, Node, Spec, Usage};

/// How a component picks up a changed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pickup {
    /// It reads the file at start only: restart it.
    Restart,
    /// It watches the file and reloads it by itself (a serving certificate of kube-apiserver or
    /// of the kubelet, since Kubernetes 1.31 for the kubelet's).
    Reloads,
}

impl Pickup {
    /// The word the JSON uses.
    pub fn name(self) -> &'static str {
        match self {
            Pickup::Restart => "restart",
            Pickup::Reloads => "reloads",
        }
    }
}

/// One component on one node, and the items whose change it must pick up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub component: Component,
    pub pickup: Pickup,
    pub items: Vec<String>,
}

/// One node's part of the plan, its components in `Component::ALL`'s order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRestarts {
    pub node: String,
    pub control_plane: bool,
    pub picks: Vec<Pick>,
}

/// The restart plan of `plan`: control-plane nodes first, then the others, each in declaration
/// order, and only the nodes with something to do.
pub fn restarts(spec: &Spec, plan: &Plan) -> Vec<NodeRestarts> {
    let changed = Changed::of(spec, plan);
    let mut nodes = nodes(spec);
    nodes.sort_by_key(|n| !is_control_plane(n));
    nodes
        .into_iter()
        .map(|n| NodeRestarts {
            node: n.name.clone(),
            control_plane: is_control_plane(n),
            picks: picks(n, &changed.on(&n.name)),
        })
        .filter(|n| !n.picks.is_empty())
        .collect()
}

/// The items whose content the plan rewrites and that something reads, split into the shared
/// ones and each node's own, so that a node's part looks only at what can reach it (a cluster's
/// plan is then linear in nodes plus items, not their product).
struct Changed<'s> {
    shared: Vec<(ItemId, &'s Item)>,
    per_node: HashMap<&'s str, Vec<(ItemId, &'s Item)>>,
}

impl<'s> Changed<'s> {
    fn of(spec: &'s Spec, plan: &Plan) -> Changed<'s> {
        let mut changed = Changed {
            shared: Vec::new(),
            per_node: HashMap::new(),
        };
        for s in plan.steps.iter().filter(|s| rewrites_content(s.action)) {
            let item = &spec.items[s.item];
            if item.consumers.is_empty() {
                continue;
            }
            match item_node(item) {
                Some(node) => changed
                    .per_node
                    .entry(node)
                    .or_default()
                    .push((s.item, item)),
                None => changed.shared.push((s.item, item)),
            }
        }
        changed
    }

    /// What can reach `node`, in spec order.
    fn on(&self, node: &str) -> Vec<&'s Item> {
        let mut items: Vec<(ItemId, &Item)> = self.shared.clone();
        items.extend(self.per_node.get(node).into_iter().flatten().copied());
        items.sort_by_key(|(id, _)| *id);
        items.into_iter().map(|(_, i)| i).collect()
    }
}

/// The nodes the spec's per-node items name, each once, in the order they first appear.
fn nodes(spec: &Spec) -> Vec<&Node> {
    let mut out: Vec<&Node> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for item in &spec.items {
        let node = match &item.kind {
            ItemKind::Cert(c) => c.node.as_ref(),
            ItemKind::Render(r) => r.node.as_ref(),
            ItemKind::KeyPair(_) => None,
        };
        if let Some(n) = node.filter(|n| seen.insert(n.name.as_str())) {
            out.push(n);
        }
    }
    out
}

/// Whether the step gives the item's files new content a component would read (a changed mode
/// or a re-encrypted key reads the same once deployed).
fn rewrites_content(a: Action) -> bool {
    matches!(
        a,
        Action::Create | Action::Rekey | Action::Resign | Action::Render
    )
}

fn is_control_plane(n: &Node) -> bool {
    n.role == "control-plane"
}

/// What each component of `node` must do about the changed items it reads there.
fn picks(node: &Node, changed: &[&Item]) -> Vec<Pick> {
    let mut out = Vec::new();
    for component in Component::ALL {
        let read: Vec<&Item> = changed
            .iter()
            .copied()
            .filter(|i| i.consumers.contains(&component) && reaches(i, component, node))
            .collect();
        if read.is_empty() {
            continue;
        }
        let pickup = if read.iter().all(|i| reloads(component, i)) {
            Pickup::Reloads
        } else {
            Pickup::Restart
        };
        let items = read.iter().map(|i| i.name.clone()).collect();
        out.push(Pick {
            component,
            pickup,
            items,
        });
    }
    out
}

/// Whether `component` on `node` reads the item: a per-node item on its own node only, a shared
/// one wherever the component runs.
fn reaches(item: &Item, component: Component, node: &Node) -> bool {
    if component.control_plane_only() && !is_control_plane(node) {
        return false;
    }
    item_node(item).is_none_or(|n| n == node.name)
}

fn item_node(item: &Item) -> Option<&str> {
    match &item.kind {
        ItemKind::Cert(c) => c.node.as_ref().map(|n| n.name.as_str()),
        ItemKind::Render(r) => r.node.as_ref().map(|n| n.name.as_str()),
        ItemKind::KeyPair(_) => None,
    }
}

/// A serving certificate (a leaf for servers only) that kube-apiserver or the kubelet watches:
/// both reload their serving pair from its files. Anything else (a CA, a client certificate, a
/// kubeconfig, a key pair) is read at start.
fn reloads(component: Component, item: &Item) -> bool {
    let serving = item
        .kind
        .as_cert()
        .is_some_and(|c| c.ca.is_none() && c.usages == [Usage::Server]);
    serving && matches!(component, Component::KubeApiserver | Component::Kubelet)
}
