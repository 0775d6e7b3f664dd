//! Snapshot tests with insta: the one guard that keeps CI from writing or passing snapshots, and
//! the settings every snapshot-taking module binds its assertions in. The snapshot folder is
//! resolved by insta against the file where `assert_snapshot!` stands, so each module keeps its
//! own folder however these helpers are shared.

/// Under `CI=true`, fails unless insta is left to compare only: no environment variable and no
/// insta config file may ask it to write snapshots (`INSTA_UPDATE` other than `auto` or `no`) or
/// to pass regardless (`INSTA_FORCE_PASS`). See the module comment of `snapshots.rs`.
pub fn guard_ci() {
    if std::env::var("CI").as_deref() != Ok("true") {
        return;
    }
    let update = std::env::var("INSTA_UPDATE").unwrap_or_default();
    assert!(
        matches!(update.as_str(), "" | "auto" | "no"),
        "CI=true with INSTA_UPDATE={update}: CI must not write snapshots"
    );
    for legacy in ["INSTA_FORCE_UPDATE", "INSTA_FORCE_UPDATE_SNAPSHOTS"] {
        assert!(
            std::env::var_os(legacy).is_none(),
            "CI=true with {legacy} set: CI must not write snapshots"
        );
    }
    let force_pass = std::env::var("INSTA_FORCE_PASS").unwrap_or_default();
    assert!(
        matches!(force_pass.as_str(), "" | "0"),
        "CI=true with INSTA_FORCE_PASS={force_pass}: CI must not pass failing snapshots"
    );
    // insta also reads its behaviour from these files; none is expected here.
    for config in ["insta.yaml", ".config/insta.yaml"] {
        assert!(
            !super::repo_root().join(config).exists(),
            "{config} may change insta's behaviour under CI; check it, then allow it here"
        );
    }
}

/// `text` as a regular expression that matches it literally.
pub fn regex_literal(text: &str) -> String {
    let mut res = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_punctuation() {
            res.push('\\');
        }
        res.push(c);
    }
    res
}

/// The insta settings every snapshot starts from: snapshots in `folder` (relative to the file
/// that asserts), named without the module and without the expression, and the fixture's
/// temporary folder replaced by `[root]`.
pub fn snapshot_settings(f: &super::Fixture, folder: &str) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(folder);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    // The fixture's temporary folder, wherever the system puts it.
    settings.add_filter(&regex_literal(&f.root().display().to_string()), "[root]");
    settings
}

/// The settings of the transcripts in `tests/it/snapshots/`: those of [`snapshot_settings`],
/// and filters for everything random the CLI prints.
pub fn transcript_settings(f: &super::Fixture) -> insta::Settings {
    let mut settings = snapshot_settings(f, "snapshots");
    // Temporary files are named `.NAME.tmp-PID`.
    settings.add_filter(r"\.tmp-[0-9]+", ".tmp-[pid]");
    // SHA-256 of certificates and public keys, whole and shortened.
    settings.add_filter(r"\b[0-9a-f]{64}\b", "[sha256]");
    settings.add_filter(r"sha256 [0-9a-f]{16}\b", "sha256 [sha256-short]");
    // Serials are random, and key identifiers follow the keys, which are random too. Both print
    // as hex pairs; they are matched by their labels so that `pki.toml:21:10` stays.
    settings.add_filter(
        r"serial: [0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*",
        "serial: [serial]",
    );
    settings.add_filter(
        r"(subject|authority)-key-id: [0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*",
        "$1-key-id: [key-id]",
    );
    // Any other long run of hex pairs is random material under a label this list lacks.
    settings.add_filter(r"\b[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){7,}\b", "[hex]");
    settings
}
