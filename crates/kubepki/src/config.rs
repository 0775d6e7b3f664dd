//! Stage 1, PARSE: the serde types that mirror `pki.toml`, and the parser that turns its text into
//! them while collecting every problem it can find in one pass.
//!
//! These types keep `toml::Spanned` on each value that a later stage validates, so that stage can
//! point at the exact spot. Defaults are not applied here; `resolve` owns them.

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::diag::{self, Diagnostic};

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawKeyPair {
    pub name: S<String>,
    pub algorithm: Option<S<String>>,
    pub private: S<String>,
    pub public: S<String>,
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
        let mut diags: Vec<Diagnostic> = errors.iter().map(from_toml_error).collect();
        diags.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
        return (None, diags);
    }
    let mut raw = Raw::default();
    let mut diags = Vec::new();
    for (key, value) in doc.get_ref().iter() {
        let name: &str = key.get_ref();
        match name {
            "defaults" => raw.defaults = one(value, &mut diags, &mut raw.dropped),
            "node" => raw.nodes = many(name, value, &mut diags, &mut raw.dropped),
            "ca" => raw.cas = many(name, value, &mut diags, &mut raw.dropped),
            "cert" => raw.certs = many(name, value, &mut diags, &mut raw.dropped),
            "keypair" => raw.keypairs = many(name, value, &mut diags, &mut raw.dropped),
            "render" => raw.renders = many(name, value, &mut diags, &mut raw.dropped),
            "vars" => raw.vars = one(value, &mut diags, &mut raw.dropped),
            "encryption" => raw.encryption = one(value, &mut diags, &mut raw.dropped),
            other => {
                let mut d =
                    Diagnostic::new(format!("unknown top-level key `{other}`"), Some(key.span()));
                d = match diag::nearest(other, TOP_LEVEL) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("expected one of {}", quote_list(&TOP_LEVEL))),
                };
                diags.push(d);
            }
        }
    }
    // Tables are visited by key, not in file order; report in file order.
    diags.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
    (Some(raw), diags)
}

/// Reads one table. An unknown key is reported, left out, and the table read again (so every
/// unknown key of a table is reported, and the rest of the table still checked); any other error
/// is reported and the table dropped.
fn one<T: for<'de> Deserialize<'de>>(
    value: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
    dropped: &mut Vec<String>,
) -> Option<T> {
    let mut value = value.clone();
    loop {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => return Some(v),
            Err(e) => {
                diags.push(from_toml_error(&e));
                if e.message().starts_with("unknown field `")
                    && let (Some(span), DeValue::Table(t)) = (e.span(), value.get_mut())
                {
                    let key = t.iter().find(|(k, _)| k.span() == span);
                    let key = key.map(|(k, _)| k.get_ref().to_string());
                    if key.is_some_and(|k| t.remove(k.as_str()).is_some()) {
                        continue;
                    }
                }
                if let Some(name) = value
                    .get_ref()
                    .as_table()
                    .and_then(|t| t.get("name"))
                    .and_then(|n| n.get_ref().as_str())
                {
                    dropped.push(name.to_string());
                }
                return None;
            }
        }
    }
}

fn many<T: for<'de> Deserialize<'de>>(
    key: &str,
    value: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
    dropped: &mut Vec<String>,
) -> Vec<T> {
    let Some(array) = value.get_ref().as_array() else {
        diags.push(
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
        .filter_map(|v| one(v, diags, dropped))
        .collect()
}

/// Turns a toml error into a diagnostic, adding a "did you mean" for unknown fields.
pub fn from_toml_error(e: &toml::de::Error) -> Diagnostic {
    let message = e.message().trim().to_string();
    let mut d = Diagnostic::new(message.clone(), e.span());
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        if let Some(s) = diag::nearest(field, known.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
    }
    d
}

pub(crate) fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
