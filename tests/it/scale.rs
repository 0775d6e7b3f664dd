//! Work that grows with the size of the cluster, counted rather than timed: however many nodes,
//! each template is compiled once per run, and no diff is made (a diff renders a file a second
//! time and redacts it against every item) unless `--diff` asks for one. Times are measured by
//! `cargo xtask bench`, never asserted here.

use std::collections::BTreeSet;

use kubepki::spec::ItemKind;
use kubepki::{apply, disk, plan, scan};

use crate::support::*;

/// The shipped pki.toml with `extra` more workers, each with its kubelet certificates and two
/// kubeconfigs.
fn with_workers(extra: usize) -> Fixture {
    let mut spec = std::fs::read_to_string(repo_root().join("pki.toml")).unwrap();
    for i in 0..extra {
        spec.push_str(&format!(
            "\n[[node]]\nname = \"scale-{i}\"\nips = [\"10.9.{}.{}\"]\nrole = \"worker\"\n",
            i / 250,
            i % 250 + 1
        ));
    }
    Fixture::new(&spec)
}

/// Plans and builds the whole tree in memory (nothing on disk yet), with or without diffs.
fn plan_and_build(f: &Fixture, diffs: bool) -> (scan::Sources, plan::Plan, apply::Built) {
    let sources = f.sources();
    let spec = kubepki::load(&sources).unwrap();
    let empty = disk::decode(scan::Observed::default(), &Default::default());
    let now = time::OffsetDateTime::now_utc();
    let request = plan::Request {
        diffs,
        ..plan::Request::default()
    };
    let p = plan::plan(&spec, &sources, &empty, now, &request);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    let settings = apply::Settings {
        diffs,
        ..apply::Settings::at(now)
    };
    let built = apply::build(&spec, &sources, &empty, &p, &settings).unwrap();
    (sources, p, built)
}

/// The templates pki.toml uses, and how many files are rendered from them.
fn templates_and_renders(f: &Fixture) -> (usize, usize) {
    let spec = kubepki::load(&f.sources()).unwrap();
    let mut templates = BTreeSet::new();
    let mut renders = 0;
    for item in &spec.items {
        if let ItemKind::Render(r) = &item.kind {
            templates.insert(r.template.clone());
            renders += 1;
        }
    }
    (templates.len(), renders)
}

#[test]
fn each_template_is_compiled_once_however_many_nodes() {
    for extra in [0, 40] {
        let f = with_workers(extra);
        let (templates, renders) = templates_and_renders(&f);
        assert!(renders > 2 * extra, "the workers' kubeconfigs: {renders}");
        let (sources, _, built) = plan_and_build(&f, true);
        assert!(built.files.len() > renders);
        // The plan renders each file to check its template, apply renders it to write it and a
        // diff renders it again with labels: three renders per file, one compilation per template.
        assert_eq!(
            sources.templates.compilations(),
            templates,
            "{extra} more workers, {renders} rendered files"
        );
    }
}

#[test]
fn no_diff_is_made_unless_asked_for() {
    let f = with_workers(20);
    let (_, renders) = templates_and_renders(&f);
    let (_, p, built) = plan_and_build(&f, false);
    assert!(built.diffs.is_empty(), "{} diffs made", built.diffs.len());
    assert!(
        p.steps.iter().all(|s| s.shown.is_none()),
        "a diff's text was rendered"
    );

    let (_, p, built) = plan_and_build(&f, true);
    let shown = p.steps.iter().filter(|s| s.shown.is_some()).count();
    assert_eq!(shown, renders, "--diff shows every new rendered file");
    assert!(
        built.diffs.len() > renders,
        "and every certificate: {}",
        built.diffs.len()
    );
}
