//! What only the whole spec can tell: the order of CAs by issuer (and the cycle when there is
//! one), path-length constraints, and leaves that would outlive their issuers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use time::Duration;

use crate::config::{Raw, quote_list};
use crate::graph;
use crate::resolve::Cx;
use crate::spec::{Item, ItemId, ItemKind, fmt_duration};

impl Cx {
    /// A spec without a CA makes no PKI: an empty file (or the wrong one) is refused, rather than
    /// planned as nothing, which `--prune` would carry out by deleting the whole output folder,
    /// CA keys included. An entry that did not parse may be the CA: it is reported already.
    pub(super) fn some_ca(&mut self, raw: &Raw) {
        if !raw.cas.is_empty() || !raw.dropped.is_empty() {
            return;
        }
        let first = raw
            .certs
            .iter()
            .map(|c| c.name.span())
            .chain(raw.keypairs.iter().map(|k| k.name.span()))
            .chain(raw.renders.iter().map(|r| r.name.span()))
            .min_by_key(|s| s.start);
        self.err(
            "no [[ca]] is declared".into(),
            first,
            Some("declare the CAs that sign the cluster's certificates as [[ca]] tables (see the pki.toml reference in README.md); a file without one makes no PKI, and a `--prune` with it would delete everything in the output folder".into()),
        );
    }

    /// The CAs of `raw` (indices into `raw.cas`), each after its issuer. With a cycle, the cycle is
    /// reported and the CAs are taken in declared order, so that each is still checked.
    pub(super) fn ca_order(&mut self, raw: &Raw) -> Vec<usize> {
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
        match graph::order(&parents) {
            Ok(o) => o,
            Err(cycle) => {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&i| raw.cas[i].name.get_ref().as_str())
                    .collect();
                let first = &raw.cas[cycle[0]];
                let span = first.issuer.as_ref().map(|s| s.span());
                self.err(
                format!("issuer cycle: {} -> {}", names.join(" -> "), names[0]),
                span,
                Some("a CA cannot sign itself, directly or through others; make one of them a root by removing its `issuer`".into()),
            );
                (0..raw.cas.len()).collect()
            }
        }
    }

    /// A CA's `path-len` is the number of CA levels allowed below it (a CA it signs is one level
    /// down, a CA that one signs two): a chain through a deeper CA is rejected by every verifier.
    /// `items` holds the CAs, each after its issuer.
    pub(super) fn path_lens(&mut self, raw: &Raw, items: &[Item]) {
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
    pub(super) fn leaf_lifetimes(&mut self, raw: &Raw, items: &[Item]) {
        let own = own_validity(raw);
        let names = name_spans(raw);
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
            self.defaults_outlive(raw, ca, &from_defaults);
        }
    }

    /// The leaves named in `leaves` outlive their CAs only because of `[defaults]` (neither sets
    /// its own validity): one problem, at `[defaults]`. `ca` is the shortest CA validity involved.
    fn defaults_outlive(&mut self, raw: &Raw, ca: Duration, leaves: &[&str]) {
        let d = raw.defaults.as_ref();
        let span = d
            .and_then(|d| d.validity.as_ref().or(d.ca_validity.as_ref()))
            .map(|v| v.span());
        let n = leaves.len();
        self.err(
            format!(
                "default `validity` is longer than default `ca-validity` ({}): {n} certificate{} would outlive {} CA ({})",
                fmt_duration(ca),
                if n == 1 { "" } else { "s" },
                if n == 1 { "its" } else { "their" },
                leaves.join(", ")
            ),
            span,
            Some(format!("set `validity` to at most {} in [defaults], or lengthen `ca-validity`", fmt_duration(ca))),
        );
    }
}

/// Where each CA's and leaf's validity is set: on the entry, or (`None`) inherited from
/// `[defaults]`.
fn own_validity(raw: &Raw) -> HashMap<&str, Option<Range<usize>>> {
    raw.certs
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
        .collect()
}

/// The span of each CA's and leaf's name, where a problem of an inherited value is shown.
fn name_spans(raw: &Raw) -> HashMap<&str, Range<usize>> {
    raw.certs
        .iter()
        .map(|c| (c.name.get_ref().as_str(), c.name.span()))
        .chain(
            raw.cas
                .iter()
                .map(|c| (c.name.get_ref().as_str(), c.name.span())),
        )
        .collect()
}
