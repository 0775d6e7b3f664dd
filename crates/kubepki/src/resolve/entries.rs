//! A `[[ca]]`, `[[cert]]` or `[[keypair]]` entry (one instance of it, for a per-node entry) made
//! into an `Item`: its subject, usages, durations and paths, defaults applied.

use time::Duration;
use toml::Spanned;

use crate::config::{RawCa, RawCert, RawKeyPair};
use crate::resolve::Cx;
use crate::resolve::nodes::instance_name;
use crate::resolve::values::Defaults;
use crate::spec::{
    CaSpec, CertSpec, Item, ItemId, ItemKind, KeyAlg, KeyPairSpec, Node, Sans, Subject, Usage,
};

impl Cx {
    /// The subject of a CA or leaf, placeholders replaced and empty values left out; it must not
    /// end up empty, since Kubernetes reads the CN as the user and each O as a group.
    fn subject(
        &mut self,
        name: &Spanned<String>,
        cn: Option<&Spanned<String>>,
        o: &[Spanned<String>],
        ou: &[Spanned<String>],
        node: Option<&Node>,
    ) -> Subject {
        // A placeholder that failed is reported already: "empty subject" would only repeat it.
        let mut failed = false;
        let mut values = |field: &str, vs: &mut dyn Iterator<Item = &Spanned<String>>| {
            let mut out = Vec::new();
            for v in vs {
                match self.interp(v, node, field) {
                    Some(v) if !v.is_empty() => out.push(v),
                    Some(_) => {}
                    None => failed = true,
                }
            }
            out
        };
        let s = Subject {
            cn: values("cn", &mut cn.into_iter()).pop(),
            o: values("o", &mut o.iter()),
            ou: values("ou", &mut ou.iter()),
        };
        if failed {
            return s;
        }
        if s.cn.is_none() && s.o.is_empty() && s.ou.is_empty() {
            self.err(
                format!("`{}` has an empty subject", name.get_ref()),
                Some(cn.map_or(name.span(), |c| c.span())),
                Some("set `cn` (Kubernetes reads it as the user name)".into()),
            );
        } else if let Some(cn) = cn.filter(|_| s.cn.is_none()) {
            // An empty CN is dropped from the subject, which then names no user: a kubeconfig
            // made from it reads `user: ` and `@kubernetes`, and kube-apiserver authenticates
            // no one by it.
            self.err(
                format!("`cn` of `{}` is empty", name.get_ref()),
                Some(cn.span()),
                Some("Kubernetes reads the CN as the user name, and kubeconfigs name their user and context after it: write the name, or remove `cn` from a certificate no client logs in with".into()),
            );
        }
        s
    }

    /// A client certificate names its user in the CN: kube-apiserver (and etcd, with client
    /// authentication on) takes the user name from it alone and authenticates no certificate
    /// without one; O values are groups, never the user. `cn = ""` is reported by `subject`.
    fn client_cn(&mut self, raw: &RawCert, subject: &Subject, usages: &[Usage]) {
        let named_otherwise = !subject.o.is_empty() || !subject.ou.is_empty();
        if raw.cn.is_none() && named_otherwise && usages.contains(&Usage::Client) {
            self.err(
                format!("client certificate `{}` has no `cn`", raw.name.get_ref()),
                Some(raw.usage.span()),
                Some("kube-apiserver takes the user name from the CN and ignores a client certificate without one (its `o` values are groups): set `cn` to the user name, e.g. `cn = \"kubernetes-admin\"`".into()),
            );
        }
    }

    /// A `[[ca]]` entry; `issuer` is `None` for a root (or an issuer already reported). Its
    /// problems are reported in the order: subject, SANs, paths, durations, algorithm.
    pub(super) fn ca(&mut self, raw: &RawCa, issuer: Option<ItemId>, d: &Defaults) -> Item {
        let name = raw.name.get_ref().clone();
        let subject = self.subject(&raw.name, raw.cn.as_ref(), &raw.o, &raw.ou, None);
        let sans = self.sans(&raw.dns, &raw.ips, None);
        let (cert_path, key_path) = self.cert_paths(&name, &raw.cert, &raw.key, None);
        let (validity, renew_before) = self.lifetime(
            &raw.name,
            (raw.validity.as_ref(), d.ca_validity),
            (raw.renew_before.as_ref(), d.renew_before),
        );
        let spec = CertSpec {
            issuer,
            ca: Some(CaSpec {
                path_len: raw.path_len.as_ref().map(|p| *p.get_ref()),
            }),
            subject,
            sans,
            usages: vec![],
            alg: self.alg(raw.algorithm.as_ref(), d.alg),
            validity,
            renew_before,
            cert_path,
            key_path,
            node: None,
        };
        Item {
            base: name.clone(),
            name,
            kind: ItemKind::Cert(spec),
            consumers: self.consumers(&raw.consumers),
        }
    }

    /// One instance of a `[[cert]]` entry (`node` is `None` for a plain entry). Everything is
    /// checked even when the issuer did not resolve; then the instance is left out (`None`), its
    /// issuer's problem already reported.
    pub(super) fn leaf(
        &mut self,
        raw: &RawCert,
        issuer: Option<ItemId>,
        d: &Defaults,
        node: Option<&Node>,
    ) -> Option<Item> {
        let base = raw.name.get_ref().clone();
        let name = instance_name(&base, node);
        let subject = self.subject(&raw.name, raw.cn.as_ref(), &raw.o, &raw.ou, node);
        let before = self.mistakes;
        let sans = self.sans(&raw.dns, &raw.ips, node);
        // An invalid SAN is reported already; "no SANs" would only repeat it.
        let bad_sans = self.mistakes > before;
        let usages = self.usages(raw, &sans, bad_sans);
        self.client_cn(raw, &subject, &usages);
        let (validity, renew_before) = self.lifetime(
            &raw.name,
            (raw.validity.as_ref(), d.validity),
            (raw.renew_before.as_ref(), d.renew_before),
        );
        let (cert_path, key_path) = self.cert_paths(&name, &raw.cert, &raw.key, node);
        let spec = CertSpec {
            issuer,
            ca: None,
            subject,
            sans,
            usages,
            alg: self.alg(raw.algorithm.as_ref(), d.alg),
            validity,
            renew_before,
            cert_path,
            key_path,
            node: node.cloned(),
        };
        issuer?;
        Some(Item {
            base,
            name,
            kind: ItemKind::Cert(spec),
            consumers: self.consumers(&raw.consumers),
        })
    }

    /// The extended key usages of a leaf, each once, sorted. A server certificate needs SANs, since
    /// clients never match the CN; `bad_sans` says that an invalid SAN was reported already, and
    /// "no SANs" would only repeat it.
    fn usages(&mut self, raw: &RawCert, sans: &Sans, bad_sans: bool) -> Vec<Usage> {
        let base = raw.name.get_ref();
        let mut usages = Vec::new();
        for u in raw.usage.get_ref() {
            let v = match u.get_ref().as_str() {
                "server" => Usage::Server,
                "client" => Usage::Client,
                other => {
                    self.err(
                        format!("unknown usage `{other}`"),
                        Some(u.span()),
                        Some("expected `server` (serverAuth) or `client` (clientAuth)".into()),
                    );
                    continue;
                }
            };
            if !usages.contains(&v) {
                usages.push(v);
            }
        }
        if raw.usage.get_ref().is_empty() {
            self.err(
                format!("`{base}` has no usage"),
                Some(raw.usage.span()),
                Some("set `usage = [\"server\"]`, `[\"client\"]` or both".into()),
            );
        }
        if usages.contains(&Usage::Server)
            && sans.dns.is_empty()
            && sans.ips.is_empty()
            && !bad_sans
        {
            // Named by its entry, not its instance: every instance of a per-node entry has the
            // same SANs, and the mistake is said once.
            self.err(
            format!("server certificate `{base}` has no SANs"),
            Some(raw.usage.span()),
            Some("clients match the server's name against `dns` and `ips`, never the CN; add them".into()),
        );
        }
        usages.sort();
        usages
    }

    /// An entry's `validity` and `renew-before`, each its own or its default, checked together.
    fn lifetime(
        &mut self,
        name: &Spanned<String>,
        (validity, default_validity): (Option<&Spanned<String>>, Duration),
        (renew_before, default_renew_before): (Option<&Spanned<String>>, Duration),
    ) -> (Duration, Duration) {
        let validity_value = self.duration(validity, default_validity);
        let renew_before_value = self.duration(renew_before, default_renew_before);
        self.renewal(
            name,
            (validity_value, validity),
            (renew_before_value, renew_before),
        );
        (validity_value, renew_before_value)
    }

    /// A `[[keypair]]` entry: a key and its public half, with no certificate (the service-account
    /// key).
    pub(super) fn keypair(&mut self, raw: &RawKeyPair, d: &Defaults) -> Item {
        let name = raw.name.get_ref().clone();
        let alg = self.alg(raw.algorithm.as_ref(), d.alg);
        self.service_account_alg(raw, alg, d);
        let spec = KeyPairSpec {
            alg,
            private_path: self.path(&name, &raw.private, None, "private"),
            public_path: self.path(&name, &raw.public, None, "public"),
        };
        Item {
            base: name.clone(),
            name,
            kind: ItemKind::KeyPair(spec),
            consumers: self.consumers(&raw.consumers),
        }
    }

    /// A key pair is the service-account key: kube-apiserver (`--service-account-key-file`,
    /// `--service-account-signing-key-file`) and kube-controller-manager
    /// (`--service-account-private-key-file`) load it, and both read RSA and ECDSA keys only
    /// (tokens are signed RS256 or ES256/ES384). An Ed25519 key would stop kube-apiserver from
    /// starting. The algorithm is reported where it is set: on the entry, or in `[defaults]`.
    fn service_account_alg(&mut self, raw: &RawKeyPair, alg: KeyAlg, d: &Defaults) {
        if alg != KeyAlg::Ed25519 {
            return;
        }
        let (span, fix) = match &raw.algorithm {
            Some(a) => (
                Some(a.span()),
                "set `algorithm = \"rsa-2048\"` (kubeadm's) or `\"ecdsa-p256\"`",
            ),
            None => (
                d.alg_at.clone(),
                "give this [[keypair]] its own `algorithm = \"rsa-2048\"` (kubeadm's) or `\"ecdsa-p256\"`; certificates may stay Ed25519",
            ),
        };
        self.err(
            format!(
                "key pair `{}` cannot be ed25519: kube-apiserver and kube-controller-manager load service-account keys as RSA or ECDSA only",
                raw.name.get_ref()
            ),
            span.or(Some(raw.name.span())),
            Some(fix.into()),
        );
    }
}

impl Cx {
    /// `consumers`: each a component this tool knows (a typo gets the nearest name), each once.
    pub(super) fn consumers(&mut self, raw: &[Spanned<String>]) -> Vec<crate::spec::Component> {
        use crate::spec::Component;
        let mut out = Vec::new();
        for c in raw {
            let Some(component) = Component::parse(c.get_ref()) else {
                let names = Component::ALL.map(Component::name);
                let help = match crate::diag::nearest(c.get_ref(), names) {
                    Some(n) => format!("did you mean `{n}`? components: {}", names.join(", ")),
                    None => format!("components: {}", names.join(", ")),
                };
                let msg = format!("unknown component `{}` in consumers", c.get_ref());
                self.err(msg, Some(c.span()), Some(help));
                continue;
            };
            if !out.contains(&component) {
                out.push(component);
            }
        }
        out
    }
}
