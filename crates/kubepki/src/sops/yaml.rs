//! YAML emission in the layout sops writes (go-yaml with a 4-space indent): block mappings and
//! sequences, a sequence under a key indented, plain scalars where they read back as the same
//! string, single quotes where only indicator characters stand in the way, double quotes where a
//! plain scalar would read as another type or holds characters that need escapes, and literal
//! blocks (`|`, `|-`, `|+`) for multi-line strings. A document in this layout comes back from
//! `sops decrypt` byte for byte.

use crate::sops::document::Node;

/// How much each level of block collections is indented.
const INDENT: usize = 4;

/// A document: its top-level mapping's entries.
pub(super) fn emit(entries: &[(String, Node)]) -> String {
    let mut out = String::new();
    write_map(
        &mut out,
        entries,
        Place {
            col: 0,
            child: INDENT,
            inline: false,
        },
    );
    out
}

/// Where a block collection goes: the column its keys or dashes start at, the indentation of
/// what is nested under them, and whether the first line follows a `- ` already written.
#[derive(Clone, Copy)]
struct Place {
    col: usize,
    child: usize,
    inline: bool,
}

fn write_map(out: &mut String, entries: &[(String, Node)], place: Place) {
    for (idx, (key, value)) in entries.iter().enumerate() {
        if idx > 0 || !place.inline {
            pad(out, place.col);
        }
        out.push_str(&key_text(key));
        out.push(':');
        write_value(out, value, place.child);
    }
}

/// A mapping's value after `key:`; nested collections go at `child`.
fn write_value(out: &mut String, value: &Node, child: usize) {
    match value {
        Node::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            write_map(
                out,
                entries,
                Place {
                    col: child,
                    child: child + INDENT,
                    inline: false,
                },
            );
        }
        Node::Seq(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, child, false);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, child);
        }
    }
}

/// A sequence whose dashes stand at column `dash`. A mapping in an item starts after its `- `
/// and nests its own collections one indent past the dash, as go-yaml does.
fn write_seq(out: &mut String, items: &[Node], dash: usize, inline: bool) {
    for (idx, item) in items.iter().enumerate() {
        if idx > 0 || !inline {
            pad(out, dash);
        }
        out.push_str("- ");
        match item {
            Node::Map(entries) if !entries.is_empty() => {
                let place = Place {
                    col: dash + 2,
                    child: dash + INDENT,
                    inline: true,
                };
                write_map(out, entries, place);
            }
            Node::Seq(inner) if !inner.is_empty() => write_seq(out, inner, dash + 2, true),
            scalar => write_scalar(out, scalar, dash + 2),
        }
    }
}

/// A scalar (or an empty collection) and its line end; a literal block's lines go at `indent`.
fn write_scalar(out: &mut String, node: &Node, indent: usize) {
    match node {
        Node::Str(text) => write_str(out, text, indent),
        Node::Int(n) => out.push_str(&n.to_string()),
        Node::Float(x) => out.push_str(&float_text(*x)),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Null => out.push_str("null"),
        Node::Map(_) => out.push_str("{}"),
        Node::Seq(_) => out.push_str("[]"),
    }
    out.push('\n');
}

/// A float that reads back as a float: Rust prints `1` for 1.0, which would read as an integer.
fn float_text(x: f64) -> String {
    let text = x.to_string();
    if text.contains(['.', 'e', 'E']) {
        text
    } else {
        format!("{text}.0")
    }
}

fn write_str(out: &mut String, text: &str, indent: usize) {
    match literal_chomping(text) {
        Some(chomp) => {
            out.push('|');
            out.push_str(chomp);
            let body = text.strip_suffix('\n').unwrap_or(text);
            for line in body.split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    pad(out, indent);
                    out.push_str(line);
                }
            }
        }
        None => out.push_str(&inline_text(text)),
    }
}

/// The chomping indicator of a literal block that holds `text` exactly, if one can: several
/// lines, nothing that needs escapes, and a first line that neither is empty nor starts with a
/// space (either would need an explicit indentation indicator).
fn literal_chomping(text: &str) -> Option<&'static str> {
    let several_lines = text.trim_end_matches('\n').contains('\n') || text.ends_with('\n');
    let printable = text
        .chars()
        .all(|c| c == '\n' || (printable(c) && c != '\t'));
    if !several_lines || !printable || text.starts_with([' ', '\n']) {
        return None;
    }
    Some(if text.ends_with("\n\n") {
        "+"
    } else if text.ends_with('\n') {
        ""
    } else {
        "-"
    })
}

/// A key: like a one-line string value.
fn key_text(key: &str) -> String {
    inline_text(key)
}

/// A string on one line: plain, single-quoted or double-quoted, the first that reads back as the
/// same string.
fn inline_text(text: &str) -> String {
    if !text.chars().all(|c| printable(c) && c != '\t') || resolves_to_other_type(text) {
        return double_quoted(text);
    }
    if is_plain_safe(text) {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', "''"))
}

/// Whether a plain scalar `text` would be read as null, a boolean (YAML 1.1's `yes`, `on`, `y`
/// too), a number or a timestamp rather than as a string.
fn resolves_to_other_type(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf",
        "+.inf", ".nan", "<<",
    ];
    WORDS.contains(&text.to_ascii_lowercase().as_str()) || looks_numeric(text) || looks_dated(text)
}

/// Integers (also `0x`, `0o`, `0b`, `_` separators, and YAML 1.1's `1:20`) and floats.
fn looks_numeric(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unsigned.strip_prefix(prefix) {
            return !rest.is_empty() && rest.chars().all(|c| c.is_digit(radix) || c == '_');
        }
    }
    if unsigned.contains(':') {
        let sexagesimal =
            |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit() || c == '_');
        return unsigned.split(':').all(sexagesimal);
    }
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let mantissa_ok = mantissa.matches('.').count() <= 1
        && mantissa.chars().any(|c| c.is_ascii_digit())
        && mantissa
            .chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == '.');
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

/// A date (`2001-12-14`, the start of a YAML 1.1 timestamp).
fn looks_dated(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 8 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-'
}

/// Whether `text` (printable, no tab, one line) reads back as itself when written plain.
fn is_plain_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let second = text.chars().nth(1);
    let indicator = "-?:,[]{}#&*!|>'\"%@`".contains(first);
    // `-`, `?` and `:` start a plain scalar when a non-space follows them.
    let starts_ok = !indicator || ("-?:".contains(first) && second.is_some_and(|c| c != ' '));
    starts_ok
        && !text.starts_with("---")
        && !text.starts_with("...")
        && !text.starts_with(' ')
        && !text.ends_with(' ')
        && !text.ends_with(':')
        && !text.contains(": ")
        && !text.contains(" #")
}

/// Whether YAML may hold `c` unescaped: not a control character, not a line or paragraph
/// separator (which YAML reads as line breaks), not a byte-order mark or non-character.
fn printable(c: char) -> bool {
    c == '\t'
        || !(c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            ))
}

/// A double-quoted scalar with YAML's escapes.
fn double_quoted(text: &str) -> String {
    let mut res = String::with_capacity(text.len() + 2);
    res.push('"');
    for c in text.chars() {
        match c {
            '"' => res.push_str("\\\""),
            '\\' => res.push_str("\\\\"),
            '\n' => res.push_str("\\n"),
            '\t' => res.push_str("\\t"),
            '\r' => res.push_str("\\r"),
            c if printable(c) => res.push(c),
            c => res.push_str(&format!("\\u{:04X}", u32::from(c))),
        }
    }
    res.push('"');
    res
}

fn pad(out: &mut String, col: usize) {
    out.extend(std::iter::repeat_n(' ', col));
}
