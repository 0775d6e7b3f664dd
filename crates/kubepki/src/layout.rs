//! The layout of the output folder, in one place: the names the tool itself owns there, the
//! temporary names writes go through, the CSR path each certificate owns, and the modes files
//! are written with. `resolve` checks pki.toml's paths against it, `scan` and `plan` recognise
//! what they find by it, `apply` writes by it.

use crate::spec::RenderSpec;

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
