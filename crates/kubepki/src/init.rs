//! `pki init`: a commented pki.toml and the templates it uses, for a repository that has none.

use std::path::Path;

use crate::Error;
use crate::cli::Args;

/// `pki init`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// What to start from.
    #[arg(long, value_enum, default_value = "kubeadm")]
    pub preset: Preset,
}

/// A starting point for pki.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// What `kubeadm init` makes on its first control-plane node, plus workers (the shipped default).
    Kubeadm,
    /// Kubernetes The Hard Way: one cluster CA and etcd's CA, per-worker kubelets, kube-proxy.
    HardWay,
    /// One CA and one server certificate.
    Minimal,
}

const KUBECONFIG: (&str, &str) = (
    "kubeconfig.hbs",
    include_str!("../../../templates/kubeconfig.hbs"),
);

/// A preset's pki.toml and its templates (name, text).
pub fn files(preset: Preset) -> (&'static str, Vec<(&'static str, &'static str)>) {
    match preset {
        Preset::Kubeadm => (
            include_str!("../../../pki.toml"),
            vec![
                KUBECONFIG,
                (
                    "tls-secret.yaml.hbs",
                    include_str!("../../../templates/tls-secret.yaml.hbs"),
                ),
                (
                    "etcd.env.hbs",
                    include_str!("../../../templates/etcd.env.hbs"),
                ),
            ],
        ),
        Preset::HardWay => (include_str!("../presets/hard-way.toml"), vec![KUBECONFIG]),
        Preset::Minimal => (include_str!("../presets/minimal.toml"), vec![]),
    }
}

/// Writes the preset's pki.toml and templates (refusing to overwrite any file) and returns the
/// next steps.
pub fn init(root: &Path, args: &Args, i: &InitArgs) -> Result<String, Error> {
    let spec = root.join(&args.file);
    let templates = root.join(&args.templates);
    let (text, temps) = files(i.preset);
    let mut targets = vec![(spec.clone(), text)];
    targets.extend(temps.iter().map(|(n, t)| (templates.join(n), *t)));
    if let Some((p, _)) = targets.iter().find(|(p, _)| p.exists()) {
        return Err(Error::Usage(format!(
            "{} exists: init writes into a repository without a pki.toml or these templates; nothing was written",
            p.display()
        )));
    }
    let mut said = String::new();
    for (path, text) in &targets {
        crate::fsx::write_at(path, text.as_bytes(), crate::layout::CERT_MODE)?;
        said.push_str(&format!("wrote {}\n", path.display()));
    }
    said.push_str(&format!(
        "next: edit {} (node names, addresses, SANs), then run `cargo xtask pki` to make {}, and `cargo xtask pki --check` in CI\n",
        args.file.display(),
        args.out.display()
    ));
    Ok(said)
}
