//! Reading what the CLI prints.

/// The sigils the report puts before each planned item.
const SIGILS: [&str; 7] = ["+", "!", "~", "?", "=", "x", "-"];

/// The item lines of a printed plan, in order, as (action, item, reason). A line is one when its
/// first word is a sigil: one of the report's, or any other single punctuation character (so a
/// new sigil is not overlooked).
pub fn plan_lines(stdout: &str) -> Vec<(String, String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let sigil = words.next()?;
            let punctuation =
                sigil.chars().count() == 1 && !sigil.chars().all(char::is_alphanumeric);
            if !SIGILS.contains(&sigil) && !punctuation {
                return None;
            }
            let action = words.next()?.to_string();
            let item = words.next()?.to_string();
            let reason = line
                .split_once("  (")
                .map(|(_, r)| r.strip_suffix(')').unwrap_or(r).to_string())
                .unwrap_or_default();
            Some((action, item, reason))
        })
        .collect()
}
