//! Read-only I/O: everything the pure stages need, gathered in one place. Nothing here writes.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
    let spec_text =
        std::fs::read_to_string(spec_file).map_err(|e| Error::io("read", spec_file, e))?;
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
