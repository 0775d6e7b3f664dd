//! Unit tests of the SOPS module: round trips, what the format binds a value to, what is refused.
//! The real `sops` binary judges the same files in `tests/it/sops.rs`.

use age::secrecy::ExposeSecret as _;

use super::*;
use crate::sops::document::Node;

/// 2026-12-01T10:30:00Z.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1796121000).unwrap()
}

const PEM: &[u8] = b"-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDt2LQmK0p4nzAOf0pH5lZ8TqJbXgZKoXH3pV1HvS7fP
-----END PRIVATE KEY-----
";

/// A TLS Secret in the layout sops writes, so it must come back byte for byte.
const SECRET: &str = r#"apiVersion: v1
kind: Secret
metadata:
    name: apiserver-tls
    namespace: kube-system
    labels:
        app.kubernetes.io/managed-by: kubepki
type: kubernetes.io/tls
data:
    tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==
stringData:
    note: |
        two
        lines
    count: 3
    ratio: 1.5
    flag: true
    empty: ""
    none: null
"#;

const FLUX: Select<'static> = Select::Keys(&["data", "stringData"]);

fn identity() -> (Identity, Recipient) {
    let identity = Identity::generate();
    let recipient = identity.recipient();
    (identity, recipient)
}

fn secret_text(identity: &Identity) -> String {
    identity.0.to_string().expose_secret().to_owned()
}

#[test]
fn binary_round_trip() {
    let (id, r) = identity();
    let file = encrypt_binary(PEM, std::slice::from_ref(&r), now()).unwrap();
    assert!(!file.contains("BEGIN PRIVATE KEY"), "{file}");
    assert!(
        file.starts_with("{\n\t\"data\": \"ENC[AES256_GCM,data:"),
        "{file}"
    );
    assert!(
        file.contains("\"lastmodified\": \"2026-12-01T10:30:00Z\""),
        "{file}"
    );
    assert_eq!(decrypt(&file, &[id]).unwrap(), PEM);
    assert_eq!(recipients_of(&file).unwrap(), vec![r.as_str().to_owned()]);
}

#[test]
fn yaml_round_trip_keeps_the_document_and_encrypts_only_data() {
    let (id, r) = identity();
    let file = encrypt_yaml(SECRET, FLUX, &[r], now()).unwrap();
    let head = "apiVersion: v1\nkind: Secret\nmetadata:\n    name: apiserver-tls\n";
    assert!(file.starts_with(head), "{file}");
    assert!(file.contains("    tls.key: ENC[AES256_GCM,data:"), "{file}");
    assert!(
        file.contains("    count: ENC[AES256_GCM,") && file.contains(",type:int]"),
        "{file}"
    );
    assert!(
        file.contains(",type:float]") && file.contains(",type:bool]"),
        "{file}"
    );
    assert!(file.contains("    empty: \"\"\n    none: null\n"), "{file}");
    assert!(!file.contains("LS0tLS1CRUdJTiBQUklWQVRF"), "{file}");
    assert!(
        file.contains("    encrypted_regex: ^(data|stringData)$\n"),
        "{file}"
    );
    assert_eq!(
        String::from_utf8(decrypt(&file, &[id]).unwrap()).unwrap(),
        SECRET
    );

    let doc = Doc::parse_yaml(SECRET).unwrap();
    let shown = format!("{doc:?}");
    assert!(shown.contains("\"tls.key\": [value elided]"), "{shown}");
    assert!(
        !shown.contains("LS0t") && !shown.contains("apiserver-tls"),
        "{shown}"
    );
}

#[test]
fn the_default_rule_leaves_unencrypted_suffixes() {
    let (id, r) = identity();
    let doc = "a: secret\nb_unencrypted:\n    c: readable\n";
    let file = encrypt_yaml(doc, Select::All, &[r], now()).unwrap();
    assert!(file.starts_with("a: ENC[AES256_GCM,"), "{file}");
    assert!(file.contains("b_unencrypted:\n    c: readable\n"), "{file}");
    assert!(
        file.contains("    unencrypted_suffix: _unencrypted\n"),
        "{file}"
    );
    assert_eq!(decrypt(&file, &[id]).unwrap(), doc.as_bytes());
}

#[test]
fn a_value_moved_to_another_key_does_not_decrypt() {
    let (id, r) = identity();
    let file = encrypt_yaml(SECRET, FLUX, &[r], now()).unwrap();
    let crt = line_value(&file, "    tls.crt: ");
    let key = line_value(&file, "    tls.key: ");
    let swapped = file
        .replace(&crt, "CRT")
        .replace(&key, &crt)
        .replace("CRT", &key);
    let err = decrypt(&swapped, &[id]).unwrap_err();
    assert!(
        matches!(&err, Error::Tampered { path } if path == "data:tls.crt:"),
        "{err:?}"
    );
}

#[test]
fn an_edited_readable_value_or_mac_is_refused() {
    let (id, r) = identity();
    let file = encrypt_yaml(SECRET, FLUX, std::slice::from_ref(&r), now()).unwrap();
    let renamed = file.replace("name: apiserver-tls", "name: other");
    assert!(matches!(decrypt(&renamed, &[id]), Err(Error::MacMismatch)));

    // Another file's MAC is sealed with another data key; the same MAC under another
    // lastmodified does not authenticate either.
    let (id, r) = identity();
    let file = encrypt_yaml(SECRET, FLUX, std::slice::from_ref(&r), now()).unwrap();
    let other = encrypt_yaml(SECRET, FLUX, &[r], now()).unwrap();
    let forged = file.replace(
        &line_value(&file, "    mac: "),
        &line_value(&other, "    mac: "),
    );
    assert!(matches!(
        decrypt(&forged, std::slice::from_ref(&id)),
        Err(Error::MacMismatch)
    ));
    let later = file.replace("2026-12-01T10:30:00Z", "2026-12-01T10:30:01Z");
    assert!(matches!(decrypt(&later, &[id]), Err(Error::MacMismatch)));
}

#[test]
fn a_removed_value_is_refused() {
    let (id, r) = identity();
    let file = encrypt_yaml(SECRET, FLUX, &[r], now()).unwrap();
    let line = format!("    tls.crt: {}\n", line_value(&file, "    tls.crt: "));
    let removed = file.replace(&line, "");
    assert!(matches!(decrypt(&removed, &[id]), Err(Error::MacMismatch)));
}

#[test]
fn a_wrong_identity_is_refused_without_showing_keys() {
    let (right, r) = identity();
    let (wrong, _) = identity();
    for file in [
        encrypt_binary(PEM, std::slice::from_ref(&r), now()).unwrap(),
        encrypt_yaml(SECRET, FLUX, std::slice::from_ref(&r), now()).unwrap(),
    ] {
        let err = decrypt(&file, std::slice::from_ref(&wrong)).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains("no age identity given opens this file"),
            "{shown}"
        );
        assert!(shown.contains(r.as_str()), "{shown}");
        for identity in [&right, &wrong] {
            assert!(!shown.contains(&secret_text(identity)[15..]), "{shown}");
        }
    }
}

#[test]
fn identities_parse_like_age_identity_files_and_never_show() {
    let (a, _) = identity();
    let (b, _) = identity();
    let file = format!(
        "# created: 2026-12-01\n# public key: age1...\n{}\n\n{}\n",
        secret_text(&a),
        secret_text(&b)
    );
    let parsed = Identity::parse_all(&file).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(
        format!("{parsed:?}"),
        "[Identity([secret key elided]), Identity([secret key elided])]"
    );

    let bad = format!("{}\nAGE-SECRET-KEY-1NOTAKEY\n", secret_text(&a));
    let err = Identity::parse_all(&bad).unwrap_err();
    assert!(matches!(err, Error::BadIdentity { line: 2 }), "{err:?}");
    assert!(!err.to_string().contains("NOTAKEY"), "{err}");
    assert!(matches!(
        Identity::parse_all("# nothing\n"),
        Err(Error::NoIdentities)
    ));
    assert!(matches!(
        Recipient::parse("age1nope"),
        Err(Error::BadRecipient(_))
    ));
}

#[test]
fn rewrap_changes_recipients_and_keeps_values() {
    let (a, ra) = identity();
    let (b, rb) = identity();
    let (c, rc) = identity();
    for file in [
        encrypt_binary(PEM, std::slice::from_ref(&ra), now()).unwrap(),
        encrypt_yaml(SECRET, FLUX, std::slice::from_ref(&ra), now()).unwrap(),
    ] {
        let wrapped = rewrap(&file, std::slice::from_ref(&a), &[rb.clone(), rc.clone()]).unwrap();
        let want = vec![rb.as_str().to_owned(), rc.as_str().to_owned()];
        assert_eq!(recipients_of(&wrapped).unwrap(), want);
        let plain = decrypt(&file, std::slice::from_ref(&a)).unwrap();
        assert_eq!(decrypt(&wrapped, std::slice::from_ref(&b)).unwrap(), plain);
        assert_eq!(decrypt(&wrapped, std::slice::from_ref(&c)).unwrap(), plain);
        assert!(matches!(
            decrypt(&wrapped, std::slice::from_ref(&a)),
            Err(Error::NoMatchingIdentity { .. })
        ));
        for value in enc_values(&file) {
            assert!(wrapped.contains(&value), "{value} was re-encrypted");
        }
        assert!(matches!(
            rewrap(&file, std::slice::from_ref(&b), std::slice::from_ref(&rc)),
            Err(Error::NoMatchingIdentity { .. })
        ));
    }
}

#[test]
fn refusals() {
    let (_, r) = identity();
    let r = std::slice::from_ref(&r);
    assert!(matches!(
        encrypt_binary(PEM, &[], now()),
        Err(Error::NoRecipients)
    ));
    assert!(matches!(
        encrypt_yaml("- a\n", Select::All, r, now()),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        encrypt_yaml("a: 1\n---\nb: 2\n", Select::All, r, now()),
        Err(Error::Unsupported(_))
    ));
    let file = encrypt_yaml("a: 1\n", Select::All, r, now()).unwrap();
    assert!(matches!(
        encrypt_yaml(&file, Select::All, r, now()),
        Err(Error::AlreadyEncrypted)
    ));
    assert!(matches!(decrypt("a: 1\n", &[]), Err(Error::NotSops)));
    assert!(matches!(
        recipients_of("{\"data\": \"x\"}"),
        Err(Error::NotSops)
    ));
}

#[test]
fn the_rule_names_keys_exactly() {
    let flux = rule::Rule::of(FLUX).unwrap();
    assert_eq!(
        flux.entry(),
        ("encrypted_regex", "^(data|stringData)$".to_owned())
    );
    let kubeconfig = rule::Rule::of(Select::Keys(&["client-key-data", "a.b"])).unwrap();
    assert_eq!(kubeconfig.entry().1, r"^(client-key-data|a\.b)$");
    assert!(kubeconfig.under(false, "a.b") && !kubeconfig.under(false, "aXb"));
    assert!(!kubeconfig.under(false, "client-key-data-x") && kubeconfig.under(true, "x"));
}

/// Reading honours the recorded rule: a readable value that looks encrypted stays as it is, and
/// a plaintext value where the rule encrypts is refused.
#[test]
fn reading_follows_the_recorded_rule() {
    let (id, r) = identity();
    let doc = "note: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\ndata:\n    k: v\n";
    let file = encrypt_yaml(
        doc,
        Select::Keys(&["data"]),
        std::slice::from_ref(&r),
        now(),
    )
    .unwrap();
    assert!(
        file.starts_with("note: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n"),
        "{file}"
    );
    assert_eq!(
        decrypt(&file, std::slice::from_ref(&id)).unwrap(),
        doc.as_bytes()
    );
    let planted = file.replace(&line_value(&file, "    k: "), "v");
    let err = decrypt(&planted, &[id]).unwrap_err();
    assert!(
        matches!(&err, Error::Tampered { path } if path == "data:k:"),
        "{err:?}"
    );
}

/// Every string, written as a key and as a value, reads back as itself.
#[test]
fn strings_read_back_as_themselves() {
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
        "\nlead",
        " lead\nx\n",
        "ünï",
        "line\u{2028}sep",
        "bom\u{feff}",
        "bell\u{7}",
        "---",
        "...x",
        "=",
        "<<",
        "a'b",
        "back\\slash",
        "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]",
    ];
    for text in texts {
        let doc = vec![
            (text.to_owned(), Node::Str(text.to_owned())),
            (
                "seq".to_owned(),
                Node::Seq(vec![Node::Str(text.to_owned())]),
            ),
        ];
        let emitted = yaml::emit(&doc);
        let read = Doc::parse_yaml(&emitted).unwrap_or_else(|e| panic!("{text:?}: {e}\n{emitted}"));
        assert_eq!(
            read.entries(),
            &doc[..],
            "{text:?} was written as\n{emitted}"
        );
    }
}

/// The layout go-yaml writes with sops's 4-space indent (taken from `sops encrypt` output).
#[test]
fn collections_are_laid_out_as_sops_writes_them() {
    let text = "top:
    l:
        - x: 1
          \"y\":
            z:
                w: v
            q:
                - m
                - - n1
                  - n2
                - k: v
                  j: u
          e: |
            multi
            line
          f: |+
            two

          g: |-
            nonl
            x
          h: '  lead'
          i: 'it''s: #x'
          j: \"tab\\there\"
          d: {}
          s: []
";
    let doc = Doc::parse_yaml(text).unwrap();
    assert_eq!(yaml::emit(doc.entries()), text);
}

fn line_value(file: &str, prefix: &str) -> String {
    let line = file.lines().find(|line| line.starts_with(prefix)).unwrap();
    line[prefix.len()..].to_owned()
}

fn enc_values(file: &str) -> Vec<String> {
    file.split("ENC[")
        .skip(1)
        .map(|rest| format!("ENC[{}", &rest[..=rest.find(']').unwrap()]))
        .collect()
}
