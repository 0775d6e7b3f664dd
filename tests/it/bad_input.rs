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
        &[at("this value is not quoted", 12, 10, "ca", None)],
    );
}

#[test]
fn unknown_key_suggests_the_nearest_known_one() {
    check(
        &base_with(r#"cn = "leaf""#, "cn = \"leaf\"\nvalidty = \"30d\""),
        &[at(
            "unknown key `validty`",
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
        &[at("`cn` is a string, not a number", 13, 6, "5", None)],
    );
    check(
        &base_with(r#"usage = ["client"]"#, r#"usage = "client""#),
        &[at(
            "`usage` is a list, not a string",
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
fn defaults_that_make_every_leaf_outlive_its_ca_are_reported_once_in_defaults() {
    // Line 2 is the default validity; both leaves and the CA inherit theirs.
    let spec = format!(
        "{}{SECOND}",
        base_with(
            r#"algorithm = "ecdsa-p256""#,
            "validity = \"20y\"\nca-validity = \"10y\"\nalgorithm = \"ecdsa-p256\""
        )
    );
    check(
        &spec,
        &[at(
            "default `validity` is longer than default `ca-validity` (3650d): 2 certificates would outlive their CA (leaf, other)",
            2,
            12,
            "\"20y\"",
            Some("set `validity` to at most 3650d in [defaults], or lengthen `ca-validity`"),
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
                "unknown key `validty`",
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
                "unknown key `pathlen`",
                15,
                1,
                "pathlen",
                Some("did you mean `path-len`?"),
            ),
            at(
                "`cn` is a string, not a list",
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

#[test]
fn a_path_len_too_short_for_the_cas_below() {
    // path-len counts the CA levels allowed below a CA: 0 allows none, so an intermediate under
    // it makes a chain every verifier rejects ("path length constraint exceeded").
    let mid = "\n[[ca]]\nname = \"mid\"\nissuer = \"ca\"\ncn = \"mid\"\ncert = \"mid.crt\"\nkey = \"mid.key\"\n";
    let with_len = |n: u8| {
        base_with(
            r#"cn = "test-ca""#,
            &format!("cn = \"test-ca\"\npath-len = {n}"),
        )
    };
    check(
        &format!("{}{mid}", with_len(0)),
        &[at(
            "`ca` has path-len 0, but CA `mid` is 1 level below it",
            7,
            12,
            "0",
            Some("set `path-len = 1` or more"),
        )],
    );
    // Two levels down, through an intermediate that sets none.
    let low = "\n[[ca]]\nname = \"low\"\nissuer = \"mid\"\ncn = \"low\"\ncert = \"low.crt\"\nkey = \"low.key\"\n";
    check(
        &format!("{}{mid}{low}", with_len(1)),
        &[at(
            "`ca` has path-len 1, but CA `low` is 2 levels below it",
            7,
            12,
            "1",
            Some("set `path-len = 2` or more"),
        )],
    );
    // As many levels as path-len allows: accepted, and openssl agrees.
    let spec = replace_once(
        &format!("{}{mid}", with_len(1)),
        "issuer = \"ca\"\ncn = \"leaf\"",
        "issuer = \"mid\"\ncn = \"leaf\"",
    );
    let f = Fixture::new(&spec);
    f.apply(&[]);
    let mid_crt = f.path("mid.crt");
    let untrusted = mid_crt.to_str().unwrap();
    let r = openssl_verify(
        &f.path("ca.crt"),
        &[&f.path("leaf.crt")],
        "sslclient",
        &["-untrusted", untrusted],
    );
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn node_ips_only_as_a_whole_ips_entry_of_a_per_node_entry() {
    // Outside a per-node entry it is an error, not silently nothing.
    check(
        &base_with(
            r#"cn = "test-ca""#,
            "cn = \"test-ca\"\nips = [\"{node.ips}\"]",
        ),
        &[at(
            "`{node.ips}` used outside a per-node entry",
            7,
            8,
            "\"{node.ips}\"",
            Some("for-each-node"),
        )],
    );
    // In another field of a per-node entry it is an error naming the field, not literal text.
    let node = "\n[[node]]\nname = \"cp-1\"\nips = [\"10.0.0.11\"]\nrole = \"worker\"\n";
    let per_node = |cn: &str| {
        format!(
            "{BASE}{node}{}",
            replace_once(
                SECOND,
                r#"cn = "other""#,
                &format!("for-each-node = \"all\"\ncn = \"{cn}\"")
            )
        )
    };
    check(
        &per_node("{node.ips}"),
        &[at(
            "`{node.ips}` cannot be used in `cn`",
            27,
            6,
            "\"{node.ips}\"",
            Some("valid only as a whole entry of `ips`"),
        )],
    );
    let spec = replace_once(
        &per_node("{node}"),
        "cert = \"other.crt\"",
        "cert = \"{node.ips}/other.crt\"",
    );
    check(
        &spec,
        &[at(
            "`{node.ips}` cannot be used in `cert`",
            29,
            8,
            "\"{node.ips}/other.crt\"",
            None,
        )],
    );
}

#[test]
fn node_placeholders_in_render_vars() {
    // In a render that is not per-node, `{node}` is out of place, not unknown.
    let render = "\n[[render]]\nname = \"conf\"\ntemplate = \"etcd.env.hbs\"\npath = \"conf\"\nvars = { who = \"{node}\" }\n";
    check(
        &format!("{BASE}{render}"),
        &[at(
            "`{node}` used outside a per-node entry",
            22,
            8,
            "{ who = \"{node}\" }",
            Some("for-each-node"),
        )],
    );
    // `{node.ip}` of a node without addresses says so.
    let node = "\n[[node]]\nname = \"w-1\"\nrole = \"worker\"\n";
    let render = replace_once(
        render,
        "vars = { who = \"{node}\" }",
        "for-each-node = \"worker\"\nvars = { at = \"{node.ip}\" }",
    );
    check(
        &format!("{BASE}{node}{render}"),
        &[at(
            "`{node.ip}` used, but node `w-1` has no `ips`",
            27,
            8,
            "{ at = \"{node.ip}\" }",
            Some("give the node its address"),
        )],
    );
}

#[test]
fn a_validity_within_renew_before_would_re_sign_on_every_run() {
    let msg = "would be re-signed on every run";
    // The item's own validity...
    check(
        &base_with(r#"cn = "leaf""#, "cn = \"leaf\"\nvalidity = \"30d\""),
        &[at(
            "`leaf` would be re-signed on every run: its validity 30d is not longer than its renew-before 30d",
            14,
            12,
            "\"30d\"",
            Some("lengthen `validity` beyond 30d, or shorten `renew-before` below 30d"),
        )],
    );
    // ... or its renew-before, whichever it sets (validity first, for a CA too) ...
    check(
        &base_with(r#"cn = "leaf""#, "cn = \"leaf\"\nrenew-before = \"400d\""),
        &[at(
            "its validity 365d is not longer than its renew-before 400d",
            14,
            16,
            "\"400d\"",
            Some("shorten `renew-before` below 365d"),
        )],
    );
    check(
        &base_with(
            r#"cn = "test-ca""#,
            "cn = \"test-ca\"\nvalidity = \"400d\"\nrenew-before = \"400d\"",
        ),
        &[at(
            "`ca` would be re-signed on every run",
            7,
            12,
            "\"400d\"",
            None,
        )],
    );
    // ... else its name, when both come from the defaults.
    check(
        &base_with(
            r#"algorithm = "ecdsa-p256""#,
            "algorithm = \"ecdsa-p256\"\nrenew-before = \"4000d\"",
        ),
        &[
            at(msg, 6, 8, "\"ca\"", Some("beyond 4000d")),
            at(msg, 12, 8, "\"leaf\"", Some("beyond 4000d")),
        ],
    );
}

#[test]
fn csr_paths_and_temporary_file_names_are_not_for_declaring() {
    // Every certificate owns `<cert path without .crt/.pem>.csr`: its CSR goes there when its
    // issuer is an external CA, and would overwrite another item's file.
    let more = "\n[[keypair]]\nname = \"sa\"\nprivate = \"sa.key\"\npublic = \"ca.csr\"\n\n[[render]]\nname = \"conf\"\ntemplate = \"etcd.env.hbs\"\npath = \"leaf.csr\"\n";
    check(
        &format!("{BASE}{more}"),
        &[
            at(
                "`sa` writes `ca.csr`, which is the CSR path of `ca`",
                21,
                10,
                "\"ca.csr\"",
                Some("also owns `NAME.csr`"),
            ),
            at(
                "`conf` writes `leaf.csr`, which is the CSR path of `leaf`",
                26,
                8,
                "\"leaf.csr\"",
                Some("also owns `NAME.csr`"),
            ),
        ],
    );
    check(
        &format!(
            "{BASE}{}",
            replace_once(SECOND, r#"cert = "other.crt""#, r#"cert = "leaf.pem""#)
        ),
        &[at(
            "`other` and `leaf` have the same CSR path `leaf.csr`",
            23,
            8,
            "\"leaf.pem\"",
            None,
        )],
    );
    // `.NAME.tmp-PID` is what a write goes through; such files are removed as leftovers.
    check(
        &base_with(r#"key = "leaf.key""#, r#"key = "keys/.leaf.key.tmp-4242""#),
        &[at(
            "output path `keys/.leaf.key.tmp-4242` is named like a temporary file of the tool",
            16,
            7,
            "\"keys/.leaf.key.tmp-4242\"",
            Some("`.NAME.tmp-DIGITS`"),
        )],
    );
}

#[test]
fn a_clock_outside_1970_to_9000_is_a_usage_error() {
    let f = Fixture::new(BASE);
    for (now, epoch) in [
        (Some("1969-12-31T23:59:59Z"), None),
        (Some("9000-01-01T00:00:01Z"), None),
        (Some("8999-12-31T23:30:00-01:00"), None),
        // In UTC, past the year 9999: refused, not a crash.
        (Some("9999-12-31T23:59:59-23:59"), None),
        (None, Some("-1")),
    ] {
        let mut cmd = f.command(&[]);
        if let Some(now) = now {
            cmd.args(["--now", now]);
        }
        if let Some(epoch) = epoch {
            cmd.env("SOURCE_DATE_EPOCH", epoch);
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, 2, "{now:?} {epoch:?}:\n{}", r.all());
        assert!(
            r.stderr.starts_with("error: ") && r.stderr.contains("outside the supported range"),
            "{}",
            r.stderr
        );
        assert!(!f.out().exists(), "nothing is written");
    }
}

/// BASE with a render of templates/`template`, whose `template = ...` is on line 20.
fn with_render(template: &str) -> String {
    format!(
        "{BASE}\n[[render]]\nname = \"conf\"\ntemplate = \"{template}\"\npath = \"leaf.conf\"\nvars = {{ a = \"x\" }}\n"
    )
}

#[test]
fn the_templates_folder_skips_hidden_files_and_follows_links() {
    let f = Fixture::new(&with_render("note.hbs"));
    let t = f.root().join("templates");
    std::fs::write(t.join("note.hbs"), "a: {{vars.a}}\n").unwrap();
    // An editor's swap file and a hidden folder: binary, and never templates.
    std::fs::write(t.join(".note.hbs.swp"), b"b0VIM \xff\xfe\x00\x01").unwrap();
    std::fs::create_dir(t.join(".git")).unwrap();
    std::fs::write(t.join(".git/index"), b"DIRC\xff\x00").unwrap();
    // A binary file nobody uses is no problem either.
    std::fs::write(t.join("logo.png"), b"\x89PNG\r\n\x1a\n\xff").unwrap();
    // Nor is a dangling link.
    std::os::unix::fs::symlink(f.root().join("gone.hbs"), t.join("gone.hbs")).unwrap();
    f.apply(&[]);
    assert_eq!(f.read("leaf.conf"), "a: x\n");
    // Templates shared from elsewhere through links, a file's and a folder's.
    let shared = f.root().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("linked.hbs"), "linked: {{vars.a}}\n").unwrap();
    std::os::unix::fs::symlink(shared.join("linked.hbs"), t.join("linked.hbs")).unwrap();
    std::os::unix::fs::symlink(&shared, t.join("lib")).unwrap();
    f.set_spec(&with_render("linked.hbs"));
    f.apply(&[]);
    assert_eq!(f.read("leaf.conf"), "linked: x\n");
    f.set_spec(&with_render("lib/linked.hbs"));
    f.apply(&[]);
    assert_eq!(f.read("leaf.conf"), "linked: x\n");
}

#[test]
fn a_template_that_is_not_text_is_reported_where_pki_toml_uses_it() {
    let spec = with_render("logo.png");
    let f = Fixture::new(&spec);
    std::fs::write(
        f.root().join("templates/logo.png"),
        b"\x89PNG\r\n\x1a\n\xff",
    )
    .unwrap();
    let r = check_fixture(
        &f,
        "pki.toml",
        &spec,
        &[at(
            "template `logo.png` is not UTF-8 text",
            20,
            12,
            "\"logo.png\"",
            Some("UTF-8 text"),
        )],
    );
    assert_eq!(
        r.stderr.lines().last(),
        Some("error: pki.toml has 1 error; nothing was written"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_template_that_cannot_be_read_is_reported_where_pki_toml_uses_it() {
    let spec = with_render("gone.hbs");
    let f = Fixture::new(&spec);
    std::os::unix::fs::symlink(
        f.root().join("gone.hbs"),
        f.root().join("templates/gone.hbs"),
    )
    .unwrap();
    check_fixture(
        &f,
        "pki.toml",
        &spec,
        &[at(
            "template `gone.hbs` cannot be read",
            20,
            12,
            "\"gone.hbs\"",
            Some("readable file"),
        )],
    );
}

#[test]
fn an_indent_too_wide_is_a_template_error_not_a_crash() {
    let template = "a: {{vars.a}}\nb: {{indent 18446744073709551615 vars.a}}\n";
    let f = Fixture::new(&with_render("wide.hbs"));
    std::fs::write(f.root().join("templates/wide.hbs"), template).unwrap();
    let r = check_fixture(
        &f,
        "templates/wide.hbs",
        template,
        &[at(
            "conf: template `templates/wide.hbs`: `indent 18446744073709551615`: the width is at most 1024",
            2,
            4,
            "{{indent 18446744073709551615 vars.a}}",
            None,
        )],
    );
    assert_eq!(
        r.stderr.lines().last(),
        Some("error: 1 problem stops the run; nothing was written"),
        "{}",
        r.stderr
    );
}
