//! Reading what the CLI prints.

use std::collections::BTreeSet;

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

/// The plan in `stdout` is exactly `want`: the same (action, name) lines, each reason containing
/// the expected text.
pub fn assert_plan(what: &str, stdout: &str, want: &[(&str, &str, &str)]) {
    let got = plan_lines(stdout);
    let got_pairs: BTreeSet<(&str, &str)> = got
        .iter()
        .map(|(a, n, _)| (a.as_str(), n.as_str()))
        .collect();
    let want_pairs: BTreeSet<(&str, &str)> = want.iter().map(|(a, n, _)| (*a, *n)).collect();
    assert_eq!(got_pairs, want_pairs, "{what}: planned actions\n{stdout}");
    for (action, name, reason) in want {
        let line = got
            .iter()
            .find(|(a, n, _)| a == action && n == name)
            .unwrap();
        assert!(
            line.2.contains(reason),
            "{what}: {action} {name} should say `{reason}`, says `{}`",
            line.2
        );
    }
}
