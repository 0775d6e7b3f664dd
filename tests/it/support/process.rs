//! Child processes with deadlines: every process a test starts is owned by a guard that kills it
//! when dropped (also when the test panics), and every wait is bounded.

use std::io::{Read as _, Seek as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::Run;

/// Calls `f` every `every` until it returns a value; `None` once `limit` has passed without one.
/// `f` is always called at least once, and once more at the deadline's edge.
pub fn poll<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// A child process, killed (SIGKILL, by its PID) and reaped when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        Proc {
            child: cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for the process to exit, at most `limit`; `None` if it is still running then.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        poll(limit, Duration::from_millis(10), || {
            self.child.try_wait().ok().flatten()
        })
    }

    /// Kills the process by its PID and reaps it, waiting at most ten seconds (SIGKILL cannot be
    /// caught, so it ends at once). Never panics: it also runs while a test unwinds.
    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = self.child.kill();
        if self.wait_timeout(Duration::from_secs(10)).is_none() {
            eprintln!("process {} survived SIGKILL for 10 s", self.child.id());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` to its end with no stdin, at most `limit`. `Err` holds what it printed before it
/// was killed at the limit (code -1). Output goes through files, so no pipe can fill up and
/// block it, and no process it leaves behind can hold the reading open.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Result<Run, Run> {
    let mut out = tempfile::tempfile().expect("a temporary file");
    let mut err = tempfile::tempfile().expect("a temporary file");
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap());
    let mut p = Proc::spawn(cmd);
    let status = p.wait_timeout(limit);
    p.kill();
    let read = |f: &mut std::fs::File| {
        let mut bytes = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut bytes).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let run = Run {
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: read(&mut out),
        stderr: read(&mut err),
    };
    if status.is_some() { Ok(run) } else { Err(run) }
}
