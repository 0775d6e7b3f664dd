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

const TOP_LEVEL: [&str; 6] = ["defaults", "node", "ca", "cert", "keypair", "render"];

/// Parses `src`. On failure, returns every problem found: all syntax errors, or else one error
/// per malformed table (each table is checked on its own, so one typo does not hide the next).
pub fn parse(src: &str) -> Result<Raw, Vec<Diagnostic>> {
    let (doc, errors) = DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        return Err(errors.iter().map(from_toml_error).collect());
    }
    let mut raw = Raw::default();
    let mut diags = Vec::new();
    for (key, value) in doc.get_ref().iter() {
        let name: &str = key.get_ref();
        match name {
            "defaults" => raw.defaults = one(value, &mut diags),
            "node" => raw.nodes = many(name, value, &mut diags),
            "ca" => raw.cas = many(name, value, &mut diags),
            "cert" => raw.certs = many(name, value, &mut diags),
            "keypair" => raw.keypairs = many(name, value, &mut diags),
            "render" => raw.renders = many(name, value, &mut diags),
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
    if diags.is_empty() {
        Ok(raw)
    } else {
        Err(diags)
    }
}

fn one<T: for<'de> Deserialize<'de>>(
    value: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(v) => Some(v),
        Err(e) => {
            diags.push(from_toml_error(&e));
            None
        }
    }
}

fn many<T: for<'de> Deserialize<'de>>(
    key: &str,
    value: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
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
    array.iter().filter_map(|v| one(v, diags)).collect()
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
