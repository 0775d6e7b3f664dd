//! Keys and clocks (issue 10, points 1-4, 17 and 20's SOURCE_DATE_EPOCH): no key is deleted or
//! back-dated by a mistake, and pki.toml is refused where Kubernetes could not use what it
//! declares. Every test runs the real CLI; the helpers below are this module's own.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::Fixture;

/// A root CA, a leaf under it and the service-account key pair, all ECDSA P-256.
const SPEC: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "ca"
cn = "ca"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "admin"
issuer = "ca"
cn = "kubernetes-admin"
o = ["kubeadm:cluster-admins"]
usage = ["client"]
cert = "pki/admin.crt"
key = "pki/admin.key"

[[keypair]]
name = "sa"
private = "pki/sa.key"
public = "pki/sa.pub"
"#;

/// A second root, retired in `prune_stops_rather_than_delete_a_ca_key_or_a_key_pairs_key`.
const OLD_CA: &str = r#"
[[ca]]
name = "old-ca"
cn = "old-ca"
cert = "pki/old-ca.crt"
key = "pki/old-ca.key"

[[cert]]
name = "old-client"
issuer = "old-ca"
cn = "old-client"
usage = ["client"]
cert = "pki/old-client.crt"
key = "pki/old-client.key"
"#;

/// What one run printed.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` (never panics on a non-zero exit).
fn run(cmd: &mut Command) -> Out {
    let o = cmd.output().expect("run xtask");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `cargo xtask pki ARGS` on `f`.
fn pki(f: &Fixture, args: &[&str]) -> Out {
    run(&mut f.command(args))
}

/// `cargo xtask pki ARGS` on `f` with SOURCE_DATE_EPOCH set to `epoch`.
fn pki_at_epoch(f: &Fixture, epoch: &str, args: &[&str]) -> Out {
    run(f.command(args).env("SOURCE_DATE_EPOCH", epoch))
}

/// Runs and asserts exit 0.
fn ok(f: &Fixture, args: &[&str]) -> Out {
    let r = pki(f, args);
    assert_eq!(r.code, 0, "pki {args:?}:\n{}", r.all());
    r
}

fn set_spec(f: &Fixture, spec: &str) {
    std::fs::write(f.root().join("pki.toml"), spec).unwrap();
}

/// Every file under out/ (relative path -> bytes), recursively.
fn tree(f: &Fixture) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, base: &Path, map: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, map);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                map.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut map = BTreeMap::new();
    walk(&f.out(), &f.out(), &mut map);
    map
}

/// `--> pki.toml:LINE:COL` of the one occurrence of `needle` in `spec`.
fn at(spec: &str, needle: &str) -> String {
    assert_eq!(
        spec.matches(needle).count(),
        1,
        "`{needle}` must occur once"
    );
    let start = spec.find(needle).unwrap();
    let line = spec[..start].matches('\n').count() + 1;
    let col = start - spec[..start].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("--> pki.toml:{line}:{col}")
}

/// A bad pki.toml exits 2, reports `want` (each a message, the span it points at, a help) and
/// writes nothing: not even out/.
#[track_caller]
fn assert_refused(spec: &str, want: &[(&str, &str, &str)]) {
    let f = Fixture::new(spec);
    let r = pki(&f, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    for (message, needle, help) in want {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.starts_with("error: ") && l.contains(message)),
            "{message}:\n{}",
            r.stderr
        );
        let pos = at(spec, needle);
        assert!(r.stderr.contains(&pos), "{message} at {pos}:\n{}", r.stderr);
        assert!(r.stderr.contains(help), "help `{help}`:\n{}", r.stderr);
    }
    let n = want.len();
    let count = format!(
        "pki.toml has {n} error{}; nothing was written",
        if n == 1 { "" } else { "s" }
    );
    assert!(r.stderr.contains(&count), "{count}:\n{}", r.stderr);
    assert!(!f.out().exists(), "out/ was made");
}

/// The system clock now, as seconds since the epoch.
fn system_epoch() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

// ---------------------------------------------------------------------------------------------
// 1. An empty pki.toml, and --prune of keys that cannot be made again.

#[test]
fn an_empty_pki_toml_is_refused_and_prune_deletes_nothing() {
    let f = Fixture::new(SPEC);
    ok(&f, &[]);
    let before = tree(&f);
    set_spec(&f, "");
    for args in [&["--prune"][..], &["--check", "--prune"], &[]] {
        let r = pki(&f, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(
            r.stderr.contains("error: no [[ca]] is declared"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("--prune"),
            "the help says why: {}",
            r.stderr
        );
        assert_eq!(tree(&f), before, "{args:?} changed out/");
    }
}

#[test]
fn a_spec_without_a_ca_is_refused_at_its_first_entry() {
    let spec = "[[keypair]]\nname = \"sa\"\nprivate = \"sa.key\"\npublic = \"sa.pub\"\n";
    assert_refused(
        spec,
        &[(
            "no [[ca]] is declared",
            "\"sa\"",
            "declare the CAs that sign the cluster's certificates",
        )],
    );
}

#[test]
fn prune_stops_rather_than_delete_a_ca_key_or_a_key_pairs_key() {
    let f = Fixture::new(&format!("{SPEC}{OLD_CA}"));
    ok(&f, &[]);
    // old-ca, what it signed and the service-account key pair leave pki.toml.
    let sa = SPEC.find("[[keypair]]").unwrap();
    set_spec(&f, &SPEC[..sa]);
    let before = tree(&f);
    let protected = ["pki/old-ca.key", "pki/sa.key"];
    for args in [&["--prune"][..], &["--check", "--prune"]] {
        let r = pki(&f, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        for key in protected {
            assert!(
                r.stderr.contains(&format!("--prune would delete {key}")),
                "{key}: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains(&format!("`rm out/{key}`")),
                "{key}: {}",
                r.stderr
            );
        }
        assert!(
            r.stderr
                .contains("the private key of CA certificate pki/old-ca.crt"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("whose public key is pki/sa.pub"),
            "{}",
            r.stderr
        );
        assert_eq!(tree(&f), before, "{args:?} deleted or wrote something");
    }
    // Without --prune they are orphans that say what --prune does with them.
    let r = ok(&f, &[]);
    for key in protected {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("- orphan") && l.contains(key))
            .unwrap_or_else(|| panic!("{key} listed:\n{}", r.stdout));
        assert!(
            line.contains("--prune stops rather than delete it"),
            "{line}"
        );
    }
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("pki/old-client.key") && l.contains("--prune deletes it")),
        "a leaf's key is an ordinary orphan: {}",
        r.stdout
    );
    // Deleted by hand, as told: --prune deletes the rest.
    for key in protected {
        std::fs::remove_file(f.path(key)).unwrap();
    }
    let r = ok(&f, &["--prune"]);
    assert!(r.stdout.contains("removed 4 orphans"), "{}", r.stdout);
    for gone in [
        "pki/old-ca.crt",
        "pki/old-client.crt",
        "pki/old-client.key",
        "pki/sa.pub",
    ] {
        assert!(!f.path(gone).exists(), "{gone}");
    }
    assert!(f.path("pki/ca.key").exists() && f.path("pki/admin.key").exists());
}

// ---------------------------------------------------------------------------------------------
// 2 and 20. The clock: where it comes from, said when it is off, refused when it is a past one
// the user did not choose.

#[test]
fn a_past_source_date_epoch_is_refused_unless_confirmed() {
    let f = Fixture::new(SPEC);
    ok(&f, &[]);
    let before = tree(&f);
    for args in [&[][..], &["--check"]] {
        let r = pki_at_epoch(&f, "315532800", args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        for part in [
            "error: SOURCE_DATE_EPOCH `315532800` sets the clock to 1980-01-01T00:00:00Z, 46 years before the system clock",
            "back-dated",
            "unset SOURCE_DATE_EPOCH",
            "--allow-past-clock",
        ] {
            assert!(r.stderr.contains(part), "{part}: {}", r.stderr);
        }
        assert_eq!(tree(&f), before, "{args:?} re-signed at 1980");
    }
    // Confirmed, the first line says where the clock comes from (everything is re-signed: it
    // was all signed after 1980).
    let r = pki_at_epoch(&f, "315532800", &["--check", "--allow-past-clock"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.lines().next().unwrap().starts_with(
            "note: planning at 1980-01-01T00:00:00Z (SOURCE_DATE_EPOCH=315532800), earlier than the system clock"
        ),
        "{}",
        r.stdout
    );
    let r = pki_at_epoch(&f, "315532800", &["--allow-past-clock"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.lines().next().unwrap().starts_with(
            "note: signing at 1980-01-01T00:00:00Z (SOURCE_DATE_EPOCH=315532800), earlier than the system clock"
        ),
        "{}",
        r.stdout
    );
    let ca = kubepki::x509::parse_cert(&std::fs::read(f.path("pki/ca.crt")).unwrap()).unwrap();
    assert_eq!(ca.not_before.unix_timestamp(), 315532800 - 300);
}

#[test]
fn a_clock_off_the_system_clock_is_said_on_the_first_line() {
    let f = Fixture::new(SPEC);
    // The system clock, and a SOURCE_DATE_EPOCH within a few minutes of it: nothing to say.
    let r = pki(&f, &["--check"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.starts_with("+ create"), "{}", r.stdout);
    let near = (system_epoch() - 60).to_string();
    let r = pki_at_epoch(&f, &near, &["--check"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.starts_with("+ create"), "{}", r.stdout);
    // A past --now is the user's own choice: said, not refused.
    let r = pki(&f, &["--check", "--now", "2020-01-01T00:00:00Z"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.starts_with(
            "note: planning at 2020-01-01T00:00:00Z (--now), earlier than the system clock: expiry and renewal are judged as of then\n"
        ),
        "{}",
        r.stdout
    );
    // A future one warns that what it signs is not valid yet, in --check and when applying.
    let r = pki(&f, &["--check", "--now", "2999-01-01T00:00:00Z"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.starts_with(
            "warning: planning at 2999-01-01T00:00:00Z (--now), later than the system clock: a run at this clock signs certificates that are not valid yet\n"
        ),
        "{}",
        r.stdout
    );
    let later = (system_epoch() + 86400).to_string();
    let r = pki_at_epoch(&f, &later, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let first = r.stdout.lines().next().unwrap();
    assert!(first.starts_with("warning: signing at "), "{}", r.stdout);
    assert!(
        first.contains(&format!("(SOURCE_DATE_EPOCH={later}), later than the system clock: what this run signs is not valid before ")),
        "{first}"
    );
}

#[test]
fn an_empty_source_date_epoch_counts_as_unset() {
    let f = Fixture::new(SPEC);
    for epoch in ["", "  "] {
        let r = pki_at_epoch(&f, epoch, &["--check"]);
        assert_eq!(r.code, 1, "{epoch:?}: {}", r.all());
        assert!(r.stdout.starts_with("+ create"), "{}", r.stdout);
    }
    let r = pki_at_epoch(&f, "", &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let ca = kubepki::x509::parse_cert(&std::fs::read(f.path("pki/ca.crt")).unwrap()).unwrap();
    let backdated = system_epoch() - 300 - ca.not_before.unix_timestamp();
    assert!((0..120).contains(&backdated), "signed at the system clock");
}

#[test]
fn an_out_of_range_source_date_epoch_says_out_of_range() {
    let f = Fixture::new(SPEC);
    for epoch in ["99999999999999999999", "-1", "253402300800000"] {
        let r = pki_at_epoch(&f, epoch, &["--check"]);
        assert_eq!(r.code, 2, "{epoch}: {}", r.all());
        assert!(
            r.stderr.starts_with(&format!(
                "error: SOURCE_DATE_EPOCH `{epoch}` is out of range"
            )),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("not a number"), "{}", r.stderr);
    }
    let r = pki_at_epoch(&f, "soon", &["--check"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("SOURCE_DATE_EPOCH `soon` is not a number of seconds"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// 3 and 4. What Kubernetes cannot use.

#[test]
fn an_ed25519_key_pair_is_refused_naming_kube_apiserver() {
    let own = SPEC.replace(
        "public = \"pki/sa.pub\"\n",
        "public = \"pki/sa.pub\"\nalgorithm = \"ed25519\"\n",
    );
    assert_refused(
        &own,
        &[(
            "key pair `sa` cannot be ed25519: kube-apiserver and kube-controller-manager load service-account keys as RSA or ECDSA only",
            "\"ed25519\"",
            "= help: set `algorithm = \"rsa-2048\"`",
        )],
    );
    // Inherited from [defaults]: pointed at there; certificates may stay Ed25519.
    let inherited = SPEC.replace("\"ecdsa-p256\"", "\"ed25519\"");
    assert_refused(
        &inherited,
        &[(
            "key pair `sa` cannot be ed25519",
            "\"ed25519\"",
            "give this [[keypair]] its own `algorithm",
        )],
    );
    let fixed = inherited.replace(
        "public = \"pki/sa.pub\"\n",
        "public = \"pki/sa.pub\"\nalgorithm = \"ecdsa-p256\"\n",
    );
    ok(&Fixture::new(&fixed), &[]);
}

#[test]
fn an_empty_cn_or_a_client_certificate_without_one_is_refused() {
    let empty = SPEC.replace("cn = \"kubernetes-admin\"", "cn = \"\"");
    assert_refused(
        &empty,
        &[(
            "`cn` of `admin` is empty",
            "\"\"",
            "Kubernetes reads the CN as the user name",
        )],
    );
    let missing = SPEC.replace("cn = \"kubernetes-admin\"\n", "");
    assert_refused(
        &missing,
        &[(
            "client certificate `admin` has no `cn`",
            "[\"client\"]",
            "kube-apiserver takes the user name from the CN",
        )],
    );
}

#[test]
fn node_ips_of_a_node_without_ips_is_refused() {
    let spec = format!(
        r#"{SPEC}
[[node]]
name = "w-1"
ips = []
role = "worker"

[[cert]]
name = "kubelet-serving"
issuer = "ca"
for-each-node = "all"
cn = "system:node:{{node}}"
dns = ["{{node}}"]
ips = ["{{node.ips}}"]
usage = ["server"]
cert = "nodes/{{node}}/kubelet.crt"
key = "nodes/{{node}}/kubelet.key"
"#
    );
    assert_refused(
        &spec,
        &[(
            "`{node.ips}` used, but node `w-1` has no `ips`",
            "\"{node.ips}\"",
            "give the node its addresses",
        )],
    );
}

// ---------------------------------------------------------------------------------------------
// 17. Names the tool cannot write.

#[test]
fn a_name_too_long_for_its_temporary_name_is_refused_before_anything_is_written() {
    let long = "a".repeat(246);
    let spec = SPEC.replace("pki/admin.key", &format!("pki/{long}.key"));
    assert_refused(
        &spec,
        &[(
            &format!("output path `pki/{long}.key` is too long"),
            &format!("\"pki/{long}.key\""),
            "a file name may have at most 242 bytes",
        )],
    );
    let folder = SPEC.replace("pki/admin.crt", &format!("{}/admin.crt", "d".repeat(256)));
    assert_refused(
        &folder,
        &[(
            "is too long: its folder name",
            &format!("\"{}/admin.crt\"", "d".repeat(256)),
            "a folder name 255",
        )],
    );
    // The longest name that fits is written, through its temporary name.
    let fits = "b".repeat(242 - ".key".len());
    let f = Fixture::new(&SPEC.replace("pki/admin.key", &format!("pki/{fits}.key")));
    ok(&f, &[]);
    assert!(f.path(&format!("pki/{fits}.key")).is_file());
}
