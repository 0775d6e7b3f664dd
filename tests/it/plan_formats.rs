//! The plan's machine-readable forms (`--format json|markdown`): the JSON against its schema
//! (`schemas/plan.v1.json`) with its typed reasons, the text and Markdown forms pinned as
//! snapshots, no key material in any form, and the Markdown's Mermaid diagram judged by Mermaid's
//! own parser (`tests/tools/mermaid`, node and jsdom).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::*;

/// The clock the tree is made at, and the one the change is planned at.
const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-02T00:00:00Z";

/// Added to `NODE_CHAIN`: a kubeconfig per node that embeds the client's key, so the tree has
/// every kind of step a SAN change and a new node touch.
pub(crate) const KUBECONFIG: &str = r#"
[[render]]
name = "client.conf"
template = "kubeconfig.hbs"
for-each-node = "all"
path = "nodes/{node}/client.conf"
bind = { ca = "root-ca", client = "client" }
secrets = ["client"]
vars = { cluster = "test", server = "https://127.0.0.1:6443" }
"#;

/// A tree made at `T0`, then a second DNS name for the server and a second node in pki.toml.
fn changed() -> Fixture {
    let f = Fixture::new(&format!("{NODE_CHAIN}{KUBECONFIG}"));
    let r = f.apply(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    f.edit_spec(
        r#"dns = ["api.example"]"#,
        r#"dns = ["api.example", "b.example"]"#,
    );
    f.edit_spec(
        "[[ca]]\nname = \"root-ca\"",
        "[[node]]\nname = \"n2\"\nips = [\"10.0.0.2\"]\nrole = \"worker\"\n\n[[ca]]\nname = \"root-ca\"",
    );
    f
}

/// `pki --check --format FORMAT` at `T1`, which must say that out/ is stale.
fn check(f: &Fixture, format: &str) -> Run {
    let r = f.pki(&["--check", "--diff", "--format", format, "--now", T1]);
    assert_eq!(r.code, 1, "{}", r.all());
    r
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

fn schema() -> Value {
    parse(&std::fs::read_to_string(repo_root().join("schemas/plan.v1.json")).unwrap())
}

/// The object of `item` in a plan document.
fn item<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item"] == name)
        .unwrap_or_else(|| panic!("no item {name} in {doc:#}"))
}

#[test]
fn json_follows_its_schema_with_typed_reasons() {
    let f = changed();
    let doc = parse(&check(&f, "json").stdout);
    validate(&schema(), &doc, "$");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(
        (doc["check"].clone(), doc["changed"].clone()),
        (true.into(), true.into())
    );
    let server = item(&doc, "server");
    assert_eq!(server["action"], "re-sign");
    assert_eq!(server["changes"], serde_json::json!(["sans"]));
    let sans = &server["reasons"][0];
    assert_eq!(sans["kind"], "sans-changed");
    assert_eq!(sans["added"], serde_json::json!(["DNS:b.example"]));
    assert_eq!(sans["text"], "SANs changed: +DNS:b.example");
    let n2 = item(&doc, "client@n2");
    assert_eq!(
        (n2["action"].clone(), n2["new_key"].clone()),
        ("create".into(), true.into())
    );
    assert_eq!(n2["reasons"][0]["kind"], "new");
    assert_eq!(
        n2["files"],
        serde_json::json!(["nodes/n2/client.crt", "nodes/n2/client.key"])
    );
    assert_eq!(item(&doc, "root-ca")["action"], "keep");
    assert_eq!(doc["counts"]["create"], 2, "{doc:#}");

    // Applied with the same format: the document says it wrote, and the next one that it is done.
    let applied = parse(&f.apply(&["--format", "json", "--now", T1]).stdout);
    validate(&schema(), &applied, "$");
    assert_eq!(
        (applied["check"].clone(), applied["changed"].clone()),
        (false.into(), true.into())
    );
    let again = parse(&f.pki(&["--check", "--format", "json", "--now", T1]).stdout);
    assert_eq!(again["changed"], false);
    assert_eq!(again["counts"], serde_json::json!({"keep": 7}));
}

/// A run that problems stop still gives a bot its document, on stdout, with the problems in it
/// (the error goes to stderr, and the exit code is 2, as for the text form).
#[test]
fn a_blocked_run_prints_its_plan_with_the_problems() {
    let f = changed();
    std::fs::write(f.path("inter.key"), "not a key\n").unwrap();
    let before = f.hashes();
    let r = f.pki(&["--check", "--format", "json", "--now", T1]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("error: "), "{}", r.stderr);
    let doc = parse(&r.stdout);
    validate(&schema(), &doc, "$");
    assert_eq!(doc["blocked"], true);
    let problem = &doc["problems"][0];
    assert_eq!(problem["items"][0], "inter", "{doc:#}");
    assert!(problem["blocker"]["kind"].is_string(), "{doc:#}");
    assert!(
        r.stderr.contains(problem["text"].as_str().unwrap()),
        "the same words as the error line: {doc:#}\n{}",
        r.stderr
    );
    assert_eq!(item(&doc, "inter")["action"], "blocked");

    let md = f.pki(&["--format", "markdown", "--now", T1]);
    assert_eq!(md.code, 2, "{}", md.all());
    assert!(
        md.stdout
            .starts_with("### kubepki: 1 problem stops the run; nothing was written\n\n- :x: "),
        "{}",
        md.stdout
    );
    assert_eq!(f.hashes(), before, "nothing written");

    let unblocked = parse(&check(&changed(), "json").stdout);
    assert_eq!(
        (unblocked["blocked"].clone(), unblocked["problems"].clone()),
        (false.into(), serde_json::json!([]))
    );
}

#[test]
fn the_validator_refuses_what_the_plan_schema_forbids() {
    let f = changed();
    let doc = parse(&check(&f, "json").stdout);
    let mut bad = doc.clone();
    bad["items"][0]["action"] = "renew".into();
    assert!(!errors(&schema(), &bad, "$").is_empty());
    let mut bad = doc;
    bad["items"][0]["reasons"] = serde_json::json!([{"kind": "new"}]);
    assert!(
        !errors(&schema(), &bad, "$").is_empty(),
        "a reason without its text"
    );
}

#[test]
fn text_and_markdown_snapshots() {
    let f = changed();
    let text = check(&f, "text").stdout;
    snapshot("plan_formats_text", &f, &text);
    let md = check(&f, "markdown").stdout;
    snapshot("plan_formats_markdown", &f, &md);
    assert!(
        md.contains("<details><summary>server.crt</summary>"),
        "{md}"
    );
}

#[test]
fn no_key_material_in_any_format() {
    let f = changed();
    let keys = f.private_keys();
    assert!(!keys.is_empty());
    for format in ["text", "json", "markdown"] {
        let r = check(&f, format);
        assert_no_key_material(&format!("--check --format {format}"), &r.all(), &keys);
    }
    let r = f.apply(&["--diff", "--format", "markdown", "--now", T1]);
    assert_no_key_material("apply --format markdown", &r.all(), &f.private_keys());
}

#[test]
fn mermaid_parses_the_issuer_tree() {
    let Some(parser) = mermaid() else {
        return;
    };
    let f = changed();
    let md = check(&f, "markdown").stdout;
    let block = mermaid_block(&md);
    assert!(block.contains("i1 --> i2[\"server\"]"), "{block}");
    assert!(
        block.contains("class "),
        "no changed item is marked:\n{block}"
    );
    let r = mermaid_parse(&parser, &block);
    assert_eq!(r.code, 0, "{}\n{block}", r.all());
    assert!(r.stdout.starts_with("ok flowchart"), "{}", r.stdout);
    // The parser is Mermaid's: a broken diagram is refused.
    let broken = mermaid_parse(&parser, &block.replace("-->", "-- >["));
    assert_ne!(broken.code, 0, "{}", broken.all());
}

/// The one ```mermaid block of a Markdown text.
pub(crate) fn mermaid_block(md: &str) -> String {
    let start = md.find("```mermaid\n").expect("a mermaid block") + "```mermaid\n".len();
    let len = md[start..].find("```").expect("the block's end");
    md[start..start + len].to_string()
}

/// Mermaid's parser: `node` and the npm packages of tests/tools/mermaid (`npm ci` there), or a
/// skip (a failure under CI=true).
pub(crate) fn mermaid() -> Option<PathBuf> {
    let node = tool("node", "nodejs")?;
    let dir = repo_root().join("tests/tools/mermaid");
    if dir.join("node_modules/mermaid").is_dir() {
        let _ = node;
        return Some(dir.join("parse.mjs"));
    }
    let msg = "tests/tools/mermaid has no node_modules; run `npm ci --ignore-scripts` there";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg} (CI=true: missing tools fail the run)"
    );
    skip(msg);
    None
}

pub(crate) fn mermaid_parse(parser: &PathBuf, diagram: &str) -> Run {
    use std::io::Write as _;
    let mut child = Command::new("node")
        .arg(parser)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(diagram.as_bytes())
        .unwrap();
    Run::from(child.wait_with_output().unwrap())
}

#[track_caller]
fn snapshot(name: &str, f: &Fixture, text: &str) {
    guard_ci();
    transcript_settings(f).bind(|| insta::assert_snapshot!(name, text));
}
