//! The `pki` command line: flags to `Options`, `Outcome` to exit codes. The only clap user.
//!
//! Exit codes: 0 done (or, with `--check`, up to date); 1 with `--check`, something would change;
//! 2 an error (bad pki.toml, a damaged CA, a template error, I/O).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use time::{OffsetDateTime, UtcOffset};

use crate::{Clock, ClockSource, Error, Options, Skew};

/// Generate, check or update the cluster PKI declared in pki.toml.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Plan only and write nothing; exit 1 if out/ is not up to date (for CI).
    #[arg(long)]
    pub check: bool,
    /// Also print unified diffs of each certificate's decoded text and each rendered file (never key material).
    #[arg(long)]
    pub diff: bool,
    /// Delete files in the output folder that pki.toml does not declare.
    #[arg(long)]
    pub prune: bool,
    /// Give these items new keys (a CA's new key re-signs everything below it).
    #[arg(long, value_name = "NAME", num_args = 1..)]
    pub rekey: Vec<String>,
    /// The clock for planning and signing (RFC 3339, e.g. 2027-01-01T00:00:00Z). Defaults to
    /// SOURCE_DATE_EPOCH if set and not empty, else the current time.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Plan and sign at a SOURCE_DATE_EPOCH earlier than the system clock (refused without it:
    /// what is signed would be back-dated).
    #[arg(long)]
    pub allow_past_clock: bool,
    /// The spec file.
    #[arg(long, short = 'f', default_value = "pki.toml")]
    pub file: PathBuf,
    /// The output folder.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// The templates folder.
    #[arg(long, default_value = "templates")]
    pub templates: PathBuf,
    /// Something other than generating or checking: adopt a kubeadm tree, or start a pki.toml.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The `pki` subcommands; without one, `pki` generates or checks out/.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
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

/// Runs `pki` with paths relative to `root` (the repository root).
pub fn main(root: &Path, args: Args) -> ExitCode {
    let done = match &args.command {
        None => return generate(root, &args),
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
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", crate::report::error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// Plain `pki`: generate, or with `--check` compare.
fn generate(root: &Path, args: &Args) -> ExitCode {
    match options(root, args).and_then(|o| crate::run(&o).map(|r| (o, r))) {
        Ok((o, outcome)) => {
            print!("{}", outcome.text);
            if o.check && outcome.changed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("{}", crate::report::error_text(&e));
            ExitCode::from(2)
        }
    }
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
    // The one reading of the system clock: the run's clock is compared with it, never replaced.
    let now_utc = OffsetDateTime::now_utc();
    // Whole seconds, as certificates and every time this tool prints have them.
    let system = now_utc.replace_nanosecond(0).unwrap_or(now_utc);
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let (now, source) = clock(args.now.as_deref(), epoch.as_deref(), system)?;
    let clock = Clock { source, system };
    refuse_unconfirmed_past(now, &clock, args.allow_past_clock)?;
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    Ok(Options {
        spec_file: root.join(&args.file),
        templates_dir: root.join(&args.templates),
        out_dir: root.join(&args.out),
        check: args.check,
        diff: args.diff,
        prune: args.prune,
        rekey: args.rekey.iter().cloned().collect(),
        now,
        clock,
        color,
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
        (Some(t), _) => (parse_now(t)?, ClockSource::NowFlag, format!("--now `{t}`")),
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

/// `--now`'s time, as RFC 3339.
fn parse_now(t: &str) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).map_err(|e| {
        Error::Usage(format!(
            "--now `{t}` is not an RFC 3339 time ({e}); write e.g. 2027-01-01T00:00:00Z"
        ))
    })
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
