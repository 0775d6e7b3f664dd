//! The `sops` metadata map: the data key wrapped for each age recipient, `lastmodified`, the
//! encrypted MAC, the rule that chose the encrypted values, and the format version.

use std::io::Read as _;

use age::armor::ArmoredReader;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::sops::document::Node;
use crate::sops::value::{self, DataKey, Kind};
use crate::sops::{Error, FORMAT_VERSION, Identity, Recipient};

/// The metadata, as its entries in order (so a rewrap keeps what it does not know).
#[derive(Debug, Clone)]
pub(super) struct Metadata {
    entries: Vec<(String, Node)>,
}

impl Metadata {
    /// New metadata for a file sealed with `key` at `now`, whose values hash to `mac`.
    pub(super) fn new(
        key: &DataKey,
        recipients: &[Recipient],
        now: OffsetDateTime,
        mac: String,
        rule: Option<(&'static str, String)>,
    ) -> Result<Metadata, Error> {
        let lastmodified = lastmodified(now)?;
        let mac = value::encrypt(key, mac.as_bytes(), Kind::Str, &lastmodified)?;
        let mut entries = vec![
            ("age".to_owned(), age_stanzas(key, recipients)?),
            ("lastmodified".to_owned(), Node::Str(lastmodified)),
            ("mac".to_owned(), Node::Str(mac)),
        ];
        if let Some((name, value)) = rule {
            entries.push((name.to_owned(), Node::Str(value)));
        }
        entries.push(("version".to_owned(), Node::Str(FORMAT_VERSION.to_owned())));
        Ok(Metadata { entries })
    }

    /// Reads the metadata node of a file; key groups (several groups, Shamir) are refused.
    pub(super) fn read(node: Node) -> Result<Metadata, Error> {
        let Node::Map(entries) = node else {
            return Err(Error::Malformed("`sops` is not a mapping".to_owned()));
        };
        let metadata = Metadata { entries };
        if metadata
            .get("key_groups")
            .is_some_and(|node| !is_empty(node))
        {
            return Err(Error::Unsupported(
                "key groups (shamir_threshold)".to_owned(),
            ));
        }
        Ok(metadata)
    }

    pub(super) fn into_node(self) -> Node {
        Node::Map(self.entries)
    }

    pub(super) fn entries(&self) -> &[(String, Node)] {
        &self.entries
    }

    fn get(&self, name: &str) -> Option<&Node> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A string entry, if there is one.
    pub(super) fn field(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Node::as_str)
    }

    fn text(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .and_then(Node::as_str)
            .ok_or_else(|| Error::Malformed(format!("`sops.{name}` is missing or not a string")))
    }

    /// Each age recipient and its armored `enc`, in order.
    pub(super) fn recipients(&self) -> Result<Vec<(String, String)>, Error> {
        let Some(Node::Seq(stanzas)) = self.get("age") else {
            return Err(Error::NoAgeRecipients);
        };
        let mut res = Vec::with_capacity(stanzas.len());
        for stanza in stanzas {
            let field = |name| stanza.get(name).and_then(Node::as_str).map(str::to_owned);
            match (field("recipient"), field("enc")) {
                (Some(recipient), Some(enc)) => res.push((recipient, enc)),
                _ => {
                    return Err(Error::Malformed(
                        "an age entry without recipient or enc".into(),
                    ));
                }
            }
        }
        if res.is_empty() {
            return Err(Error::NoAgeRecipients);
        }
        Ok(res)
    }

    /// The data key, unwrapped with the first identity that opens one of the age stanzas.
    pub(super) fn data_key(&self, identities: &[Identity]) -> Result<DataKey, Error> {
        let recipients = self.recipients()?;
        for (_, enc) in &recipients {
            if let Some(key) = unwrap_key(enc, identities)? {
                return Ok(key);
            }
        }
        Err(Error::NoMatchingIdentity {
            recipients: recipients.into_iter().map(|r| r.0).collect(),
        })
    }

    /// The MAC, decrypted (it is bound to `lastmodified`).
    pub(super) fn mac(&self, key: &DataKey) -> Result<String, Error> {
        let lastmodified = self.text("lastmodified")?;
        let (mac, _) =
            value::decrypt(key, self.text("mac")?, lastmodified).map_err(|e| match e {
                Error::Tampered { .. } => Error::MacMismatch,
                other => other,
            })?;
        String::from_utf8(mac).map_err(|_| Error::MacMismatch)
    }

    /// Whether the MAC covers only the encrypted values (`mac_only_encrypted: true`).
    pub(super) fn mac_only_encrypted(&self) -> bool {
        matches!(self.get("mac_only_encrypted"), Some(Node::Bool(true)))
    }

    /// Replaces the age stanzas with `key` wrapped for `recipients`; the rest stays as it was.
    pub(super) fn set_recipients(
        &mut self,
        key: &DataKey,
        recipients: &[Recipient],
    ) -> Result<(), Error> {
        let stanzas = age_stanzas(key, recipients)?;
        match self.entries.iter_mut().find(|(k, _)| k == "age") {
            Some((_, node)) => *node = stanzas,
            None => self.entries.insert(0, ("age".to_owned(), stanzas)),
        }
        Ok(())
    }
}

/// `lastmodified` as sops writes it: RFC 3339 in UTC, whole seconds.
fn lastmodified(now: OffsetDateTime) -> Result<String, Error> {
    let utc = now.to_offset(time::UtcOffset::UTC);
    let whole = utc.replace_nanosecond(0).unwrap_or(utc);
    let unsupported = |_| Error::Unsupported(format!("the time {now} in lastmodified"));
    whole.format(&Rfc3339).map_err(unsupported)
}

fn is_empty(node: &Node) -> bool {
    match node {
        Node::Seq(items) => items.is_empty(),
        Node::Map(entries) => entries.is_empty(),
        Node::Null => true,
        _ => false,
    }
}

/// One age entry per recipient, each its own armored age file holding the 32-byte data key, as
/// sops writes them.
fn age_stanzas(key: &DataKey, recipients: &[Recipient]) -> Result<Node, Error> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    let mut stanzas = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let enc = age::encrypt_and_armor(&recipient.key, key.bytes())
            .map_err(|e| Error::Age(e.to_string()))?;
        stanzas.push(Node::Map(vec![
            ("recipient".to_owned(), Node::Str(recipient.text.clone())),
            ("enc".to_owned(), Node::Str(enc)),
        ]));
    }
    Ok(Node::Seq(stanzas))
}

/// The data key in one armored age file, if one of `identities` opens it.
fn unwrap_key(enc: &str, identities: &[Identity]) -> Result<Option<DataKey>, Error> {
    let malformed = |e: &dyn std::fmt::Display| Error::Malformed(format!("an age entry: {e}"));
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(enc.as_bytes()))
        .map_err(|e| malformed(&e))?;
    let identities = identities
        .iter()
        .map(|identity| -> &dyn age::Identity { &identity.0 });
    let mut reader = match decryptor.decrypt(identities) {
        Ok(reader) => reader,
        Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
        Err(e) => return Err(malformed(&e)),
    };
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|e| malformed(&e))?;
    DataKey::from_bytes(&bytes).map(Some)
}
