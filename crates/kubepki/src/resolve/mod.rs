//! Stage 2, RESOLVE: `config::Raw` -> `spec::Spec`. Applies defaults, expands per-node entries,
//! resolves names to ids, orders issuers before what they sign and checks everything it can,
//! collecting every problem instead of stopping at the first.
//!
//! `resolve` below is the order of the decisions; each lives in a module of its own:
//! `values` (algorithms, durations, addresses and names, `[defaults]`), `nodes` (`[[node]]`,
//! per-node expansion, `{node}` placeholders), `names` (every name declared once, issuers),
//! `paths` (output paths and who owns them), `entries` (a `[[ca]]`, `[[cert]]` or `[[keypair]]`
//! made into an `Item`), `renders` (a `[[render]]`: template, `bind`, `secrets`, `vars`) and
//! `checks` (what only the whole spec can tell: issuer order, path lengths, lifetimes).

mod checks;
mod entries;
mod names;
mod nodes;
mod paths;
mod renders;
#[cfg(test)]
mod tests;
mod values;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use toml::Spanned;

use crate::config::Raw;
use crate::diag::Diagnostic;
use crate::spec::{Item, ItemId, Spec};

pub use values::is_dns_name;

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
    let defaults = cx.defaults(raw);
    let nodes = cx.nodes(&raw.nodes);
    cx.names(raw);
    cx.some_ca(raw);
    let declared = names::declared(raw);

    // CAs first, each after its issuer, so that an issuer always has the smaller id.
    let mut made = Made::default();
    for i in cx.ca_order(raw) {
        let ca = &raw.cas[i];
        let issuer = ca.issuer.as_ref().and_then(|s| cx.issuer(s, raw, &made));
        let item = cx.ca(ca, issuer, &defaults);
        made.add(item);
    }
    cx.path_lens(raw, &made.items);
    for cert in &raw.certs {
        let issuer = cx.issuer(&cert.issuer, raw, &made);
        for node in cx.expansion(cert.for_each_node.as_ref(), cert.nodes.as_ref(), &nodes) {
            if let Some(item) = cx.leaf(cert, issuer, &defaults, node) {
                made.add(item);
            }
        }
    }
    for kp in &raw.keypairs {
        let item = cx.keypair(kp, &defaults);
        made.add(item);
    }
    // Renders come last: they read everything above. Nothing signs or binds a render by its
    // entry name, so they are not indexed by it.
    for r in &raw.renders {
        for node in cx.expansion(r.for_each_node.as_ref(), r.nodes.as_ref(), &nodes) {
            let item = cx.render(r, node, templates, &made, &declared);
            made.items.push(item);
        }
    }
    cx.leaf_lifetimes(raw, &made.items);

    if cx.diags.is_empty() {
        Ok(Spec { items: made.items })
    } else {
        Err(cx.diags)
    }
}

/// What resolving carries from one entry to the next: the problems found so far, and what was
/// decided about the file as a whole.
#[derive(Default)]
struct Cx {
    diags: Vec<Diagnostic>,
    /// Output path -> the item that claimed it first.
    paths: HashMap<String, paths::Claim>,
    /// Entries the parser could not read (`Raw::dropped`): references to them are not reported.
    dropped: Vec<String>,
    /// The file's `[vars]`, which every render sees under its own.
    global_vars: Option<Spanned<toml::Table>>,
}

impl Cx {
    /// Records a problem and carries on: every problem of the file is reported in one run.
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
}

/// The items made so far, in id order, and the ids of each entry's instances by its name in
/// pki.toml (one id for a plain entry, one per node for a per-node entry).
#[derive(Default)]
struct Made {
    items: Vec<Item>,
    ids: HashMap<String, Vec<ItemId>>,
    /// The id of each per-node instance by its instance name (`name@node`): a lookup per bind,
    /// not a scan of every item, so resolving stays linear in the number of nodes.
    instances: HashMap<String, ItemId>,
}

impl Made {
    /// Gives `item` the next id and indexes it under its entry name.
    fn add(&mut self, item: Item) {
        if item.name != item.base {
            self.instances
                .entry(item.name.clone())
                .or_insert(self.items.len());
        }
        self.ids
            .entry(item.base.clone())
            .or_default()
            .push(self.items.len());
        self.items.push(item);
    }
}
