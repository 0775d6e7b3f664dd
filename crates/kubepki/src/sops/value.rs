//! One encrypted value, `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<kind>]`: AES-256-GCM
//! under the file's data key with a 32-byte IV, bound to its key path as additional data.

use std::fmt;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::{SecureRandom, SystemRandom};

use crate::sops::Error;

/// AES-256-GCM with sops's 32-byte IVs (GCM hashes a nonce of any other length than 12 bytes
/// into its counter block, as Go's `NewGCMWithNonceSize` does).
type Cipher = AesGcm<Aes256, U32>;

/// The file's 32-byte data key. Its `Debug` never shows it.
#[derive(Clone)]
pub(super) struct DataKey([u8; 32]);

impl DataKey {
    /// A new data key from the operating system's RNG.
    pub(super) fn generate() -> Result<DataKey, Error> {
        let mut key = [0u8; 32];
        random(&mut key)?;
        Ok(DataKey(key))
    }

    /// A data key as unwrapped from an age stanza.
    pub(super) fn from_bytes(bytes: &[u8]) -> Result<DataKey, Error> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Malformed(format!("a data key of {} bytes", bytes.len())))?;
        Ok(DataKey(key))
    }

    /// The key's bytes, for wrapping to a recipient.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([secret key elided])")
    }
}

/// The `type:` of a value: how its plaintext bytes read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Int,
    Float,
    Bool,
    Bytes,
    Comment,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::Bytes => "bytes",
            Kind::Comment => "comment",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        [
            Kind::Str,
            Kind::Int,
            Kind::Float,
            Kind::Bool,
            Kind::Bytes,
            Kind::Comment,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

/// Whether a string is an encrypted value (rather than a plaintext one left readable).
pub(super) fn is_encrypted(text: &str) -> bool {
    text.starts_with("ENC[AES256_GCM,") && text.ends_with(']')
}

/// The additional data of the value at `path`: the keys joined with `:`, plus a trailing `:`.
pub(super) fn additional_data(path: &[String]) -> String {
    path.iter().map(|key| format!("{key}:")).collect()
}

/// Encrypts `plaintext` under `key`, bound to `aad`, with a fresh random IV.
pub(super) fn encrypt(
    key: &DataKey,
    plaintext: &[u8],
    kind: Kind,
    aad: &str,
) -> Result<String, Error> {
    let mut iv = [0u8; 32];
    random(&mut iv)?;
    let cipher = Cipher::new((&key.0).into());
    let mut data = plaintext.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(Nonce::<U32>::from_slice(&iv), aad.as_bytes(), &mut data)
        .map_err(|_| Error::Malformed("a value too long for AES-GCM".to_owned()))?;
    Ok(format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
        B64.encode(&data),
        B64.encode(iv),
        B64.encode(tag),
        kind.name()
    ))
}

/// Decrypts an `ENC[...]` value under `key`, which must have been bound to `aad`.
pub(super) fn decrypt(key: &DataKey, text: &str, aad: &str) -> Result<(Vec<u8>, Kind), Error> {
    let parts = Parts::parse(text).ok_or_else(|| Error::Malformed(malformed_at(aad)))?;
    if parts.iv.len() != 32 || parts.tag.len() != 16 {
        return Err(Error::Malformed(malformed_at(aad)));
    }
    let cipher = Cipher::new((&key.0).into());
    let mut data = parts.data;
    cipher
        .decrypt_in_place_detached(
            Nonce::<U32>::from_slice(&parts.iv),
            aad.as_bytes(),
            &mut data,
            Tag::from_slice(&parts.tag),
        )
        .map_err(|_| Error::Tampered {
            path: aad.to_owned(),
        })?;
    Ok((data, parts.kind))
}

fn malformed_at(aad: &str) -> String {
    format!("the encrypted value at `{aad}` is not ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]")
}

/// The fields of an `ENC[...]` value, decoded.
struct Parts {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    kind: Kind,
}

impl Parts {
    fn parse(text: &str) -> Option<Parts> {
        fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
            text.strip_prefix(name)?.strip_prefix(':')
        }
        let inner = text.strip_prefix("ENC[AES256_GCM,")?.strip_suffix(']')?;
        let fields: Vec<&str> = inner.split(',').collect();
        let [data, iv, tag, kind] = fields.as_slice() else {
            return None;
        };
        let data = B64.decode(field(data, "data")?).ok()?;
        let iv = B64.decode(field(iv, "iv")?).ok()?;
        let tag = B64.decode(field(tag, "tag")?).ok()?;
        let kind = Kind::parse(field(kind, "type")?)?;
        Some(Parts {
            data,
            iv,
            tag,
            kind,
        })
    }
}

/// Fills `buf` from the operating system's RNG.
pub(super) fn random(buf: &mut [u8]) -> Result<(), Error> {
    SystemRandom::new().fill(buf).map_err(|_| Error::Random)
}
