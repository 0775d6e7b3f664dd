//! TOML syntax errors in pki.toml's own words: what is wrong on the line and the edit that fixes
//! it, instead of the parser's grammar terms (`invalid basic string, expected '"'`).
//!
//! The parser recovers after a mistake and reports what follows it too, which after an unclosed
//! `[` or `{` is every later line of the file. Only the first mistake of each table is reported:
//! the rest of that table is skipped, and a table header swallowed by the unclosed value above it
//! is not a mistake of its own.

use std::collections::HashMap;
use std::ops::Range;

use crate::diag::{Diagnostic, Lines};

/// The diagnostics for the syntax `errors` of `src`: one per table at most, each translated.
pub(super) fn diagnostics(src: &str, errors: &[toml::de::Error]) -> Vec<Diagnostic> {
    let lines = Lines::new(src);
    let headers = Headers::of(&lines);
    let mut errors: Vec<&toml::de::Error> = errors.iter().collect();
    errors.sort_by_key(|e| e.span().map_or(usize::MAX, |s| s.start));
    // Errors come in file order, so the tables they are in do too: one comparison tells a table
    // that already has its error.
    let mut last_table = None;
    let mut diags = Vec::new();
    for e in errors {
        let span = e.span().unwrap_or(src.len()..src.len());
        let (line, col) = lines.line_col(span.start);
        let table = headers.table_of(line);
        if last_table == Some(table) {
            continue;
        }
        let swallowed = headers.starts_at(line, col) && !diags.is_empty();
        last_table = Some(table);
        if !swallowed {
            let at = At {
                src,
                lines: &lines,
                headers: &headers,
                span,
                line,
            };
            diags.push(translate(e.message(), &at));
        }
    }
    diags
}

/// The table headers of a file, found by their text (`[` first on a line): where each table
/// starts, and the first line of each header's text (to find what a duplicate repeats).
struct Headers {
    /// The line numbers of headers, ascending.
    lines: Vec<usize>,
    /// The column (1-based, in characters) of each header's `[`.
    cols: Vec<usize>,
    /// Header text (`[defaults]`) -> the line it is first on.
    first: HashMap<String, usize>,
}

impl Headers {
    fn of(lines: &Lines<'_>) -> Headers {
        let mut headers = Headers {
            lines: Vec::new(),
            cols: Vec::new(),
            first: HashMap::new(),
        };
        for line in 1..=lines.count() {
            let text = lines.text(line);
            let trimmed = text.trim_start();
            if trimmed.starts_with('[') {
                headers.lines.push(line);
                headers
                    .cols
                    .push(text.chars().count() - trimmed.chars().count() + 1);
                headers.first.entry(header_text(trimmed)).or_insert(line);
            }
        }
        headers
    }

    /// Which table `line` is in: the number of headers at or above it (0 before the first).
    fn table_of(&self, line: usize) -> usize {
        self.lines.partition_point(|&h| h <= line)
    }

    /// Whether `line`:`col` is the `[` of a header: a header the parser read as a value, because
    /// a `[` or `{` above it was never closed.
    fn starts_at(&self, line: usize, col: usize) -> bool {
        let i = self.table_of(line);
        i > 0 && self.lines[i - 1] == line && self.cols[i - 1] == col
    }
}

/// A header as written, without spaces or a comment: `[[ cert ]] # x` is `[[cert]]`.
fn header_text(trimmed: &str) -> String {
    let text = trimmed.split('#').next().unwrap_or("");
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Where an error is: its span, its line, and the file around it.
struct At<'a> {
    src: &'a str,
    lines: &'a Lines<'a>,
    headers: &'a Headers,
    span: Range<usize>,
    line: usize,
}

impl At<'_> {
    /// The error's line, without a comment and surrounding spaces.
    fn statement(&self) -> &str {
        statement(self.lines.text(self.line))
    }

    /// `key = value` of the error's line, split and trimmed, if it is written that way.
    fn key_value(&self) -> Option<(&str, &str)> {
        let (key, value) = self.statement().split_once('=')?;
        Some((key.trim(), value.trim()))
    }

    /// Whether the error is at the first character of its line (spaces aside).
    fn first_on_line(&self) -> bool {
        let text = self.lines.text(self.line);
        let start = self.lines.start(self.line).unwrap_or(0);
        self.span.start == start + (text.len() - text.trim_start().len())
    }

    /// The last line above the error's that has something on it, and the span of its last
    /// character: where a value that the error's line shows was not closed ends.
    fn previous_statement(&self) -> Option<(usize, Range<usize>)> {
        let line = (1..self.line)
            .rev()
            .find(|&l| !statement(self.lines.text(l)).is_empty())?;
        let text = self.lines.text(line);
        let end = self.lines.start(line)? + text.trim_end().len();
        let last = text.trim_end().chars().last()?.len_utf8();
        Some((line, end - last..end))
    }
}

/// A line's text without a comment (a `#` outside quotes) and surrounding spaces.
fn statement(text: &str) -> &str {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('#', None) => return text[..i].trim(),
            _ => {}
        }
    }
    text.trim()
}

/// One syntax error in pki.toml's words, with the edit that fixes it. `message` is the parser's
/// (`DESCRIPTION, expected WHAT`).
fn translate(message: &str, at: &At<'_>) -> Diagnostic {
    let description = message.split(", expected").next().unwrap_or(message);
    match description {
        "invalid basic string" | "invalid literal string" => unclosed_string(at, description),
        "invalid multi-line basic string" | "invalid multi-line literal string" => Diagnostic::new(
            "this multi-line string is not closed",
            Some(at.span.clone()),
        )
        .with_help("close it with `\"\"\"` (or `'''` for a literal string)"),
        "missing comma between array elements" if at.first_on_line() => unclosed(at, '[', ']'),
        "missing comma between key-value pairs" if at.first_on_line() => unclosed(at, '{', '}'),
        "unclosed array" => unclosed(at, '[', ']'),
        "unclosed inline table" => unclosed(at, '{', '}'),
        "missing comma between array elements" => Diagnostic::new(
            "missing `,` between two entries of this list",
            Some(at.span.clone()),
        )
        .with_help("separate a list's entries with commas: `dns = [\"a.example\", \"b.example\"]`"),
        "missing comma between key-value pairs" => Diagnostic::new(
            "missing `,` between two keys of this inline table",
            Some(at.span.clone()),
        )
        .with_help("separate an inline table's keys with commas: `bind = { ca = \"kubernetes-ca\", client = \"admin\" }`"),
        "unclosed table" | "unclosed array table" => unclosed_header(at),
        "string values must be quoted" => unquoted(at),
        "duplicate key" => duplicate(at),
        "missing value for key" | "key with no value" | "missing value" => no_value(at),
        "missing assignment between key-value pairs" | "key-value pair without `=`" => {
            missing_equals(at)
        }
        "missing escaped value" | "invalid escape sequence" => Diagnostic::new(
            "a `\\` in a double-quoted string starts an escape",
            Some(at.span.clone()),
        )
        .with_help("write `\\\\` for a backslash, or use single quotes: 'C:\\certs'"),
        _ => Diagnostic::new(
            format!("TOML syntax error: {description}"),
            Some(at.span.clone()),
        )
        .with_help(
            "each line of pki.toml is a table header (`[defaults]`, `[[cert]]`), `key = value` (strings in double quotes, lists in `[...]`) or a `#` comment",
        ),
    }
}

/// A string whose closing quote is missing: the fix is the line with it added.
fn unclosed_string(at: &At<'_>, description: &str) -> Diagnostic {
    let quote = if description.contains("literal") {
        '\''
    } else {
        '"'
    };
    let fixed = format!("{}{quote}", at.statement());
    Diagnostic::new("this string is not closed", Some(at.span.clone()))
        .with_help(format!("add `{quote}` at the end of the value: `{fixed}`"))
}

/// A `[` list or `{` inline table that is not closed: the parser notices on the next line, the
/// mistake is at the end of the line above.
fn unclosed(at: &At<'_>, open: char, close: char) -> Diagnostic {
    let what = if open == '[' { "list" } else { "inline table" };
    let (line, span) = match at.previous_statement() {
        Some(prev) if at.first_on_line() || at.span.start >= at.src.len() => prev,
        _ => (at.line, at.span.clone()),
    };
    let text = statement(at.lines.text(line));
    // Inline tables are written with spaces inside their braces, lists without.
    let space = if open == '{' { " " } else { "" };
    Diagnostic::new(format!("this {what} is not closed"), Some(span)).with_help(format!(
        "add `{close}` after its last entry: `{text}{space}{close}`"
    ))
}

/// `[defaults` or `[[cert]`: the fix is the header with its brackets.
fn unclosed_header(at: &At<'_>) -> Diagnostic {
    let text = at.statement();
    let array = text.starts_with("[[");
    let name = text.trim_matches(|c| c == '[' || c == ']').trim();
    let fixed = if array {
        format!("[[{name}]]")
    } else {
        format!("[{name}]")
    };
    Diagnostic::new("this table header is not closed", Some(at.span.clone()))
        .with_help(format!("write `{fixed}`"))
}

/// `issuer = ca`: the fix is the value in quotes.
fn unquoted(at: &At<'_>) -> Diagnostic {
    let help = match at.key_value() {
        Some((key, value)) if !value.is_empty() && !value.contains(['"', '[', '{']) => {
            format!("strings are written in double quotes: `{key} = \"{value}\"`")
        }
        _ => "strings are written in double quotes: `cn = \"kube-apiserver\"`".to_string(),
    };
    Diagnostic::new(
        "this value is not quoted (a string needs quotes)",
        Some(at.span.clone()),
    )
    .with_help(help)
}

/// A key set twice in one table, or a table header written twice: named, with where it was first.
fn duplicate(at: &At<'_>) -> Diagnostic {
    let key = at.src.get(at.span.clone()).unwrap_or("").trim();
    let key = key.trim_matches('"');
    let header = at.statement();
    if header.starts_with('[') {
        let first = at.headers.first.get(&header_text(header)).copied();
        let help = match first.filter(|&l| l < at.line) {
            Some(l) => {
                format!("`{header}` is first declared at line {l}; merge the two tables into one")
            }
            None => "merge the two tables into one".to_string(),
        };
        return Diagnostic::new(
            format!("table `{header}` is declared twice"),
            Some(at.span.clone()),
        )
        .with_help(help);
    }
    let help = match first_setting(at, key) {
        Some((line, col)) => {
            format!("`{key}` is first set at line {line}, column {col}; keep one of the two")
        }
        None => format!("keep one of the two `{key}` lines"),
    };
    Diagnostic::new(
        format!("`{key}` is set twice in this table"),
        Some(at.span.clone()),
    )
    .with_help(help)
}

/// Where `key` is first set in the table of the error's line: the first line of that table that
/// starts with `key =`.
fn first_setting(at: &At<'_>, key: &str) -> Option<(usize, usize)> {
    let table = at.headers.table_of(at.line);
    let from = if table == 0 {
        1
    } else {
        at.headers.lines[table - 1]
    };
    (from..at.line).find_map(|line| {
        let text = at.lines.text(line);
        let rest = text.trim_start().strip_prefix(key)?;
        rest.trim_start().starts_with('=').then(|| {
            let col = text.chars().count() - text.trim_start().chars().count() + 1;
            (line, col)
        })
    })
}

/// `issuer =` with nothing after it.
fn no_value(at: &At<'_>) -> Diagnostic {
    let key = at.key_value().map_or("key", |(k, _)| k).to_string();
    Diagnostic::new(format!("`{key}` has no value"), Some(at.span.clone())).with_help(format!(
        "write a value after `=`, for example `{key} = \"...\"`, or remove the line"
    ))
}

/// `issuer "ca"`: a key and a value without the `=` between them.
fn missing_equals(at: &At<'_>) -> Diagnostic {
    let text = at.statement();
    let help = match text.split_once(char::is_whitespace) {
        Some((key, value)) => format!("write `{key} = {}`", value.trim()),
        None => "write `key = value`".to_string(),
    };
    Diagnostic::new(
        "missing `=` between a key and its value",
        Some(at.span.clone()),
    )
    .with_help(help)
}
