//! Which values of a document are encrypted: the rule a file records in its metadata
//! (`unencrypted_suffix`, `encrypted_suffix`, `unencrypted_regex` or `encrypted_regex`). As in
//! sops, a key the rule names decides for its whole subtree, and reading honours the rule too: a
//! value outside it is plaintext even when it looks like `ENC[...]`.

use regex::Regex;

use crate::sops::metadata::Metadata;
use crate::sops::{Error, Select};

/// sops's default rule: keys with this suffix are left unencrypted.
const UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// The rule, as sops applies it to each key on a value's path.
pub(super) enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

impl Rule {
    /// The rule that encrypts what `select` names.
    pub(super) fn of(select: Select<'_>) -> Result<Rule, Error> {
        match select {
            Select::All => Ok(Rule::UnencryptedSuffix(UNENCRYPTED_SUFFIX.to_owned())),
            Select::Keys(names) => {
                let names: Vec<String> = names.iter().map(|name| escape(name)).collect();
                compile(&format!("^({})$", names.join("|"))).map(Rule::EncryptedRegex)
            }
        }
    }

    /// The rule a file records; sops's default when it records none.
    pub(super) fn read(metadata: &Metadata) -> Result<Rule, Error> {
        let field = |name| metadata.field(name).filter(|text| !text.is_empty());
        let rules = [
            field("unencrypted_suffix").map(|s| Ok(Rule::UnencryptedSuffix(s.to_owned()))),
            field("encrypted_suffix").map(|s| Ok(Rule::EncryptedSuffix(s.to_owned()))),
            field("unencrypted_regex").map(|s| compile(s).map(Rule::UnencryptedRegex)),
            field("encrypted_regex").map(|s| compile(s).map(Rule::EncryptedRegex)),
        ];
        let mut rules = rules.into_iter().flatten();
        let rule = rules.next().unwrap_or_else(|| Rule::of(Select::All))?;
        if rules.next().is_some() {
            return Err(Error::Malformed("more than one encryption rule".to_owned()));
        }
        Ok(rule)
    }

    /// The metadata entry that records the rule.
    pub(super) fn entry(&self) -> (&'static str, String) {
        match self {
            Rule::UnencryptedSuffix(s) => ("unencrypted_suffix", s.clone()),
            Rule::EncryptedSuffix(s) => ("encrypted_suffix", s.clone()),
            Rule::UnencryptedRegex(r) => ("unencrypted_regex", r.as_str().to_owned()),
            Rule::EncryptedRegex(r) => ("encrypted_regex", r.as_str().to_owned()),
        }
    }

    /// Whether values at the top, under no key yet, are encrypted.
    pub(super) fn at_top(&self) -> bool {
        matches!(self, Rule::UnencryptedSuffix(_) | Rule::UnencryptedRegex(_))
    }

    /// Whether the values under `key` are encrypted, given whether its parent's are.
    pub(super) fn under(&self, parent: bool, key: &str) -> bool {
        match self {
            Rule::UnencryptedSuffix(s) => parent && !key.ends_with(s.as_str()),
            Rule::EncryptedSuffix(s) => parent || key.ends_with(s.as_str()),
            Rule::UnencryptedRegex(r) => parent && !r.is_match(key),
            Rule::EncryptedRegex(r) => parent || r.is_match(key),
        }
    }
}

/// Escapes a key name for a regular expression that matches it exactly. Only what is special
/// outside a character class is escaped, so `client-key-data` reads as it is written.
fn escape(name: &str) -> String {
    let mut res = String::with_capacity(name.len());
    for c in name.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            res.push('\\');
        }
        res.push(c);
    }
    res
}

/// sops's regular expressions are Go's RE2, whose syntax the `regex` crate shares.
fn compile(pattern: &str) -> Result<Regex, Error> {
    Regex::new(pattern).map_err(|e| Error::Unsupported(format!("the rule `{pattern}`: {e}")))
}
