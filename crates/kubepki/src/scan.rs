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
    /// Relative path (with `/`) -> text, for every file under the templates folder.
    pub templates: BTreeMap<String, String>,
}

/// What is in the output folder now.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Relative path (with `/`) -> file. Symlinks are recorded, never followed.
    pub files: BTreeMap<String, FileObs>,
    /// Relative paths of directories that are symlinks.
    pub linked_dirs: Vec<String>,
    /// Temporary files left by an interrupted write (`fsx::is_temp_name`): not real files.
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

pub fn read_sources(spec_file: &Path, templates_dir: &Path) -> Result<Sources, Error> {
    let spec_text =
        std::fs::read_to_string(spec_file).map_err(|e| Error::io("read", spec_file, e))?;
    let mut templates = BTreeMap::new();
    if templates_dir.is_dir() {
        for entry in walkdir::WalkDir::new(templates_dir).sort_by_file_name() {
            let entry = entry.map_err(|e| Error::Io {
                op: "read",
                path: templates_dir.display().to_string(),
                cause: e.to_string(),
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = rel_path(templates_dir, entry.path());
            let text = std::fs::read_to_string(entry.path())
                .map_err(|e| Error::io("read", entry.path(), e))?;
            templates.insert(rel, text);
        }
    }
    // Diagnostics name the file as the user would type it: relative to where they stand.
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| spec_file.strip_prefix(cwd).ok().map(Path::to_path_buf));
    let spec_path = shown
        .unwrap_or_else(|| spec_file.to_path_buf())
        .display()
        .to_string();
    Ok(Sources {
        spec_path,
        spec_text,
        templates,
    })
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
        if !ft.is_dir() && crate::fsx::is_temp_name(&entry.file_name().to_string_lossy()) {
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
