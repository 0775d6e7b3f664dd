//! The layout of the output folder, in one place: the names the tool itself owns there, the
//! temporary names writes go through, the CSR path each certificate owns, and the modes files
//! are written with. `resolve` checks pki.toml's paths against it, `scan` and `plan` recognise
//! what they find by it, `apply` writes by it.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{ItemKind, RenderSpec, Spec};

/// The sorted, key-free summary of the PKI, rewritten by every run that changes something.
pub const INVENTORY: &str = "inventory.txt";

/// The lock a writing run holds for its whole run.
pub const LOCK_FILE: &str = ".kubepki.lock";

/// Files the tool owns inside the output folder; no item may claim them.
pub const RESERVED: [&str; 2] = [INVENTORY, LOCK_FILE];

/// Private keys, and files that hold one: readable by their owner only.
pub const KEY_MODE: u32 = 0o600;

/// Certificates, public keys, CSRs and every other file: world-readable, as kubeadm writes them.
pub const CERT_MODE: u32 = 0o644;

/// Folders the tool creates, whatever the umask: readable by everyone, as kubeadm's `pki/`.
pub const FOLDER_MODE: u32 = 0o755;

/// Folders that hold only private keys: their names are nobody else's business either.
pub const KEY_FOLDER_MODE: u32 = 0o700;

/// The largest file the tool reads from the output folder. A certificate, key or rendered
/// kubeconfig is a few kilobytes (a 16384-bit RSA key in PEM is under 13 KiB); anything larger
/// is not one of them, and reading it would cost its size in memory on every run.
pub const MAX_READ: u64 = 1 << 20;

/// The largest inventory or rendered file the tool reads: text the tool writes itself, which
/// grows with the PKI (an inventory lists every item, a few hundred bytes each).
pub const MAX_TEXT: u64 = 64 << 20;

/// The files of the output folder that may be read up to `MAX_TEXT` rather than `MAX_READ`: the
/// inventory and every declared rendered file.
pub fn text_files(spec: &Spec) -> BTreeSet<String> {
    let rendered = spec.items.iter().filter_map(|item| match &item.kind {
        ItemKind::Render(r) => Some(r.path.clone()),
        _ => None,
    });
    std::iter::once(INVENTORY.to_string())
        .chain(rendered)
        .collect()
}

/// The mode each folder of the output folder is created with, decided from what pki.toml
/// declares inside it.
#[derive(Debug, Default)]
pub struct FolderModes {
    by_folder: BTreeMap<String, u32>,
}

impl FolderModes {
    /// A folder all of whose declared files (at any depth) are private keys is `KEY_FOLDER_MODE`;
    /// any other folder is `FOLDER_MODE`.
    pub fn new(spec: &Spec) -> FolderModes {
        let mut by_folder = BTreeMap::new();
        for (path, mode) in declared_modes(spec) {
            let folders = path.match_indices('/').map(|(i, _)| &path[..i]);
            for folder in folders {
                let m = by_folder
                    .entry(folder.to_string())
                    .or_insert(KEY_FOLDER_MODE);
                if mode != KEY_MODE {
                    *m = FOLDER_MODE;
                }
            }
        }
        FolderModes { by_folder }
    }

    /// The mode folder `rel` (relative, with `/`) is created with.
    pub fn of(&self, rel: &str) -> u32 {
        self.by_folder.get(rel).copied().unwrap_or(FOLDER_MODE)
    }
}

/// Every file pki.toml declares, with the mode it is written with.
fn declared_modes(spec: &Spec) -> Vec<(&str, u32)> {
    let mut files = Vec::new();
    for item in &spec.items {
        match &item.kind {
            ItemKind::Cert(c) => {
                files.push((c.cert_path.as_str(), CERT_MODE));
                files.push((c.key_path.as_str(), KEY_MODE));
            }
            ItemKind::KeyPair(k) => {
                files.push((k.private_path.as_str(), KEY_MODE));
                files.push((k.public_path.as_str(), CERT_MODE));
            }
            ItemKind::Render(r) => files.push((r.path.as_str(), render_mode(r))),
        }
    }
    files
}

/// A rendered file that may hold a private key is written like a key.
pub fn render_mode(r: &RenderSpec) -> u32 {
    if r.holds_secret() {
        KEY_MODE
    } else {
        CERT_MODE
    }
}

/// Where the CSR of a certificate's key goes when its issuer is an external CA (a CA whose key is
/// not in the output folder): beside the certificate, `.crt` or `.pem` replaced by `.csr`. Every
/// certificate owns this path, so `resolve` lets no other item claim it.
pub fn csr_path(cert_path: &str) -> String {
    match cert_path
        .strip_suffix(".crt")
        .or_else(|| cert_path.strip_suffix(".pem"))
    {
        Some(stem) => format!("{stem}.csr"),
        None => format!("{cert_path}.csr"),
    }
}

/// The temporary file a write of `name` goes through: `.NAME.tmp-PID`.
pub fn temp_name(name: &str) -> String {
    format!(".{name}.tmp-{}", std::process::id())
}

/// The most digits a process id has on Linux (`pid_max` is at most 2^22, 4194304).
const PID_DIGITS_MAX: usize = 7;

/// The length in bytes of the longest `temp_name` of `name`, whatever the run's process id.
pub fn temp_name_len_max(name: &str) -> usize {
    ".".len() + name.len() + ".tmp-".len() + PID_DIGITS_MAX
}

/// The longest name of a file or folder, in bytes (Linux's `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// The longest path the system opens, in bytes, without its final NUL (Linux's `PATH_MAX` less
/// one). The output folder's own path comes before every path inside it.
pub const PATH_MAX: usize = 4095;

/// Whether `name` is the temporary file of a write (of this or any earlier run): a run that is
/// killed mid-write leaves one. They are never taken for real files; a run that holds the lock
/// removes them (no other run can be writing them then).
pub fn is_temp_name(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.rsplit_once(".tmp-"))
        .is_some_and(|(base, pid)| {
            !base.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}
