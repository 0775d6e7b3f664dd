//! Names: every entry's name is valid and declared once, and an issuer names a CA.

use std::collections::{BTreeSet, HashSet};

use toml::Spanned;

use crate::config::{Raw, quote_list};
use crate::diag::nearest;
use crate::resolve::{Cx, Made};
use crate::spec::ItemId;

impl Cx {
    /// Every name is declared once, across all kinds of entries.
    pub(super) fn names(&mut self, raw: &Raw) {
        let mut seen: HashSet<&str> = HashSet::new();
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
            if !seen.insert(n.as_str()) {
                self.duplicates.insert(n.clone());
                self.err(
                    format!("duplicate name `{n}`"),
                    Some(name.span()),
                    Some("every [[ca]], [[cert]], [[keypair]] and [[render]] needs a name of its own".into()),
                );
            }
        }
    }

    /// The CA that `s` names, if it is one and was made: only a CA signs. `None` when it is not
    /// (reported here), or when the CA's own problem was reported already.
    pub(super) fn issuer(&mut self, s: &Spanned<String>, raw: &Raw, made: &Made) -> Option<ItemId> {
        let name = s.get_ref();
        let is_ca = raw.cas.iter().any(|c| c.name.get_ref() == name);
        // Only a CA signs: a leaf or key pair of that name is reported below.
        if is_ca && let Some(found) = made.ids.get(name) {
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
}

/// The names of every CA, leaf certificate and key pair, valid or not: what a render may bind.
pub(super) fn declared(raw: &Raw) -> BTreeSet<String> {
    raw.cas
        .iter()
        .map(|c| c.name.get_ref().clone())
        .chain(raw.certs.iter().map(|c| c.name.get_ref().clone()))
        .chain(raw.keypairs.iter().map(|c| c.name.get_ref().clone()))
        .collect()
}
