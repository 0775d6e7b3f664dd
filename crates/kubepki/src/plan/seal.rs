//! A key's file against `[encryption]`: a key kept as it is, but in plaintext where pki.toml asks
//! for encryption, encrypted where it no longer does, or encrypted to other recipients than
//! declared, is rewritten in place (`encrypt`, `decrypt`, `re-encrypt`), the key kept. What the
//! file is encrypted to is read without any identity, so this is planned the same with or
//! without one.

use super::{Action, Reason, Step};
use crate::disk::Disk;
use crate::spec::{Encryption, ItemId, ItemKind, Spec};

/// How a key's file is rewritten, the key kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reseal {
    /// Plaintext on disk, encrypted to the declared recipients.
    Encrypt,
    /// Encrypted on disk, decrypted (needs an identity).
    Decrypt,
    /// Encrypted to other recipients: the data key re-encrypted to the declared ones, the value
    /// untouched (needs an identity).
    Rewrap,
}

/// `step` with its key file's rewrite, when the key stays and its file does not match
/// `[encryption]`. A step that makes a new key writes it as declared anyway; a blocked one
/// writes nothing.
pub(super) fn amend(spec: &Spec, disk: &Disk, id: ItemId, mut step: Step) -> Step {
    let path = match &spec.items[id].kind {
        ItemKind::Cert(c) => &c.key_path,
        ItemKind::KeyPair(kp) => &kp.private_path,
        ItemKind::Render(_) => return step,
    };
    if step.new_key() || step.action == Action::Blocked {
        return step;
    }
    let Some((reseal, reason)) = change(spec.encryption.as_ref(), disk, path) else {
        return step;
    };
    if matches!(step.action, Action::Keep | Action::FixMode) {
        step.action = match reseal {
            Reseal::Encrypt => Action::Encrypt,
            Reseal::Decrypt => Action::Decrypt,
            Reseal::Rewrap => Action::Reencrypt,
        };
    }
    step.reasons.push(reason);
    step.reseal = Some(reseal);
    step
}

/// What the key file at `path` needs to match `encryption`, with why; `None` when it matches or
/// is not a readable key file (a missing or damaged key is the key's own step's business).
fn change(encryption: Option<&Encryption>, disk: &Disk, path: &str) -> Option<(Reseal, Reason)> {
    let file = disk.get(path).filter(|f| !f.obs.symlink)?;
    let on_disk = file.sops_recipients();
    let path = path.to_string();
    match (encryption, on_disk) {
        (Some(_), None) if file.as_key().is_some() => {
            Some((Reseal::Encrypt, Reason::KeyInPlaintext { path }))
        }
        (None, Some(_)) => Some((Reseal::Decrypt, Reason::EncryptionOff { path })),
        (Some(e), Some(found)) => {
            let wanted = e.recipient_texts();
            let added = missing_from(&wanted, found);
            let removed = missing_from(found, &wanted);
            if added.is_empty() && removed.is_empty() {
                return None;
            }
            let reason = Reason::RecipientsChanged {
                path,
                added,
                removed,
            };
            Some((Reseal::Rewrap, reason))
        }
        _ => None,
    }
}

/// The recipients of `these` that are not in `others`.
pub(super) fn missing_from(these: &[String], others: &[String]) -> Vec<String> {
    these
        .iter()
        .filter(|r| !others.contains(r))
        .cloned()
        .collect()
}
