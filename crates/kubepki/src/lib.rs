//! kubepki: a declarative generator for a Kubernetes cluster's PKI.
//!
//! The pipeline, one module per stage, each stage's output the next one's input:
//!
//! ```text
//! pki.toml ─ config::parse ─> Raw ─ resolve ─> Spec ────────────────┐
//! out/ ───── scan::observe ─> Observed ─ disk::decode ─> Disk ───────┼─ plan ─> Plan ─ apply ─> Built ─> files
//!                                                                     └────────────── report ─> text
//! ```
//!
//! `config`, `resolve`, `graph`, `disk`, `plan`, `render` and `report` never touch the filesystem,
//! the clock or the environment; `scan` only reads; `apply` (through `fsx`) is the only writer.
//! [`run`] wires the stages together; other repositories' xtasks call it (or `cli::main`).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

// The API an embedding xtask needs: `cli` (the whole command), or `run` with `Options`, and the
// types of what comes back.
pub mod cli;
pub mod deploy;

pub use diag::Diagnostic;
pub use error::Error;
pub use plan::{Blocker, Problem, Reason};
pub use progress::{Observer, Phase, Progress};

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
pub mod import;
pub mod init;
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
pub mod sops;
#[doc(hidden)]
pub mod spec;
#[doc(hidden)]
pub mod status;
#[doc(hidden)]
pub mod x509;

mod csr;
mod error;
mod fsx;
mod graph;
mod inventory;
mod issue;
mod progress;
#[doc(hidden)]
pub mod restarts;
#[cfg(test)]
mod testing;

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
    /// Certificates to re-sign now with the keys they have (names, base names, or `all`).
    pub renew: BTreeSet<String>,
    /// The clock for planning and signing.
    pub now: OffsetDateTime,
    /// Where `now` comes from, and the system clock it is compared with: a run whose clock is
    /// off says so on the first line of its report.
    pub clock: Clock,
    /// Colour the report (ANSI escapes).
    pub color: bool,
    /// How the plan is printed: text, JSON or Markdown (`--format`).
    pub format: report::PlanFormat,
    /// The age identities that open keys encrypted at rest (`[encryption]`), from
    /// `SOPS_AGE_KEY_FILE` or `SOPS_AGE_KEY`: only apply uses them, and only for the keys it
    /// uses; planning and `--check` need none.
    pub identities: std::sync::Arc<[sops::Identity]>,
    /// Who hears of the run's progress (none by default): the plan before the slow work starts,
    /// then each phase of it and each step.
    pub progress: Observer,
}

/// Where a run's clock comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    /// The system clock.
    System,
    /// `--now` on the command line: a clock the user typed.
    NowFlag,
    /// The `SOURCE_DATE_EPOCH` environment variable (its value as given): a clock the
    /// environment set, often without the user knowing.
    SourceDateEpoch(i64),
}

/// A run's clock: where it comes from, and the system clock read when it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Where `Options::now` comes from.
    pub source: ClockSource,
    /// The system clock, read at the same moment.
    pub system: OffsetDateTime,
}

/// How far a run's clock is from the system clock, beyond `spec::CLOCK_TOLERANCE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    /// Within the tolerance: as good as the system clock.
    None,
    /// Earlier than the system clock by this much: what is signed is back-dated.
    Past(time::Duration),
    /// Later than the system clock by this much: what is signed is not valid yet.
    Future(time::Duration),
}

impl Clock {
    /// The system clock at `system`, as a run that reads no other clock has it.
    pub fn system(system: OffsetDateTime) -> Clock {
        Clock {
            source: ClockSource::System,
            system,
        }
    }

    /// How far `now` is from the system clock. A clock within `spec::CLOCK_TOLERANCE` of it is
    /// taken as the system clock: what it signs is valid now and for all but a few minutes of
    /// its declared validity.
    pub fn skew(&self, now: OffsetDateTime) -> Skew {
        let off = now - self.system;
        if off.abs() <= spec::CLOCK_TOLERANCE {
            Skew::None
        } else if off.is_negative() {
            Skew::Past(-off)
        } else {
            Skew::Future(off)
        }
    }
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
    match resolve::resolve(
        &raw,
        (sources.templates.texts(), &sources.unusable_templates),
    ) {
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
    scan::check_out_dir(&opts.out_dir)?;
    let _lock = if opts.check {
        None
    } else {
        Some(fsx::lock(&opts.out_dir)?)
    };
    let texts = layout::text_files(&spec);
    let companions = layout::key_companions(&spec);
    let disk = disk::decode(scan::observe_declared(&opts.out_dir, &texts)?, &companions);
    let out = scan::shown(&opts.out_dir);
    let plan_opts = plan::Request {
        rekey: opts.rekey.clone(),
        renew: opts.renew.clone(),
        out: out.clone(),
        // The Markdown comment always shows the diffs, so the plan previews what they need.
        diffs: opts.diff || opts.format == report::PlanFormat::Markdown,
    };
    let plan = plan::plan(&spec, &sources, &disk, opts.now, &plan_opts);
    let decided = Decided {
        sources,
        spec,
        disk,
        plan,
        out,
    };
    let outcome = act(opts, &decided);
    dispose(decided);
    outcome
}

/// What a run read and decided, which reporting and applying only read.
struct Decided {
    sources: scan::Sources,
    spec: spec::Spec,
    disk: disk::Disk,
    plan: plan::Plan,
    /// The output folder as the report names it.
    out: String,
}

/// Frees what a run built on a thread of its own, so the run does not wait for it: at 5000 nodes
/// the decoded files, the spec and the plan take 8% of a no-op to free, and a command line's
/// process ends (and the system reclaims it all at once) before that thread is done.
fn dispose<T: Send + 'static>(t: T) {
    // A thread that cannot be started hands `t` back dropped here, as without this function.
    let _ = std::thread::Builder::new()
        .name("kubepki-dispose".into())
        .spawn(move || drop(t));
}

/// The clock of a check that looks ahead (`--now` later than the system clock): its plan is
/// what a run at that time would do.
fn later(opts: &Options) -> Option<OffsetDateTime> {
    let typed = opts.clock.source == ClockSource::NowFlag;
    matches!(opts.clock.skew(opts.now), Skew::Future(_))
        .then_some(opts.now)
        .filter(|_| typed)
}

/// Reports the plan and, unless it is a check or blocked, carries it out.
fn act(opts: &Options, d: &Decided) -> Result<Outcome, Error> {
    let (sources, spec, disk, plan, out) = (&d.sources, &d.spec, &d.disk, &d.plan, &d.out);
    let style = report::Style { color: opts.color };
    // The clock comes first: a plan made at another time than the present must say so before
    // anything else it says.
    let mut text = report::clock_line(opts.now, &opts.clock, opts.check);
    text.push_str(&report::plan_text(spec, plan, style));
    let restarts = restarts::restarts(spec, plan);
    let mut problems = plan.problems.clone();
    if opts.prune {
        problems.extend(plan.prune_problems(out));
    }
    if !problems.is_empty() {
        if opts.format != report::PlanFormat::Text {
            let changed = !plan.changes_nothing(opts.prune);
            let document = formatted(opts, spec, plan, &[], (changed, &problems));
            return Err(Error::BlockedPlan { problems, document });
        }
        return Err(Error::Blocked(problems));
    }
    if opts.check {
        return Ok(checked(opts, d, text, &restarts));
    }
    // What an interrupted run (killed mid-write) left: never taken for real files. This run holds
    // the lock, so no other run is writing them.
    let removed = apply::remove_temps(&opts.out_dir, disk)?;
    text.push_str(&report::removed_temps(out, &removed));
    apply::remove_answered_csrs(&opts.out_dir, plan)?;
    text.push_str(&report::removed_csrs(out, plan));
    if plan.changes_nothing(opts.prune) {
        text.push_str(&report::nothing_written(out, plan));
        if opts.format != report::PlanFormat::Text {
            text = formatted(opts, spec, plan, &[], (false, &[]));
        }
        return Ok(Outcome {
            text,
            changed: false,
        });
    }
    // Another format replaces the whole report at the end: nothing of it can be printed early,
    // but the display is told the slow work starts.
    let early = match opts.format {
        report::PlanFormat::Text => text.as_str(),
        _ => "",
    };
    opts.progress.planned(early);
    let settings = apply::Settings {
        now: opts.now,
        identities: &opts.identities,
        diffs: opts.diff,
        progress: &opts.progress,
    };
    let made = apply::build(spec, sources, disk, plan, &settings).and_then(|built| {
        let written = apply::write(
            &opts.out_dir,
            spec,
            disk,
            plan,
            &built,
            opts.prune,
            &opts.progress,
        )?;
        Ok((built, written))
    });
    opts.progress.finished();
    let (built, written) = made?;
    if opts.diff {
        text.push_str(&report::diff_text(&built.diffs, style));
    }
    text.push_str(&report::applied(out, &built.clamped, &written));
    text.push_str(&report::restarts::restart_text(&restarts, true));
    text.push_str(&report::restarts::new_key_warnings(spec, plan));
    text.push_str(&report::restarts::deploy_text(&restarts));
    if opts.format != report::PlanFormat::Text {
        text = formatted(opts, spec, plan, &built.diffs, (true, &[]));
    }
    Ok(Outcome {
        text,
        changed: true,
    })
}

/// A `--check`'s report: the plan so far (`text`), then what it shows of diffs and restarts, or
/// the plan in its `--format`; nothing is written.
fn checked(
    opts: &Options,
    d: &Decided,
    mut text: String,
    restarts: &[restarts::NodeRestarts],
) -> Outcome {
    let (spec, disk, plan, out) = (&d.spec, &d.disk, &d.plan, &d.out);
    let changed = !plan.changes_nothing(opts.prune);
    // Diffs are made once, for what shows them: the text report with `--diff`, or the Markdown
    // comment (always); JSON never holds a file's text.
    let diffs = match opts.format {
        report::PlanFormat::Markdown => report::planned_diffs(spec, plan, disk),
        report::PlanFormat::Text if opts.diff => report::planned_diffs(spec, plan, disk),
        _ => Vec::new(),
    };
    if opts.format != report::PlanFormat::Text {
        let text = formatted(opts, spec, plan, &diffs, (changed, &[]));
        return Outcome { text, changed };
    }
    if opts.diff {
        let style = report::Style { color: opts.color };
        text.push_str(&report::diff_text(&diffs, style));
    }
    text.push_str(&report::restarts::restart_text(restarts, false));
    text.push_str(&report::restarts::new_key_warnings(spec, plan));
    text.push_str(&report::check_summary(
        out,
        plan,
        changed,
        opts.prune,
        (&opts.rekey, &opts.renew),
        (&disk.temps, later(opts)),
    ));
    Outcome { text, changed }
}

/// The plan in a machine-readable `--format`, instead of the text report: what a `--check` would
/// change, or what the run changed, or (with problems) why the run stops.
fn formatted(
    opts: &Options,
    spec: &spec::Spec,
    plan: &plan::Plan,
    diffs: &[report::Diff],
    (changed, problems): (bool, &[Problem]),
) -> String {
    match opts.format {
        report::PlanFormat::Text => unreachable!("the text report is built by `run` itself"),
        report::PlanFormat::Json => {
            let run = report::json::Run {
                now: opts.now,
                check: opts.check,
                changed,
                problems,
            };
            report::json::plan_json(spec, plan, &run)
        }
        report::PlanFormat::Markdown => {
            let out = scan::shown(&opts.out_dir);
            let command = report::run_command(opts.prune, &opts.rekey, &opts.renew);
            let summary = report::markdown::Summary {
                out: &out,
                command: &command,
                check: opts.check,
                changed,
                problems,
            };
            report::markdown::plan_markdown(spec, plan, diffs, &summary)
        }
    }
}
