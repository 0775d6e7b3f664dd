//! A rendered file (a kubeconfig, a Secret): re-rendered when what it reads changes, or when the
//! text it would have differs from the file. It is rendered here already, with placeholders for
//! what apply will make, so template errors stop the run before anything is written.

use super::{Action, Blocker, Fate, Known, Problem, Reason, Reseal, Step, mode_fixes};
use crate::disk::Disk;
use crate::layout::render_mode;
use crate::render::{self, Material};
use crate::scan::Sources;
use crate::sops::{self, Select};
use crate::spec::{ItemId, ItemKind, RenderSpec, Spec};

/// What every render decision reads.
pub(super) struct Inputs<'a, 'd> {
    pub(super) spec: &'a Spec,
    pub(super) sources: &'a Sources,
    pub(super) disk: &'d Disk,
    pub(super) current: &'a [Material],
    pub(super) known: &'a [Known<'d>],
    /// Whether the run shows diffs (`Request::diffs`).
    pub(super) diffs: bool,
}

/// The end of the batch of renders that starts at `start`: the renders after it, up to the first
/// item that is not a render or that binds a render of the batch. A render reads only what it is
/// bound to and those items' issuers (`inputs`), so the renders of one batch read the fates of
/// items planned before the batch only, and can be planned at once, in any order.
pub(super) fn batch_end(spec: &Spec, start: ItemId) -> ItemId {
    let mut end = start;
    while let Some(ItemKind::Render(r)) = spec.items.get(end).map(|i| &i.kind) {
        if end > start && r.bind.values().any(|&b| (start..end).contains(&b)) {
            break;
        }
        end += 1;
    }
    end
}

/// Plans the renders `ids` (a batch, `batch_end`) in parallel: each render's step, what it tells
/// the items after it, and the problems it found, in id order. Rendering every kubeconfig of a
/// large cluster to compare it with its file is most of a no-op's planning; in parallel, it is
/// the same work in less time, and the same answers in the same order as one by one.
pub(super) fn plan_batch<'d>(
    cx: &Inputs<'_, 'd>,
    ids: std::ops::Range<ItemId>,
) -> Vec<(Step, Known<'d>, Vec<Problem>)> {
    use rayon::prelude::*;
    ids.into_par_iter()
        .map(|id| {
            let ItemKind::Render(r) = &cx.spec.items[id].kind else {
                unreachable!("a batch holds renders only (`batch_end`)");
            };
            let mut problems = Vec::new();
            let (step, known) = plan(cx, id, r, &mut problems);
            (step, known, problems)
        })
        .collect()
}

fn plan<'d>(
    cx: &Inputs<'_, 'd>,
    id: ItemId,
    r: &RenderSpec,
    problems: &mut Vec<Problem>,
) -> (Step, Known<'d>) {
    let name = &cx.spec.items[id].name;
    let problem = |blocker| Problem {
        items: vec![name.clone()],
        blocker,
    };
    problems.extend(missing_secrets(cx, r).into_iter().map(problem));
    let changed: Vec<ItemId> = inputs(cx.spec, r)
        .into_iter()
        .filter(|&i| cx.known[i].fate.rewritten())
        .filter(|&i| r.bind.values().any(|&b| b == i) || reads_certificate_of(cx, r, i))
        .collect();
    let text = match preview(cx, r) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(problem(Blocker::Template(e)));
            None
        }
    };
    let fixes = mode_fixes(cx.disk, &[(&r.path, render_mode(r))]);
    let mut step = decide(cx, id, r, &changed, text.as_deref(), fixes.clone());
    step.fix_modes = fixes;
    if wants_shown(cx, &step) {
        step.shown = shown(cx, r);
    }
    if changed.is_empty() {
        step.preview = text;
    }
    let fate = if step.action.writes() && step.action != Action::FixMode {
        Fate::Rendered
    } else {
        Fate::Kept
    };
    step.fate = fate.clone();
    let known = Known {
        fate,
        cert: None,
        key_spki: None,
    };
    (step, known)
}

/// The action for a render, first match wins.
fn decide(
    cx: &Inputs<'_, '_>,
    id: ItemId,
    r: &RenderSpec,
    changed: &[ItemId],
    text: Option<&str>,
    fixes: Vec<super::ModeFix>,
) -> Step {
    let names = |ids: &[ItemId]| -> Vec<String> {
        ids.iter().map(|&i| cx.spec.items[i].name.clone()).collect()
    };
    let current = cx.disk.obs(&r.path);
    // A bound certificate waits whenever one of its issuers does: naming the bound ones is enough.
    let pending: Vec<ItemId> = r
        .bind
        .values()
        .copied()
        .filter(|&i| cx.known[i].fate.awaits_csr())
        .collect();
    let render = |reason| Step::new(id, Action::Render, vec![reason], Fate::Rendered);
    if !pending.is_empty() {
        // Rendering now would pair a new key with the old certificate (or a placeholder): the
        // file waits, as it is, until the external CA has signed.
        let items = names(&pending);
        return Step::new(
            id,
            Action::Keep,
            vec![Reason::WaitsForCsr { items }],
            Fate::Kept,
        );
    }
    let Some(current) = current else {
        return Step::new(id, Action::Create, vec![Reason::New], Fate::Rendered);
    };
    if current.symlink {
        return render(Reason::LinkReplaced {
            path: r.path.clone(),
        });
    }
    if !changed.is_empty() && !unaffected(cx, r, changed, text) {
        return render(Reason::InputChanges {
            items: names(changed),
        });
    }
    let recipients = recipients_on_disk(cx.disk, &r.path, &current.bytes);
    if let Some(reason) = encryption_changed(cx.spec, r, recipients.is_some()) {
        return render(reason);
    }
    if text.is_some_and(|t| differs(cx.spec, r, &current.bytes, t)) {
        return render(Reason::RenderedTextDiffers);
    }
    if let Some(reason) = recipients_changed(cx.spec, r, recipients) {
        let mut step = Step::new(id, Action::Reencrypt, vec![reason], Fate::Kept);
        step.reseal = Some(Reseal::Rewrap);
        return step;
    }
    Step::keep(id, fixes)
}

/// The age recipients of the rendered file at `path` (sorted), if it is a SOPS file: as `disk`
/// decoded them, so no file is parsed twice. A file that is not UTF-8 was not read as SOPS
/// there; it is read here as its text with the invalid bytes replaced, as it always was.
fn recipients_on_disk(disk: &Disk, path: &str, on_disk: &[u8]) -> Option<Vec<String>> {
    if std::str::from_utf8(on_disk).is_ok() {
        return disk.get(path)?.sops_recipients().map(<[String]>::to_vec);
    }
    let mut found = sops::recipients_of(&String::from_utf8_lossy(on_disk)).ok()?;
    found.sort();
    Some(found)
}

/// Why a file that holds a key is rendered again as it is, when `[encryption]` was added (it is
/// in plaintext, `encrypted` false) or removed (it is encrypted).
fn encryption_changed(spec: &Spec, r: &RenderSpec, encrypted: bool) -> Option<Reason> {
    let path = r.path.clone();
    match (render::is_sealed(spec, r), encrypted) {
        (true, false) => Some(Reason::KeyInPlaintext { path }),
        (false, true) => Some(Reason::EncryptionOff { path }),
        _ => None,
    }
}

/// Whether the file on disk differs from `text`, the file as it would be rendered now. A file
/// written encrypted is compared by what anyone reads of it (its ciphertext differs on every
/// run, and the plan holds no identity): what its encrypted fields hold changes with the inputs,
/// which are judged apart. A file in sops's binary format has nothing readable to compare.
fn differs(spec: &Spec, r: &RenderSpec, on_disk: &[u8], text: &str) -> bool {
    if !render::is_sealed(spec, r) {
        return on_disk != text.as_bytes();
    }
    let disk_text = String::from_utf8_lossy(on_disk);
    match sops::readable(&disk_text) {
        Ok(view) => {
            let fields = render::encrypted_fields(text);
            sops::readable_of(text, Select::Keys(fields)).ok() != Some(view)
        }
        Err(_) => sops::recipients_of(&disk_text).is_err(),
    }
}

/// Why an encrypted rendered file is re-encrypted: it is encrypted to other recipients than
/// pki.toml declares (`found`, the file's, sorted).
fn recipients_changed(spec: &Spec, r: &RenderSpec, found: Option<Vec<String>>) -> Option<Reason> {
    let wanted = spec.encryption.as_ref()?.recipient_texts();
    if !render::is_sealed(spec, r) {
        return None;
    }
    let found = found?;
    let added = super::seal::missing_from(&wanted, &found);
    let removed = super::seal::missing_from(&found, &wanted);
    (!added.is_empty() || !removed.is_empty()).then(|| Reason::RecipientsChanged {
        path: r.path.clone(),
        added,
        removed,
    })
}

/// Keys granted to the template that are not here and will not be made (an external CA's): the
/// file could never be rendered, so say so now rather than fail in apply.
fn missing_secrets(cx: &Inputs<'_, '_>, r: &RenderSpec) -> Vec<Blocker> {
    let mut missing = Vec::new();
    for var in &r.secrets {
        let Some(&i) = r.bind.get(var) else { continue };
        let path = match &cx.spec.items[i].kind {
            ItemKind::Cert(c) => &c.key_path,
            ItemKind::KeyPair(kp) => &kp.private_path,
            ItemKind::Render(_) => continue,
        };
        let fate = &cx.known[i].fate;
        // A certificate that waits for its issuer's certificate gets its key when it is signed.
        let made_later = fate.new_key() || fate.awaits_csr();
        // A key encrypted at rest is here (its public key is known) though the plan never sees
        // it.
        if cx.current[i].key_spki.is_none() && !made_later && *fate != Fate::Blocked {
            missing.push(Blocker::SecretMissing {
                item: cx.spec.items[i].name.clone(),
                var: var.clone(),
                path: path.clone(),
            });
        }
    }
    missing
}

/// The file as it would be rendered now, from what is on disk, with placeholders for what apply
/// will make: this catches template errors before anything is written, and gives the new text
/// when nothing it reads changes.
fn preview(cx: &Inputs<'_, '_>, r: &RenderSpec) -> Result<String, String> {
    // What the render reads, each item as on disk unless it is rewritten; made when the context
    // asks for it (a copy of an item's material per question, none made in advance).
    let reads = inputs(cx.spec, r);
    let ctx = render::context(cx.spec, r, &|i| {
        if reads.contains(&i) && !cx.known[i].fate.rewritten() {
            cx.current[i].clone()
        } else {
            Material::default()
        }
    });
    render::render_owned(&cx.sources.templates, &r.template, ctx)
}

/// What a render reads: the items it is bound to, and the issuers of bound certificates (their
/// certificates are in `X.cert.chain` and `X.cert.bundle`), in id order.
fn inputs(spec: &Spec, r: &RenderSpec) -> Vec<ItemId> {
    let mut ids: Vec<ItemId> = Vec::new();
    for &i in r.bind.values() {
        let mut at = Some(i);
        while let Some(id) = at {
            if !ids.contains(&id) {
                ids.push(id);
            }
            at = spec.items[id].kind.as_cert().and_then(|c| c.issuer);
        }
    }
    ids.sort_unstable();
    ids
}

/// Whether the file reads the certificate of issuer `i`, which it is not bound to (through a
/// chain or bundle): rendered with two different stand-ins for that certificate, it differs.
/// A template that names no chain or bundle does not depend on the issuers of what it is bound to.
fn reads_certificate_of(cx: &Inputs<'_, '_>, r: &RenderSpec, i: ItemId) -> bool {
    let with = |probe: Option<&str>| {
        let material = |j: ItemId| {
            if j == i {
                Material {
                    cert_pem: probe.map(String::from),
                    ..Material::default()
                }
            } else {
                cx.current[j].clone()
            }
        };
        let ctx = render::context(cx.spec, r, &material);
        render::render_owned(&cx.sources.templates, &r.template, ctx).ok()
    };
    with(None) != with(Some("(the issuer's certificate)\n"))
}

/// Whether the step's diff is asked for and has a new text to show: a file rendered anew, in a
/// run with `--diff`.
fn wants_shown(cx: &Inputs<'_, '_>, step: &Step) -> bool {
    cx.diffs && matches!(step.action, Action::Create | Action::Render)
}

/// The file as a diff of this plan shows it: rendered whatever changes, redacted by provenance
/// (`render::render_shown`). What apply decides is `(known after apply)`, value by value: a
/// re-signed input's certificate, a new key; a key that stays is known (as its label).
fn shown(cx: &Inputs<'_, '_>, r: &RenderSpec) -> Option<String> {
    let material = |i: ItemId| {
        let fate = &cx.known[i].fate;
        let current = &cx.current[i];
        if fate.new_key() {
            Material::default()
        } else if fate.rewritten() {
            Material {
                key_pem: current.key_pem.clone(),
                key_spki: current.key_spki.clone(),
                public_pem: current.public_pem.clone(),
                ..Material::default()
            }
        } else {
            current.clone()
        }
    };
    render::render_shown(cx.spec, &cx.sources.templates, r, &material).ok()
}

/// Whether the file does not depend on the inputs that change (a template that names a
/// certificate's path but not its contents). When every changing input is complete on disk, and
/// rendering with its current contents gives the same text as with placeholders and as the file
/// holds, there is nothing to re-render.
fn unaffected(cx: &Inputs<'_, '_>, r: &RenderSpec, changed: &[ItemId], text: Option<&str>) -> bool {
    let complete = changed.iter().all(|&i| {
        let m = &cx.current[i];
        match &cx.spec.items[i].kind {
            ItemKind::Cert(_) => m.cert_pem.is_some() && m.key_pem.is_some(),
            ItemKind::KeyPair(_) => m.key_pem.is_some() && m.public_pem.is_some(),
            ItemKind::Render(_) => false,
        }
    });
    complete
        && text.is_some_and(|t| {
            let on_disk = cx
                .disk
                .obs(&r.path)
                .is_some_and(|f| f.bytes == t.as_bytes());
            let ctx = render::context(cx.spec, r, &|i| cx.current[i].clone());
            on_disk
                && render::render_owned(&cx.sources.templates, &r.template, ctx).as_deref() == Ok(t)
        })
}
