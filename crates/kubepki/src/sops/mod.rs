//! SOPS files with age recipients: what `sops encrypt` writes and `sops decrypt` (or Flux's
//! kustomize-controller) reads, for YAML documents and for any other file ("binary").
//!
//! Nothing in the pipeline uses this module yet; it is the foundation of keeping keys safe in git.
//!
//! # Why an own writer on `age`, `aes-gcm` and `sha2`, not a SOPS crate
//!
//! The one SOPS library in Rust, `rops` (0.1.x, one maintainer, MPL-2.0), calls itself
//! "SOPS-like": its own value model, no `encrypted_regex` over nested keys as sops applies it,
//! YAML through the deprecated `serde_yaml`, and default features that pull the AWS SDK and tokio;
//! it would also bring second copies of `age`, `rand` and `base64`. The format itself is small
//! (one AES-GCM construction, a SHA-512 MAC, a metadata map), and parity with the real sops is
//! what matters, so it is written here and tested against the real `sops` binary in both
//! directions (`tests/it/sops.rs`). The cryptography is not: age (the reference Rust
//! implementation, which sops itself interoperates with) wraps the data key, RustCrypto's
//! `aes-gcm` seals the values, `sha2` computes the MAC; `yaml-rust2` only parses, and the YAML
//! is emitted here in the layout sops (go-yaml) writes, so `sops decrypt` of a file made here
//! prints the document exactly as it was given.
//!
//! # The format (sops 3.x)
//!
//! - A random 32-byte data key. Each value is `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]`:
//!   AES-256-GCM with a random 32-byte IV, and as additional data the value's path (the keys from
//!   the root joined with `:`, plus a trailing `:`; list items add nothing to the path).
//! - `sops.age`: per recipient, the data key in an ASCII-armored age file (`enc`).
//! - `sops.mac`: SHA-512 over every value's plaintext in document order (empty strings and nulls
//!   add nothing, booleans are `True`/`False`), as upper-case hex, itself encrypted with
//!   `lastmodified` as additional data.
//! - The rule written: `encrypted_regex` (a key that matches has its whole subtree encrypted) or
//!   sops's default `unencrypted_suffix: _unencrypted`. Empty strings and nulls stay as they are.
//! - A binary file is `{"data": "ENC[...]", "sops": {...}}` as JSON. `sops decrypt FILE` prints
//!   the original bytes for any file name sops does not take for YAML, JSON, dotenv or INI (such
//!   as `ca.key`); otherwise `sops decrypt --input-type binary --output-type binary FILE`.
//!   A YAML file whose name does not end in `.yaml` or `.yml` (kubeadm's `admin.conf`) needs
//!   `sops decrypt --input-type yaml --output-type yaml admin.conf`.
//! - Reading honours the rule the file records, as sops does (any of the four suffix and regex
//!   rules: a value outside it is plaintext even if it looks like `ENC[...]`, a plaintext value
//!   inside it is refused), and `mac_only_encrypted`. Comments (which sops encrypts as
//!   `#ENC[...]` and leaves out of the MAC) are dropped; sops's JSON format and key groups are
//!   refused; of the master keys, only age's are used.
//!
//! # Purity
//!
//! Identities and recipients are parameters: nothing here reads the environment (the CLI, once
//! wired, reads `SOPS_AGE_KEY_FILE` or `SOPS_AGE_KEY` and passes the text to
//! [`Identity::parse_all`]). The
//! clock is a parameter (`now`, for `lastmodified`). Randomness (the data key, IVs, and age's own
//! ephemeral keys) comes from the operating system's RNG inside this module.

mod binary;
mod document;
mod metadata;
mod rule;
mod value;
mod yaml;

#[cfg(test)]
mod tests;

use std::fmt;

use time::OffsetDateTime;

use crate::sops::document::Doc;
use crate::sops::metadata::Metadata;
use crate::sops::rule::Rule;
use crate::sops::value::DataKey;

/// The sops version whose files this module writes, and was tested against.
const FORMAT_VERSION: &str = "3.11.0";

/// An age X25519 recipient (`age1...`): who can decrypt what is encrypted to it.
#[derive(Clone)]
pub struct Recipient {
    text: String,
    key: age::x25519::Recipient,
}

impl Recipient {
    /// Parses an `age1...` recipient, as written in `age-recipients` or by `age-keygen -y`.
    pub fn parse(text: &str) -> Result<Recipient, Error> {
        let text = text.trim();
        match text.parse::<age::x25519::Recipient>() {
            Ok(key) => Ok(Recipient {
                text: text.to_owned(),
                key,
            }),
            Err(_) => Err(Error::BadRecipient(text.to_owned())),
        }
    }

    /// The recipient as text (`age1...`).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.text)
    }
}

/// An age X25519 identity (`AGE-SECRET-KEY-1...`): a private key. Its `Debug` never shows it.
pub struct Identity(age::x25519::Identity);

impl Identity {
    /// Every identity in `text`: the contents of an age identity file (`SOPS_AGE_KEY_FILE`, as
    /// `age-keygen` writes it) or the value of `SOPS_AGE_KEY`. Blank lines and `#` comments are
    /// skipped; a line that is not an identity is an error that names its number, never its text.
    pub fn parse_all(text: &str) -> Result<Vec<Identity>, Error> {
        let mut res = Vec::new();
        for (idx, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.parse::<age::x25519::Identity>() {
                Ok(identity) => res.push(Identity(identity)),
                Err(_) => return Err(Error::BadIdentity { line: idx + 1 }),
            }
        }
        if res.is_empty() {
            return Err(Error::NoIdentities);
        }
        Ok(res)
    }

    /// A new identity from the operating system's RNG.
    pub fn generate() -> Identity {
        Identity(age::x25519::Identity::generate())
    }

    /// The recipient that encrypts to this identity.
    pub fn recipient(&self) -> Recipient {
        let key = self.0.to_public();
        Recipient {
            text: key.to_string(),
            key,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Identity([secret key elided])")
    }
}

/// Which values of a YAML document are encrypted.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Every value, except under keys ending in `_unencrypted` (sops's default rule).
    All,
    /// The whole subtree under every key with one of these names, at any depth, and nothing else
    /// (`encrypted_regex: ^(name|...)$`). Flux's convention for Kubernetes manifests is
    /// `["data", "stringData"]`; a kubeconfig's key is `["client-key-data"]`.
    Keys(&'a [&'a str]),
}

/// Encrypts a file of any content as sops's binary format (JSON), to every recipient.
pub fn encrypt_binary(
    plaintext: &[u8],
    recipients: &[Recipient],
    now: OffsetDateTime,
) -> Result<String, Error> {
    let key = DataKey::generate()?;
    let sealed = binary::seal(&key, plaintext)?;
    let metadata = Metadata::new(&key, recipients, now, sealed.mac, None)?;
    Ok(binary::emit(&sealed.data, &metadata))
}

/// Encrypts a YAML document (one document, a mapping at the top) to every recipient, encrypting
/// the values `select` names; the other keys and values stay readable, in their order.
pub fn encrypt_yaml(
    text: &str,
    select: Select<'_>,
    recipients: &[Recipient],
    now: OffsetDateTime,
) -> Result<String, Error> {
    let mut doc = Doc::parse_yaml(text)?;
    if doc.sops().is_some() {
        return Err(Error::AlreadyEncrypted);
    }
    let key = DataKey::generate()?;
    let rule = Rule::of(select)?;
    let mac = document::seal(&mut doc, &key, &rule)?;
    let metadata = Metadata::new(&key, recipients, now, mac, Some(rule.entry()))?;
    doc.set_sops(metadata.into_node());
    Ok(yaml::emit(doc.entries()))
}

/// Decrypts a SOPS file, YAML or binary, with the first identity that opens its data key, after
/// checking every value and the MAC. A YAML file gives the YAML document without its metadata;
/// a binary file gives the original bytes.
pub fn decrypt(file_text: &str, identities: &[Identity]) -> Result<Vec<u8>, Error> {
    match File::parse(file_text)? {
        File::Binary(file) => binary::open(&file, identities),
        File::Yaml(mut doc) => {
            let metadata = Metadata::read(doc.take_sops()?)?;
            let key = metadata.data_key(identities)?;
            document::open(&mut doc, &key, &metadata)?;
            Ok(yaml::emit(doc.entries()).into_bytes())
        }
    }
}

/// The age recipients a SOPS file is encrypted to, read without any identity (to plan a
/// re-encryption when the declared recipients change).
pub fn recipients_of(file_text: &str) -> Result<Vec<String>, Error> {
    let metadata = match File::parse(file_text)? {
        File::Binary(file) => Metadata::read(file.sops)?,
        File::Yaml(mut doc) => Metadata::read(doc.take_sops()?)?,
    };
    Ok(metadata.recipients()?.into_iter().map(|(r, _)| r).collect())
}

/// Re-encrypts a SOPS file's data key to `recipients`, replacing its age recipients, after
/// checking the file opens with `identities` (values, MAC). The values, the MAC and
/// `lastmodified` are kept as they are; the rest of the metadata too.
pub fn rewrap(
    file_text: &str,
    identities: &[Identity],
    recipients: &[Recipient],
) -> Result<String, Error> {
    match File::parse(file_text)? {
        File::Binary(file) => {
            binary::open(&file, identities)?;
            let mut metadata = Metadata::read(file.sops)?;
            let key = metadata.data_key(identities)?;
            metadata.set_recipients(&key, recipients)?;
            Ok(binary::emit(&file.data, &metadata))
        }
        File::Yaml(mut doc) => {
            let mut metadata = Metadata::read(doc.take_sops()?)?;
            let key = metadata.data_key(identities)?;
            document::open(&mut doc.clone(), &key, &metadata)?;
            metadata.set_recipients(&key, recipients)?;
            doc.set_sops(metadata.into_node());
            Ok(yaml::emit(doc.entries()))
        }
    }
}

/// A SOPS file as read: sops's binary format (JSON), or a YAML document.
enum File {
    Binary(binary::File),
    Yaml(Doc),
}

impl File {
    /// JSON is told apart by its first character: sops's binary files are JSON objects, and a
    /// YAML document produced by sops never starts with `{`.
    fn parse(text: &str) -> Result<File, Error> {
        if text.trim_start().starts_with('{') {
            return Ok(File::Binary(binary::File::parse(text)?));
        }
        Ok(File::Yaml(Doc::parse_yaml(text)?))
    }
}

/// What can go wrong. No variant holds key material or plaintext values.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The text has no `sops` metadata.
    NotSops,
    /// The YAML document already has `sops` metadata.
    AlreadyEncrypted,
    /// The text is not a SOPS file this module can read: why.
    Malformed(String),
    /// A SOPS feature this module does not implement.
    Unsupported(String),
    /// Encryption was asked for with no recipients.
    NoRecipients,
    /// Not an age X25519 recipient (the text, which is public).
    BadRecipient(String),
    /// An identity text held no identity.
    NoIdentities,
    /// A line of an identity text is not an age identity (only its number is kept).
    BadIdentity {
        /// The line number, from 1.
        line: usize,
    },
    /// The file has no age recipients (only other kinds of master keys).
    NoAgeRecipients,
    /// None of the identities opens the data key.
    NoMatchingIdentity {
        /// The recipients the file is encrypted to.
        recipients: Vec<String>,
    },
    /// A value does not authenticate: it was edited, moved to another key, or sealed with
    /// another data key.
    Tampered {
        /// The value's key path, as in the additional data (`data:tls.key:`).
        path: String,
    },
    /// The values do not match the file's MAC: a value was changed, added or removed.
    MacMismatch,
    /// The operating system's RNG failed.
    Random,
    /// age failed to wrap the data key.
    Age(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotSops => f.write_str("not a sops file: no `sops` metadata"),
            Error::AlreadyEncrypted => f.write_str("the document already has `sops` metadata"),
            Error::Malformed(why) => write!(f, "not a sops file this tool can read: {why}"),
            Error::Unsupported(what) => write!(f, "unsupported sops file: {what}"),
            Error::NoRecipients => f.write_str("no age recipients to encrypt to"),
            Error::BadRecipient(text) => write!(f, "`{text}` is not an age recipient (age1...)"),
            Error::NoIdentities => f.write_str("no age identity found (AGE-SECRET-KEY-1...)"),
            Error::BadIdentity { line } => {
                write!(
                    f,
                    "line {line} of the age identities is not an age identity"
                )
            }
            Error::NoAgeRecipients => f.write_str("the sops file has no age recipients"),
            Error::NoMatchingIdentity { recipients } => write!(
                f,
                "no age identity given opens this file; it is encrypted to {}",
                recipients.join(", ")
            ),
            Error::Tampered { path } => {
                write!(
                    f,
                    "the value at `{path}` does not authenticate (edited or moved)"
                )
            }
            Error::MacMismatch => {
                f.write_str("the values do not match the file's MAC (edited, added or removed)")
            }
            Error::Random => f.write_str("the operating system's random number generator failed"),
            Error::Age(why) => write!(f, "age encryption failed: {why}"),
        }
    }
}

impl std::error::Error for Error {}
