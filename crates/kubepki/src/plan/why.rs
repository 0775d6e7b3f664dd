//! Why the plan decided what it did, as data: `Reason` for a step's action, `Blocker` for what
//! stops the run, `Problem` for a blocker with the items it stops. Every word the user reads
//! about a decision is written here, in the `Display` impls, and nowhere else.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::spec::{KeyAlg, Subject, Usage, fmt_duration};
use crate::x509::fmt_time;

/// Why a step does what it does. Serialised for `--format json` as `{"kind": "...", fields}`
/// (`ser` says how times, durations and bare strings are written).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// Nothing is on disk yet.
    New,
    /// `--rekey` names the item.
    RekeyFlag,
    /// `--renew` names the item (or is `all` and the item is not a CA): re-signed now with the
    /// same key.
    RenewFlag,
    KeyMissing {
        path: String,
    },
    /// The key file is there but cannot be used (damaged, a link, not a key).
    KeyUnreadable(#[serde(serialize_with = "ser::cause")] String),
    KeyAlgChanged {
        disk: Option<KeyAlg>,
        spec: KeyAlg,
    },
    CertMissing {
        path: String,
    },
    CertUnreadable(#[serde(serialize_with = "ser::cause")] String),
    CertKeyMismatch {
        cert: String,
        key: String,
    },
    SubjectChanged {
        disk: Subject,
        spec: Subject,
    },
    /// SAN entries to add and remove (`DNS:x`, `IP:y`), and SANs of other kinds on disk.
    SansChanged {
        added: Vec<String>,
        removed: Vec<String>,
        others: usize,
    },
    NotCa,
    NoKeyCertSign,
    PathLenChanged {
        disk: Option<u32>,
        spec: Option<u8>,
    },
    LeafIsCa,
    KeyUsageChanged(#[serde(serialize_with = "ser::key_usage")] Vec<&'static str>),
    UsagesChanged {
        disk: Vec<Usage>,
        spec: Vec<Usage>,
    },
    NotSelfSigned,
    ValidityChanged {
        #[serde(serialize_with = "ser::seconds")]
        disk: Duration,
        #[serde(serialize_with = "ser::seconds")]
        spec: Duration,
    },
    IssuerNewKey {
        issuer: String,
    },
    /// The issuer is a CA made in this run (a root added above an existing CA).
    IssuerAdded {
        issuer: String,
    },
    /// The issuer is re-signed because a CA further up gets a new key.
    IssuerCascade {
        issuer: String,
        top: String,
    },
    NotSignedByIssuer {
        path: String,
        issuer: String,
    },
    IssuerNameDiffers {
        issuer: String,
    },
    AuthorityKeyIdDiffers {
        issuer: String,
    },
    Expired {
        #[serde(serialize_with = "ser::time")]
        at: OffsetDateTime,
    },
    ExpiresSoon {
        #[serde(serialize_with = "ser::seconds")]
        left: Duration,
        #[serde(serialize_with = "ser::seconds")]
        renew_before: Duration,
    },
    /// A renewal that cannot help: the certificate was cut to its issuer's notAfter.
    ClampedToIssuer {
        expiry: Box<Reason>,
        issuer: String,
        #[serde(serialize_with = "ser::time")]
        at: OffsetDateTime,
    },
    NotYetValid {
        #[serde(serialize_with = "ser::time")]
        at: OffsetDateTime,
    },
    /// A CA whose key is not in the output folder.
    ExternalCa {
        cert: String,
        key: String,
    },
    /// An external CA's own expiry, which only the holder of its key can renew.
    ExternalExpiry(#[serde(serialize_with = "ser::expiry")] Box<Reason>),
    ModeLoose {
        path: String,
        found: u32,
        want: u32,
    },
    PublicKeyStale {
        path: String,
    },
    WaitsForCsr {
        items: Vec<String>,
    },
    /// The issuer's key is here, but its own certificate is still to come from an external CA.
    WaitsForIssuer {
        issuer: String,
    },
    /// The CSR an earlier run wrote still asks for what pki.toml declares.
    CsrInPlace {
        csr: String,
    },
    /// A CSR whose certificate is now in place, or is signed here in this run.
    CsrAnswered {
        cert: String,
    },
    /// A CSR an external CA need not sign: the certificate is signed here once its issuer's
    /// certificate arrives.
    CsrObsolete {
        cert: String,
    },
    LinkReplaced {
        path: String,
    },
    InputChanges {
        items: Vec<String>,
    },
    RenderedTextDiffers,
    /// A private key is in plaintext and pki.toml has `[encryption]`.
    KeyInPlaintext {
        path: String,
    },
    /// A private key is encrypted and pki.toml has no `[encryption]`.
    EncryptionOff {
        path: String,
    },
    /// A private key is encrypted to other recipients than pki.toml declares.
    RecipientsChanged {
        path: String,
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// An undeclared certificate (a removed node's, a removed entry's) that is still valid:
    /// deleting the file does not end what it grants.
    OrphanStillValid {
        #[serde(serialize_with = "ser::time")]
        until: OffsetDateTime,
        /// The declared CA whose key signed it, when one did.
        signer: Option<String>,
    },
}

impl fmt::Display for Reason {
    // One arm per reason, in the order they are declared: long, but each arm is one sentence, and
    // keeping them together is what makes this the one place their wording lives.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            New => f.write_str("new"),
            RekeyFlag => f.write_str("--rekey"),
            RenewFlag => f.write_str("--renew"),
            KeyMissing { path } => write!(f, "key {path} missing"),
            KeyInPlaintext { path } => write!(
                f,
                "{path} is in plaintext and pki.toml has [encryption]: encrypted in place, key kept"
            ),
            EncryptionOff { path } => write!(
                f,
                "{path} is encrypted and pki.toml has no [encryption]: decrypted in place, key kept"
            ),
            RecipientsChanged {
                path,
                added,
                removed,
            } => {
                let changes: Vec<String> = added
                    .iter()
                    .map(|r| format!("+{r}"))
                    .chain(removed.iter().map(|r| format!("-{r}")))
                    .collect();
                write!(
                    f,
                    "recipients changed: {}; {path} re-encrypted, key kept",
                    changes.join(", ")
                )
            }
            KeyUnreadable(e) => write!(f, "key unreadable: {e}"),
            KeyAlgChanged { disk, spec } => write!(
                f,
                "key algorithm changed: {} on disk, {spec} in pki.toml",
                disk.map_or("unknown", |a| a.name())
            ),
            CertMissing { path } => write!(f, "certificate {path} missing"),
            CertUnreadable(e) => write!(f, "certificate unreadable: {e}"),
            CertKeyMismatch { cert, key } => {
                write!(f, "certificate {cert} does not match its key {key}")
            }
            SubjectChanged { disk, spec } => write!(f, "subject changed: {disk} -> {spec}"),
            SansChanged {
                added,
                removed,
                others,
            } => {
                let mut d: Vec<String> = added.iter().map(|s| format!("+{s}")).collect();
                d.extend(removed.iter().map(|s| format!("-{s}")));
                if *others > 0 {
                    d.push(format!("-{others} other"));
                }
                write!(f, "SANs changed: {}", d.join(" "))
            }
            NotCa => f.write_str("not a CA certificate"),
            NoKeyCertSign => f.write_str("key usage lacks keyCertSign"),
            PathLenChanged { disk, spec } => write!(
                f,
                "path length changed: {} -> {}",
                disk.map_or("none".into(), |p| p.to_string()),
                spec.map_or("none".into(), |p| p.to_string())
            ),
            LeafIsCa => f.write_str("is a CA certificate, should be a leaf"),
            KeyUsageChanged(have) => write!(f, "key usage changed: {}", have.join("+")),
            UsagesChanged { disk, spec } => {
                let n = |v: &[Usage]| v.iter().map(|u| u.name()).collect::<Vec<_>>().join("+");
                let disk = if disk.is_empty() {
                    "none".into()
                } else {
                    n(disk)
                };
                write!(f, "usages changed: {disk} -> {}", n(spec))
            }
            NotSelfSigned => f.write_str("not self-signed by its key"),
            ValidityChanged { disk, spec } => write!(
                f,
                "validity changed: {} on disk, {} in pki.toml",
                fmt_span(*disk),
                fmt_duration(*spec)
            ),
            IssuerNewKey { issuer } => write!(f, "issuer {issuer} gets a new key"),
            IssuerAdded { issuer } => write!(
                f,
                "issuer {issuer} is new: signed by it, with its own key, name and key id kept"
            ),
            IssuerCascade { issuer, top } => {
                write!(f, "issuer {issuer} is re-signed under {top}'s new key")
            }
            NotSignedByIssuer { path, issuer } => {
                write!(f, "{path} is not signed by the key of issuer {issuer}")
            }
            IssuerNameDiffers { issuer } => {
                write!(f, "issuer name differs from {issuer}'s subject")
            }
            AuthorityKeyIdDiffers { issuer } => {
                write!(f, "authority key id differs from {issuer}'s key id")
            }
            Expired { at } => write!(f, "expired on {}", fmt_time(*at)),
            ExpiresSoon { left, renew_before } => write!(
                f,
                "expires in {} (renew-before {})",
                fmt_left(*left),
                fmt_duration(*renew_before)
            ),
            ClampedToIssuer { expiry, issuer, at } => write!(
                f,
                "{expiry}, cut to the notAfter of {issuer} ({}): renew {issuer} first",
                fmt_time(*at)
            ),
            NotYetValid { at } => write!(f, "not valid before {}", fmt_time(*at)),
            ExternalCa { cert, key } => write!(
                f,
                "{cert} has no key {key}: used as an external CA; what it must sign gets CSRs"
            ),
            ExternalExpiry(e) => write!(f, "{e}: renew it where its key is kept"),
            ModeLoose { path, found, want } => {
                write!(f, "{path} mode {found:04o}, should be {want:04o}")
            }
            PublicKeyStale { path } => write!(f, "public key {path} missing or does not match"),
            WaitsForCsr { items } => write!(
                f,
                "waits for the certificate of {} from its external CA",
                items.join(", ")
            ),
            WaitsForIssuer { issuer } => write!(
                f,
                "waits for {issuer}'s certificate from its external CA; signed here once it is in place, nothing is written before"
            ),
            CsrInPlace { csr } => write!(f, "{csr} waits to be signed"),
            CsrAnswered { cert } => write!(
                f,
                "{cert} is in place or signed here: nothing waits on this request"
            ),
            CsrObsolete { cert } => write!(
                f,
                "{cert} is signed here once its issuer's certificate arrives: no external CA needs this request"
            ),
            LinkReplaced { path } => {
                write!(f, "{path} is a symlink; it is replaced by a regular file")
            }
            InputChanges { items } => write!(f, "input changes: {}", items.join(", ")),
            RenderedTextDiffers => {
                f.write_str("rendered text differs: its template, vars or inputs changed")
            }
            OrphanStillValid { until, signer } => {
                write!(
                    f,
                    "its credential stays valid until {}: deleting the file revokes nothing (Kubernetes has no revocation for client certificates); ",
                    fmt_time(*until)
                )?;
                match signer {
                    Some(ca) => write!(
                        f,
                        "if its holder may be compromised, rotate {ca} (`--rekey {ca}`, which re-signs everything below it), else let it expire"
                    ),
                    None => f.write_str(
                        "if its holder may be compromised, rotate the CA that signed it, else let it expire",
                    ),
                }
            }
        }
    }
}

/// A CSR that an external CA must sign: which file, for what, the commands that sign it where
/// that CA's key is kept, and what waits on it. Paths are relative to the output folder `out`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The output folder as the user names it.
    pub out: String,
    pub item: String,
    pub csr: String,
    pub cert: String,
    pub issuer: String,
    pub issuer_cert: String,
    /// Where pki.toml declares the issuer's key (it is kept elsewhere).
    pub issuer_key: String,
    /// The declared validity, in whole days.
    pub days: i64,
    pub is_ca: bool,
    /// A CA's path length constraint.
    pub path_len: Option<u8>,
    /// The extended key usages of a leaf.
    pub usages: Vec<Usage>,
    /// Whether its key is RSA (then a leaf's key usage includes key encipherment, as here).
    pub rsa: bool,
    /// Items that are made or rendered once the certificate is in place.
    pub waits_on_it: Vec<String>,
}

impl Waiting {
    /// openssl 3 copies the requested extensions (`-copy_extensions copyall`: SANs, usages,
    /// basicConstraints) and adds the key identifiers; with no serial file named it picks a
    /// random serial (so no `.srl` file is left in the output folder).
    fn openssl(&self) -> String {
        let at = |p: &str| shell_word(&format!("{}/{p}", self.out));
        format!(
            "openssl x509 -req -in {} -CA {} -CAkey {} -days {} -copy_extensions copyall -out {}",
            at(&self.csr),
            at(&self.issuer_cert),
            at(&self.issuer_key),
            self.days,
            at(&self.cert)
        )
    }

    /// cfssl takes SANs from the request but usages and CA constraints only from its signing
    /// profile, which is given inline (bash process substitution).
    fn cfssl(&self) -> String {
        let at = |p: &str| shell_word(&format!("{}/{p}", self.out));
        let profile = if self.is_ca {
            let constraint = match self.path_len {
                Some(0) => r#"{"is_ca":true,"max_path_len":0,"max_path_len_zero":true}"#.into(),
                Some(n) => format!(r#"{{"is_ca":true,"max_path_len":{n}}}"#),
                None => r#"{"is_ca":true}"#.to_string(),
            };
            format!(
                r#""usages":["digital signature","cert sign","crl sign"],"ca_constraint":{constraint}"#
            )
        } else {
            let mut usages = vec!["\"digital signature\""];
            if self.rsa {
                usages.push("\"key encipherment\"");
            }
            for u in &self.usages {
                usages.push(match u {
                    Usage::Server => "\"server auth\"",
                    Usage::Client => "\"client auth\"",
                });
            }
            format!(r#""usages":[{}]"#, usages.join(","))
        };
        format!(
            r#"cfssl sign -ca {} -ca-key {} -config <(echo '{{"signing":{{"default":{{"expiry":"{}h",{profile}}}}}}}') {} | cfssljson -bare -stdout > {}"#,
            at(&self.issuer_cert),
            at(&self.issuer_key),
            self.days * 24,
            at(&self.csr),
            at(&self.cert)
        )
    }
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let out = &self.out;
        write!(
            f,
            "waiting: {out}/{} asks {} (whose key is not here) for the certificate of {}",
            self.csr, self.issuer, self.item
        )?;
        if !self.waits_on_it.is_empty() {
            write!(f, "; waiting on it: {}", self.waits_on_it.join(", "))?;
        }
        writeln!(
            f,
            ".
  Where the key of {} is kept (pki.toml names it {out}/{}), sign it with openssl:",
            self.issuer, self.issuer_key
        )?;
        writeln!(f, "    {}", self.openssl())?;
        writeln!(f, "  or with cfssl (bash):")?;
        writeln!(f, "    {}", self.cfssl())?;
        write!(
            f,
            "  then put the certificate at {out}/{} and rerun `cargo xtask pki`",
            self.cert
        )
    }
}

/// Something the tool must not fix by itself: the run stops, writes nothing and says what to do.
/// Paths are relative to the output folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Blocker {
    /// `--rekey` names nothing in pki.toml.
    RekeyUnknown {
        name: String,
        nearest: Option<String>,
    },
    /// `--rekey` names a rendered file.
    RekeyRender { name: String },
    /// `--renew` names nothing in pki.toml.
    RenewUnknown {
        name: String,
        nearest: Option<String>,
    },
    /// `--renew` names a key pair or a rendered file: it has no certificate to re-sign.
    RenewNotCert { name: String },
    /// A folder in the output folder is a link, and a declared file would be written through it.
    LinkedFolder { dir: String, path: String },
    /// A file sits where a declared path needs a folder.
    FileWhereFolder { file: String, path: String },
    /// A folder or special file (FIFO, socket, device) sits where pki.toml declares a file, or
    /// where the inventory goes.
    NotAFile { path: String, why: String },
    /// A CA's or key pair's file holds another key than the one the inventory pins to it.
    NotPinnedKey {
        name: String,
        path: String,
        #[serde(rename = "pinned")]
        kind: PinnedKind,
        /// The item the key is pinned to instead, if any.
        owner: Option<String>,
    },
    /// A key pair's private key is gone while its public key remains.
    KeyPairKeyLost {
        name: String,
        private: String,
        public: String,
    },
    /// A key pair's key is missing while undeclared files hold a key pair.
    KeyPairMoved {
        name: String,
        private: String,
        public: String,
        private_at: String,
        public_at: String,
    },
    /// A key pair's key is damaged.
    KeyPairKeyUnreadable {
        name: String,
        path: String,
        cause: String,
    },
    /// A key pair's algorithm changed in pki.toml.
    KeyPairAlgChanged {
        name: String,
        disk: Option<KeyAlg>,
        spec: KeyAlg,
    },
    /// A certificate's files are missing where pki.toml says, but undeclared files hold them.
    Moved {
        name: String,
        /// The output folder as the user names it, for the commands to run.
        out: String,
        cert: String,
        key: String,
        /// Where the certificate is, when it moved too.
        cert_at: Option<String>,
        key_at: String,
    },
    /// A CA's certificate and key are no longer a pair.
    CaNotAPair {
        name: String,
        cert: String,
        key: String,
    },
    /// A CA's key is unusable (damaged, or its algorithm changed).
    CaKeyUnusable {
        name: String,
        key: String,
        reasons: Vec<Reason>,
    },
    /// A CA has no key and no readable certificate, but certificates below it are there.
    CaVanished {
        name: String,
        cert: String,
        key: String,
        cert_missing: bool,
        below: Vec<String>,
    },
    /// A certificate under an external CA needs a new key while its certificate is in use.
    ExternalKeyInUse {
        name: String,
        issuer: String,
        cert: String,
        key: String,
        is_ca: bool,
        reasons: Vec<Reason>,
    },
    /// An external intermediate no longer verifies under its issuer.
    ExternalStale {
        name: String,
        issuer: String,
        cert: String,
        key: String,
    },
    /// A template is granted a key that is not in the output folder.
    SecretMissing {
        item: String,
        var: String,
        path: String,
    },
    /// A template does not render (syntax, undefined variable), already described.
    Template(#[serde(serialize_with = "ser::cause")] String),
    /// A rendered file reads an input that has no certificate or key after apply.
    RenderInputMissing,
    /// A key encrypted at rest that apply needs (to sign, re-sign, render or decrypt) opens with
    /// none of the age identities given.
    IdentityMissing {
        path: String,
        recipients: Vec<String>,
    },
    /// A key encrypted at rest could not be read: a damaged or edited SOPS file (the cause says
    /// which, never the key).
    SealedKeyUnreadable { path: String, cause: String },
    /// A key encrypted at rest decrypts to another key than its public half beside it says.
    SealedKeyMismatch { path: String, public: String },
    /// `--prune` would delete the private key of a CA or a key pair that pki.toml no longer
    /// declares.
    PruneProtectedKey {
        key: ProtectedKey,
        /// The output folder as the user names it, for the command to run.
        out: String,
    },
}

/// An undeclared private key that only a person deletes: `--prune` stops rather than delete it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProtectedKey {
    pub path: String,
    pub owner: KeyOwner,
}

/// What an undeclared private key belongs to, found in the output folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KeyOwner {
    /// The CA certificate at `cert`.
    Ca { cert: String },
    /// The public key at `public`: a key pair, such as the service-account key.
    KeyPair { public: String },
}

impl fmt::Display for KeyOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOwner::Ca { cert } => write!(f, "the private key of CA certificate {cert}"),
            KeyOwner::KeyPair { public } => write!(
                f,
                "the private key of the key pair whose public key is {public} (a service-account key signs every token the cluster accepts)"
            ),
        }
    }
}

impl fmt::Display for ProtectedKey {
    /// How the plan lists it among the orphans.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not declared in pki.toml, but {}: --prune stops rather than delete it; move or delete it yourself",
            self.owner
        )
    }
}

/// Whose key a pinned item's file holds, for `Blocker::NotPinnedKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinnedKind {
    /// A CA's key file.
    Ca,
    /// An external CA's certificate (its key is kept elsewhere).
    ExternalCa,
    /// A key pair's private key.
    KeyPair,
}

impl Blocker {
    /// What happened, and what to do about it. One arm per blocker, in the order they are
    /// declared (long for the same reason as `Reason`'s `Display`).
    fn cause(&self) -> String {
        use Blocker::*;
        match self {
            RekeyUnknown { name, nearest } => format!(
                "--rekey names `{name}`, which is not in pki.toml{}",
                nearest
                    .as_ref()
                    .map_or(String::new(), |n| format!(" (did you mean `{n}`?)"))
            ),
            RenewUnknown { name, nearest } => format!(
                "--renew names `{name}`, which is not a certificate in pki.toml{}",
                nearest
                    .as_ref()
                    .map_or(String::new(), |n| format!(" (did you mean `{n}`?)"))
            ),
            RenewNotCert { name } => format!(
                "--renew names `{name}`, which has no certificate to re-sign (a key pair or a rendered file); `--renew all` re-signs every certificate but the CAs"
            ),
            RekeyRender { name } => {
                format!("--rekey names `{name}`, a rendered file: it has no key of its own")
            }
            LinkedFolder { dir, path } => format!(
                "{dir} is a symlink to a folder, and {path} would be written through it; the tool never writes through links: replace {dir} with a real folder, then rerun"
            ),
            FileWhereFolder { file, path } => format!(
                "{file} is a file, but {path} must be written inside a folder of that name: move the file away, then rerun"
            ),
            NotAFile { path, why } => format!(
                "{path} {why}, where a file of the PKI goes; the tool never opens or replaces it: move it away, then rerun"
            ),
            NotPinnedKey {
                name,
                path,
                kind,
                owner,
            } => not_pinned(name, path, *kind, owner.as_deref()),
            KeyPairKeyLost {
                name,
                private,
                public,
            } => format!(
                "key {private} missing, but its public key {public} is here; a new `{name}` key would invalidate everything signed with the old one (service-account tokens); restore {private} from a backup, or run with `--rekey {name}`"
            ),
            KeyPairMoved {
                name,
                private,
                public,
                private_at,
                public_at,
            } => format!(
                "key {private} missing, but an undeclared key pair is at {private_at} and {public_at}; if `{name}` moved, move them to {private} and {public} (or fix the paths in pki.toml); to make a new key pair on purpose, run with `--rekey {name}`"
            ),
            KeyPairKeyUnreadable { name, path, cause } => format!(
                "key unreadable: {cause}; a new `{name}` key would invalidate everything signed with it (service-account tokens); restore {path} from a backup, or run with `--rekey {name}`"
            ),
            KeyPairAlgChanged { name, disk, spec } => format!(
                "{}; run with `--rekey {name}` to replace the key (this invalidates everything signed with it)",
                Reason::KeyAlgChanged {
                    disk: *disk,
                    spec: *spec
                }
            ),
            Moved {
                name,
                out,
                cert,
                key,
                cert_at,
                key_at,
            } => {
                let (what, moves) = match cert_at {
                    Some(cp) => (
                        format!(
                            "{cert} and {key} are missing, but its certificate and key are at {cp} and {key_at}"
                        ),
                        move_commands(out, &[(cp, cert), (key_at, key)]),
                    ),
                    None => (
                        format!("{cert} has no key {key}, but its key is at {key_at}"),
                        move_commands(out, &[(key_at, key)]),
                    ),
                };
                format!(
                    "{what}; if they moved, move them where pki.toml says (`{moves}`) or set the paths back, then rerun; to make {} anew, run with `--rekey {name}`",
                    if cert_at.is_some() {
                        "them"
                    } else {
                        "a new key"
                    }
                )
            }
            CaNotAPair { name, cert, key } => format!(
                "{cert} and {key} are not a pair: one of them was replaced; restore the matching pair from a backup; to issue a new CA certificate over {key} (every certificate below it is then re-signed), delete {cert} and rerun; or run with `--rekey {name}` for a new key (an interrupted `--rekey {name}` is finished by running it again)"
            ),
            CaKeyUnusable { name, key, reasons } => format!(
                "{}; the tool never replaces a CA key by itself; restore {key} from a backup, or run with `--rekey {name}` to make a new key (every certificate below it is then re-signed)",
                join(reasons)
            ),
            CaVanished {
                name,
                cert,
                key,
                cert_missing,
                below,
            } => {
                let n = below.len();
                let what = if *cert_missing {
                    format!("{cert} and {key} are missing")
                } else {
                    format!("{key} is missing and {cert} unreadable")
                };
                format!(
                    "{what}, but {n} certificate{} below {name} {} in the output folder ({}); if its files moved, put them back or fix `cert`/`key` in pki.toml; to make a new CA on purpose (everything below it is then re-signed), run with `--rekey {name}`",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "is" } else { "are" },
                    below.join(", ")
                )
            }
            ExternalKeyInUse {
                name,
                issuer,
                cert,
                key,
                is_ca,
                reasons,
            } => format!(
                "{}; {name} is signed by {issuer}, whose key is not here: a new key would not match {cert} until {issuer} signs a new CSR. To rotate it, remove {cert} and {key} and rerun{} (a new key and CSR are written), then install the signed certificate",
                join(reasons),
                if *is_ca {
                    format!(" with `--rekey {name}`")
                } else {
                    String::new()
                }
            ),
            ExternalStale {
                name,
                issuer,
                cert,
                key,
            } => format!(
                "{cert} no longer verifies under {issuer}, and {name}'s key {key} is not here to sign a CSR; bring {key} back and rerun, or have {name} re-signed by {issuer} where its key is kept"
            ),
            SecretMissing { item, var, path } => format!(
                "reads the private key of {item} (`{var}` in `secrets`), which is not in the output folder ({path})"
            ),
            Template(e) => e.clone(),
            RenderInputMissing => {
                "an input it reads has no certificate or key yet; nothing was rendered".into()
            }
            IdentityMissing { path, recipients } => format!(
                "{path} is encrypted to {}, and no age identity given opens it; set SOPS_AGE_KEY_FILE (a file of age identities) or SOPS_AGE_KEY to an identity of one of them, then rerun; nothing was written",
                recipients.join(", ")
            ),
            SealedKeyUnreadable { path, cause } => format!(
                "{path} does not decrypt: {cause}; restore it from git or a backup; nothing was written"
            ),
            SealedKeyMismatch { path, public } => format!(
                "{path} decrypts to a key that is not the one of {public}; put the matching files back (from git or a backup); nothing was written"
            ),
            PruneProtectedKey { key, out } => format!(
                "--prune would delete {}, {}, which pki.toml no longer declares; a key that cannot be made again is deleted by a person, never as a side effect: if it is retired, keep a backup and delete it yourself (`rm {out}/{}`), or declare it again in pki.toml; then rerun (without --prune, nothing is deleted)",
                key.path, key.owner, key.path
            ),
        }
    }
}

/// What `Blocker::NotPinnedKey` says: what the file holds, why that must not be used, and the
/// ways out (put the files back; a new key on purpose; accept the key in place).
fn not_pinned(name: &str, path: &str, kind: PinnedKind, owner: Option<&str>) -> String {
    let whose = match owner {
        Some(o) => format!(
            "{path} holds `{o}`'s key, not `{name}`'s (two items' files were mixed up: swapped or copied by a restore, or their paths swapped in pki.toml)"
        ),
        None => format!(
            "{path} holds another key than the one inventory.txt records for `{name}` (the file was replaced)"
        ),
    };
    let back = if owner.is_some() {
        "put each item's files back where pki.toml says (or set the paths back), then rerun"
    } else {
        "restore the file from a backup, then rerun"
    };
    let accept = format!(
        "if the key now at {path} is meant to be `{name}`'s, delete inventory.txt and rerun (the keys in place are then recorded as they are)"
    );
    match kind {
        PinnedKind::Ca => format!(
            "{whose}; a CA's key never changes without `--rekey`: {back}; to give `{name}` a new key on purpose, run with `--rekey {name}` (every certificate below it is then re-signed; an interrupted `--rekey {name}` is finished by running it again); {accept}"
        ),
        PinnedKind::ExternalCa => format!(
            "{whose}; `{name}` is an external CA (its key is kept elsewhere), and its certificate is over that key: {back}; {accept}"
        ),
        PinnedKind::KeyPair => format!(
            "{whose}; rewriting its public key to match would invalidate everything signed with the old one (service-account tokens): {back}; to make a new key pair on purpose, run with `--rekey {name}` (an interrupted `--rekey {name}` is finished by running it again); {accept}"
        ),
    }
}

/// The shell commands that move files (`from`, `to`, relative to the output folder `out` as the
/// user names it) where pki.toml says, runnable as printed: a target folder that is not the
/// source's own (which exists, the file being in it) is made first with `mkdir -p`.
fn move_commands(out: &str, moves: &[(&String, &String)]) -> String {
    let at = |p: &str| shell_word(&format!("{out}/{p}"));
    let folder = |p: &str| p.rsplit_once('/').map(|(d, _)| d.to_string());
    let mut commands: Vec<String> = Vec::new();
    for (from, to) in moves {
        if let Some(dir) = folder(to).filter(|d| folder(from).as_ref() != Some(d)) {
            let mkdir = format!("mkdir -p {}", at(&dir));
            if !commands.contains(&mkdir) {
                commands.push(mkdir);
            }
        }
    }
    commands.extend(
        moves
            .iter()
            .map(|(from, to)| format!("mv {} {}", at(from), at(to))),
    );
    commands.join(" && ")
}

/// A path as one shell word: as it is when it holds only characters a shell leaves alone, else
/// in single quotes.
fn shell_word(path: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=@:,".contains(c);
    if path.chars().all(plain) {
        path.to_string()
    } else {
        format!("'{}'", path.replace('\'', "'\\''"))
    }
}

fn join(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(Reason::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A blocker and the items it stops; one cause shared by several items (a template error in a
/// per-node render) is one problem naming them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The items it stops; empty for a problem of the whole run (a flag, a linked folder).
    pub items: Vec<String>,
    pub blocker: Blocker,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.items.is_empty() {
            write!(f, "{}: ", self.items.join(", "))?;
        }
        write!(f, "{}", self.blocker)
    }
}

/// Groups problems with the same blocker into one, keeping the first one's place.
pub(super) fn group(problems: Vec<Problem>) -> Vec<Problem> {
    let mut grouped: Vec<Problem> = Vec::new();
    for p in problems {
        match grouped.iter_mut().find(|g| g.blocker == p.blocker) {
            Some(g) => g.items.extend(p.items),
            None => grouped.push(p),
        }
    }
    grouped
}

/// A lifetime read from a certificate, to the hour (certificates made elsewhere are rarely whole
/// days).
fn fmt_span(d: Duration) -> String {
    let (days, hours) = (d.whole_days(), d.whole_hours() % 24);
    match (days, hours) {
        (0, _) => fmt_duration(d.max(Duration::seconds(1))),
        (_, 0) => format!("{days}d"),
        _ => format!("{days}d{hours}h"),
    }
}

/// Time left before expiry, in the largest whole unit.
fn fmt_left(d: Duration) -> String {
    if d.whole_days() >= 1 {
        format!("{}d", d.whole_days())
    } else if d.whole_hours() >= 1 {
        format!("{}h", d.whole_hours())
    } else {
        // Under an hour left: "0h" would read as already expired.
        format!("{}m", d.whole_minutes().max(0))
    }
}

/// How `Reason` and `Blocker` fields that JSON has no type for are written: times in RFC 3339,
/// durations in whole seconds, and a variant holding one bare value as an object, so every
/// reason is an object with its `kind`.
mod ser {
    use serde::ser::{SerializeMap as _, Serializer};
    use time::{Duration, OffsetDateTime};

    pub(super) fn time<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::x509::fmt_time(*t))
    }

    pub(super) fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.whole_seconds())
    }

    /// One field named `name`.
    fn one<S: Serializer, T: serde::Serialize + ?Sized>(
        name: &str,
        value: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(name, value)?;
        map.end()
    }

    pub(super) fn cause<S: Serializer>(c: &str, s: S) -> Result<S::Ok, S::Error> {
        one("cause", c, s)
    }

    pub(super) fn key_usage<S: Serializer>(v: &[&'static str], s: S) -> Result<S::Ok, S::Error> {
        one("have", v, s)
    }

    pub(super) fn expiry<S: Serializer>(r: &super::Reason, s: S) -> Result<S::Ok, S::Error> {
        one("expiry", r, s)
    }
}
