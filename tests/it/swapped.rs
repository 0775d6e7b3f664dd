//! Damage that is not a crash: files of two CAs swapped, a replaced CA or service-account key,
//! links and special files where the tool's own files go, names that are not UTF-8, huge strays,
//! an output folder that is a file, and a umask that would open every folder. Each is refused or
//! handled without reading what it need not read and without replacing a key.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

const NOW: &str = "2026-06-01T00:00:00Z";

/// kubeadm's three roots, two leaves under the Kubernetes CA, one under the front-proxy CA, and
/// the service-account key pair (its private key alone in `keys/`).
fn spec() -> String {
    format!(
        r#"{KUBEADM_ROOTS}
[[cert]]
name = "apiserver"
issuer = "kubernetes-ca"
cn = "kube-apiserver"
dns = ["kubernetes"]
usage = ["server"]
cert = "pki/apiserver.crt"
key = "pki/apiserver.key"

[[cert]]
name = "admin"
issuer = "kubernetes-ca"
cn = "kubernetes-admin"
usage = ["client"]
cert = "pki/admin.crt"
key = "pki/admin.key"

[[cert]]
name = "front-proxy-client"
issuer = "front-proxy-ca"
cn = "front-proxy-client"
usage = ["client"]
cert = "pki/front-proxy-client.crt"
key = "pki/front-proxy-client.key"

[[keypair]]
name = "sa"
private = "keys/sa.key"
public = "pki/sa.pub"
"#
    )
}

/// A fixture of `spec()`, generated.
fn generated() -> Fixture {
    let f = Fixture::new(&spec());
    f.apply(&["--now", NOW]);
    f
}

/// `pki ARGS --now NOW` on `f`.
fn pki(f: &Fixture, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--now", NOW]);
    f.pki(&all)
}

/// `cmd` run through `sh -c SCRIPT`, the script ending in `exec "$@"` with `cmd`'s program and
/// arguments (and its folder and environment).
fn through_sh(script: &str, cmd: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("{script}; exec \"$@\""))
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(d) = cmd.get_current_dir() {
        sh.current_dir(d);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

fn mkfifo(path: &Path) {
    let r = run(Command::new("mkfifo").arg(path));
    assert_eq!(r.code, 0, "mkfifo {}: {}", path.display(), r.stderr);
}

fn swap(f: &Fixture, a: &str, b: &str) {
    let tmp = f.root().join("swap");
    std::fs::rename(f.path(a), &tmp).unwrap();
    std::fs::rename(f.path(b), f.path(a)).unwrap();
    std::fs::rename(&tmp, f.path(b)).unwrap();
}

/// Asserts the run stopped (exit 2) with `needles` in its error, and wrote nothing.
fn assert_refused(
    f: &Fixture,
    r: &Run,
    before: &std::collections::BTreeMap<String, String>,
    needles: &[&str],
) {
    assert_stopped(r, needles);
    assert_eq!(&f.hashes(), before, "a refused run wrote something");
}

/// Asserts the run stopped (exit 2) with each of `needles` in its error.
fn assert_stopped(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 2, "{}", r.all());
    for n in needles {
        assert!(r.stderr.contains(n), "`{n}` missing from:\n{}", r.stderr);
    }
}

#[test]
fn two_cas_whose_files_were_swapped_stop_the_run() {
    let f = generated();
    // Their keys alone: each CA is told whose key it holds.
    swap(&f, "pki/ca.key", "pki/front-proxy-ca.key");
    let before = f.hashes();
    let r = pki(&f, &[]);
    assert_refused(
        &f,
        &r,
        &before,
        &[
            "kubernetes-ca: pki/ca.key holds `front-proxy-ca`'s key",
            "front-proxy-ca: pki/front-proxy-ca.key holds `kubernetes-ca`'s key",
        ],
    );
    swap(&f, "pki/ca.key", "pki/front-proxy-ca.key");
    // Certificates and keys alike (a mixed-up restore): each pair is whole, but another CA's.
    swap(&f, "pki/ca.crt", "pki/front-proxy-ca.crt");
    swap(&f, "pki/ca.key", "pki/front-proxy-ca.key");
    let before = f.hashes();
    let r = pki(&f, &[]);
    assert_refused(
        &f,
        &r,
        &before,
        &[
            "kubernetes-ca: pki/ca.key holds `front-proxy-ca`'s key",
            "front-proxy-ca: pki/front-proxy-ca.key holds `kubernetes-ca`'s key",
            "--rekey kubernetes-ca",
        ],
    );
    // Swapped back, the tree is as it was: nothing to do.
    swap(&f, "pki/ca.crt", "pki/front-proxy-ca.crt");
    swap(&f, "pki/ca.key", "pki/front-proxy-ca.key");
    let r = pki(&f, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("nothing written"), "{}", r.stdout);
}

#[test]
fn two_cas_whose_paths_were_swapped_in_pki_toml_stop_the_run() {
    let f = generated();
    let swapped = spec()
        .replace("pki/ca.", "pki/SWAP.")
        .replace("pki/front-proxy-ca.", "pki/ca.")
        .replace("pki/SWAP.", "pki/front-proxy-ca.");
    f.set_spec(&swapped);
    let before = f.hashes();
    let r = pki(&f, &[]);
    assert_refused(
        &f,
        &r,
        &before,
        &["kubernetes-ca: pki/front-proxy-ca.key holds `front-proxy-ca`'s key"],
    );
}

#[test]
fn a_ca_key_and_certificate_replaced_together_stop_the_run_until_rekey() {
    let f = generated();
    let other = generated();
    for rel in ["pki/ca.crt", "pki/ca.key"] {
        std::fs::copy(other.path(rel), f.path(rel)).unwrap();
    }
    let before = f.hashes();
    let r = pki(&f, &[]);
    assert_refused(
        &f,
        &r,
        &before,
        &[
            "kubernetes-ca: pki/ca.key holds another key than the one inventory.txt records",
            "restore the file from a backup",
            "--rekey kubernetes-ca",
        ],
    );
    // A new key on purpose: `--rekey` records it, and the next run has nothing to do.
    f.apply(&["--rekey", "kubernetes-ca", "--now", NOW]);
    let r = pki(&f, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("nothing written"), "{}", r.stdout);
}

#[test]
fn a_rekey_killed_before_the_inventory_is_finished_by_the_same_rekey() {
    let f = generated();
    let inventory = f.bytes("inventory.txt");
    f.apply(&["--rekey", "kubernetes-ca", "--rekey", "sa", "--now", NOW]);
    // A kill just before the inventory (written last) leaves the new keys with the old record.
    std::fs::write(f.path("inventory.txt"), &inventory).unwrap();
    let r = pki(&f, &[]);
    assert_stopped(
        &r,
        &[
            "an interrupted `--rekey kubernetes-ca` is finished by running it again",
            "an interrupted `--rekey sa` is finished by running it again",
        ],
    );
    f.apply(&["--rekey", "kubernetes-ca", "--rekey", "sa", "--now", NOW]);
    assert!(pki(&f, &[]).stdout.contains("nothing written"));
}

#[test]
fn a_tree_without_an_inventory_pins_what_is_there() {
    let f = generated();
    let other = generated();
    for rel in ["pki/ca.crt", "pki/ca.key"] {
        std::fs::copy(other.path(rel), f.path(rel)).unwrap();
    }
    // No record (a tree made before pins, or the user's way to accept the keys in place): the
    // run never blocks, and its inventory pins the keys it found.
    std::fs::remove_file(f.path("inventory.txt")).unwrap();
    let r = pki(&f, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        key_facts(&f.path("pki/ca.key")).spki,
        key_facts(&other.path("pki/ca.key")).spki
    );
    let r = pki(&f, &[]);
    assert!(r.stdout.contains("nothing written"), "{}", r.all());
}

#[test]
fn a_replaced_service_account_key_stops_the_run_and_sa_pub_is_kept() {
    let f = generated();
    let other = generated();
    std::fs::copy(other.path("keys/sa.key"), f.path("keys/sa.key")).unwrap();
    let before = f.hashes();
    let r = pki(&f, &[]);
    assert_refused(
        &f,
        &r,
        &before,
        &[
            "sa: keys/sa.key holds another key",
            "service-account tokens",
            "--rekey sa",
        ],
    );
    // Another item's key there is named.
    std::fs::copy(f.path("pki/admin.key"), f.path("keys/sa.key")).unwrap();
    let r = pki(&f, &[]);
    assert_stopped(&r, &["keys/sa.key holds `admin`'s key"]);
    f.apply(&["--rekey", "sa", "--now", NOW]);
    assert!(pki(&f, &[]).stdout.contains("nothing written"));
}

#[test]
fn an_external_ca_whose_certificate_changed_key_stops_the_run() {
    let f = generated();
    std::fs::remove_file(f.path("pki/ca.key")).unwrap();
    let r = pki(&f, &[]);
    assert_eq!(r.code, 0, "an external CA is fine: {}", r.all());
    let other = generated();
    std::fs::copy(other.path("pki/ca.crt"), f.path("pki/ca.crt")).unwrap();
    let before = f.hashes();
    let r = pki(&f, &[]);
    assert_refused(
        &f,
        &r,
        &before,
        &["kubernetes-ca: pki/ca.crt holds another key", "external CA"],
    );
}

#[test]
fn the_lock_file_is_never_followed_through_a_link() {
    let f = generated();
    let outside = f.root().join("outside.lock");
    std::fs::remove_file(f.path(".kubepki.lock")).unwrap();
    symlink(&outside, f.path(".kubepki.lock")).unwrap();
    let r = pki(&f, &[]);
    assert_stopped(&r, &[".kubepki.lock", "symlink"]);
    assert!(!outside.exists(), "the lock followed the link");
}

#[test]
fn a_fifo_as_the_lock_file_is_refused_at_once() {
    let f = generated();
    std::fs::remove_file(f.path(".kubepki.lock")).unwrap();
    mkfifo(&f.path(".kubepki.lock"));
    let mut cmd = f.command(&["--now", NOW]);
    let r =
        run_with_timeout(&mut cmd, Duration::from_secs(30)).expect("the run blocked on the FIFO");
    assert_stopped(&r, &["a FIFO, not a regular file"]);
}

#[test]
fn a_folder_where_a_ca_key_goes_is_a_problem_not_an_external_ca() {
    let f = generated();
    std::fs::remove_file(f.path("pki/ca.key")).unwrap();
    std::fs::create_dir(f.path("pki/ca.key")).unwrap();
    let r = pki(&f, &["--check"]);
    assert_stopped(&r, &["pki/ca.key is a folder, not a file"]);
    assert!(!r.stdout.contains("external"), "{}", r.stdout);
}

#[test]
fn a_link_to_a_folder_where_a_ca_key_goes_is_a_problem_not_an_external_ca() {
    let f = generated();
    std::fs::remove_file(f.path("pki/ca.key")).unwrap();
    symlink(f.root(), f.path("pki/ca.key")).unwrap();
    let r = pki(&f, &["--check"]);
    assert_stopped(&r, &["pki/ca.key is a symlink to a folder, not a file"]);
}

#[test]
fn a_fifo_or_socket_where_a_key_goes_is_named_by_the_plan_never_opened() {
    let f = generated();
    std::fs::remove_file(f.path("pki/admin.key")).unwrap();
    mkfifo(&f.path("pki/admin.key"));
    std::fs::remove_file(f.path("pki/front-proxy-ca.key")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(f.path("pki/front-proxy-ca.key")).unwrap();
    let before = f.hashes();
    let mut cmd = f.command(&["--now", NOW]);
    let r =
        run_with_timeout(&mut cmd, Duration::from_secs(30)).expect("the run blocked on the FIFO");
    assert_refused(
        &f,
        &r,
        &before,
        &[
            "pki/admin.key is a FIFO, not a regular file, where a file of the PKI goes",
            "pki/front-proxy-ca.key is a socket, not a regular file",
        ],
    );
}

#[test]
fn a_folder_where_the_inventory_goes_stops_the_run_before_anything_is_written() {
    let f = generated();
    std::fs::remove_file(f.path("inventory.txt")).unwrap();
    std::fs::create_dir(f.path("inventory.txt")).unwrap();
    let before = f.hashes();
    let r = pki(&f, &["--rekey", "admin"]);
    assert_refused(&f, &r, &before, &["inventory.txt is a folder, not a file"]);
}

#[test]
fn a_stray_fifo_is_an_orphan_never_opened() {
    let f = generated();
    mkfifo(&f.path("pki/stray"));
    let mut cmd = f.command(&["--now", NOW]);
    let r =
        run_with_timeout(&mut cmd, Duration::from_secs(30)).expect("the run blocked on the FIFO");
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("orphan    pki/stray"), "{}", r.stdout);
    let mut cmd = f.command(&["--prune", "--now", NOW]);
    let r =
        run_with_timeout(&mut cmd, Duration::from_secs(30)).expect("the run blocked on the FIFO");
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!f.path("pki/stray").exists());
}

#[test]
fn names_that_are_not_utf8_are_reported_never_removed_and_block_nothing() {
    let f = generated();
    let name = |bytes: &[u8]| f.path("pki").join(OsStr::from_bytes(bytes));
    let temp_like = name(b".\xff.key.tmp-123");
    let orphan = name(b"\xfe.crt");
    std::fs::write(&temp_like, b"x").unwrap();
    std::fs::write(&orphan, b"y").unwrap();
    for args in [&[][..], &["--prune"][..], &["--rekey", "admin"][..]] {
        let r = pki(&f, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.all());
        assert!(r.stdout.contains(r"pki/\xfe.crt"), "{}", r.stdout);
        assert!(r.stdout.contains(r"pki/.\xff.key.tmp-123"), "{}", r.stdout);
        assert!(
            temp_like.exists() && orphan.exists(),
            "{args:?} removed a file by a lossy name"
        );
    }
}

#[test]
fn folders_get_explicit_modes_whatever_the_umask() {
    let f = Fixture::new(&spec());
    let cmd = f.command(&["--now", NOW]);
    let r = run(&mut through_sh("umask 000", &cmd));
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(mode(&f.out()), 0o755, "out/");
    assert_eq!(mode(&f.path("pki")), 0o755, "out/pki");
    assert_eq!(mode(&f.path("pki/etcd")), 0o755, "out/pki/etcd");
    assert_eq!(mode(&f.path("keys")), 0o700, "out/keys holds only keys");
    assert_eq!(mode(&f.path("keys/sa.key")), 0o600);
    assert_eq!(mode(&f.path("pki/ca.crt")), 0o644);
}

/// A process limited to 1 GiB of address space: reading a 2 GiB file into memory fails there (the
/// allocation aborts the run), so a run that succeeds did not read it.
const ONE_GIB_OF_MEMORY: &str = "ulimit -v 1048576";

#[test]
fn a_huge_stray_or_declared_file_is_never_read() {
    let f = generated();
    let huge = |rel: &str| {
        let file = std::fs::File::create(f.path(rel)).unwrap();
        file.set_len(2 << 30).unwrap();
    };
    huge("stray.bin");
    huge("pki/apiserver.crt");
    let cmd = f.command(&["--now", NOW]);
    let start = Instant::now();
    let r = run(&mut through_sh(ONE_GIB_OF_MEMORY, &cmd));
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(r.stdout.contains("orphan    stray.bin"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("pki/apiserver.crt is 2147483648 bytes, more than any certificate or key"),
        "{}",
        r.stdout
    );
    assert!(
        std::fs::metadata(f.path("pki/apiserver.crt"))
            .unwrap()
            .len()
            < 4096
    );
}

/// `cargo xtask pki` on `f`'s pki.toml with `--out` naming `out`.
fn with_out(f: &Fixture, out: &Path, args: &[&str]) -> Run {
    let mut cmd = xtask_on("pki", f.root(), out);
    cmd.args(args)
        .args(["--now", NOW])
        .current_dir(f.root())
        .env("NO_COLOR", "1")
        .env_remove("SOURCE_DATE_EPOCH");
    run(&mut cmd)
}

#[test]
fn an_output_folder_that_is_a_file_exits_2_in_every_mode() {
    let f = Fixture::new(&spec());
    let file = f.root().join("out-file");
    std::fs::write(&file, b"not a folder").unwrap();
    for args in [
        &["--check"][..],
        &[][..],
        &["--prune"][..],
        &["--check", "--diff"][..],
    ] {
        let r = with_out(&f, &file, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(
            r.stderr.contains("out-file: it is a file, not a folder"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a folder");
}

#[test]
fn a_failed_write_names_the_file_not_its_temporary_name() {
    let f = Fixture::new(&spec());
    // Files may be at most 512 bytes (SIGXFSZ ignored, so the write fails with EFBIG): keys fit,
    // a certificate does not.
    let cmd = f.command(&["--now", NOW]);
    let r = run(&mut through_sh("trap '' XFSZ; ulimit -f 1", &cmd));
    assert_stopped(&r, &["failed to write ", ".crt: file too large"]);
    assert!(!r.stderr.contains(".tmp-"), "{}", r.stderr);
}
