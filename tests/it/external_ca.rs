//! External CAs, chains and files that move or are left behind: what a run does when a CA's key
//! is elsewhere, when a root is added above an existing CA, when files moved, and when a node is
//! removed. Certificates are judged by openssl as they are written.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// The clock of every fixture's first run.
const T0: &str = "2026-01-01T00:00:00Z";

/// One CA, a server certificate and a client certificate under it, and a kubeconfig of the
/// client.
const ONE_CA: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "kubernetes-ca"
cn = "kubernetes"
cert = "pki/ca.crt"
key = "pki/ca.key"

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
o = ["kubeadm:cluster-admins"]
usage = ["client"]
cert = "pki/users/admin.crt"
key = "pki/users/admin.key"

[[render]]
name = "admin.conf"
template = "kubeconfig.hbs"
path = "admin.conf"
bind = { ca = "kubernetes-ca", client = "admin" }
secrets = ["client"]
vars = { cluster = "kubernetes", server = "https://10.0.0.1:6443" }
"#;

/// A fixture of `spec`, generated at `T0`.
fn generated(spec: &str) -> Fixture {
    let f = Fixture::new(spec);
    f.apply(&["--now", T0]);
    f
}

/// The plan lines of `stdout` as (action, item).
fn actions(stdout: &str) -> Vec<(String, String)> {
    plan_lines(stdout)
        .into_iter()
        .map(|(a, n, _)| (a, n))
        .collect()
}

fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter()
        .map(|(a, n)| (a.to_string(), n.to_string()))
        .collect()
}

/// `openssl verify` of `cert` against the roots in `ca_file`, with `untrusted` intermediates, an
/// hour after `T0`.
fn openssl_verify_file(ca_file: &Path, untrusted: Option<&Path>, cert: &Path) -> Run {
    openssl_verify_at(ca_file, untrusted, cert, T0)
}

/// `openssl verify` of `cert` an hour after `at`.
fn openssl_verify_at(ca_file: &Path, untrusted: Option<&Path>, cert: &Path, at: &str) -> Run {
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-x509_strict", "-attime"])
        .arg(epoch(at).to_string())
        .arg("-CAfile")
        .arg(ca_file);
    if let Some(u) = untrusted {
        cmd.arg("-untrusted").arg(u);
    }
    run(cmd.arg(cert))
}

/// The machine's clock, to the second, as `--now` takes it: for runs after openssl or cfssl
/// signed with the real clock (their certificates are not valid before it).
fn wall_clock() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .expect("a formattable time")
}

/// Seconds since the epoch of an RFC 3339 time, an hour after it (certificates are valid then).
fn epoch(t: &str) -> i64 {
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 time");
    t.unix_timestamp() + 3600
}

// ---------------------------------------------------------------------------------------------
// 7. A root added above an existing CA re-signs only that CA.

#[test]
fn a_root_added_above_an_existing_ca_re_signs_only_that_ca() {
    let f = generated(ONE_CA);
    let kept = ["pki/ca.key", "pki/apiserver.crt", "pki/users/admin.crt"];
    let before: Vec<Vec<u8>> = kept.iter().map(|p| f.bytes(p)).collect();
    f.edit_spec(
        "[[ca]]\nname = \"kubernetes-ca\"\ncn = \"kubernetes\"\n",
        "[[ca]]\nname = \"root\"\ncn = \"offline-root\"\ncert = \"pki/root.crt\"\nkey = \"pki/root.key\"\n\n\
         [[ca]]\nname = \"kubernetes-ca\"\ncn = \"kubernetes\"\nissuer = \"root\"\n",
    );
    let r = f.apply(&["--now", T0]);
    assert_eq!(
        actions(&r.stdout),
        // The kubeconfig embeds the CA's certificate, which is new; nothing else changes.
        pairs(&[
            ("create", "root"),
            ("re-sign", "kubernetes-ca"),
            ("re-render", "admin.conf"),
        ]),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("issuer root is new"), "{}", r.stdout);
    let after: Vec<Vec<u8>> = kept.iter().map(|p| f.bytes(p)).collect();
    assert!(before == after, "a file below the CA was rewritten");
    // What the CA signed before still chains, through the re-signed CA, to the new root.
    for leaf in ["pki/apiserver.crt", "pki/users/admin.crt"] {
        let v = openssl_verify_file(
            &f.path("pki/root.crt"),
            Some(&f.path("pki/ca.crt")),
            &f.path(leaf),
        );
        assert_eq!(v.code, 0, "{leaf}: {}", v.all());
    }
    let r = f.pki(&["--now", T0, "--check"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

// ---------------------------------------------------------------------------------------------
// 8. The commands that move files run as printed, in the output folder the user named.

#[test]
fn the_printed_move_commands_run_as_printed_in_the_named_output_folder() {
    let f = Fixture::new(ONE_CA);
    let pki = |args: &[&str]| {
        let root = f.root();
        run(xtask_on("pki", root, &root.join("build/pki-out"))
            .args(args)
            .current_dir(root)
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH"))
    };
    let r = pki(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    let key = std::fs::read(f.root().join("build/pki-out/pki/apiserver.key")).unwrap();
    f.edit_spec(
        "cert = \"pki/apiserver.crt\"\nkey = \"pki/apiserver.key\"",
        "cert = \"nodes/cp-1/pki/apiserver.crt\"\nkey = \"nodes/cp-1/pki/apiserver.key\"",
    );
    let r = pki(&["--now", T0]);
    assert_eq!(r.code, 2, "{}", r.all());
    let want = "`mkdir -p build/pki-out/nodes/cp-1/pki && mv build/pki-out/pki/apiserver.crt build/pki-out/nodes/cp-1/pki/apiserver.crt && mv build/pki-out/pki/apiserver.key build/pki-out/nodes/cp-1/pki/apiserver.key`";
    assert!(r.stderr.contains(want), "{}", r.stderr);
    let command = want.trim_matches('`');
    let sh = run(Command::new("sh")
        .args(["-c", command])
        .current_dir(f.root()));
    assert_eq!(sh.code, 0, "`{command}` failed as printed: {}", sh.all());
    let r = pki(&["--now", T0]);
    assert_eq!(r.code, 0, "{}", r.all());
    let moved = std::fs::read(f.root().join("build/pki-out/nodes/cp-1/pki/apiserver.key")).unwrap();
    assert!(moved == key, "the moved key was replaced");
}

// ---------------------------------------------------------------------------------------------
// 10. A removed node's certificates: orphans whose credentials stay valid.

const TWO_NODES: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[node]]
name = "w-1"
ips = ["10.0.0.21"]
role = "worker"

[[node]]
name = "w-2"
ips = ["10.0.0.22"]
role = "worker"

[[ca]]
name = "kubernetes-ca"
cn = "kubernetes"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "kubelet-client"
issuer = "kubernetes-ca"
for-each-node = "all"
cn = "system:node:{node}"
o = ["system:nodes"]
usage = ["client"]
cert = "nodes/{node}/kubelet-client.crt"
key = "nodes/{node}/kubelet-client.key"
"#;

#[test]
fn a_removed_nodes_certificates_are_orphans_that_say_they_stay_valid() {
    let f = generated(TWO_NODES);
    f.edit_spec(
        "[[node]]\nname = \"w-2\"\nips = [\"10.0.0.22\"]\nrole = \"worker\"\n",
        "",
    );
    f.apply(&["--now", T0]);
    let r = f.pki(&["--now", T0, "--check"]);
    // Orphans change nothing a run would fix: `--check` passes, and names them.
    assert_eq!(r.code, 0, "{}", r.all());
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("orphan") && l.contains("nodes/w-2/kubelet-client.crt"))
        .unwrap_or_else(|| panic!("no orphan line for the certificate:\n{}", r.stdout));
    for want in [
        "--prune deletes it",
        "stays valid until 2027-01-01T00:00:00Z",
        "Kubernetes has no revocation for client certificates",
        "`--rekey kubernetes-ca`",
        "else let it expire",
    ] {
        assert!(line.contains(want), "`{want}` missing: {line}");
    }
    // The key is an orphan too, but only a certificate is a credential that stays valid.
    let key_line = r
        .stdout
        .lines()
        .find(|l| l.contains("nodes/w-2/kubelet-client.key"))
        .expect("the key is an orphan");
    assert!(!key_line.contains("stays valid"), "{key_line}");
    assert!(
        r.stdout
            .contains("out/ is up to date; 2 orphans above: review them, `cargo xtask pki --prune` deletes them"),
        "{}",
        r.stdout
    );
    // Expired, it is just a file.
    let r = f.pki(&["--now", "2028-01-01T00:00:00Z", "--check"]);
    assert!(!r.stdout.contains("stays valid"), "{}", r.stdout);
}

// ---------------------------------------------------------------------------------------------
// 5. CSRs: only what an external CA must sign gets one; each says how to sign it and what waits
// on it; a CSR whose certificate is in place is removed.

/// An offline root, an intermediate whose key is here, and a leaf and a kubeconfig under it.
const OFFLINE_ROOT: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "root"
cn = "offline-root"
cert = "pki/root.crt"
key = "pki/root.key"

[[ca]]
name = "kubernetes-ca"
issuer = "root"
cn = "kubernetes"
path-len = 0
cert = "pki/ca.crt"
key = "pki/ca.key"

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
cert = "pki/users/admin.crt"
key = "pki/users/admin.key"

[[render]]
name = "admin.conf"
template = "kubeconfig.hbs"
path = "admin.conf"
bind = { ca = "kubernetes-ca", client = "admin" }
secrets = ["client"]
vars = { cluster = "kubernetes", server = "https://10.0.0.1:6443" }
"#;

/// A fixture of `spec` whose out/ holds only the root's certificate; the root's key is kept
/// outside out/, at the returned path.
fn offline_root(spec: &str) -> (Fixture, std::path::PathBuf) {
    let f = generated(spec);
    let key = f.root().join("offline-root.key");
    std::fs::rename(f.path("pki/root.key"), &key).unwrap();
    let root = f.bytes("pki/root.crt");
    std::fs::remove_dir_all(f.out()).unwrap();
    std::fs::create_dir_all(f.path("pki")).unwrap();
    std::fs::write(f.path("pki/root.crt"), root).unwrap();
    (f, key)
}

/// The command of `stdout` that starts with `program`, as printed (its first occurrence).
fn printed_command(stdout: &str, program: &str) -> String {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{program} ")))
        .unwrap_or_else(|| panic!("no `{program}` command printed:\n{stdout}"))
        .to_string()
}

/// Runs a printed command in the fixture's root, with the key it names (where pki.toml declares
/// it) replaced by where it is really kept.
fn run_printed(f: &Fixture, command: &str, declared_key: &str, key: &Path) {
    let command = command.replace(declared_key, &key.display().to_string());
    let r = run(Command::new("bash")
        .args(["-c", &command])
        .current_dir(f.root()));
    assert_eq!(r.code, 0, "`{command}` failed: {}", r.all());
}

#[test]
fn under_an_intermediate_waiting_for_its_certificate_leaves_wait_without_csrs() {
    let (f, root_key) = offline_root(OFFLINE_ROOT);
    let r = f.apply(&["--now", T0]);
    assert_eq!(
        actions(&r.stdout),
        pairs(&[
            ("external", "root"),
            ("csr", "kubernetes-ca"),
            ("wait", "apiserver"),
            ("wait", "admin"),
            ("keep", "admin.conf"),
        ]),
        "{}",
        r.stdout
    );
    for absent in [
        "pki/apiserver.csr",
        "pki/apiserver.key",
        "pki/users/admin.csr",
        "pki/users/admin.key",
        "admin.conf",
    ] {
        assert!(!f.path(absent).exists(), "{absent} was written");
    }
    // While the CSR waits, `--check` passes (only the holder of the root's key can go on) and
    // says what to do and what waits.
    let r = f.pki(&["--now", T0, "--check"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for want in [
        "waiting: out/pki/ca.csr asks root (whose key is not here) for the certificate of kubernetes-ca; waiting on it: apiserver, admin, admin.conf.",
        "openssl x509 -req -in out/pki/ca.csr -CA out/pki/root.crt -CAkey out/pki/root.key -days 3650 -copy_extensions copyall -out out/pki/ca.crt",
        "cfssl sign -ca out/pki/root.crt -ca-key out/pki/root.key",
        "out/ is up to date; it waits for an external CA to sign the CSR above",
    ] {
        assert!(r.stdout.contains(want), "`{want}` missing:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("is stale"), "{}", r.stdout);
    let r = f.apply(&["--now", T0]);
    assert!(r.stdout.contains("nothing written"), "{}", r.stdout);

    // Signed as printed, where the root's key is kept: the tool signs what waited, and removes
    // the answered CSR.
    let openssl = printed_command(&f.pki(&["--now", T0, "--check"]).stdout, "openssl");
    run_printed(&f, &openssl, "out/pki/root.key", &root_key);
    let now = wall_clock();
    let r = f.apply(&["--now", &now]);
    assert_eq!(
        actions(&r.stdout),
        pairs(&[
            ("external", "root"),
            ("create", "apiserver"),
            ("create", "admin"),
            ("create", "admin.conf"),
        ]),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("removed out/pki/ca.csr: pki/ca.crt is in place"),
        "{}",
        r.stdout
    );
    assert!(!f.path("pki/ca.csr").exists());
    for leaf in ["pki/apiserver.crt", "pki/users/admin.crt"] {
        let v = openssl_verify_at(
            &f.path("pki/root.crt"),
            Some(&f.path("pki/ca.crt")),
            &f.path(leaf),
            &now,
        );
        assert_eq!(v.code, 0, "{leaf}: {}", v.all());
    }
    let r = f.pki(&["--now", &now, "--check"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.ends_with("out/ is up to date\n"), "{}", r.stdout);
}

/// A CA whose key is kept elsewhere, and a leaf under it.
const OFFLINE_CA: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "kubernetes-ca"
cn = "kubernetes"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "apiserver"
issuer = "kubernetes-ca"
cn = "kube-apiserver"
dns = ["kubernetes", "kubernetes.default.svc"]
ips = ["10.96.0.1"]
usage = ["server"]
cert = "pki/apiserver.crt"
key = "pki/apiserver.key"
"#;

#[test]
fn a_leafs_csr_signed_with_the_printed_cfssl_command_is_taken_and_removed() {
    if tool("cfssl", "golang-cfssl").is_none() || tool("cfssljson", "golang-cfssl").is_none() {
        return;
    }
    let f = generated(OFFLINE_CA);
    let ca_key = f.root().join("offline-ca.key");
    std::fs::rename(f.path("pki/ca.key"), &ca_key).unwrap();
    std::fs::remove_file(f.path("pki/apiserver.crt")).unwrap();
    std::fs::remove_file(f.path("pki/apiserver.key")).unwrap();
    f.apply(&["--now", T0]);
    let r = f.pki(&["--now", T0, "--check"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let cfssl = printed_command(&r.stdout, "cfssl");
    run_printed(&f, &cfssl, "out/pki/ca.key", &ca_key);
    let now = wall_clock();
    let r = f.apply(&["--now", &now]);
    assert_eq!(
        actions(&r.stdout),
        pairs(&[
            ("external", "kubernetes-ca"),
            ("re-render", "inventory.txt")
        ]),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("removed out/pki/apiserver.csr"),
        "{}",
        r.stdout
    );
    let v = run(Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslserver", "-attime"])
        .arg(epoch(&now).to_string())
        .arg("-CAfile")
        .arg(f.path("pki/ca.crt"))
        .arg(f.path("pki/apiserver.crt")));
    assert_eq!(v.code, 0, "{}", v.all());
    let r = f.pki(&["--now", &now, "--check"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

// ---------------------------------------------------------------------------------------------
// 9 and 21. Diffs of rendered files: redacted by provenance, every helper's output of a key
// elided, and only what is not known yet shown as unknown, value by value.

/// A template that embeds the admin's key through every helper, between lines that change.
const EVERY_FORM: &str = "\
server: {{vars.server}}
base64-of-b64: {{base64 admin.key.b64}}
base64-of-pem: {{base64 admin.key.pem}}
quoted: {{quote admin.key.pem}}
after-quoted: {{vars.server}}
quoted-b64: {{quote admin.key.b64}}
trimmed: {{trim admin.key.pem}}
indented:
{{indent 4 admin.key.pem}}
cert: {{quote admin.cert.pem}}
fingerprint: {{admin.cert.fingerprint}}
last: {{vars.server}}
";

fn every_form_fixture() -> Fixture {
    let spec = format!(
        "{ONE_CA}\n[[render]]\nname = \"forms\"\ntemplate = \"forms.hbs\"\npath = \"forms.txt\"\n\
         bind = {{ admin = \"admin\" }}\nsecrets = [\"admin\"]\nvars = {{ server = \"https://a:6443\" }}\n"
    );
    let f = Fixture::new(&spec);
    std::fs::write(f.root().join("templates/forms.hbs"), EVERY_FORM).unwrap();
    f
}

/// Panics if `text` holds any form of any private key in out/, the base64 of base64 of one too.
fn assert_no_key(what: &str, text: &str, f: &Fixture) {
    let keys = f.private_keys();
    assert_no_key_material(what, text, &keys);
    for k in &keys {
        let twice = kubepki::render::b64(&kubepki::render::b64(k));
        assert!(
            !text.contains(&twice),
            "{what} printed a key's base64 of base64:\n{text}"
        );
    }
}

#[test]
fn every_helpers_output_of_a_key_is_elided_in_diffs_and_the_rest_of_the_file_is_shown() {
    let f = every_form_fixture();
    let r = f.apply(&["--now", T0, "--diff"]);
    assert_no_key("the first run's --diff", &r.stdout, &f);
    let label = "[private key of admin elided]";
    for want in [
        format!("+quoted: \"{label}\\n\""),
        format!("+base64-of-b64: {label}"),
        format!("+base64-of-pem: {label}"),
        format!("+quoted-b64: \"{label}\""),
        format!("+trimmed: {label}"),
        format!("+    {label}"),
        "+last: https://a:6443".to_string(),
    ] {
        assert!(r.stdout.contains(&want), "`{want}` missing:\n{}", r.stdout);
    }

    // A changed variable: the diff shows the lines that change, with the key lines as context,
    // up to the end of the file.
    f.edit_spec("server = \"https://a:6443\"", "server = \"https://b:6443\"");
    for args in [
        &["--now", T0, "--check", "--diff"][..],
        &["--now", T0, "--diff"],
    ] {
        let r = f.pki(args);
        assert_no_key(&format!("{args:?}"), &r.stdout, &f);
        for want in [
            "-after-quoted: https://a:6443",
            "+after-quoted: https://b:6443",
            "-last: https://a:6443",
            "+last: https://b:6443",
        ] {
            assert!(
                r.stdout.contains(want),
                "{args:?}: `{want}` missing:\n{}",
                r.stdout
            );
        }
        assert!(
            !r.stdout.contains(&format!("-quoted: \"{label}\\n\"")),
            "{args:?}: an unchanged key line shows as changed:\n{}",
            r.stdout
        );
    }
}

#[test]
fn check_diff_shows_a_re_rendered_file_line_by_line_and_a_kept_keys_identifier() {
    let f = every_form_fixture();
    f.apply(&["--now", T0]);
    let ski = run(Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectKeyIdentifier", "-in"])
        .arg(f.path("pki/users/admin.crt")));
    let ski = ski.stdout.lines().nth(1).unwrap_or("").trim().to_string();
    assert!(!ski.is_empty(), "no subject key identifier");
    // The admin gets a new O: re-signed over the same key.
    f.edit_spec(
        "cn = \"kubernetes-admin\"\n",
        "cn = \"kubernetes-admin\"\no = [\"kubeadm:cluster-admins\", \"extra\"]\n",
    );
    f.edit_spec("o = [\"kubeadm:cluster-admins\"]\n", "");
    let r = f.pki(&["--now", T0, "--check", "--diff"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_no_key("--check --diff", &r.stdout, &f);
    let label = "[private key of admin elided]";
    for want in [
        format!(" trimmed: {label}"),
        format!("     {label}"),
        " last: https://a:6443".to_string(),
        "+cert: \"(known after apply)\"".to_string(),
        "+fingerprint: (known after apply)".to_string(),
        format!(" subject-key-id: {ski}"),
    ] {
        assert!(r.stdout.contains(&want), "`{want}` missing:\n{}", r.stdout);
    }
    assert!(
        !r.stdout.lines().any(|l| l == "+(known after apply)"),
        "a whole file shown as unknown:\n{}",
        r.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Under an intermediate, chains and bundles are declared files that verify as written.

/// A root, an intermediate under it and a server under that; the intermediate's bundle, the
/// server's chain, a Secret and a kubeconfig, all from the shipped templates.
const INTERMEDIATE: &str = r#"
[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "root"
cn = "root"
cert = "pki/root.crt"
key = "pki/root.key"

[[ca]]
name = "kubernetes-ca"
issuer = "root"
cn = "kubernetes"
cert = "pki/ca.crt"
key = "pki/ca.key"

[[cert]]
name = "apiserver"
issuer = "kubernetes-ca"
cn = "kube-apiserver"
dns = ["kubernetes"]
ips = ["10.0.0.1"]
usage = ["server"]
cert = "pki/apiserver.crt"
key = "pki/apiserver.key"

[[cert]]
name = "admin"
issuer = "kubernetes-ca"
cn = "kubernetes-admin"
usage = ["client"]
cert = "pki/users/admin.crt"
key = "pki/users/admin.key"

[[render]]
name = "ca-bundle"
template = "ca-bundle.pem.hbs"
path = "pki/ca-bundle.crt"
bind = { ca = "kubernetes-ca" }

[[render]]
name = "apiserver-chain"
template = "chain.pem.hbs"
path = "pki/apiserver-chain.crt"
bind = { cert = "apiserver" }

[[render]]
name = "apiserver-secret"
template = "tls-secret.yaml.hbs"
path = "apiserver-secret.yaml"
bind = { cert = "apiserver" }
secrets = ["cert"]
vars = { name = "apiserver-tls", namespace = "default" }

[[render]]
name = "admin.conf"
template = "kubeconfig.hbs"
path = "admin.conf"
bind = { ca = "kubernetes-ca", client = "admin" }
secrets = ["client"]
vars = { cluster = "kubernetes", server = "https://10.0.0.1:6443" }
"#;

/// The base64 value of `key: ` in `text`, decoded.
fn decoded_value(text: &str, key: &str) -> String {
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{text}"));
    String::from_utf8(unbase64(value.trim()).expect("base64")).expect("text")
}

#[test]
fn under_an_intermediate_the_bundle_and_chain_files_verify_as_written() {
    let f = generated(INTERMEDIATE);
    let (root, inter) = (f.read("pki/root.crt"), f.read("pki/ca.crt"));
    let server = f.read("pki/apiserver.crt");
    assert_eq!(f.read("pki/ca-bundle.crt"), format!("{inter}{root}"));
    assert_eq!(
        f.read("pki/apiserver-chain.crt"),
        format!("{server}{inter}")
    );
    // The intermediate alone is no trust anchor for openssl; its bundle is.
    let alone = openssl_verify_file(&f.path("pki/ca.crt"), None, &f.path("pki/apiserver.crt"));
    assert_ne!(alone.code, 0, "{}", alone.all());
    for cert in ["pki/apiserver.crt", "pki/users/admin.crt"] {
        let v = openssl_verify_file(&f.path("pki/ca-bundle.crt"), None, &f.path(cert));
        assert_eq!(v.code, 0, "{cert}: {}", v.all());
    }
    // The chain, as a server presents it, verifies under the root alone.
    let chain = f.path("pki/apiserver-chain.crt");
    let v = openssl_verify_file(&f.path("pki/root.crt"), Some(&chain), &chain);
    assert_eq!(v.code, 0, "{}", v.all());
    // The shipped kubeconfig embeds the bundle; the Secret its certificate (`cert.cert.b64`;
    // `cert.cert.chain.b64` gives the chain).
    let secret = f.read("apiserver-secret.yaml");
    assert_eq!(decoded_value(&secret, "tls.crt: "), server);
    let conf = f.read("admin.conf");
    assert_eq!(
        decoded_value(&conf, "certificate-authority-data: "),
        format!("{inter}{root}")
    );

    // The root's new key re-signs the intermediate: every file that holds it is re-rendered.
    let r = f.apply(&["--now", T0, "--rekey", "root", "--diff"]);
    assert_no_key("--rekey root --diff", &r.stdout, &f);
    for render in [
        "ca-bundle",
        "apiserver-chain",
        "apiserver-secret",
        "admin.conf",
    ] {
        assert!(
            actions(&r.stdout).contains(&("re-render".to_string(), render.to_string())),
            "{render} not re-rendered:\n{}",
            r.stdout
        );
    }
    let v = openssl_verify_file(
        &f.path("pki/ca-bundle.crt"),
        None,
        &f.path("pki/apiserver.crt"),
    );
    assert_eq!(v.code, 0, "{}", v.all());
    let r = f.pki(&["--now", T0, "--check"]);
    assert_eq!(r.code, 0, "{}", r.all());
}
