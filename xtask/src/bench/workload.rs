//! What the bench generates: pki.toml files for this tool, and the peers' commands for the same
//! job.

use std::path::Path;
use std::process::Command;

/// A pki.toml to write into a folder.
pub(super) struct Spec {
    text: String,
}

impl Spec {
    /// One CA and `leaves` server certificates, each with a DNS name and an address: the job
    /// every peer does too.
    pub(super) fn ca_and_leaves(alg: &str, leaves: usize) -> Spec {
        let mut text = format!(
            "[defaults]\nalgorithm = \"{alg}\"\n\n[[ca]]\nname = \"ca\"\ncn = \"bench-ca\"\ncert = \"ca.crt\"\nkey = \"ca.key\"\n"
        );
        for i in 0..leaves {
            text.push_str(&format!(
                "\n[[cert]]\nname = \"leaf-{i}\"\nissuer = \"ca\"\ncn = \"leaf-{i}\"\ndns = [\"leaf-{i}.example\"]\nips = [\"{}\"]\nusage = [\"server\"]\ncert = \"leaf-{i}.crt\"\nkey = \"leaf-{i}.key\"\n",
                address(i)
            ));
        }
        Spec { text }
    }

    /// The shipped pki.toml with its workers replaced by `workers` generated ones, every key
    /// `alg`, and without the per-worker kubeconfigs unless `kubeconfigs`.
    pub(super) fn shipped(
        shipped: &str,
        workers: usize,
        kubeconfigs: bool,
        alg: &str,
    ) -> Result<Spec, String> {
        let mut text = String::new();
        let mut nodes_at = None;
        for block in blocks(shipped) {
            let per_worker = block.contains("for-each-node = \"worker\"");
            if block.starts_with("[[node]]") {
                nodes_at.get_or_insert(text.len());
                if block.contains("role = \"worker\"") {
                    continue;
                }
            } else if block.starts_with("[[render]]") && per_worker && !kubeconfigs {
                continue;
            }
            text.push_str(block);
        }
        let at = nodes_at.ok_or("the shipped pki.toml declares no [[node]]")?;
        let nodes: String = (0..workers)
            .map(|i| {
                format!(
                    "[[node]]\nname = \"worker-{i}\"\nips = [\"{}\"]\nrole = \"worker\"\n\n",
                    address(i)
                )
            })
            .collect();
        text.insert_str(at, &nodes);
        let text = with_algorithm(&text, alg);
        Ok(Spec { text })
    }

    /// The same spec with the first worker's address changed: one SAN of its kubelet serving
    /// certificate changes, so that certificate is re-signed (over its key), nothing else.
    pub(super) fn with_worker_address_changed(&self) -> Spec {
        let from = format!("name = \"worker-0\"\nips = [\"{}\"]", address(0));
        let to = "name = \"worker-0\"\nips = [\"10.255.255.254\"]";
        Spec {
            text: self.text.replacen(&from, to, 1),
        }
    }

    pub(super) fn write(&self, dir: &Path) -> Result<(), String> {
        let path = dir.join("pki.toml");
        std::fs::write(&path, &self.text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The text split before each table header (`[defaults]`, `[[node]]`, `[[cert]]`, ...), the
/// comments above a header staying with the block before it.
fn blocks(text: &str) -> Vec<&str> {
    let mut starts = vec![0];
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if at > 0 && line.starts_with('[') {
            starts.push(at);
        }
        at += line.len();
    }
    starts.push(text.len());
    starts.windows(2).map(|w| &text[w[0]..w[1]]).collect()
}

/// Every `algorithm = "..."` setting made `alg`.
fn with_algorithm(text: &str, alg: &str) -> String {
    text.lines()
        .map(|l| match l.split_once('=') {
            Some((k, _)) if k.trim() == "algorithm" => format!("algorithm = \"{alg}\""),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A distinct address for leaf or worker `i`.
fn address(i: usize) -> String {
    format!("10.{}.{}.{}", i / 62500 % 250, i / 250 % 250, i % 250 + 1)
}

/// A peer doing the kubeadm-sized set's job.
#[derive(Clone, Copy)]
pub(super) enum Peer {
    /// genpkey, req and x509 -req per certificate, as people write it, `jobs` at once.
    Openssl { jobs: usize },
    /// cfssl's gencert per certificate, as its documentation shows.
    Cfssl,
    /// Only the keys, by openssl genpkey, `jobs` at once: a floor for RSA, where key generation
    /// is nearly all the work.
    KeysOnly { jobs: usize },
}

impl Peer {
    pub(super) fn installed(self) -> bool {
        let progs: &[&str] = match self {
            Peer::Openssl { .. } | Peer::KeysOnly { .. } => &["openssl"],
            Peer::Cfssl => &["cfssl", "cfssljson"],
        };
        progs.iter().all(|p| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {p}"))
                .output()
                .is_ok_and(|o| o.status.success())
        })
    }

    /// A name for its output folders.
    pub(super) fn tag(self) -> &'static str {
        match self {
            Peer::Openssl { .. } => "openssl",
            Peer::Cfssl => "cfssl",
            Peer::KeysOnly { .. } => "keys",
        }
    }

    /// The shell command that makes one CA and `leaves` leaves (or only their keys) in `out`.
    pub(super) fn command(self, alg: &str, leaves: usize, out: &Path) -> Command {
        let script = match self {
            Peer::Openssl { jobs } => openssl_script(alg, jobs),
            Peer::Cfssl => cfssl_script(alg),
            Peer::KeysOnly { jobs } => keys_script(alg, jobs),
        };
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg("sh")
            .arg(out)
            .arg(leaves.to_string());
        cmd
    }
}

fn keyopt(alg: &str) -> &'static str {
    if alg == "rsa-2048" {
        "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"
    } else {
        "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"
    }
}

fn openssl_script(alg: &str, jobs: usize) -> String {
    let keyopt = keyopt(alg);
    format!(
        r#"set -e
cd "$1"
openssl genpkey {keyopt} -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 3650 -sha256 -out ca.crt
cat > leaf.sh <<'SH'
set -e
i=$1
openssl genpkey {keyopt} -out leaf-$i.key 2>/dev/null
openssl req -new -key leaf-$i.key -subj /CN=leaf-$i -out leaf-$i.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:leaf-%s.example,IP:10.0.%s.%s\nauthorityKeyIdentifier=keyid\n' $i $((i / 250)) $((i % 250 + 1)) > leaf-$i.ext
openssl x509 -req -in leaf-$i.csr -CA ca.crt -CAkey ca.key -set_serial 0x$(openssl rand -hex 16) -days 365 -sha256 -extfile leaf-$i.ext -out leaf-$i.crt 2>/dev/null
SH
seq 0 $(($2 - 1)) | xargs -P {jobs} -n 1 sh leaf.sh
"#
    )
}

fn keys_script(alg: &str, jobs: usize) -> String {
    let keyopt = keyopt(alg);
    format!(
        r#"set -e
cd "$1"
seq -1 $(($2 - 1)) | xargs -P {jobs} -I N openssl genpkey {keyopt} -out key-N.pem 2>/dev/null
"#
    )
}

fn cfssl_script(alg: &str) -> String {
    let (algo, size) = if alg == "rsa-2048" {
        ("rsa", 2048)
    } else {
        ("ecdsa", 256)
    };
    format!(
        r#"set -e
cd "$1"
echo '{{"CN":"bench-ca","key":{{"algo":"{algo}","size":{size}}}}}' > ca-csr.json
echo '{{"signing":{{"default":{{"expiry":"8760h","usages":["signing","key encipherment","server auth"]}}}}}}' > config.json
cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca
for i in $(seq 0 $(($2 - 1))); do
  echo "{{\"CN\":\"leaf-$i\",\"hosts\":[\"leaf-$i.example\",\"10.0.$((i / 250)).$((i % 250 + 1))\"],\"key\":{{\"algo\":\"{algo}\",\"size\":{size}}}}}" > leaf.json
  cfssl gencert -ca ca.pem -ca-key ca-key.pem -config config.json leaf.json 2>/dev/null | cfssljson -bare leaf-$i
done
"#
    )
}
