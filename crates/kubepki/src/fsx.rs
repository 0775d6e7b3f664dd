//! File-system writes: atomic (temporary file in the same folder, fsync, rename, fsync the folder),
//! with explicit modes, never following a symlink out of the output folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::layout::{LOCK_FILE, temp_name};

/// Makes sure every folder from `root` down to `rel`'s parent is a real folder (creating missing
/// ones with the default mode, so the umask applies: a restrictive umask keeps `out/`'s folders
/// private), so a planted symlink can never redirect a write outside `root`.
pub(crate) fn ensure_parent(root: &Path, rel: &str) -> Result<PathBuf, Error> {
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::Io {
                    op: "write into",
                    path: dir.display().to_string(),
                    cause:
                        "it is a symlink; the tool never writes through links (remove it and rerun)"
                            .into(),
                });
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Io {
                    op: "write into",
                    path: dir.display().to_string(),
                    cause: "not a folder".into(),
                });
            }
            Err(_) => {
                fs::create_dir(&dir).map_err(|e| Error::io("create", &dir, e))?;
            }
        }
    }
    Ok(root.join(rel))
}

/// Writes `bytes` to `root/rel` atomically with `mode`. A symlink at the target is replaced by
/// the new file, never followed.
pub(crate) fn write_atomic(root: &Path, rel: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let path = ensure_parent(root, rel)?;
    let dir = path.parent().unwrap_or(root).to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(temp_name(&name));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        // Created with the final mode from the start: a key is never readable by others, even briefly.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("write", &path, e))?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn set_mode(root: &Path, rel: &str, mode: u32) -> Result<(), Error> {
    let path = ensure_parent(root, rel)?;
    let meta = fs::symlink_metadata(&path).map_err(|e| Error::io("chmod", &path, e))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", &path, e))
}

/// Removes the folders above `root/rel` that are empty, up to `root` (which stays).
pub(crate) fn remove_empty_parents(root: &Path, rel: &str) {
    let mut dir = Path::new(rel).parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if fs::remove_dir(root.join(d)).is_err() {
            break;
        }
        dir = d.parent();
    }
}

pub(crate) fn remove(root: &Path, rel: &str) -> Result<(), Error> {
    let path = ensure_parent(root, rel)?;
    fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))
}

/// An exclusive lock on the output folder, held for the whole apply and released on drop.
pub(crate) struct Lock {
    _file: File,
    /// The output folder, when taking the lock created it.
    created: Option<PathBuf>,
}

impl Drop for Lock {
    /// A run that created the output folder but then wrote nothing (it stopped on an error)
    /// removes the folder again: an error leaves the disk as it was.
    fn drop(&mut self) {
        let Some(dir) = &self.created else { return };
        let only_lock = fs::read_dir(dir)
            .is_ok_and(|mut entries| entries.all(|e| e.is_ok_and(|e| e.file_name() == LOCK_FILE)));
        if only_lock {
            let _ = fs::remove_file(dir.join(LOCK_FILE));
            let _ = fs::remove_dir(dir);
        }
    }
}

pub(crate) fn lock(out_dir: &Path) -> Result<Lock, Error> {
    let created = (!out_dir.exists()).then(|| out_dir.to_path_buf());
    fs::create_dir_all(out_dir).map_err(|e| Error::io("create", out_dir, e))?;
    let path = out_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Lock {
            _file: file,
            created,
        }),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked(format!(
            "another `cargo xtask pki` is writing {} (it holds {}); wait for it to finish, then rerun",
            out_dir.display(),
            path.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}
