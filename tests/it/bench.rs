//! The benchmark must keep working (it is how performance claims are made); no timing is asserted.

use crate::support::*;

#[test]
fn bench_runs_every_peer_side_by_side() {
    let r = run(xtask().args([
        "bench",
        "--leaves",
        "3",
        "--runs",
        "1",
        "--algorithm",
        "ecdsa-p256",
    ]));
    assert_eq!(r.code, 0, "{}", r.all());
    for row in [
        "cargo xtask pki",
        "openssl script",
        "openssl script, xargs -P cores",
    ] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no `{row}` row:\n{}", r.stdout));
        assert!(line.trim_end().ends_with('x'), "{line}");
    }
    let bad = run(xtask().args(["bench", "--algorithm", "dsa"]));
    assert_eq!(bad.code, 2, "{}", bad.all());
}
