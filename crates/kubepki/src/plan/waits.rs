//! What the run waits for from external CAs: each CSR one must sign, with what waits on it, and
//! the CSRs that nothing waits on any more (their certificates are in place, or are made here
//! now), which apply removes.

use super::{Action, Reason, Step, Waiting};
use crate::disk::Disk;
use crate::layout::csr_path;
use crate::spec::{ItemId, ItemKind, Spec};

/// One `Waiting` per `csr` step, in plan order.
pub(super) fn waiting(spec: &Spec, steps: &[Step], out: &str) -> Vec<Waiting> {
    steps
        .iter()
        .filter(|s| s.action == Action::Csr)
        .filter_map(|s| {
            let c = spec.items[s.item].kind.as_cert()?;
            let i = c.issuer?;
            let ic = spec.items[i].kind.as_cert()?;
            Some(Waiting {
                out: out.to_string(),
                item: spec.items[s.item].name.clone(),
                csr: csr_path(&c.cert_path),
                cert: c.cert_path.clone(),
                issuer: spec.items[i].name.clone(),
                issuer_cert: ic.cert_path.clone(),
                issuer_key: ic.key_path.clone(),
                days: whole_days(c.validity),
                is_ca: c.ca.is_some(),
                path_len: c.ca.and_then(|ca| ca.path_len),
                usages: c.usages.clone(),
                rsa: c.alg.is_rsa(),
                waits_on_it: waits_on(spec, steps, s.item),
            })
        })
        .collect()
}

/// A CSR's lifetime in whole days, rounded up (`openssl -days` and cfssl's expiry take no less).
fn whole_days(validity: time::Duration) -> i64 {
    let days = validity.whole_days();
    if validity > time::Duration::days(days) {
        days + 1
    } else {
        days
    }
}

/// The items that wait on the certificate of `csr_item`: certificates below it that wait to be
/// signed here, and rendered files that read it or one of them.
fn waits_on(spec: &Spec, steps: &[Step], csr_item: ItemId) -> Vec<String> {
    let waits_below = |mut id: ItemId| {
        while let Some(up) = spec.items[id].kind.as_cert().and_then(|c| c.issuer) {
            if up == csr_item {
                return true;
            }
            if steps[up].action != Action::Wait {
                return false;
            }
            id = up;
        }
        false
    };
    let below: Vec<ItemId> = steps
        .iter()
        .filter(|s| s.action == Action::Wait && waits_below(s.item))
        .map(|s| s.item)
        .collect();
    let mut names: Vec<String> = below.iter().map(|&i| spec.items[i].name.clone()).collect();
    let mut on = below.clone();
    on.push(csr_item);
    for s in steps {
        let ItemKind::Render(r) = &spec.items[s.item].kind else {
            continue;
        };
        let waits = s
            .reasons
            .iter()
            .any(|why| matches!(why, Reason::WaitsForCsr { .. }));
        if waits && r.bind.values().any(|i| on.contains(i)) {
            names.push(spec.items[s.item].name.clone());
        }
    }
    names
}

/// CSRs in the output folder that nothing waits on any more: their certificate is in place (the
/// external CA signed and it was installed) or is signed here in this run. A blocked item's is
/// left alone (the run stops), and so is one a `csr` step still waits on.
pub(super) fn answered(spec: &Spec, disk: &Disk, steps: &[Step]) -> Vec<(String, Reason)> {
    steps
        .iter()
        .filter(|s| !matches!(s.action, Action::Csr | Action::Blocked))
        .filter_map(|s| {
            let c = spec.items[s.item].kind.as_cert()?;
            let csr = csr_path(&c.cert_path);
            disk.obs(&csr)?;
            let why = if s.action == Action::Wait {
                Reason::CsrObsolete {
                    cert: c.cert_path.clone(),
                }
            } else {
                Reason::CsrAnswered {
                    cert: c.cert_path.clone(),
                }
            };
            Some((csr, why))
        })
        .collect()
}
