//! What an item decided, as its dependants see it: one enum instead of a handful of flags, so a
//! question like "does this CA sign in this run?" has one answer, asked by name.

use crate::x509::CertFacts;

/// The outcome of planning one item, for the items planned after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Stays as it is on disk.
    Kept,
    /// Re-signed over the key it has. `cascade` names the CA above it whose new key caused this:
    /// everything below is then re-signed too, transitively.
    Resigned { cascade: Option<String> },
    /// Gets a new key, and a certificate (or public key) over it, in this run.
    NewKey,
    /// Under a CA whose key is elsewhere: a CSR is written, and the files on disk stay as they are
    /// until that CA signs. `new_key`: a new key is written with the CSR. `waiting`: no
    /// certificate that matches the key (or that may sign) is here yet, so what reads this item
    /// or is signed by it waits too.
    Csr {
        new_key: bool,
        waiting: bool,
        cascade: Option<String>,
    },
    /// Under a CA whose key is here but whose own certificate has not arrived from its external
    /// CA yet: nothing is written (no CSR, no key); the tool signs it itself once that
    /// certificate is in place.
    Waiting,
    /// A CA whose key is not in the output folder, used as it is.
    External,
    /// A file derived from others (a rendered file, a public key) is rewritten in this run.
    Rendered,
    /// The run stops on it; what depends on it is not judged again.
    Blocked,
}

impl Fate {
    /// Whether the item's key is replaced in this run.
    pub(crate) fn new_key(&self) -> bool {
        matches!(self, Fate::NewKey | Fate::Csr { new_key: true, .. })
    }

    /// Whether the item's certificate (or file) is rewritten in this run.
    pub(crate) fn rewritten(&self) -> bool {
        matches!(self, Fate::Resigned { .. } | Fate::NewKey | Fate::Rendered)
    }

    /// Whether the item cannot sign here: its key is elsewhere, or it waits for its own CSR.
    pub(crate) fn cannot_sign(&self) -> bool {
        *self == Fate::External || self.awaits_csr()
    }

    /// Whether the item waits for an external CA to sign a CSR (its own, or one above it) while
    /// its key, if it has one, is here: what reads it or is signed by it waits too, and the tool
    /// signs what is below it, without CSRs, once the certificate arrives.
    pub(crate) fn awaits_csr(&self) -> bool {
        matches!(self, Fate::Csr { waiting: true, .. } | Fate::Waiting)
    }

    /// The CA above whose new key re-signs this item, if that is why it is re-signed.
    pub(crate) fn cascade(&self) -> Option<&str> {
        match self {
            Fate::Resigned { cascade } | Fate::Csr { cascade, .. } => cascade.as_deref(),
            _ => None,
        }
    }
}

/// What the planner knows about an item after deciding it.
#[derive(Debug, Clone)]
pub(crate) struct Known<'d> {
    pub(crate) fate: Fate,
    /// Its certificate as it is on disk, if it has a readable one.
    pub(crate) cert: Option<&'d CertFacts>,
    /// The public key it keeps through this run; `None` when it gets a new one (or has none).
    pub(crate) key_spki: Option<&'d [u8]>,
}
