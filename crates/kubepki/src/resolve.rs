//! Stage 2, RESOLVE: `config::Raw` -> `spec::Spec`. Applies defaults (they live here and nowhere
//! else), expands per-node entries, resolves names to ids, orders issuers before what they sign
//! and checks everything it can, collecting every problem instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::Range;

use time::Duration;
use toml::Spanned;

use crate::config::{Raw, RawCa, RawCert, RawKeyPair, RawNode, RawRender, quote_list};
use crate::diag::{Diagnostic, nearest};
use crate::graph;
use crate::layout::{RESERVED, csr_path, is_temp_name};
use crate::spec::*;

const ROLES: [&str; 2] = ["control-plane", "worker"];

/// The templates folder as `resolve` sees it: usable templates by name (their text), and the
/// files that cannot be templates with what is wrong (see `scan::Sources`).
pub type Templates<'a> = (&'a BTreeMap<String, String>, &'a BTreeMap<String, String>);

/// Resolves `raw`. `templates` lists every file under the templates folder, keyed by its
/// relative path, so that a missing or unusable template is reported here with its span.
pub fn resolve(raw: &Raw, templates: Templates<'_>) -> Result<Spec, Vec<Diagnostic>> {
    let mut cx = Cx {
        dropped: raw.dropped.clone(),
        global_vars: raw.vars.clone(),
        ..Cx::default()
    };
    let d = cx.defaults(raw);
    let nodes = cx.nodes(&raw.nodes);
    cx.names(raw);

    // CAs first, in issuer order.
    let ca_index: HashMap<&str, usize> = raw
        .cas
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.get_ref().as_str(), i))
        .collect();
    let parents: Vec<Option<usize>> = raw
        .cas
        .iter()
        .map(|c| {
            c.issuer
                .as_ref()
                .and_then(|i| ca_index.get(i.get_ref().as_str()).copied())
        })
        .collect();
    let ca_order = match graph::order(&parents) {
        Ok(o) => o,
        Err(cycle) => {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| raw.cas[i].name.get_ref().as_str())
                .collect();
            let first = &raw.cas[cycle[0]];
            let span = first.issuer.as_ref().map(|s| s.span());
            cx.err(
                format!("issuer cycle: {} -> {}", names.join(" -> "), names[0]),
                span,
                Some("a CA cannot sign itself, directly or through others; make one of them a root by removing its `issuer`".into()),
            );
            (0..raw.cas.len()).collect()
        }
    };

    let declared: BTreeSet<String> = raw
        .cas
        .iter()
        .map(|c| c.name.get_ref().clone())
        .chain(raw.certs.iter().map(|c| c.name.get_ref().clone()))
        .chain(raw.keypairs.iter().map(|c| c.name.get_ref().clone()))
        .collect();
    let mut items: Vec<Item> = Vec::new();
    let mut ids: HashMap<String, Vec<ItemId>> = HashMap::new();
    for &i in &ca_order {
        let ca = &raw.cas[i];
        let issuer = ca.issuer.as_ref().and_then(|s| cx.issuer(s, raw, &ids));
        let item = cx.ca(ca, issuer, &d);
        ids.entry(item.base.clone()).or_default().push(items.len());
        items.push(item);
    }
    cx.path_lens(raw, &items);
    for cert in &raw.certs {
        let issuer = cx.issuer(&cert.issuer, raw, &ids);
        for node in cx.expansion(cert.for_each_node.as_ref(), cert.nodes.as_ref(), &nodes) {
            if let Some(item) = cx.leaf(cert, issuer, &d, node) {
                ids.entry(item.base.clone()).or_default().push(items.len());
                items.push(item);
            }
        }
    }
    for kp in &raw.keypairs {
        let item = cx.keypair(kp, &d);
        ids.entry(item.base.clone()).or_default().push(items.len());
        items.push(item);
    }
    for r in &raw.renders {
        for node in cx.expansion(r.for_each_node.as_ref(), r.nodes.as_ref(), &nodes) {
            if let Some(item) = cx.render(r, node, templates, &items, &ids, &declared) {
                items.push(item);
            }
        }
    }
    cx.leaf_lifetimes(raw, &items);

    if cx.diags.is_empty() {
        Ok(Spec { items })
    } else {
        Err(cx.diags)
    }
}

struct Defaults {
    alg: KeyAlg,
    validity: Duration,
    ca_validity: Duration,
    renew_before: Duration,
}

#[derive(Default)]
struct Cx {
    diags: Vec<Diagnostic>,
    /// Output path -> the item that claimed it first.
    paths: HashMap<String, Claim>,
    /// Entries the parser could not read (`Raw::dropped`): references to them are not reported.
    dropped: Vec<String>,
    /// The file's `[vars]`, which every render sees under its own.
    global_vars: Option<Spanned<toml::Table>>,
}

/// Who owns an output path.
struct Claim {
    item: String,
    /// The path is the CSR path of `item`'s certificate (`layout::csr_path`), not a path it declares.
    csr: bool,
}

const CSR_HELP: &str = "a certificate `NAME.crt` (or `.pem`) also owns `NAME.csr`: the CSR of its key is written there when its issuer is an external CA; choose another path";

impl Cx {
    fn err(&mut self, message: String, span: Option<Range<usize>>, help: Option<String>) {
        let mut d = Diagnostic::new(message, span);
        d.help = help;
        // The instances of a per-node entry make the same mistake each: say it once.
        if !self
            .diags
            .iter()
            .any(|o| o.message == d.message && o.span == d.span && o.help == d.help)
        {
            self.diags.push(d);
        }
    }

    fn defaults(&mut self, raw: &Raw) -> Defaults {
        let mut d = Defaults {
            alg: DEFAULT_ALG,
            validity: DEFAULT_VALIDITY,
            ca_validity: DEFAULT_CA_VALIDITY,
            renew_before: DEFAULT_RENEW_BEFORE,
        };
        if let Some(raw) = &raw.defaults {
            d.alg = self.alg(raw.algorithm.as_ref(), d.alg);
            d.validity = self.duration(raw.validity.as_ref(), d.validity);
            d.ca_validity = self.duration(raw.ca_validity.as_ref(), d.ca_validity);
            d.renew_before = self.duration(raw.renew_before.as_ref(), d.renew_before);
        }
        d
    }

    fn alg(&mut self, s: Option<&Spanned<String>>, default: KeyAlg) -> KeyAlg {
        let Some(s) = s else { return default };
        match KeyAlg::parse(s.get_ref()) {
            Some(a) => a,
            None => {
                let names: Vec<&str> = KeyAlg::ALL.iter().map(|a| a.name()).collect();
                self.err(
                    format!("unsupported key algorithm `{}`", s.get_ref()),
                    Some(s.span()),
                    Some(format!("expected one of {}", quote_list(&names))),
                );
                default
            }
        }
    }

    fn duration(&mut self, s: Option<&Spanned<String>>, default: Duration) -> Duration {
        let Some(s) = s else { return default };
        match parse_duration(s.get_ref()) {
            Some(d) => d,
            None => {
                self.err(
                    format!("invalid duration `{}`", s.get_ref()),
                    Some(s.span()),
                    Some("write a positive whole number and a unit: `8760h`, `365d`, `2w`, `10y` (s, m, h, d, w, y)".into()),
                );
                default
            }
        }
    }

    fn nodes(&mut self, raw: &[RawNode]) -> Vec<(Node, Range<usize>)> {
        let mut out: Vec<(Node, Range<usize>)> = Vec::new();
        for n in raw {
            let name = n.name.get_ref();
            if !is_dns_name(name) || name.contains('*') {
                self.err(
                    format!("invalid node name `{name}`"),
                    Some(n.name.span()),
                    Some("node names are DNS names: lowercase letters, digits, `-` and `.`".into()),
                );
            }
            if out.iter().any(|(o, _)| o.name == *name) {
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
            out.push((
                Node {
                    name: name.clone(),
                    ips,
                    role: role.clone(),
                },
                n.name.span(),
            ));
        }
        out
    }

    fn ip(&mut self, s: &str, span: Range<usize>) -> Option<IpAddr> {
        match s.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    format!("invalid IP address `{s}`"),
                    Some(span),
                    Some("write an IPv4 (`10.0.0.1`) or IPv6 (`fd00::1`) address; DNS names go in `dns`".into()),
                );
                None
            }
        }
    }

    /// Every name is declared once, across all kinds of entries.
    fn names(&mut self, raw: &Raw) {
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let all = raw
            .cas
            .iter()
            .map(|c| &c.name)
            .chain(raw.certs.iter().map(|c| &c.name))
            .chain(raw.keypairs.iter().map(|c| &c.name))
            .chain(raw.renders.iter().map(|c| &c.name));
        for name in all {
            let n = name.get_ref();
            if n.is_empty() || n.contains('@') || n.chars().any(char::is_whitespace) {
                self.err(
                    format!("invalid name `{n}`"),
                    Some(name.span()),
                    Some("names are non-empty and contain no spaces or `@`".into()),
                );
            }
            if seen.contains_key(n) {
                self.err(
                    format!("duplicate name `{n}`"),
                    Some(name.span()),
                    Some("every [[ca]], [[cert]], [[keypair]] and [[render]] needs a name of its own".into()),
                );
            } else {
                seen.insert(n.clone(), name.span());
            }
        }
    }

    fn issuer(
        &mut self,
        s: &Spanned<String>,
        raw: &Raw,
        ids: &HashMap<String, Vec<ItemId>>,
    ) -> Option<ItemId> {
        let name = s.get_ref();
        let is_ca = raw.cas.iter().any(|c| c.name.get_ref() == name);
        // Only a CA signs: a leaf or key pair of that name is reported below.
        if is_ca && let Some(found) = ids.get(name) {
            return found.first().copied();
        }
        if is_ca || self.dropped.contains(name) {
            // A CA that failed validation or sits in a cycle, or an entry that did not parse:
            // already reported.
            return None;
        }
        let other = raw
            .certs
            .iter()
            .map(|c| (&c.name, "a leaf certificate"))
            .chain(raw.keypairs.iter().map(|c| (&c.name, "a key pair")))
            .chain(raw.renders.iter().map(|c| (&c.name, "a rendered file")))
            .find(|(n, _)| n.get_ref() == name);
        let cas: Vec<&str> = raw.cas.iter().map(|c| c.name.get_ref().as_str()).collect();
        let mut help = format!("CAs declared in pki.toml: {}", quote_list(&cas));
        if let Some(s) = nearest(name, cas.iter().copied()) {
            help = format!("did you mean `{s}`? {help}");
        }
        match other {
            Some((_, what)) => self.err(
                format!("issuer `{name}` is not a CA: it is {what}"),
                Some(s.span()),
                Some(format!("only a [[ca]] entry can sign; {help}")),
            ),
            None => self.err(
                format!("unknown issuer `{name}`"),
                Some(s.span()),
                Some(help),
            ),
        }
        None
    }

    fn subject(
        &mut self,
        name: &Spanned<String>,
        cn: Option<&Spanned<String>>,
        o: &[Spanned<String>],
        ou: &[Spanned<String>],
        node: Option<&Node>,
    ) -> Subject {
        // A placeholder that failed is reported already: "empty subject" would only repeat it.
        let mut failed = false;
        let mut values = |field: &str, vs: &mut dyn Iterator<Item = &Spanned<String>>| {
            let mut out = Vec::new();
            for v in vs {
                match self.interp(v, node, field) {
                    Some(v) if !v.is_empty() => out.push(v),
                    Some(_) => {}
                    None => failed = true,
                }
            }
            out
        };
        let s = Subject {
            cn: values("cn", &mut cn.into_iter()).pop(),
            o: values("o", &mut o.iter()),
            ou: values("ou", &mut ou.iter()),
        };
        if s.cn.is_none() && s.o.is_empty() && s.ou.is_empty() && !failed {
            self.err(
                format!("`{}` has an empty subject", name.get_ref()),
                Some(cn.map_or(name.span(), |c| c.span())),
                Some("set `cn` (Kubernetes reads it as the user name)".into()),
            );
        }
        s
    }

    fn sans(
        &mut self,
        dns: &[Spanned<String>],
        ips: &[Spanned<String>],
        node: Option<&Node>,
    ) -> Sans {
        let mut out = Sans::default();
        for d in dns {
            let Some(v) = self.interp(d, node, "dns") else {
                continue;
            };
            let v = v.to_ascii_lowercase();
            if v.parse::<IpAddr>().is_ok() {
                self.err(
                    format!("`{v}` is an IP address, not a DNS name"),
                    Some(d.span()),
                    Some(
                        "move it to `ips`: clients match IP addresses only against IP SANs".into(),
                    ),
                );
            } else if !is_dns_name(&v) {
                self.err(
                    format!("invalid DNS name `{v}`"),
                    Some(d.span()),
                    Some("a DNS name is dot-separated labels of letters, digits and `-` (a leading `*.` is allowed)".into()),
                );
            } else if !out.dns.contains(&v) {
                out.dns.push(v);
            }
        }
        for ip in ips {
            let addrs: Vec<IpAddr> = if ip.get_ref() == "{node.ips}" {
                // All the node's addresses, as a whole entry of `ips` only.
                match node {
                    Some(n) => n.ips.clone(),
                    None => {
                        let (message, help) = outside_per_node("node.ips");
                        self.err(message, Some(ip.span()), Some(help));
                        vec![]
                    }
                }
            } else {
                let Some(v) = self.interp(ip, node, "ips") else {
                    continue;
                };
                self.ip(&v, ip.span()).into_iter().collect()
            };
            for addr in addrs {
                if !out.ips.contains(&addr) {
                    out.ips.push(addr);
                }
            }
        }
        out
    }

    /// Replaces `{node}` and `{node.ip}` for per-node entries; anything else in braces is an error
    /// (`{node.ips}` too: `sans` takes it, as a whole entry of `ips`). `field` names the key of `s`.
    /// `None` when a placeholder was reported.
    fn interp(&mut self, s: &Spanned<String>, node: Option<&Node>, field: &str) -> Option<String> {
        let mut problems = Vec::new();
        let out = substitute(s.get_ref(), node, field, |_| true, &mut problems);
        let ok = problems.is_empty();
        for (message, help) in problems {
            self.err(message, Some(s.span()), Some(help));
        }
        ok.then_some(out)
    }

    fn expansion<'n>(
        &mut self,
        role: Option<&Spanned<String>>,
        names: Option<&Vec<Spanned<String>>>,
        nodes: &'n [(Node, Range<usize>)],
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
            (Some(r), None) => {
                let role = r.get_ref().as_str();
                if role != "all" && !ROLES.contains(&role) {
                    self.err(
                        format!("unknown node role `{role}`"),
                        Some(r.span()),
                        Some("expected `all`, `control-plane` or `worker`".into()),
                    );
                    return vec![];
                }
                let out: Vec<_> = nodes
                    .iter()
                    .filter(|(n, _)| role == "all" || n.role == role)
                    .map(|(n, _)| Some(n))
                    .collect();
                out
            }
            (None, Some(list)) => {
                let mut out = Vec::new();
                for name in list {
                    match nodes.iter().find(|(n, _)| n.name == *name.get_ref()) {
                        Some((n, _)) => out.push(Some(n)),
                        None if self.dropped.contains(name.get_ref()) => {}
                        None => {
                            let declared: Vec<&str> =
                                nodes.iter().map(|(n, _)| n.name.as_str()).collect();
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
    }

    /// An output path of `item` (its key `field`), checked and claimed; empty if it is invalid
    /// (then it is reported and the spec is rejected anyway).
    fn path(
        &mut self,
        item: &str,
        s: &Spanned<String>,
        node: Option<&Node>,
        field: &str,
    ) -> String {
        self.output_path(item, s, node, field).unwrap_or_default()
    }

    /// A certificate's paths: its certificate and key, and the CSR path that goes with the
    /// certificate (`layout::csr_path`), claimed too so that no other item writes there.
    fn cert_paths(
        &mut self,
        item: &str,
        cert: &Spanned<String>,
        key: &Spanned<String>,
        node: Option<&Node>,
    ) -> (String, String) {
        let cert_path = self.output_path(item, cert, node, "cert");
        if let Some(c) = &cert_path {
            self.claim(item, &csr_path(c), true, cert.span());
        }
        let key_path = self.path(item, key, node, "key");
        (cert_path.unwrap_or_default(), key_path)
    }

    /// `Some(path)`, cleaned, if it is valid and `item` now owns it; otherwise reported.
    fn output_path(
        &mut self,
        item: &str,
        s: &Spanned<String>,
        node: Option<&Node>,
        field: &str,
    ) -> Option<String> {
        let p = self.interp(s, node, field)?;
        let bad = p.is_empty()
            || p.starts_with('/')
            || p.contains('\\')
            || p.split('/').any(|c| c == "..")
            || p.ends_with('/');
        let clean: String = p
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/");
        if bad || clean.is_empty() {
            self.err(
                format!("output path `{p}` escapes the output folder"),
                Some(s.span()),
                Some(
                    "write a relative path inside the output folder, without `..`: `pki/ca.crt`"
                        .into(),
                ),
            );
            return None;
        }
        if RESERVED.contains(&clean.as_str()) {
            self.err(
                format!("output path `{clean}` is reserved for the tool"),
                Some(s.span()),
                None,
            );
            return None;
        }
        let file_name = clean.rsplit('/').next().unwrap_or_default();
        if is_temp_name(file_name) {
            self.err(
                format!("output path `{clean}` is named like a temporary file of the tool"),
                Some(s.span()),
                Some(format!("files named `.NAME.tmp-DIGITS` are taken for what an interrupted run left, and removed; rename `{file_name}`")),
            );
            return None;
        }
        self.claim(item, &clean, false, s.span()).then_some(clean)
    }

    /// Records `item` as the owner of `path` (`csr`: as the CSR path of its certificate); reports
    /// a path that is someone's already. Returns whether the path is `item`'s.
    fn claim(&mut self, item: &str, path: &str, csr: bool, span: Range<usize>) -> bool {
        let Some(owner) = self.paths.get(path) else {
            self.paths.insert(
                path.to_string(),
                Claim {
                    item: item.to_string(),
                    csr,
                },
            );
            return true;
        };
        let o = &owner.item;
        let (message, help) = match (owner.csr, csr) {
            (false, false) => (
                format!("`{item}` writes `{path}`, which `{o}` writes too"),
                "give each file one owner; for per-node entries put `{node}` in the path",
            ),
            (true, false) => (
                format!("`{item}` writes `{path}`, which is the CSR path of `{o}`"),
                CSR_HELP,
            ),
            (false, true) => (
                format!("the CSR path of `{item}`, `{path}`, is written by `{o}` too"),
                CSR_HELP,
            ),
            (true, true) => (
                format!("`{item}` and `{o}` have the same CSR path `{path}`"),
                CSR_HELP,
            ),
        };
        self.err(message, Some(span), Some(help.into()));
        false
    }

    fn ca(&mut self, raw: &RawCa, issuer: Option<ItemId>, d: &Defaults) -> Item {
        let name = raw.name.get_ref().clone();
        let subject = self.subject(&raw.name, raw.cn.as_ref(), &raw.o, &raw.ou, None);
        let sans = self.sans(&raw.dns, &raw.ips, None);
        let (cert_path, key_path) = self.cert_paths(&name, &raw.cert, &raw.key, None);
        let validity = self.duration(raw.validity.as_ref(), d.ca_validity);
        let renew_before = self.duration(raw.renew_before.as_ref(), d.renew_before);
        self.renewal(
            &raw.name,
            (validity, raw.validity.as_ref()),
            (renew_before, raw.renew_before.as_ref()),
        );
        let spec = CertSpec {
            issuer,
            ca: Some(CaSpec {
                path_len: raw.path_len.as_ref().map(|p| *p.get_ref()),
            }),
            subject,
            sans,
            usages: vec![],
            alg: self.alg(raw.algorithm.as_ref(), d.alg),
            validity,
            renew_before,
            cert_path,
            key_path,
            node: None,
        };
        Item {
            base: name.clone(),
            name,
            kind: ItemKind::Cert(spec),
        }
    }

    /// A certificate whose validity is not longer than its renew-before is due for renewal the
    /// moment it is signed: every run would re-sign it. Each duration comes with its value in the
    /// entry, if set there (`None`: a default).
    fn renewal(
        &mut self,
        name: &Spanned<String>,
        validity: (Duration, Option<&Spanned<String>>),
        renew_before: (Duration, Option<&Spanned<String>>),
    ) {
        let parses =
            |s: Option<&Spanned<String>>| s.is_none_or(|s| parse_duration(s.get_ref()).is_some());
        // An invalid duration is reported already, and its default says nothing.
        if !parses(validity.1) || !parses(renew_before.1) || validity.0 > renew_before.0 {
            return;
        }
        let span = validity
            .1
            .or(renew_before.1)
            .map_or(name.span(), |s| s.span());
        self.err(
            format!(
                "`{}` would be re-signed on every run: its validity {} is not longer than its renew-before {}",
                name.get_ref(),
                fmt_duration(validity.0),
                fmt_duration(renew_before.0)
            ),
            Some(span),
            Some(format!(
                "lengthen `validity` beyond {}, or shorten `renew-before` below {}",
                fmt_duration(renew_before.0),
                fmt_duration(validity.0)
            )),
        );
    }

    fn leaf(
        &mut self,
        raw: &RawCert,
        issuer: Option<ItemId>,
        d: &Defaults,
        node: Option<&Node>,
    ) -> Option<Item> {
        let base = raw.name.get_ref().clone();
        let name = instance_name(&base, node);
        let subject = self.subject(&raw.name, raw.cn.as_ref(), &raw.o, &raw.ou, node);
        let before = self.diags.len();
        let sans = self.sans(&raw.dns, &raw.ips, node);
        // An invalid SAN is reported already; "no SANs" would only repeat it.
        let bad_sans = self.diags.len() > before;
        let mut usages = Vec::new();
        for u in raw.usage.get_ref() {
            let v = match u.get_ref().as_str() {
                "server" => Usage::Server,
                "client" => Usage::Client,
                other => {
                    self.err(
                        format!("unknown usage `{other}`"),
                        Some(u.span()),
                        Some("expected `server` (serverAuth) or `client` (clientAuth)".into()),
                    );
                    continue;
                }
            };
            if !usages.contains(&v) {
                usages.push(v);
            }
        }
        if raw.usage.get_ref().is_empty() {
            self.err(
                format!("`{base}` has no usage"),
                Some(raw.usage.span()),
                Some("set `usage = [\"server\"]`, `[\"client\"]` or both".into()),
            );
        }
        if usages.contains(&Usage::Server)
            && sans.dns.is_empty()
            && sans.ips.is_empty()
            && !bad_sans
        {
            self.err(
                format!("server certificate `{name}` has no SANs"),
                Some(raw.usage.span()),
                Some("clients match the server's name against `dns` and `ips`, never the CN; add them".into()),
            );
        }
        usages.sort();
        let validity = self.duration(raw.validity.as_ref(), d.validity);
        let renew_before = self.duration(raw.renew_before.as_ref(), d.renew_before);
        self.renewal(
            &raw.name,
            (validity, raw.validity.as_ref()),
            (renew_before, raw.renew_before.as_ref()),
        );
        let (cert_path, key_path) = self.cert_paths(&name, &raw.cert, &raw.key, node);
        let spec = CertSpec {
            issuer,
            ca: None,
            subject,
            sans,
            usages,
            alg: self.alg(raw.algorithm.as_ref(), d.alg),
            validity,
            renew_before,
            cert_path,
            key_path,
            node: node.cloned(),
        };
        issuer?;
        Some(Item {
            base,
            name,
            kind: ItemKind::Cert(spec),
        })
    }

    fn keypair(&mut self, raw: &RawKeyPair, d: &Defaults) -> Item {
        let name = raw.name.get_ref().clone();
        let spec = KeyPairSpec {
            alg: self.alg(raw.algorithm.as_ref(), d.alg),
            private_path: self.path(&name, &raw.private, None, "private"),
            public_path: self.path(&name, &raw.public, None, "public"),
        };
        Item {
            base: name.clone(),
            name,
            kind: ItemKind::KeyPair(spec),
        }
    }

    fn render(
        &mut self,
        raw: &RawRender,
        node: Option<&Node>,
        (templates, unusable): Templates<'_>,
        items: &[Item],
        ids: &HashMap<String, Vec<ItemId>>,
        declared: &BTreeSet<String>,
    ) -> Option<Item> {
        let base = raw.name.get_ref().clone();
        let name = instance_name(&base, node);
        let template = raw.template.get_ref().trim_start_matches("./").to_string();
        if let Some(problem) = unusable.get(&template) {
            self.err(
                format!("template `{template}` {problem}"),
                Some(raw.template.span()),
                Some("a template must be a readable file of UTF-8 text; fix or replace it, or use another template".into()),
            );
        } else if !templates.contains_key(&template) {
            let known: Vec<&str> = templates.keys().map(String::as_str).collect();
            let mut help = if known.is_empty() {
                "no templates were found: is `--templates` the right folder?".to_string()
            } else {
                format!("templates found: {}", quote_list(&known))
            };
            if let Some(s) = nearest(&template, known.iter().copied()) {
                help = format!("did you mean `{s}`? {help}");
            }
            self.err(
                format!("template `{template}` not found in the templates folder"),
                Some(raw.template.span()),
                Some(help),
            );
        }
        let mut bind = BTreeMap::new();
        for (var, target_s) in raw.bind.iter().flatten() {
            let target = target_s.get_ref().as_str();
            let span = Some(target_s.span());
            if let Some(id) = items
                .iter()
                .position(|i| i.name == target && i.name != i.base)
            {
                bind.insert(var.clone(), id);
                continue;
            }
            let Some(candidates) = ids.get(target) else {
                if declared.contains(target) || self.dropped.iter().any(|d| d == target) {
                    // Declared but invalid: already reported where it is declared.
                    continue;
                }
                let all: Vec<&str> = ids.keys().map(String::as_str).collect();
                let help =
                    nearest(target, all.iter().copied()).map(|s| format!("did you mean `{s}`?"));
                self.err(
                    format!("`{name}` binds `{var}` to unknown item `{target}`"),
                    span,
                    help,
                );
                continue;
            };
            // A per-node item bound from a per-node render means this node's instance.
            let id = if candidates.len() == 1 && items[candidates[0]].name == target {
                candidates[0]
            } else {
                let want = node.map(|n| instance_name(target, Some(n)));
                match candidates
                    .iter()
                    .find(|&&c| Some(&items[c].name) == want.as_ref())
                {
                    Some(&c) => c,
                    None => {
                        self.err(
                            format!("`{name}` binds `{var}` to per-node item `{target}`, which has no instance for this node"),
                            span,
                            Some("bind per-node items only from a render that expands over the same nodes, or name one instance (`item@node`)".into()),
                        );
                        continue;
                    }
                }
            };
            bind.insert(var.clone(), id);
        }
        let mut secrets = Vec::new();
        for s in &raw.secrets {
            let var = s.get_ref();
            match bind.get(var) {
                // Bound to something that failed to resolve: already reported.
                None if raw.bind.as_ref().is_some_and(|b| b.contains_key(var)) => {}
                None => self.err(
                    format!("secret `{var}` is not a bound name"),
                    Some(s.span()),
                    Some("list names from this render's `bind` table".into()),
                ),
                Some(&id) => {
                    let is_ca = matches!(&items[id].kind, ItemKind::Cert(c) if c.ca.is_some());
                    if is_ca && !raw.allow_ca_key {
                        self.err(
                            format!("`{name}` asks for the private key of CA `{}`", items[id].name),
                            Some(s.span()),
                            Some("a CA key signs for the whole cluster; if this file really needs it, set `allow-ca-key = true`".into()),
                        );
                    }
                    secrets.push(var.clone());
                }
            }
        }
        // The file's [vars], then this render's own `vars` over them (a key set here wins).
        let mut vars = serde_json::Map::new();
        let global_vars = self.global_vars.clone();
        let global_vars = global_vars.as_ref();
        for table in [global_vars, raw.vars.as_ref()].into_iter().flatten() {
            if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(table.get_ref()) {
                vars.extend(m);
            }
        }
        let mut vars = serde_json::Value::Object(vars);
        let mut problems = Vec::new();
        interp_json(&mut vars, node, &mut problems);
        let span = raw.vars.as_ref().or(global_vars).map(|t| t.span());
        for (message, help) in problems {
            self.err(message, span.clone(), Some(help));
        }
        let path = self.path(&name, &raw.path, node, "path");
        Some(Item {
            base,
            name,
            kind: ItemKind::Render(RenderSpec {
                template,
                path,
                bind,
                secrets,
                vars,
                node: node.cloned(),
            }),
        })
    }

    /// A CA's `path-len` is the number of CA levels allowed below it (a CA it signs is one level
    /// down, a CA that one signs two): a chain through a deeper CA is rejected by every verifier.
    /// `items` holds the CAs, each after its issuer.
    fn path_lens(&mut self, raw: &Raw, items: &[Item]) {
        // For each CA with a path-len: the CAs below it too deep, with their depth.
        let mut too_deep: BTreeMap<ItemId, Vec<(ItemId, u32)>> = BTreeMap::new();
        for (id, item) in items.iter().enumerate() {
            let mut depth = 0;
            let mut above = item.kind.as_cert().and_then(|c| c.issuer);
            while let Some(a) = above {
                depth += 1;
                let Some(c) = items[a].kind.as_cert() else {
                    break;
                };
                if let Some(p) = c.ca.and_then(|ca| ca.path_len)
                    && depth > u32::from(p)
                {
                    too_deep.entry(a).or_default().push((id, depth));
                }
                above = c.issuer;
            }
        }
        for (a, below) in too_deep {
            let Some(raw_ca) = raw.cas.iter().find(|c| *c.name.get_ref() == items[a].name) else {
                continue;
            };
            let Some(p) = &raw_ca.path_len else { continue };
            let names: Vec<&str> = below
                .iter()
                .map(|&(id, _)| items[id].name.as_str())
                .collect();
            let deepest = below.iter().map(|&(_, d)| d).max().unwrap_or_default();
            let what = match names.as_slice() {
                [one] => format!(
                    "CA `{one}` is {deepest} level{} below it",
                    if deepest == 1 { "" } else { "s" }
                ),
                _ => format!(
                    "CAs {} are below it (down to {deepest} levels)",
                    quote_list(&names)
                ),
            };
            self.err(
                format!(
                    "`{}` has path-len {}, but {what}: verifiers reject such chains",
                    items[a].name,
                    p.get_ref()
                ),
                Some(p.span()),
                Some(format!(
                    "path-len counts the CA levels allowed below this CA: set `path-len = {deepest}` or more (or remove it), or move the CAs below it"
                )),
            );
        }
    }

    /// A leaf never outlives its issuer: a declared validity longer than the issuer's is an error.
    fn leaf_lifetimes(&mut self, raw: &Raw, items: &[Item]) {
        // Where each entry's validity is set: on the entry, or (None) inherited from [defaults].
        let own: HashMap<&str, Option<Range<usize>>> = raw
            .certs
            .iter()
            .map(|c| {
                (
                    c.name.get_ref().as_str(),
                    c.validity.as_ref().map(|v| v.span()),
                )
            })
            .chain(raw.cas.iter().map(|c| {
                (
                    c.name.get_ref().as_str(),
                    c.validity.as_ref().map(|v| v.span()),
                )
            }))
            .collect();
        let names: HashMap<&str, Range<usize>> = raw
            .certs
            .iter()
            .map(|c| (c.name.get_ref().as_str(), c.name.span()))
            .chain(
                raw.cas
                    .iter()
                    .map(|c| (c.name.get_ref().as_str(), c.name.span())),
            )
            .collect();
        let mut reported = BTreeSet::new();
        let mut from_defaults: Vec<&str> = Vec::new();
        let mut shortest_issuer: Option<Duration> = None;
        for item in items {
            let ItemKind::Cert(c) = &item.kind else {
                continue;
            };
            let Some(issuer) = c.issuer else { continue };
            let Some(ic) = items[issuer].kind.as_cert() else {
                continue;
            };
            if c.validity <= ic.validity || !reported.insert(item.base.clone()) {
                continue;
            }
            let issuer_name = &items[issuer].base;
            let both_defaulted = own.get(item.base.as_str()).is_some_and(Option::is_none)
                && own.get(issuer_name.as_str()).is_some_and(Option::is_none)
                && ic.ca.is_some();
            if both_defaulted {
                // One mistake in [defaults]: report it there, once.
                from_defaults.push(item.base.as_str());
                shortest_issuer = Some(shortest_issuer.map_or(ic.validity, |d| d.min(ic.validity)));
                continue;
            }
            let span = own
                .get(item.base.as_str())
                .cloned()
                .flatten()
                .or_else(|| names.get(item.base.as_str()).cloned());
            self.err(
                format!(
                    "`{}` would outlive its issuer `{}`: validity {} is longer than the issuer's {}",
                    item.base,
                    items[issuer].name,
                    fmt_duration(c.validity),
                    fmt_duration(ic.validity)
                ),
                span,
                Some(format!("shorten `validity` to at most {}, or lengthen the issuer's", fmt_duration(ic.validity))),
            );
        }
        if let (Some(ca), false) = (shortest_issuer, from_defaults.is_empty()) {
            let d = raw.defaults.as_ref();
            let span = d
                .and_then(|d| d.validity.as_ref().or(d.ca_validity.as_ref()))
                .map(|v| v.span());
            let n = from_defaults.len();
            self.err(
                format!(
                    "default `validity` is longer than default `ca-validity` ({}): {n} certificate{} would outlive {} CA ({})",
                    fmt_duration(ca),
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "its" } else { "their" },
                    from_defaults.join(", ")
                ),
                span,
                Some(format!("set `validity` to at most {} in [defaults], or lengthen `ca-validity`", fmt_duration(ca))),
            );
        }
    }
}

/// The name of an entry's instance: its own for a plain entry, `name@node` for a per-node one.
fn instance_name(base: &str, node: Option<&Node>) -> String {
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

fn outside_per_node(var: &str) -> (String, String) {
    (
        format!("`{{{var}}}` used outside a per-node entry"),
        "add `for-each-node = \"worker\"` (or `control-plane`, `all`, or `nodes = [...]`) to this entry".into(),
    )
}

/// `substitute` over every string of a render's `vars`, where braces are free text except for
/// `{node...}` placeholders.
fn interp_json(
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

/// RFC 1123 host names, with an optional leading `*.` wildcard label.
pub fn is_dns_name(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}
