//! The `pki` command line: flags to `Options`, `Outcome` to exit codes. The only clap user.
//!
//! Exit codes: 0 done (or, with `--check`, up to date); 1 with `--check`, something would change
//! (with `status --warn-within`, something expires within it); 2 an error (bad pki.toml, a
//! damaged CA, a template error, I/O).

mod bar;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use time::{OffsetDateTime, UtcOffset};

use crate::status::Format;
use crate::{Clock, ClockSource, Error, Options, Skew};

/// The kubepki crate's version, which `--version` prints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The common tasks, shown after `--help`'s list of flags.
const EXAMPLES: &str = "\
Examples:
  cargo xtask pki                             make or update out/ as pki.toml declares
  cargo xtask pki --check --diff              what would change, as a CI gate (exit 1 if stale)
  cargo xtask pki --rekey front-proxy-ca      a new key for a CA, re-signing what it signed
  cargo xtask pki --renew all                 re-sign every certificate but the CAs, keys kept
  cargo xtask pki --check --now +60d          what a run in 60 days would renew
  cargo xtask pki --check --format markdown   a pull-request comment: table, diffs, issuer tree
  cargo xtask pki status                      every certificate's expiry and renewal date
  cargo xtask pki status --warn-within 30d    exit 1 if anything expires within 30 days (cron, CI)
  cargo xtask pki status --format json        the same as JSON (schema_version 1; see README)
  cargo xtask deploy --node cp-1 --to DIR     one node's files, decrypted, as /etc/kubernetes";

/// Generate, check or update the cluster PKI declared in pki.toml.
#[derive(Debug, Clone, clap::Args)]
#[command(version = VERSION, after_help = EXAMPLES)]
pub struct Args {
    /// What to do instead of generating (none: make or update out/): read the status, adopt a
    /// kubeadm tree, or start a pki.toml.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Plan only and write nothing; exit 1 if out/ is not up to date (for CI).
    #[arg(long)]
    pub check: bool,
    /// Also print unified diffs of each certificate's decoded text and each rendered file (never key material).
    #[arg(long)]
    pub diff: bool,
    /// Delete files in the output folder that pki.toml does not declare.
    #[arg(long)]
    pub prune: bool,
    /// Re-sign these certificates now with the keys they have (`all`: every certificate but the
    /// CAs, as `kubeadm certs renew all`; name a CA to renew it too). A renewed CA keeps its key
    /// and subject, so what it signed stays valid.
    #[arg(long, value_name = "NAME", num_args = 1..)]
    pub renew: Vec<String>,
    /// How to print the plan: text, JSON (schema_version 1, schemas/plan.v1.json) or Markdown (a
    /// pull-request comment with a Mermaid issuer tree).
    #[arg(long, value_enum, default_value = "text")]
    pub format: crate::report::PlanFormat,
    /// Give these items new keys (a CA's new key re-signs everything below it).
    #[arg(long, value_name = "NAME", num_args = 1..)]
    pub rekey: Vec<String>,
    /// The clock for planning and signing: RFC 3339 (2027-01-01T00:00:00Z), a date (2027-01-01,
    /// midnight UTC) or a time relative to the system clock (+60d, -1h). Defaults to
    /// SOURCE_DATE_EPOCH if set and not empty, else the current time.
    #[arg(long, value_name = "TIME", global = true, allow_hyphen_values = true)]
    pub now: Option<String>,
    /// Plan and sign at a SOURCE_DATE_EPOCH earlier than the system clock (refused without it:
    /// what is signed would be back-dated).
    #[arg(long, global = true)]
    pub allow_past_clock: bool,
    /// The spec file.
    #[arg(long, short = 'f', default_value = "pki.toml", global = true)]
    pub file: PathBuf,
    /// The output folder.
    #[arg(long, default_value = "out", global = true)]
    pub out: PathBuf,
    /// The templates folder.
    #[arg(long, default_value = "templates", global = true)]
    pub templates: PathBuf,
    /// Print nothing but errors: no report and no progress bar (the exit code still tells).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

/// The `pki` subcommands; without one, `pki` generates or checks out/.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Every certificate's expiry and renewal date, from the certificates alone (no keys needed).
    Status(StatusArgs),
    /// Adopt an existing cluster: write pki.toml and out/ from a copy of a node's /etc/kubernetes.
    Import(ImportArgs),
    /// Write a commented pki.toml and its templates into a repository that has none.
    Init(crate::init::InitArgs),
}

/// `pki import`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// A copy of a kubeadm node's /etc/kubernetes (pki/ and the kubeconfigs).
    #[arg(long, value_name = "DIR")]
    pub from_kubeadm: PathBuf,
    /// The node's name; a pki.toml that lacks it gains it as another control-plane node.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Overwrite an existing pki.toml and out/.
    #[arg(long)]
    pub force: bool,
}

/// `pki status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Exit 1 if a certificate expires within this duration (pki.toml's syntax: 30d, 12h, 2w),
    /// or is missing or unreadable; 0 otherwise.
    #[arg(long, value_name = "DURATION")]
    pub warn_within: Option<String>,
    /// How to print it: a table, JSON (schema_version 1) or Prometheus textfile metrics.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Runs `pki` with paths relative to `root` (the repository root).
pub fn main(root: &Path, args: Args) -> ExitCode {
    let done = match &args.command {
        None => return generate(root, &args),
        Some(Command::Status(status_args)) => return status_main(root, &args, status_args),
        Some(Command::Import(i)) => options(root, &args).and_then(|run| {
            let from = root.join(&i.from_kubeadm);
            let (node, force) = (i.node.clone(), i.force);
            crate::import::import(&crate::import::Request {
                from,
                node,
                force,
                run,
            })
        }),
        Some(Command::Init(i)) => crate::init::init(root, &args, i),
    };
    match done {
        Ok(text) => {
            if !args.quiet {
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", crate::report::error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// Plain `pki`: generate, or with `--check` compare. The plan is printed as soon as it is made,
/// before the slow work, and a long run draws a progress bar on a terminal (`cli/bar.rs`).
fn generate(root: &Path, args: &Args) -> ExitCode {
    let run = |console: &Option<Arc<bar::Console>>| {
        let mut o = options(root, args)?;
        if let Some(c) = console {
            let progress: Arc<dyn crate::Progress> = c.clone();
            o.progress = crate::Observer::new(progress);
        }
        crate::run(&o).map(|outcome| (o.check, outcome))
    };
    match console(args).and_then(|c| run(&c).map(|done| (c, done))) {
        Ok((console, (check, outcome))) => {
            if !args.quiet {
                let rest = console
                    .as_ref()
                    .map_or(&*outcome.text, |c| c.rest(&outcome.text));
                print!("{rest}");
            }
            if check && outcome.changed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            if let (Error::BlockedPlan { document, .. }, false) = (&e, args.quiet) {
                print!("{document}");
            }
            eprintln!("{}", crate::report::error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// What prints the plan early and draws the bar: nothing with `--quiet`; a bar only on a
/// terminal without `NO_COLOR`, after `KUBEPKI_PROGRESS_AFTER`.
fn console(args: &Args) -> Result<Option<Arc<bar::Console>>, Error> {
    if args.quiet {
        return Ok(None);
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let wanted = bar::wanted(std::io::stderr().is_terminal(), no_color, args.quiet);
    let after = match std::env::var(bar::AFTER_VAR) {
        Ok(v) if !v.trim().is_empty() => bar::parse_after(v.trim()).map_err(Error::Usage)?,
        _ => bar::DEFAULT_AFTER,
    };
    let target: fn() -> indicatif::ProgressDrawTarget = indicatif::ProgressDrawTarget::stderr;
    let bar = wanted.then_some((after, target));
    Ok(Some(Arc::new(bar::Console::new(bar))))
}

/// The clock's range: from the Unix epoch to the year 9000, which leaves room for any validity
/// pki.toml accepts before X.509's last year, 9999.
fn earliest() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

fn latest() -> OffsetDateTime {
    time::Date::from_calendar_date(9000, time::Month::January, 1)
        .expect("a valid date")
        .midnight()
        .assume_utc()
}

/// The run's options from the command line, paths taken from `root`, the clock from `--now`,
/// `SOURCE_DATE_EPOCH` or the system.
pub fn options(root: &Path, args: &Args) -> Result<Options, Error> {
    let (now, clock) = read_clock(args)?;
    let color = color();
    Ok(Options {
        spec_file: root.join(&args.file),
        templates_dir: root.join(&args.templates),
        out_dir: root.join(&args.out),
        check: args.check,
        diff: args.diff,
        prune: args.prune,
        rekey: args.rekey.iter().cloned().collect(),
        renew: args.renew.iter().cloned().collect(),
        now,
        clock,
        color,
        format: args.format,
        identities: identities()?.into(),
        progress: crate::Observer::default(),
    })
}

/// The age identities in the environment, as sops reads them: the file `SOPS_AGE_KEY_FILE`
/// names, and the identities `SOPS_AGE_KEY` holds (both, when both are set). None is no error:
/// only a run that must decrypt a key needs one, and it says which. A malformed identity is an
/// error that names the variable and the line, never the text.
pub(crate) fn identities() -> Result<Vec<crate::sops::Identity>, Error> {
    let mut res = Vec::new();
    if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        res.extend(parse_identities("SOPS_AGE_KEY_FILE", &text)?);
    }
    if let Ok(text) = std::env::var("SOPS_AGE_KEY")
        && !text.trim().is_empty()
    {
        res.extend(parse_identities("SOPS_AGE_KEY", &text)?);
    }
    Ok(res)
}

fn parse_identities(var: &str, text: &str) -> Result<Vec<crate::sops::Identity>, Error> {
    crate::sops::Identity::parse_all(text).map_err(|e| Error::Usage(format!("{var}: {e}")))
}

/// The run's clock and the system clock it is compared with. This is the one reading of the
/// system clock: the run's clock is compared with it, never replaced.
fn read_clock(args: &Args) -> Result<(OffsetDateTime, Clock), Error> {
    let now_utc = OffsetDateTime::now_utc();
    // Whole seconds, as certificates and every time this tool prints have them.
    let system = now_utc.replace_nanosecond(0).unwrap_or(now_utc);
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let (now, source) = clock(args.now.as_deref(), epoch.as_deref(), system)?;
    let clock = Clock { source, system };
    refuse_unconfirmed_past(now, &clock, args.allow_past_clock)?;
    Ok((now, clock))
}

/// Colour on a terminal, unless `NO_COLOR` is set and not empty.
fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `pki status`: the status printed in its format; exit 1 when a `--warn-within` gate fails.
fn status_main(root: &Path, args: &Args, status_args: &StatusArgs) -> ExitCode {
    match status_text(root, args, status_args) {
        Ok((text, gate)) => {
            if !args.quiet {
                print!("{text}");
            }
            // Why the gate fails goes to stderr, so a cron job's mail or a CI log says it even
            // when the table goes elsewhere (or nowhere, with --quiet).
            if let Some(why) = &gate {
                eprintln!("{why}");
            }
            ExitCode::from(u8::from(gate.is_some()))
        }
        Err(e) => {
            eprintln!("{}", crate::report::error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// Reads pki.toml and the certificates of out/ (no lock: nothing is written), and judges them.
fn status_text(
    root: &Path,
    args: &Args,
    s: &StatusArgs,
) -> Result<(String, Option<String>), Error> {
    refuse_plan_flags(args)?;
    let warn_within = s
        .warn_within
        .as_deref()
        .map(parse_warn_within)
        .transpose()?;
    let (now, _) = read_clock(args)?;
    let sources = crate::scan::read_sources(&root.join(&args.file), &root.join(&args.templates))?;
    let spec = crate::load(&sources)?;
    let observed = crate::scan::observe(&root.join(&args.out))?;
    let certificates = crate::status::certificates_only(&spec, observed);
    let disk = crate::disk::decode(certificates, &crate::layout::key_companions(&spec));
    let status = crate::status::status(&spec, &disk, now, warn_within);
    let style = crate::report::Style { color: color() };
    let text = crate::status::render(&status, s.format, style);
    Ok((text, crate::status::gate_summary(&status)))
}

/// `status` reads and plans nothing: the plain command's flags would be silently ignored there,
/// so they are refused (`cargo xtask pki --check status` is not a check).
fn refuse_plan_flags(args: &Args) -> Result<(), Error> {
    let given: Vec<&str> = [
        ("--check", args.check),
        ("--diff", args.diff),
        ("--prune", args.prune),
        ("--rekey", !args.rekey.is_empty()),
        ("--renew", !args.renew.is_empty()),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "`status` only reads certificates; {} belong{} to `cargo xtask pki` without a subcommand",
        given.join(", "),
        if given.len() == 1 { "s" } else { "" }
    )))
}

/// `--warn-within`'s duration, in pki.toml's syntax.
fn parse_warn_within(d: &str) -> Result<time::Duration, Error> {
    crate::spec::parse_duration(d).ok_or_else(|| {
        Error::Usage(format!(
            "--warn-within `{d}` is not a duration; write e.g. 30d, 12h or 2w (s, m, h, d, w, y)"
        ))
    })
}

/// The run's clock and where it comes from: `--now` wins, then `SOURCE_DATE_EPOCH`, then the
/// system clock. An empty or blank `SOURCE_DATE_EPOCH` counts as unset: it names no time, and
/// an environment that clears a variable often leaves it empty. The clock must lie in the
/// supported range.
fn clock(
    now_flag: Option<&str>,
    epoch: Option<&str>,
    system: OffsetDateTime,
) -> Result<(OffsetDateTime, ClockSource), Error> {
    let epoch = epoch.map(str::trim).filter(|e| !e.is_empty());
    let (now, source, given) = match (now_flag, epoch) {
        (Some(t), _) => (
            parse_now(t, system)?,
            ClockSource::NowFlag,
            format!("--now `{t}`"),
        ),
        (None, Some(e)) => {
            let (now, secs) = parse_epoch(e)?;
            let given = format!("SOURCE_DATE_EPOCH `{e}`");
            (now, ClockSource::SourceDateEpoch(secs), given)
        }
        (None, None) => (system, ClockSource::System, "the system clock".into()),
    };
    // Certificates carry UTC times, and RFC 5280 picks UTCTime or GeneralizedTime by the UTC
    // year: an offset given on the command line must not leak into the encoding.
    match now
        .checked_to_offset(UtcOffset::UTC)
        .filter(|t| (earliest()..=latest()).contains(t))
    {
        Some(now) => Ok((now, source)),
        None => Err(out_of_range(&given)),
    }
}

/// `--now`'s time: RFC 3339, a date (midnight UTC), or `+`/`-` a duration from the system clock.
fn parse_now(t: &str, system: OffsetDateTime) -> Result<OffsetDateTime, Error> {
    if let Some(offset) = relative(t) {
        return system
            .checked_add(offset)
            .ok_or_else(|| out_of_range(&format!("--now `{t}`")));
    }
    if let Some(day) = plain_date(t) {
        return Ok(day.midnight().assume_utc());
    }
    // The parser's own complaint names its internals ("the 'year' component"): the message
    // says what the three accepted forms look like instead.
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).map_err(|_| {
        Error::Usage(format!(
            "--now `{t}` is not an RFC 3339 time, a date or a relative time; write e.g. 2027-01-01T00:00:00Z, 2027-01-01 or +60d"
        ))
    })
}

/// A plain date, `YYYY-MM-DD`, that names a day of the calendar.
fn plain_date(t: &str) -> Option<time::Date> {
    let mut parts = t.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !digits(y, 4) || !digits(m, 2) || !digits(d, 2) {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// A relative `--now` (`+60d`, `-1h`): a sign, then a duration in pki.toml's syntax.
fn relative(t: &str) -> Option<time::Duration> {
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    crate::spec::parse_duration(rest).map(|d| d * sign)
}

/// `SOURCE_DATE_EPOCH`'s time and its seconds. A whole number too large for any clock is out of
/// range, not "not a number".
fn parse_epoch(e: &str) -> Result<(OffsetDateTime, i64), Error> {
    let digits = e.strip_prefix('-').unwrap_or(e);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Usage(format!(
            "SOURCE_DATE_EPOCH `{e}` is not a number of seconds since 1970-01-01T00:00:00Z; set it to one (e.g. `1767225600`), or unset it to use the system clock"
        )));
    }
    let given = format!("SOURCE_DATE_EPOCH `{e}`");
    let secs = e.parse::<i64>().map_err(|_| out_of_range(&given))?;
    let now = OffsetDateTime::from_unix_timestamp(secs).map_err(|_| out_of_range(&given))?;
    Ok((now, secs))
}

/// A clock outside `earliest()..=latest()`; `given` says where it comes from.
fn out_of_range(given: &str) -> Error {
    Error::Usage(format!(
        "{given} is out of range: it lies outside the supported range, {} to {}",
        crate::x509::fmt_time(earliest()),
        crate::x509::fmt_time(latest())
    ))
}

/// A past clock the user did not choose is refused unless `--allow-past-clock` confirms it:
/// certificates signed at it are back-dated (a build environment's `SOURCE_DATE_EPOCH=315532800`
/// would sign CAs that expired in 1980), and a `--check` at it judges expiry at the wrong time.
/// `--now` is typed on the command line for this run: it is its own confirmation, and the
/// report's first line still says it.
fn refuse_unconfirmed_past(now: OffsetDateTime, clock: &Clock, allowed: bool) -> Result<(), Error> {
    let (ClockSource::SourceDateEpoch(secs), Skew::Past(by)) = (clock.source, clock.skew(now))
    else {
        return Ok(());
    };
    if allowed {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "SOURCE_DATE_EPOCH `{secs}` sets the clock to {}, {} before the system clock ({}): certificates signed at it would be back-dated, and expiry judged as of then; unset SOURCE_DATE_EPOCH (or set it empty) to use the system clock, or pass --allow-past-clock to plan and sign at that time on purpose",
        crate::x509::fmt_time(now),
        fmt_distance(by),
        crate::x509::fmt_time(clock.system)
    )))
}

/// A distance between clocks in its largest whole unit: `46 years`, `3 days`, `2 hours`.
fn fmt_distance(d: time::Duration) -> String {
    let (n, unit) = if d.whole_days() >= 365 {
        (d.whole_days() / 365, "year")
    } else if d.whole_days() >= 1 {
        (d.whole_days(), "day")
    } else if d.whole_hours() >= 1 {
        (d.whole_hours(), "hour")
    } else {
        (d.whole_minutes(), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}
