//! Scalar values of pki.toml: key algorithms, durations, IP addresses and DNS names, the
//! `[defaults]` they fall back to, and the SANs of a certificate made of them.

use std::net::IpAddr;
use std::ops::Range;

use time::Duration;
use toml::Spanned;

use crate::config::{Raw, quote_list};
use crate::diag::nearest;
use crate::resolve::Cx;
use crate::resolve::nodes::outside_per_node;
use crate::spec::{
    DEFAULT_ALG, DEFAULT_CA_VALIDITY, DEFAULT_RENEW_BEFORE, DEFAULT_VALIDITY, DURATION_LIMIT_YEARS,
    KeyAlg, Node, Sans, duration_seconds, fmt_duration, parse_duration,
};

/// The values an entry falls back to: `[defaults]` over the constants of `spec.rs`.
pub(super) struct Defaults {
    pub(super) alg: KeyAlg,
    /// Where `[defaults]` sets `algorithm`, if it does.
    pub(super) alg_at: Option<Range<usize>>,
    pub(super) validity: Duration,
    pub(super) ca_validity: Duration,
    pub(super) renew_before: Duration,
}

impl Cx {
    /// `[defaults]`, each value checked; one that is invalid is reported and its constant used.
    pub(super) fn defaults(&mut self, raw: &Raw) -> Defaults {
        let mut d = Defaults {
            alg: DEFAULT_ALG,
            alg_at: None,
            validity: DEFAULT_VALIDITY,
            ca_validity: DEFAULT_CA_VALIDITY,
            renew_before: DEFAULT_RENEW_BEFORE,
        };
        if let Some(raw) = &raw.defaults {
            d.alg = self.alg(raw.algorithm.as_ref(), d.alg);
            d.alg_at = raw.algorithm.as_ref().map(Spanned::span);
            d.validity = self.duration(raw.validity.as_ref(), d.validity);
            d.ca_validity = self.duration(raw.ca_validity.as_ref(), d.ca_validity);
            d.renew_before = self.duration(raw.renew_before.as_ref(), d.renew_before);
        }
        d
    }

    /// The key algorithm `s` names, or `default` when it is not set (or reported).
    pub(super) fn alg(&mut self, s: Option<&Spanned<String>>, default: KeyAlg) -> KeyAlg {
        let Some(s) = s else { return default };
        match KeyAlg::parse(s.get_ref()) {
            Some(a) => a,
            None => {
                let names: Vec<&str> = KeyAlg::ALL.iter().map(|a| a.name()).collect();
                let mut help = format!("expected one of {}", quote_list(&names));
                let written = s.get_ref().to_ascii_lowercase();
                if let Some(near) = nearest(&written, names.iter().copied()) {
                    help = format!("did you mean `{near}`? {help}");
                }
                self.err(
                    format!("unsupported key algorithm `{}`", s.get_ref()),
                    Some(s.span()),
                    Some(help),
                );
                default
            }
        }
    }

    /// The duration `s` spells, or `default` when it is not set (or reported).
    pub(super) fn duration(&mut self, s: Option<&Spanned<String>>, default: Duration) -> Duration {
        let Some(s) = s else { return default };
        if let Some(d) = parse_duration(s.get_ref()) {
            return d;
        }
        let (message, help) = duration_problem(s.get_ref());
        self.err(message, Some(s.span()), Some(help));
        default
    }

    /// The IP address `s` spells (at `span`), or `None` when it is not one (reported).
    pub(super) fn ip(&mut self, s: &str, span: Range<usize>) -> Option<IpAddr> {
        match s.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    format!("invalid IP address `{s}`"),
                    Some(span),
                    Some("write an IPv4 (`10.0.0.1`) or IPv6 (`fd00::1`) address; DNS names go in `dns`".into()),
                );
                None
            }
        }
    }

    /// The SANs of a certificate: DNS names lowercased and checked, addresses parsed, each kept once
    /// in declared order.
    pub(super) fn sans(
        &mut self,
        dns: &[Spanned<String>],
        ips: &[Spanned<String>],
        node: Option<&Node>,
    ) -> Sans {
        let mut out = Sans::default();
        for d in dns {
            let Some(v) = self.interp(d, node, "dns") else {
                continue;
            };
            let v = v.to_ascii_lowercase();
            // A `{node}` of a node whose name is not a DNS name: reported at the node already.
            let bad_node = node.is_some_and(|n| !is_dns_name(&n.name) || n.name.contains('*'));
            if bad_node && d.get_ref().contains("{node") {
                continue;
            }
            if v.parse::<IpAddr>().is_ok() {
                self.err(
                    format!("`{v}` is an IP address, not a DNS name"),
                    Some(d.span()),
                    Some(
                        "move it to `ips`: clients match IP addresses only against IP SANs".into(),
                    ),
                );
            } else if !is_dns_name(&v) {
                self.err(
                    format!("invalid DNS name `{v}`"),
                    Some(d.span()),
                    Some("a DNS name is dot-separated labels of letters, digits and `-` (a leading `*.` is allowed)".into()),
                );
            } else if !out.dns.contains(&v) {
                out.dns.push(v);
            }
        }
        for ip in ips {
            let addrs: Vec<IpAddr> = if ip.get_ref() == "{node.ips}" {
                // All the node's addresses, as a whole entry of `ips` only.
                match node {
                    // Like `{node.ip}`, it stands for the node's addresses: a node without any
                    // would get a certificate without its IP SAN, without a word.
                    Some(n) if n.ips.is_empty() => {
                        self.err(
                            format!("`{{node.ips}}` used, but node `{}` has no `ips`", n.name),
                            Some(ip.span()),
                            Some("give the node its addresses, `ips = [\"10.0.0.21\"]`: clients that connect by address (kube-apiserver to a kubelet, etcd peers) refuse a certificate without them".into()),
                        );
                        vec![]
                    }
                    Some(n) => n.ips.clone(),
                    None => {
                        let (message, help) = outside_per_node("node.ips");
                        self.err(message, Some(ip.span()), Some(help));
                        vec![]
                    }
                }
            } else {
                let Some(v) = self.interp(ip, node, "ips") else {
                    continue;
                };
                self.ip(&v, ip.span()).into_iter().collect()
            };
            for addr in addrs {
                if !out.ips.contains(&addr) {
                    out.ips.push(addr);
                }
            }
        }
        out
    }

    /// A certificate whose validity is not longer than its renew-before is due for renewal the
    /// moment it is signed: every run would re-sign it. Each duration comes with its value in the
    /// entry, if set there (`None`: a default).
    pub(super) fn renewal(
        &mut self,
        name: &Spanned<String>,
        validity: (Duration, Option<&Spanned<String>>),
        renew_before: (Duration, Option<&Spanned<String>>),
    ) {
        let parses =
            |s: Option<&Spanned<String>>| s.is_none_or(|s| parse_duration(s.get_ref()).is_some());
        // An invalid duration is reported already, and its default says nothing.
        if !parses(validity.1) || !parses(renew_before.1) || validity.0 > renew_before.0 {
            return;
        }
        let span = validity
            .1
            .or(renew_before.1)
            .map_or(name.span(), |s| s.span());
        self.err(
            format!(
                "`{}` would be re-signed on every run: its validity {} is not longer than its renew-before {}",
                name.get_ref(),
                fmt_duration(validity.0),
                fmt_duration(renew_before.0)
            ),
            Some(span),
            Some(format!(
                "lengthen `validity` beyond {}, or shorten `renew-before` below {}",
                fmt_duration(renew_before.0),
                fmt_duration(validity.0)
            )),
        );
    }
}

/// RFC 1123 host names, with an optional leading `*.` wildcard label.
pub fn is_dns_name(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// What is wrong with a duration that does not parse: (message, help). A duration over the limit
/// is told the limit, not the syntax it already follows.
fn duration_problem(s: &str) -> (String, String) {
    match duration_seconds(s) {
        Some(secs) if secs >= DURATION_LIMIT_YEARS * 365 * 86400 => (
            format!(
                "duration `{s}` is too long: durations are shorter than {DURATION_LIMIT_YEARS} years"
            ),
            format!(
                "write at most `{}y` (or `{}d`); kubeadm's CAs last `10y` and its leaves `1y`",
                DURATION_LIMIT_YEARS - 1,
                DURATION_LIMIT_YEARS * 365 - 1
            ),
        ),
        Some(_) => (
            format!("invalid duration `{s}`: a duration is positive"),
            "write a positive whole number and a unit: `8760h`, `365d`, `2w`, `10y` (s, m, h, d, w, y)".into(),
        ),
        None => (
            format!("invalid duration `{s}`"),
            "write a positive whole number and a unit: `8760h`, `365d`, `2w`, `10y` (s, m, h, d, w, y)".into(),
        ),
    }
}
