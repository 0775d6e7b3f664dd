//! `[encryption]`: the age recipients every private key is encrypted to. Each must be an age
//! X25519 recipient (`age1...`, as `age-keygen -y` prints it), declared once, and there is at
//! least one: a key encrypted to nobody could never be opened again.

use std::collections::BTreeSet;

use crate::config::RawEncryption;
use crate::resolve::Cx;
use crate::sops::Recipient;
use crate::spec::Encryption;

impl Cx {
    pub(super) fn encryption(&mut self, raw: Option<&RawEncryption>) -> Option<Encryption> {
        let raw = raw?;
        let mut recipients = Vec::new();
        let mut seen = BTreeSet::new();
        for text in raw.age_recipients.get_ref() {
            let span = Some(text.span());
            match Recipient::parse(text.get_ref()) {
                Ok(r) if !seen.insert(r.as_str().to_string()) => self.err(
                    format!("age recipient `{}` is listed twice", r.as_str()),
                    span,
                    None,
                ),
                Ok(r) => recipients.push(r),
                Err(_) => self.err(
                    format!("`{}` is not an age recipient", text.get_ref().trim()),
                    span,
                    Some(
                        "an age recipient starts with `age1`; `age-keygen -y KEYFILE` prints the \
                         one of an identity"
                            .into(),
                    ),
                ),
            }
        }
        if raw.age_recipients.get_ref().is_empty() {
            self.err(
                "`age-recipients` is empty: a key encrypted to no one could never be read again"
                    .into(),
                Some(raw.age_recipients.span()),
                Some("list at least one recipient (`age-keygen -y KEYFILE` prints one)".into()),
            );
        }
        Some(Encryption { recipients })
    }
}
