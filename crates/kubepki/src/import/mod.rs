//! `pki import --from-kubeadm DIR`: adopting a cluster kubeadm (or openssl in its layout) made.
//!
//! [`read_kubeadm`] is the library's entry: it reads a copy of a node's /etc/kubernetes into a
//! [`tree::Tree`] (CAs, the leaves each signed, the service-account key pair, the kubeconfigs'
//! embedded clients, the node, and what could not be mapped). [`import`] writes pki.toml and
//! out/ from it (through `fsx::write_atomic`, keys 0600), or merges a second control-plane node
//! into an earlier import, and checks with the planner that nothing would be created, re-signed
//! or re-keyed (a merge before it writes anything, so a refused one leaves pki.toml and out/ as
//! they were), then renders the kubeconfigs with the tool itself.
//!
//! Kubeconfigs: their client certificates and keys become `[[cert]]` items (files byte for byte
//! under out/pki/users/, or out/nodes/<node>/ for the kubelet), and the kubeconfigs renders of the
//! repository's kubeconfig.hbs. The rendered file holds the same certificates, names and server,
//! but the key in the tool's PKCS#8 form: a template cannot reproduce kubeadm's PKCS#1/SEC1
//! `client-key-data` without a key inside the template, so byte identity is kept for the key and
//! certificate files, and `--check` is clean because out/ holds the tool's own render.

pub mod kubeconfig;
pub mod spec_text;
pub mod tree;

use std::path::{Path, PathBuf};

use crate::layout::{CERT_MODE, FolderModes, KEY_MODE};
use crate::plan::Action;
use crate::spec::ItemKind;
use crate::{Error, Options};

pub use tree::Tree;

/// The kubeconfig template the import's renders use, written when templates/ has none.
pub const KUBECONFIG_TEMPLATE: &str = include_str!("../../../../templates/kubeconfig.hbs");

/// Reads the kubeadm tree `dir` (a copy of a node's /etc/kubernetes). `node` names the node when
/// its files do not (or name it otherwise).
pub fn read_kubeadm(dir: &Path, node: Option<&str>) -> Result<Tree, Error> {
    Ok(tree::map(tree::read_dir(dir)?, node))
}

/// What an import is asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// The kubeadm tree.
    pub from: PathBuf,
    /// The node's name, when given.
    pub node: Option<String>,
    /// Overwrite an existing pki.toml and out/.
    pub force: bool,
    /// The run that follows: paths, clock, colour (`check` and `prune` are ignored).
    pub run: Options,
}

/// One file to write, relative to out/ (no `Debug`: it may be a key).
struct OutFile {
    path: String,
    bytes: Vec<u8>,
    mode: u32,
}

/// Imports `req.from` and returns the report.
pub fn import(req: &Request) -> Result<String, Error> {
    let tree = read_kubeadm(&req.from, req.node.as_deref())?;
    let o = &req.run;
    let existing = o.spec_file.exists() || o.out_dir.exists();
    let mut report = String::new();
    if existing && !req.force {
        let known = known_nodes(&o.spec_file)?;
        if known.contains(&tree.node.name) {
            return Err(Error::Usage(format!(
                "{} or {} exists and already has node `{}`: pass --force to overwrite them, or --node NAME to import this tree as another node",
                o.spec_file.display(),
                o.out_dir.display(),
                tree.node.name
            )));
        }
        let merged = merge(o, &tree)?;
        // The planner judges the merge before anything is written: a node it would change is
        // refused with pki.toml and out/ as they were.
        let sources = crate::scan::read_sources(&o.spec_file, &o.templates_dir)?;
        let sources = crate::scan::Sources {
            spec_text: merged.spec_text.clone(),
            ..sources
        };
        let mut observed = crate::scan::observe(&o.out_dir)?;
        for f in &merged.files {
            let obs = crate::scan::FileObs {
                bytes: f.bytes.clone(),
                mode: f.mode,
                symlink: false,
            };
            observed.files.insert(f.path.clone(), obs);
        }
        verify_plan(o, &sources, observed, Written::No)?;
        write_merge(o, &merged)?;
        report.push_str(&format!(
            "merged node `{}` into {}\n",
            tree.node.name,
            o.spec_file.display()
        ));
    } else {
        fresh(o, &tree, &req.from)?;
        report.push_str(&format!(
            "wrote {} and {}\n",
            o.spec_file.display(),
            o.out_dir.display()
        ));
    }
    let sources = crate::scan::read_sources(&o.spec_file, &o.templates_dir)?;
    verify_plan(o, &sources, crate::scan::observe(&o.out_dir)?, Written::Yes)?;
    let outcome = crate::run(&Options {
        check: false,
        prune: false,
        diff: false,
        format: crate::report::PlanFormat::Text,
        renew: Default::default(),
        ..o.clone()
    })?;
    report.push_str(&outcome.text);
    for u in &tree.unmapped {
        report.push_str(&format!("not imported: {u}\n"));
    }
    Ok(report)
}

/// The node names of an existing pki.toml.
fn known_nodes(spec_file: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(spec_file).map_err(|e| Error::Io {
        op: "read",
        path: spec_file.display().to_string(),
        cause: e.to_string(),
    })?;
    let (raw, _) = crate::config::parse_partial(&text);
    Ok(raw
        .map(|r| r.nodes.iter().map(|n| n.name.get_ref().clone()).collect())
        .unwrap_or_default())
}

/// Every file of the tree at its place in out/, `{node}` made the tree's node.
fn out_files(tree: &Tree) -> Vec<OutFile> {
    let at = |p: &str| p.replace("{node}", &tree.node.name);
    let mut files = Vec::new();
    for c in &tree.certs {
        files.push(OutFile {
            path: at(&c.cert_path),
            bytes: c.cert.clone(),
            mode: CERT_MODE,
        });
        files.push(OutFile {
            path: at(&c.key_path),
            bytes: c.key.clone(),
            mode: KEY_MODE,
        });
    }
    if let Some(sa) = &tree.sa {
        files.push(OutFile {
            path: "pki/sa.key".into(),
            bytes: sa.private.clone(),
            mode: KEY_MODE,
        });
        files.push(OutFile {
            path: "pki/sa.pub".into(),
            bytes: sa.public.clone(),
            mode: CERT_MODE,
        });
    }
    files
}

/// A first import: pki.toml, the kubeconfig template if there is none, and out/.
fn fresh(o: &Options, tree: &Tree, from: &Path) -> Result<(), Error> {
    let text = spec_text::write(tree, &from.display().to_string());
    crate::fsx::write_at(&o.spec_file, text.as_bytes(), CERT_MODE)?;
    let template = o.templates_dir.join("kubeconfig.hbs");
    if !tree.confs.is_empty() && !template.exists() {
        crate::fsx::write_at(&template, KUBECONFIG_TEMPLATE.as_bytes(), CERT_MODE)?;
    }
    std::fs::create_dir_all(&o.out_dir).map_err(|e| Error::Io {
        op: "create",
        path: o.out_dir.display().to_string(),
        cause: e.to_string(),
    })?;
    // The folders of keys are made 0700 by the pipeline's own run right after; these are made
    // with the default mode (0755) before pki.toml can say which folders hold only keys.
    let folders = FolderModes::default();
    for f in out_files(tree) {
        crate::fsx::write_atomic(&o.out_dir, &f.path, &f.bytes, f.mode, &folders)?;
    }
    Ok(())
}

/// A second control-plane node: its own files go under out/nodes/<node>/, its shared files must
/// be out/'s byte for byte, and pki.toml gains its `[[node]]`.
fn merge(o: &Options, tree: &Tree) -> Result<Merged, Error> {
    let mut differ = Vec::new();
    let per_node: Vec<String> = tree
        .certs
        .iter()
        .filter(|c| c.per_node)
        .flat_map(|c| [c.cert_path.clone(), c.key_path.clone()])
        .map(|p| p.replace("{node}", &tree.node.name))
        .collect();
    let files = out_files(tree);
    for f in files.iter().filter(|f| !per_node.contains(&f.path)) {
        if std::fs::read(o.out_dir.join(&f.path)).ok().as_deref() != Some(&f.bytes[..]) {
            differ.push(f.path.clone());
        }
    }
    if !differ.is_empty() {
        return Err(Error::Usage(format!(
            "node `{}` is not a node of the imported cluster: its {} differ from out/'s (a shared file must be the same on every control-plane node); nothing was written",
            tree.node.name,
            differ.join(", ")
        )));
    }
    let mut spec_text = std::fs::read_to_string(&o.spec_file).map_err(|e| Error::Io {
        op: "read",
        path: o.spec_file.display().to_string(),
        cause: e.to_string(),
    })?;
    spec_text.push_str(&spec_text::node_table(&tree.node));
    let files = files
        .into_iter()
        .filter(|f| per_node.contains(&f.path))
        .collect();
    Ok(Merged { spec_text, files })
}

/// A second node's merge, decided but not written: pki.toml with its `[[node]]`, and its own
/// files.
struct Merged {
    spec_text: String,
    files: Vec<OutFile>,
}

/// Writes a merge the planner accepted: the node's files, then pki.toml that declares them.
fn write_merge(o: &Options, merged: &Merged) -> Result<(), Error> {
    let folders = FolderModes::default();
    for f in &merged.files {
        crate::fsx::write_atomic(&o.out_dir, &f.path, &f.bytes, f.mode, &folders)?;
    }
    crate::fsx::write_at(&o.spec_file, merged.spec_text.as_bytes(), CERT_MODE)
}

/// Whether the files the planner judges are already written (a first import) or still only in
/// memory (a merge), which its refusal says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    Yes,
    No,
}

/// The planner's word on what was imported: every certificate and key pair kept as it is (only
/// renders may be written). Anything else is the import's mistake, said per item.
fn verify_plan(
    o: &Options,
    sources: &crate::scan::Sources,
    observed: crate::scan::Observed,
    written: Written,
) -> Result<(), Error> {
    let spec = crate::load(sources)?;
    let disk = crate::disk::decode(observed, &crate::layout::key_companions(&spec));
    let req = crate::plan::Request {
        rekey: Default::default(),
        renew: Default::default(),
        out: crate::scan::shown(&o.out_dir),
        diffs: false,
    };
    let plan = crate::plan::plan(&spec, sources, &disk, o.now, &req);
    let wrong: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| {
            !matches!(spec.items[s.item].kind, ItemKind::Render(_)) && s.action != Action::Keep
        })
        .map(|s| {
            let why: Vec<String> = s.reasons.iter().map(|r| r.to_string()).collect();
            format!(
                "{} ({:?}: {})",
                spec.items[s.item].name,
                s.action,
                why.join("; ")
            )
        })
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    let then = match written {
        Written::Yes => "they are written, but the tool would change them",
        Written::No => "nothing was written (pki.toml and out/ are as they were)",
    };
    Err(Error::Usage(format!(
        "the imported pki.toml does not describe the imported files: {}; {then}",
        wrong.join(", ")
    )))
}
