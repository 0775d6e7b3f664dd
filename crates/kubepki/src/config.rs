//! Stage 1, PARSE: the serde types that mirror `pki.toml`, and the parser that turns its text into
//! them while collecting every problem it can find in one pass.
//!
//! These types keep `toml::Spanned` on each value that a later stage validates, so that stage can
//! point at the exact spot. Defaults are not applied here; `resolve` owns them.

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::diag::{self, Diagnostic};

mod fields;
mod syntax;

type S<T> = Spanned<T>;

/// The whole file.
#[derive(Debug, Default)]
pub struct Raw {
    pub defaults: Option<RawDefaults>,
    pub nodes: Vec<RawNode>,
    pub cas: Vec<RawCa>,
    pub certs: Vec<RawCert>,
    pub keypairs: Vec<RawKeyPair>,
    pub renders: Vec<RawRender>,
    /// `[encryption]`: the age recipients every private key in the output folder is encrypted to.
    pub encryption: Option<RawEncryption>,
    /// `[vars]`: template variables every `[[render]]` sees, under its own `vars`.
    pub vars: Option<S<toml::Table>>,
    /// Names of entries that could not be read (already reported): `resolve` does not report a
    /// reference to one of them as unknown, so one mistake is not reported twice.
    pub dropped: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDefaults {
    pub algorithm: Option<S<String>>,
    pub validity: Option<S<String>>,
    pub ca_validity: Option<S<String>>,
    pub renew_before: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawEncryption {
    pub age_recipients: S<Vec<S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawNode {
    pub name: S<String>,
    #[serde(default)]
    pub ips: Vec<S<String>>,
    pub role: S<String>,
}

/// The subject and SAN fields shared by CAs and leaves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCa {
    pub name: S<String>,
    pub issuer: Option<S<String>>,
    pub path_len: Option<S<u8>>,
    #[serde(default)]
    pub cn: Option<S<String>>,
    #[serde(default)]
    pub o: Vec<S<String>>,
    #[serde(default)]
    pub ou: Vec<S<String>>,
    #[serde(default)]
    pub dns: Vec<S<String>>,
    #[serde(default)]
    pub ips: Vec<S<String>>,
    pub algorithm: Option<S<String>>,
    pub validity: Option<S<String>>,
    pub renew_before: Option<S<String>>,
    pub cert: S<String>,
    pub key: S<String>,
    /// The Kubernetes components that read this item's files (the restart plan's input).
    #[serde(default)]
    pub consumers: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCert {
    pub name: S<String>,
    pub issuer: S<String>,
    pub for_each_node: Option<S<String>>,
    pub nodes: Option<Vec<S<String>>>,
    #[serde(default)]
    pub cn: Option<S<String>>,
    #[serde(default)]
    pub o: Vec<S<String>>,
    #[serde(default)]
    pub ou: Vec<S<String>>,
    #[serde(default)]
    pub dns: Vec<S<String>>,
    #[serde(default)]
    pub ips: Vec<S<String>>,
    pub usage: S<Vec<S<String>>>,
    pub algorithm: Option<S<String>>,
    pub validity: Option<S<String>>,
    pub renew_before: Option<S<String>>,
    pub cert: S<String>,
    pub key: S<String>,
    /// The Kubernetes components that read this item's files (the restart plan's input).
    #[serde(default)]
    pub consumers: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawKeyPair {
    pub name: S<String>,
    pub algorithm: Option<S<String>>,
    pub private: S<String>,
    pub public: S<String>,
    /// The Kubernetes components that read this item's files (the restart plan's input).
    #[serde(default)]
    pub consumers: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRender {
    pub name: S<String>,
    pub template: S<String>,
    pub path: S<String>,
    pub for_each_node: Option<S<String>>,
    pub nodes: Option<Vec<S<String>>>,
    #[serde(default)]
    pub bind: Option<std::collections::BTreeMap<String, S<String>>>,
    #[serde(default)]
    pub secrets: Vec<S<String>>,
    #[serde(default)]
    pub allow_ca_key: bool,
    #[serde(default)]
    pub vars: Option<S<toml::Table>>,
    /// The Kubernetes components that read this item's files (the restart plan's input).
    #[serde(default)]
    pub consumers: Vec<S<String>>,
}

const TOP_LEVEL: [&str; 8] = [
    "defaults",
    "encryption",
    "vars",
    "node",
    "ca",
    "cert",
    "keypair",
    "render",
];

/// Parses `src`. On failure, returns every problem found: all syntax errors, or else every
/// unknown key and one error per otherwise malformed table (each table is checked on its own, so
/// one typo does not hide the next).
pub fn parse(src: &str) -> Result<Raw, Vec<Diagnostic>> {
    match parse_partial(src) {
        (Some(raw), diags) if diags.is_empty() => Ok(raw),
        (_, diags) => Err(diags),
    }
}

/// Like [`parse`], but also returns what could be read despite the problems, so later stages can
/// report theirs in the same run: unknown keys are left out of their table, and a table that is
/// still malformed is left out whole (its name goes to `Raw::dropped`). `None` after syntax errors.
pub fn parse_partial(src: &str) -> (Option<Raw>, Vec<Diagnostic>) {
    let (doc, errors) = DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        return (None, syntax::diagnostics(src, &errors));
    }
    let mut raw = Raw::default();
    let mut diags = Vec::new();
    for (key, value) in doc.get_ref().iter() {
        let name: &str = key.get_ref();
        let mut cx = Tables {
            src,
            diags: &mut diags,
            dropped: &mut raw.dropped,
        };
        match name {
            "defaults" => raw.defaults = cx.one("[defaults]".into(), value),
            "node" => raw.nodes = cx.many(name, value),
            "ca" => raw.cas = cx.many(name, value),
            "cert" => raw.certs = cx.many(name, value),
            "keypair" => raw.keypairs = cx.many(name, value),
            "render" => raw.renders = cx.many(name, value),
            "vars" => raw.vars = cx.one("[vars]".into(), value),
            "encryption" => raw.encryption = cx.one("[encryption]".into(), value),
            other => diags.push(unknown_top_level(other, key.span())),
        }
    }
    // Tables are visited by key, not in file order; report in file order.
    diags.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
    (Some(raw), diags)
}

fn unknown_top_level(key: &str, span: std::ops::Range<usize>) -> Diagnostic {
    let d = Diagnostic::new(format!("unknown top-level key `{key}`"), Some(span));
    match diag::nearest(key, TOP_LEVEL) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help(format!("expected one of {}", quote_list(&TOP_LEVEL))),
    }
}

/// What reading the tables of a file collects: every problem, and the names of entries that
/// could not be read.
struct Tables<'a> {
    src: &'a str,
    diags: &'a mut Vec<Diagnostic>,
    dropped: &'a mut Vec<String>,
}

impl Tables<'_> {
    /// Reads one table, `header` naming it as pki.toml does (`[[cert]]`, `[defaults]`). A key
    /// the table does not have, or a value of the wrong kind, is reported, left out, and the table
    /// read again, so that every such mistake of a table is reported in one run. A table with an
    /// unknown key is still used (without it); one with a bad value, or a missing key, is reported
    /// and dropped.
    fn one<T: for<'de> Deserialize<'de>>(
        &mut self,
        header: String,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let mut value = value.clone();
        // Keys dropped so far, and the keys that the unknown ones were probably meant to be: a
        // missing `issuer` after an unknown `isuer` is the same mistake, reported once.
        let mut explained: Vec<String> = Vec::new();
        let mut bad_value = false;
        loop {
            let e = match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(v) if !bad_value => return Some(v),
                Ok(_) => break,
                Err(e) => e,
            };
            let table = fields::Table {
                header: header.clone(),
                value: &value,
                src: self.src,
            };
            let (d, problem) = fields::translate(&e, &table);
            let drop = match problem {
                fields::Problem::Unknown { key, suggested } => {
                    explained.extend(suggested);
                    Some(key)
                }
                fields::Problem::Value { key } => {
                    bad_value = true;
                    explained.push(key.clone());
                    Some(key)
                }
                fields::Problem::Missing { key } if explained.contains(&key) => {
                    break;
                }
                fields::Problem::Missing { .. } | fields::Problem::Other => None,
            };
            self.diags.push(d);
            let removed = match (drop, value.get_mut()) {
                (Some(key), DeValue::Table(t)) => t.remove(key.as_str()).is_some(),
                _ => false,
            };
            if !removed {
                break;
            }
        }
        self.dropped.extend(entry_name(&value));
        None
    }

    /// Reads `[[key]]`: an array of tables, each read on its own.
    fn many<T: for<'de> Deserialize<'de>>(
        &mut self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Vec<T> {
        let Some(array) = value.get_ref().as_array() else {
            self.diags.push(
                Diagnostic::new(
                    format!("`{key}` must be an array of tables"),
                    Some(value.span()),
                )
                .with_help(format!("write each entry as a `[[{key}]]` table")),
            );
            return Vec::new();
        };
        array
            .iter()
            .filter_map(|v| self.one(format!("[[{key}]]"), v))
            .collect()
    }
}

/// The `name` of an entry's table, if it has one that is a string.
fn entry_name(value: &Spanned<DeValue<'_>>) -> Option<String> {
    let name = value.get_ref().as_table()?.get("name")?;
    name.get_ref().as_str().map(String::from)
}

pub(crate) fn quote_list(items: &[&str]) -> String {
    let mut shown: Vec<String> = items
        .iter()
        .take(QUOTED_MAX)
        .map(|s| format!("`{s}`"))
        .collect();
    if items.len() > QUOTED_MAX {
        shown.push(format!("and {} more", items.len() - QUOTED_MAX));
    }
    shown.join(", ")
}

/// How many names a help line quotes: a list of every node of a 10,000-node cluster helps no
/// one, and the first names show what the names look like.
const QUOTED_MAX: usize = 12;

#[cfg(test)]
mod quote_tests {
    #[test]
    fn a_long_list_is_cut_and_counted() {
        assert_eq!(super::quote_list(&["a", "b"]), "`a`, `b`");
        let many: Vec<String> = (0..40_000).map(|i| format!("worker-{i}")).collect();
        let names: Vec<&str> = many.iter().map(String::as_str).collect();
        let list = super::quote_list(&names);
        assert!(list.starts_with("`worker-0`, `worker-1`, "), "{list}");
        assert!(list.ends_with("`worker-11`, and 39988 more"), "{list}");
    }
}
