//! File-system writes: atomic (temporary file in the same folder, fsync, rename, fsync the folder),
//! with explicit modes, never following a symlink out of the output folder. Many files at once go
//! through `write_batch`: every temporary file written and fsynced concurrently, then renamed in
//! the caller's order, then each folder fsynced once.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::layout::{FOLDER_MODE, FolderModes, LOCK_FILE, temp_name};

/// Makes sure every folder from `root` down to `rel`'s parent is a real folder, so a planted
/// symlink can never redirect a write outside `root`. Missing folders are created with the mode
/// `folders` gives them (`create_folder`).
pub(crate) fn ensure_parent(
    root: &Path,
    rel: &str,
    folders: &FolderModes,
) -> Result<PathBuf, Error> {
    walk_parents(root, rel, Some(folders))
}

/// The path of `root/rel`, every folder above it that exists checked to be a real folder (never a
/// link), and none created: for changing or removing a file that is already there.
fn existing_parent(root: &Path, rel: &str) -> Result<PathBuf, Error> {
    walk_parents(root, rel, None)
}

/// Checks the folders from `root` down to `rel`'s parent; a missing one is created when `create`
/// gives the modes, else the walk stops there (nothing below it can exist).
fn walk_parents(root: &Path, rel: &str, create: Option<&FolderModes>) -> Result<PathBuf, Error> {
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (n, part) in parts[..parts.len() - 1].iter().enumerate() {
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
            Err(_) => match create {
                Some(folders) => create_folder(&dir, folders.of(&parts[..=n].join("/")))?,
                None => break,
            },
        }
    }
    Ok(root.join(rel))
}

/// Creates folder `dir` with `mode` rather than the default 0777, so the umask can only make it
/// stricter: umask 000 gives `mode` itself, never a folder everyone can write to, and a
/// restrictive umask (077) still keeps the folders private.
fn create_folder(dir: &Path, mode: u32) -> Result<(), Error> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(dir)
        .map_err(|e| Error::io("create", dir, e))
}

/// Writes `bytes` to `path` atomically with `mode`, creating its folder (and the folders above
/// it) first; the folder is the write's root. For the files `import` and `init` write beside
/// pki.toml, which are not under the output folder.
pub(crate) fn write_at(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::Io {
        op: "create",
        path: dir.display().to_string(),
        cause: e.to_string(),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_atomic(dir, &name, bytes, mode, &FolderModes::default())
}

/// Writes `bytes` to `root/rel` atomically with `mode`. A symlink at the target is replaced by
/// the new file, never followed.
pub(crate) fn write_atomic(
    root: &Path,
    rel: &str,
    bytes: &[u8],
    mode: u32,
    folders: &FolderModes,
) -> Result<(), Error> {
    let path = ensure_parent(root, rel, folders)?;
    let dir = path.parent().unwrap_or(root).to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(temp_name(&name));
    let _ = fs::remove_file(&tmp);
    // Errors name the file being written, not its temporary name: that is the file the user
    // knows, and the temporary file is gone once the write failed.
    let result = (|| {
        // Created with the final mode from the start: a key is never readable by others, even briefly.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io("write", &path, e))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("write", &path, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &path, e))?;
        f.sync_all().map_err(|e| Error::io("write", &path, e))?;
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

/// One file of a `write_batch`: its path under the root, its bytes and its mode.
pub(crate) struct BatchFile<'a> {
    pub(crate) rel: &'a str,
    pub(crate) bytes: &'a [u8],
    pub(crate) mode: u32,
}

/// How many temporary files are written and fsynced at once. An fsync waits on the disk, not the
/// processor, and a journaling file system commits concurrent fsyncs together, so this is more
/// than the cores.
const WRITERS: usize = 32;

/// Writes every file of `files` atomically, as `write_atomic` does one, without waiting for the
/// disk once per file: (1) every temporary file is created with its final mode, written and
/// fsynced, concurrently; (2) only when all of them are on disk is each renamed over its target,
/// in the order of `files`; (3) every folder a file was renamed into (and each folder above it
/// up to `root`, which holds a folder this run may have created) is fsynced once. A file is
/// therefore never visible under its name before its bytes are durable, the names change in the
/// caller's order, and when this returns every rename is durable. If a temporary file cannot be
/// written, nothing has been renamed and every temporary file is removed. `written` is called
/// as each temporary file is on disk (for a progress display).
pub(crate) fn write_batch(
    root: &Path,
    files: &[BatchFile<'_>],
    folders: &FolderModes,
    written: &(dyn Fn() + Sync),
) -> Result<(), Error> {
    let targets = batch_targets(root, files, folders)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(WRITERS.min(files.len()).max(1))
        .build()
        .map_err(|e| Error::Io {
            op: "write",
            path: root.display().to_string(),
            cause: e.to_string(),
        })?;
    let results: Vec<Result<(), Error>> = pool.install(|| {
        use rayon::prelude::*;
        files
            .par_iter()
            .zip(&targets)
            .map(|(f, (path, tmp))| {
                let done = write_temp(path, tmp, f.bytes, f.mode);
                written();
                done
            })
            .collect()
    });
    if let Some(e) = results.into_iter().find_map(Result::err) {
        remove_temps(&targets);
        return Err(e);
    }
    for (n, (path, tmp)) in targets.iter().enumerate() {
        if let Err(e) = fs::rename(tmp, path) {
            remove_temps(&targets[n..]);
            return Err(Error::io("write", path, e));
        }
    }
    let dirs = folders_to_sync(root, &targets);
    pool.install(|| {
        use rayon::prelude::*;
        dirs.par_iter().for_each(|d| sync_folder(d));
    });
    Ok(())
}

/// The target and temporary path of each file of a batch, each parent folder checked (or
/// created) once per batch, in the order of `files`.
fn batch_targets(
    root: &Path,
    files: &[BatchFile<'_>],
    folders: &FolderModes,
) -> Result<Vec<(PathBuf, PathBuf)>, Error> {
    let mut checked: BTreeSet<&str> = BTreeSet::new();
    let mut targets = Vec::with_capacity(files.len());
    for f in files {
        let parent = f.rel.rsplit_once('/').map_or("", |(p, _)| p);
        let path = if checked.insert(parent) {
            ensure_parent(root, f.rel, folders)?
        } else {
            root.join(f.rel)
        };
        let dir = path.parent().unwrap_or(root);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(temp_name(&name));
        targets.push((path, tmp));
    }
    Ok(targets)
}

/// Creates `tmp` with `mode` (a key is never readable by others, even briefly), writes `bytes`
/// and fsyncs it. Errors name `path`, the file the user knows.
fn write_temp(path: &Path, tmp: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let _ = fs::remove_file(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| Error::io("write", path, e))?;
    let result = (|| {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    result.map_err(|e| Error::io("write", path, e))
}

/// Removes the temporary files of `targets` that exist (after a failed batch).
fn remove_temps(targets: &[(PathBuf, PathBuf)]) {
    for (_, tmp) in targets {
        let _ = fs::remove_file(tmp);
    }
}

/// Every folder a batch renamed into, and the folders above each up to and including `root`:
/// a folder this run created is durable only once the folder holding it is fsynced.
fn folders_to_sync(root: &Path, targets: &[(PathBuf, PathBuf)]) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for (path, _) in targets {
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(root)) {
            if !dirs.insert(d.to_path_buf()) {
                break;
            }
            dir = d.parent();
        }
    }
    dirs
}

/// Fsyncs a folder, so the renames into it survive a power loss. A folder that cannot be opened
/// was checked a moment ago; as in `write_atomic`, its fsync is best effort.
fn sync_folder(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

pub(crate) fn set_mode(root: &Path, rel: &str, mode: u32) -> Result<(), Error> {
    let path = existing_parent(root, rel)?;
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
    let path = existing_parent(root, rel)?;
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

/// Takes the output folder's lock, creating the folder (and any missing folder above it) first.
/// The lock file is opened without following a link (a planted link would make the tool create
/// or lock a file outside the output folder) and without blocking (opening a FIFO waits for a
/// writer); anything but a regular file there is refused.
pub(crate) fn lock(out_dir: &Path) -> Result<Lock, Error> {
    let created = (!out_dir.exists()).then(|| out_dir.to_path_buf());
    create_folders(out_dir)?;
    let path = out_dir.join(LOCK_FILE);
    let refuse = |what: &str| Error::Io {
        op: "lock",
        path: path.display().to_string(),
        cause: format!(
            "it is {what}, not a regular file; the tool never follows links or opens special files in the output folder: remove it, then rerun"
        ),
    };
    if let Ok(m) = fs::symlink_metadata(&path)
        && !m.is_file()
    {
        return Err(refuse(crate::scan::kind_of(&m.file_type())));
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            // Replaced between the look and the open: the open refuses it all the same.
            Some(libc::ELOOP) => refuse("a symlink"),
            Some(libc::ENXIO) => refuse("a FIFO"),
            _ => Error::io("open", &path, e),
        })?;
    let meta = file.metadata().map_err(|e| Error::io("open", &path, e))?;
    if !meta.is_file() {
        return Err(refuse(crate::scan::kind_of(&meta.file_type())));
    }
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

/// Creates `dir` and the folders above it that are missing, each `FOLDER_MODE`.
fn create_folders(dir: &Path) -> Result<(), Error> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    for d in missing.into_iter().rev() {
        create_folder(d, FOLDER_MODE)?;
    }
    Ok(())
}
