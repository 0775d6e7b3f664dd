//! Progress on long runs: the library tells its observer of the plan before the slow work and of
//! every phase and step of it (and nothing on a run with nothing to do); the command line prints
//! the plan early and draws a bar on a terminal (a real pseudo-terminal, from util-linux's
//! `script`), never when piped, with `NO_COLOR` or with `--quiet`; and what must never reach a
//! terminal (a tar stream of keys) does not.

use std::sync::{Arc, Mutex};

use kubepki::{Observer, Phase, Progress};

use crate::support::*;

/// What an observer heard, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    Planned(String),
    Phase(Phase, u64),
    Step,
    Finished,
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Heard>>);

impl Progress for Recorder {
    fn planned(&self, report: &str) {
        self.0.lock().unwrap().push(Heard::Planned(report.into()));
    }
    fn phase(&self, phase: Phase, total: u64) {
        self.0.lock().unwrap().push(Heard::Phase(phase, total));
    }
    fn step(&self) {
        self.0.lock().unwrap().push(Heard::Step);
    }
    fn finished(&self) {
        self.0.lock().unwrap().push(Heard::Finished);
    }
}

/// `NODE_CHAIN` with a kubeconfig per node: keys, signatures, renders and writes.
const SPEC: &str = r#"
[[render]]
name = "client.conf"
template = "kubeconfig.hbs"
for-each-node = "all"
path = "nodes/{node}/client.conf"
bind = { ca = "root-ca", client = "client" }
secrets = ["client"]
vars = { cluster = "test", server = "https://127.0.0.1:6443" }
"#;

fn fixture() -> Fixture {
    Fixture::new(&format!("{NODE_CHAIN}{SPEC}"))
}

/// Runs the library on `f` with a recorder, as `cargo xtask pki [--check]` would.
fn observed(f: &Fixture, check: bool) -> (kubepki::Outcome, Vec<Heard>) {
    let recorder = Arc::new(Recorder::default());
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let progress: Arc<dyn Progress> = recorder.clone();
    let outcome = kubepki::run(&kubepki::Options {
        spec_file: f.root().join("pki.toml"),
        templates_dir: f.root().join("templates"),
        out_dir: f.out(),
        check,
        diff: false,
        prune: false,
        rekey: Default::default(),
        renew: Default::default(),
        now,
        clock: kubepki::Clock::system(now),
        color: false,
        format: kubepki::report::PlanFormat::Text,
        identities: Vec::new().into(),
        progress: Observer::new(progress),
    })
    .expect("the run succeeds");
    let heard = recorder.0.lock().unwrap().clone();
    (outcome, heard)
}

/// Each phase with the steps heard in it.
fn phases(heard: &[Heard]) -> Vec<(Phase, u64, u64)> {
    let mut res: Vec<(Phase, u64, u64)> = Vec::new();
    for h in heard {
        match h {
            Heard::Phase(p, total) => res.push((*p, *total, 0)),
            Heard::Step => res.last_mut().expect("a step inside a phase").2 += 1,
            _ => {}
        }
    }
    res
}

#[test]
fn the_plan_is_told_before_the_slow_work_then_every_phase_and_step() {
    let f = fixture();
    let (outcome, heard) = observed(&f, false);
    let Some(Heard::Planned(report)) = heard.first() else {
        panic!("the plan comes first: {heard:?}");
    };
    assert!(
        outcome.text.starts_with(report.as_str()),
        "the report begins with what was told early:\n{report}\n---\n{}",
        outcome.text
    );
    assert!(report.contains("+ create"), "{report}");
    assert!(
        !report.contains("wrote"),
        "told before anything is written: {report}"
    );
    assert_eq!(heard.last(), Some(&Heard::Finished), "{heard:?}");
    let seen = phases(&heard);
    let order: Vec<Phase> = seen.iter().map(|p| p.0).collect();
    assert_eq!(
        order,
        [
            Phase::Keys,
            Phase::Signing,
            Phase::Rendering,
            Phase::Writing
        ],
        "{heard:?}"
    );
    for (phase, total, steps) in &seen {
        assert_eq!(total, steps, "{phase:?}: every step is told, no more");
    }
    // The chain's certificates (a CA, a server and a client per node, ...) and their keys; two
    // nodes' kubeconfigs; every file of the tree (the inventory too, written last on its own) but
    // the lock.
    let spec = kubepki::load(&f.sources()).unwrap();
    let certs = spec
        .items
        .iter()
        .filter(|i| matches!(i.kind, kubepki::spec::ItemKind::Cert(_)))
        .count() as u64;
    assert_eq!(seen[1].1, certs, "one signature per certificate");
    assert_eq!(seen[2].1, f.files_ending(".conf").len() as u64);
    assert_eq!(
        seen[3].1 + 1,
        files_under(&f.out()).len() as u64,
        "all files but the lock"
    );
}

#[test]
fn a_run_with_nothing_to_do_and_a_check_tell_nothing() {
    let f = fixture();
    observed(&f, false);
    let (outcome, heard) = observed(&f, false);
    assert!(!outcome.changed);
    assert_eq!(heard, [], "a no-op has no slow work");
    f.edit_spec(
        r#"dns = ["api.example"]"#,
        r#"dns = ["api.example", "b.example"]"#,
    );
    let (outcome, heard) = observed(&f, true);
    assert!(outcome.changed);
    assert_eq!(heard, [], "--check writes nothing");
}

/// `cargo xtask pki ARGS` on `f` on a pseudo-terminal (`script`), with the bar shown at once:
/// everything the terminal received.
fn on_a_terminal(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Option<Run> {
    terminal(f, &f.command(args), env)
}

/// `inner` run on a pseudo-terminal in `f`'s folder, the bar shown at once: everything the
/// terminal received.
fn terminal(f: &Fixture, inner: &std::process::Command, env: &[(&str, &str)]) -> Option<Run> {
    let script = tool("script", "bsdutils")?;
    let mut all = vec![("TERM", "xterm"), ("KUBEPKI_PROGRESS_AFTER", "0s")];
    all.extend_from_slice(env);
    Some(on_pty(&script, inner, f.root(), &all))
}

/// The bar's own words, which no report line uses.
fn drew_a_bar(terminal: &str) -> bool {
    terminal.contains("generating keys") || terminal.contains("writing [")
}

#[test]
fn a_terminal_gets_a_bar_and_the_plan_before_it() {
    let f = fixture();
    let Some(r) = on_a_terminal(&f, &[], &[]) else {
        return;
    };
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(drew_a_bar(&r.stdout), "{:?}", r.stdout);
    let plan = r.stdout.find("+ create").expect("the plan");
    let bar = r.stdout.find("generating keys").expect("the bar");
    let wrote = r.stdout.find("wrote").expect("the summary");
    assert!(
        plan < bar && bar < wrote,
        "plan, then bar, then summary: {:?}",
        r.stdout
    );
    let line = r.stdout[plan..].lines().next().unwrap();
    assert_eq!(
        r.stdout.matches(line).count(),
        1,
        "the plan is printed once: {:?}",
        r.stdout
    );
}

#[test]
fn no_bar_when_piped_with_no_color_or_quiet() {
    let piped = fixture();
    let mut cmd = piped.command(&[]);
    cmd.env_remove("NO_COLOR")
        .env("KUBEPKI_PROGRESS_AFTER", "0s");
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stderr, "", "nothing but the report when piped");
    assert!(!drew_a_bar(&r.stdout), "{}", r.stdout);

    let no_color = fixture();
    let Some(r) = on_a_terminal(&no_color, &[], &[("NO_COLOR", "1")]) else {
        return;
    };
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!drew_a_bar(&r.stdout), "{:?}", r.stdout);
    assert!(r.stdout.contains("wrote"), "{:?}", r.stdout);

    let quiet = fixture();
    let r = on_a_terminal(&quiet, &["--quiet"], &[]).expect("script was found above");
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stdout.trim(), "", "--quiet prints nothing on success");
    assert!(
        quiet.out().join("inventory.txt").is_file(),
        "and still does the work"
    );
}

#[test]
fn a_bad_delay_is_a_usage_error() {
    let f = fixture();
    let mut cmd = f.command(&[]);
    cmd.env("KUBEPKI_PROGRESS_AFTER", "soon");
    let r = run(&mut cmd);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("KUBEPKI_PROGRESS_AFTER `soon` is not a duration"),
        "{}",
        r.stderr
    );
    assert!(!f.out().exists(), "nothing written");
}

/// A tar stream of a node's files holds its private keys in plaintext: `deploy --tar` refuses a
/// terminal (and prints no key there), and still writes the stream into a pipe.
#[test]
fn deploy_never_writes_a_tar_stream_to_a_terminal() {
    let f = fixture();
    f.apply(&[]);
    let root = f.root();
    let mut deploy = xtask_on("deploy", root, &root.join("out"));
    deploy.args(["--node", "n1", "--tar"]);
    let Some(r) = terminal(&f, &deploy, &[]) else {
        return;
    };
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.contains("not to a terminal"), "{:?}", r.stdout);
    assert!(!r.stdout.contains("PRIVATE KEY"), "{:?}", r.stdout);
    let piped = run(&mut deploy);
    assert_eq!(piped.code, 0, "{}", piped.all());
    assert!(
        piped.stdout.contains("PRIVATE KEY"),
        "the stream holds the keys"
    );
}
