//! What a run tells as it goes, for a progress display. The library never prints: a caller that
//! wants a progress bar (the command line draws one on a terminal, `cli/bar.rs`) gives `Options`
//! an [`Observer`], and `run` and `apply` call it at the moments a display needs.

use std::sync::Arc;

/// Hears of a run's progress. Every method has a default that does nothing, and each is called
/// from whichever thread did the work, so an implementation must be cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// The plan is made and the slow work (keys, signatures, renders, writes) is about to start.
    /// `report` is the report so far, the clock line and the plan, and `Outcome::text` will begin
    /// with exactly this text: a caller that prints it now prints only the rest at the end. Only
    /// a run that writes something calls it, and only for the text `--format`.
    fn planned(&self, report: &str) {
        let _ = report;
    }

    /// A phase of the slow work starts, with `total` steps to go.
    fn phase(&self, phase: Phase, total: u64) {
        let _ = (phase, total);
    }

    /// One more step of the current phase is done.
    fn step(&self) {}

    /// The slow work is over, done or failed. Called once after `planned`.
    fn finished(&self) {}
}

/// The phases of the slow work, in the order a run goes through them (a phase with nothing to do
/// is skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// New keys are generated (RSA keys are most of a large run's time).
    Keys,
    /// Certificates are signed, issuer level by issuer level.
    Signing,
    /// Templates are rendered from the final certificates and keys.
    Rendering,
    /// Files are written and made durable.
    Writing,
}

impl Phase {
    /// What the phase does, as a progress display says it.
    pub fn doing(self) -> &'static str {
        match self {
            Phase::Keys => "generating keys",
            Phase::Signing => "signing",
            Phase::Rendering => "rendering",
            Phase::Writing => "writing",
        }
    }
}

/// A [`Progress`] as `Options` hold it: none by default, and cheap to clone.
#[derive(Clone, Default)]
pub struct Observer(Option<Arc<dyn Progress>>);

/// An observer that hears nothing, for runs and builds without a display.
pub(crate) static NONE: Observer = Observer(None);

impl Observer {
    /// An observer that tells `progress` of the run.
    pub fn new(progress: Arc<dyn Progress>) -> Observer {
        Observer(Some(progress))
    }

    pub(crate) fn planned(&self, report: &str) {
        if let Some(p) = &self.0 {
            p.planned(report);
        }
    }

    /// Starts `phase` when it has anything to do.
    pub(crate) fn phase(&self, phase: Phase, total: usize) {
        if let (Some(p), 1..) = (&self.0, total) {
            p.phase(phase, total as u64);
        }
    }

    pub(crate) fn step(&self) {
        if let Some(p) = &self.0 {
            p.step();
        }
    }

    pub(crate) fn finished(&self) {
        if let Some(p) = &self.0 {
            p.finished();
        }
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(Some(..))"
        } else {
            "Observer(None)"
        })
    }
}
