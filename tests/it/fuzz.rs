//! Property tests: whatever text pki.toml holds, parsing, resolving and planning (on an empty
//! out/) never panic; they return errors, whose diagnostics point inside the input, and what they
//! accept keeps the promises of `spec::Spec`.
//!
//! The default number of cases per property is small, for CI. Run longer with, for example:
//! `PROPTEST_CASES=20000 cargo test --release --test it fuzz::`

use std::collections::{BTreeMap, BTreeSet};

use kubepki::diag::Diagnostic;
use kubepki::spec::ItemKind;
use kubepki::{config, diag, plan, report, resolve, scan};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::support::{fixtures, kubeadm_spec};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96);
    ProptestConfig {
        cases,
        // Failures are shrunk and printed; nothing is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The tests' templates (tests/fixtures/templates), and two more: one that reads variables, one that does
/// not parse.
fn templates() -> BTreeMap<String, String> {
    let mut t = BTreeMap::new();
    for e in std::fs::read_dir(fixtures().join("templates")).unwrap() {
        let e = e.unwrap();
        t.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read_to_string(e.path()).unwrap(),
        );
    }
    t.insert(
        "vars.hbs".into(),
        "{{vars.x}} {{node.name}} {{ca.cert.pem}}\n".into(),
    );
    t.insert("bad.hbs".into(), "{{#if}}\n".into());
    t
}

fn assert_spans(src: &str, diags: &[Diagnostic]) -> Result<(), TestCaseError> {
    prop_assert!(!diags.is_empty(), "an error without a diagnostic");
    for d in diags {
        if let Some(s) = &d.span {
            prop_assert!(
                s.start <= s.end && s.end <= src.len(),
                "span {s:?} outside the input ({} bytes): {}",
                src.len(),
                d.message
            );
        }
        prop_assert!(!d.message.is_empty());
    }
    // Rendering them (the caret lines) must not panic either.
    let text = diag::render("pki.toml", src, diags);
    prop_assert!(text.contains("nothing was written"));
    Ok(())
}

/// Parses, resolves and plans `src` as the tool does; checks errors and what is accepted.
fn exercise(src: &str) -> Result<(), TestCaseError> {
    let templates = templates();
    // The stages one by one.
    match config::parse(src) {
        Err(diags) => assert_spans(src, &diags)?,
        Ok(raw) => {
            if let Err(diags) = resolve::resolve(&raw, (&templates, &Default::default())) {
                assert_spans(src, &diags)?;
            }
        }
    }
    let (raw, diags) = config::parse_partial(src);
    if raw.is_none() {
        assert_spans(src, &diags)?;
    }
    // And as the tool wires them: every problem of the file at once.
    let sources = scan::Sources {
        spec_path: "pki.toml".into(),
        spec_text: src.to_string(),
        templates: templates.into(),
        unusable_templates: Default::default(),
    };
    let spec = match kubepki::load(&sources) {
        Ok(spec) => spec,
        Err(kubepki::Error::Spec { diagnostics, .. }) => return assert_spans(src, &diagnostics),
        Err(e) => return Err(TestCaseError::fail(format!("unexpected error: {e}"))),
    };
    assert_spec_promises(&spec)?;
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let disk = kubepki::disk::Disk::default();
    let p = plan::plan(&spec, &sources, &disk, now, &plan::Request::default());
    prop_assert_eq!(p.steps.len(), spec.items.len());
    for s in &p.steps {
        if !matches!(spec.items[s.item].kind, ItemKind::Render(_)) {
            prop_assert_eq!(s.action, plan::Action::Create, "on an empty out/");
        }
    }
    let _ = report::plan_text(&spec, &p, report::Style { color: false });
    // --rekey of names that exist and names that do not.
    let mut rekey: BTreeSet<String> = spec.items.iter().take(2).map(|i| i.name.clone()).collect();
    rekey.insert("no-such-item".into());
    let opts = plan::Request {
        rekey,
        out: "out".into(),
        diffs: true,
        renew: Default::default(),
    };
    let p = plan::plan(&spec, &sources, &disk, now, &opts);
    prop_assert!(
        p.problems
            .iter()
            .any(|m| m.to_string().contains("no-such-item"))
    );
    Ok(())
}

/// What `spec.rs` promises of a resolved spec.
fn assert_spec_promises(spec: &kubepki::spec::Spec) -> Result<(), TestCaseError> {
    let mut names = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for (id, item) in spec.items.iter().enumerate() {
        prop_assert!(names.insert(item.name.clone()), "duplicate {}", item.name);
        let own: Vec<&String> = match &item.kind {
            ItemKind::Cert(c) => {
                if let Some(i) = c.issuer {
                    prop_assert!(i < id, "{} is signed by a later item", item.name);
                    let issuer = spec.items[i].kind.as_cert();
                    prop_assert!(
                        issuer.is_some_and(|ic| ic.ca.is_some()),
                        "{} is signed by {}, which is not a CA",
                        item.name,
                        spec.items[i].name
                    );
                    let ic = issuer.unwrap();
                    prop_assert!(
                        c.validity <= ic.validity,
                        "{} outlives its issuer",
                        item.name
                    );
                }
                prop_assert!(
                    c.subject.cn.is_some() || !c.subject.o.is_empty() || !c.subject.ou.is_empty()
                );
                vec![&c.cert_path, &c.key_path]
            }
            ItemKind::KeyPair(k) => vec![&k.private_path, &k.public_path],
            ItemKind::Render(r) => {
                for &b in r.bind.values() {
                    prop_assert!(b < id, "{} reads a later item", item.name);
                }
                vec![&r.path]
            }
        };
        for p in own {
            prop_assert!(
                !p.is_empty()
                    && !p.starts_with('/')
                    && !p.split('/').any(|c| c == ".." || c.is_empty()),
                "path `{p}` of {} leaves the output folder",
                item.name
            );
            prop_assert!(paths.insert(p.clone()), "`{p}` has two owners");
        }
    }
    Ok(())
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Mostly one of `good`, now and then one of `bad`: most documents get far enough to meet the
/// later stages, and every kind of mistake still turns up.
fn g(good: Vec<String>, bad: &'static [&'static str]) -> BoxedStrategy<String> {
    let bad: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
    prop_oneof![24 => select(good), 1 => select(bad)].boxed()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    proptest::option::weighted(0.5, s).boxed()
}

const BAD_NAMES: &[&str] = &["", "x y", "n@m", "ca-0", "leaf-0", "kp-0"];
const BAD_PATHS: &[&str] = &[
    "ca-0.crt",
    "leaf-0.key",
    "../x.crt",
    "/etc/x.key",
    "",
    "dir/",
    "./y.crt",
    "a//b",
    "a\\b",
    "{node}.pem",
    "{node.ip}.pem",
    "{bad}.crt",
    "inventory.txt",
    ".kubepki.lock",
];
const BAD_DURATIONS: &[&str] = &[
    "0d",
    "-1d",
    "1 year",
    "",
    "99999999999y",
    "y",
    "1ß",
    "300y",
    "20y",
];
const BAD_ALGS: &[&str] = &["dsa", "", "rsa-1024"];
const BAD_IPS: &[&str] = &["10.0.0.256", "fe80::1%eth0", "x", "{node.ips}", "{node.ip}"];
const BAD_DNS: &[&str] = &["bad_name", "10.0.0.1", "", "-a.b", "ä.example", "{node}"];
const BAD_CNS: &[&str] = &["", "{node}", "{oops}", "{", "}{", "{node.ip}"];
const BAD_ROLES: &[&str] = &["boss", ""];
const BAD_USAGES: &[&str] = &["both", ""];
const BAD_TEMPLATES: &[&str] = &["missing.hbs", "bad.hbs", "../etc/passwd"];
/// Values of any type, for keys that do not expect them.
const ANY_VALUE: &[&str] = &[
    "1",
    "true",
    "[1, \"a\"]",
    "{ a = 1 }",
    "\"s\"",
    "1979-05-27",
    "[]",
];

/// Now and then a key of the table's own with a wrong value, a misspelt key, or one that belongs
/// to another kind of table.
fn stray() -> impl Strategy<Value = Option<(&'static str, &'static str)>> {
    proptest::option::weighted(
        0.04,
        (
            select(&["validty", "colour", "issuer", "name", "ips", "bind", "cert"][..]),
            select(ANY_VALUE),
        ),
    )
}

type Fields = Vec<(String, String)>;

fn table(header: &str, fields: Fields, extra: Option<(&str, &str)>) -> String {
    let mut s = format!("\n{header}\n");
    for (k, v) in fields {
        s.push_str(&format!("{k} = {v}\n"));
    }
    if let Some((k, v)) = extra {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

fn push(f: &mut Fields, key: &str, v: Option<String>) {
    if let Some(v) = v {
        f.push((key.into(), v));
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn alg() -> BoxedStrategy<Option<String>> {
    opt(g(
        strs(&["ecdsa-p256", "ed25519", "ECDSA-P384", "rsa-2048"]),
        BAD_ALGS,
    ))
}

fn node(i: usize) -> impl Strategy<Value = String> {
    (
        g(vec![format!("n-{i}")], &["n-0", "N_1", "", "*.x"]),
        vec(
            g(vec![format!("10.0.0.{i}"), format!("fd00::{i}")], BAD_IPS),
            0..=2,
        ),
        g(strs(&["control-plane", "worker"]), BAD_ROLES),
        stray(),
    )
        .prop_map(|(name, ips, role, extra)| {
            let f = vec![
                ("name".into(), quote(&name)),
                ("ips".into(), list(&ips)),
                ("role".into(), quote(&role)),
            ];
            table("[[node]]", f, extra)
        })
}

/// CA `i` of `n`: a root, or signed by any of the CAs (itself and later ones too: cycles).
fn ca(i: usize, n: usize) -> impl Strategy<Value = String> {
    let cas: Vec<String> = (0..n).map(|j| format!("ca-{j}")).collect();
    (
        (
            g(vec![format!("ca-{i}")], BAD_NAMES),
            proptest::option::weighted(0.3, g(cas, &["leaf-0", "nope", "kp-0"])),
            g(vec![format!("CA {i}")], BAD_CNS),
            opt(g(strs(&["10y", "87600h", "5y"]), BAD_DURATIONS)),
        ),
        (
            alg(),
            g(vec![format!("ca/ca-{i}.crt")], BAD_PATHS),
            g(vec![format!("ca/ca-{i}.key")], BAD_PATHS),
            proptest::option::weighted(0.2, prop_oneof![9 => 0i64..3, 1 => -1i64..300]),
        ),
        stray(),
    )
        .prop_map(
            |((name, issuer, cn, validity), (alg, cert, key, path_len), extra)| {
                let mut f = vec![("name".into(), quote(&name))];
                push(&mut f, "issuer", issuer.as_deref().map(quote));
                f.push(("cn".into(), quote(&cn)));
                push(&mut f, "validity", validity.as_deref().map(quote));
                push(&mut f, "algorithm", alg.as_deref().map(quote));
                push(&mut f, "path-len", path_len.map(|n| n.to_string()));
                f.push(("cert".into(), quote(&cert)));
                f.push(("key".into(), quote(&key)));
                table("[[ca]]", f, extra)
            },
        )
}

/// Leaf `i`, under one of `n` CAs, for one node, every node of a role, or none.
fn cert(i: usize, n: usize) -> impl Strategy<Value = String> {
    let cas: Vec<String> = (0..n.max(1)).map(|j| format!("ca-{j}")).collect();
    (
        (
            g(vec![format!("leaf-{i}")], BAD_NAMES),
            g(cas, &["leaf-0", "kp-0", "nope"]),
            proptest::option::weighted(
                0.3,
                prop_oneof![
                    g(strs(&["all", "control-plane", "worker"]), BAD_ROLES).prop_map(Ok),
                    vec(g(strs(&["n-0", "n-1"]), &["n-9", "N_1"]), 0..=2).prop_map(Err),
                ],
            ),
        ),
        (
            g(strs(&["x", "system:kube-proxy"]), BAD_CNS),
            vec(g(strs(&["system:nodes", "ops"]), &[""]), 0..=2),
            vec(
                g(strs(&["a.example", "*.example", "leaf.local"]), BAD_DNS),
                0..=2,
            ),
            vec(g(strs(&["10.0.0.1", "::1", "127.0.0.1"]), BAD_IPS), 0..=2),
        ),
        (
            vec(g(strs(&["server", "client"]), BAD_USAGES), 0..=2),
            alg(),
            opt(g(strs(&["30d", "1y", "8760h"]), BAD_DURATIONS)),
            opt(g(strs(&["7d", "720h"]), BAD_DURATIONS)),
        ),
        (
            g(vec![format!("leaf/{i}.crt")], BAD_PATHS),
            g(vec![format!("leaf/{i}.key")], BAD_PATHS),
            stray(),
        ),
    )
        .prop_map(
            move |(
                (name, issuer, nodes),
                (cn, o, mut dns, mut ips),
                (mut usage, alg, validity, renew),
                (mut cert, mut key, extra),
            )| {
                let mut f = vec![
                    ("name".into(), quote(&name)),
                    ("issuer".into(), quote(&issuer)),
                ];
                let mut cn = cn;
                match nodes {
                    Some(Ok(role)) => f.push(("for-each-node".into(), quote(&role))),
                    Some(Err(names)) => f.push(("nodes".into(), list(&names))),
                    None => {}
                }
                if f.len() == 3 {
                    // Per node: names and paths per node, so instances do not collide.
                    cn = format!("{cn}:{{node}}");
                    dns.push("{node}".into());
                    ips.push("{node.ips}".into());
                    cert = format!("nodes/{{node}}/{cert}");
                    key = format!("nodes/{{node}}/{key}");
                }
                if usage.is_empty() {
                    usage.push("client".into());
                }
                if usage.contains(&"server".to_string()) && dns.is_empty() {
                    dns.push("server.example".into());
                }
                f.push(("cn".into(), quote(&cn)));
                f.push(("o".into(), list(&o)));
                f.push(("dns".into(), list(&dns)));
                f.push(("ips".into(), list(&ips)));
                f.push(("usage".into(), list(&usage)));
                push(&mut f, "algorithm", alg.as_deref().map(quote));
                push(&mut f, "validity", validity.as_deref().map(quote));
                push(&mut f, "renew-before", renew.as_deref().map(quote));
                f.push(("cert".into(), quote(&cert)));
                f.push(("key".into(), quote(&key)));
                table("[[cert]]", f, extra)
            },
        )
}

fn keypair(i: usize) -> impl Strategy<Value = String> {
    (
        g(vec![format!("kp-{i}")], BAD_NAMES),
        alg(),
        g(vec![format!("kp/{i}.key")], BAD_PATHS),
        g(vec![format!("kp/{i}.pub")], BAD_PATHS),
        stray(),
    )
        .prop_map(|(name, alg, private, public, extra)| {
            let mut f = vec![("name".into(), quote(&name))];
            push(&mut f, "algorithm", alg.as_deref().map(quote));
            f.push(("private".into(), quote(&private)));
            f.push(("public".into(), quote(&public)));
            table("[[keypair]]", f, extra)
        })
}

/// Render `i`, binding names among `n_ca` CAs and `n_leaf` leaves.
fn render(i: usize, n_ca: usize, n_leaf: usize) -> impl Strategy<Value = String> {
    let items: Vec<String> = (0..n_ca.max(1))
        .map(|j| format!("ca-{j}"))
        .chain((0..n_leaf).map(|j| format!("leaf-{j}")))
        .collect();
    (
        (
            g(vec![format!("r-{i}")], BAD_NAMES),
            g(
                strs(&["vars.hbs", "./vars.hbs", "kubeconfig.hbs", "etcd.env.hbs"]),
                BAD_TEMPLATES,
            ),
            g(vec![format!("r/{i}.conf")], BAD_PATHS),
            proptest::option::weighted(0.2, g(strs(&["all", "worker"]), BAD_ROLES)),
        ),
        (
            vec(
                (
                    select(&["ca", "client", "cert", "server", "peer"][..]),
                    g(items, &["nope", "n-0"]),
                ),
                0..=3,
            ),
            vec(g(strs(&["client", "cert"]), &["ca", "x"]), 0..=1),
            proptest::bool::weighted(0.1),
            g(strs(&["v", "{node}"]), &["{oops}", "{node.ips}"]),
        ),
        stray(),
    )
        .prop_map(
            |((name, template, path, each), (bind, secrets, allow_ca_key, x), extra)| {
                let mut f = vec![
                    ("name".into(), quote(&name)),
                    ("template".into(), quote(&template)),
                ];
                let path = match &each {
                    Some(role) => {
                        f.push(("for-each-node".into(), quote(role)));
                        format!("nodes/{{node}}/{path}")
                    }
                    None => path,
                };
                f.push(("path".into(), quote(&path)));
                let bind: BTreeMap<&str, String> = bind.into_iter().collect();
                let secrets: Vec<String> = secrets
                    .into_iter()
                    .filter(|s| bind.contains_key(s.as_str()) || s == "x")
                    .collect();
                let bind: Vec<String> = bind
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", quote(v)))
                    .collect();
                f.push(("bind".into(), format!("{{ {} }}", bind.join(", "))));
                f.push(("secrets".into(), list(&secrets)));
                f.push(("allow-ca-key".into(), allow_ca_key.to_string()));
                f.push((
                    "vars".into(),
                    format!(
                        "{{ x = {}, dir = \"/etc\", server = \"s\", cluster = \"c\" }}",
                        quote(&x)
                    ),
                ));
                table("[[render]]", f, extra)
            },
        )
}

fn defaults() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        (
            alg(),
            opt(g(strs(&["30d", "1y"]), BAD_DURATIONS)),
            opt(g(strs(&["10y", "5y"]), BAD_DURATIONS)),
            opt(g(strs(&["7d"]), BAD_DURATIONS)),
            stray(),
        )
            .prop_map(|(alg, validity, ca_validity, renew, extra)| {
                let mut f = Vec::new();
                push(&mut f, "algorithm", alg.as_deref().map(quote));
                push(&mut f, "validity", validity.as_deref().map(quote));
                push(&mut f, "ca-validity", ca_validity.as_deref().map(quote));
                push(&mut f, "renew-before", renew.as_deref().map(quote));
                table("[defaults]", f, extra)
            }),
    )
}

/// A pki.toml-like document: random tables, keys and values, issuer graphs and paths.
fn document() -> impl Strategy<Value = String> {
    (0..3usize, 0..4usize, 0..6usize, 0..2usize, 0..3usize).prop_flat_map(
        |(n_nodes, n_ca, n_leaf, n_kp, n_render)| {
            (
                defaults(),
                (0..n_nodes).map(node).collect::<Vec<_>>(),
                (0..n_ca).map(|i| ca(i, n_ca)).collect::<Vec<_>>(),
                (0..n_leaf).map(|i| cert(i, n_ca)).collect::<Vec<_>>(),
                (0..n_kp).map(keypair).collect::<Vec<_>>(),
                (0..n_render)
                    .map(|i| render(i, n_ca, n_leaf))
                    .collect::<Vec<_>>(),
            )
                .prop_map(|(d, nodes, cas, certs, kps, renders)| {
                    let mut s = d.unwrap_or_default();
                    for t in nodes
                        .iter()
                        .chain(&cas)
                        .chain(&certs)
                        .chain(&kps)
                        .chain(&renders)
                    {
                        s.push_str(t);
                    }
                    s
                })
        },
    )
}

/// The kubeadm pki.toml (tests/fixtures/kubeadm) with a few random edits: near-valid input that
/// reaches every stage.
fn mutated_default() -> impl Strategy<Value = String> {
    let base = kubeadm_spec();
    let len = base.len();
    vec(
        (
            0..len,
            0..len,
            prop_oneof![Just(String::new()), "[a-z0-9\"=\\[\\]{}.,@ \n-]{1,12}"],
        ),
        1..4,
    )
    .prop_map(move |edits| {
        let mut s = base.clone().into_bytes();
        for (at, cut, insert) in edits {
            let at = at.min(s.len());
            let end = (at + cut % 24).min(s.len());
            s.splice(at..end, insert.into_bytes());
        }
        // Edits on byte positions may split a character; keep it text.
        String::from_utf8_lossy(&s).into_owned()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        exercise(&src)?;
    }

    #[test]
    fn toml_like_text_never_panics(src in "([\\[\\]a-z0-9 =\"{}.,#@_-]|\n){0,400}") {
        exercise(&src)?;
    }

    #[test]
    fn generated_documents_never_panic(src in document()) {
        exercise(&src)?;
    }

    #[test]
    fn edited_default_spec_never_panics(src in mutated_default()) {
        exercise(&src)?;
    }
}

#[test]
fn the_generators_reach_every_stage() {
    // The properties above mean little if every document failed to parse: some must resolve
    // and be planned, and some must fail in resolve rather than in the parser.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let templates = templates();
    let (mut resolved, mut refused) = (0, 0);
    // (Resolved here means with three items or more: an empty document proves nothing.)
    for _ in 0..300 {
        let src = document().new_tree(&mut runner).unwrap().current();
        let sources = scan::Sources {
            spec_path: "pki.toml".into(),
            spec_text: src.clone(),
            templates: templates.clone().into(),
            unusable_templates: Default::default(),
        };
        match (config::parse(&src), kubepki::load(&sources)) {
            (_, Ok(spec)) if spec.items.len() >= 3 => resolved += 1,
            (Ok(_), Err(_)) => refused += 1,
            _ => {}
        }
    }
    assert!(resolved >= 10, "only {resolved} of 300 documents resolved");
    assert!(
        refused >= 10,
        "only {refused} of 300 documents failed in resolve"
    );
}
