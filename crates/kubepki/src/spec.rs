//! The validated domain model. Nothing here is serde: `resolve` builds it from `config::Raw`, and
//! every value in it has been checked (names resolve, paths stay inside the output folder, leaves
//! do not outlive their issuers, the issuer graph is acyclic).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use time::Duration;

/// Index of an item in `Spec::items`. Items are stored in dependency order: an issuer always has a
/// smaller id than everything it signs, and a rendered file comes after everything it reads.
pub type ItemId = usize;

#[derive(Debug, Clone)]
pub struct Spec {
    pub items: Vec<Item>,
    /// `[encryption]`: when present, every private key in the output folder is written as a
    /// SOPS file encrypted to these age recipients, and never in plaintext.
    pub encryption: Option<Encryption>,
}

/// The age recipients private keys are encrypted to, in the order pki.toml lists them (at least
/// one, each declared once).
#[derive(Debug, Clone)]
pub struct Encryption {
    pub recipients: Vec<crate::sops::Recipient>,
}

impl Encryption {
    /// The recipients as text (`age1...`), sorted: the form compared with a file's.
    pub fn recipient_texts(&self) -> Vec<String> {
        let mut res: Vec<String> = self
            .recipients
            .iter()
            .map(|r| r.as_str().to_string())
            .collect();
        res.sort();
        res
    }
}

#[derive(Debug, Clone)]
pub struct Item {
    /// Unique; per-node instances are named `<name>@<node>`.
    pub name: String,
    /// The name in pki.toml, shared by all per-node instances (what `--rekey` matches too).
    pub base: String,
    pub kind: ItemKind,
    /// The components that read the item's files (`consumers`), each once, in declared order.
    pub consumers: Vec<Component>,
}

/// A Kubernetes component that reads files of the PKI: what must reload or restart when one
/// changes. The aggregator is kube-apiserver (it reads the front-proxy client certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kubelet,
    KubeProxy,
}

impl Component {
    /// In the order a node restarts them: etcd before the apiserver that reads it, the
    /// apiserver before its clients, the kubelet (which runs the static pods) last but kube-proxy.
    pub const ALL: [Component; 6] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::Kubelet,
        Component::KubeProxy,
    ];

    /// The name pki.toml's `consumers` uses.
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::Kubelet => "kubelet",
            Component::KubeProxy => "kube-proxy",
        }
    }

    pub fn parse(s: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Whether it runs on control-plane nodes only (kubeadm's static pods); else on every node.
    pub fn control_plane_only(self) -> bool {
        !matches!(self, Component::Kubelet | Component::KubeProxy)
    }
}

#[derive(Debug, Clone)]
pub enum ItemKind {
    Cert(CertSpec),
    KeyPair(KeyPairSpec),
    Render(RenderSpec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAlg {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl KeyAlg {
    pub const ALL: [KeyAlg; 6] = [
        KeyAlg::Rsa2048,
        KeyAlg::Rsa3072,
        KeyAlg::Rsa4096,
        KeyAlg::EcdsaP256,
        KeyAlg::EcdsaP384,
        KeyAlg::Ed25519,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::Rsa2048 => "rsa-2048",
            KeyAlg::Rsa3072 => "rsa-3072",
            KeyAlg::Rsa4096 => "rsa-4096",
            KeyAlg::EcdsaP256 => "ecdsa-p256",
            KeyAlg::EcdsaP384 => "ecdsa-p384",
            KeyAlg::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<KeyAlg> {
        KeyAlg::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096)
    }
}

/// A key algorithm is written as its name in pki.toml (`ecdsa-p256`), as the plan's JSON has it.
impl serde::Serialize for KeyAlg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A usage is written as its name in pki.toml (`server`, `client`).
impl serde::Serialize for Usage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Usage {
    Server,
    Client,
}

impl Usage {
    pub fn name(self) -> &'static str {
        match self {
            Usage::Server => "server",
            Usage::Client => "client",
        }
    }
}

/// A subject distinguished name as Kubernetes reads it: CN is the user, each O a group.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Subject {
    pub cn: Option<String>,
    pub o: Vec<String>,
    pub ou: Vec<String>,
}

impl Subject {
    /// The same CN and the same O and OU values, in any order (Kubernetes reads groups as a set).
    pub fn same_as(&self, other: &Subject) -> bool {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        self.cn == other.cn
            && sorted(&self.o) == sorted(&other.o)
            && sorted(&self.ou) == sorted(&other.ou)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        parts.extend(self.o.iter().map(|o| format!("O={o}")));
        parts.extend(self.ou.iter().map(|o| format!("OU={o}")));
        parts.extend(self.cn.iter().map(|c| format!("CN={c}")));
        f.write_str(&parts.join(", "))
    }
}

/// Subject alternative names, kept in declared order; compared as sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sans {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct CertSpec {
    /// `None` for a self-signed root.
    pub issuer: Option<ItemId>,
    /// `Some` for CAs, with the optional path length constraint.
    pub ca: Option<CaSpec>,
    pub subject: Subject,
    pub sans: Sans,
    /// Empty for CAs.
    pub usages: Vec<Usage>,
    pub alg: KeyAlg,
    pub validity: Duration,
    pub renew_before: Duration,
    pub cert_path: String,
    pub key_path: String,
    pub node: Option<Node>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaSpec {
    pub path_len: Option<u8>,
}

#[derive(Debug, Clone)]
pub struct KeyPairSpec {
    pub alg: KeyAlg,
    pub private_path: String,
    pub public_path: String,
}

#[derive(Debug, Clone)]
pub struct RenderSpec {
    /// Path of the template relative to the templates folder.
    pub template: String,
    pub path: String,
    /// Template variable name -> item.
    pub bind: BTreeMap<String, ItemId>,
    /// Bound names whose private key the template may read.
    pub secrets: Vec<String>,
    pub vars: serde_json::Value,
    pub node: Option<Node>,
}

impl RenderSpec {
    /// A rendered file that may contain a private key is written like a key (mode 0600).
    pub fn holds_secret(&self) -> bool {
        !self.secrets.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub ips: Vec<IpAddr>,
    pub role: String,
}

/// A certificate keeps working a little before it was made: clocks on a cluster drift, and
/// kubeadm backdates by the same five minutes.
pub const BACKDATE: Duration = Duration::minutes(5);

/// A clock within the backdate of the system clock is taken as the system clock: what it signs is
/// valid at once (notBefore is backdated past it). Beyond that, a run says on its first line that
/// its clock is off, and refuses a past clock it did not get from `--now` unless confirmed.
pub const CLOCK_TOLERANCE: Duration = BACKDATE;

/// Leaves last one year, kubeadm's `certificateValidityPeriod` (8760h).
pub const DEFAULT_VALIDITY: Duration = Duration::hours(8760);

/// CAs last ten years, kubeadm's `caCertificateValidityPeriod` (87600h): a CA rotation touches
/// every certificate of the cluster, so it should be rare.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::hours(87600);

/// Renew 30 days before expiry: a monthly pipeline run always catches the window, and a year-long
/// leaf still gets eleven months of use.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::days(30);

/// kubeadm's default key algorithm.
pub const DEFAULT_ALG: KeyAlg = KeyAlg::Rsa2048;

impl ItemKind {
    pub fn as_cert(&self) -> Option<&CertSpec> {
        match self {
            ItemKind::Cert(c) => Some(c),
            _ => None,
        }
    }
}

/// Formats a duration the way pki.toml accepts it (`8760h`, `30d`).
pub fn fmt_duration(d: Duration) -> String {
    let s = d.whole_seconds();
    if s % 86400 == 0 {
        format!("{}d", s / 86400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Durations in pki.toml are shorter than this many years (of 365 days): a certificate signed at
/// the latest `--now` the tool takes (the year 9000) still ends before X.509's last year, 9999.
pub const DURATION_LIMIT_YEARS: i64 = 200;

/// Parses `90s`, `15m`, `8760h`, `30d`, `2w` or `10y` (a year is 365 days), shorter than
/// [`DURATION_LIMIT_YEARS`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    duration_seconds(s)
        .filter(|&secs| secs > 0 && secs < DURATION_LIMIT_YEARS * 365 * 86400)
        .map(Duration::seconds)
}

/// The number of seconds `s` spells as a whole number and a unit, whatever its size or sign;
/// `None` when it is not written that way (or overflows).
pub fn duration_seconds(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        'w' => 7 * 86400,
        'y' => 365 * 86400,
        _ => return None,
    };
    n.checked_mul(secs)
}
