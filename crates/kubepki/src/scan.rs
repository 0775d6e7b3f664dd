//! Read-only I/O: everything the pure stages need, gathered in one place. Nothing here writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use crate::diag::Diagnostic;
use crate::error::Error;
use crate::layout::{INVENTORY, MAX_READ, MAX_TEXT, is_temp_name};

/// The inputs: pki.toml and the templates, as text.
#[derive(Debug, Clone)]
pub struct Sources {
    pub spec_path: String,
    pub spec_text: String,
    /// Relative path (with `/`) -> text, for every file under the templates folder (hidden ones
    /// aside).
    pub templates: crate::render::Templates,
    /// Files of the templates folder that cannot be templates (not UTF-8 text, unreadable), with
    /// what is wrong. They stop a run only when pki.toml uses one (`resolve` says so then): an
    /// editor's binary scratch file in the folder must not break every run.
    pub unusable_templates: BTreeMap<String, String>,
}

/// What is in the output folder now.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Relative path (with `/`) -> file. Symlinks are recorded, never followed.
    pub files: BTreeMap<String, FileObs>,
    /// Relative paths of directories that are symlinks.
    pub linked_dirs: Vec<String>,
    /// Temporary files left by an interrupted write (`layout::is_temp_name`): not real files.
    pub temps: Vec<String>,
    /// Relative paths of the real folders.
    pub folders: BTreeSet<String>,
    /// Entries that were not read, with why: special files (never opened) and files too large
    /// to be a certificate or key.
    pub unread: BTreeMap<String, Unread>,
    /// Entries whose name is not UTF-8, shown escaped (`\xff`): no path in pki.toml can name
    /// them, and a lossy name would be another file's, so they are never read or removed.
    pub unnamed: Vec<String>,
}

/// Why a file of the output folder was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// Not a regular file, a link or a folder (a FIFO, a socket, a device): opening it could
    /// block or have effects.
    Special(&'static str),
    /// A regular file larger than the tool reads of it (`layout::MAX_READ`, or `layout::MAX_TEXT`
    /// for the inventory and rendered files).
    TooLarge { size: u64, limit: u64 },
}

impl fmt::Display for Unread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unread::Special(kind) => write!(f, "is {kind}, not a regular file"),
            Unread::TooLarge { size, limit } if *limit == MAX_READ => write!(
                f,
                "is {size} bytes, more than any certificate or key ({limit} at most): not read"
            ),
            Unread::TooLarge { size, limit } => write!(
                f,
                "is {size} bytes, more than the tool reads of an inventory or rendered file ({limit} at most): not read"
            ),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct FileObs {
    pub bytes: Vec<u8>,
    pub mode: u32,
    pub symlink: bool,
}

impl fmt::Debug for FileObs {
    // File contents may be private keys: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FileObs {{ {} bytes, mode {:o}, symlink {} }}",
            self.bytes.len(),
            self.mode,
            self.symlink
        )
    }
}

impl Observed {
    pub fn get(&self, path: &str) -> Option<&FileObs> {
        self.files.get(path)
    }
}

/// Reads pki.toml and the templates folder. The templates folder is an input: links in it are
/// followed; hidden files and folders (`.NAME`: editors' swap and lock files, `.git`) are skipped.
pub fn read_sources(spec_file: &Path, templates_dir: &Path) -> Result<Sources, Error> {
    let bytes = std::fs::read(spec_file).map_err(|e| Error::io("read", spec_file, e))?;
    let spec_text = spec_text(&shown(spec_file), bytes)?;
    let mut templates = BTreeMap::new();
    let mut unusable = BTreeMap::new();
    if templates_dir.is_dir() {
        let hidden = |p: &Path| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        };
        let walk = walkdir::WalkDir::new(templates_dir)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !hidden(e.path()));
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                // A dangling link, a link loop, a folder that cannot be listed: a problem only
                // if pki.toml uses it.
                Err(e) if e.depth() > 0 && e.path().is_some_and(|p| !hidden(p)) => {
                    let path = e.path().unwrap_or(templates_dir);
                    unusable.insert(
                        rel_path(templates_dir, path),
                        format!("cannot be read: {e}"),
                    );
                    continue;
                }
                Err(e) if e.depth() > 0 => continue,
                Err(e) => {
                    return Err(Error::Io {
                        op: "read",
                        path: templates_dir.display().to_string(),
                        cause: e.to_string(),
                    });
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = rel_path(templates_dir, entry.path());
            match std::fs::read(entry.path()).map(String::from_utf8) {
                Ok(Ok(text)) => {
                    templates.insert(rel, text);
                }
                Ok(Err(_)) => {
                    unusable.insert(rel, "is not UTF-8 text".into());
                }
                Err(e) => {
                    unusable.insert(rel, format!("cannot be read: {e}"));
                }
            }
        }
    }
    Ok(Sources {
        spec_path: shown(spec_file),
        spec_text,
        templates: templates.into(),
        unusable_templates: unusable,
    })
}

/// pki.toml's bytes as text. A file that is not UTF-8, or has a NUL byte (a binary file, or a
/// UTF-16 one), is refused as a whole with where its first such byte is: its text would be
/// nothing but syntax errors. `file` is the path as the user named it.
fn spec_text(file: &str, bytes: Vec<u8>) -> Result<String, Error> {
    let (bytes, at, what) = match String::from_utf8(bytes) {
        Ok(text) => match text.find('\0') {
            None => return Ok(text),
            Some(at) => (text.into_bytes(), at, "is binary, not text"),
        },
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            (e.into_bytes(), at, "is not UTF-8 text")
        }
    };
    // Everything before `at` is text, so its lines and columns are those of the file.
    let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let (line, col) = crate::diag::line_col(before, at);
    let message = format!(
        "{file} {what}: byte 0x{:02X} at line {line}, column {col}",
        bytes[at]
    );
    let help = "it is read as UTF-8 text: save it as UTF-8 (an editor's \"save with encoding\", or `iconv -f latin1 -t utf-8`), or check that -f names the right file";
    // The line is shown with what cannot be shown as text replaced by U+FFFD; the column is
    // right, since everything before the byte is text.
    let shown = String::from_utf8_lossy(&bytes).replace('\0', "\u{FFFD}");
    let at_char = crate::diag::Position {
        line,
        col,
        width: 1,
    };
    let snippet = crate::diag::snippet(
        file,
        &crate::diag::Lines::new(&shown),
        Some(at_char),
        Some(help),
    );
    let rendered =
        format!("error: {message}\n{snippet}\nerror: {file} has 1 error; nothing was written\n");
    Err(Error::Spec {
        file: file.to_string(),
        rendered,
        diagnostics: vec![Diagnostic::new(message, None).with_help(help)],
    })
}

/// `path` as the user would type it: relative to the current folder when it is inside it.
/// Diagnostics and reports name files this way.
pub fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .map(|p| {
            if p.as_os_str().is_empty() {
                ".".into()
            } else {
                p
            }
        })
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// Refuses an output folder that is not a folder (a file where `--out` points): every mode
/// would otherwise see an empty tree.
pub fn check_out_dir(out_dir: &Path) -> Result<(), Error> {
    match fs::metadata(out_dir) {
        Ok(m) if !m.is_dir() => Err(Error::Io {
            op: "use",
            path: shown(out_dir),
            cause: "it is a file, not a folder; the output folder must be a folder: move the file away, or name another folder with --out".into(),
        }),
        _ => Ok(()),
    }
}

/// Everything in the output folder, as `observe_declared` with only the inventory as a text file.
pub fn observe(out_dir: &Path) -> Result<Observed, Error> {
    observe_declared(out_dir, &BTreeSet::from([INVENTORY.to_string()]))
}

/// Everything in the output folder: regular files up to `layout::MAX_READ` bytes are read (any
/// certificate or key, declared or moved, is far smaller), the files of `texts` (relative paths:
/// the inventory and rendered files, `layout::text_files`) up to `layout::MAX_TEXT`; links, special
/// files and larger files are recorded by kind, never followed, opened or read.
pub fn observe_declared(out_dir: &Path, texts: &BTreeSet<String>) -> Result<Observed, Error> {
    let mut obs = Observed::default();
    if !out_dir.exists() {
        return Ok(obs);
    }
    let mut regular = Vec::new();
    for found in walk(out_dir, out_dir)? {
        match found {
            Found::Unnamed(path) => obs.unnamed.push(escaped_rel(out_dir, &path)),
            Found::Entry(entry) => {
                regular.extend(observe_entry(&mut obs, out_dir, &entry, texts));
            }
        }
    }
    read_regular(&mut obs, regular)?;
    Ok(obs)
}

/// What the walk of the output folder finds, in its order.
enum Found {
    /// An entry whose name is not UTF-8, by its path: listed as such, never read nor entered.
    Unnamed(std::path::PathBuf),
    Entry(Listed),
}

/// An entry of the output folder: its path, name and type (of the entry itself: links are not
/// followed).
struct Listed {
    path: std::path::PathBuf,
    name: std::ffi::OsString,
    ft: fs::FileType,
}

/// Every entry under `dir` (inside `out_dir`, which errors name), depth first, each folder's entries sorted by name, a folder before
/// what it holds (the order `walkdir` with `sort_by_file_name` gives). The folders of a level are
/// listed in parallel (a tree of 1000 nodes has a folder per node) and their entries joined in
/// that order; the first error in that order is the one returned.
fn walk(out_dir: &Path, dir: &Path) -> Result<Vec<Found>, Error> {
    use rayon::prelude::*;
    // In walkdir's words, which this walk replaced.
    let io = |path: &Path, e: std::io::Error| Error::Io {
        op: "read",
        path: out_dir.display().to_string(),
        cause: format!("IO error for operation on {}: {e}", path.display()),
    };
    let mut listed = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| io(&path, e))?;
        let name = entry.file_name();
        listed.push(Listed { path, name, ft });
    }
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let below: Vec<Result<Vec<Found>, Error>> = listed
        .par_iter()
        .map(|l| {
            if l.ft.is_dir() && l.name.to_str().is_some() {
                walk(out_dir, &l.path)
            } else {
                Ok(Vec::new())
            }
        })
        .collect();
    let mut found = Vec::with_capacity(listed.len());
    for (l, below) in listed.into_iter().zip(below) {
        // A folder whose name is not UTF-8 is listed as such and not entered.
        if l.name.to_str().is_none() {
            found.push(Found::Unnamed(l.path));
            continue;
        }
        found.push(Found::Entry(l));
        found.extend(below?);
    }
    Ok(found)
}

/// A regular file the walk found, to be read: its relative path, its path, and how much of it
/// is read at most.
struct ToRead {
    rel: String,
    path: std::path::PathBuf,
    limit: u64,
}

/// Reads the regular files of the output folder, in parallel (a tree of 1000 nodes has 6000
/// files, and each read waits on the file system more than on the processor).
fn read_regular(obs: &mut Observed, files: Vec<ToRead>) -> Result<(), Error> {
    use rayon::prelude::*;
    let read: Vec<(String, Result<FileObs, Unread>)> = files
        .into_par_iter()
        .map(|f| read_limited(&f.path, f.limit).map(|r| (f.rel, r)))
        .collect::<Result<_, Error>>()?;
    for (rel, r) in read {
        match r {
            Ok(file) => {
                obs.files.insert(rel, file);
            }
            Err(unread) => {
                obs.unread.insert(rel, unread);
            }
        }
    }
    Ok(())
}

/// Records one entry of the output folder in `obs`; a regular file is returned, to be read with
/// the others (`read_regular`).
fn observe_entry(
    obs: &mut Observed,
    out_dir: &Path,
    entry: &Listed,
    texts: &BTreeSet<String>,
) -> Option<ToRead> {
    let rel = rel_path(out_dir, &entry.path);
    let ft = entry.ft;
    if ft.is_dir() {
        obs.folders.insert(rel);
    } else if is_temp_name(&entry.name.to_string_lossy()) {
        obs.temps.push(rel);
    } else if ft.is_symlink() {
        let target_is_dir = fs::metadata(&entry.path).is_ok_and(|m| m.is_dir());
        if target_is_dir {
            obs.linked_dirs.push(rel);
        } else {
            let link = FileObs {
                bytes: Vec::new(),
                mode: 0,
                symlink: true,
            };
            obs.files.insert(rel, link);
        }
    } else if !ft.is_file() {
        obs.unread.insert(rel, Unread::Special(kind_of(&ft)));
    } else {
        let limit = if texts.contains(&rel) {
            MAX_TEXT
        } else {
            MAX_READ
        };
        return Some(ToRead {
            rel,
            path: entry.path.clone(),
            limit,
        });
    }
    None
}

/// Reads a regular file of at most `limit` bytes. Opened without following a link or blocking
/// (it could have been replaced by one since the folder was listed), and read no further than
/// the limit, whatever its size says.
fn read_limited(path: &Path, limit: u64) -> Result<Result<FileObs, Unread>, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io("read", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("read", path, e))?;
    if !meta.is_file() {
        return Ok(Err(Unread::Special(kind_of(&meta.file_type()))));
    }
    if meta.len() > limit {
        let size = meta.len();
        return Ok(Err(Unread::TooLarge { size, limit }));
    }
    // Sized from the metadata (one more byte to see a file that grew since): read in one go,
    // rather than grown and probed from empty.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    File::take(file, limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > limit {
        let size = bytes.len() as u64;
        return Ok(Err(Unread::TooLarge { size, limit }));
    }
    Ok(Ok(FileObs {
        bytes,
        mode: meta.permissions().mode() & 0o7777,
        symlink: false,
    }))
}

/// What a file that is not a regular file is, in words.
pub(crate) fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symlink"
    } else if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// The path of an entry whose own name is not UTF-8 (its folders' names are), with the name's
/// bytes escaped.
fn escaped_rel(base: &Path, p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let name = p
        .file_name()
        .map_or(String::new(), |n| n.as_bytes().escape_ascii().to_string());
    match p.parent().map(|d| rel_path(base, d)) {
        Some(dir) if !dir.is_empty() => format!("{dir}/{name}"),
        _ => name,
    }
}

fn rel_path(base: &Path, p: &Path) -> String {
    p.strip_prefix(base)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
