//! Read-only I/O: everything the pure stages need, gathered in one place. Nothing here writes.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::diag::Diagnostic;
use crate::error::Error;

/// The inputs: pki.toml and the templates, as text.
#[derive(Debug, Clone)]
pub struct Sources {
    pub spec_path: String,
    pub spec_text: String,
    /// Relative path (with `/`) -> text, for every file under the templates folder (hidden ones
    /// aside).
    pub templates: BTreeMap<String, String>,
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
        templates,
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

pub fn observe(out_dir: &Path) -> Result<Observed, Error> {
    let mut obs = Observed::default();
    if !out_dir.exists() {
        return Ok(obs);
    }
    for entry in walkdir::WalkDir::new(out_dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| Error::Io {
            op: "read",
            path: out_dir.display().to_string(),
            cause: e.to_string(),
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let rel = rel_path(out_dir, entry.path());
        let ft = entry.file_type();
        if !ft.is_dir() && crate::layout::is_temp_name(&entry.file_name().to_string_lossy()) {
            obs.temps.push(rel);
        } else if ft.is_symlink() {
            let target_is_dir = std::fs::metadata(entry.path())
                .map(|m| m.is_dir())
                .unwrap_or(false);
            if target_is_dir {
                obs.linked_dirs.push(rel);
            } else {
                obs.files.insert(
                    rel,
                    FileObs {
                        bytes: Vec::new(),
                        mode: 0,
                        symlink: true,
                    },
                );
            }
        } else if ft.is_file() {
            let bytes =
                std::fs::read(entry.path()).map_err(|e| Error::io("read", entry.path(), e))?;
            let mode = entry
                .metadata()
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0);
            obs.files.insert(
                rel,
                FileObs {
                    bytes,
                    mode,
                    symlink: false,
                },
            );
        }
    }
    Ok(obs)
}

fn rel_path(base: &Path, p: &Path) -> String {
    p.strip_prefix(base)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
