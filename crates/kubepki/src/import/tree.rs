//! A kubeadm tree (a node's /etc/kubernetes) mapped to items: which file is a CA, which leaf
//! each CA signed, the service-account key pair, the kubeconfigs' embedded clients, and the node.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::kubeconfig::{self, Kubeconfig};
use crate::Error;
use crate::x509::{self, CertFacts};

/// One certificate and its key, as found. `Debug` elides the key.
pub struct Found {
    /// The item's name in pki.toml.
    pub name: String,
    /// The issuing CA's name; `None` for a self-signed CA.
    pub issuer: Option<String>,
    /// The certificate's fields.
    pub facts: CertFacts,
    /// Where the certificate came from (relative to the tree), for messages.
    pub source: String,
    /// Its path in out/ (with `{node}` for a per-node item).
    pub cert_path: String,
    /// Its key's path in out/.
    pub key_path: String,
    /// Whether it names the node (its CN or SANs): then it is one per control-plane node.
    pub per_node: bool,
    /// The certificate and key files, byte for byte.
    pub cert: Vec<u8>,
    /// The key file.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Found {{ name: {}, [key elided] }}", self.name)
    }
}

/// A kubeconfig that becomes a render.
#[derive(Debug)]
pub struct Conf {
    /// Its file name (`admin.conf`), which is also the render's name.
    pub file: String,
    /// The name of the [[cert]] its client certificate became.
    pub client: String,
    /// The CA whose certificate the kubeconfig embeds.
    pub ca: String,
    /// Whether the client is per-node (kubelet.conf).
    pub per_node: bool,
    /// The kubeconfig as read.
    pub config: Kubeconfig,
}

/// The node the tree belongs to.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name (the kubelet's `system:node:NAME`, or etcd's CN).
    pub name: String,
    /// Its address (etcd's non-loopback IP SAN).
    pub ip: Option<IpAddr>,
}

/// What a kubeadm tree holds, mapped. `Debug` elides keys.
#[derive(Debug)]
pub struct Tree {
    /// The node the tree is the /etc/kubernetes of.
    pub node: Node,
    /// CAs first, then the leaves, in the tree's order.
    pub certs: Vec<Found>,
    /// The service-account key pair: private and public key files.
    pub sa: Option<SaPair>,
    /// The kubeconfigs with embedded clients.
    pub confs: Vec<Conf>,
    /// What could not be mapped, and why: reported, never dropped silently.
    pub unmapped: Vec<String>,
}

/// The service-account key pair's files. `Debug` elides them.
pub struct SaPair {
    /// sa.key, byte for byte.
    pub private: Vec<u8>,
    /// sa.pub, byte for byte.
    pub public: Vec<u8>,
}

impl std::fmt::Debug for SaPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaPair { [secret key elided] }")
    }
}

/// Every regular file under `dir`, by path relative to it (links are not followed).
pub fn read_dir(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let io = |op, path: &Path, e: &dyn std::fmt::Display| Error::Io {
        op,
        path: path.display().to_string(),
        cause: e.to_string(),
    };
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| io("read", dir, &e))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let bytes = std::fs::read(entry.path()).map_err(|e| io("read", entry.path(), &e))?;
        files.insert(rel.to_string_lossy().replace('\\', "/"), bytes);
    }
    Ok(files)
}

/// The item name of a certificate file under pki/: kubeadm's CA is `kubernetes-ca`, others take
/// their path (`etcd/server` is `etcd-server`).
fn item_name(stem: &str) -> String {
    match stem {
        "ca" => "kubernetes-ca".into(),
        _ => stem.replace('/', "-"),
    }
}

/// Maps the files of a tree. `node` overrides the node name found in it.
pub fn map(mut files: BTreeMap<String, Vec<u8>>, node: Option<&str>) -> Tree {
    let mut unmapped = Vec::new();
    let mut pairs = Vec::new();
    let stems: Vec<String> = files
        .keys()
        .filter_map(|p| {
            p.strip_prefix("pki/")?
                .strip_suffix(".crt")
                .map(String::from)
        })
        .collect();
    for stem in stems {
        let cert = files.remove(&format!("pki/{stem}.crt")).unwrap_or_default();
        let key = files.remove(&format!("pki/{stem}.key"));
        match pair(&stem, cert, key) {
            Ok(p) => pairs.push(p),
            Err(why) => unmapped.push(format!("pki/{stem}.crt: {why}")),
        }
    }
    let sa = take_sa(&mut files, &mut unmapped);
    let mut confs = Vec::new();
    let conf_names: Vec<String> = files
        .keys()
        .filter(|p| p.ends_with(".conf") && !p.contains('/'))
        .cloned()
        .collect();
    for file in conf_names {
        let text = files.remove(&file).unwrap_or_default();
        match kubeconfig::parse(&String::from_utf8_lossy(&text)) {
            Ok(config) => confs.push((file, config)),
            Err(why) => unmapped.push(format!("{file}: {why}")),
        }
    }
    unmapped.extend(
        files
            .into_keys()
            .map(|p| format!("{p}: not a certificate, key or kubeconfig this import maps (static pod manifests and other files stay where they are)")),
    );
    let node = find_node(node, &pairs, &confs);
    let mut tree = Tree {
        node,
        certs: Vec::new(),
        sa,
        confs: Vec::new(),
        unmapped,
    };
    link(&mut tree, pairs, confs);
    tree
}

/// A certificate file and its key, as read, before its issuer is known. (No `Debug`: it holds a
/// key.)
struct Pair {
    /// The path under pki/ without `.crt`, or the kubeconfig's name without `.conf`.
    stem: String,
    facts: CertFacts,
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// A certificate file and its key, checked to belong together.
fn pair(stem: &str, cert: Vec<u8>, key: Option<Vec<u8>>) -> Result<Pair, String> {
    let facts = x509::parse_cert(&cert)?;
    let key = key.ok_or("its key (.key beside it) is missing")?;
    let kf = x509::parse_key(&key).map_err(|e| format!("its key: {e}"))?;
    if kf.spki != facts.spki {
        return Err("its .key is not the certificate's key".into());
    }
    Ok(Pair {
        stem: stem.to_string(),
        facts,
        cert,
        key,
    })
}

/// sa.key and sa.pub, when both are there and match.
fn take_sa(files: &mut BTreeMap<String, Vec<u8>>, unmapped: &mut Vec<String>) -> Option<SaPair> {
    let private = files.remove("pki/sa.key");
    let public = files.remove("pki/sa.pub");
    let (private, public) = match (private, public) {
        (None, None) => return None,
        (Some(k), Some(p)) => (k, p),
        _ => {
            unmapped.push("pki/sa.key, pki/sa.pub: one of the pair is missing".into());
            return None;
        }
    };
    let key = x509::parse_key(&private).map(|k| k.spki);
    match (key, x509::parse_public_key(&public)) {
        (Ok(a), Ok(b)) if a == b => Some(SaPair { private, public }),
        _ => {
            unmapped.push("pki/sa.key, pki/sa.pub: not a key pair".into());
            None
        }
    }
}

/// The node's name: as given, else the kubelet's identity, else etcd's server CN; its address is
/// etcd's first non-loopback IP SAN.
fn find_node(given: Option<&str>, pairs: &[Pair], confs: &[(String, Kubeconfig)]) -> Node {
    let etcd = pairs
        .iter()
        .find(|p| p.stem == "etcd/server")
        .map(|p| &p.facts);
    let kubelet = confs
        .iter()
        .find(|c| c.0 == "kubelet.conf")
        .and_then(|c| c.1.user.strip_prefix("system:node:").map(String::from));
    let name = given
        .map(String::from)
        .or(kubelet)
        .or_else(|| etcd.and_then(|e| e.subject.cn.clone()))
        .unwrap_or_else(|| "cp-1".into());
    let ip = etcd.and_then(|e| e.sans.ips.iter().find(|ip| !ip.is_loopback()).copied());
    Node { name, ip }
}

/// Finds each certificate's issuer among the CAs and turns the kubeconfigs' clients into leaves.
fn link(tree: &mut Tree, pairs: Vec<Pair>, confs: Vec<(String, Kubeconfig)>) {
    let (cas, leaves): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|p| p.facts.is_ca && p.facts.issuer_raw == p.facts.subject_raw);
    for Pair {
        stem,
        facts,
        cert,
        key,
    } in cas
    {
        let path = format!("pki/{stem}");
        tree.certs.push(found(
            &tree.node,
            item_name(&stem),
            None,
            facts,
            &path,
            (cert, key),
        ));
    }
    for Pair {
        stem,
        facts,
        cert,
        key,
    } in leaves
    {
        let path = format!("pki/{stem}");
        if facts.is_ca {
            // pki.toml can declare an intermediate CA, but this import maps kubeadm's flat forest.
            let why = "an intermediate CA (signed by another): import maps only self-signed CAs";
            tree.unmapped.push(format!("{path}.crt: {why}"));
            continue;
        }
        match issuer_of(&tree.certs, &facts) {
            Some(i) => tree.certs.push(found(
                &tree.node,
                item_name(&stem),
                Some(i),
                facts,
                &path,
                (cert, key),
            )),
            None => tree
                .unmapped
                .push(format!("{path}.crt: signed by none of the CAs in pki/")),
        }
    }
    for (file, config) in confs {
        match conf_client(tree, &file, &config) {
            Ok((client, ca)) => {
                let per_node = tree.certs.iter().any(|c| c.name == client && c.per_node);
                tree.confs.push(Conf {
                    file,
                    client,
                    ca,
                    per_node,
                    config,
                });
            }
            Err(why) => tree.unmapped.push(format!("{file}: {why}")),
        }
    }
}

/// The CA (by name) whose key signed `facts`.
fn issuer_of(cas: &[Found], facts: &CertFacts) -> Option<String> {
    cas.iter()
        .filter(|c| c.issuer.is_none())
        .find(|c| {
            facts.issuer_raw == c.facts.subject_raw
                && x509::verifies_under(&facts.der, &c.facts.spki)
        })
        .map(|c| c.name.clone())
}

/// The leaf a kubeconfig's embedded client becomes (named after the file: `admin.conf` makes
/// `admin`, `kubelet.conf` makes `kubelet-client`), added to the tree; its name and the name of
/// the CA the kubeconfig embeds are returned.
fn conf_client(
    tree: &mut Tree,
    file: &str,
    config: &Kubeconfig,
) -> Result<(String, String), String> {
    let (cert, key) = config.client.clone().ok_or(
        "no embedded client certificate and key (the kubelet's own rotated files are its business); not imported",
    )?;
    let ca = config
        .ca
        .as_deref()
        .ok_or("no embedded certificate-authority-data")?;
    let ca = tree
        .certs
        .iter()
        .find(|c| c.issuer.is_none() && c.cert == ca)
        .map(|c| c.name.clone())
        .ok_or("its certificate-authority-data is none of the CA files in pki/ byte for byte")?;
    let stem = file.trim_end_matches(".conf");
    let Pair {
        facts, cert, key, ..
    } = pair(stem, cert, Some(key)).map_err(|e| format!("embedded client: {e}"))?;
    let issuer = issuer_of(&tree.certs, &facts)
        .ok_or("its client certificate is signed by none of the CAs in pki/")?;
    let name = if stem == "kubelet" {
        "kubelet-client".to_string()
    } else {
        stem.to_string()
    };
    let path = if stem == "kubelet" {
        "kubelet-client".to_string()
    } else {
        format!("pki/users/{stem}")
    };
    let item = found(
        &tree.node,
        name.clone(),
        Some(issuer),
        facts,
        &path,
        (cert, key),
    );
    tree.certs.push(item);
    Ok((name, ca))
}

/// A certificate found at `path` (without its extension), placed: per-node items go under
/// `nodes/{node}/`.
fn found(
    node: &Node,
    name: String,
    issuer: Option<String>,
    facts: CertFacts,
    path: &str,
    files: (Vec<u8>, Vec<u8>),
) -> Found {
    let per_node = issuer.is_some() && names_node(node, &facts);
    let out = if per_node {
        format!("nodes/{{node}}/{path}")
    } else {
        path.to_string()
    };
    Found {
        name,
        issuer,
        source: format!("{path}.crt"),
        cert_path: format!("{out}.crt"),
        key_path: format!("{out}.key"),
        per_node,
        facts,
        cert: files.0,
        key: files.1,
    }
}

/// Whether a certificate names the node: its CN is the node or its kubelet, or a SAN is the
/// node's name or address.
fn names_node(node: &Node, facts: &CertFacts) -> bool {
    let cn = facts.subject.cn.as_deref().unwrap_or("");
    cn == node.name
        || cn.strip_prefix("system:node:") == Some(node.name.as_str())
        || facts.sans.dns.contains(&node.name)
        || node.ip.is_some_and(|ip| facts.sans.ips.contains(&ip))
}
