//! A key pair without a certificate (the service-account key): its private key is as precious as a
//! CA's, since a new one invalidates every token signed with the old one; its public half is
//! derived, and rewritten whenever it does not match.

use super::moved::Undeclared;
use super::{Blocker, Fate, Known, Reason, Step, mode_fixes};
use crate::disk::{Disk, Read};
use crate::layout::{CERT_MODE, KEY_MODE};
use crate::spec::{ItemId, KeyPairSpec};

pub(super) fn plan<'d>(
    id: ItemId,
    name: &str,
    kp: &KeyPairSpec,
    disk: &'d Disk,
    undeclared: &Undeclared<'_>,
    rekey: bool,
) -> (Step, Known<'d>) {
    let known = |fate: Fate, key_spki| Known {
        fate,
        cert: None,
        key_spki,
    };
    let key = match disk.key(&kp.private_path) {
        Read::Ok(key) if !rekey => key,
        Read::Missing if !rekey => {
            if let Some(blocker) = lost(name, kp, disk, undeclared) {
                return (Step::blocked(id, blocker), known(Fate::Blocked, None));
            }
            let step = Step::new(id, super::Action::Create, vec![Reason::New], Fate::NewKey);
            return (step, known(Fate::NewKey, None));
        }
        Read::Bad(cause) if !rekey => {
            let blocker = Blocker::KeyPairKeyUnreadable {
                name: name.to_string(),
                path: kp.private_path.clone(),
                cause,
            };
            return (Step::blocked(id, blocker), known(Fate::Blocked, None));
        }
        _ => {
            let step = Step::new(
                id,
                super::Action::Rekey,
                vec![Reason::RekeyFlag],
                Fate::NewKey,
            );
            return (step, known(Fate::NewKey, None));
        }
    };
    if let Some(blocker) = super::identity::key_pair(disk.pins(), name, &kp.private_path, &key.spki)
    {
        return (Step::blocked(id, blocker), known(Fate::Blocked, None));
    }
    if key.alg != Some(kp.alg) {
        let blocker = Blocker::KeyPairAlgChanged {
            name: name.to_string(),
            disk: key.alg,
            spec: kp.alg,
        };
        return (Step::blocked(id, blocker), known(Fate::Blocked, None));
    }
    let fixes = mode_fixes(
        disk,
        &[(&kp.private_path, KEY_MODE), (&kp.public_path, CERT_MODE)],
    );
    let public_ok = matches!(disk.public_key(&kp.public_path), Read::Ok(p) if *p == key.spki);
    if public_ok {
        return (
            Step::keep(id, fixes),
            known(Fate::Kept, Some(key.spki.as_slice())),
        );
    }
    let mut step = Step::new(
        id,
        super::Action::Render,
        vec![Reason::PublicKeyStale {
            path: kp.public_path.clone(),
        }],
        Fate::Rendered,
    );
    step.fix_modes = fixes;
    (step, known(Fate::Rendered, Some(key.spki.as_slice())))
}

/// Why a missing private key must not simply be made anew: its public half is still here (the
/// key existed and was lost, not never made), or another key pair's files, declared by nothing,
/// are in the output folder (this one may have moved: `private =`/`public =` changed).
fn lost(name: &str, kp: &KeyPairSpec, disk: &Disk, undeclared: &Undeclared<'_>) -> Option<Blocker> {
    if disk.get(&kp.public_path).is_some() {
        return Some(Blocker::KeyPairKeyLost {
            name: name.to_string(),
            private: kp.private_path.clone(),
            public: kp.public_path.clone(),
        });
    }
    let (private_at, public_at) = undeclared.key_pair()?;
    Some(Blocker::KeyPairMoved {
        name: name.to_string(),
        private: kp.private_path.clone(),
        public: kp.public_path.clone(),
        private_at,
        public_at,
    })
}
