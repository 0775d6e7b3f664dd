//! Skipped tests, shown in a plain `cargo test`. libtest captures only what the print macros
//! (`eprintln!` and the like) write, and shows it only for failed tests, so a skip reported
//! with them is invisible. A skip here is written straight to the process's stderr instead,
//! once when it happens and once more, counted and named, after libtest's own summary.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Mutex, Once};

/// Test name -> why it was skipped.
static SKIPPED: Mutex<BTreeMap<String, Vec<String>>> = Mutex::new(BTreeMap::new());

/// Records that the running test is skipped because of `why`, and says so on stderr at once.
/// The test itself returns early; it is listed again when the binary exits.
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed thread)")
        .to_string();
    // A failed write to stderr has nowhere to be reported; the summary tries again.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
    SKIPPED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(test)
        .or_default()
        .push(why.to_string());
    static SUMMARY: Once = Once::new();
    SUMMARY.call_once(|| {
        // SAFETY: atexit is the C library's, called with a function of the type it takes; the
        // function never unwinds (it cannot panic: every result is ignored, and a poisoned
        // lock is read anyway).
        #[allow(unsafe_code)]
        let registered = unsafe { atexit(summary) };
        assert_eq!(registered, 0, "atexit refused the skip summary");
    });
}

#[allow(unsafe_code)]
unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

/// Runs when the test binary exits, after libtest printed its result line.
extern "C" fn summary() {
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let mut text = format!(
        "SKIPPED: {} test{} did not run (a tool is missing; CI=true makes that a failure):\n",
        skipped.len(),
        if skipped.len() == 1 { "" } else { "s" }
    );
    for (test, why) in skipped.iter() {
        text.push_str(&format!("    {test}: {}\n", why.join("; ")));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}
