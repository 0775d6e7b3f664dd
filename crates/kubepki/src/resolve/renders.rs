//! A `[[render]]` entry (one instance of it, for a per-node entry) made into an `Item`: its
//! template, what it binds, which keys it may read, and its variables.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use crate::config::{RawRender, quote_list};
use crate::diag::nearest;
use crate::resolve::nodes::{instance_name, interp_json};
use crate::resolve::{Cx, Made, Templates};
use crate::spec::{Item, ItemId, ItemKind, Node, RenderSpec};

impl Cx {
    /// One instance of a render. Its problems are reported in the order of its keys: template,
    /// `bind`, `secrets`, `vars`, `path`.
    pub(super) fn render(
        &mut self,
        raw: &RawRender,
        node: Option<&Node>,
        templates: Templates<'_>,
        made: &Made,
        declared: &BTreeSet<String>,
    ) -> Item {
        let base = raw.name.get_ref().clone();
        let name = instance_name(&base, node);
        let template = self.template(raw, templates);
        let mut bind = BTreeMap::new();
        for (var, target) in raw.bind.iter().flatten() {
            if let Some(id) = self.bind(&name, var, target, node, made, declared) {
                bind.insert(var.clone(), id);
            }
        }
        let secrets = self.secrets(raw, &name, &bind, &made.items);
        let vars = self.vars(raw, node);
        let path = self.path(&name, &raw.path, node, "path");
        Item {
            base,
            name,
            consumers: self.consumers(&raw.consumers),
            kind: ItemKind::Render(RenderSpec {
                template,
                path,
                bind,
                secrets,
                vars,
                node: node.cloned(),
            }),
        }
    }

    /// The template's path under the templates folder (`./` dropped); a template that is missing
    /// or cannot be one is reported.
    fn template(&mut self, raw: &RawRender, (templates, unusable): Templates<'_>) -> String {
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
        template
    }

    /// The item that `var` of render `name` is bound to: an instance named `item@node`, a plain
    /// item, or this node's instance of a per-node item. `None` when that cannot be (reported,
    /// unless it was reported where the item is declared).
    fn bind(
        &mut self,
        name: &str,
        var: &str,
        target_s: &Spanned<String>,
        node: Option<&Node>,
        made: &Made,
        declared: &BTreeSet<String>,
    ) -> Option<ItemId> {
        let target = target_s.get_ref().as_str();
        let span = Some(target_s.span());
        // Two entries of this name: which one is meant cannot be told, and that is reported at
        // the second one already.
        if self.duplicates.contains(target) {
            return None;
        }
        // `item@node` names one instance; names are looked up in constant time, since a per-node
        // render over thousands of nodes binds once per node.
        if let Some(&id) = made.by_name.get(target)
            && made.items[id].name != made.items[id].base
        {
            return Some(id);
        }
        let Some(candidates) = made.ids.get(target) else {
            if declared.contains(target) || self.dropped.contains(target) {
                // Declared but invalid: already reported where it is declared.
                return None;
            }
            // Sorted, so that of two equally close names the suggestion is always the same one.
            let mut all: Vec<&str> = made.ids.keys().map(String::as_str).collect();
            all.sort_unstable();
            let help = match nearest(target, all.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "bind names a [[ca]], [[cert]] or [[keypair]] by its `name`".to_string(),
            };
            self.err(
                format!("`{name}` binds `{var}` to unknown item `{target}`"),
                span,
                Some(help),
            );
            return None;
        };
        // A per-node item bound from a per-node render means this node's instance.
        let items = &made.items;
        let id = if candidates.len() == 1 && items[candidates[0]].name == target {
            candidates[0]
        } else {
            let want = node.map(|n| instance_name(target, Some(n)));
            let found = want.and_then(|w| made.by_name.get(&w).copied());
            match found.filter(|&c| items[c].base == target) {
                Some(c) => c,
                None => {
                    self.err(
                        format!("`{name}` binds `{var}` to per-node item `{target}`, which has no instance for this node"),
                        span,
                        Some("bind per-node items only from a render that expands over the same nodes, or name one instance (`item@node`)".into()),
                    );
                    return None;
                }
            }
        };
        Some(id)
    }

    /// The bound names whose private key the template may read; a CA's only with
    /// `allow-ca-key`, since a CA key signs for the whole cluster.
    fn secrets(
        &mut self,
        raw: &RawRender,
        name: &str,
        bind: &BTreeMap<String, ItemId>,
        items: &[Item],
    ) -> Vec<String> {
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
        secrets
    }

    /// The variables a template sees under `vars`, with `{node...}` placeholders replaced.
    fn vars(&mut self, raw: &RawRender, node: Option<&Node>) -> serde_json::Value {
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
        vars
    }
}
