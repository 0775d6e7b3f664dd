//! The benchmark must keep working (it is how performance claims are made); no timing is asserted.
//! It runs here from the test build, a debug build, which it refuses without `--allow-debug`.

use crate::support::*;

#[test]
fn bench_runs_every_workload_and_peer_side_by_side() {
    let r = run(xtask().args([
        "bench",
        "--allow-debug",
        "--nodes",
        "2",
        "--scale",
        "1,2",
        "--leaves",
        "1",
        "--runs",
        "1",
    ]));
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("DEBUG build"), "{}", r.stdout);
    for row in [
        "kubepki ",
        "openssl script ",
        "openssl script, xargs -P cores",
        "keys only: openssl genpkey",
        "cold ",
        "no-op rerun",
        "--check, up to date",
        "one worker's address changed",
        "N = 1, cold",
        "N = 2, no-op",
    ] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no `{row}` row:\n{}", r.stdout));
        assert!(line.contains(" ["), "a median with its range: {line}");
    }
    assert!(r.stdout.contains("exponent"), "{}", r.stdout);
}

#[test]
fn bench_refuses_a_debug_build_and_bad_arguments() {
    let debug = run(xtask().args(["bench", "--runs", "1"]));
    assert_eq!(debug.code, 2, "{}", debug.all());
    assert!(debug.stderr.contains("debug build"), "{}", debug.all());
    let bad = run(xtask().args(["bench", "--allow-debug", "--runs", "0"]));
    assert_eq!(bad.code, 2, "{}", bad.all());
}
