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

#![warn(missing_docs, unreachable_pub)]

// The API an embedding xtask needs: `cli` (the whole command), or `run` with `Options`, and the
// types of what comes back.
pub mod cli;

pub use diag::Diagnostic;
pub use error::Error;
pub use plan::{Blocker, Problem, Reason};

// The stages themselves. Public for the repository's own tests (which drive them on in-memory
// inputs) and hidden from the documentation: they are not a stable API.
#[doc(hidden)]
pub mod apply;
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod diag;
#[doc(hidden)]
pub mod disk;
#[doc(hidden)]
pub mod layout;
#[doc(hidden)]
pub mod plan;
#[doc(hidden)]
pub mod render;
#[doc(hidden)]
pub mod report;
#[doc(hidden)]
pub mod resolve;
#[doc(hidden)]
pub mod scan;
#[doc(hidden)]
pub mod spec;
#[doc(hidden)]
pub mod x509;

mod csr;
mod error;
mod fsx;
mod graph;
mod inventory;
mod issue;

use std::collections::BTreeSet;
use std::path::PathBuf;

use time::OffsetDateTime;

/// Everything a run needs, explicit: paths are absolute or relative to the caller's working
/// directory (the CLI makes them relative to the repository root), and `now` is given.
#[derive(Debug, Clone)]
pub struct Options {
    /// pki.toml.
    pub spec_file: PathBuf,
    /// The folder of the templates pki.toml names.
    pub templates_dir: PathBuf,
    /// The output folder.
    pub out_dir: PathBuf,
    /// Plan and report only; write nothing.
    pub check: bool,
    /// Print unified diffs of what changes.
    pub diff: bool,
    /// Delete files in the output folder that pki.toml does not declare.
    pub prune: bool,
    /// Items to give new keys.
    pub rekey: BTreeSet<String>,
    /// The clock for planning and signing.
    pub now: OffsetDateTime,
    /// Colour the report (ANSI escapes).
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
    let disk = disk::decode(scan::observe(&opts.out_dir)?);
    let out = scan::shown(&opts.out_dir);
    let plan_opts = plan::Request {
        rekey: opts.rekey.clone(),
        out: out.clone(),
    };
    let plan = plan::plan(&spec, &sources, &disk, opts.now, &plan_opts);
    let style = report::Style { color: opts.color };
    let mut text = report::plan_text(&spec, &plan, style);
    if !plan.problems.is_empty() {
        return Err(Error::Blocked(plan.problems));
    }
    if opts.check {
        if opts.diff {
            let diffs = report::planned_diffs(&spec, &plan, &disk);
            text.push_str(&report::diff_text(&diffs, style));
        }
        let changed = !plan.changes_nothing(opts.prune);
        text.push_str(&report::check_summary(
            &out,
            &plan,
            changed,
            opts.prune,
            &opts.rekey,
            &disk.temps,
        ));
        return Ok(Outcome { text, changed });
    }
    // What an interrupted run (killed mid-write) left: never taken for real files. This run holds
    // the lock, so no other run is writing them.
    let removed = apply::remove_temps(&opts.out_dir, &disk)?;
    text.push_str(&report::removed_temps(&out, &removed));
    apply::remove_answered_csrs(&opts.out_dir, &plan)?;
    text.push_str(&report::removed_csrs(&out, &plan));
    if plan.changes_nothing(opts.prune) {
        text.push_str(&report::nothing_written(&out, &plan));
        return Ok(Outcome {
            text,
            changed: false,
        });
    }
    let built = apply::build(&spec, &sources, &disk, &plan, opts.now)?;
    let written = apply::write(&opts.out_dir, &spec, &disk, &plan, &built, opts.prune)?;
    if opts.diff {
        text.push_str(&report::diff_text(&built.diffs, style));
    }
    text.push_str(&report::applied(&out, &built.clamped, &written));
    Ok(Outcome {
        text,
        changed: true,
    })
}
