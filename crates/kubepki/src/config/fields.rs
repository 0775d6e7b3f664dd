//! Errors of a table's keys and values in pki.toml's words: which key of which table, what kind
//! of value it takes, and the line that fixes it (`path-len = 0`), instead of serde's
//! (`invalid type: string "0", expected u8`).

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::quote_list;
use crate::diag::{self, Diagnostic};

/// Where a table's error is: the table (`[[cert]]`, `[defaults]`), its text, and the whole file.
pub(super) struct Table<'a> {
    /// The table as a header names it: `[[cert]]`, `[defaults]`.
    pub header: String,
    pub value: &'a Spanned<DeValue<'a>>,
    pub src: &'a str,
}

/// What a serde error of one table says, and which of the table's keys it is about.
pub(super) enum Problem {
    /// A key the table does not have: drop it and read the table again.
    Unknown {
        key: String,
        suggested: Option<String>,
    },
    /// A value of the wrong kind at this key: drop it and read the table again for more.
    Value { key: String },
    /// A required key is missing.
    Missing { key: String },
    /// Anything else: the table cannot be read.
    Other,
}

/// The diagnostic for serde error `e` of `table`, and what it is about.
pub(super) fn translate(e: &toml::de::Error, table: &Table<'_>) -> (Diagnostic, Problem) {
    let message = e.message().trim();
    let span = e.span();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        return unknown(rest, span, table);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or(rest).to_string();
        return (missing(&key, span, table), Problem::Missing { key });
    }
    let Some(entries) = table.value.get_ref().as_table() else {
        return (not_a_table(table), Problem::Other);
    };
    let found = span.as_ref().and_then(|s| value_at(entries, s, table.src));
    match (expected_kind(message), found) {
        (Some(Kind::Number), Some(found)) if message.starts_with("invalid value: integer") => {
            let d = out_of_range(&found, span, table);
            (d, Problem::Value { key: found.key })
        }
        (Some(kind), Some(found)) => {
            let d = wrong_kind(kind, &found, span, table);
            (d, Problem::Value { key: found.key })
        }
        _ => (
            Diagnostic::new(format!("in `{}`: {message}", table.header), span).with_help(
                "the README's \"pki.toml reference\" lists every key and the value it takes",
            ),
            Problem::Other,
        ),
    }
}

/// `defaults = 5`: a key that must be a table is set to a value.
fn not_a_table(table: &Table<'_>) -> Diagnostic {
    let name = table.header.trim_matches(|c| c == '[' || c == ']');
    Diagnostic::new(
        format!(
            "`{name}` is a table, not {}",
            Kind::of(table.value.get_ref())
        ),
        Some(table.value.span()),
    )
    .with_help(format!(
        "write `{}` on a line of its own, and its keys on the lines below it",
        table.header
    ))
}

/// `unknown field `KEY`, expected one of ...`: the key, and the nearest known one.
fn unknown(rest: &str, span: Option<Range<usize>>, table: &Table<'_>) -> (Diagnostic, Problem) {
    let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let suggested = diag::nearest(key, known.iter().copied());
    let help = match suggested {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("the keys of `{}` are {}", table.header, quote_list(&known)),
    };
    let d =
        Diagnostic::new(format!("unknown key `{key}` in `{}`", table.header), span).with_help(help);
    let problem = Problem::Unknown {
        key: key.to_string(),
        suggested: suggested.map(String::from),
    };
    (d, problem)
}

/// A required key is not set: what to add.
fn missing(key: &str, span: Option<Range<usize>>, table: &Table<'_>) -> Diagnostic {
    let name = table
        .value
        .get_ref()
        .as_table()
        .and_then(|t| t.get("name"))
        .and_then(|n| n.get_ref().as_str());
    let what = match name {
        Some(name) => format!("`{}` `{name}`", table.header),
        None => format!("this `{}`", table.header),
    };
    Diagnostic::new(format!("{what} has no `{key}`"), span).with_help(example(key))
}

/// An example value of a required key, as the README's reference writes it, and what it is.
fn example(key: &str) -> String {
    let (value, what) = match key {
        "name" => ("\"a-unique-name\"", "names are unique across all entries"),
        "issuer" => ("\"kubernetes-ca\"", "the name of the [[ca]] that signs it"),
        "usage" => (
            "[\"server\"]",
            "or `[\"client\"]`, `[\"server\", \"client\"]`",
        ),
        "cert" => ("\"pki/NAME.crt\"", "a path inside the output folder"),
        "key" => ("\"pki/NAME.key\"", "a path inside the output folder"),
        "private" => ("\"pki/sa.key\"", "a path inside the output folder"),
        "public" => ("\"pki/sa.pub\"", "a path inside the output folder"),
        "path" => ("\"NAME.conf\"", "a path inside the output folder"),
        "role" => ("\"worker\"", "or `\"control-plane\"`"),
        "template" => ("\"kubeconfig.hbs\"", "a file of the templates folder"),
        _ => return format!("add `{key} = ...`"),
    };
    format!("add `{key} = {value}` ({what})")
}

/// The kinds of value pki.toml's keys take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Bool,
    List,
    Table,
}

impl Kind {
    /// The kind, as a noun with its article: "a string".
    fn noun(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a whole number",
            Kind::Bool => "`true` or `false`",
            Kind::List => "a list",
            Kind::Table => "a table",
        }
    }

    fn of(v: &DeValue<'_>) -> &'static str {
        match v {
            DeValue::String(_) => "a string",
            DeValue::Integer(_) => "a number",
            DeValue::Float(_) => "a decimal number",
            DeValue::Boolean(_) => "a boolean",
            DeValue::Datetime(_) => "a date",
            DeValue::Array(_) => "a list",
            DeValue::Table(_) => "a table",
        }
    }
}

/// The kind serde's message says was expected: `expected u8`, `expected a string`...
fn expected_kind(message: &str) -> Option<Kind> {
    let expected = message.rsplit_once(", expected ")?.1;
    Some(match expected {
        "a string" => Kind::String,
        "u8" | "u16" | "u32" | "u64" | "i64" | "an integer" => Kind::Number,
        "a boolean" => Kind::Bool,
        "a sequence" => Kind::List,
        e if e == "a map" || e.starts_with("struct ") => Kind::Table,
        _ => return None,
    })
}

/// The value an error points at: the table's key it is under, whether it is an entry of that
/// key's list (or a key of its inline table), the value and its text.
struct Found<'a> {
    key: String,
    /// `ips` for the entry of `ips = [1]`, `bind.ca` for `bind = { ca = 5 }`.
    path: String,
    entry: bool,
    value: &'a DeValue<'a>,
    text: &'a str,
}

/// The value of `table` that `span` points at, found by its span.
fn value_at<'a>(table: &'a DeTable<'a>, span: &Range<usize>, src: &'a str) -> Option<Found<'a>> {
    let contains =
        |v: &Spanned<DeValue<'_>>| v.span().start <= span.start && span.end <= v.span().end;
    let (key, value) = table.iter().find(|(_, v)| contains(v))?;
    let key = key.get_ref().to_string();
    let text = |v: &Spanned<DeValue<'_>>| src.get(v.span()).unwrap_or("");
    let inner = match value.get_ref() {
        DeValue::Array(a) => a
            .iter()
            .find(|v| contains(v) && v.span() != value.span())
            .map(|v| (key.clone(), v)),
        DeValue::Table(t) => t
            .iter()
            .find(|(_, v)| contains(v))
            .map(|(k, v)| (format!("{key}.{}", k.get_ref()), v)),
        _ => None,
    };
    Some(match inner {
        Some((path, v)) => Found {
            key,
            path,
            entry: true,
            value: v.get_ref(),
            text: text(v),
        },
        None => Found {
            path: key.clone(),
            key,
            entry: false,
            value: value.get_ref(),
            text: text(value),
        },
    })
}

/// A value of the wrong kind: what the key takes, and the value rewritten as it should be.
fn wrong_kind(
    kind: Kind,
    found: &Found<'_>,
    span: Option<Range<usize>>,
    table: &Table<'_>,
) -> Diagnostic {
    let subject = match (found.entry, found.path.contains('.')) {
        (true, false) => format!("each entry of `{}` is", found.path),
        _ => format!("`{}` is", found.path),
    };
    let message = format!(
        "{subject} {}, not {} (in `{}`)",
        kind.noun(),
        Kind::of(found.value),
        table.header
    );
    let fixed = fixed_value(kind, found);
    Diagnostic::new(message, span).with_help(help_text(kind, found, &fixed))
}

/// A number out of its range: the only number pki.toml takes is `path-len`, a `u8`.
fn out_of_range(found: &Found<'_>, span: Option<Range<usize>>, table: &Table<'_>) -> Diagnostic {
    Diagnostic::new(
        format!(
            "`{}` is a number from 0 to 255, not {} (in `{}`)",
            found.path,
            found.text.trim(),
            table.header
        ),
        span,
    )
    .with_help(format!(
        "write `{} = 0` for a CA that signs only leaves, 1 for one level of CAs below it, and so on",
        found.path
    ))
}

/// The help line of a value of the wrong kind.
fn help_text(kind: Kind, found: &Found<'_>, fixed: &str) -> String {
    let unquoted =
        matches!(found.value, DeValue::String(_)) && matches!(kind, Kind::Number | Kind::Bool);
    let edit = match found.path.split_once('.') {
        Some((outer, inner)) => format!("write `{inner} = {fixed}` in `{outer}`"),
        None if found.entry => format!("write the entry as `{fixed}`"),
        None => format!("write `{} = {fixed}`", found.path),
    };
    if unquoted {
        format!("{edit}, without quotes")
    } else {
        edit
    }
}

/// The value `found` rewritten as `kind`, as close to what was written as it can be.
fn fixed_value(kind: Kind, found: &Found<'_>) -> String {
    let text = found.text.trim();
    let inner = text.trim_matches(|c| c == '"' || c == '\'');
    match (kind, found.value) {
        (Kind::Number, DeValue::String(s)) if s.trim().parse::<u64>().is_ok() => s.trim().into(),
        (Kind::Number, _) => "0".into(),
        (Kind::Bool, DeValue::String(s)) if matches!(s.trim(), "true" | "false") => s.trim().into(),
        (Kind::Bool, _) => "true".into(),
        (Kind::String, DeValue::Array(a)) => match a.iter().next().map(|v| v.get_ref()) {
            Some(DeValue::String(s)) => format!("\"{s}\""),
            _ => "\"...\"".into(),
        },
        (Kind::String, DeValue::Table(_)) => "\"...\"".into(),
        (Kind::String, _) => format!("\"{inner}\""),
        (Kind::List, DeValue::Table(_)) => "[\"...\"]".into(),
        (Kind::List, _) => format!("[{text}]"),
        (Kind::Table, _) if found.path == "bind" => {
            "{ ca = \"kubernetes-ca\", client = \"admin\" }".into()
        }
        (Kind::Table, _) => "{ name = \"value\" }".into(),
    }
}
