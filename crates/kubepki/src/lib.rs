//! kubepki: a declarative generator for a Kubernetes cluster's PKI.
//!
//! The pipeline, one module per stage, each stage's output the next one's input:
//!
//! ```text
//! pki.toml ─ config::parse ─> Raw ─ resolve ─> Spec ─┐
//! out/ ───── scan::observe ─> Observed ──────────────┼─ plan ─> Plan ─ apply ─> Built ─> files
//!                                                     └────────────── report ─> text
//! ```
//!
//! `config`, `resolve`, `graph`, `plan`, `render` and `report` never touch the filesystem, the
//! clock or the environment; `scan` only reads; `apply` (through `fsx`) is the only writer.
//! [`run`] wires the stages together; other repositories' xtasks call it (or `cli::main`).

pub mod apply;
pub mod cli;
pub mod config;
pub mod diag;
pub mod error;
pub mod fsx;
pub mod graph;
pub mod inventory;
pub mod issue;
pub mod layout;
pub mod plan;
pub mod render;
pub mod report;
pub mod resolve;
pub mod scan;
pub mod spec;
pub mod x509;

use std::collections::BTreeSet;
use std::path::PathBuf;

use time::OffsetDateTime;

pub use error::Error;

/// Everything a run needs, explicit: paths are absolute or relative to the caller's working
/// directory (the CLI makes them relative to the repository root), and `now` is given.
#[derive(Debug, Clone)]
pub struct Options {
    pub spec_file: PathBuf,
    pub templates_dir: PathBuf,
    pub out_dir: PathBuf,
    /// Plan and report only; write nothing.
    pub check: bool,
    /// Print unified diffs of what changes.
    pub diff: bool,
    /// Delete files in the output folder that pki.toml does not declare.
    pub prune: bool,
    /// Items to give new keys.
    pub rekey: BTreeSet<String>,
    pub now: OffsetDateTime,
    pub color: bool,
}

/// What a run did or would do.
#[derive(Debug)]
pub struct Outcome {
    /// The report for the user (plan, diffs, summary).
    pub text: String,
    /// Whether anything was, or in `--check` mode would be, changed.
    pub changed: bool,
}

/// Parses and resolves pki.toml (with the templates it names).
pub fn load(sources: &scan::Sources) -> Result<spec::Spec, Error> {
    let fail = |diagnostics: Vec<diag::Diagnostic>| {
        let file = sources.spec_path.clone();
        let rendered = diag::render(&file, &sources.spec_text, &diagnostics);
        Error::Spec {
            file,
            rendered,
            diagnostics,
        }
    };
    // Every problem of the file in one run: what parsed despite errors is resolved too.
    let (raw, mut diags) = config::parse_partial(&sources.spec_text);
    let Some(raw) = raw else {
        return Err(fail(diags));
    };
    match resolve::resolve(&raw, (&sources.templates, &sources.unusable_templates)) {
        Ok(spec) if diags.is_empty() => return Ok(spec),
        Ok(_) => {}
        Err(more) => diags.extend(more),
    }
    diags.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
    Err(fail(diags))
}

/// Runs the whole pipeline.
pub fn run(opts: &Options) -> Result<Outcome, Error> {
    let sources = scan::read_sources(&opts.spec_file, &opts.templates_dir)?;
    let spec = load(&sources)?;
    let _lock = if opts.check {
        None
    } else {
        Some(fsx::lock(&opts.out_dir)?)
    };
    let observed = scan::observe(&opts.out_dir)?;
    let plan_opts = plan::Options {
        rekey: opts.rekey.clone(),
    };
    let plan = plan::plan(&spec, &sources, &observed, opts.now, &plan_opts);
    let style = report::Style { color: opts.color };
    let mut text = report::plan_text(&spec, &plan, style);
    if !plan.problems.is_empty() {
        return Err(Error::Blocked(plan.problems.clone()));
    }
    let out = scan::shown(&opts.out_dir);
    if opts.check {
        if opts.diff {
            text.push_str(&report::diff_text(
                &report::planned_diffs(&spec, &plan, &observed),
                style,
            ));
        }
        let changed = !plan.changes_nothing(opts.prune);
        if changed {
            // The command that carries out this very plan.
            let mut flags = String::new();
            if opts.prune {
                flags.push_str(" --prune");
            }
            if !opts.rekey.is_empty() {
                flags.push_str(" --rekey");
                for name in &opts.rekey {
                    flags.push(' ');
                    flags.push_str(name);
                }
            }
            text.push_str(&format!("{out}/ is stale: run `cargo xtask pki{flags}`\n"));
        } else {
            text.push_str(&format!("{out}/ is up to date\n"));
        }
        for t in &observed.temps {
            text.push_str(&format!(
                "note: {out}/{t} is a temporary file of an interrupted run; the next run removes it\n"
            ));
        }
        return Ok(Outcome { text, changed });
    }
    // What an interrupted run (killed mid-write) left: never taken for real files. This run holds
    // the lock, so no other run is writing them.
    for t in apply::remove_temps(&opts.out_dir, &observed)? {
        text.push_str(&format!(
            "removed {out}/{t}: a temporary file of an interrupted run\n"
        ));
    }
    if plan.changes_nothing(opts.prune) {
        text.push_str(&format!("{out}/ is up to date; nothing written\n"));
        return Ok(Outcome {
            text,
            changed: false,
        });
    }
    let built = apply::build(&spec, &sources, &observed, &plan, opts.now)?;
    let written = apply::write(&opts.out_dir, &spec, &observed, &plan, &built, opts.prune)?;
    if opts.diff {
        text.push_str(&report::diff_text(&built.diffs, style));
    }
    for name in &built.clamped {
        text.push_str(&format!(
            "note: {name}: notAfter cut to its issuer's notAfter (a leaf never outlives its CA)\n"
        ));
    }
    text.push_str(&format!(
        "wrote {} file{}, fixed {} mode{}, removed {} orphan{} in {out}/\n",
        written.written.len(),
        if written.written.len() == 1 { "" } else { "s" },
        written.modes_fixed.len(),
        if written.modes_fixed.len() == 1 {
            ""
        } else {
            "s"
        },
        written.removed.len(),
        if written.removed.len() == 1 { "" } else { "s" },
    ));
    Ok(Outcome {
        text,
        changed: true,
    })
}
