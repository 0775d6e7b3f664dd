//! What the crate's own unit tests share: a small spec and the tree it makes, built in memory
//! with `apply::build` (no disk, no CLI), as `scan` would observe it.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::scan::{FileObs, Observed, Sources};
use crate::spec::Spec;

/// A root, an intermediate under it, a server certificate under the intermediate and a service
/// account key pair: two levels of issuers, a leaf and a key pair without a certificate.
pub(crate) const CHAIN: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "root"
cn = "root"
cert = "root.crt"
key = "root.key"

[[ca]]
name = "mid"
cn = "mid"
issuer = "root"
cert = "mid.crt"
key = "mid.key"

[[cert]]
name = "server"
cn = "server"
issuer = "mid"
usage = ["server"]
dns = ["a.example"]
cert = "server.crt"
key = "server.key"

[[keypair]]
name = "sa"
private = "sa.key"
public = "sa.pub"
"#;

/// The clock the trees are made at.
pub(crate) fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// pki.toml `spec` and the templates (name, text), as `scan::read_sources` would give them.
pub(crate) fn sources(spec: &str, templates: &[(&str, &str)]) -> Sources {
    Sources {
        spec_path: "pki.toml".into(),
        spec_text: spec.into(),
        templates: templates
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect::<BTreeMap<_, _>>()
            .into(),
        unusable_templates: BTreeMap::new(),
    }
}

/// The spec of `sources` and the tree it makes on an empty folder at `t0`, as `scan` would
/// observe it. With `inventory`, the tree also holds the inventory file that `apply` writes.
pub(crate) fn made_tree(sources: &Sources, inventory: bool) -> (Spec, Observed) {
    let spec = crate::load(sources).expect("the spec resolves");
    let empty = crate::disk::Disk::default();
    let request = crate::plan::Request::default();
    let plan = crate::plan::plan(&spec, sources, &empty, t0(), &request);
    let settings = crate::apply::Settings::at(t0());
    let built = crate::apply::build(&spec, sources, &empty, &plan, &settings).expect("build");
    let mut obs = Observed::default();
    for f in built.files {
        let file = FileObs {
            bytes: f.bytes,
            mode: f.mode,
            symlink: false,
        };
        obs.files.insert(f.path, file);
    }
    if inventory {
        let text = crate::inventory::inventory(&spec, &|i| built.materials[i].clone());
        obs.files.insert(
            crate::layout::INVENTORY.into(),
            FileObs {
                bytes: text.into_bytes(),
                mode: 0o644,
                symlink: false,
            },
        );
    }
    (spec, obs)
}
