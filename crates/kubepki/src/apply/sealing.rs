//! Keys encrypted at rest, in apply: the only place a key file is encrypted or decrypted. A key
//! is encrypted in memory, before its bytes become a `FileWrite`, so `fsx::write_atomic` only
//! ever receives ciphertext under `[encryption]`. A key on disk is decrypted only when this run
//! uses it: to sign with it, to sign over it (a re-sign, a CSR), to render it, or to write it
//! in plaintext again.

use std::collections::BTreeSet;

use rcgen::{KeyPair, PublicKeyData as _};
use time::OffsetDateTime;

use crate::disk::Disk;
use crate::error::Error;
use crate::plan::{Action, Blocker, Plan, Problem, Reseal};
use crate::render;
use crate::sops::{self, Identity, Select};
use crate::spec::{Encryption, ItemId, ItemKind, Spec};
use crate::x509;

/// What encrypting and decrypting keys reads: the declared recipients, the identities the
/// environment gave, and the clock (sops records when a file was last written).
#[derive(Clone, Copy)]
pub(super) struct Keyring<'a> {
    pub(super) encryption: Option<&'a Encryption>,
    pub(super) identities: &'a [Identity],
    pub(super) now: OffsetDateTime,
}

impl Keyring<'_> {
    /// The text a key file holds: the PEM itself, or under `[encryption]` a SOPS file of it.
    pub(super) fn key_file_text(&self, pem: &str) -> Result<String, Error> {
        match self.encryption {
            None => Ok(pem.to_string()),
            Some(e) => sops::encrypt_binary(pem.as_bytes(), &e.recipients, self.now)
                .map_err(|err| Error::Crypto(format!("encrypting a key failed: {err}"))),
        }
    }

    /// The text of a rendered file that holds `keys` (PEM): under `[encryption]`, SOPS YAML that
    /// encrypts only its key fields (`render::encrypted_fields`). A file that is not a YAML
    /// mapping, or whose readable part would still hold a key (a template that puts it in
    /// another field), is encrypted whole, in sops's binary format: a key is never left readable.
    pub(super) fn render_file_text(&self, text: &str, keys: &[String]) -> Result<String, Error> {
        let Some(e) = self.encryption else {
            return Ok(text.to_string());
        };
        let fields = render::encrypted_fields(text);
        let yaml = sops::encrypt_yaml(text, Select::Keys(fields), &e.recipients, self.now).ok();
        let readable_holds_key = |file: &String| {
            sops::readable(file).map_or(true, |view| keys.iter().any(|k| holds_key(&view, k)))
        };
        match yaml {
            Some(file) if !readable_holds_key(&file) => Ok(file),
            _ => sops::encrypt_binary(text.as_bytes(), &e.recipients, self.now)
                .map_err(|err| Error::Crypto(format!("encrypting a rendered file failed: {err}"))),
        }
    }

    /// The key in the encrypted file at `path`, checked against `spki`, the public key its
    /// public half beside it holds (what the plan knew it by), with its PEM text as it was
    /// encrypted.
    pub(super) fn open(
        &self,
        disk: &Disk,
        paths: KeyPaths<'_>,
        spki: &[u8],
    ) -> Result<(KeyPair, String), Refused> {
        self.open_pem(disk, paths, spki)
    }

    /// The key file at `path` rewritten as `reseal` says, the key kept.
    pub(super) fn reseal(
        &self,
        disk: &Disk,
        paths: KeyPaths<'_>,
        reseal: &Reseal,
        spki: &[u8],
    ) -> Result<String, Refused> {
        let path = paths.key;
        let text = file_text(disk, path).map_err(|cause| unreadable(path, cause))?;
        match (reseal, self.encryption) {
            (Reseal::Encrypt, Some(e)) => {
                sops::encrypt_binary(text.as_bytes(), &e.recipients, self.now)
                    .map_err(|err| unreadable(path, err.to_string()))
            }
            (Reseal::Rewrap, Some(e)) => sops::rewrap(&text, self.identities, &e.recipients)
                .map_err(|err| sops_refusal(path, err)),
            (Reseal::Decrypt, None) => self.open_pem(disk, paths, spki).map(|(_, pem)| pem),
            _ => Err(unreadable(
                path,
                "the plan and pki.toml disagree on encryption".into(),
            )),
        }
    }

    /// The key in the encrypted file at `paths.key`, checked against `spki`, and its PEM as the
    /// file holds it.
    fn open_pem(
        &self,
        disk: &Disk,
        paths: KeyPaths<'_>,
        spki: &[u8],
    ) -> Result<(KeyPair, String), Refused> {
        let path = paths.key;
        let text = file_text(disk, path).map_err(|cause| unreadable(path, cause))?;
        let plain = sops::decrypt(&text, self.identities).map_err(|err| sops_refusal(path, err))?;
        let pem =
            String::from_utf8(plain).map_err(|_| unreadable(path, "not a PEM file".into()))?;
        let key = x509::parse_key(pem.as_bytes()).map_err(|cause| unreadable(path, cause))?;
        match key.key {
            Some(pair) if pair.subject_public_key_info() == spki => Ok((pair, pem)),
            _ => Err(Box::new(Blocker::SealedKeyMismatch {
                path: path.to_string(),
                public: paths.public.to_string(),
            })),
        }
    }
}

/// What stops the run at one file (boxed: a `Blocker` is large).
pub(super) type Refused = Box<Blocker>;

fn unreadable(path: &str, cause: String) -> Refused {
    Box::new(Blocker::SealedKeyUnreadable {
        path: path.to_string(),
        cause,
    })
}

/// What stops the run when a SOPS file does not open: the identity it needs, or why the file is
/// not readable.
fn sops_refusal(path: &str, err: sops::Error) -> Refused {
    match err {
        sops::Error::NoMatchingIdentity { recipients } => Box::new(Blocker::IdentityMissing {
            path: path.to_string(),
            recipients,
        }),
        other => unreadable(path, other.to_string()),
    }
}

/// The items whose key this run uses, and so must decrypt when it is encrypted at rest: every
/// certificate it signs and its issuer, every CSR it writes, every key a render it writes reads,
/// and every key it writes decrypted.
pub(super) fn keys_used(spec: &Spec, plan: &Plan) -> BTreeSet<ItemId> {
    let mut used = BTreeSet::new();
    for s in &plan.steps {
        match &spec.items[s.item].kind {
            ItemKind::Cert(c) if s.action.signs() => {
                used.insert(s.item);
                used.extend(c.issuer);
            }
            ItemKind::Cert(_) if s.action == Action::Csr && s.writes() => {
                used.insert(s.item);
            }
            ItemKind::Render(r) if matches!(s.action, Action::Create | Action::Render) => {
                used.extend(r.secrets.iter().filter_map(|var| r.bind.get(var)));
            }
            _ => {}
        }
        if s.reseal == Some(Reseal::Decrypt) {
            used.insert(s.item);
        }
    }
    used
}

/// The problems of one item, as `Error::Blocked` carries them.
pub(super) fn problem(spec: &Spec, id: ItemId, blocker: Blocker) -> Problem {
    Problem {
        items: vec![spec.items[id].name.clone()],
        blocker,
    }
}

/// Whether `text` holds the PEM key `pem` as a template helper could write it: a line of its
/// body, or a stretch from the middle of its base64 (`client-key-data`, `tls.key`), where
/// only this key's bytes are.
fn holds_key(text: &str, pem: &str) -> bool {
    let body_line = pem
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() >= 16);
    let b64 = render::b64(pem);
    let middle = b64.len() / 2;
    let stretch = &b64[middle..(middle + 32).min(b64.len())];
    body_line.is_some_and(|l| text.contains(l)) || text.contains(stretch)
}

fn file_text(disk: &Disk, path: &str) -> Result<String, String> {
    let file = disk.obs(path).ok_or("is missing")?;
    String::from_utf8(file.bytes.clone()).map_err(|_| "is not a text file".to_string())
}

/// Where an item's key is, and its public half (its certificate, or the key pair's public key).
#[derive(Clone, Copy)]
pub(super) struct KeyPaths<'a> {
    pub(super) key: &'a str,
    pub(super) public: &'a str,
}

/// The file of item `id` the plan may rewrite as it is (`encrypt`, `decrypt`, `re-encrypt`):
/// a key, or an encrypted rendered file (whose public half is itself: only re-encrypted).
pub(super) fn sealed_paths(spec: &Spec, id: ItemId) -> Option<KeyPaths<'_>> {
    match &spec.items[id].kind {
        ItemKind::Render(r) => Some(KeyPaths {
            key: &r.path,
            public: &r.path,
        }),
        _ => key_paths(spec, id),
    }
}

/// The key paths of item `id`, if it has a key.
pub(super) fn key_paths(spec: &Spec, id: ItemId) -> Option<KeyPaths<'_>> {
    match &spec.items[id].kind {
        ItemKind::Cert(c) => Some(KeyPaths {
            key: &c.key_path,
            public: &c.cert_path,
        }),
        ItemKind::KeyPair(k) => Some(KeyPaths {
            key: &k.private_path,
            public: &k.public_path,
        }),
        ItemKind::Render(_) => None,
    }
}
