//! The pki.toml an import writes: every item as the certificates have it, with comments where
//! the import had to choose.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::tree::{Conf, Found, Node, Tree};
use crate::x509::CertFacts;

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

/// A validity in pki.toml's syntax, as the planner reads it back: whole hours when the lifetime,
/// with or without kubeadm's 5-minute backdate, is whole hours; else exact seconds.
pub fn duration(d: time::Duration) -> String {
    let secs = d.whole_seconds();
    for s in [secs, secs - 300] {
        if s > 0 && s % 3600 == 0 {
            return format!("{}h", s / 3600);
        }
    }
    format!("{secs}s")
}

fn validity(f: &CertFacts) -> String {
    duration(f.not_after - f.not_before)
}

fn alg(f: &CertFacts) -> Option<&'static str> {
    f.key_alg.map(|a| a.name())
}

/// The most common value, ties to the first seen.
fn most_common<'a>(values: impl Iterator<Item = String> + 'a) -> Option<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for v in values {
        match counts.iter_mut().find(|c| c.0 == v) {
            Some(c) => c.1 += 1,
            None => counts.push((v, 1)),
        }
    }
    let max = counts.iter().map(|c| c.1).max()?;
    counts.into_iter().find(|c| c.1 == max).map(|c| c.0)
}

/// The defaults the items share: `[defaults]` keys and values.
struct Defaults {
    algorithm: Option<String>,
    validity: Option<String>,
    ca_validity: Option<String>,
}

fn defaults(tree: &Tree) -> Defaults {
    let cas = || tree.certs.iter().filter(|c| c.issuer.is_none());
    let leaves = || tree.certs.iter().filter(|c| c.issuer.is_some());
    Defaults {
        algorithm: most_common(
            tree.certs
                .iter()
                .filter_map(|c| alg(&c.facts))
                .map(String::from),
        ),
        validity: most_common(leaves().map(|c| validity(&c.facts))),
        ca_validity: most_common(cas().map(|c| validity(&c.facts))),
    }
}

/// The whole pki.toml for `tree`.
pub fn write(tree: &Tree, source: &str) -> String {
    let d = defaults(tree);
    let mut s = format!(
        "# Imported by `cargo xtask pki import --from-kubeadm {source}`: every item as the certificates\n\
         # in that tree have it (subjects, SANs, usages, key algorithms, issuers, validity periods). The\n\
         # node's own certificates (those that name it) are per-node entries under out/nodes/<node>/.\n\
         # `cargo xtask pki --check` on the imported out/ changes nothing; edit this file from here on.\n\n[defaults]\n"
    );
    for (key, v) in [
        ("algorithm", &d.algorithm),
        ("validity", &d.validity),
        ("ca-validity", &d.ca_validity),
    ] {
        if let Some(v) = v {
            let _ = writeln!(s, "{key} = {}", q(v));
        }
    }
    s.push_str(&vars(&tree.confs));
    s.push_str(&node_table(&tree.node));
    for c in &tree.certs {
        s.push_str(&cert_table(c, &tree.node, &d));
    }
    if tree.sa.is_some() {
        s.push_str("\n# The service-account signing key pair.\n[[keypair]]\nname = \"sa\"\nprivate = \"pki/sa.key\"\npublic = \"pki/sa.pub\"\n");
    }
    let server = main_server(&tree.confs);
    for conf in &tree.confs {
        s.push_str(&render_table(conf, server.as_deref(), &tree.node));
    }
    s
}

/// A `[[node]]` table: a control-plane node with the address its etcd certificates name.
pub fn node_table(node: &Node) -> String {
    let ips: Vec<String> = node.ip.iter().map(|i| i.to_string()).collect();
    let guess = if ips.is_empty() {
        "# No address found in etcd's certificates: add the node's.\n"
    } else {
        ""
    };
    format!(
        "\n{guess}[[node]]\nname = {}\nips = {}\nrole = \"control-plane\"\n",
        q(&node.name),
        list(&ips)
    )
}

fn main_server(confs: &[Conf]) -> Option<String> {
    most_common(confs.iter().map(|c| c.config.server.clone()))
}

/// `[vars]`: the cluster name and the server URL most kubeconfigs use.
fn vars(confs: &[Conf]) -> String {
    let (Some(server), Some(first)) = (main_server(confs), confs.first()) else {
        return String::new();
    };
    format!(
        "\n# What the kubeconfig template needs: the cluster name and the URL most kubeconfigs hold.\n[vars]\ncluster = {}\nserver = {}\n",
        q(&first.config.cluster),
        q(&server)
    )
}

/// A value of a per-node certificate with the node's name and address made placeholders.
fn node_value(node: &Node, v: &str) -> String {
    if v == node.name {
        "{node}".into()
    } else if v.strip_prefix("system:node:") == Some(node.name.as_str()) {
        "system:node:{node}".into()
    } else if node.ip.is_some_and(|ip| ip.to_string() == v) {
        "{node.ip}".into()
    } else {
        v.to_string()
    }
}

/// A `[[ca]]` or `[[cert]]` table with the certificate's fields.
fn cert_table(c: &Found, node: &Node, d: &Defaults) -> String {
    let f = &c.facts;
    let value = |v: &str| {
        if c.per_node {
            node_value(node, v)
        } else {
            v.to_string()
        }
    };
    let mut s = format!("\n# From {}.\n", c.source);
    if crate::x509::encode_name(&f.subject) != f.subject_raw {
        s.push_str("# Guessed: its subject holds more than pki.toml declares (CN, O, OU) or in another\n# order; checks pass, but a re-signed certificate keeps only the declared parts.\n");
    }
    s.push_str(if c.issuer.is_some() {
        "[[cert]]\n"
    } else {
        "[[ca]]\n"
    });
    let _ = writeln!(s, "name = {}", q(&c.name));
    if let Some(i) = &c.issuer {
        let _ = writeln!(s, "issuer = {}", q(i));
    }
    if c.per_node {
        s.push_str("for-each-node = \"control-plane\"\n");
    }
    if let Some(p) = f.path_len {
        let _ = writeln!(s, "path-len = {p}");
    }
    let _ = writeln!(
        s,
        "cn = {}",
        q(&value(f.subject.cn.as_deref().unwrap_or("")))
    );
    let fields = [
        ("o", f.subject.o.clone()),
        ("ou", f.subject.ou.clone()),
        ("dns", f.sans.dns.clone()),
    ];
    for (key, vals) in fields {
        if !vals.is_empty() {
            let vals: Vec<String> = vals.iter().map(|v| value(v)).collect();
            let _ = writeln!(s, "{key} = {}", list(&vals));
        }
    }
    let ips: Vec<String> = f.sans.ips.iter().map(|i| value(&i.to_string())).collect();
    if !ips.is_empty() {
        let _ = writeln!(s, "ips = {}", list(&ips));
    }
    if c.issuer.is_some() {
        let usages: Vec<String> = f.usages.iter().map(|u| u.name().to_string()).collect();
        let _ = writeln!(s, "usage = {}", list(&usages));
    }
    s.push_str(&own_settings(c, d));
    let _ = writeln!(s, "cert = {}\nkey = {}", q(&c.cert_path), q(&c.key_path));
    s
}

/// `algorithm` and `validity` where they differ from `[defaults]`.
fn own_settings(c: &Found, d: &Defaults) -> String {
    let mut s = String::new();
    let a = alg(&c.facts).map(String::from);
    if a.is_some() && a != d.algorithm {
        let _ = writeln!(s, "algorithm = {}", q(a.as_deref().unwrap_or("")));
    }
    let v = Some(validity(&c.facts));
    let default = if c.issuer.is_some() {
        &d.validity
    } else {
        &d.ca_validity
    };
    if v.as_deref().is_some_and(|v| v.ends_with('s')) {
        s.push_str("# Guessed: this certificate's lifetime as found (not whole hours); re-signing keeps it.\n");
    }
    if &v != default {
        let _ = writeln!(s, "validity = {}", q(v.as_deref().unwrap_or("")));
    }
    s
}

/// A `[[render]]` of the kubeconfig template, with a comment where the source names differ from
/// the template's (kubeadm's) names.
fn render_table(conf: &Conf, server: Option<&str>, node: &Node) -> String {
    let k = &conf.config;
    let mut s = format!(
        "\n# {} with its embedded client certificate `{}`.\n",
        conf.file, conf.client
    );
    let cn_user = k.user.clone();
    if k.context != format!("{cn_user}@{}", k.cluster) {
        s.push_str("# Guessed: the source's context name is not `<user>@<cluster>`; the render uses kubeadm's.\n");
    }
    let path = if conf.per_node {
        format!("nodes/{{node}}/{}", conf.file)
    } else {
        conf.file.clone()
    };
    let mut vars: BTreeMap<&str, String> = BTreeMap::new();
    if Some(k.server.as_str()) != server {
        vars.insert("server", k.server.clone());
    }
    let local = node
        .ip
        .is_some_and(|ip| k.server.contains(&format!("//{ip}:")));
    if local && !conf.per_node {
        let _ = writeln!(
            s,
            "# Guessed: this is {}'s local API endpoint; another control-plane node's copy needs its own.",
            node.name
        );
    }
    let _ = writeln!(
        s,
        "[[render]]\nname = {}\ntemplate = \"kubeconfig.hbs\"\npath = {}",
        q(&conf.file),
        q(&path)
    );
    if conf.per_node {
        s.push_str("for-each-node = \"control-plane\"\n");
    }
    let _ = writeln!(
        s,
        "bind = {{ ca = {}, client = {} }}\nsecrets = [\"client\"]",
        q(&conf.ca),
        q(&conf.client)
    );
    if !vars.is_empty() {
        let v: Vec<String> = vars
            .iter()
            .map(|(k, v)| format!("{k} = {}", q(v)))
            .collect();
        let _ = writeln!(s, "vars = {{ {} }}", v.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validity as pki.toml spells it, from a certificate's lifetime: (seconds, expected).
    #[test]
    fn durations_read_back_as_the_planner_accepts_them() {
        let cases = [
            (8760 * 3600, "8760h"),          // openssl -days 365: no backdate
            (8760 * 3600 + 300, "8760h"),    // kubeadm v1.31+: 5-minute backdate
            (87600 * 3600, "87600h"),        // a 10-year CA
            (8760 * 3600 + 17, "31536017s"), // older kubeadm: notBefore is the CA's
            (59, "59s"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration(time::Duration::seconds(secs)), want, "{secs}s");
            let back = crate::spec::parse_duration(want).expect("pki.toml reads it");
            let have = time::Duration::seconds(secs);
            assert!(
                have >= back && have <= back + crate::spec::BACKDATE,
                "{secs}s: {want}"
            );
        }
    }

    #[test]
    fn a_node_s_values_become_placeholders() {
        let node = Node {
            name: "cp-1".into(),
            ip: Some("10.0.0.11".parse().unwrap()),
        };
        let cases = [
            ("cp-1", "{node}"),
            ("system:node:cp-1", "system:node:{node}"),
            ("10.0.0.11", "{node.ip}"),
            ("cp-10", "cp-10"),
            ("kubernetes", "kubernetes"),
        ];
        for (v, want) in cases {
            assert_eq!(node_value(&node, v), want, "{v}");
        }
    }
}
