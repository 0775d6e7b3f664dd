//! Stage 2b, DISK (pure): what the output folder holds, each file decoded once. `scan::observe`
//! reads the bytes; `decode` turns every file into what it can be (a certificate, a private key,
//! a public key) with the reason it is not, so `plan`, `apply` and `report` never parse a file
//! again. Links are recorded, never followed, and are none of these. The inventory the last
//! run wrote is read here too, for the keys it pins to each item (`Pins`).

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use crate::inventory::Pins;
use crate::layout::INVENTORY;
use crate::scan::{FileObs, Observed, Unread};
use crate::x509::{self, CertFacts, KeyFacts};

/// The output folder, decoded.
#[derive(Debug, Default)]
pub struct Disk {
    files: BTreeMap<String, DiskFile>,
    /// Relative paths of folders that are symlinks.
    pub linked_dirs: Vec<String>,
    /// Temporary files left by an interrupted write (`layout::is_temp_name`): not real files.
    pub temps: Vec<String>,
    folders: BTreeSet<String>,
    unread: BTreeMap<String, Unread>,
    /// Entries whose name is not UTF-8, escaped: never read, never removed.
    pub unnamed: Vec<String>,
    pins: Pins,
}

/// One file of the output folder, with every reading of it.
pub struct DiskFile {
    /// The raw file, as `scan` read it.
    pub obs: FileObs,
    cert: Result<CertFacts, String>,
    key: Result<KeyFacts, String>,
    public: Result<Vec<u8>, String>,
}

/// What reading a file as one kind of thing gave.
pub enum Read<'d, T> {
    /// No file at that path.
    Missing,
    /// A file that is not a usable `T`, with why (a link, a damaged file, another kind).
    Bad(String),
    /// The decoded file.
    Ok(&'d T),
}

impl<T> Read<'_, T> {
    /// Whether there is no file at all.
    pub fn is_missing(&self) -> bool {
        matches!(self, Read::Missing)
    }
}

/// Decodes every file of `observed`, in parallel (RSA keys are slow to load).
pub fn decode(observed: Observed) -> Disk {
    let pins = observed
        .files
        .get(INVENTORY)
        .filter(|f| !f.symlink)
        .map(|f| crate::inventory::pins(&String::from_utf8_lossy(&f.bytes)))
        .unwrap_or_default();
    let files = observed
        .files
        .into_par_iter()
        .map(|(path, obs)| {
            let file = decode_file(obs);
            (path, file)
        })
        .collect();
    Disk {
        files,
        linked_dirs: observed.linked_dirs,
        temps: observed.temps,
        folders: observed.folders,
        unread: observed.unread,
        unnamed: observed.unnamed,
        pins,
    }
}

const LINK: &str = "is a symlink (the tool never follows links in the output folder)";

fn decode_file(obs: FileObs) -> DiskFile {
    if obs.symlink {
        return DiskFile {
            obs,
            cert: Err(LINK.into()),
            key: Err(LINK.into()),
            public: Err(LINK.into()),
        };
    }
    DiskFile {
        cert: x509::parse_cert(&obs.bytes),
        key: x509::parse_key(&obs.bytes),
        public: x509::parse_public_key(&obs.bytes),
        obs,
    }
}

impl Disk {
    /// Every file, by relative path (with `/`), sorted.
    pub fn files(&self) -> impl Iterator<Item = (&str, &DiskFile)> {
        self.files.iter().map(|(p, f)| (p.as_str(), f))
    }

    /// The keys the last run's inventory pins to each item (none when there is no inventory).
    pub(crate) fn pins(&self) -> &Pins {
        &self.pins
    }

    /// What the entry at `path` is, if it is neither a file nor a link nor nothing: a folder or a
    /// special file, which a write could not replace (a folder) or should not (a FIFO another
    /// program reads).
    pub fn not_a_file(&self, path: &str) -> Option<String> {
        if self.folders.contains(path) {
            return Some("is a folder, not a file".into());
        }
        if self.linked_dirs.iter().any(|d| d == path) {
            return Some("is a symlink to a folder, not a file".into());
        }
        match self.unread.get(path) {
            Some(u @ Unread::Special(_)) => Some(u.to_string()),
            _ => None,
        }
    }

    /// Entries that were not read (special files, files too large), by relative path.
    pub fn unread(&self) -> impl Iterator<Item = (&str, &Unread)> {
        self.unread.iter().map(|(p, u)| (p.as_str(), u))
    }

    /// Why the entry at `path` was not read, if it is one that was not.
    pub fn unread_at(&self, path: &str) -> Option<&Unread> {
        self.unread.get(path)
    }

    /// The file at `path`, if there is one (a link included).
    pub fn get(&self, path: &str) -> Option<&DiskFile> {
        self.files.get(path)
    }

    /// The bytes and mode of the regular file at `path`.
    pub fn obs(&self, path: &str) -> Option<&FileObs> {
        self.get(path).map(|f| &f.obs)
    }

    /// The certificate at `path`.
    pub fn cert(&self, path: &str) -> Read<'_, CertFacts> {
        self.read(path, |f| &f.cert)
    }

    /// The private key at `path`.
    pub fn key(&self, path: &str) -> Read<'_, KeyFacts> {
        self.read(path, |f| &f.key)
    }

    /// The public key (SubjectPublicKeyInfo DER) at `path`.
    pub fn public_key(&self, path: &str) -> Read<'_, Vec<u8>> {
        self.read(path, |f| &f.public)
    }

    fn read<'d, T>(
        &'d self,
        path: &str,
        pick: impl Fn(&'d DiskFile) -> &'d Result<T, String>,
    ) -> Read<'d, T> {
        match self.files.get(path).map(pick) {
            // A folder or special file where a file is declared is there, not missing: taken as
            // missing, a CA key that is a folder would make its CA external.
            None => match (self.not_a_file(path), self.unread.get(path)) {
                (Some(why), _) => Read::Bad(format!("{path} {why}")),
                (None, Some(too_large)) => Read::Bad(format!("{path} {too_large}")),
                (None, None) => Read::Missing,
            },
            // A link's reason already says what it is; a decoding error is told with the path.
            Some(Err(e)) if e == LINK => Read::Bad(format!("{path} {e}")),
            Some(Err(e)) => Read::Bad(format!("{path}: {e}")),
            Some(Ok(v)) => Read::Ok(v),
        }
    }
}

impl std::fmt::Debug for DiskFile {
    /// What the file is, never what it holds (it may be a private key).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.cert.is_ok() {
            "certificate"
        } else if self.key.is_ok() {
            "private key"
        } else if self.public.is_ok() {
            "public key"
        } else {
            "other"
        };
        write!(f, "DiskFile {{ {:?}, {kind} }}", self.obs)
    }
}

impl DiskFile {
    /// The certificate this file holds, if it is one.
    pub fn as_cert(&self) -> Option<&CertFacts> {
        self.cert.as_ref().ok()
    }

    /// The private key this file holds, if it is one.
    pub fn as_key(&self) -> Option<&KeyFacts> {
        self.key.as_ref().ok()
    }

    /// The public key this file holds, if it is one.
    pub fn as_public_key(&self) -> Option<&[u8]> {
        self.public.as_deref().ok()
    }
}
