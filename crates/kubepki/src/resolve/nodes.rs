//! `[[node]]` tables and per-node entries: which nodes an entry expands over, the name of each
//! instance (`name@node`), and the `{node}`, `{node.ip}` and `{node.ips}` placeholders.

use std::net::IpAddr;

use toml::Spanned;

use crate::config::{RawNode, quote_list};
use crate::resolve::{Cx, is_dns_name};
use crate::spec::Node;

/// The roles a node may have; `for-each-node` also takes `all`.
const ROLES: [&str; 2] = ["control-plane", "worker"];

impl Cx {
    /// The declared nodes, every one checked; an invalid node is kept (an invalid address stood
    /// in for) so that what expands over it is still checked.
    pub(super) fn nodes(&mut self, raw: &[RawNode]) -> Vec<Node> {
        let mut out: Vec<Node> = Vec::new();
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for n in raw {
            let name = n.name.get_ref();
            if !is_dns_name(name) || name.contains('*') {
                self.err(
                    format!("invalid node name `{name}`"),
                    Some(n.name.span()),
                    Some("node names are DNS names: lowercase letters, digits, `-` and `.`".into()),
                );
            }
            if !seen.insert(name.as_str()) {
                self.err(
                    format!("duplicate node `{name}`"),
                    Some(n.name.span()),
                    None,
                );
            }
            let role = n.role.get_ref();
            if !ROLES.contains(&role.as_str()) {
                self.err(
                    format!("unknown node role `{role}`"),
                    Some(n.role.span()),
                    Some(format!("expected one of {}", quote_list(&ROLES))),
                );
            }
            // An invalid address is reported here, and stands in as 0.0.0.0 so that what uses
            // `{node.ip}` does not report the same mistake again (the run fails anyway).
            let ips = n
                .ips
                .iter()
                .map(|ip| {
                    self.ip(ip.get_ref(), ip.span())
                        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
                })
                .collect();
            out.push(Node {
                name: name.clone(),
                ips,
                role: role.clone(),
            });
        }
        out
    }

    /// Replaces `{node}` and `{node.ip}` for per-node entries; anything else in braces is an error
    /// (`{node.ips}` too: `sans` takes it, as a whole entry of `ips`). `field` names the key of `s`.
    /// `None` when a placeholder was reported.
    pub(super) fn interp(
        &mut self,
        s: &Spanned<String>,
        node: Option<&Node>,
        field: &str,
    ) -> Option<String> {
        let mut problems = Vec::new();
        let out = substitute(s.get_ref(), node, field, |_| true, &mut problems);
        let ok = problems.is_empty();
        for (message, help) in problems {
            self.err(message, Some(s.span()), Some(help));
        }
        ok.then_some(out)
    }

    /// The nodes an entry expands over: `[None]` for a plain entry, one `Some` per node for a
    /// per-node entry (`for-each-node` names a role, `nodes` the nodes).
    pub(super) fn expansion<'n>(
        &mut self,
        role: Option<&Spanned<String>>,
        names: Option<&Vec<Spanned<String>>>,
        nodes: &'n [Node],
    ) -> Vec<Option<&'n Node>> {
        match (role, names) {
            (None, None) => vec![None],
            (Some(r), Some(_)) => {
                self.err(
                    "`for-each-node` and `nodes` cannot both be set".into(),
                    Some(r.span()),
                    Some(
                        "use `for-each-node` for a role or `nodes` for a list of node names".into(),
                    ),
                );
                vec![]
            }
            (Some(role), None) => self.nodes_with_role(role, nodes),
            (None, Some(names)) => self.listed_nodes(names, nodes),
        }
    }

    /// `for-each-node = ROLE`: the nodes of that role (`all`: every node), in declared order.
    fn nodes_with_role<'n>(
        &mut self,
        r: &Spanned<String>,
        nodes: &'n [Node],
    ) -> Vec<Option<&'n Node>> {
        let role = r.get_ref().as_str();
        if role != "all" && !ROLES.contains(&role) {
            self.err(
                format!("unknown node role `{role}`"),
                Some(r.span()),
                Some("expected `all`, `control-plane` or `worker`".into()),
            );
            return vec![];
        }
        nodes
            .iter()
            .filter(|n| role == "all" || n.role == role)
            .map(Some)
            .collect()
    }

    /// `nodes = [...]`: the nodes named, in the list's order; a name that is not declared is
    /// reported (unless its `[[node]]` did not parse, which is reported already).
    fn listed_nodes<'n>(
        &mut self,
        names: &[Spanned<String>],
        nodes: &'n [Node],
    ) -> Vec<Option<&'n Node>> {
        let mut out = Vec::new();
        for name in names {
            match nodes.iter().find(|n| n.name == *name.get_ref()) {
                Some(n) => out.push(Some(n)),
                None if self.dropped.contains(name.get_ref()) => {}
                None => {
                    let declared: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                    self.err(
                        format!("node `{}` is not declared", name.get_ref()),
                        Some(name.span()),
                        Some(if declared.is_empty() {
                            "declare it in a [[node]] table".to_string()
                        } else {
                            format!("declared nodes: {}", quote_list(&declared))
                        }),
                    );
                }
            }
        }
        out
    }
}

/// The name of an entry's instance: its own for a plain entry, `name@node` for a per-node one.
pub(super) fn instance_name(base: &str, node: Option<&Node>) -> String {
    match node {
        Some(n) => format!("{base}@{}", n.name),
        None => base.to_string(),
    }
}

/// The placeholders of `text` replaced; those for which `is_placeholder` (given the text between
/// the braces) is false are kept as they are. What cannot be replaced goes to `problems`, as
/// (message, help); `field` names where `text` comes from.
fn substitute(
    text: &str,
    node: Option<&Node>,
    field: &str,
    is_placeholder: impl Fn(&str) -> bool,
    problems: &mut Vec<(String, String)>,
) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let var = &rest[start + 1..start + end];
        if !is_placeholder(var) {
            out.push_str(&rest[start..=start + end]);
        } else {
            match placeholder(var, node, field) {
                Ok(v) => out.push_str(&v),
                Err(p) => problems.push(p),
            }
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The value of the placeholder `{var}` in `field` of an entry (of `node`'s instance, for a
/// per-node entry), or what is wrong with it: (message, help).
fn placeholder(var: &str, node: Option<&Node>, field: &str) -> Result<String, (String, String)> {
    match (var, node) {
        ("node", Some(n)) => Ok(n.name.clone()),
        ("node.ip", Some(n)) => match n.ips.first() {
            Some(ip) => Ok(ip.to_string()),
            None => Err((
                format!("`{{node.ip}}` used, but node `{}` has no `ips`", n.name),
                "give the node its address: `ips = [\"10.0.0.11\"]`".into(),
            )),
        },
        ("node.ips", _) => Err((
            format!("`{{node.ips}}` cannot be used in `{field}`"),
            if field == "vars" {
                "`{node.ips}` is valid only as a whole entry of `ips`; a per-node render's template reads all the node's addresses as `node.ips`".into()
            } else if field == "ips" {
                "`{node.ips}` stands for all the node's addresses: write it as an entry of its own, `ips = [\"{node.ips}\"]`".into()
            } else {
                "`{node.ips}` is valid only as a whole entry of `ips`; use `{node.ip}` for the node's first address".into()
            },
        )),
        ("node" | "node.ip", None) => Err(outside_per_node(var)),
        _ => Err((
            format!("unknown placeholder `{{{var}}}` in `{field}`"),
            "placeholders are `{node}`, `{node.ip}` and, as a whole `ips` entry, `{node.ips}`"
                .into(),
        )),
    }
}

/// What is wrong with `{var}` (a `{node...}` placeholder) in an entry that is not per-node.
pub(super) fn outside_per_node(var: &str) -> (String, String) {
    (
        format!("`{{{var}}}` used outside a per-node entry"),
        "add `for-each-node = \"worker\"` (or `control-plane`, `all`, or `nodes = [...]`) to this entry".into(),
    )
}

/// `substitute` over every string of a render's `vars`, where braces are free text except for
/// `{node...}` placeholders.
pub(super) fn interp_json(
    v: &mut serde_json::Value,
    node: Option<&Node>,
    problems: &mut Vec<(String, String)>,
) {
    match v {
        serde_json::Value::String(s) if s.contains('{') => {
            *s = substitute(s, node, "vars", |var| var.starts_with("node"), problems);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| interp_json(x, node, problems)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| interp_json(x, node, problems)),
        _ => {}
    }
}
