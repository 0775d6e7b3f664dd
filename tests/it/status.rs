//! `cargo xtask pki status`: the table and the JSON pinned as snapshots on a tree made at a
//! fixed time and read later; the `--warn-within` gate's exit codes; the same status without any
//! key; the JSON against its schema (`schemas/status.v1.json`); the Prometheus form through
//! `promtool check metrics`; the clock forms `--now` takes; `--version` and `--help`.

use serde_json::Value;

use crate::support::*;

/// The clock the tree is made at.
const T0: &str = "2026-01-01T00:00:00Z";

/// A root with a 400-day intermediate, a 300-day server certificate under it and a one-year
/// client certificate per node: CAs and leaves, a per-node entry, two levels of issuers, and a
/// long renew-before on the intermediate, so that, read in December, the certificates are in
/// every state.
const SPEC: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[node]]
name = "n1"
ips = ["10.0.0.1"]
role = "worker"

[[node]]
name = "n2"
ips = ["10.0.0.2"]
role = "worker"

[[ca]]
name = "root-ca"
cn = "root-ca"
cert = "root.crt"
key = "root.key"

[[ca]]
name = "inter"
issuer = "root-ca"
cn = "inter"
validity = "400d"
renew-before = "60d"
cert = "inter.crt"
key = "inter.key"

[[cert]]
name = "server"
issuer = "inter"
cn = "server"
dns = ["api.example"]
usage = ["server"]
validity = "300d"
cert = "server.crt"
key = "server.key"

[[cert]]
name = "client"
issuer = "inter"
for-each-node = "all"
cn = "system:node:{node}"
usage = ["client"]
cert = "nodes/{node}/client.crt"
key = "nodes/{node}/client.key"
"#;

/// A tree made from `SPEC` at `T0`.
fn made() -> Fixture {
    let f = Fixture::new(SPEC);
    f.apply(&["--now", T0]);
    f
}

/// `pki status ARGS` (with `--now` among them: the system clock would change every answer).
fn status(f: &Fixture, args: &[&str]) -> Run {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    f.pki(&all)
}

/// `status --format json` at `now`, parsed.
fn json_at(f: &Fixture, now: &str) -> Value {
    let r = status(f, &["--format", "json", "--now", now]);
    assert_eq!(r.code, 0, "{}", r.all());
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", r.stdout))
}

/// Compares `text` with `tests/it/snapshots/NAME.snap`, with the snapshot module's filters and
/// its guard against writing snapshots under CI.
#[track_caller]
fn snapshot(name: &str, f: &Fixture, text: &str) {
    guard_ci();
    transcript_settings(f).bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn text_and_json_in_december() {
    let f = made();
    // 2026-12-20: the server (notAfter 2026-10-28) has expired, the clients (2027-01-01) expire
    // within --warn-within, the intermediate (2027-02-05) is past its renewal date (2026-12-07),
    // and the root has years left.
    let text = status(
        &f,
        &["--now", "2026-12-20T00:00:00Z", "--warn-within", "30d"],
    );
    assert_eq!(text.code, 1, "{}", text.all());
    assert_eq!(
        text.stderr,
        "--warn-within 30d fails: of 5 certificates, 1 expired, 2 expire within 30d; `cargo xtask pki` renews what is due (`--renew NAME` renews now)\n"
    );
    snapshot("status_text_december", &f, &text.stdout);
    // The README shows this very table.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let quoted = format!(
        "$ cargo xtask pki status --warn-within 30d --now 2026-12-20\n{}```",
        text.stdout
    );
    assert!(readme.contains(&quoted), "README lacks:\n{quoted}");
    let json = status(&f, &["--now", "2026-12-20T00:00:00Z", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.all());
    snapshot("status_json_december", &f, &json.stdout);
}

#[test]
fn warn_within_exit_codes() {
    let f = made();
    let code = |args: &[&str]| status(&f, args).code;
    // Without the flag, status is a report: 0 even with a certificate expired.
    assert_eq!(code(&["--now", "2026-12-20"]), 0);
    // The earliest notAfter is the server's, 2026-10-28 (T0 + 300 days).
    assert_eq!(code(&["--now", "2026-09-27", "--warn-within", "30d"]), 0);
    assert_eq!(
        code(&["--now", "2026-09-28T00:00:01Z", "--warn-within", "30d"]),
        1
    );
    assert_eq!(code(&["--now", "2026-11-01", "--warn-within", "1d"]), 1);
    // A failing gate says why on stderr, even with --quiet (which prints no table).
    let r = status(
        &f,
        &["--now", "2026-11-01", "--warn-within", "1d", "--quiet"],
    );
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{}", r.all());
    assert!(
        r.stderr.starts_with("--warn-within 1d fails: of ") && r.stderr.contains(" 1 expired"),
        "{}",
        r.stderr
    );
    let quiet = status(&f, &["--now", "2026-09-27", "--warn-within", "30d", "-q"]);
    assert_eq!(
        (quiet.code, quiet.all()),
        (0, String::new()),
        "a passing gate is silent"
    );
    // A declared certificate that is not there fails the gate: nothing says when it expires.
    std::fs::remove_file(f.path("nodes/n2/client.crt")).unwrap();
    let r = status(&f, &["--now", T0, "--warn-within", "30d"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("missing"), "{}", r.stdout);
    assert!(
        r.stderr.contains("1 are missing or unreadable"),
        "{}",
        r.stderr
    );
    // Errors: 2.
    assert_eq!(code(&["--now", T0, "--warn-within", "soon"]), 2);
    let r = f.pki(&["--check", "--prune", "status", "--now", T0]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("--check, --prune belong to"),
        "{}",
        r.stderr
    );
    assert_eq!(code(&["--now", "yesterday"]), 2);
    f.set_spec("[[ca]\n");
    assert_eq!(code(&["--now", T0, "--warn-within", "30d"]), 2);
}

#[test]
fn status_without_keys_is_the_same() {
    let f = made();
    let keys = f.private_keys();
    let forms = ["text", "json", "prometheus"];
    let all_forms = |f: &Fixture| -> Vec<Run> {
        forms
            .iter()
            .map(|form| {
                status(
                    f,
                    &[
                        "--now",
                        "2026-12-20",
                        "--warn-within",
                        "60d",
                        "--format",
                        form,
                    ],
                )
            })
            .collect()
    };
    let with_keys = all_forms(&f);
    for r in &with_keys {
        assert_no_key_material("pki status", &r.all(), &keys);
    }
    let key_files = f.files_ending(".key");
    assert_eq!(key_files.len(), 5, "{key_files:?}");
    for key in &key_files {
        std::fs::remove_file(f.path(key)).unwrap();
    }
    let without_keys = all_forms(&f);
    for (form, (a, b)) in forms.iter().zip(with_keys.iter().zip(&without_keys)) {
        assert_eq!(a.code, 1, "{form}: {}", a.all());
        assert_eq!(
            (a.code, &a.stdout, &a.stderr),
            (b.code, &b.stdout, &b.stderr),
            "{form}"
        );
    }
}

#[test]
fn a_certificate_signed_elsewhere_is_external() {
    let f = made();
    let other = made();
    // Another tree's server certificate, signed by that tree's intermediate.
    std::fs::copy(other.path("server.crt"), f.path("server.crt")).unwrap();
    std::fs::remove_file(f.path("nodes/n1/client.crt")).unwrap();
    std::fs::write(f.path("nodes/n2/client.crt"), "damaged\n").unwrap();
    let doc = json_at(&f, T0);
    let by_file = |file: &str| -> Value {
        doc["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["file"] == file)
            .unwrap_or_else(|| panic!("no {file} in {doc}"))
            .clone()
    };
    assert_eq!(by_file("server.crt")["external"], true);
    assert_eq!(by_file("inter.crt")["external"], false);
    assert_eq!(by_file("root.crt")["external"], false);
    assert_eq!(by_file("nodes/n1/client.crt")["state"], "missing");
    let damaged = by_file("nodes/n2/client.crt");
    assert_eq!(damaged["state"], "unreadable");
    let why = damaged["error"].as_str().unwrap();
    assert!(why.starts_with("nodes/n2/client.crt: "), "{damaged}");
    // The table says why below itself.
    let text = status(&f, &["--now", T0]);
    assert!(
        text.stdout.contains(&format!("\nunreadable: {why}\n")),
        "{}",
        text.stdout
    );
    validate(&schema(), &doc, "$");
}

#[test]
fn json_follows_its_schema() {
    let f = made();
    let schema = schema();
    for now in [T0, "2026-12-20", "2040-01-01"] {
        let doc = json_at(&f, now);
        assert_eq!(doc["schema_version"], 1);
        validate(&schema, &doc, "$");
    }
    // The order: CAs first, then leaves in declaration order, per-node instances by node.
    let doc = json_at(&f, T0);
    let order: Vec<(String, Value)> = doc["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["item"].as_str().unwrap().to_string(), c["node"].clone()))
        .collect();
    let want = [
        ("root-ca", Value::Null),
        ("inter", Value::Null),
        ("server", Value::Null),
        ("client", "n1".into()),
        ("client", "n2".into()),
    ];
    let want: Vec<(String, Value)> = want.into_iter().map(|(i, n)| (i.to_string(), n)).collect();
    assert_eq!(order, want);
    // The validator itself refuses what the schema forbids.
    let mut bad = doc.clone();
    bad["certificates"][0]["state"] = "fine".into();
    assert!(!errors(&schema, &bad, "$").is_empty());
    let mut bad = doc;
    bad["certificates"][1]
        .as_object_mut()
        .unwrap()
        .remove("renew_at");
    assert!(!errors(&schema, &bad, "$").is_empty());
}

#[test]
fn prometheus_metrics_pass_promtool() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let f = made();
    let r = status(&f, &["--now", "2026-12-20", "--format", "prometheus"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // An empty input passes promtool too: the families must be there first.
    let expiry = r#"kubepki_certificate_expiry_timestamp_seconds{item="client",node="n2",file="nodes/n2/client.crt",issuer="inter"} 1798761600"#;
    assert!(r.stdout.lines().any(|l| l == expiry), "{}", r.stdout);
    for family in [
        "kubepki_certificate_expiry_timestamp_seconds",
        "kubepki_certificate_renew_timestamp_seconds",
        "kubepki_certificate_external",
        "kubepki_certificate_readable",
        "kubepki_status_timestamp_seconds",
    ] {
        assert!(
            r.stdout.contains(&format!("# TYPE {family} gauge\n")),
            "{family}"
        );
        assert!(r.stdout.contains(&format!("# HELP {family} ")), "{family}");
    }
    let checked = promtool_check(&promtool, &r.stdout);
    assert_eq!(checked.code, 0, "promtool:\n{}", checked.all());
    // promtool judges what it is given: a malformed sample is refused.
    let broken = format!("{}kubepki_certificate_external{{item=\"x\" 1\n", r.stdout);
    assert_ne!(promtool_check(&promtool, &broken).code, 0);
}

fn promtool_check(promtool: &std::path::Path, metrics: &str) -> Run {
    use std::io::Write as _;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn now_takes_dates_and_relative_times() {
    let f = made();
    let header = |now: &str| {
        let r = status(&f, &["--now", now]);
        assert_eq!(r.code, 0, "--now {now}: {}", r.all());
        r.stdout.lines().next().unwrap().to_string()
    };
    assert_eq!(header("2027-01-01"), "status at 2027-01-01T00:00:00Z");
    assert_eq!(header("2027-01-01T00:00:00Z"), header("2027-01-01"));
    // Relative times count from the system clock, read by the run: it lies between the two
    // readings made around it here.
    for (flag, offset) in [("+60d", 60 * 86_400), ("-1h", -3600)] {
        let before = unix_now() + offset;
        let at = header(flag);
        let json = json_at(&f, flag);
        let after = unix_now() + offset;
        let at = at.strip_prefix("status at ").unwrap();
        for secs in [
            rfc3339_secs(at),
            rfc3339_secs(json["now"].as_str().unwrap()),
        ] {
            assert!(
                (before..=after).contains(&secs),
                "{flag}: {at}, {before}..={after}"
            );
        }
    }
    // The plain command takes them too, and a relative past clock is said like any --now.
    let r = f.pki(&["--check", "--now", "-1h"]);
    assert_ne!(r.code, 2, "{}", r.all());
    assert!(r.stdout.starts_with("note: planning at "), "{}", r.stdout);
    for bad in ["2027-13-01", "2027-02-30", "+0d", "+1x", "+"] {
        let r = status(&f, &["--now", bad]);
        assert_eq!(r.code, 2, "--now {bad}: {}", r.all());
        assert!(r.stderr.contains("RFC 3339"), "{}", r.stderr);
    }
}

#[test]
fn version_and_help() {
    let version = run(xtask().arg("--version"));
    assert_eq!(version.code, 0, "{}", version.all());
    assert_eq!(
        version.stdout,
        format!("cargo xtask {}\n", kubepki::cli::VERSION)
    );
    let version = run(xtask().args(["pki", "--version"]));
    assert!(
        version
            .stdout
            .ends_with(&format!(" {}\n", kubepki::cli::VERSION)),
        "{}",
        version.stdout
    );
    let help = run(xtask().args(["pki", "--help"]));
    assert_eq!(help.code, 0, "{}", help.all());
    for example in [
        "Examples:",
        "cargo xtask pki --check --diff",
        "status --warn-within 30d",
    ] {
        assert!(help.stdout.contains(example), "{example}:\n{}", help.stdout);
    }
    let help = run(xtask().args(["pki", "status", "--help"]));
    assert!(
        help.stdout.contains("--warn-within <DURATION>"),
        "{}",
        help.stdout
    );
    assert!(help.stdout.contains("prometheus"), "{}", help.stdout);
}

/// Seconds since the Unix epoch, from the system clock.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `YYYY-MM-DDTHH:MM:SSZ` as seconds since the Unix epoch, by the civil-from-days algorithm
/// (an implementation of the tests' own, not the tool's).
fn rfc3339_secs(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    assert_eq!((t.len(), &t[19..]), (20, "Z"), "{t}");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// The schema the README documents.
fn schema() -> Value {
    let text = std::fs::read_to_string(repo_root().join("schemas/status.v1.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `pki status ARGS` on a terminal (util-linux `script` gives it one), with `NO_COLOR` as given.
fn on_terminal(
    f: &Fixture,
    script: &std::path::Path,
    args: &[&str],
    no_color: Option<&str>,
) -> Run {
    let mut inner = f.command(&[]);
    inner.arg("status").args(args);
    let env: Vec<(&str, &str)> = no_color.map(|v| ("NO_COLOR", v)).into_iter().collect();
    on_pty(script, &inner, f.root(), &env)
}

#[test]
fn rows_are_coloured_by_urgency_on_a_terminal_only() {
    let Some(script) = tool("script", "bsdutils") else {
        return;
    };
    let f = made();
    let args = ["--now", "2026-12-20", "--warn-within", "30d"];
    let r = on_terminal(&f, &script, &args, None);
    assert_eq!(r.code, 1, "{}", r.all());
    let row = |name: &str| {
        r.stdout
            .lines()
            .find(|l| {
                l.split_once('m')
                    .is_some_and(|(_, rest)| rest.starts_with(&format!("{name} ")))
            })
            .unwrap_or_else(|| panic!("no {name} in {}", r.stdout))
            .to_string()
    };
    assert!(
        row("server").starts_with("\x1b[31;1mserver "),
        "{:?}",
        row("server")
    );
    assert!(
        row("inter").starts_with("\x1b[33minter "),
        "{:?}",
        row("inter")
    );
    assert!(
        row("root-ca").starts_with("\x1b[32mroot-ca "),
        "{:?}",
        row("root-ca")
    );
    assert!(
        row("server").ends_with("expired\x1b[0m"),
        "{:?}",
        row("server")
    );
    // NO_COLOR, and the machine-readable forms, are plain even on a terminal.
    let plain = on_terminal(&f, &script, &args, Some("1"));
    assert!(!plain.stdout.contains('\x1b'), "{:?}", plain.stdout);
    // A terminal shows stdout and stderr together: the table, then why the gate fails.
    let piped = status(&f, &args);
    assert_eq!(plain.stdout.replace('\r', ""), piped.stdout + &piped.stderr);
    for form in ["json", "prometheus"] {
        let r = on_terminal(
            &f,
            &script,
            &["--now", "2026-12-20", "--format", form],
            None,
        );
        assert!(!r.stdout.contains('\x1b'), "{form}: {:?}", r.stdout);
    }
}
