//! `cargo xtask completions SHELL`: bash runs the script it prints and completes subcommands,
//! flags and flag values of `pki` and `pki status` as a user's Tab would; every other shell's
//! script names them too.

use crate::support::*;

/// What bash's completion function offers for `words`, the last one being completed, after
/// sourcing the script `cargo xtask completions bash` printed.
fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; _xtask xtask '{}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words[cword],
    );
    let r = run(std::process::Command::new("bash").args(["--norc", "-c", &program]));
    assert_eq!(r.code, 0, "bash: {}", r.all());
    // `printf` prints one empty line for an empty array.
    r.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_pki_and_status() {
    let Some(_) = tool("bash", "bash") else {
        return;
    };
    let script = run(xtask().args(["completions", "bash"]));
    assert_eq!(script.code, 0, "{}", script.all());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xtask.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    let offered = |words: &[&str]| bash_completes(&path, words);
    assert_eq!(offered(&["xtask", "pki", "st"]), ["status"]);
    assert_eq!(
        offered(&["xtask", "pki", "status", "--w"]),
        ["--warn-within"]
    );
    assert_eq!(
        offered(&["xtask", "pki", "status", "--format", ""]),
        ["text", "json", "prometheus"]
    );
    // The plain command's flags stay; status takes the global clock flag but not --check.
    assert!(offered(&["xtask", "pki", "--"]).contains(&"--rekey".to_string()));
    assert_eq!(offered(&["xtask", "pki", "status", "--n"]), ["--now"]);
    assert!(offered(&["xtask", "pki", "status", "--ch"]).is_empty());
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = run(xtask().args(["completions", shell]));
        assert_eq!(r.code, 0, "{shell}: {}", r.all());
        for word in ["pki", "status", "warn-within", "completions"] {
            assert!(r.stdout.contains(word), "{shell} lacks {word}");
        }
    }
    let r = run(xtask().args(["completions", "tcsh"]));
    assert_eq!(r.code, 2, "{}", r.all());
}
