//! Diagnostics for `pki.toml`: a message, an optional byte span and a help line, rendered the way
//! rustc and cargo render theirs (`--> pki.toml:14:10`, the source line, a caret underline).

use std::fmt::Write as _;
use std::ops::Range;

/// One problem found in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    let offset = offset.min(src.len());
    let before = &src[..floor_char_boundary(src, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders diagnostics for `file` (its display name) whose text is `src`.
pub fn render(file: &str, src: &str, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let _ = writeln!(out, "error: {}", d.message);
        if let Some(span) = &d.span {
            let (line, col) = line_col(src, span.start);
            let text = src.lines().nth(line - 1).unwrap_or("");
            let gutter = " ".repeat(line.to_string().len());
            let (_, end_col) = line_col(src, span.end.max(span.start));
            let on_line = text.chars().count() + 1;
            let width = if end_col > col && end_col <= on_line {
                end_col - col
            } else {
                1
            };
            let width = width.min(on_line.saturating_sub(col).max(1));
            let _ = writeln!(out, "{gutter}--> {file}:{line}:{col}");
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{line} | {text}");
            let _ = writeln!(
                out,
                "{gutter} | {}{}",
                " ".repeat(col - 1),
                "^".repeat(width)
            );
            if let Some(help) = &d.help {
                let _ = writeln!(out, "{gutter} = help: {help}");
            }
        } else {
            let _ = writeln!(out, "  --> {file}");
            if let Some(help) = &d.help {
                let _ = writeln!(out, "  = help: {help}");
            }
        }
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
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
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
    fn nearest_suggests_typos_only() {
        assert_eq!(nearest("validty", ["validity", "issuer"]), Some("validity"));
        assert_eq!(nearest("zzzzzz", ["validity", "issuer"]), None);
    }
}
