//! A certificate and its key: whether the files moved, whether the key stays, whether a CA's
//! identity may change, and whether the certificate on disk is still what pki.toml declares under
//! the issuer as it will be after this run. Each question is a function of its own, asked in that
//! order by `plan`.

use time::{Duration, OffsetDateTime};

use super::moved::{Undeclared, san_set};
use super::signatures::Signatures;
use super::{Action, Blocker, Fate, Known, ModeFix, Reason, Step, mode_fixes};
use crate::disk::{Disk, Read};
use crate::layout::{CERT_MODE, KEY_MODE, csr_path};
use crate::spec::{BACKDATE, CertSpec, ItemId, Spec, Usage};
use crate::x509::{CertFacts, KeyFacts};

/// What every certificate decision reads.
pub(super) struct Inputs<'a, 'd> {
    pub(super) spec: &'a Spec,
    /// The output folder as the user names it.
    pub(super) out: &'a str,
    pub(super) disk: &'d Disk,
    pub(super) now: OffsetDateTime,
    pub(super) known: &'a [Known<'d>],
    pub(super) undeclared: &'a Undeclared<'d>,
    /// The signatures of what is on disk, checked before the loop (`Signatures`).
    pub(super) signatures: &'a Signatures<'d>,
}

/// One certificate item, decided.
struct Cert<'c, 'd> {
    id: ItemId,
    c: &'c CertSpec,
    /// The name in pki.toml (what `--rekey` takes).
    name: &'c str,
    rekey: bool,
    /// `--renew` names it: re-signed with its key even if nothing else changed.
    renew: bool,
    /// The certificate on disk, if it reads.
    disk_cert: Option<&'d CertFacts>,
}

impl<'d> Cert<'_, 'd> {
    fn known(&self, fate: Fate, key_spki: Option<&'d [u8]>) -> Known<'d> {
        Known {
            fate,
            cert: self.disk_cert,
            key_spki,
        }
    }

    fn blocked(&self, blocker: Blocker) -> (Step, Known<'d>) {
        let spki = self.disk_cert.map(|c| c.spki.as_slice());
        (
            Step::blocked(self.id, blocker),
            self.known(Fate::Blocked, spki),
        )
    }
}

/// The key as it is on disk, and what keeps it from being used as it is.
struct KeyVerdict<'d> {
    facts: Option<&'d KeyFacts>,
    reasons: Vec<Reason>,
    missing: bool,
}

impl KeyVerdict<'_> {
    /// The key stays: it reads, has the declared algorithm, and `--rekey` does not name it.
    fn ok(&self) -> bool {
        self.facts.is_some() && self.reasons.is_empty()
    }
}

pub(super) fn plan<'d>(
    cx: &Inputs<'_, 'd>,
    id: ItemId,
    c: &CertSpec,
    rekey: bool,
    renew: bool,
) -> (Step, Known<'d>) {
    let cert = cx.disk.cert(&c.cert_path);
    let me = Cert {
        id,
        c,
        name: &cx.spec.items[id].base,
        rekey,
        renew,
        disk_cert: match cert {
            Read::Ok(cf) => Some(cf),
            _ => None,
        },
    };
    let key = cx.disk.key(&c.key_path);
    if !rekey
        && key.is_missing()
        && let Some(blocker) = moved(cx, &me)
    {
        return me.blocked(blocker);
    }
    // A CA's files that hold another CA's key, or a replaced one, stop it before anything else.
    if c.ca.is_some()
        && !rekey
        && let Some(blocker) = super::identity::ca(cx.disk, &cx.spec.items[id].name, c)
    {
        return me.blocked(blocker);
    }
    let kv = key_verdict(c, key, rekey);
    if c.ca.is_some()
        && !rekey
        && let Some(decided) = ca_identity(cx, &me, &kv, cert.is_missing())
    {
        return decided;
    }
    let under = under(cx, c);
    let Some(key) = kv.facts.filter(|_| kv.ok()) else {
        if let Under::Pending(issuer) = under {
            return wait(&me, kv.reasons, issuer, None);
        }
        let under_external = under == Under::External;
        if under_external && kv.facts.is_some() {
            // The key in use would stop matching its certificate until the external CA signs.
            let issuer = c.issuer.map(|i| cx.spec.items[i].name.clone());
            return me.blocked(Blocker::ExternalKeyInUse {
                name: me.name.to_string(),
                issuer: issuer.unwrap_or_default(),
                cert: c.cert_path.clone(),
                key: c.key_path.clone(),
                is_ca: c.ca.is_some(),
                reasons: kv.reasons,
            });
        }
        return new_key(&me, kv, cert.is_missing(), under_external);
    };
    keep_key(cx, &me, key, cert, under)
}

/// Who signs the certificate, as far as this run can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Under<'a> {
    /// A CA that signs here (or none: a root signs itself).
    Here,
    /// A CA whose key is elsewhere: what needs signing gets a CSR.
    External,
    /// CA `.0`, whose key is here but whose own certificate is still to come from an external
    /// CA: the tool signs itself once it arrives, so what needs signing waits, with no CSR and no
    /// new key written before then.
    Pending(&'a str),
}

fn under<'a>(cx: &Inputs<'a, '_>, c: &CertSpec) -> Under<'a> {
    let Some(i) = c.issuer else {
        return Under::Here;
    };
    let fate = &cx.known[i].fate;
    if fate.awaits_csr() {
        Under::Pending(&cx.spec.items[i].name)
    } else if fate.cannot_sign() {
        Under::External
    } else {
        Under::Here
    }
}

/// A certificate that needs signing under a CA that cannot sign until its own certificate
/// arrives: nothing is written now. A key made now would sit unused (and be one more private key
/// to guard) until then, and the run that can sign makes key and certificate together.
fn wait<'d>(
    me: &Cert<'_, 'd>,
    mut reasons: Vec<Reason>,
    issuer: &str,
    key_spki: Option<&'d [u8]>,
) -> (Step, Known<'d>) {
    reasons.push(Reason::WaitsForIssuer {
        issuer: issuer.to_string(),
    });
    let step = Step::new(me.id, Action::Wait, reasons, Fate::Waiting);
    (step, me.known(Fate::Waiting, key_spki))
}

/// Where the certificate's files are, when pki.toml's paths are empty but undeclared files in the
/// output folder hold them: say where, instead of making a new key and leaving the old an orphan.
fn moved(cx: &Inputs<'_, '_>, me: &Cert<'_, '_>) -> Option<Blocker> {
    let c = me.c;
    let cert_file_here = cx.disk.get(&c.cert_path).is_some();
    let (cert_at, key_at) = cx.undeclared.cert_files(c, me.disk_cert, cert_file_here)?;
    Some(Blocker::Moved {
        name: me.name.to_string(),
        out: cx.out.to_string(),
        cert: c.cert_path.clone(),
        key: c.key_path.clone(),
        cert_at,
        key_at,
    })
}

fn key_verdict<'d>(c: &CertSpec, key: Read<'d, KeyFacts>, rekey: bool) -> KeyVerdict<'d> {
    let mut reasons = Vec::new();
    if rekey {
        reasons.push(Reason::RekeyFlag);
    }
    let missing = key.is_missing();
    let facts = match key {
        Read::Ok(kf) => {
            if kf.alg != Some(c.alg) {
                reasons.push(Reason::KeyAlgChanged {
                    disk: kf.alg,
                    spec: c.alg,
                });
            }
            Some(kf)
        }
        Read::Missing => {
            reasons.push(Reason::KeyMissing {
                path: c.key_path.clone(),
            });
            None
        }
        Read::Bad(e) => {
            reasons.push(Reason::KeyUnreadable(e));
            None
        }
    };
    KeyVerdict {
        facts,
        reasons,
        missing,
    }
}

/// A CA's identity (its key) never changes without `--rekey`: every decision that would give a
/// CA a new key, or a new certificate over a key that is not its own, is made here, once. `None`
/// when the CA may go on to be planned like any certificate.
fn ca_identity<'d>(
    cx: &Inputs<'_, 'd>,
    me: &Cert<'_, 'd>,
    kv: &KeyVerdict<'d>,
    cert_missing: bool,
) -> Option<(Step, Known<'d>)> {
    let c = me.c;
    let paired = match (kv.facts, me.disk_cert) {
        (Some(kf), Some(cf)) => kf.spki == cf.spki,
        _ => true,
    };
    if kv.ok() && !paired {
        return Some(me.blocked(Blocker::CaNotAPair {
            name: me.name.to_string(),
            cert: c.cert_path.clone(),
            key: c.key_path.clone(),
        }));
    }
    if !kv.ok() && !kv.missing {
        return Some(me.blocked(Blocker::CaKeyUnusable {
            name: me.name.to_string(),
            key: c.key_path.clone(),
            reasons: kv.reasons.clone(),
        }));
    }
    if !kv.missing {
        return None;
    }
    if let Some(cf) = me.disk_cert {
        return Some(external(cx, me, cf));
    }
    // No key, and no readable certificate: a new CA, unless certificates below it are here (its
    // files moved, were lost or damaged): then a new CA needs a decision.
    let below = signed_below(cx.spec, cx.disk, me.id);
    if below.is_empty() {
        return None;
    }
    Some(me.blocked(Blocker::CaVanished {
        name: me.name.to_string(),
        cert: c.cert_path.clone(),
        key: c.key_path.clone(),
        cert_missing,
        below,
    }))
}

/// Certificates below CA `id` (transitively) whose files are in the output folder and that it
/// signed. A self-signed CA on the way up was signed by nothing above it: it is an existing CA
/// under which pki.toml now adds a root, and neither it nor what it signed needs the missing CA.
fn signed_below(spec: &Spec, disk: &Disk, id: ItemId) -> Vec<String> {
    let self_issued = |i: ItemId| {
        spec.items[i]
            .kind
            .as_cert()
            .and_then(|c| disk.get(&c.cert_path))
            .and_then(|f| f.as_cert())
            .is_some_and(|cf| cf.issuer_raw == cf.subject_raw)
    };
    let below = |mut i: ItemId| {
        while let Some(up) = spec.items[i].kind.as_cert().and_then(|c| c.issuer) {
            if self_issued(i) {
                return false;
            }
            if up == id {
                return true;
            }
            i = up;
        }
        false
    };
    spec.items
        .iter()
        .enumerate()
        .filter(|(i, item)| {
            below(*i)
                && item
                    .kind
                    .as_cert()
                    .is_some_and(|c| disk.get(&c.cert_path).is_some())
        })
        .map(|(_, item)| item.name.clone())
        .collect()
}

/// A CA whose certificate is here but whose key is not: used as it is (external-CA mode), unless
/// its own issuer changed under it, which only the holder of its key can follow.
fn external<'d>(cx: &Inputs<'_, 'd>, me: &Cert<'_, 'd>, cf: &'d CertFacts) -> (Step, Known<'d>) {
    let c = me.c;
    if let Some(i) = c.issuer {
        let ik = &cx.known[i];
        let stale = ik.fate.new_key()
            || ik.fate.cascade().is_some()
            || ik
                .key_spki
                .is_some_and(|spki| !cx.signatures.verifies(&cf.der, spki));
        if stale && !ik.fate.cannot_sign() {
            return me.blocked(Blocker::ExternalStale {
                name: me.name.to_string(),
                issuer: cx.spec.items[i].name.clone(),
                cert: c.cert_path.clone(),
                key: c.key_path.clone(),
            });
        }
    }
    let mut reasons = vec![Reason::ExternalCa {
        cert: c.cert_path.clone(),
        key: c.key_path.clone(),
    }];
    reasons.extend(expiry(c, cf, cx.now).map(|e| Reason::ExternalExpiry(Box::new(e))));
    let step = Step::new(me.id, Action::External, reasons, Fate::External);
    (step, me.known(Fate::External, Some(cf.spki.as_slice())))
}

/// The key must be made (missing, unreadable, another algorithm, or `--rekey`): a new key and a
/// certificate over it, or under an external CA a new key and a CSR. A CSR leaves the certificate
/// as it is until the external CA signs it; a CA waiting for its certificate cannot sign either,
/// so what is below it waits too.
fn new_key<'d>(
    me: &Cert<'_, 'd>,
    kv: KeyVerdict<'d>,
    cert_missing: bool,
    under_external: bool,
) -> (Step, Known<'d>) {
    let (action, reasons) = if under_external {
        (Action::Csr, kv.reasons)
    } else if cert_missing && kv.missing && !me.rekey {
        (Action::Create, vec![Reason::New])
    } else {
        (Action::Rekey, kv.reasons)
    };
    let fate = if under_external {
        Fate::Csr {
            new_key: true,
            waiting: true,
            cascade: None,
        }
    } else {
        Fate::NewKey
    };
    let step = Step::new(me.id, action, reasons, fate.clone());
    (step, me.known(fate, None))
}

/// The key stays: keep the certificate, or re-sign it over the same key (a CSR under an external
/// CA), with every reason it no longer matches.
/// `--renew`'s reason joins the others: a renewed certificate is re-signed over its key, as any
/// other re-signing, so what a renewed CA signed stays valid (same key, same subject).
fn with_renewal(mut reasons: Vec<Reason>, renew: bool) -> Vec<Reason> {
    if renew {
        reasons.push(Reason::RenewFlag);
    }
    reasons
}

fn keep_key<'d>(
    cx: &Inputs<'_, 'd>,
    me: &Cert<'_, 'd>,
    key: &'d KeyFacts,
    cert: Read<'d, CertFacts>,
    under: Under<'_>,
) -> (Step, Known<'d>) {
    let c = me.c;
    let under_external = under == Under::External;
    let spki = Some(key.spki.as_slice());
    let fixes: Vec<ModeFix> = mode_fixes(
        cx.disk,
        &[(&c.key_path, KEY_MODE), (&c.cert_path, CERT_MODE)],
    );
    let (reasons, notes) = match cert {
        Read::Missing => (
            vec![Reason::CertMissing {
                path: c.cert_path.clone(),
            }],
            vec![],
        ),
        Read::Bad(e) => (vec![Reason::CertUnreadable(e)], vec![]),
        Read::Ok(cf) => judge(cx, c, cf, key, under_external),
    };
    let reasons = with_renewal(reasons, me.renew);
    if reasons.is_empty() {
        let mut step = Step::keep(me.id, fixes);
        step.reasons.extend(notes);
        return (step, me.known(Fate::Kept, spki));
    }
    if let Under::Pending(issuer) = under {
        return wait(me, reasons, issuer, spki);
    }
    // A CA's new key above re-signs everything below it, transitively (not only what it signs).
    // A CA made for the first time (a root added above an existing CA) replaces no key: what is
    // re-signed under it keeps its key, name and key identifier, so what that signed is kept.
    let cascade = c.issuer.and_then(|i| {
        let ik = &cx.known[i];
        if rotated(ik) {
            Some(cx.spec.items[i].name.clone())
        } else {
            ik.fate.cascade().map(String::from)
        }
    });
    let mut csr_in_place = false;
    let (action, fate) = if under_external {
        // Waiting for an external CA with no certificate that matches the key (the run that made
        // the key and CSR, or any run after it until the CA signs): what reads or is signed by
        // this item waits too. A renewal CSR whose certificate still matches its key holds
        // nothing up.
        let waiting = me.disk_cert.is_none_or(|cf| cf.spki != key.spki) || cannot_sign(c, me);
        csr_in_place = csr_in_place_for(cx.disk, c, key);
        let fate = Fate::Csr {
            new_key: false,
            waiting,
            cascade,
        };
        (Action::Csr, fate)
    } else {
        (Action::Resign, Fate::Resigned { cascade })
    };
    let mut step = Step::new(me.id, action, reasons, fate.clone());
    step.fix_modes = fixes;
    if csr_in_place {
        step.csr_in_place = true;
        step.reasons.push(Reason::CsrInPlace {
            csr: csr_path(&c.cert_path),
        });
    }
    (step, me.known(fate, spki))
}

/// Whether the CSR an earlier run wrote is still the request this run would write: over the key
/// that stays, for what pki.toml declares. Then nothing is written; the run waits for the
/// external CA to sign it.
fn csr_in_place_for(disk: &Disk, c: &CertSpec, key: &KeyFacts) -> bool {
    disk.obs(&csr_path(&c.cert_path))
        .is_some_and(|f| !f.symlink && crate::csr::asks_for(&f.bytes, c, &key.spki))
}

/// A CA certificate whose key usage (when it has one) leaves out keyCertSign cannot sign: an
/// external CA granted less than its CSR asked. What it would sign waits, as for a CSR.
fn cannot_sign(c: &CertSpec, me: &Cert<'_, '_>) -> bool {
    c.ca.is_some()
        && me
            .disk_cert
            .is_some_and(|cf| !cf.key_usage.is_empty() && !cf.key_usage.contains(&"keyCertSign"))
}

/// Every reason the certificate on disk must be re-signed (first) and what the user should know
/// though nothing is done about it (second).
fn judge(
    cx: &Inputs<'_, '_>,
    c: &CertSpec,
    cf: &CertFacts,
    key: &KeyFacts,
    under_external: bool,
) -> (Vec<Reason>, Vec<Reason>) {
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    if cf.spki != key.spki {
        reasons.push(Reason::CertKeyMismatch {
            cert: c.cert_path.clone(),
            key: c.key_path.clone(),
        });
    }
    compare_fields(c, cf, under_external, &mut reasons);
    let clamped_to = match c.issuer {
        None => {
            if cf.issuer_raw != cf.subject_raw || !cx.signatures.verifies(&cf.der, &key.spki) {
                reasons.push(Reason::NotSelfSigned);
            }
            check_validity(c, cf, &mut reasons);
            None
        }
        Some(i) => {
            reasons.extend(issuer_link(cx, i, c, cf));
            let ik = &cx.known[i];
            let clamped_to = clamped(c, cf, ik).map(|at| (cx.spec.items[i].name.clone(), at));
            // An external CA decides the lifetime of what it signs (a CSR carries none).
            if clamped_to.is_none() && !ik.fate.cannot_sign() {
                check_validity(c, cf, &mut reasons);
            }
            clamped_to
        }
    };
    match (expiry(c, cf, cx.now), clamped_to) {
        // Re-signing cannot take it past its issuer's notAfter: the issuer must be renewed.
        (Some(e), Some((issuer, at))) if cx.now < cf.not_after => {
            notes.push(Reason::ClampedToIssuer {
                expiry: Box::new(e),
                issuer,
                at,
            })
        }
        (Some(e), _) => reasons.push(e),
        (None, _) => {}
    }
    if cx.now < cf.not_before {
        reasons.push(Reason::NotYetValid { at: cf.not_before });
    }
    (reasons, notes)
}

/// Whether certificate `cf` still chains to issuer `i` as the issuer will be after this run: a
/// new key above re-signs it; otherwise its signature, issuer name and authority key id must
/// match the issuer's key, subject and key id.
fn issuer_link(cx: &Inputs<'_, '_>, i: ItemId, c: &CertSpec, cf: &CertFacts) -> Option<Reason> {
    let ik = &cx.known[i];
    let iitem = &cx.spec.items[i];
    let issuer = iitem.name.clone();
    if rotated(ik) {
        return Some(Reason::IssuerNewKey { issuer });
    }
    if ik.fate.new_key() {
        return Some(Reason::IssuerAdded { issuer });
    }
    if let Some(top) = ik.fate.cascade() {
        let top = top.to_string();
        return Some(Reason::IssuerCascade { issuer, top });
    }
    let ispki = ik.key_spki?;
    if !cx.signatures.verifies(&cf.der, ispki) {
        let path = c.cert_path.clone();
        return Some(Reason::NotSignedByIssuer { path, issuer });
    }
    // What the issuer's certificate will say: as on disk, or as it is about to be re-signed (over
    // the same key, keeping its name and key id if it can). An issuer still waiting for its own
    // certificate has no name to compare with yet.
    let ic = iitem.kind.as_cert().expect("issuers are certificates");
    let (want_name, want_ski) = if ik.fate.rewritten() {
        let (n, s) = crate::x509::identity(&ic.subject, ispki, ik.cert);
        (n, Some(s))
    } else if let Some(icf) = ik.cert {
        (icf.subject_raw.clone(), icf.ski.clone())
    } else {
        return None;
    };
    if cf.issuer_raw != want_name {
        Some(Reason::IssuerNameDiffers { issuer })
    } else if want_ski.is_some() && cf.aki != want_ski {
        Some(Reason::AuthorityKeyIdDiffers { issuer })
    } else {
        None
    }
}

/// Whether a CA's key is replaced in this run: it gets a new key and had a certificate over the
/// old one. A CA made for the first time gets a key too, but replaces none.
fn rotated(ik: &Known<'_>) -> bool {
    ik.fate.new_key() && ik.cert.is_some()
}

/// The issuer's notAfter, when the certificate was cut short to it (its full validity would have
/// outlived the issuer) and keeps that shorter life while the issuer stays as it is.
fn clamped(c: &CertSpec, cf: &CertFacts, ik: &Known<'_>) -> Option<OffsetDateTime> {
    let icf = ik.cert.filter(|_| !ik.fate.rewritten())?;
    (icf.not_after == cf.not_after && cf.not_before + BACKDATE + c.validity >= icf.not_after)
        .then_some(icf.not_after)
}

fn check_validity(c: &CertSpec, cf: &CertFacts, reasons: &mut Vec<Reason>) {
    let have = cf.not_after - cf.not_before;
    // Made here, a certificate lasts validity + BACKDATE; made elsewhere (openssl -days,
    // kubeadm before v1.31) it may not be backdated. Either matches the setting.
    let slack = Duration::seconds(1);
    if have < c.validity - slack || have > c.validity + BACKDATE + slack {
        reasons.push(Reason::ValidityChanged {
            disk: have,
            spec: c.validity,
        });
    }
}

/// Why a certificate needs renewing at `now`, if it does.
fn expiry(c: &CertSpec, cf: &CertFacts, now: OffsetDateTime) -> Option<Reason> {
    if now >= cf.not_after {
        Some(Reason::Expired { at: cf.not_after })
    } else if now >= cf.not_after - c.renew_before {
        Some(Reason::ExpiresSoon {
            left: cf.not_after - now,
            renew_before: c.renew_before,
        })
    } else {
        None
    }
}

/// Compares what pki.toml asks for with a certificate's fields. Under an external CA the
/// usages and key usages are the CA's choice (a CSR only requests them), so they are not compared
/// there.
fn compare_fields(c: &CertSpec, cf: &CertFacts, under_external: bool, reasons: &mut Vec<Reason>) {
    if !cf.subject.same_as(&c.subject) {
        reasons.push(Reason::SubjectChanged {
            disk: cf.subject.clone(),
            spec: c.subject.clone(),
        });
    }
    let have = san_set(&cf.sans);
    let want = san_set(&c.sans);
    if have != want || cf.other_sans > 0 {
        reasons.push(Reason::SansChanged {
            added: want.difference(&have).cloned().collect(),
            removed: have.difference(&want).cloned().collect(),
            others: cf.other_sans,
        });
    }
    match c.ca {
        Some(ca) => {
            if !cf.is_ca {
                reasons.push(Reason::NotCa);
            } else if !cf.key_usage.contains(&"keyCertSign")
                && (!under_external || !cf.key_usage.is_empty())
            {
                // (An external CA may leave key usage out: then it restricts nothing.)
                reasons.push(Reason::NoKeyCertSign);
            } else if cf.path_len != ca.path_len.map(u32::from) {
                reasons.push(Reason::PathLenChanged {
                    disk: cf.path_len,
                    spec: ca.path_len,
                });
            }
        }
        None => compare_leaf(c, cf, under_external, reasons),
    }
}

fn compare_leaf(c: &CertSpec, cf: &CertFacts, under_external: bool, reasons: &mut Vec<Reason>) {
    if cf.is_ca {
        reasons.push(Reason::LeafIsCa);
    }
    // kubeadm's leaves (keyEncipherment on ECDSA keys too) pass; a leaf that cannot sign a
    // handshake, or that could sign certificates, does not. (Under an external CA the key usage
    // is that CA's choice, like the extended key usage.)
    if !under_external
        && (!cf.key_usage.contains(&"digitalSignature") || cf.key_usage.contains(&"keyCertSign"))
    {
        reasons.push(Reason::KeyUsageChanged(cf.key_usage.clone()));
    }
    let mut have: Vec<Usage> = cf.usages.clone();
    have.sort();
    if have != c.usages && !under_external {
        reasons.push(Reason::UsagesChanged {
            disk: have,
            spec: c.usages.clone(),
        });
    }
}
