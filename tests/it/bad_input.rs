//! Mistakes in pki.toml (and in the templates it names): each is answered with its position
//! (`--> pki.toml:LINE:COL`), the offending line, a caret under the offending text, what is
//! expected, exit status 2, and nothing written. Every case checks the exact position and that the
//! mistake is reported once, with no follow-up errors.

use crate::support::*;

/// A small valid file; each case changes one thing in it. Lines, for the positions below:
///  1 [defaults]            6 cn = "test-ca"      11 name = "leaf"       16 key = "leaf.key"
///  2 algorithm = ...       7 cert = "ca.crt"     12 issuer = "ca"
///  3                       8 key = "ca.key"      13 cn = "leaf"
///  4 [[ca]]                9                     14 usage = ["client"]
///  5 name = "ca"          10 [[cert]]            15 cert = "leaf.crt"
const BASE: &str = r#"[defaults]
algorithm = "ecdsa-p256"

[[ca]]
name = "ca"
cn = "test-ca"
cert = "ca.crt"
key = "ca.key"

[[cert]]
name = "leaf"
issuer = "ca"
cn = "leaf"
usage = ["client"]
cert = "leaf.crt"
key = "leaf.key"
"#;

/// A second leaf, appended to BASE (lines 17 to 24).
const SECOND: &str = r#"
[[cert]]
name = "other"
issuer = "ca"
cn = "other"
usage = ["client"]
cert = "other.crt"
key = "other.key"
"#;

/// BASE with `from` (which must occur exactly once) replaced by `to`.
fn base_with(from: &str, to: &str) -> String {
    replace_once(BASE, from, to)
}

/// One expected diagnostic.
struct Expect {
    /// The `error:` line's text (a fragment of it).
    message: &'static str,
    line: usize,
    col: usize,
    /// The text the caret underlines, exactly.
    under: &'static str,
    /// A fragment of the `= help:` line, if one is expected.
    help: Option<&'static str>,
}

const fn at(
    message: &'static str,
    line: usize,
    col: usize,
    under: &'static str,
    help: Option<&'static str>,
) -> Expect {
    Expect {
        message,
        line,
        col,
        under,
        help,
    }
}

/// Runs the tool on `spec` (with `--check` too) and checks that it fails with exactly the
/// `expected` diagnostics, each pointing into pki.toml, and writes nothing.
fn check(spec: &str, expected: &[Expect]) -> Run {
    let f = Fixture::new(spec);
    let r = check_fixture(&f, "pki.toml", spec, expected);
    let n = expected.len();
    let count = format!(
        "error: pki.toml has {n} error{}; nothing was written",
        if n == 1 { "" } else { "s" }
    );
    assert_eq!(
        r.stderr.lines().last(),
        Some(count.as_str()),
        "the last line counts the errors:\n{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.matches("\nerror: ").count() + usize::from(r.stderr.starts_with("error: ")),
        n + 1,
        "exactly {n} error(s) and the count, no follow-up errors:\n{}",
        r.stderr
    );
    r
}

/// The shared part: exit 2 in apply and `--check` mode alike, the diagnostics for `file` (whose
/// text is `src`) in order, and no output folder.
fn check_fixture(f: &Fixture, file: &str, src: &str, expected: &[Expect]) -> Run {
    let r = f.pki(&[]);
    assert_eq!(r.code, 2, "bad input must exit 2:\n{}", r.all());
    assert!(
        !f.out().exists(),
        "out/ was created on bad input:\n{}",
        r.all()
    );
    assert!(r.stdout.is_empty(), "errors go to stderr: {}", r.stdout);
    let mut from = 0;
    for e in expected {
        from = assert_diagnostic(&r.stderr, from, file, src, e);
    }
    let c = f.pki(&["--check"]);
    assert_eq!(c.code, 2, "--check on bad input must exit 2:\n{}", c.all());
    assert_eq!(c.stderr, r.stderr, "--check reports the same problems");
    assert!(!f.out().exists());
    r
}

/// Finds `e` in `stderr` at or after line index `from`: the `error:` line, `--> FILE:L:C`, the
/// source line as it is in `src`, a caret under exactly `e.under`, and the help line. Returns the
/// index of the line after it, so diagnostics are checked in order.
fn assert_diagnostic(stderr: &str, from: usize, file: &str, src: &str, e: &Expect) -> usize {
    let lines: Vec<&str> = stderr.lines().collect();
    let head = (from..lines.len())
        .find(|&i| lines[i].starts_with("error: ") && lines[i].contains(e.message))
        .unwrap_or_else(|| panic!("no error `{}` (in order) in:\n{stderr}", e.message));
    let arrow = format!("--> {file}:{}:{}", e.line, e.col);
    let l = lines.get(head + 1).copied().unwrap_or_default();
    assert_eq!(
        l.trim_start(),
        arrow,
        "position of `{}`:\n{stderr}",
        e.message
    );
    let src_line = src.lines().nth(e.line - 1).expect("line exists");
    let quoted = lines.get(head + 3).copied().unwrap_or_default();
    assert_eq!(
        quoted,
        format!("{} | {src_line}", e.line),
        "the offending line is shown as it is:\n{stderr}"
    );
    let caret_line = lines.get(head + 4).copied().unwrap_or_default();
    let (_, marks) = caret_line
        .split_once(" | ")
        .unwrap_or_else(|| panic!("no caret line:\n{stderr}"));
    let indent = marks.len() - marks.trim_start().len();
    let width = marks.trim_start().chars().take_while(|&c| c == '^').count();
    assert_eq!(indent, e.col - 1, "caret column:\n{stderr}");
    assert!(width >= 1, "a caret:\n{stderr}");
    let underlined: String = src_line.chars().skip(e.col - 1).take(width).collect();
    assert_eq!(underlined, e.under, "what the caret underlines:\n{stderr}");
    let mut next = head + 5;
    if let Some(h) = e.help {
        let help = lines.get(next).copied().unwrap_or_default();
        assert!(
            help.trim_start().starts_with("= help: ") && help.contains(h),
            "help `{h}` for `{}`:\n{stderr}",
            e.message
        );
        next += 1;
    }
    next
}

#[test]
fn toml_syntax_error() {
    check(
        &base_with(r#"issuer = "ca""#, "issuer = ca"),
        &[at("string values must be quoted", 12, 10, "ca", None)],
    );
}

#[test]
fn unknown_key_suggests_the_nearest_known_one() {
    check(
        &base_with(r#"cn = "leaf""#, "cn = \"leaf\"\nvalidty = \"30d\""),
        &[at(
            "unknown field `validty`",
            14,
            1,
            "validty",
            Some("did you mean `validity`?"),
        )],
    );
    // A top-level table too.
    check(
        &format!("{BASE}\n[[certs]]\nname = \"x\"\n"),
        &[at(
            "unknown top-level key `certs`",
            18,
            3,
            "certs",
            Some("did you mean `cert`?"),
        )],
    );
}

#[test]
fn wrong_type() {
    check(
        &base_with(r#"cn = "leaf""#, "cn = 5"),
        &[at(
            "invalid type: integer `5`, expected a string",
            13,
            6,
            "5",
            None,
        )],
    );
    check(
        &base_with(r#"usage = ["client"]"#, r#"usage = "client""#),
        &[at(
            "invalid type: string \"client\", expected a sequence",
            14,
            9,
            "\"client\"",
            None,
        )],
    );
}

#[test]
fn bad_ip_address() {
    check(
        &base_with(r#"cn = "leaf""#, "cn = \"leaf\"\nips = [\"10.0.0.256\"]"),
        &[at(
            "invalid IP address `10.0.0.256`",
            14,
            8,
            "\"10.0.0.256\"",
            Some("IPv4"),
        )],
    );
}

#[test]
fn bad_dns_name() {
    check(
        &base_with(
            r#"cn = "leaf""#,
            "cn = \"leaf\"\ndns = [\"ok.example\", \"under_score.example\"]",
        ),
        &[at(
            "invalid DNS name `under_score.example`",
            14,
            22,
            "\"under_score.example\"",
            Some("letters, digits and `-`"),
        )],
    );
    // An IP address is not a DNS name: it belongs in `ips`.
    check(
        &base_with(r#"cn = "leaf""#, "cn = \"leaf\"\ndns = [\"10.0.0.1\"]"),
        &[at(
            "`10.0.0.1` is an IP address, not a DNS name",
            14,
            8,
            "\"10.0.0.1\"",
            Some("move it to `ips`"),
        )],
    );
}

#[test]
fn bad_duration() {
    check(
        &base_with(r#"cn = "leaf""#, "cn = \"leaf\"\nvalidity = \"1 year\""),
        &[at(
            "invalid duration `1 year`",
            14,
            12,
            "\"1 year\"",
            Some("`8760h`"),
        )],
    );
    check(
        &base_with(r#"cn = "test-ca""#, "cn = \"test-ca\"\nvalidity = \"0d\""),
        &[at(
            "invalid duration `0d`",
            7,
            12,
            "\"0d\"",
            Some("positive"),
        )],
    );
}

#[test]
fn unsupported_algorithm() {
    check(
        &base_with(r#"algorithm = "ecdsa-p256""#, r#"algorithm = "dsa-1024""#),
        &[at(
            "unsupported key algorithm `dsa-1024`",
            2,
            13,
            "\"dsa-1024\"",
            Some("`rsa-2048`, `rsa-3072`, `rsa-4096`, `ecdsa-p256`, `ecdsa-p384`, `ed25519`"),
        )],
    );
}

#[test]
fn unknown_issuer() {
    check(
        &base_with(r#"issuer = "ca""#, r#"issuer = "cb""#),
        &[at(
            "unknown issuer `cb`",
            12,
            10,
            "\"cb\"",
            Some("did you mean `ca`? CAs declared in pki.toml: `ca`"),
        )],
    );
}

#[test]
fn issuer_cycle_is_named() {
    let spec = r#"[[ca]]
name = "a"
issuer = "b"
cn = "a"
cert = "a.crt"
key = "a.key"

[[ca]]
name = "b"
issuer = "a"
cn = "b"
cert = "b.crt"
key = "b.key"
"#;
    check(
        spec,
        &[at(
            "issuer cycle: a -> b -> a",
            3,
            10,
            "\"b\"",
            Some("make one of them a root"),
        )],
    );
    // A CA that names itself.
    check(
        &base_with(r#"cn = "test-ca""#, "cn = \"test-ca\"\nissuer = \"ca\""),
        &[at("issuer cycle: ca -> ca", 7, 10, "\"ca\"", None)],
    );
}

#[test]
fn issuer_that_is_not_a_ca() {
    let spec = format!(
        "{BASE}{}",
        replace_once(SECOND, r#"issuer = "ca""#, r#"issuer = "leaf""#)
    );
    check(
        &spec,
        &[at(
            "issuer `leaf` is not a CA: it is a leaf certificate",
            20,
            10,
            "\"leaf\"",
            Some("only a [[ca]] entry can sign"),
        )],
    );
}

#[test]
fn duplicate_names() {
    let spec = format!(
        "{BASE}{}",
        replace_once(SECOND, r#"name = "other""#, r#"name = "leaf""#)
    );
    check(
        &spec,
        &[at(
            "duplicate name `leaf`",
            19,
            8,
            "\"leaf\"",
            Some("needs a name of its own"),
        )],
    );
}

#[test]
fn two_items_writing_the_same_path() {
    let spec = format!(
        "{BASE}{}",
        replace_once(SECOND, r#"cert = "other.crt""#, r#"cert = "./leaf.crt""#)
    );
    check(
        &spec,
        &[at(
            "`other` writes `leaf.crt`, which `leaf` writes too",
            23,
            8,
            "\"./leaf.crt\"",
            Some("give each file one owner"),
        )],
    );
}

#[test]
fn output_path_escaping_the_output_folder() {
    check(
        &base_with(r#"cert = "leaf.crt""#, r#"cert = "certs/../../leaf.crt""#),
        &[at(
            "output path `certs/../../leaf.crt` escapes the output folder",
            15,
            8,
            "\"certs/../../leaf.crt\"",
            Some("without `..`"),
        )],
    );
    check(
        &base_with(
            r#"key = "leaf.key""#,
            r#"key = "/etc/kubernetes/pki/leaf.key""#,
        ),
        &[at(
            "output path `/etc/kubernetes/pki/leaf.key` escapes the output folder",
            16,
            7,
            "\"/etc/kubernetes/pki/leaf.key\"",
            Some("relative path"),
        )],
    );
}

#[test]
fn leaf_outliving_its_ca() {
    let spec = base_with(r#"cn = "test-ca""#, "cn = \"test-ca\"\nvalidity = \"2y\"");
    let spec = replace_once(
        &spec,
        r#"cn = "leaf""#,
        "cn = \"leaf\"\nvalidity = \"1095d\"",
    );
    check(
        &spec,
        &[at(
            "`leaf` would outlive its issuer `ca`: validity 1095d is longer than the issuer's 730d",
            15,
            12,
            "\"1095d\"",
            Some("shorten `validity` to at most 730d"),
        )],
    );
}

#[test]
fn empty_subject() {
    check(
        &base_with(r#"cn = "leaf""#, r#"cn = """#),
        &[at(
            "`leaf` has an empty subject",
            13,
            6,
            "\"\"",
            Some("set `cn`"),
        )],
    );
}

#[test]
fn node_referenced_but_not_declared() {
    let spec = format!(
        "{BASE}\n[[node]]\nname = \"cp-1\"\nrole = \"control-plane\"\n{}",
        replace_once(
            SECOND,
            r#"cn = "other""#,
            "nodes = [\"cp-1\", \"cp-2\"]\ncn = \"{node}\""
        )
    );
    check(
        &spec,
        &[at(
            "node `cp-2` is not declared",
            25,
            18,
            "\"cp-2\"",
            Some("declared nodes: `cp-1`"),
        )],
    );
}

#[test]
fn missing_template() {
    let spec = format!(
        "{BASE}\n[[render]]\nname = \"conf\"\ntemplate = \"kubeconfg.hbs\"\npath = \"leaf.conf\"\n"
    );
    check(
        &spec,
        &[at(
            "template `kubeconfg.hbs` not found in the templates folder",
            20,
            12,
            "\"kubeconfg.hbs\"",
            Some("did you mean `kubeconfig.hbs`?"),
        )],
    );
}

#[test]
fn template_using_an_undefined_variable_is_reported_in_the_template() {
    let template = "# for {{vars.who}}\nserver: {{vars.sever}}\n";
    let spec = format!(
        "{BASE}\n[[render]]\nname = \"conf\"\ntemplate = \"broken.hbs\"\npath = \"leaf.conf\"\nvars = {{ who = \"me\", server = \"https://x\" }}\n"
    );
    let f = Fixture::new(&spec);
    std::fs::write(f.root().join("templates/broken.hbs"), template).unwrap();
    let r = check_fixture(
        &f,
        "templates/broken.hbs",
        template,
        &[at(
            "conf: undefined variable `vars.sever` in template `templates/broken.hbs`",
            2,
            9,
            "{{vars.sever}}",
            Some("check the variable's spelling"),
        )],
    );
    assert!(!r.stderr.contains("pki.toml:"), "{}", r.stderr);
    assert_eq!(
        r.stderr.lines().last(),
        Some("error: 1 problem stops the run; nothing was written"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_problem_of_a_file_is_reported_in_one_run() {
    // Mistakes in six tables of four kinds, of parsing (unknown keys, a wrong type) and of
    // meaning (addresses, names, references, paths) alike: all are listed, in file order.
    let spec = r#"[defaults]
algorithm = "ecdsa-p256"
validty = "30d"

[[node]]
name = "cp-1"
ips = ["10.0.0.300"]
role = "control-plane"

[[ca]]
name = "ca"
cn = "test-ca"
cert = "ca.crt"
key = "ca.key"
pathlen = 1

[[cert]]
name = "broken"
issuer = "ca"
cn = ["not", "a", "string"]
usage = ["client"]
cert = "broken.crt"
key = "broken.key"

[[cert]]
name = "server"
issuer = "kubernetes-ca"
cn = "server"
dns = ["server.example", "bad_name"]
usage = ["server"]
cert = "../server.crt"
key = "server.key"

[[keypair]]
name = "sa"
algorithm = "rsa-1024"
private = "ca.key"
public = "sa.pub"

[[render]]
name = "conf"
template = "kubeconfig.hbs"
path = "conf"
bind = { client = "broken", ca = "ca" }
"#;
    check(
        spec,
        &[
            at(
                "unknown field `validty`",
                3,
                1,
                "validty",
                Some("did you mean `validity`?"),
            ),
            at(
                "invalid IP address `10.0.0.300`",
                7,
                8,
                "\"10.0.0.300\"",
                None,
            ),
            at(
                "unknown field `pathlen`",
                15,
                1,
                "pathlen",
                Some("did you mean `path-len`?"),
            ),
            at(
                "invalid type: sequence, expected a string",
                20,
                6,
                "[\"not\", \"a\", \"string\"]",
                None,
            ),
            at(
                "unknown issuer `kubernetes-ca`",
                27,
                10,
                "\"kubernetes-ca\"",
                Some("CAs declared in pki.toml: `ca`"),
            ),
            at("invalid DNS name `bad_name`", 29, 26, "\"bad_name\"", None),
            at(
                "output path `../server.crt` escapes the output folder",
                31,
                8,
                "\"../server.crt\"",
                None,
            ),
            at(
                "unsupported key algorithm `rsa-1024`",
                36,
                13,
                "\"rsa-1024\"",
                None,
            ),
            at(
                "`sa` writes `ca.key`, which `ca` writes too",
                37,
                11,
                "\"ca.key\"",
                None,
            ),
        ],
    );
}

#[test]
fn bad_input_leaves_an_existing_output_folder_unchanged() {
    let f = Fixture::new(BASE);
    f.apply(&[]);
    let before = f.hashes();
    let modes = |f: &Fixture| -> Vec<u32> {
        use std::os::unix::fs::PermissionsExt;
        before
            .keys()
            .map(|p| std::fs::metadata(f.path(p)).unwrap().permissions().mode())
            .collect()
    };
    let modes_before = modes(&f);
    // A change that would re-sign the leaf, together with a mistake: nothing happens at all.
    f.set_spec(&replace_once(
        &base_with(r#"cn = "leaf""#, r#"cn = "renamed""#),
        r#"issuer = "ca""#,
        r#"issuer = "cb""#,
    ));
    let r = f.pki(&[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("--> pki.toml:12:10"), "{}", r.stderr);
    assert_eq!(f.hashes(), before, "bad input changed out/");
    assert_eq!(modes(&f), modes_before);
}
