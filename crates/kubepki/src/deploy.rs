//! `cargo xtask deploy`: one node's files, decrypted, in the layout of its `/etc/kubernetes`,
//! written into a target folder or to stdout as a tar stream. This is the only place plaintext
//! keys are produced when `out/` is encrypted (`[encryption]`), so what it places is decided
//! narrowly (`selection`): a node gets its own per-node files (what is under
//! `layout::node_folder` lands at the top of its tree), every CA certificate, and, on a
//! control-plane node only, the shared keys and files kubeadm's `join --control-plane` copies
//! (the CA keys, the key pair, shared leaves, shared rendered files). Never another node's
//! files, never a leaf key that only lives inside a rendered file (a kubeconfig's user), and
//! never a rendered file that embeds another node's key.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use time::OffsetDateTime;

use crate::error::Error;
use crate::layout::{CERT_MODE, FolderModes, KEY_MODE, node_folder, render_mode};
use crate::plan::{Blocker, Problem};
use crate::sops::{self, Identity};
use crate::spec::{ItemId, ItemKind, Spec};
use crate::{disk, fsx, layout, plan, scan};

/// Write one node's files, decrypted, in its kubeadm layout.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to", "tar"])))]
pub struct Args {
    /// The node (a `[[node]]` name in pki.toml).
    #[arg(long)]
    pub node: String,
    /// The folder to write into (the node's `/etc/kubernetes`, or a staging copy of it).
    #[arg(long, value_name = "DIR", conflicts_with = "tar")]
    pub to: Option<PathBuf>,
    /// Write a tar stream to stdout instead (e.g. `| ssh cp-1 tar -x -C /etc/kubernetes`); never
    /// to a terminal.
    #[arg(long)]
    pub tar: bool,
    /// The spec file.
    #[arg(long, short = 'f', default_value = "pki.toml")]
    pub file: PathBuf,
    /// The output folder.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// The templates folder.
    #[arg(long, default_value = "templates")]
    pub templates: PathBuf,
}

/// One file placed on the node: where it is in `out/`, where it goes in the node's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The item the file is of.
    pub item: String,
    /// The file's path in `out/`.
    pub from: String,
    /// Its path in the node's tree.
    pub to: String,
    /// The mode it is written with.
    pub mode: u32,
}

/// Runs `deploy` with paths relative to `root`; identities from the environment (as `pki`).
pub fn main(root: &Path, args: Args) -> ExitCode {
    // The one reading of the system clock here: staleness is judged, and the tar stream dated,
    // as of now.
    let now = OffsetDateTime::now_utc();
    let res = refuse_terminal(args.tar, std::io::stdout().is_terminal())
        .and_then(|()| crate::cli::identities())
        .and_then(|ids| run(root, &args, &ids, now));
    match res {
        Ok(summary) => {
            eprint!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", crate::report::error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// A tar stream holds the node's private keys in plaintext: it goes to a pipe or a file, never
/// onto a terminal's screen and scrollback (as `tar` itself refuses to write an archive there).
fn refuse_terminal(tar: bool, stdout_is_terminal: bool) -> Result<(), Error> {
    if tar && stdout_is_terminal {
        return Err(Error::Usage(
            "--tar writes the node's private keys in plaintext, so not to a terminal: pipe it (`| ssh NODE tar -x -C /etc/kubernetes`), redirect it to a file, or use --to DIR".into(),
        ));
    }
    Ok(())
}

fn run(
    root: &Path,
    args: &Args,
    identities: &[Identity],
    now: OffsetDateTime,
) -> Result<String, Error> {
    let out_dir = root.join(&args.out);
    let sources = scan::read_sources(&root.join(&args.file), &root.join(&args.templates))?;
    let spec = crate::load(&sources)?;
    let placed = selection(&spec, &args.node)?;
    let disk = disk::decode(
        scan::observe_declared(&out_dir, &layout::text_files(&spec))?,
        &layout::key_companions(&spec),
    );
    refuse_stale(&spec, &sources, &disk, &scan::shown(&out_dir), now)?;
    let files = plaintexts(&disk, &placed, identities)?;
    match &args.to {
        Some(dir) => write_folder(dir, &out_dir, &files)?,
        None => std::io::stdout()
            .write_all(&tar(&files, now)?)
            .map_err(|e| Error::io("write", Path::new("stdout"), e))?,
    }
    Ok(format!(
        "deployed {} files of node {}{}\n",
        files.len(),
        args.node,
        args.to
            .as_ref()
            .map_or(String::new(), |d| format!(" into {}", d.display()))
    ))
}

/// The files of `node`, and where each goes. A node no item names is an error.
pub fn selection(spec: &Spec, node: &str) -> Result<Vec<Placed>, Error> {
    let Some(role) = role_of(spec, node) else {
        return Err(Error::Usage(format!(
            "no per-node entry of pki.toml expands for a node `{node}`; deploy takes a `[[node]]` name that per-node entries expand over"
        )));
    };
    let control_plane = role == "control-plane";
    let own = node_folder(node);
    let mut res = Vec::new();
    for id in 0..spec.items.len() {
        let place = |from: &str, mode| Placed {
            item: spec.items[id].name.clone(),
            from: from.to_string(),
            to: from.strip_prefix(own.as_str()).unwrap_or(from).to_string(),
            mode,
        };
        match placement(spec, id, node, control_plane) {
            Placement::Nothing => {}
            Placement::Certificate => {
                if let ItemKind::Cert(c) = &spec.items[id].kind {
                    res.push(place(&c.cert_path, CERT_MODE));
                }
            }
            Placement::Whole => res.extend(
                files_of(spec, id)
                    .into_iter()
                    .map(|(p, mode)| place(p, mode)),
            ),
        }
    }
    refuse_collisions(&res)?;
    Ok(res)
}

/// What of an item a node gets.
enum Placement {
    Nothing,
    /// A CA's certificate without its key (a worker's trust anchor).
    Certificate,
    /// Every file of the item.
    Whole,
}

/// What of item `id` node `node` gets, first match wins: another node's item nothing; its own
/// item all of it; a CA its certificate, and its key on a control-plane node; a shared leaf
/// whose key a rendered file embeds nothing (the rendered file carries it); any other shared
/// item all of it, on a control-plane node only, unless it is a rendered file that embeds a key
/// of another node.
fn placement(spec: &Spec, id: ItemId, node: &str, control_plane: bool) -> Placement {
    match node_of(spec, id) {
        Some(n) if n == node => return Placement::Whole,
        Some(_) => return Placement::Nothing,
        None => {}
    }
    let is_ca = spec.items[id]
        .kind
        .as_cert()
        .is_some_and(|c| c.ca.is_some());
    match (is_ca, control_plane) {
        (true, true) => Placement::Whole,
        (true, false) => Placement::Certificate,
        (false, false) => Placement::Nothing,
        (false, true) if embedded(spec, id) => Placement::Nothing,
        (false, true) if embeds_other_nodes_key(spec, id, node) => Placement::Nothing,
        (false, true) => Placement::Whole,
    }
}

/// The node a per-node item is an instance for.
fn node_of(spec: &Spec, id: ItemId) -> Option<&str> {
    match &spec.items[id].kind {
        ItemKind::Cert(c) => c.node.as_ref().map(|n| n.name.as_str()),
        ItemKind::Render(r) => r.node.as_ref().map(|n| n.name.as_str()),
        ItemKind::KeyPair(_) => None,
    }
}

/// The role of `node`, as the items expanded for it record it.
fn role_of<'s>(spec: &'s Spec, node: &str) -> Option<&'s str> {
    spec.items.iter().find_map(|item| {
        let n = match &item.kind {
            ItemKind::Cert(c) => c.node.as_ref(),
            ItemKind::Render(r) => r.node.as_ref(),
            ItemKind::KeyPair(_) => None,
        }?;
        (n.name == node).then_some(n.role.as_str())
    })
}

/// Whether a rendered file embeds the key of leaf `id` (a kubeconfig's user): the key then
/// travels inside it and is not placed as a file.
fn embedded(spec: &Spec, id: ItemId) -> bool {
    let is_leaf = spec.items[id]
        .kind
        .as_cert()
        .is_some_and(|c| c.ca.is_none());
    is_leaf
        && spec.items.iter().any(|item| match &item.kind {
            ItemKind::Render(r) => r.secrets.iter().any(|v| r.bind.get(v) == Some(&id)),
            _ => false,
        })
}

/// Whether rendered file `id` embeds the key of an item that is another node's.
fn embeds_other_nodes_key(spec: &Spec, id: ItemId, node: &str) -> bool {
    let ItemKind::Render(r) = &spec.items[id].kind else {
        return false;
    };
    r.secrets
        .iter()
        .filter_map(|v| r.bind.get(v))
        .any(|&i| node_of(spec, i).is_some_and(|n| n != node))
}

/// Every file of item `id` with its mode.
fn files_of(spec: &Spec, id: ItemId) -> Vec<(&str, u32)> {
    match &spec.items[id].kind {
        ItemKind::Cert(c) => vec![(&c.cert_path, CERT_MODE), (&c.key_path, KEY_MODE)],
        ItemKind::KeyPair(k) => vec![(&k.private_path, KEY_MODE), (&k.public_path, CERT_MODE)],
        ItemKind::Render(r) => vec![(&r.path, render_mode(r))],
    }
}

/// Two files placed at one path (a shared file and a node's own one of the same name).
fn refuse_collisions(placed: &[Placed]) -> Result<(), Error> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for p in placed {
        if let Some(other) = seen.insert(&p.to, &p.from) {
            return Err(Error::Usage(format!(
                "{other} and {} would both be deployed as {}; give one of them another path in pki.toml",
                p.from, p.to
            )));
        }
    }
    Ok(())
}

/// A stale `out/` is not deployed: what is there is not what pki.toml declares.
fn refuse_stale(
    spec: &Spec,
    sources: &scan::Sources,
    disk: &disk::Disk,
    out: &str,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let request = plan::Request {
        rekey: Default::default(),
        renew: Default::default(),
        out: out.to_string(),
        diffs: false,
    };
    let plan = plan::plan(spec, sources, disk, now, &request);
    if !plan.problems.is_empty() {
        return Err(Error::Blocked(plan.problems));
    }
    if !plan.changes_nothing(false) {
        return Err(Error::Usage(format!(
            "{out}/ is stale (`cargo xtask pki --check` says what would change): run `cargo xtask pki` first, then deploy"
        )));
    }
    Ok(())
}

/// One placed file's plaintext.
struct Plain {
    placed: Placed,
    bytes: Vec<u8>,
}

/// Every placed file as plaintext: a SOPS file decrypted with `identities` (every file that does
/// not open is reported), any other as it is.
fn plaintexts(disk: &disk::Disk, placed: &[Placed], ids: &[Identity]) -> Result<Vec<Plain>, Error> {
    let mut res = Vec::new();
    let mut problems = Vec::new();
    for p in placed {
        let Some(obs) = disk.obs(&p.from).filter(|o| !o.symlink) else {
            return Err(Error::Usage(format!(
                "{} is missing: run `cargo xtask pki` first",
                p.from
            )));
        };
        let text = String::from_utf8_lossy(&obs.bytes);
        let sealed = disk.get(&p.from).is_some_and(|f| f.is_sealed());
        let bytes = if sealed {
            match sops::decrypt(&text, ids) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(refusal(p, e));
                    continue;
                }
            }
        } else {
            obs.bytes.clone()
        };
        res.push(Plain {
            placed: p.clone(),
            bytes,
        });
    }
    if !problems.is_empty() {
        return Err(Error::Blocked(problems));
    }
    Ok(res)
}

fn refusal(placed: &Placed, err: sops::Error) -> Problem {
    let path = &placed.from;
    let blocker = match err {
        sops::Error::NoMatchingIdentity { recipients } => Blocker::IdentityMissing {
            path: path.to_string(),
            recipients,
        },
        other => Blocker::SealedKeyUnreadable {
            path: path.to_string(),
            cause: other.to_string(),
        },
    };
    Problem {
        items: vec![placed.item.clone()],
        blocker,
    }
}

/// Writes the files into `dir` (never inside `out/`), each atomically with its mode.
fn write_folder(dir: &Path, out_dir: &Path, files: &[Plain]) -> Result<(), Error> {
    let (dir_at, out_at) = (resolved(dir), resolved(out_dir));
    if dir_at.starts_with(&out_at) || out_at.starts_with(&dir_at) {
        return Err(Error::Usage(format!(
            "{} overlaps the output folder; deploy writes plaintext keys, never into or around it",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let folders = FolderModes::default();
    for f in files {
        fsx::write_atomic(dir, &f.placed.to, &f.bytes, f.placed.mode, &folders)?;
    }
    Ok(())
}

/// The longest name a ustar header holds without its prefix field.
const TAR_NAME_MAX: usize = 100;

/// Where `path` is once links are followed, for a path that may not exist yet: its nearest
/// existing ancestor resolved, the rest as given (made absolute from the working directory).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut at = absolute.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            return rest.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return absolute,
        }
    }
}

/// The files as a POSIX (ustar) tar stream, owned by root, with their modes. A name too long
/// for the header is refused, never cut.
fn tar(files: &[Plain], now: OffsetDateTime) -> Result<Vec<u8>, Error> {
    let mut res = Vec::new();
    for f in files {
        if f.placed.to.len() > TAR_NAME_MAX {
            return Err(Error::Usage(format!(
                "{} is longer than {TAR_NAME_MAX} bytes, which a tar header holds; deploy with --to DIR instead",
                f.placed.to
            )));
        }
        res.extend(tar_header(&f.placed.to, f.bytes.len(), f.placed.mode, now));
        res.extend(&f.bytes);
        res.resize(res.len().div_ceil(512) * 512, 0);
    }
    res.resize(res.len() + 1024, 0);
    Ok(res)
}

/// One ustar header (a name of at most `TAR_NAME_MAX` bytes).
fn tar_header(name: &str, size: usize, mode: u32, now: OffsetDateTime) -> [u8; 512] {
    let mut h = [0u8; 512];
    let field =
        |h: &mut [u8; 512], at: usize, text: &[u8]| h[at..at + text.len()].copy_from_slice(text);
    field(&mut h, 0, name.as_bytes());
    field(&mut h, 100, format!("{mode:07o}\0").as_bytes());
    field(&mut h, 108, b"0000000\0");
    field(&mut h, 116, b"0000000\0");
    field(&mut h, 124, format!("{size:011o}\0").as_bytes());
    field(
        &mut h,
        136,
        format!("{:011o}\0", now.unix_timestamp().max(0)).as_bytes(),
    );
    field(&mut h, 148, b"        ");
    h[156] = b'0';
    field(&mut h, 257, b"ustar\0");
    field(&mut h, 263, b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    field(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}
