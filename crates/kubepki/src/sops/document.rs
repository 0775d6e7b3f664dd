//! A YAML document as sops sees it (a tree of mappings, sequences and scalars, in order), and the
//! two walks over it: `seal` (encrypt the selected values, compute the MAC) and `open` (decrypt
//! every encrypted value, check the MAC).

use std::fmt;

use sha2::{Digest as _, Sha512};
use yaml_rust2::{Yaml, YamlLoader};

use crate::sops::Error;
use crate::sops::metadata::Metadata;
use crate::sops::rule::Rule;
use crate::sops::value::{self, DataKey, Kind};

/// A node of the tree. Mapping keys are strings, as sops requires of the files it writes. Its
/// `Debug` shows the keys and never a value: a decrypted tree holds private keys.
#[derive(Clone, PartialEq)]
pub(super) enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Map(entries) => f
                .debug_map()
                .entries(entries.iter().map(|(k, v)| (k, v)))
                .finish(),
            Node::Seq(items) => f.debug_list().entries(items).finish(),
            _ => f.write_str("[value elided]"),
        }
    }
}

impl Node {
    /// The bytes sops hashes (and encrypts) for a scalar; `None` for what it leaves alone (null).
    fn plaintext(&self) -> Option<Vec<u8>> {
        match self {
            Node::Str(text) => Some(text.as_bytes().to_vec()),
            Node::Int(n) => Some(n.to_string().into_bytes()),
            Node::Float(x) => Some(x.to_string().into_bytes()),
            Node::Bool(true) => Some(b"True".to_vec()),
            Node::Bool(false) => Some(b"False".to_vec()),
            Node::Null | Node::Map(_) | Node::Seq(_) => None,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Node::Int(_) => Kind::Int,
            Node::Float(_) => Kind::Float,
            Node::Bool(_) => Kind::Bool,
            _ => Kind::Str,
        }
    }

    /// The value of key `name` in a mapping.
    pub(super) fn get(&self, name: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string scalar.
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(text) => Some(text),
            _ => None,
        }
    }
}

/// A document: the top-level mapping's entries, in order.
#[derive(Debug, Clone)]
pub(super) struct Doc {
    entries: Vec<(String, Node)>,
}

impl Doc {
    /// Parses one YAML document whose top level is a mapping.
    pub(super) fn parse_yaml(text: &str) -> Result<Doc, Error> {
        let docs = YamlLoader::load_from_str(text)
            .map_err(|e| Error::Malformed(format!("invalid YAML: {e}")))?;
        let [doc] = <[Yaml; 1]>::try_from(docs).map_err(|docs| {
            Error::Unsupported(format!(
                "{} YAML documents in one file (one only)",
                docs.len()
            ))
        })?;
        Doc::from_node(from_yaml(doc)?)
    }

    /// A document from an already parsed top-level node.
    pub(super) fn from_node(node: Node) -> Result<Doc, Error> {
        match node {
            Node::Map(entries) => Ok(Doc { entries }),
            _ => Err(Error::Unsupported(
                "a document that is not a mapping".to_owned(),
            )),
        }
    }

    pub(super) fn entries(&self) -> &[(String, Node)] {
        &self.entries
    }

    /// The `sops` metadata, if the document has it.
    pub(super) fn sops(&self) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, _)| k == "sops")
            .map(|(_, v)| v)
    }

    /// Removes the `sops` metadata and returns it.
    pub(super) fn take_sops(&mut self) -> Result<Node, Error> {
        let idx = self
            .entries
            .iter()
            .position(|(k, _)| k == "sops")
            .ok_or(Error::NotSops)?;
        Ok(self.entries.remove(idx).1)
    }

    /// Sets the `sops` metadata, last, as sops writes it.
    pub(super) fn set_sops(&mut self, node: Node) {
        self.entries.retain(|(k, _)| k != "sops");
        self.entries.push(("sops".to_owned(), node));
    }
}

/// Converts yaml-rust2's tree; aliases and non-string keys are refused, as sops cannot write them.
pub(super) fn from_yaml(yaml: Yaml) -> Result<Node, Error> {
    Ok(match yaml {
        Yaml::Hash(hash) => {
            let mut entries = Vec::with_capacity(hash.len());
            for (key, value) in hash {
                let Yaml::String(key) = key else {
                    return Err(Error::Unsupported(
                        "a mapping key that is not a string".into(),
                    ));
                };
                entries.push((key, from_yaml(value)?));
            }
            Node::Map(entries)
        }
        Yaml::Array(items) => {
            Node::Seq(items.into_iter().map(from_yaml).collect::<Result<_, _>>()?)
        }
        Yaml::String(text) => Node::Str(text),
        Yaml::Integer(n) => Node::Int(n),
        Yaml::Real(text) => Node::Float(finite_float(&text)?),
        Yaml::Boolean(b) => Node::Bool(b),
        Yaml::Null => Node::Null,
        Yaml::Alias(_) => return Err(Error::Unsupported("YAML aliases".to_owned())),
        Yaml::BadValue => return Err(Error::Malformed("an unreadable YAML value".to_owned())),
    })
}

fn finite_float(text: &str) -> Result<f64, Error> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(Error::Unsupported(format!(
            "the float `{text}` (sops writes finite floats)"
        ))),
    }
}

/// Encrypts the values `rule` names, in place, and returns the MAC (upper-case hex SHA-512
/// over every value's plaintext, in document order).
pub(super) fn seal(doc: &mut Doc, key: &DataKey, rule: &Rule) -> Result<String, Error> {
    let mut walk = Seal {
        key,
        rule,
        mac: Sha512::new(),
        path: Vec::new(),
    };
    let top = rule.at_top();
    for (name, node) in &mut doc.entries {
        walk.entry(name, node, top)?;
    }
    Ok(hex_upper(&walk.mac.finalize()))
}

struct Seal<'a> {
    key: &'a DataKey,
    rule: &'a Rule,
    mac: Sha512,
    path: Vec<String>,
}

impl Seal<'_> {
    fn entry(&mut self, name: &str, node: &mut Node, parent: bool) -> Result<(), Error> {
        let encrypt = self.rule.under(parent, name);
        self.path.push(name.to_owned());
        let res = self.node(node, encrypt);
        self.path.pop();
        res
    }

    fn node(&mut self, node: &mut Node, encrypt: bool) -> Result<(), Error> {
        match node {
            Node::Map(entries) => {
                for (name, child) in entries {
                    self.entry(name, child, encrypt)?;
                }
            }
            Node::Seq(items) => {
                for item in items {
                    self.node(item, encrypt)?;
                }
            }
            scalar => {
                let Some(plaintext) = scalar.plaintext() else {
                    return Ok(());
                };
                self.mac.update(&plaintext);
                // sops leaves empty strings as they are: there is nothing to hide.
                if encrypt && !plaintext.is_empty() {
                    let aad = value::additional_data(&self.path);
                    *scalar = Node::Str(value::encrypt(self.key, &plaintext, scalar.kind(), &aad)?);
                }
            }
        }
        Ok(())
    }
}

/// Decrypts the values the file's rule encrypts, in place, then checks the MAC recorded in
/// `metadata`. A value the rule encrypts that is not `ENC[...]` was put there by hand.
pub(super) fn open(doc: &mut Doc, key: &DataKey, metadata: &Metadata) -> Result<(), Error> {
    let rule = Rule::read(metadata)?;
    let mut walk = Open {
        key,
        rule: &rule,
        only_encrypted: metadata.mac_only_encrypted(),
        mac: Sha512::new(),
        path: Vec::new(),
    };
    let top = rule.at_top();
    for (name, node) in &mut doc.entries {
        walk.entry(name, node, top)?;
    }
    let computed = hex_upper(&walk.mac.finalize());
    if !metadata.mac(key)?.eq_ignore_ascii_case(&computed) {
        return Err(Error::MacMismatch);
    }
    Ok(())
}

struct Open<'a> {
    key: &'a DataKey,
    rule: &'a Rule,
    only_encrypted: bool,
    mac: Sha512,
    path: Vec<String>,
}

impl Open<'_> {
    fn entry(&mut self, name: &str, node: &mut Node, parent: bool) -> Result<(), Error> {
        let encrypted = self.rule.under(parent, name);
        self.path.push(name.to_owned());
        let res = self.node(node, encrypted);
        self.path.pop();
        res
    }

    fn node(&mut self, node: &mut Node, encrypted: bool) -> Result<(), Error> {
        match node {
            Node::Map(entries) => {
                for (name, child) in entries {
                    self.entry(name, child, encrypted)?;
                }
            }
            Node::Seq(items) => {
                for item in items {
                    self.node(item, encrypted)?;
                }
            }
            Node::Str(text) if encrypted && value::is_encrypted(text) => {
                let aad = value::additional_data(&self.path);
                let (plaintext, kind) = value::decrypt(self.key, text, &aad)?;
                self.mac.update(&plaintext);
                *node = typed(plaintext, kind, &aad)?;
            }
            scalar => {
                let Some(plaintext) = scalar.plaintext() else {
                    return Ok(());
                };
                if encrypted && !plaintext.is_empty() {
                    return Err(Error::Tampered {
                        path: value::additional_data(&self.path),
                    });
                }
                if !self.only_encrypted {
                    self.mac.update(&plaintext);
                }
            }
        }
        Ok(())
    }
}

/// A decrypted value read back as its `type:`.
fn typed(plaintext: Vec<u8>, kind: Kind, aad: &str) -> Result<Node, Error> {
    let bad = || Error::Malformed(format!("the value at `{aad}` is not a valid {kind:?}"));
    let text = String::from_utf8(plaintext).map_err(|_| bad())?;
    Ok(match kind {
        Kind::Str | Kind::Bytes => Node::Str(text),
        Kind::Int => Node::Int(text.parse().map_err(|_| bad())?),
        Kind::Float => Node::Float(text.parse().map_err(|_| bad())?),
        Kind::Bool => match text.as_str() {
            "True" | "true" => Node::Bool(true),
            "False" | "false" => Node::Bool(false),
            _ => return Err(bad()),
        },
        Kind::Comment => return Err(Error::Unsupported("encrypted YAML comments".to_owned())),
    })
}

/// Upper-case hexadecimal, as sops writes the MAC.
pub(super) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
