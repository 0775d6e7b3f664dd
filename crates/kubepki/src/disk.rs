//! Stage 2b, DISK (pure): what the output folder holds, each file decoded once. `scan::observe`
//! reads the bytes; `decode` turns every file into what it can be (a certificate, a private key,
//! a public key) with the reason it is not, so `plan`, `apply` and `report` never parse a file
//! again. What pki.toml declares a file to be is decoded at once, in parallel (the keys at its key
//! paths, the certificates or public keys at their paths); every other reading of a file (a
//! kubeconfig read as a certificate, an undeclared file as anything) is made the first time it is
//! asked for, and kept: a reading is a function of the file's bytes alone, so when it is made
//! changes nothing but the time it takes. Links are recorded, never followed, and are none of these. The inventory the last
//! run wrote is read here too, for the keys it pins to each item (`Pins`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::inventory::{Pins, Records};
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
    records: Records,
}

/// One file of the output folder, with every reading of it.
pub struct DiskFile {
    /// The raw file, as `scan` read it.
    pub obs: FileObs,
    cert: OnceLock<Result<CertFacts, String>>,
    key: OnceLock<Result<KeyFacts, String>>,
    public: OnceLock<Result<Vec<u8>, String>>,
    /// For a SOPS file: the age recipients it is encrypted to, sorted (read without identity).
    sops: Option<Vec<String>>,
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

/// Decodes every file of `observed`, in parallel (RSA keys are slow to load). `companions` maps
/// each declared key's path to its public half's (`layout::key_companions`): a key encrypted at
/// rest is known by it, since no identity is needed to plan.
pub fn decode(observed: Observed, companions: &BTreeMap<String, String>) -> Disk {
    let inventory = observed
        .files
        .get(INVENTORY)
        .filter(|f| !f.symlink)
        .map(|f| String::from_utf8_lossy(&f.bytes));
    let pins = inventory
        .as_deref()
        .map(crate::inventory::pins)
        .unwrap_or_default();
    let records = inventory
        .as_deref()
        .map(crate::inventory::records)
        .unwrap_or_default();
    let halves: BTreeSet<&str> = companions.values().map(String::as_str).collect();
    let observed_files: Vec<(String, FileObs)> = observed.files.into_iter().collect();
    let decoded: Vec<(String, DiskFile)> = observed_files
        .into_par_iter()
        .map(|(path, obs)| {
            let file = decode_file(obs);
            decode_declared(&file, &path, companions, &halves);
            (path, file)
        })
        .collect();
    // In path order already: the map is built in one pass, not by an insertion per file.
    let files: BTreeMap<String, DiskFile> = decoded.into_iter().collect();
    let files = know_sealed_keys(files, companions);
    Disk {
        files,
        linked_dirs: observed.linked_dirs,
        temps: observed.temps,
        folders: observed.folders,
        unread: observed.unread,
        unnamed: observed.unnamed,
        pins,
        records,
    }
}

/// Decodes `file` at once as what pki.toml declares at `path`: a private key at a key's path, a
/// certificate or public key at the path of a key's public half (`companions` by key, `halves`
/// its values; together every declared key and certificate). Planning reads all of these, so they
/// are decoded here, in parallel, rather than one by one as the plan's loop comes to them.
fn decode_declared(
    file: &DiskFile,
    path: &str,
    companions: &BTreeMap<String, String>,
    halves: &BTreeSet<&str>,
) {
    if companions.contains_key(path) {
        file.as_key();
    } else if halves.contains(path) && file.as_cert().is_none() {
        // Not a certificate: a key pair's public key, then.
        file.as_public_key();
    }
}

const LINK: &str = "is a symlink (the tool never follows links in the output folder)";

/// Why an encrypted file is not read as a private key when nothing tells what key it holds.
const SEALED_ALONE: &str = "is encrypted (sops) and has no readable public half beside it (its \
                            certificate or public key), so what key it holds cannot be told \
                            without decrypting it";

/// A key encrypted at rest takes its algorithm and public key from its public half (the
/// certificate over it, or the key pair's public key), which is what the plan needs of it; apply
/// checks the decrypted key against it before using it.
fn know_sealed_keys(
    mut files: BTreeMap<String, DiskFile>,
    companions: &BTreeMap<String, String>,
) -> BTreeMap<String, DiskFile> {
    for (key_path, public_path) in companions {
        if files.get(key_path).is_none_or(|f| f.sops.is_none()) {
            continue;
        }
        let spki = files.get(public_path).and_then(|f| {
            f.as_cert()
                .map(|cf| cf.spki.clone())
                .or_else(|| f.as_public_key().map(<[u8]>::to_vec))
        });
        if let (Some(file), Some(spki)) = (files.get_mut(key_path), spki) {
            file.key = OnceLock::from(Ok(x509::sealed_key_facts(&spki)));
        }
    }
    files
}

/// The recipients of a SOPS file, sorted, if `bytes` is one.
fn sops_recipients(bytes: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !may_be_sops(text) {
        return None;
    }
    let mut recipients = crate::sops::recipients_of(text).ok()?;
    recipients.sort();
    Some(recipients)
}

/// Whether `text` can be a SOPS file at all, told without parsing it: a SOPS file (YAML or
/// sops's JSON) has a top-level key `sops`, and YAML and JSON spell a key either as it is
/// (plain, quoted, tagged or anchored, all of which keep the four letters together) or with
/// escapes (`"\u0073ops"`, `"\x73ops"`), which need a backslash. A text with neither is no
/// SOPS file, and is not parsed as YAML: a no-op with 1000 workers otherwise spent a fifth of its
/// time parsing its 2000 kubeconfigs to learn that they are not encrypted.
fn may_be_sops(text: &str) -> bool {
    text.contains("sops") || text.contains('\\')
}

/// A reading already decided: the file is not that, for `reason`.
fn decided<T>(reason: &str) -> OnceLock<Result<T, String>> {
    OnceLock::from(Err(reason.to_string()))
}

fn decode_file(obs: FileObs) -> DiskFile {
    if obs.symlink {
        return DiskFile {
            obs,
            cert: decided(LINK),
            key: decided(LINK),
            public: decided(LINK),
            sops: None,
        };
    }
    if let Some(recipients) = sops_recipients(&obs.bytes) {
        return DiskFile {
            cert: decided("is encrypted (sops), not a certificate"),
            key: decided(SEALED_ALONE),
            public: decided("is encrypted (sops), not a public key"),
            sops: Some(recipients),
            obs,
        };
    }
    // Every other reading is made when it is first asked for (`DiskFile::cert` and the others).
    DiskFile {
        cert: OnceLock::new(),
        key: OnceLock::new(),
        public: OnceLock::new(),
        sops: None,
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

    /// What the last run's inventory records of each certificate (none without an inventory).
    pub(crate) fn records(&self) -> &Records {
        &self.records
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
        self.read(path, DiskFile::cert)
    }

    /// The private key at `path`.
    pub fn key(&self, path: &str) -> Read<'_, KeyFacts> {
        self.read(path, DiskFile::key)
    }

    /// The public key (SubjectPublicKeyInfo DER) at `path`.
    pub fn public_key(&self, path: &str) -> Read<'_, Vec<u8>> {
        self.read(path, DiskFile::public)
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
        let kind = if self.sops.is_some() {
            "sops file"
        } else if self.as_cert().is_some() {
            "certificate"
        } else if self.as_key().is_some() {
            "private key"
        } else if self.as_public_key().is_some() {
            "public key"
        } else {
            "other"
        };
        write!(f, "DiskFile {{ {:?}, {kind} }}", self.obs)
    }
}

impl DiskFile {
    /// The file read as a certificate (decoded on first use, once).
    fn cert(&self) -> &Result<CertFacts, String> {
        self.cert.get_or_init(|| x509::parse_cert(&self.obs.bytes))
    }

    /// The file read as a private key (decoded on first use, once).
    fn key(&self) -> &Result<KeyFacts, String> {
        self.key.get_or_init(|| x509::parse_key(&self.obs.bytes))
    }

    /// The file read as a public key (decoded on first use, once).
    fn public(&self) -> &Result<Vec<u8>, String> {
        self.public
            .get_or_init(|| x509::parse_public_key(&self.obs.bytes))
    }

    /// The certificate this file holds, if it is one.
    pub fn as_cert(&self) -> Option<&CertFacts> {
        self.cert().as_ref().ok()
    }

    /// The private key this file holds, if it is one.
    pub fn as_key(&self) -> Option<&KeyFacts> {
        self.key().as_ref().ok()
    }

    /// The age recipients this file is encrypted to (sorted), if it is a SOPS file.
    pub fn sops_recipients(&self) -> Option<&[String]> {
        self.sops.as_deref()
    }

    /// Whether this file is encrypted at rest (a SOPS file).
    pub fn is_sealed(&self) -> bool {
        self.sops.is_some()
    }

    /// The public key this file holds, if it is one.
    pub fn as_public_key(&self) -> Option<&[u8]> {
        self.public().as_deref().ok()
    }
}
