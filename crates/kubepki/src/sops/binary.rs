//! sops's binary format, for files that are neither YAML nor JSON (a PEM key): the whole file is
//! one string value under the key `data`, written as JSON, `{"data": "ENC[...]", "sops": {...}}`.

use sha2::{Digest as _, Sha512};

use crate::sops::document::{Node, hex_upper};
use crate::sops::metadata::Metadata;
use crate::sops::value::{self, DataKey, Kind};
use crate::sops::{Error, Identity};

/// The additional data of the one value: its key, `data`.
const DATA_AAD: &str = "data:";

/// A binary SOPS file as read: its encrypted value and its metadata.
pub(super) struct File {
    pub(super) data: String,
    pub(super) sops: Node,
}

/// The sealed value and the MAC of the plaintext.
pub(super) struct Sealed {
    pub(super) data: String,
    pub(super) mac: String,
}

/// Encrypts the whole file as one value.
pub(super) fn seal(key: &DataKey, plaintext: &[u8]) -> Result<Sealed, Error> {
    let data = value::encrypt(key, plaintext, Kind::Str, DATA_AAD)?;
    Ok(Sealed {
        data,
        mac: hex_upper(&Sha512::digest(plaintext)),
    })
}

/// The original bytes, after checking the value and the MAC.
pub(super) fn open(file: &File, identities: &[Identity]) -> Result<Vec<u8>, Error> {
    let metadata = Metadata::read(file.sops.clone())?;
    let key = metadata.data_key(identities)?;
    let (plaintext, _) = value::decrypt(&key, &file.data, DATA_AAD)?;
    if !metadata
        .mac(&key)?
        .eq_ignore_ascii_case(&hex_upper(&Sha512::digest(&plaintext)))
    {
        return Err(Error::MacMismatch);
    }
    Ok(plaintext)
}

impl File {
    /// Reads sops's binary format; a JSON document with any other keys than `data` and `sops` is
    /// sops's JSON format, which this module does not read.
    pub(super) fn parse(text: &str) -> Result<File, Error> {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::Malformed(format!("invalid JSON: {e}")))?;
        let serde_json::Value::Object(mut object) = json else {
            return Err(Error::Malformed("JSON that is not an object".to_owned()));
        };
        let sops = object.remove("sops").ok_or(Error::NotSops)?;
        let data = match object.remove("data") {
            Some(serde_json::Value::String(data)) if object.is_empty() => data,
            _ => {
                return Err(Error::Unsupported(
                    "sops JSON documents (binary files only)".into(),
                ));
            }
        };
        if !value::is_encrypted(&data) {
            return Err(Error::Malformed(
                "`data` is not an encrypted value".to_owned(),
            ));
        }
        Ok(File {
            data,
            sops: from_json(sops)?,
        })
    }
}

fn from_json(json: serde_json::Value) -> Result<Node, Error> {
    use serde_json::Value;
    Ok(match json {
        Value::Object(object) => Node::Map(
            object
                .into_iter()
                .map(|(k, v)| Ok((k, from_json(v)?)))
                .collect::<Result<_, Error>>()?,
        ),
        Value::Array(items) => {
            Node::Seq(items.into_iter().map(from_json).collect::<Result<_, _>>()?)
        }
        Value::String(text) => Node::Str(text),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(n), _) => Node::Int(n),
            (None, Some(x)) => Node::Float(x),
            (None, None) => return Err(Error::Unsupported(format!("the number {n}"))),
        },
        Value::Bool(b) => Node::Bool(b),
        Value::Null => Node::Null,
    })
}

/// The file as sops writes it: JSON indented with tabs, `data` first, then `sops`.
pub(super) fn emit(data: &str, metadata: &Metadata) -> String {
    let mut out = String::from("{\n\t\"data\": ");
    out.push_str(&json_string(data));
    out.push_str(",\n\t\"sops\": ");
    write_json(&mut out, &Node::Map(metadata.entries().to_vec()), 1);
    out.push_str("\n}\n");
    out
}

fn write_json(out: &mut String, node: &Node, depth: usize) {
    let indent = |out: &mut String, depth: usize| out.extend(std::iter::repeat_n('\t', depth));
    match node {
        Node::Map(entries) if !entries.is_empty() => {
            out.push_str("{\n");
            for (idx, (key, value)) in entries.iter().enumerate() {
                indent(out, depth + 1);
                out.push_str(&json_string(key));
                out.push_str(": ");
                write_json(out, value, depth + 1);
                out.push_str(if idx + 1 < entries.len() { ",\n" } else { "\n" });
            }
            indent(out, depth);
            out.push('}');
        }
        Node::Seq(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (idx, item) in items.iter().enumerate() {
                indent(out, depth + 1);
                write_json(out, item, depth + 1);
                out.push_str(if idx + 1 < items.len() { ",\n" } else { "\n" });
            }
            indent(out, depth);
            out.push(']');
        }
        Node::Map(_) => out.push_str("{}"),
        Node::Seq(_) => out.push_str("[]"),
        Node::Str(text) => out.push_str(&json_string(text)),
        Node::Int(n) => out.push_str(&n.to_string()),
        Node::Float(x) => out.push_str(
            &serde_json::Number::from_f64(*x).map_or_else(|| "null".to_owned(), |n| n.to_string()),
        ),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Null => out.push_str("null"),
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}
