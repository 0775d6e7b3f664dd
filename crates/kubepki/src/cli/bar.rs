//! The command line's side of a run's progress: the plan printed as soon as it is made (before
//! keys are generated and files written, not after), and a progress bar on a terminal for a run
//! that goes on for more than `KUBEPKI_PROGRESS_AFTER` (a second by default).

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Phase, Progress};

/// How long a run goes on before its bar appears: a run that ends sooner shows none, so a quick
/// run's output is the same on a terminal as in a log.
pub(crate) const DEFAULT_AFTER: Duration = Duration::from_secs(1);

/// The environment variable that changes `DEFAULT_AFTER` (pki.toml's durations: `0s`, `5s`).
pub(crate) const AFTER_VAR: &str = "KUBEPKI_PROGRESS_AFTER";

/// Whether a run draws a progress bar: only on a terminal (stderr, where the bar goes), never
/// with `NO_COLOR` (a terminal that asks for plain output) or `--quiet`.
pub(crate) fn wanted(stderr_is_terminal: bool, no_color: bool, quiet: bool) -> bool {
    stderr_is_terminal && !no_color && !quiet
}

/// Prints the plan when it is made and, when asked for, draws the bar.
pub(crate) struct Console {
    /// How much of the report `planned` printed: the rest is printed when the run ends.
    printed: AtomicUsize,
    bar: Option<Bar>,
}

impl Console {
    /// A console that prints the plan early, with a bar drawn to `target` once the run has gone
    /// on for `after` (`None`: no bar).
    pub(crate) fn new(bar: Option<(Duration, fn() -> ProgressDrawTarget)>) -> Console {
        Console {
            printed: AtomicUsize::new(0),
            bar: bar.map(|(after, target)| Bar::new(after, target)),
        }
    }

    /// What `Outcome::text` holds beyond what was printed already.
    pub(crate) fn rest<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.printed.load(Ordering::SeqCst)..)
            .unwrap_or(text)
    }
}

impl Progress for Console {
    fn planned(&self, report: &str) {
        let mut out = std::io::stdout().lock();
        // A report that cannot be printed now is printed whole at the end (`rest`).
        if out
            .write_all(report.as_bytes())
            .and_then(|()| out.flush())
            .is_ok()
        {
            self.printed.store(report.len(), Ordering::SeqCst);
        }
        if let Some(bar) = &self.bar {
            bar.show_later();
        }
    }

    fn phase(&self, phase: Phase, total: u64) {
        if let Some(bar) = &self.bar {
            // The words first, then the count and total at once: a frame drawn between the two
            // calls shows the new phase over the old one's finished count, never one phase's
            // count under another's words.
            bar.bar.set_message(phase.doing());
            bar.bar.reset_eta();
            bar.bar.update(|state| {
                state.set_pos(0);
                state.set_len(total);
            });
        }
    }

    fn step(&self) {
        if let Some(bar) = &self.bar {
            bar.bar.inc(1);
        }
    }

    fn finished(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// A bar that stays hidden until the run has gone on for `after`, then draws to `target`.
struct Bar {
    bar: ProgressBar,
    after: Duration,
    target: fn() -> ProgressDrawTarget,
    /// Whether the run has finished, and the signal that wakes the thread waiting to show the bar.
    done: Arc<(Mutex<bool>, Condvar)>,
}

impl Bar {
    fn new(after: Duration, target: fn() -> ProgressDrawTarget) -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template(
            "{spinner} {msg:>15} [{bar:40}] {human_pos}/{human_len} {elapsed_precise} (eta {eta})",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        Bar {
            bar,
            after,
            target,
            done: Arc::new((Mutex::new(false), Condvar::new())),
        }
    }

    /// Waits `after` on another thread (no time: at once), then shows the bar unless the run has
    /// finished. The decision and the switch happen under the lock `finish` takes, so a bar is
    /// never shown after it was cleared.
    fn show_later(&self) {
        if self.after.is_zero() {
            self.bar.set_draw_target((self.target)());
            self.bar.enable_steady_tick(Duration::from_millis(100));
            return;
        }
        let (bar, after, target, done) = (
            self.bar.clone(),
            self.after,
            self.target,
            Arc::clone(&self.done),
        );
        std::thread::spawn(move || {
            let (lock, signal) = &*done;
            let Ok(finished) = lock.lock() else { return };
            let Ok((finished, _)) = signal.wait_timeout_while(finished, after, |f| !*f) else {
                return;
            };
            if !*finished {
                bar.set_draw_target(target());
                bar.enable_steady_tick(Duration::from_millis(100));
            }
        });
    }

    fn finish(&self) {
        let (lock, signal) = &*self.done;
        if let Ok(mut finished) = lock.lock() {
            *finished = true;
            self.bar.finish_and_clear();
        }
        signal.notify_all();
    }
}

/// A duration in pki.toml's syntax for `KUBEPKI_PROGRESS_AFTER`.
pub(crate) fn parse_after(value: &str) -> Result<Duration, String> {
    crate::spec::duration_seconds(value)
        .and_then(|secs| u64::try_from(secs).ok())
        .map(Duration::from_secs)
        .ok_or_else(|| {
            format!(
                "{AFTER_VAR} `{value}` is not a duration; write e.g. 0s (at once) or 5s (s, m, h, d, w, y)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    use indicatif::InMemoryTerm;
    use std::sync::OnceLock;

    /// The in-memory terminal the bars of these tests draw to (one per test binary: a draw
    /// target is made by a plain `fn`).
    fn term() -> &'static InMemoryTerm {
        static TERM: OnceLock<InMemoryTerm> = OnceLock::new();
        TERM.get_or_init(|| InMemoryTerm::new(4, 120))
    }

    fn in_memory() -> ProgressDrawTarget {
        ProgressDrawTarget::term_like(Box::new(term().clone()))
    }

    #[test]
    fn the_bar_shows_only_on_a_terminal_without_no_color_or_quiet() {
        assert!(wanted(true, false, false));
        assert!(!wanted(false, false, false), "piped");
        assert!(!wanted(true, true, false), "NO_COLOR");
        assert!(!wanted(true, false, true), "--quiet");
    }

    #[test]
    fn the_delay_is_a_duration_in_pki_tomls_words() {
        assert_eq!(parse_after("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_after("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_after("-1s").is_err(), "a negative delay");
        let bad = parse_after("soon").unwrap_err();
        assert!(
            bad.contains("KUBEPKI_PROGRESS_AFTER `soon` is not a duration"),
            "{bad}"
        );
    }

    /// One test draws on the shared terminal, so that no other test's bar mixes in: a bar that
    /// waits longer than its run draws nothing; one past its delay draws the phase, its count,
    /// and clears itself when the run finishes.
    #[test]
    fn a_bar_appears_after_its_delay_and_is_cleared_at_the_end() {
        let quick = Console::new(Some((Duration::from_secs(3600), in_memory)));
        quick.planned("");
        quick.phase(Phase::Keys, 3);
        quick.step();
        quick.finished();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(term().contents().trim(), "", "a quick run shows no bar");

        let slow = Console::new(Some((Duration::ZERO, in_memory)));
        slow.planned("");
        let bar = &slow.bar.as_ref().expect("a bar").bar;
        let shown = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !bar.is_hidden()
        });
        assert!(shown, "the bar is shown once its delay is over");
        slow.phase(Phase::Signing, 4);
        slow.step();
        slow.step();
        std::thread::sleep(Duration::from_millis(150));
        bar.tick();
        let drawn = term().contents();
        assert!(drawn.contains("signing"), "{drawn:?}");
        assert!(drawn.contains("2/4"), "{drawn:?}");
        slow.finished();
        assert_eq!(term().contents().trim(), "", "cleared at the end");
    }

    #[test]
    fn what_was_printed_early_is_not_printed_again() {
        let console = Console::new(None);
        console.printed.store(5, Ordering::SeqCst);
        assert_eq!(console.rest("plan\nwrote 3 files\n"), "wrote 3 files\n");
        assert_eq!(Console::new(None).rest("all\n"), "all\n");
    }
}
