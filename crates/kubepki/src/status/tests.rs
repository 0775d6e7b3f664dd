//! Status on in-memory trees: each case builds a tree with `apply::build` (no disk), changes its
//! files, and compares the table judged some time later; the decisions' edges are tested apart.

use super::*;
use crate::testing::{CHAIN, made_tree, sources, t0};

/// The spec and the tree it makes on an empty folder at `t0`, as `scan` would observe it.
fn tree() -> (Spec, Observed) {
    made_tree(&sources(CHAIN, &[]), false)
}

/// One case: how the tree changes after it is made, how much later status is read, with which
/// `--warn-within`, and the table and gate it must give.
struct Case {
    name: &'static str,
    disk: fn(&mut Observed),
    later: Duration,
    warn: Option<Duration>,
    fails: bool,
    expect: &'static str,
}

fn untouched(_: &mut Observed) {}

fn replace(obs: &mut Observed, path: &str, bytes: Vec<u8>) {
    obs.files.get_mut(path).expect("the file is there").bytes = bytes;
}

/// The table `case` gives, and whether its gate fails.
fn check(case: &Case) -> (String, bool) {
    let (spec, mut obs) = tree();
    (case.disk)(&mut obs);
    let disk = crate::disk::decode(
        certificates_only(&spec, obs),
        &crate::layout::key_companions(&spec),
    );
    let status = status(&spec, &disk, t0() + case.later, case.warn);
    let text = render(&status, Format::Text, Style { color: false });
    (text, gate_fails(&status))
}

/// The table of the tree as it was made (shared by cases that must not change it).
const FRESH: &str = "
status at 2027-01-15T08:00:00Z
ITEM    NODE  FILE        ISSUER  KEY         NOT AFTER             LEFT   RENEWS                EXTERNAL  STATE
root    -     root.crt    root    ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  no        ok
mid     -     mid.crt     root    ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  no        ok
server  -     server.crt  mid     ecdsa-p256  2028-01-15T08:00:00Z  365d   2027-12-16T08:00:00Z  no        ok
3 certificates: 0 expired, 0 expiring, 0 renew-due, 3 ok, 0 missing or unreadable
";

fn without_keys(obs: &mut Observed) {
    for key in ["root.key", "mid.key", "server.key", "sa.key"] {
        obs.files.remove(key).expect("the key is there");
    }
}

fn server_missing(obs: &mut Observed) {
    obs.files.remove("server.crt");
}

fn server_damaged(obs: &mut Observed) {
    replace(obs, "server.crt", b"garbage\n".to_vec());
}

fn mid_in_server_place(obs: &mut Observed) {
    let mid = obs.files["mid.crt"].bytes.clone();
    replace(obs, "server.crt", mid);
}

fn mid_missing(obs: &mut Observed) {
    obs.files.remove("mid.crt");
}

const CASES: &[Case] = &[
    Case {
        name: "fresh",
        disk: untouched,
        later: Duration::ZERO,
        warn: Some(Duration::days(30)),
        fails: false,
        expect: FRESH,
    },
    Case {
        name: "every key deleted: the same status",
        disk: without_keys,
        later: Duration::ZERO,
        warn: Some(Duration::days(30)),
        fails: false,
        expect: FRESH,
    },
    Case {
        name: "past the server's renewal date, outside the window",
        disk: untouched,
        later: Duration::days(340),
        warn: Some(Duration::days(20)),
        fails: false,
        expect: "
status at 2027-12-21T08:00:00Z
ITEM    NODE  FILE        ISSUER  KEY         NOT AFTER             LEFT   RENEWS                EXTERNAL  STATE
root    -     root.crt    root    ecdsa-p256  2037-01-12T08:00:00Z  3310d  2036-12-13T08:00:00Z  no        ok
mid     -     mid.crt     root    ecdsa-p256  2037-01-12T08:00:00Z  3310d  2036-12-13T08:00:00Z  no        ok
server  -     server.crt  mid     ecdsa-p256  2028-01-15T08:00:00Z  25d    2027-12-16T08:00:00Z  no        renew-due
3 certificates: 0 expired, 0 expiring, 1 renew-due, 2 ok, 0 missing or unreadable
",
    },
    Case {
        name: "within the window",
        disk: untouched,
        later: Duration::days(340),
        warn: Some(Duration::days(30)),
        fails: true,
        expect: "
status at 2027-12-21T08:00:00Z
ITEM    NODE  FILE        ISSUER  KEY         NOT AFTER             LEFT   RENEWS                EXTERNAL  STATE
root    -     root.crt    root    ecdsa-p256  2037-01-12T08:00:00Z  3310d  2036-12-13T08:00:00Z  no        ok
mid     -     mid.crt     root    ecdsa-p256  2037-01-12T08:00:00Z  3310d  2036-12-13T08:00:00Z  no        ok
server  -     server.crt  mid     ecdsa-p256  2028-01-15T08:00:00Z  25d    2027-12-16T08:00:00Z  no        expiring
3 certificates: 0 expired, 1 expiring, 0 renew-due, 2 ok, 0 missing or unreadable
",
    },
    Case {
        name: "expired, without a gate",
        disk: untouched,
        later: Duration::days(366),
        warn: None,
        fails: false,
        expect: "
status at 2028-01-16T08:00:00Z
ITEM    NODE  FILE        ISSUER  KEY         NOT AFTER             LEFT     RENEWS                EXTERNAL  STATE
root    -     root.crt    root    ecdsa-p256  2037-01-12T08:00:00Z  3284d    2036-12-13T08:00:00Z  no        ok
mid     -     mid.crt     root    ecdsa-p256  2037-01-12T08:00:00Z  3284d    2036-12-13T08:00:00Z  no        ok
server  -     server.crt  mid     ecdsa-p256  2028-01-15T08:00:00Z  expired  2027-12-16T08:00:00Z  no        expired
3 certificates: 1 expired, 0 expiring, 0 renew-due, 2 ok, 0 missing or unreadable
",
    },
    Case {
        name: "a missing certificate fails the gate",
        disk: server_missing,
        later: Duration::ZERO,
        warn: Some(Duration::days(30)),
        fails: true,
        expect: "
status at 2027-01-15T08:00:00Z
ITEM    NODE  FILE        ISSUER  KEY         NOT AFTER             LEFT   RENEWS                EXTERNAL  STATE
root    -     root.crt    root    ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  no        ok
mid     -     mid.crt     root    ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  no        ok
server  -     server.crt  mid     -           -                     -      -                     -         missing
3 certificates: 0 expired, 0 expiring, 0 renew-due, 2 ok, 1 missing or unreadable
",
    },
    Case {
        name: "an unreadable certificate says why",
        disk: server_damaged,
        later: Duration::ZERO,
        warn: None,
        fails: false,
        expect: "
status at 2027-01-15T08:00:00Z
ITEM    NODE  FILE        ISSUER  KEY         NOT AFTER             LEFT   RENEWS                EXTERNAL  STATE
root    -     root.crt    root    ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  no        ok
mid     -     mid.crt     root    ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  no        ok
server  -     server.crt  mid     -           -                     -      -                     -         unreadable
unreadable: server.crt: not a PEM file: it has no `-----BEGIN ...-----` line
3 certificates: 0 expired, 0 expiring, 0 renew-due, 2 ok, 1 missing or unreadable
",
    },
    Case {
        name: "a certificate its issuer did not sign is external",
        disk: mid_in_server_place,
        later: Duration::ZERO,
        warn: None,
        fails: false,
        expect: "
status at 2027-01-15T08:00:00Z
ITEM    NODE  FILE        ISSUER  KEY         NOT AFTER             LEFT   RENEWS                EXTERNAL  STATE
root    -     root.crt    root    ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  no        ok
mid     -     mid.crt     root    ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  no        ok
server  -     server.crt  mid     ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  yes       ok
3 certificates: 0 expired, 0 expiring, 0 renew-due, 3 ok, 0 missing or unreadable
",
    },
    Case {
        name: "without the issuer's certificate nobody can tell",
        disk: mid_missing,
        later: Duration::ZERO,
        warn: None,
        fails: false,
        expect: "
status at 2027-01-15T08:00:00Z
ITEM    NODE  FILE        ISSUER  KEY         NOT AFTER             LEFT   RENEWS                EXTERNAL  STATE
root    -     root.crt    root    ecdsa-p256  2037-01-12T08:00:00Z  3650d  2036-12-13T08:00:00Z  no        ok
mid     -     mid.crt     root    -           -                     -      -                     -         missing
server  -     server.crt  mid     ecdsa-p256  2028-01-15T08:00:00Z  365d   2027-12-16T08:00:00Z  ?         ok
3 certificates: 0 expired, 0 expiring, 0 renew-due, 2 ok, 1 missing or unreadable
",
    },
];

#[test]
fn every_case_gives_its_status() {
    let mut failed = Vec::new();
    for case in CASES {
        let (got, fails) = check(case);
        if got.trim() != case.expect.trim() || fails != case.fails {
            failed.push(format!("{}: gate fails {fails}, table:\n{got}", case.name));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

#[test]
fn urgency_orders_expiry_before_the_window_before_renewal() {
    let day = 86_400;
    let not_after = at(100 * day);
    let renew_at = at(70 * day);
    let warn = Some(Duration::days(10));
    let check = |now: i64, warn: Option<Duration>, want: Urgency| {
        assert_eq!(
            urgency(at(now), not_after, renew_at, warn),
            want,
            "now = {now}"
        );
    };
    check(100 * day, warn, Urgency::Expired);
    check(95 * day, warn, Urgency::Expiring);
    check(90 * day, warn, Urgency::Expiring);
    check(89 * day, warn, Urgency::RenewDue);
    check(95 * day, None, Urgency::RenewDue);
    check(69 * day, warn, Urgency::Ok);
}

#[test]
fn left_is_said_in_its_largest_unit() {
    assert_eq!(fmt_left(Duration::days(3) + Duration::hours(5)), "3d");
    assert_eq!(fmt_left(Duration::hours(5)), "5h");
    assert_eq!(fmt_left(Duration::seconds(30)), "1m");
    assert_eq!(fmt_left(Duration::ZERO), "expired");
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(label_value("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
}
