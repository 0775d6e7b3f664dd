//! Interrupted and concurrent runs. The tool is SIGKILLed at many points of a larger generation
//! and rerun each time: no file is ever half-written, no CA key ever changes once it exists, the
//! leftovers of a killed write are never taken for real files, and the final rerun leaves a tree
//! that openssl verifies. Two runs on one out/ never interleave: the second refuses.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::support::*;

const LEAVES: usize = 72;

/// Two CAs (one RSA, one ECDSA), 72 leaves (a few of them RSA), a key pair and kubeconfigs that
/// embed leaf keys. Files go to four folders, whose modification times show when a run has
/// started writing. The number of files makes the write phase long enough to be killed in many
/// places; RSA keys would not: every key is made before the first write, so more RSA only made
/// each run (and the suite) slower before the point where kills begin.
fn big_spec() -> String {
    let mut s = String::from(
        r#"[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "rsa-ca"
cn = "rsa-ca"
algorithm = "rsa-2048"
cert = "ca/rsa-ca.crt"
key = "ca/rsa-ca.key"

[[ca]]
name = "ec-ca"
cn = "ec-ca"
cert = "ca/ec-ca.crt"
key = "ca/ec-ca.key"

[[keypair]]
name = "sa"
private = "keys/sa.key"
public = "keys/sa.pub"
"#,
    );
    for i in 0..LEAVES {
        // Every twelfth leaf is RSA (six of them), the rest ECDSA under either CA.
        let (issuer, alg) = match (i % 3, i % 12) {
            (0, 0) => ("rsa-ca", "rsa-2048"),
            (0 | 1, _) => ("rsa-ca", "ecdsa-p256"),
            _ => ("ec-ca", "ecdsa-p256"),
        };
        s.push_str(&format!(
            r#"
[[cert]]
name = "leaf-{i:02}"
issuer = "{issuer}"
cn = "leaf-{i:02}"
dns = ["leaf-{i:02}.example"]
algorithm = "{alg}"
usage = ["server", "client"]
cert = "leaves/leaf-{i:02}.crt"
key = "leaves/leaf-{i:02}.key"
"#
        ));
    }
    for i in 0..6 {
        let ca = if i % 3 == 2 { "ec-ca" } else { "rsa-ca" };
        s.push_str(&format!(
            r#"
[[render]]
name = "leaf-{i:02}.conf"
template = "kubeconfig.hbs"
path = "conf/leaf-{i:02}.conf"
bind = {{ ca = "{ca}", client = "leaf-{i:02}" }}
secrets = ["client"]
vars = {{ cluster = "test", server = "https://127.0.0.1:6443" }}
"#
        ));
    }
    s
}

const CA_KEYS: [&str; 2] = ["ca/rsa-ca.key", "ca/ec-ca.key"];
const WATCHED: [&str; 4] = ["ca", "leaves", "keys", "conf"];

/// `cargo xtask pki ARGS` on `f`, started and not waited for (killed if the test fails).
fn spawn(f: &Fixture, args: &[&str]) -> Proc {
    Proc::spawn(f.command(args).stdout(Stdio::null()).stderr(Stdio::null()))
}

/// The modification times of the output folders: a write (a temporary file created, a rename)
/// changes one.
fn folder_times(f: &Fixture) -> Vec<Option<(i64, i64)>> {
    WATCHED
        .iter()
        .map(|d| {
            std::fs::metadata(f.path(d))
                .ok()
                .map(|m| (m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

/// Waits for `pred` or for the child's exit, whichever comes first; a generous bound only
/// keeps a broken tool from hanging the suite.
fn wait_for(child: &mut Proc, mut pred: impl FnMut() -> bool) -> Option<ExitStatus> {
    poll(
        Duration::from_secs(300),
        Duration::from_millis(1),
        || match child.exited() {
            Some(status) => Some(Some(status)),
            None => pred().then_some(None),
        },
    )
    .expect("the tool neither wrote nor exited")
}

/// Starts a run, waits until it starts writing, lets it go on for `delay`, then SIGKILLs it.
/// Returns the exit status if it finished by itself first.
fn kill_while_writing(f: &Fixture, args: &[&str], delay: Duration) -> Option<ExitStatus> {
    let before = folder_times(f);
    let mut child = spawn(f, args);
    if let Some(status) = wait_for(&mut child, || folder_times(f) != before) {
        return Some(status);
    }
    std::thread::sleep(delay);
    if let Some(status) = child.exited() {
        return Some(status);
    }
    child.kill();
    None
}

fn is_temp(path: &Path) -> bool {
    kubepki::layout::is_temp_name(&path.file_name().unwrap().to_string_lossy())
}

/// What a killed run may leave: every file present is whole. Returns the temporary files.
fn assert_every_file_whole(f: &Fixture) -> Vec<String> {
    let mut temps = Vec::new();
    for path in files_under(&f.out()) {
        let rel = path
            .strip_prefix(f.out())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if is_temp(&path) {
            temps.push(rel);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let ext = rel.rsplit('.').next().unwrap_or("");
        let whole = match ext {
            "crt" => kubepki::x509::parse_cert(&bytes).map(|_| ()),
            "key" => kubepki::x509::parse_key(&bytes).map(|_| ()),
            "pub" => kubepki::x509::parse_public_key(&bytes).map(|_| ()),
            "conf" => kubeconfig_pair(&bytes).map(|_| ()),
            "txt" => {
                let t = String::from_utf8_lossy(&bytes);
                if t.starts_with("# Generated") && t.ends_with('\n') && t.contains("[ca rsa-ca]") {
                    Ok(())
                } else {
                    Err("truncated inventory".into())
                }
            }
            "lock" => Ok(()),
            _ => Err(format!("unexpected file {rel}")),
        };
        if let Err(e) = whole {
            panic!("{rel} is not whole after a kill: {e}");
        }
    }
    temps
}

/// The certificate and key a kubeconfig embeds (both must parse).
fn kubeconfig_pair(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let v = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .ok_or(format!("no {name}"))?;
        unbase64(v.trim())
    };
    let cert = field("client-certificate-data:")?;
    let key = field("client-key-data:")?;
    let cert_spki = kubepki::x509::parse_cert(&cert)?.spki;
    let key_spki = kubepki::x509::parse_key(&key)?.spki;
    Ok((cert_spki, key_spki))
}

/// Records each CA key the first time it exists; afterwards it must never change.
fn assert_ca_keys_kept(f: &Fixture, seen: &mut BTreeMap<&'static str, String>) {
    for rel in CA_KEYS {
        let Ok(bytes) = std::fs::read(f.path(rel)) else {
            assert!(!seen.contains_key(rel), "{rel} disappeared");
            continue;
        };
        let hash = kubepki::x509::sha256_hex(&bytes);
        let first = seen.entry(rel).or_insert_with(|| hash.clone());
        assert_eq!(*first, hash, "{rel} was replaced after it existed");
    }
}

/// After a kill, the read-only check still understands out/: no error, and the temporary files
/// are not orphans.
fn assert_checkable(f: &Fixture, temps: &[String]) {
    let r = f.pki(&["--check", "--prune"]);
    assert!(
        r.code == 0 || r.code == 1,
        "out/ after a kill is not usable:\n{}",
        r.all()
    );
    for t in temps {
        assert!(
            !r.stdout
                .lines()
                .any(|l| l.contains("orphan") && l.contains(t)),
            "{t} taken for a real file:\n{}",
            r.stdout
        );
    }
}

/// The final tree: every certificate verifies with openssl under its CA, every key is its
/// certificate's, every kubeconfig embeds a matching pair, and nothing is left to do.
fn assert_whole_tree(f: &Fixture) {
    let mut by_ca: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    for i in 0..LEAVES {
        let ca = if i % 3 == 2 {
            "ca/ec-ca.crt"
        } else {
            "ca/rsa-ca.crt"
        };
        by_ca
            .entry(ca)
            .or_default()
            .push(f.path(&format!("leaves/leaf-{i:02}.crt")));
        let cert = cert_facts(&f.path(&format!("leaves/leaf-{i:02}.crt")));
        let key = key_facts(&f.path(&format!("leaves/leaf-{i:02}.key")));
        assert_eq!(
            cert.spki, key.spki,
            "leaf-{i:02}: key and certificate differ"
        );
    }
    for (ca, certs) in &by_ca {
        let certs: Vec<&Path> = certs.iter().map(PathBuf::as_path).collect();
        for purpose in ["sslserver", "sslclient"] {
            let r = openssl_verify(&f.path(ca), &certs, purpose, &[]);
            assert_eq!(r.code, 0, "under {ca}: {}", r.all());
            assert_eq!(
                r.stdout.matches(": OK").count(),
                certs.len(),
                "{}",
                r.stdout
            );
        }
        let key = ca.replace(".crt", ".key");
        assert_eq!(
            cert_facts(&f.path(ca)).spki,
            key_facts(&f.path(&key)).spki,
            "{ca}"
        );
    }
    for i in 0..6 {
        let (cert, key) = kubeconfig_pair(&f.bytes(&format!("conf/leaf-{i:02}.conf"))).unwrap();
        assert_eq!(cert, key, "conf/leaf-{i:02}.conf embeds a mismatched pair");
        assert_eq!(
            cert,
            cert_facts(&f.path(&format!("leaves/leaf-{i:02}.crt"))).spki,
            "conf/leaf-{i:02}.conf is stale"
        );
    }
    let r = f.pki(&["--check", "--prune"]);
    assert_eq!(r.code, 0, "a completed run left work:\n{}", r.all());
    let temps: Vec<_> = files_under(&f.out())
        .into_iter()
        .filter(|p| is_temp(p))
        .collect();
    assert!(temps.is_empty(), "temporary files remain: {temps:?}");
}

#[test]
fn sigkill_at_many_points_never_corrupts_and_a_rerun_completes() {
    let f = Fixture::new(&big_spec());
    let mut ca_keys = BTreeMap::new();
    let (mut kills, mut with_temps, mut finished) = (0, 0, 0);
    // Kill points: from the first write on, after a delay that varies from run to run, from at
    // once to well into the write phase (each write is fsynced, file and folder, so writing a
    // tree this size takes a while).
    let delays = [0u64, 2, 10, 40, 120, 300, 600, 1000, 1500, 2200];
    let delay = |n: usize| Duration::from_millis(delays[n % delays.len()]);

    // The first generation, killed at eight points (each rerun goes on from what the last one
    // finished), then completed by an uninterrupted rerun.
    let mut n = 0;
    for _ in 0..8 {
        let status = kill_while_writing(&f, &[], delay(n));
        n += 1;
        let temps = assert_every_file_whole(&f);
        assert_ca_keys_kept(&f, &mut ca_keys);
        match status {
            Some(s) => {
                assert!(s.success(), "a run failed after earlier kills");
                finished += 1;
                break;
            }
            None => {
                kills += 1;
                with_temps += usize::from(!temps.is_empty());
                assert_checkable(&f, &temps);
            }
        }
    }
    f.apply(&[]);
    assert_ca_keys_kept(&f, &mut ca_keys);
    assert_eq!(ca_keys.len(), 2, "both CA keys exist after a completed run");
    assert_whole_tree(&f);

    // Then half the leaves re-keyed at once (as a rotation does), killed at eight more points.
    let leaves: Vec<String> = (0..LEAVES / 2).map(|i| format!("leaf-{i:02}")).collect();
    let mut args = vec!["--rekey"];
    args.extend(leaves.iter().map(String::as_str));
    for _ in 0..8 {
        let status = kill_while_writing(&f, &args, delay(n));
        n += 1;
        let temps = assert_every_file_whole(&f);
        assert_ca_keys_kept(&f, &mut ca_keys);
        match status {
            Some(s) => {
                assert!(s.success(), "a --rekey run failed after earlier kills");
                finished += 1;
            }
            None => {
                kills += 1;
                with_temps += usize::from(!temps.is_empty());
                assert_checkable(&f, &temps);
            }
        }
    }

    // The final, uninterrupted rerun repairs whatever the last kill left.
    let r = f.apply(&[]);
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("- orphan")),
        "{}",
        r.stdout
    );
    assert_ca_keys_kept(&f, &mut ca_keys);
    assert_whole_tree(&f);
    eprintln!("{kills} kills ({with_temps} left temporary files), {finished} runs finished");
}

/// A small tree for the tests below.
const SMALL: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "ca"
cn = "test-ca"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "server"
issuer = "ca"
cn = "server"
dns = ["server.example"]
usage = ["server"]
cert = "pki/server.crt"
key = "pki/server.key"

[[cert]]
name = "client"
issuer = "ca"
cn = "client"
usage = ["client"]
cert = "pki/client.crt"
key = "pki/client.key"
"#;

#[test]
fn stale_temporary_files_are_removed_never_used() {
    let f = Fixture::new(SMALL);
    f.apply(&[]);
    let server_key = f.bytes("pki/server.key");
    // What a run killed mid-write leaves: half a key, and a whole certificate that was never
    // renamed into place (it must not be taken for the missing pki/client.crt).
    std::fs::remove_file(f.path("pki/client.crt")).unwrap();
    let planted = [
        (
            "pki/.server.key.tmp-999999",
            server_key[..server_key.len() / 2].to_vec(),
        ),
        ("pki/.client.crt.tmp-4242", f.bytes("pki/server.crt")),
        (".inventory.txt.tmp-77", b"# Generated by".to_vec()),
    ];
    // Names that only look alike are the user's files: orphans, left alone.
    let lookalikes = ["pki/server.key.tmp-1", "pki/.server.key.tmp-x1"];
    for (rel, bytes) in &planted {
        std::fs::write(f.path(rel), bytes).unwrap();
    }
    for rel in lookalikes {
        std::fs::write(f.path(rel), b"mine").unwrap();
    }

    let r = f.pki(&["--check", "--prune"]);
    assert_eq!(r.code, 1, "{}", r.all());
    for (rel, _) in &planted {
        assert!(
            r.stdout.contains(&format!(
                "note: out/{rel} is a temporary file of an interrupted run; the next run removes it"
            )),
            "{rel}:\n{}",
            r.stdout
        );
        assert!(
            !r.stdout
                .lines()
                .any(|l| l.contains("orphan") && l.contains(rel)),
            "{rel} taken for a real file:\n{}",
            r.stdout
        );
    }
    for rel in lookalikes {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.contains("orphan") && l.contains(rel)),
            "{rel} is not the tool's:\n{}",
            r.stdout
        );
    }

    let r = f.apply(&[]);
    for (rel, _) in &planted {
        assert!(
            r.stdout.contains(&format!(
                "removed out/{rel}: a temporary file of an interrupted run"
            )),
            "{rel}:\n{}",
            r.stdout
        );
        assert!(!f.path(rel).exists(), "{rel} remains");
    }
    for rel in lookalikes {
        assert_eq!(f.bytes(rel), b"mine", "{rel}");
    }
    assert_eq!(f.bytes("pki/server.key"), server_key);
    let client = cert_facts(&f.path("pki/client.crt"));
    assert_eq!(
        client.subject.cn.as_deref(),
        Some("client"),
        "the temporary file was used"
    );
    let r = openssl_verifies(
        &f.path("pki/ca.crt"),
        &f.path("pki/client.crt"),
        "sslclient",
    );
    assert_eq!(r.code, 0, "{}", r.all());
}

const LOCKED: &str = "another `cargo xtask pki` is writing";

/// Waits (a few seconds at most) until nobody holds `lock`. A lock this test process dropped can
/// still be held for a moment by a child another test is starting: a forked child shares the
/// open file until its `exec` closes it (close-on-exec), and tests run in parallel.
fn wait_until_unlocked(lock: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let file = File::options().write(true).open(lock).unwrap();
        if file.try_lock().is_ok() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} stayed locked after the test released it",
            lock.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_second_run_refuses_while_the_lock_is_held() {
    let f = Fixture::new(SMALL);
    f.apply(&[]);
    std::fs::remove_file(f.path("pki/client.crt")).unwrap();
    let before = f.hashes();
    let lock = File::options()
        .write(true)
        .open(f.path(".kubepki.lock"))
        .unwrap();
    lock.try_lock().expect("the lock is free between runs");

    for args in [&[][..], &["--rekey", "server"][..], &["--prune"][..]] {
        let r = f.pki(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(r.stderr.contains(LOCKED), "{}", r.stderr);
        assert!(r.stderr.contains(".kubepki.lock"), "{}", r.stderr);
        assert!(
            r.stderr.contains("wait for it to finish, then rerun"),
            "{}",
            r.stderr
        );
        assert_eq!(
            f.hashes(),
            before,
            "{args:?} wrote while another run held the lock"
        );
    }
    // --check only reads, and takes no lock.
    let r = f.pki(&["--check"]);
    assert_eq!(r.code, 1, "{}", r.all());

    drop(lock);
    wait_until_unlocked(&f.path(".kubepki.lock"));
    let r = f.apply(&[]);
    assert!(r.stdout.contains("re-sign"), "{}", r.stdout);
    assert_eq!(
        openssl_verifies(
            &f.path("pki/ca.crt"),
            &f.path("pki/client.crt"),
            "sslclient"
        )
        .code,
        0
    );
}

/// Whether process `pid` holds a flock (from /proc/locks).
fn holds_flock(pid: u32) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        !l.contains("->")
            && w.get(1) == Some(&"FLOCK")
            && w.get(4) == Some(&pid.to_string().as_str())
    })
}

#[test]
fn two_runs_at_once_never_interleave() {
    let f = Fixture::new(&big_spec());
    f.apply(&[]);
    let before = f.hashes();
    let leaves: Vec<String> = (0..LEAVES).map(|i| format!("leaf-{i:02}")).collect();
    let mut args = vec!["--rekey"];
    args.extend(leaves.iter().map(String::as_str));
    // The first run takes the lock before it plans, and holds it while it makes keys and writes.
    // (A machine so loaded that the whole run passes unseen gets another try.)
    let mut first = None;
    for _ in 0..5 {
        let mut child = spawn(&f, &args);
        let pid = child.id();
        match wait_for(&mut child, || holds_flock(pid)) {
            None => {
                first = Some(child);
                break;
            }
            Some(status) => assert!(status.success(), "the first run failed"),
        }
    }
    let mut first = first.expect("the first run was never seen holding the lock");
    let second = f.pki(&[]);
    let first_running = first.exited().is_none();
    let status = first.child.wait().unwrap();
    assert!(status.success(), "the first run failed");
    if first_running {
        // The second run lived entirely while the first held the lock.
        assert_eq!(second.code, 2, "{}", second.all());
        assert!(second.stderr.contains(LOCKED), "{}", second.stderr);
    } else {
        assert!(second.code == 0 || second.code == 2, "{}", second.all());
    }
    // Whatever the order, the result is the first run's, whole.
    let after = f.hashes();
    for i in 0..LEAVES {
        let rel = format!("leaves/leaf-{i:02}.key");
        assert_ne!(before[&rel], after[&rel], "{rel} was not re-keyed");
    }
    for rel in CA_KEYS {
        assert_eq!(before[rel], after[rel], "{rel}");
    }
    assert_whole_tree(&f);
}
