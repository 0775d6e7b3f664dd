//! Rendering artifacts from handlebars templates: strict (a missing variable is an error), with
//! HTML escaping off (the `=` of base64 must stay `=`). Pure: templates come in as text.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use handlebars::{Handlebars, handlebars_helper};
use serde_json::{Value, json};

use crate::spec::{ItemId, ItemKind, RenderSpec, Spec};
use crate::x509::{self, CertFacts};

/// What a template may see of one item. Filled from disk, or from what apply just made.
#[derive(Clone, Default)]
pub struct Material {
    pub cert_pem: Option<String>,
    pub cert: Option<CertFacts>,
    pub key_pem: Option<String>,
    /// The public key (SubjectPublicKeyInfo DER) of `key_pem`, for fingerprints.
    pub key_spki: Option<Vec<u8>>,
    pub public_pem: Option<String>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Material { [key material elided] }")
    }
}

/// The fields a rendered file that holds a key encrypts under `[encryption]`: a kubeconfig
/// (`kind: Config`) its `client-key-data`, so the rest stays reviewable; any other Kubernetes
/// manifest (a TLS Secret) its `data` and `stringData`, Flux's convention, so `apiVersion`, `kind`
/// and `metadata` stay readable and Flux applies it as it is.
pub fn encrypted_fields(text: &str) -> &'static [&'static str] {
    if text.lines().any(|l| l.trim_end() == "kind: Config") {
        &["client-key-data"]
    } else {
        &["data", "stringData"]
    }
}

/// Whether the rendered file is written encrypted: pki.toml has `[encryption]` and the template
/// is granted a key (`secrets`).
pub fn is_sealed(spec: &Spec, r: &RenderSpec) -> bool {
    spec.encryption.is_some() && !r.secrets.is_empty()
}

/// A rendered file on disk as a diff shows it: an encrypted one as what anyone reads of it
/// (`sops::readable`), never its ciphertext, which differs on every run.
pub fn on_disk_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match crate::sops::readable(&text) {
        Ok(view) => view,
        Err(_) if crate::sops::recipients_of(&text).is_ok() => "(encrypted)\n".to_string(),
        Err(_) => text.into_owned(),
    }
}

/// The new side of an encrypted rendered file's diff, in the layout its old side has (sops's):
/// what anyone will read of it once written.
pub fn sealed_shown(shown: &str) -> String {
    crate::sops::readable_of(shown, crate::sops::Select::Keys(encrypted_fields(shown)))
        .unwrap_or_else(|_| shown.to_string())
}

/// Placeholder for values a dry run cannot know yet (a certificate that apply will make).
pub const PENDING: &str = "(known after apply)";

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

handlebars_helper!(base64_helper: |s: str| b64(s));
/// The widest `indent` a template may ask for: YAML and kubeconfigs nest a few levels, never
/// hundreds, and a huge width would exhaust memory.
pub const MAX_INDENT: u64 = 1024;

handlebars_helper!(indent_helper: |n: u64, s: str| {
    if n > MAX_INDENT {
        return Err(handlebars::RenderErrorReason::Other(format!(
            "`indent {n}`: the width is at most {MAX_INDENT}"
        ))
        .into());
    }
    let pad = " ".repeat(n as usize);
    s.lines().map(|l| if l.is_empty() { String::new() } else { format!("{pad}{l}") }).collect::<Vec<_>>().join("\n")
});
handlebars_helper!(quote_helper: |s: str| serde_json::to_string(s).unwrap_or_default());
handlebars_helper!(join_helper: |list: array, sep: str| {
    list.iter().map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())).collect::<Vec<_>>().join(sep)
});
handlebars_helper!(trim_helper: |s: str| s.trim().to_string());

/// A registry configured the way every template is rendered.
pub fn registry() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("base64", Box::new(base64_helper));
    hb.register_helper("indent", Box::new(indent_helper));
    hb.register_helper("quote", Box::new(quote_helper));
    hb.register_helper("join", Box::new(join_helper));
    hb.register_helper("trim", Box::new(trim_helper));
    hb
}

/// The templates folder's texts, each compiled at most once per run: the first render of a
/// template parses it into its own registry, and every later render (the plan's, apply's, a
/// diff's, on any thread) reuses that registry. A run with 1000 nodes renders one kubeconfig
/// template thousands of times; parsing it each time was a fifth of a no-op run.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    texts: BTreeMap<String, String>,
    compiled: BTreeMap<String, OnceLock<Compiled>>,
    compilations: std::sync::Arc<AtomicUsize>,
}

/// One template's registry, or why it does not compile (the message a render reports).
type Compiled = Result<Handlebars<'static>, String>;

impl Templates {
    /// Templates by path under the templates folder (with `/`), none compiled yet.
    pub fn new(texts: BTreeMap<String, String>) -> Templates {
        let compiled = texts.keys().map(|k| (k.clone(), OnceLock::new())).collect();
        Templates {
            texts,
            compiled,
            compilations: Default::default(),
        }
    }

    /// The texts, by path.
    pub fn texts(&self) -> &BTreeMap<String, String> {
        &self.texts
    }

    /// How many templates this run compiled so far: at most one compilation per template, which
    /// the tests check on large runs.
    pub fn compilations(&self) -> usize {
        self.compilations.load(Ordering::Relaxed)
    }

    /// The registry of `template` (compiled on first use), with its text.
    fn compiled(&self, template: &str) -> Result<(&Handlebars<'static>, &str), String> {
        let (Some(text), Some(cell)) = (self.texts.get(template), self.compiled.get(template))
        else {
            return Err(format!("template `{template}` not found"));
        };
        let compiled = cell.get_or_init(|| {
            self.compilations.fetch_add(1, Ordering::Relaxed);
            let mut hb = registry();
            hb.register_template_string(template, text)
                .map_err(|e| describe_template_error(template, text, &e))?;
            Ok(hb)
        });
        match compiled {
            Ok(hb) => Ok((hb, text)),
            Err(e) => Err(e.clone()),
        }
    }
}

impl From<BTreeMap<String, String>> for Templates {
    fn from(texts: BTreeMap<String, String>) -> Templates {
        Templates::new(texts)
    }
}

impl std::ops::Deref for Templates {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &BTreeMap<String, String> {
        &self.texts
    }
}

/// The context of one render. See the README for the documented shape.
pub fn context(spec: &Spec, r: &RenderSpec, material: &dyn Fn(ItemId) -> Material) -> Value {
    let mut ctx = serde_json::Map::new();
    ctx.insert("vars".into(), r.vars.clone());
    if let Some(n) = &r.node {
        let ips: Vec<String> = n.ips.iter().map(|i| i.to_string()).collect();
        ctx.insert(
            "node".into(),
            json!({ "name": n.name, "role": n.role, "ip": ips.first().cloned().unwrap_or_default(), "ips": ips }),
        );
    }
    for (var, &id) in &r.bind {
        let with_key = r.secrets.contains(var);
        ctx.insert(var.clone(), item_value(spec, id, material, with_key));
    }
    Value::Object(ctx)
}

/// A certificate's chain and bundle, from the certificates of the items `material` gives: the
/// chain is it followed by its issuers up to, not including, the self-signed root (what a TLS
/// server presents); the bundle is it followed by all its issuers, the root included (a CA file
/// `openssl verify -CAfile` accepts, and a trust bundle for Kubernetes' `--client-ca-file` and a
/// kubeconfig). `None` while one of them is not known yet. For a root, or a leaf signed by one,
/// the chain is its certificate alone; for a root its bundle too.
pub fn chain_and_bundle(
    spec: &Spec,
    id: ItemId,
    material: &dyn Fn(ItemId) -> Material,
) -> (Option<String>, Option<String>) {
    chain_and_bundle_of(spec, id, material(id).cert_pem, material)
}

/// `chain_and_bundle` of item `id` whose own certificate is `own` (what `material(id)` holds),
/// so a caller that has the item's material already does not make it again.
fn chain_and_bundle_of(
    spec: &Spec,
    id: ItemId,
    own: Option<String>,
    material: &dyn Fn(ItemId) -> Material,
) -> (Option<String>, Option<String>) {
    let mut chain = own;
    let mut bundle = chain.clone();
    let mut at = id;
    while let Some(up) = spec.items[at].kind.as_cert().and_then(|c| c.issuer) {
        let pem = material(up).cert_pem;
        let is_root = spec.items[up]
            .kind
            .as_cert()
            .is_some_and(|c| c.issuer.is_none());
        let append = |s: Option<String>| Some(s? + pem.as_deref()?);
        bundle = append(bundle);
        if !is_root {
            chain = append(chain);
        }
        at = up;
    }
    (chain, bundle)
}

/// A file as a diff shows it, redacted by provenance: rendered again with every private key and
/// certificate the render is bound to replaced by a label naming it (`key_label`, `cert_label`),
/// so whatever a helper makes of a key (quoted, base64, indented, trimmed) is made of its label,
/// never of the key. The base64 forms of a label (`X.key.b64`, `{{base64 X.key.b64}}`) are turned
/// back into the label, so the diff stays readable.
pub fn render_shown(
    spec: &Spec,
    templates: &Templates,
    r: &RenderSpec,
    material: &dyn Fn(ItemId) -> Material,
) -> Result<String, String> {
    let labelled = |id: ItemId| labelled(spec, id, material(id));
    let mut text = render_owned(templates, &r.template, context(spec, r, &labelled))?;
    for &id in r.bind.values() {
        let m = labelled(id);
        let (chain, bundle) = chain_and_bundle(spec, id, &labelled);
        for label in [m.key_pem, bundle, chain, m.cert_pem].into_iter().flatten() {
            // A chain's labels, one a line as text, share one line where base64 stood.
            let once = b64(&label);
            let flat = label.trim_end().replace('\n', " ");
            text = text.replace(&b64(&once), &flat).replace(&once, &flat);
        }
    }
    Ok(text)
}

/// The label a diff shows for the private key of item `name`.
pub fn key_label(name: &str) -> String {
    format!("[private key of {name} elided]")
}

/// The label a diff shows for a certificate: its item and the start of its SHA-256 fingerprint.
pub fn cert_label(name: &str, cert: &CertFacts) -> String {
    format!("[certificate {name}, sha256 {}]", &cert.fingerprint[..16])
}

/// `m` with its private key and certificate replaced by their labels (ending in a newline as the
/// PEM does, so the lines around them are the file's); what is not known yet stays unknown.
pub fn labelled(spec: &Spec, id: ItemId, m: Material) -> Material {
    let name = &spec.items[id].name;
    let like = |pem: &Option<String>, label: String| {
        pem.as_ref().map(|p| {
            if p.ends_with('\n') {
                label + "\n"
            } else {
                label
            }
        })
    };
    let cert_pem = match &m.cert {
        Some(cf) => like(&m.cert_pem, cert_label(name, cf)),
        None => None,
    };
    Material {
        key_pem: like(&m.key_pem, key_label(name)),
        cert_pem,
        ..m
    }
}

fn item_value(
    spec: &Spec,
    id: ItemId,
    material: &dyn Fn(ItemId) -> Material,
    with_key: bool,
) -> Value {
    let item = &spec.items[id];
    let m = &material(id);
    let mut v = serde_json::Map::new();
    v.insert("name".into(), json!(item.name));
    match &item.kind {
        ItemKind::Cert(c) => {
            let pem = m.cert_pem.clone().unwrap_or_else(|| PENDING.into());
            let facts = m.cert.as_ref();
            let (chain, bundle) = chain_and_bundle_of(spec, id, m.cert_pem.clone(), material);
            let pem_and_b64 = |p: Option<String>| json!({ "pem": p.clone().unwrap_or_else(|| PENDING.into()), "b64": b64_or_pending(p.as_deref()) });
            v.insert(
                "cert".into(),
                json!({
                    "pem": pem,
                    "b64": b64_or_pending(m.cert_pem.as_deref()),
                    "chain": pem_and_b64(chain),
                    "bundle": pem_and_b64(bundle),
                    "path": c.cert_path,
                    "key_path": c.key_path,
                    "subject": {
                        "cn": c.subject.cn.clone().unwrap_or_default(),
                        "o": c.subject.o,
                        "ou": c.subject.ou,
                        "text": c.subject.to_string(),
                    },
                    "dns": c.sans.dns,
                    "ips": c.sans.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                    "fingerprint": facts.map_or(PENDING.into(), |f| f.fingerprint.clone()),
                    "serial": facts.map_or(PENDING.into(), |f| f.serial.clone()),
                    "not_before": facts.map_or(PENDING.into(), |f| x509::fmt_time(f.not_before)),
                    "not_after": facts.map_or(PENDING.into(), |f| x509::fmt_time(f.not_after)),
                }),
            );
            if with_key {
                v.insert("key".into(), key_value(m, &c.key_path));
            }
        }
        ItemKind::KeyPair(k) => {
            let pem = m.public_pem.clone().unwrap_or_else(|| PENDING.into());
            v.insert(
                "public_key".into(),
                json!({ "pem": pem, "b64": b64_or_pending(m.public_pem.as_deref()), "path": k.public_path }),
            );
            if with_key {
                v.insert("key".into(), key_value(m, &k.private_path));
            }
        }
        ItemKind::Render(r) => {
            v.insert("path".into(), json!(r.path));
        }
    }
    Value::Object(v)
}

fn key_value(m: &Material, path: &str) -> Value {
    let pem = m.key_pem.clone().unwrap_or_else(|| PENDING.into());
    json!({ "pem": pem, "b64": b64_or_pending(m.key_pem.as_deref()), "path": path })
}

/// The base64 of a PEM, or the placeholder itself (never its base64) when it is not known yet.
fn b64_or_pending(pem: Option<&str>) -> String {
    pem.map_or_else(|| PENDING.into(), b64)
}

/// Renders `template` (its path under the templates folder) with `ctx`. Errors name the template,
/// the line and the cause.
pub fn render(templates: &Templates, template: &str, ctx: &Value) -> Result<String, String> {
    let (hb, text) = templates.compiled(template)?;
    let rendered = hb.render(template, ctx);
    finish(template, text, rendered)
}

/// `render` with a context the caller gives up: handlebars takes it as it is, where `render`
/// has it serialised into a copy first (a tenth of a kubeconfig's render). The same text.
pub fn render_owned(templates: &Templates, template: &str, ctx: Value) -> Result<String, String> {
    let (hb, text) = templates.compiled(template)?;
    let rendered = hb.render_with_context(template, &handlebars::Context::from(ctx));
    finish(template, text, rendered)
}

/// A render's outcome in the tool's words: its error described, its final newline kept.
fn finish(
    template: &str,
    text: &str,
    rendered: Result<String, handlebars::RenderError>,
) -> Result<String, String> {
    let rendered = rendered.map_err(|e| describe_render_error(template, text, &e))?;
    // Keep the template's final newline, which handlebars drops after a closing expression.
    if text.ends_with('\n') && !rendered.ends_with('\n') {
        return Ok(rendered + "\n");
    }
    Ok(rendered)
}

/// Where handlebars reports a problem (`line` and `col` 1-based), as a diagnostic shows it: the
/// caret under the whole `{{...}}` expression that starts there, or under one character.
fn expression_at(text: &str, line: usize, col: usize) -> crate::diag::Position {
    let src = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let col = col.max(1);
    let rest: String = src.chars().skip(col - 1).collect();
    let width = match rest.find("}}") {
        Some(end) if rest.starts_with("{{") => rest[..end + 2].chars().count(),
        _ => 1,
    };
    crate::diag::Position { line, col, width }
}

/// The helpers registered in [`registry`], by the name templates call them, with how they are
/// called; and handlebars' own block helpers.
const HELPERS: [(&str, &str); 5] = [
    ("base64", "{{base64 STRING}}"),
    ("indent", "{{indent WIDTH STRING}}"),
    ("quote", "{{quote STRING}}"),
    ("join", "{{join LIST SEPARATOR}}"),
    ("trim", "{{trim STRING}}"),
];
const BUILT_INS: [&str; 6] = ["if", "unless", "each", "with", "lookup", "eq"];

/// A rendering error of `template` (whose text is `text`) in the template's words: the message
/// line, and the snippet that shows where.
fn describe_render_error(template: &str, text: &str, e: &handlebars::RenderError) -> String {
    let file = format!("templates/{template}");
    let (what, help) = match e.reason() {
        handlebars::RenderErrorReason::MissingVariable(v) => {
            let var = v.as_deref().unwrap_or("?");
            // `X.key...` of a bound certificate or key pair exists only where pki.toml grants it.
            let is_key = var.split('.').nth(1) == Some("key");
            (
                format!("undefined variable `{var}` in template `{file}`"),
                if is_key {
                    "a private key is visible only to names listed in the render's `secrets` (a CA's also needs `allow-ca-key = true`)".to_string()
                } else {
                    "check the variable's spelling, or bind or define it in pki.toml".to_string()
                },
            )
        }
        handlebars::RenderErrorReason::HelperNotFound(name) => (
            format!("unknown helper `{name}` in template `{file}`"),
            unknown_helper_help(name),
        ),
        handlebars::RenderErrorReason::PartialNotFound(name) => (
            format!("unknown partial `{name}` in template `{file}`"),
            "partials (`{{> NAME}}`) are not available to templates here: write the text into the template itself".to_string(),
        ),
        handlebars::RenderErrorReason::ParamNotFoundForIndex(helper, _)
        | handlebars::RenderErrorReason::ParamNotFoundForName(helper, _)
        | handlebars::RenderErrorReason::ParamTypeMismatchForName(helper, _, _) => {
            let helper = helper.trim_end_matches("_helper");
            (
                format!("wrong arguments to `{helper}` in template `{file}`"),
                helper_usage(helper),
            )
        }
        other => (
            format!("template `{file}`: {other}"),
            "see the README's \"Templates\" section for what a template sees and the helpers it may call".to_string(),
        ),
    };
    let at = e
        .line_no
        .map(|line| expression_at(text, line, e.column_no.unwrap_or(1)));
    let lines = crate::diag::Lines::new(text);
    format!(
        "{what}\n{}",
        crate::diag::snippet(&file, &lines, at, Some(&help))
    )
}

/// The help for an unknown helper: the nearest known one, and every one there is.
fn unknown_helper_help(name: &str) -> String {
    let ours: Vec<&str> = HELPERS.iter().map(|(h, _)| *h).collect();
    let all = ours.iter().chain(BUILT_INS.iter()).copied();
    let list = format!(
        "helpers are {}, and handlebars' {}",
        crate::config::quote_list(&ours),
        crate::config::quote_list(&BUILT_INS)
    );
    match crate::diag::nearest(name, all) {
        Some(s) => format!("did you mean `{s}`? {list}"),
        None => list,
    }
}

/// How `helper` is called, for a call with the wrong arguments.
fn helper_usage(helper: &str) -> String {
    match HELPERS.iter().find(|(h, _)| *h == helper) {
        Some((_, usage)) => format!("call it as `{usage}`"),
        None => format!(
            "see handlebars' guide for `{helper}`: `{{{{#each LIST}}}}...{{{{/each}}}}`, `{{{{#if VALUE}}}}...{{{{/if}}}}`"
        ),
    }
}

/// A syntax error of `template` in the template's words: an unclosed `{{`, a block opened and
/// never closed or closed by another name.
fn describe_template_error(template: &str, text: &str, e: &handlebars::TemplateError) -> String {
    let file = format!("templates/{template}");
    let reported = e.pos().map(|(line, col)| expression_at(text, line, col));
    let (what, help, at) = match e.reason() {
        handlebars::TemplateErrorReason::MismatchingClosedHelper(open, close) => (
            format!("`{{{{#{open}}}}}` is closed by `{{{{/{close}}}}}`"),
            format!("close it with `{{{{/{open}}}}}`, or open `{{{{#{close}}}}}` before it"),
            reported,
        ),
        handlebars::TemplateErrorReason::InvalidSyntax(_) => match unclosed(text) {
            Some(Unclosed::Expression(at)) => (
                "this `{{` is not closed".to_string(),
                "close it with `}}` (and a `{{{` with `}}}`)".to_string(),
                Some(at),
            ),
            Some(Unclosed::Block(name, at)) => (
                format!("`{{{{#{name}}}}}` is never closed"),
                format!("close it with `{{{{/{name}}}}}`"),
                Some(at),
            ),
            None => (
                "invalid handlebars syntax".to_string(),
                "an expression is `{{NAME}}`, a block `{{#if NAME}}...{{/if}}`, a comment `{{! ... }}`".to_string(),
                reported,
            ),
        },
        other => (
            other.to_string(),
            "see the README's \"Templates\" section".to_string(),
            reported,
        ),
    };
    let lines = crate::diag::Lines::new(text);
    format!(
        "syntax error in template `{file}`: {what}\n{}",
        crate::diag::snippet(&file, &lines, at, Some(&help))
    )
}

/// What a template leaves open.
enum Unclosed {
    /// A `{{` without its `}}`, where it starts.
    Expression(crate::diag::Position),
    /// A `{{#NAME ...}}` block without its `{{/NAME}}`, where it starts.
    Block(String, crate::diag::Position),
}

/// The first `{{` of `text` that no `}}` closes, or else the innermost block left open.
fn unclosed(text: &str) -> Option<Unclosed> {
    let lines = crate::diag::Lines::new(text);
    let at = |offset: usize, width: usize| {
        let (line, col) = lines.line_col(offset);
        crate::diag::Position { line, col, width }
    };
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut rest = 0;
    while let Some(start) = text[rest..].find("{{").map(|i| rest + i) {
        let Some(len) = text[start..].find("}}") else {
            return Some(Unclosed::Expression(at(start, 2)));
        };
        let inner = text[start + 2..start + len].trim_start_matches(['~', '{']);
        // A `{{` inside another expression means the first was not closed on its own; a `{{{`
        // is closed by `}}}`.
        let triple_unclosed =
            text[start..].starts_with("{{{") && !text[start + len + 2..].starts_with('}');
        if inner.contains("{{") || triple_unclosed {
            return Some(Unclosed::Expression(at(start, 2)));
        }
        let name = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
        if let Some(block) = inner.strip_prefix('#') {
            open.push((name(block), start));
        } else if inner.starts_with('/') {
            open.pop();
        }
        rest = start + len + 2;
    }
    let (name, start) = open.pop()?;
    let width = text[start..]
        .find("}}")
        .map_or(2, |l| text[start..start + l + 2].chars().count());
    Some(Unclosed::Block(name, at(start, width)))
}
