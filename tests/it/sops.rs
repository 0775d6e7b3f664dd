//! The `sops` module judged by the real sops binary, both ways: what the module encrypts,
//! `sops decrypt` turns back into the exact plaintext; what `sops encrypt` writes (with
//! `--encrypted-regex` or a `.sops.yaml` rule), the module decrypts. Identities are made at test
//! time with `age-keygen`. sops runs with `--disable-version-check` inside `unshare -n` (a network
//! namespace with nothing in it) where the machine allows one, so no test sends a packet.

use std::path::{Path, PathBuf};

use kubepki::sops::{self, Identity, Recipient, Select};

use crate::support::*;

/// A PEM private key (an Ed25519 key, as bytes; its value does not matter here).
const PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDt2LQmK0p4nzAOf0pH5lZ8TqJbXgZKoXH3pV1HvS7fP
-----END PRIVATE KEY-----
";

/// A kubernetes.io/tls Secret, in the layout `sops decrypt` prints, so it must come back exactly.
const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
    name: apiserver-tls
    namespace: kube-system
type: kubernetes.io/tls
data:
    tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==
stringData:
    note: |
        two
        lines
    replicas: 3
    enabled: true
";

/// A kubeconfig, in the same layout.
const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
    - cluster:
        certificate-authority-data: Q0EgZGF0YQ==
        server: https://10.0.0.1:6443
      name: kubernetes
contexts:
    - context:
        cluster: kubernetes
        user: kubernetes-admin
      name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
preferences: {}
users:
    - name: kubernetes-admin
      user:
        client-certificate-data: Q0VSVA==
        client-key-data: S0VZIGRhdGE=
";

const FLUX: Select<'static> = Select::Keys(&["data", "stringData"]);

/// An age identity made by `age-keygen`: its key file, and what the module reads from it.
struct Age {
    key_file: PathBuf,
    identities: Vec<Identity>,
    recipient: Recipient,
}

fn age_identity(keygen: &Path, dir: &Path, name: &str) -> Age {
    let (key_file, recipient) = age_keygen(keygen, dir, name);
    let text = std::fs::read_to_string(&key_file).unwrap();
    Age {
        identities: Identity::parse_all(&text).unwrap(),
        recipient: Recipient::parse(&recipient).unwrap(),
        key_file,
    }
}

fn ok(run: Run, what: &str) -> String {
    assert_eq!(run.code, 0, "{what}: {}", run.stderr);
    run.stdout
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[test]
fn files_the_module_encrypts_decrypt_with_sops() {
    let Some((sops_bin, keygen)) = sops_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let age = age_identity(&keygen, d, "admin");
    let to = std::slice::from_ref(&age.recipient);
    let decrypt = |file: &str, args: &[&str]| {
        let mut all = vec!["decrypt"];
        all.extend_from_slice(args);
        all.push(file);
        ok(run_sops(&sops_bin, d, &age.key_file, &all), file)
    };

    // A key file: any name sops does not take for YAML or JSON is a binary file to it.
    std::fs::write(
        d.join("ca.key"),
        sops::encrypt_binary(PEM.as_bytes(), to, now()).unwrap(),
    )
    .unwrap();
    assert_eq!(decrypt("ca.key", &[]), PEM);

    let secret = sops::encrypt_yaml(SECRET, FLUX, to, now()).unwrap();
    std::fs::write(d.join("secret.yaml"), &secret).unwrap();
    assert_eq!(decrypt("secret.yaml", &[]), SECRET);
    assert_readable_except_data(&secret);

    let kubeconfig =
        sops::encrypt_yaml(KUBECONFIG, Select::Keys(&["client-key-data"]), to, now()).unwrap();
    assert!(
        kubeconfig.contains("client-certificate-data: Q0VSVA==\n"),
        "{kubeconfig}"
    );
    assert!(!kubeconfig.contains("S0VZIGRhdGE="), "{kubeconfig}");
    std::fs::write(d.join("kubeconfig.yaml"), &kubeconfig).unwrap();
    assert_eq!(decrypt("kubeconfig.yaml", &[]), KUBECONFIG);
    // kubeadm's name for it has no YAML extension: sops must be told the format.
    std::fs::write(d.join("admin.conf"), &kubeconfig).unwrap();
    let yaml = ["--input-type", "yaml", "--output-type", "yaml"];
    assert_eq!(decrypt("admin.conf", &yaml), KUBECONFIG);
}

/// sops binds each value to its key path as the module does: swapped values do not decrypt.
#[test]
fn sops_refuses_values_the_module_sealed_for_another_key() {
    let Some((sops_bin, keygen)) = sops_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let age = age_identity(&keygen, dir.path(), "admin");
    let file = sops::encrypt_yaml(SECRET, FLUX, &[age.recipient], now()).unwrap();
    let value = |key: &str| {
        let line = file
            .lines()
            .find(|l| l.starts_with(&format!("    {key}: ")))
            .unwrap();
        line.split_once(": ").unwrap().1.to_owned()
    };
    let (crt, key) = (value("tls.crt"), value("tls.key"));
    let swapped = file
        .replace(&crt, "CRT")
        .replace(&key, &crt)
        .replace("CRT", &key);
    std::fs::write(dir.path().join("secret.yaml"), swapped).unwrap();
    let run = run_sops(
        &sops_bin,
        dir.path(),
        &age.key_file,
        &["decrypt", "secret.yaml"],
    );
    assert_ne!(run.code, 0, "sops decrypted swapped values: {}", run.stdout);
    assert!(
        !run.all().contains("LS0tLS1CRUdJTiBQUklWQVRF"),
        "{}",
        run.all()
    );
}

#[test]
fn files_sops_encrypts_decrypt_with_the_module() {
    let Some((sops_bin, keygen)) = sops_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = age_identity(&keygen, d, "first");
    let second = age_identity(&keygen, d, "second");
    let both = format!("{},{}", first.recipient.as_str(), second.recipient.as_str());
    let want = vec![
        first.recipient.as_str().to_owned(),
        second.recipient.as_str().to_owned(),
    ];
    let encrypt = |file: &str, text: &str, args: &[&str]| {
        std::fs::write(d.join(file), text).unwrap();
        let mut all = vec!["encrypt"];
        all.extend_from_slice(args);
        all.push(file);
        let encrypted = ok(run_sops(&sops_bin, d, &first.key_file, &all), file);
        std::fs::write(d.join(file), &encrypted).unwrap();
        encrypted
    };

    let key = encrypt("ca.key", PEM, &["--age", &both]);
    assert_eq!(sops::recipients_of(&key).unwrap(), want);
    assert_eq!(
        sops::decrypt(&key, &second.identities).unwrap(),
        PEM.as_bytes()
    );

    let regex = "^(data|stringData)$";
    let secret = encrypt(
        "secret.yaml",
        SECRET,
        &["--age", &both, "--encrypted-regex", regex],
    );
    assert_readable_except_data(&secret);
    assert_eq!(sops::recipients_of(&secret).unwrap(), want);
    assert_eq!(
        sops::decrypt(&secret, &second.identities).unwrap(),
        SECRET.as_bytes()
    );

    // sops's default rule (every value but under `_unencrypted` keys), over every kind of value.
    let edge = "a: \"\"\nb: null\nc: 1.5\nd: {}\ne: []\nlist:\n    - p\n    - q: r\n      s:\n        - 7\n        - false\nplain_unencrypted: readable\n";
    let file = encrypt("edge.yaml", edge, &["--age", &both]);
    assert!(file.contains("\nplain_unencrypted: readable\n"), "{file}");
    assert!(
        file.contains("    unencrypted_suffix: _unencrypted\n"),
        "{file}"
    );
    assert_eq!(
        sops::decrypt(&file, &first.identities).unwrap(),
        edge.as_bytes()
    );

    // A repository's rule, as Flux users write it, picks the recipients and the keys.
    let rules = format!(
        "creation_rules:\n  - path_regex: kubeconfig\\.yaml$\n    encrypted_regex: ^client-key-data$\n    age: {}\n",
        first.recipient.as_str()
    );
    std::fs::write(d.join(".sops.yaml"), rules).unwrap();
    let kubeconfig = encrypt("kubeconfig.yaml", KUBECONFIG, &[]);
    assert!(
        kubeconfig.contains("client-certificate-data: Q0VSVA==\n"),
        "{kubeconfig}"
    );
    assert_eq!(sops::recipients_of(&kubeconfig).unwrap(), want[..1]);
    assert_eq!(
        sops::decrypt(&kubeconfig, &first.identities).unwrap(),
        KUBECONFIG.as_bytes()
    );
    let err = sops::decrypt(&kubeconfig, &second.identities).unwrap_err();
    assert!(
        matches!(err, sops::Error::NoMatchingIdentity { .. }),
        "{err}"
    );

    // Every value sops writes reads back; sops prints what the module prints.
    let decrypted = ok(
        run_sops(&sops_bin, d, &first.key_file, &["decrypt", "secret.yaml"]),
        "sops",
    );
    assert_eq!(decrypted, SECRET);
}

#[test]
fn rewrapped_files_decrypt_with_sops_for_the_new_recipients_only() {
    let Some((sops_bin, keygen)) = sops_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = age_identity(&keygen, d, "old");
    let new = age_identity(&keygen, d, "new");
    let to_new = std::slice::from_ref(&new.recipient);
    let sealed = [
        (
            "ca.key",
            sops::encrypt_binary(PEM.as_bytes(), std::slice::from_ref(&old.recipient), now()),
            PEM,
        ),
        (
            "secret.yaml",
            sops::encrypt_yaml(SECRET, FLUX, std::slice::from_ref(&old.recipient), now()),
            SECRET,
        ),
    ];
    for (name, file, plaintext) in sealed {
        let wrapped = sops::rewrap(&file.unwrap(), &old.identities, to_new).unwrap();
        assert_eq!(
            sops::recipients_of(&wrapped).unwrap(),
            vec![new.recipient.as_str()]
        );
        std::fs::write(d.join(name), wrapped).unwrap();
        let by_new = run_sops(&sops_bin, d, &new.key_file, &["decrypt", name]);
        assert_eq!(ok(by_new, name), plaintext);
        let by_old = run_sops(&sops_bin, d, &old.key_file, &["decrypt", name]);
        assert_ne!(by_old.code, 0, "the old identity still opens {name}");
    }
}

/// Flux's convention: only `data` and `stringData` are encrypted; the rest reads as it was.
fn assert_readable_except_data(file: &str) {
    let head = "apiVersion: v1\nkind: Secret\nmetadata:\n    name: apiserver-tls\n    namespace: kube-system\ntype: kubernetes.io/tls\ndata:\n";
    assert!(file.starts_with(head), "{file}");
    for key in ["tls.crt", "tls.key", "note", "replicas", "enabled"] {
        assert!(
            file.contains(&format!("    {key}: ENC[AES256_GCM,data:")),
            "{key}: {file}"
        );
    }
    assert!(
        file.contains("    encrypted_regex: ^(data|stringData)$\n"),
        "{file}"
    );
    assert!(!file.contains("LS0tLS1CRUdJTiBQUklWQVRF"), "{file}");
}

/// The module writes YAML as go-yaml does: `sops decrypt` of a document the module wrote prints
/// what the module's own decrypt prints, for strings that need each kind of quoting. (go-yaml
/// writes a literal block with an indentation indicator where the module writes double quotes,
/// for multi-line strings that start with a space or a newline; those are left out.)
#[test]
fn the_module_lays_out_yaml_as_sops_does() {
    let Some((sops_bin, keygen)) = sops_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let age = age_identity(&keygen, d, "admin");
    let texts = [
        "plain",
        "-dash",
        "-",
        "?",
        ":",
        "a: b",
        "a #b",
        "x:",
        "[x]",
        "{x",
        "@x",
        "`x",
        "'x",
        "\"x",
        "&x",
        "*x",
        "!x",
        "%x",
        "|x",
        ">x",
        ",x",
        "x,y",
        "x ",
        " x",
        "",
        "~",
        "null",
        "Null",
        "true",
        "yes",
        "No",
        "y",
        "n",
        "on",
        "1",
        "-1",
        "+1",
        "0x1F",
        "0o17",
        "0b101",
        "1_000",
        "1.5",
        ".5",
        "1e3",
        "1E-3",
        "1:20",
        ".inf",
        "-.Inf",
        ".NaN",
        "2001-12-14",
        "3.11.0",
        "10.0.0.1",
        "https://a.b:6443",
        "tab\there",
        "cr\r",
        "nl\n",
        "two\nlines\n",
        "two\n\n",
        "no\nend",
        "\u{fc}n\u{ef}",
        "bom\u{feff}",
        "---",
        "...x",
        "=",
        "a'b",
        "back\\slash",
        "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]",
        "^(data|x)$",
        "2026-12-01T10:30:00Z",
        "12345678",
        "1.2.3",
        "v1",
        "x: y",
        "#x",
        "a\"b",
    ];
    let doc: String = texts
        .iter()
        .enumerate()
        .map(|(idx, text)| format!("k{idx}: {}\n", yaml_quoted(text)))
        .collect();
    let file = sops::encrypt_yaml(&doc, Select::Keys(&["none"]), &[age.recipient], now()).unwrap();
    std::fs::write(d.join("strings.yaml"), &file).unwrap();
    let theirs = ok(
        run_sops(&sops_bin, d, &age.key_file, &["decrypt", "strings.yaml"]),
        "sops",
    );
    let ours = String::from_utf8(sops::decrypt(&file, &age.identities).unwrap()).unwrap();
    assert_eq!(ours, theirs);
}

/// A double-quoted YAML scalar, written independently of the module.
fn yaml_quoted(text: &str) -> String {
    let mut res = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => res.push_str("\\\""),
            '\\' => res.push_str("\\\\"),
            '\n' => res.push_str("\\n"),
            '\t' => res.push_str("\\t"),
            '\r' => res.push_str("\\r"),
            c if c.is_ascii() => res.push(c),
            c => res.push_str(&format!("\\u{:04X}", u32::from(c))),
        }
    }
    res.push('"');
    res
}
