//! The pull-request comment of a large cluster (`--format markdown`): however many nodes change,
//! it stays under GitHub's 65,536 characters, cut at whole rows and `<details>` blocks with a
//! line that says what was left out, and its Mermaid diagram draws the per-node instances of a
//! name as one node, which Mermaid's own parser reads.

use crate::plan_formats::{KUBECONFIG, mermaid, mermaid_block, mermaid_parse};
use crate::support::*;

/// The workers of the cluster: `n1` of `NODE_CHAIN`, then `n2` to `n120` (at most 254: their
/// addresses are `10.0.0.N`). 120 make 243 diffs, about four times what the comment holds; more
/// would only slow the test (a debug build takes some 8 s to make the diffs of 150).
const WORKERS: usize = 120;

/// GitHub refuses a comment longer than this many characters.
const GITHUB_LIMIT: usize = 65_536;

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-02T00:00:00Z";

/// `NODE_CHAIN` with `WORKERS` workers, a client certificate (read by the kubelet, so that the
/// restart plan has a line per node) and a kubeconfig each, made at `T0`.
fn cluster() -> Fixture {
    let mut spec = format!("{NODE_CHAIN}{KUBECONFIG}");
    spec = replace_once(
        &spec,
        "usage = [\"client\"]",
        "usage = [\"client\"]\nconsumers = [\"kubelet\"]",
    );
    for i in 2..=WORKERS {
        spec.push_str(&format!(
            "\n[[node]]\nname = \"n{i}\"\nips = [\"10.0.0.{i}\"]\nrole = \"worker\"\n"
        ));
    }
    let f = Fixture::new(&spec);
    let r = f.apply(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    f
}

/// `--check --format markdown --renew all`: every leaf certificate re-signed, every kubeconfig
/// re-rendered, on every node. The Markdown form holds the diffs with or without `--diff`;
/// `--diff` would only have the run make them twice (once for the text report it replaces),
/// which doubles this test's time in a debug build.
fn renew_all(f: &Fixture) -> String {
    let r = f.pki(&[
        "--check", "--format", "markdown", "--renew", "all", "--now", T1,
    ]);
    assert_eq!(r.code, 1, "{}", r.all());
    r.stdout
}

/// The number `… N more WHAT left out` states, if the comment has that line.
fn left_out(md: &str, what: &str) -> Option<usize> {
    let end = format!(" more {what} left out to keep this comment under GitHub's size limit;");
    md.lines()
        .find(|l| l.starts_with("… ") && l.contains(&end))
        .map(|l| l["… ".len()..l.find(&end).unwrap()].parse().unwrap())
}

#[test]
fn a_large_cluster_comment_fits_github_whole_blocks_and_a_grouped_tree() {
    let f = cluster();
    let md = renew_all(&f);
    let chars = md.chars().count();
    assert!(chars < GITHUB_LIMIT, "{chars} characters");
    assert!(
        md.len() <= kubepki::report::markdown::BUDGET,
        "{} bytes, over the budget",
        md.len()
    );
    assert!(
        md.starts_with("### kubepki: out/ is stale: run `cargo xtask pki --renew all`\n\n"),
        "{}",
        &md[..200]
    );

    // Every `<details>` is closed before the next opens, and each holds one whole diff.
    let mut open = false;
    for line in md.lines() {
        if line.starts_with("<details>") {
            assert!(!open, "a <details> inside another");
            open = true;
        } else if line == "</details>" {
            assert!(open, "a </details> without its <details>");
            open = false;
        }
    }
    assert!(!open, "the last <details> is never closed");
    assert_eq!(
        md.matches("```diff\n").count(),
        md.matches("<details>").count()
    );

    // The diffs are cut, and the line counts the rest: the server, then a certificate and a
    // kubeconfig per worker (`--renew all` keeps the CAs).
    let diffs = 1 + 2 * WORKERS;
    let shown = md.matches("<details>").count();
    assert!(shown > 0 && shown < diffs, "{shown} diffs shown");
    assert_eq!(left_out(&md, "diffs"), Some(diffs - shown), "{md}");
    assert!(
        md.contains("; `cargo xtask pki --renew all --check --diff` shows all.\n"),
        "{md}"
    );

    // The table and the restart plan take the room first: here whole, every row and every node.
    assert!(
        md.contains("| item | action | why |\n| --- | --- | --- |\n| `server` | re-sign |"),
        "{md}"
    );
    let rows = md.lines().filter(|l| l.starts_with("| `")).count();
    assert_eq!(
        rows, diffs,
        "a row per changed item: the server, two per worker"
    );
    assert!(
        md.lines()
            .filter(|l| l.starts_with("| "))
            .all(|l| l.ends_with(" |")),
        "every row whole"
    );
    assert_eq!(left_out(&md, "rows"), None);
    let restarts: Vec<&str> = md.lines().filter(|l| l.starts_with("- `n")).collect();
    assert_eq!(restarts.len(), 1, "the workers do the same: one line\n{md}");
    assert!(
        restarts[0].contains(&format!("({WORKERS} nodes, each in turn)")),
        "{}",
        restarts[0]
    );

    // The diagram comes whole, after the diffs, with the clients as one node, and Mermaid reads it.
    let block = mermaid_block(&md);
    assert!(md.ends_with("```\n"), "the diagram is last and closed");
    assert!(
        block.contains(&format!(
            "i1 --> i3[\"client@* ({WORKERS} nodes, {WORKERS} of {WORKERS} changed)\"]"
        )),
        "{block}"
    );
    assert!(!block.contains("client@n"), "{block}");
    assert_eq!(block.lines().count(), 7, "{block}");
    assert!(
        block.contains("class i2,i3 changed"),
        "the CAs kept, the leaves changed: {block}"
    );
    if let Some(parser) = mermaid() {
        let r = mermaid_parse(&parser, &block);
        assert_eq!(r.code, 0, "{}\n{block}", r.all());
        assert!(r.stdout.starts_with("ok flowchart"), "{}", r.stdout);
    }
}

/// A change on some nodes only: the grouped node says how many of its instances change.
#[test]
fn a_group_counts_its_changed_instances() {
    let f = cluster();
    for node in ["n7", "n9"] {
        std::fs::remove_file(f.path(&format!("nodes/{node}/client.crt"))).unwrap();
    }
    let r = f.pki(&["--check", "--format", "markdown", "--now", T1]);
    assert_eq!(r.code, 1, "{}", r.all());
    let block = mermaid_block(&r.stdout);
    assert!(
        block.contains(&format!(
            "i1 --> i3[\"client@* ({WORKERS} nodes, 2 of {WORKERS} changed)\"]"
        )),
        "{block}"
    );
    assert!(block.contains("class i3 changed"), "{block}");
    if let Some(parser) = mermaid() {
        let r = mermaid_parse(&parser, &block);
        assert_eq!(r.code, 0, "{}\n{block}", r.all());
    }
}
