//! Generated trees, made once per test binary and copied into each test's own fixture: the
//! kubeadm PKI (tests/fixtures/kubeadm), whose RSA-2048 keys take about a second to make in a
//! debug build and which a dozen tests judge, and the starting points that many table-driven
//! cases share.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::{Fixture, kubeadm_spec, mode};

/// A fixture with the kubeadm pki.toml and out/ as `cargo xtask pki --now <kubeadm_now()>` made
/// it, byte for byte and mode for mode. Each call gives a new folder of its own, free to edit.
pub fn kubeadm_tree() -> Fixture {
    generated(&kubeadm_spec(), &[], &["--now", kubeadm_now()])
}

/// A fixture whose pki.toml is `spec`, with the tests' templates plus `templates` (name,
/// text), and out/ as `cargo xtask pki ARGS` made it (the run must succeed). The run happens
/// once per test binary for each (spec, templates, args); every call gets its own copy of the
/// result, files and folders with the modes the tool gave them, free to edit.
pub fn generated(spec: &str, templates: &[(&str, &str)], args: &[&str]) -> Fixture {
    let setup = |f: &Fixture| {
        for (name, text) in templates {
            std::fs::write(f.root().join("templates").join(name), text).unwrap();
        }
    };
    let key = format!("{spec}\0{templates:?}\0{args:?}");
    let cell = {
        let mut trees = TREES.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(trees.entry(key).or_default())
    };
    // Generation happens outside the map's lock: other trees are made meanwhile, and a test
    // that wants this one waits for it.
    let tree = cell.get_or_init(|| {
        let f = Fixture::new(spec);
        setup(&f);
        f.apply(args);
        Tree::read(&f.out())
    });
    let f = Fixture::new(spec);
    setup(&f);
    tree.copy_into(&f.out());
    f
}

/// Every tree made so far, by (spec, templates, args).
static TREES: Mutex<BTreeMap<String, Arc<OnceLock<Tree>>>> = Mutex::new(BTreeMap::new());

/// The `--now` the shared tree was generated at, in RFC 3339: the start of this test binary's
/// first use of it, to the second. It is fixed for the whole run, so a rerun with it finds
/// nothing stale, and it is the real time, so openssl, gnutls and kubectl accept the
/// certificates as valid now.
pub fn kubeadm_now() -> &'static str {
    static NOW: OnceLock<String> = OnceLock::new();
    NOW.get_or_init(|| rfc3339(time::OffsetDateTime::now_utc()))
}

/// `t` in RFC 3339, to the second, as `--now` takes it: written out by hand, so the tests do not
/// depend on time's formatting feature.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A generated out/ folder, held in memory (the folder it was made in is removed at once). If
/// making it fails, the test that asked fails with the CLI's output, and the next one tries
/// again.
struct Tree {
    /// Folders (relative, parents first, out/ itself as the empty path) and their modes.
    dirs: Vec<(PathBuf, u32)>,
    /// Files (relative) with their bytes and modes.
    files: Vec<(PathBuf, Vec<u8>, u32)>,
}

impl Tree {
    fn read(out: &Path) -> Tree {
        let mut tree = Tree {
            dirs: vec![(PathBuf::new(), mode(out))],
            files: Vec::new(),
        };
        tree.read_dir(out, Path::new(""));
        tree
    }

    fn read_dir(&mut self, out: &Path, rel: &Path) {
        let mut entries: Vec<_> = std::fs::read_dir(out.join(rel))
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = rel.join(e.file_name());
            let path = out.join(&rel);
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                self.dirs.push((rel.clone(), mode(&path)));
                self.read_dir(out, &rel);
            } else if kind.is_file() {
                self.files
                    .push((rel, std::fs::read(&path).unwrap(), mode(&path)));
            } else {
                panic!(
                    "{}: a generated tree holds only files and folders",
                    path.display()
                );
            }
        }
    }

    /// Writes the tree into `out` (which must not exist yet; its parent must): files first, then the folder
    /// modes, deepest first, so a folder without write permission is still filled.
    fn copy_into(&self, out: &Path) {
        for (rel, _) in &self.dirs {
            std::fs::create_dir(out.join(rel)).unwrap();
        }
        for (rel, bytes, mode) in &self.files {
            let path = out.join(rel);
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        for (rel, mode) in self.dirs.iter().rev() {
            std::fs::set_permissions(out.join(rel), std::fs::Permissions::from_mode(*mode))
                .unwrap();
        }
    }
}
