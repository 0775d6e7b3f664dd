//! The `pki` command line: flags to `Options`, `Outcome` to exit codes. The only clap user.
//!
//! Exit codes: 0 done (or, with `--check`, up to date); 1 with `--check`, something would change;
//! 2 an error (bad pki.toml, a damaged CA, a template error, I/O).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use time::{OffsetDateTime, UtcOffset};

use crate::{Error, Options};

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
    /// SOURCE_DATE_EPOCH if set, else the current time.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// The spec file.
    #[arg(long, short = 'f', default_value = "pki.toml")]
    pub file: PathBuf,
    /// The output folder.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// The templates folder.
    #[arg(long, default_value = "templates")]
    pub templates: PathBuf,
}

/// Runs `pki` with paths relative to `root` (the repository root).
pub fn main(root: &Path, args: Args) -> ExitCode {
    match options(root, &args).and_then(|o| crate::run(&o).map(|r| (o, r))) {
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
    let now = match (&args.now, std::env::var("SOURCE_DATE_EPOCH")) {
        (Some(t), _) => OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                Error::Usage(format!(
                    "--now `{t}` is not an RFC 3339 time ({e}); write e.g. 2027-01-01T00:00:00Z"
                ))
            })?,
        (None, Ok(epoch)) => epoch
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "SOURCE_DATE_EPOCH `{epoch}` is not a number of seconds"
                ))
            })?,
        (None, Err(_)) => OffsetDateTime::now_utc(),
    };
    // Certificates carry UTC times, and RFC 5280 picks UTCTime or GeneralizedTime by the UTC
    // year: an offset given on the command line must not leak into the encoding.
    let Some(now) = now
        .checked_to_offset(UtcOffset::UTC)
        .filter(|t| (earliest()..=latest()).contains(t))
    else {
        let given = match &args.now {
            Some(t) => format!("--now `{t}`"),
            None => format!(
                "SOURCE_DATE_EPOCH `{}`",
                std::env::var("SOURCE_DATE_EPOCH").unwrap_or_default()
            ),
        };
        return Err(Error::Usage(format!(
            "{given} is outside the supported range, {} to {}",
            crate::x509::fmt_time(earliest()),
            crate::x509::fmt_time(latest())
        )));
    };
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
        color,
    })
}
