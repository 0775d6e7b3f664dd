//! Diagnostics for the files a user writes (`pki.toml`, the templates): a message, where it points
//! and a help line, rendered the way rustc and cargo render theirs (`--> pki.toml:14:10`, the
//! source line, a caret underline). `snippet` is the one renderer of a position in a file;
//! `render` uses it for pki.toml's diagnostics, `render::render` for template errors.

use std::fmt::Write as _;
use std::ops::Range;

/// One problem found in an input file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Range<usize>>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}

/// Line and column (both 1-based, column counted in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    Lines::new(src).line_col(offset)
}

/// The start of every line of a text, found once, so that the line and column of any offset is a
/// binary search and not a count from the start of the file: rendering N diagnostics of a large
/// file stays linear in N.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    src: &'a str,
    /// Byte offset of the first character of each line; `starts[0]` is 0.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(src: &'a str) -> Lines<'a> {
        let breaks = src.match_indices('\n').map(|(i, _)| i + 1);
        Lines {
            src,
            starts: std::iter::once(0).chain(breaks).collect(),
        }
    }

    /// Line and column (both 1-based, the column counted in characters) of a byte offset; an
    /// offset past the end is the end.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.src, offset.min(self.src.len()));
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        (line, self.src[start..offset].chars().count() + 1)
    }

    /// The text of line `line` (1-based), without its line break; empty past the end.
    pub fn text(&self, line: usize) -> &'a str {
        let Some(&start) = line.checked_sub(1).and_then(|i| self.starts.get(i)) else {
            return "";
        };
        let end = self
            .starts
            .get(line)
            .map_or(self.src.len(), |&next| next - 1);
        let text = &self.src[start..end];
        text.strip_suffix('\r').unwrap_or(text)
    }

    /// The byte offset where line `line` (1-based) starts, if there is one.
    pub fn start(&self, line: usize) -> Option<usize> {
        line.checked_sub(1)
            .and_then(|i| self.starts.get(i))
            .copied()
    }

    /// How many lines there are (a final line break starts an empty last line).
    pub fn count(&self) -> usize {
        self.starts.len()
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Where a caret goes in a file: a line and a column (both 1-based, the column counted in
/// characters), and how many characters it underlines. Diagnostics of pki.toml get it from a byte
/// span (`Position::of_span`); template errors from the line and column handlebars reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub col: usize,
    pub width: usize,
}

impl Position {
    /// The position of `span` in the text of `lines`: its start, underlined to its end if that is
    /// on the same line, else one character.
    pub fn of_span(lines: &Lines<'_>, span: &Range<usize>) -> Position {
        let (line, col) = lines.line_col(span.start);
        let on_line = lines.text(line).chars().count() + 1;
        let (end_line, end_col) = lines.line_col(span.end.max(span.start));
        let width = if end_line == line && end_col > col && end_col <= on_line {
            end_col - col
        } else {
            1
        };
        let width = width.min(on_line.saturating_sub(col).max(1));
        Position { line, col, width }
    }
}

/// What follows a diagnostic's `error:` line: `--> FILE:LINE:COL`, the line of `src` with the
/// caret under `at`, and `= help: HELP`; without a position, the file name and the help only.
/// `file` is the name the user knows the file by (`pki.toml`, `templates/NAME`). Lines are joined
/// by `\n`, with none at the end.
pub fn snippet(file: &str, src: &Lines<'_>, at: Option<Position>, help: Option<&str>) -> String {
    let mut lines = Vec::new();
    let gutter = match at {
        Some(Position { line, col, width }) => {
            let text = src.text(line);
            let gutter = " ".repeat(line.to_string().len());
            let caret = format!("{}{}", " ".repeat(col.saturating_sub(1)), "^".repeat(width));
            lines.push(format!("{gutter}--> {file}:{line}:{col}"));
            lines.push(format!("{gutter} |"));
            lines.push(format!("{line} | {text}"));
            lines.push(format!("{gutter} | {caret}"));
            gutter
        }
        None => {
            lines.push(format!("  --> {file}"));
            " ".to_string()
        }
    };
    if let Some(help) = help {
        lines.push(format!("{gutter} = help: {help}"));
    }
    lines.join("\n")
}

/// Renders diagnostics for `file` (its display name) whose text is `src`, and the count.
pub fn render(file: &str, src: &str, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    let lines = Lines::new(src);
    for d in diags {
        let at = d.span.as_ref().map(|span| Position::of_span(&lines, span));
        let _ = writeln!(out, "error: {}", d.message);
        let _ = writeln!(out, "{}", snippet(file, &lines, at, d.help.as_deref()));
    }
    let n = diags.len();
    let _ = writeln!(
        out,
        "error: {file} has {n} error{}; nothing was written",
        if n == 1 { "" } else { "s" }
    );
    out
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|&(d, c)| close_enough(d, word, c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Whether `d` edits from `word` to `candidate` look like a typo rather than another word: one
/// edit between short words (`cm` for `cn`, never `x` for `ca`), two between longer ones, a third
/// of the longer word beyond nine letters, and never a word that is all edits.
fn close_enough(d: usize, word: &str, candidate: &str) -> bool {
    let len = word.chars().count();
    let longest = len.max(candidate.chars().count());
    let limit = if longest <= 3 { 1 } else { 2.max(longest / 3) };
    d <= limit && d < len
}

/// Edits from `a` to `b`: insertions, deletions, substitutions, and swaps of two neighbouring
/// letters (`dsn` for `dns` is one), the optimal string alignment distance.
fn levenshtein(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 0..a.len() {
        let mut cur = vec![i + 1];
        for j in 0..b.len() {
            let cost = usize::from(a[i] != b[j]);
            let mut d = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(before[j - 1] + 1);
            }
            cur.push(d);
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let src = "a = 1\nbb = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 11), (2, 6));
    }

    #[test]
    fn lines_agree_with_counting_from_the_start() {
        let src = "a = 1\r\nbé = \"x\"\n\nlast";
        let lines = Lines::new(src);
        for offset in 0..=src.len() + 2 {
            let before = &src[..floor_char_boundary(src, offset.min(src.len()))];
            let line = before.matches('\n').count() + 1;
            let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .count()
                + 1;
            assert_eq!(lines.line_col(offset), (line, col), "offset {offset}");
        }
        assert_eq!(lines.text(1), "a = 1");
        assert_eq!(lines.text(2), "bé = \"x\"");
        assert_eq!(lines.text(3), "");
        assert_eq!(lines.text(4), "last");
        assert_eq!(lines.text(5), "");
    }

    #[test]
    fn render_points_at_the_span() {
        let src = "[[cert]]\nissuer = \"etcd-ca\"\n";
        let d = Diagnostic::new("unknown issuer `etcd-ca`", Some(18..27)).with_help("declare it");
        let text = render("pki.toml", src, &[d]);
        assert!(text.contains("--> pki.toml:2:10"), "{text}");
        assert!(text.contains("2 | issuer = \"etcd-ca\""), "{text}");
        assert!(text.contains("  |          ^^^^^^^^^"), "{text}");
        assert!(
            text.contains("pki.toml has 1 error; nothing was written"),
            "{text}"
        );
    }

    #[test]
    fn snippet_renders_any_file_at_a_position() {
        let src = "a: {{vars.a}}\nb: {{vars.b}}\n";
        let at = Position {
            line: 2,
            col: 4,
            width: 11,
        };
        let text = snippet(
            "templates/t.hbs",
            &Lines::new(src),
            Some(at),
            Some("check it"),
        );
        assert_eq!(
            text,
            " --> templates/t.hbs:2:4\n  |\n2 | b: {{vars.b}}\n  |    ^^^^^^^^^^^\n  = help: check it"
        );
        assert_eq!(
            snippet("templates/t.hbs", &Lines::new(src), None, Some("check it")),
            "  --> templates/t.hbs\n  = help: check it"
        );
    }

    #[test]
    fn a_span_over_lines_is_underlined_on_its_first() {
        let src = "x = [\n  1,\n]\n";
        let at = Position::of_span(&Lines::new(src), &(4..12));
        assert_eq!(
            at,
            Position {
                line: 1,
                col: 5,
                width: 1
            }
        );
    }

    #[test]
    fn nearest_suggests_typos_only() {
        assert_eq!(nearest("validty", ["validity", "issuer"]), Some("validity"));
        assert_eq!(nearest("zzzzzz", ["validity", "issuer"]), None);
        assert_eq!(nearest("cm", ["cn", "ca"]), Some("cn"));
        assert_eq!(nearest("ip", ["ips"]), Some("ips"));
        assert_eq!(
            nearest("x", ["ca", "cn"]),
            None,
            "one letter is no typo of two"
        );
        assert_eq!(nearest("ab", ["cn"]), None, "nothing in common");
        assert_eq!(nearest("dsn", ["dns"]), Some("dns"), "a swap is one edit");
        assert_eq!(
            nearest("nsd", ["dns"]),
            None,
            "two edits between three letters"
        );
        assert_eq!(nearest("vlaue", ["value"]), Some("value"));
    }
}
