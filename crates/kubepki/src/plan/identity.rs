//! A CA's identity is its key, and so is the service-account key pair's: both are pinned to the
//! item by the inventory the last run wrote (`inventory::Pins`), not to the paths their files are
//! found at. A key that is not the pinned one (another CA's after a mixed-up restore or swapped
//! paths in pki.toml, or a replaced file) stops the run: signing over it would silently give the
//! item a new identity (and for the key pair, rewrite its public key over the evidence).
//! `--rekey` skips the pin, and the run's inventory records the new key.

use super::{Blocker, PinnedKind};
use crate::disk::{Disk, Read};
use crate::inventory::Pins;
use crate::spec::CertSpec;
use crate::x509;

/// Why CA `name` (declared as `c`) must not go on with the key its files hold, if they hold
/// another key than the pinned one. The key file decides, whatever the certificate (a key that is
/// the pinned one under a replaced certificate is `cert::ca_identity`'s "not a pair", and a key
/// that does not read its "unusable"); without a key file, the certificate's public key is the
/// CA's (an external CA: its key is kept elsewhere).
pub(super) fn ca(disk: &Disk, name: &str, c: &CertSpec) -> Option<Blocker> {
    let (spki, path, kind) = match (disk.key(&c.key_path), disk.cert(&c.cert_path)) {
        (Read::Ok(k), _) => (k.spki.as_slice(), &c.key_path, PinnedKind::Ca),
        (Read::Missing, Read::Ok(cf)) => (cf.spki.as_slice(), &c.cert_path, PinnedKind::ExternalCa),
        _ => return None,
    };
    let found = unpinned(disk.pins(), name, spki)?;
    Some(Blocker::NotPinnedKey {
        name: name.to_string(),
        path: path.clone(),
        kind,
        owner: found.owner,
    })
}

/// Why key pair `name` must not go on with the private key at `path` (public key `spki`), if it
/// is not the pinned one: its public key would be rewritten to match, invalidating every
/// service-account token.
pub(super) fn key_pair(pins: &Pins, name: &str, path: &str, spki: &[u8]) -> Option<Blocker> {
    let found = unpinned(pins, name, spki)?;
    Some(Blocker::NotPinnedKey {
        name: name.to_string(),
        path: path.to_string(),
        kind: PinnedKind::KeyPair,
        owner: found.owner,
    })
}

/// A key that is not the one pinned to its item.
struct Unpinned {
    /// The item the key is pinned to instead, if any.
    owner: Option<String>,
}

/// `None` when `name` has no pin (a first run, a new item, an older tree: nothing to compare
/// with, so nothing blocks) or its pin is `spki`.
fn unpinned(pins: &Pins, name: &str, spki: &[u8]) -> Option<Unpinned> {
    let pinned = pins.of(name)?;
    let found = x509::sha256_hex(spki);
    (found != pinned).then(|| Unpinned {
        owner: pins.owner(&found, name).map(String::from),
    })
}
