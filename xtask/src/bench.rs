//! `cargo xtask bench`: times this tool as users run it, a whole process from start to exit, on
//! workloads that grow, and beside peers (an openssl script, cfssl) doing the same job. Machines
//! are shared and noisy, so runs are interleaved (A B A B ...), each figure is a median with its
//! min and max, and each ratio is taken pair by pair (run k of A against run k of B) before its
//! median is taken. No test asserts on time; `tests/it/bench.rs` only checks the bench runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod workload;

use workload::{Peer, Spec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Worker nodes of the per-node workloads (cold, no-op, one SAN change, --check).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Worker counts of the scaling table (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    scale: Vec<usize>,
    /// Leaf certificates of the kubeadm-sized set compared with the peers (kubeadm makes 12
    /// leaf certificates under one control plane's CAs).
    #[arg(long, default_value_t = 12)]
    leaves: usize,
    /// Runs of each side; the sides are interleaved run by run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Run from a debug build anyway. Its figures say nothing about what users get; only the
    /// repository's test of the bench uses this.
    #[arg(long)]
    allow_debug: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    if cfg!(debug_assertions) && !args.allow_debug {
        return Err(
            "this is a debug build, whose figures mean nothing for users: run `cargo xtask bench` \
             (the alias builds in release) or `cargo run --release -p xtask -- bench`"
                .into(),
        );
    }
    if args.runs == 0 || args.scale.contains(&0) {
        return Err("--runs and every --scale value must be at least 1".into());
    }
    let b = Bench::new(&args)?;
    b.header(&args);
    b.kubeadm_set("ecdsa-p256", &args)?;
    b.kubeadm_set("rsa-2048", &args)?;
    b.per_node(&args)?;
    b.scaling(&args)?;
    Ok(())
}

/// The bench's context: this very binary (its `pki` is the tool under test), the repository
/// root (the shipped pki.toml and templates), and a scratch folder.
struct Bench {
    exe: PathBuf,
    root: PathBuf,
    scratch: tempfile::TempDir,
    runs: usize,
}

/// One timed process: wall seconds, and peak resident memory in KiB when `/usr/bin/time` says it.
#[derive(Clone, Copy)]
struct Sample {
    secs: f64,
    peak_kib: Option<u64>,
}

impl Bench {
    fn new(args: &Args) -> Result<Bench, String> {
        let exe = std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?;
        let root = crate::project_root();
        let scratch = tempfile::tempdir().map_err(|e| format!("a scratch folder: {e}"))?;
        Ok(Bench {
            exe,
            root,
            scratch,
            runs: args.runs,
        })
    }

    fn header(&self, args: &Args) {
        let profile = if cfg!(debug_assertions) {
            "DEBUG build (figures not to be quoted)"
        } else {
            "release build"
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let date = time::OffsetDateTime::now_utc().date();
        println!(
            "cargo xtask bench, {date}, {profile}, {cores} cores, {} interleaved runs per side",
            args.runs
        );
        println!(
            "Times are whole processes (start to exit), median [min-max] in seconds; ratios are \
             taken run by run, then their median. kubepki fsyncs every file it writes; the \
             peers' scripts do not fsync (their times are lower bounds)."
        );
    }

    /// A fresh folder in the scratch space.
    fn folder(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.scratch.path().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// A `pki` run of this binary on `spec_dir/pki.toml` into `out` (extra flags after).
    fn pki(&self, spec_dir: &Path, out: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("pki")
            .arg("-f")
            .arg(spec_dir.join("pki.toml"))
            .arg("--out")
            .arg(out)
            .arg("--templates")
            .arg(self.root.join("templates"))
            .args(extra);
        cmd
    }

    /// The kubeadm-sized set (one CA and `leaves` server certificates, the same job for every
    /// side) by this tool, by an openssl script (serial and `xargs -P cores`), by cfssl, and the
    /// openssl script's key generation alone on every core: the limit for RSA.
    fn kubeadm_set(&self, alg: &str, args: &Args) -> Result<(), String> {
        println!(
            "\n## kubeadm-sized set, {alg}: 1 CA + {} server certificates, cold",
            args.leaves
        );
        let spec_dir = self.folder("set")?;
        Spec::ca_and_leaves(alg, args.leaves).write(&spec_dir)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut sides: Vec<(String, Side<'_>)> = vec![(
            "kubepki".into(),
            Box::new(|k| {
                let out = spec_dir.join(format!("out-{k}"));
                timed(&mut self.pki(&spec_dir, &out, &[]))
            }),
        )];
        let peers = [
            ("openssl script", Peer::Openssl { jobs: 1 }),
            (
                "openssl script, xargs -P cores",
                Peer::Openssl { jobs: cores },
            ),
            ("cfssl", Peer::Cfssl),
            (
                "keys only: openssl genpkey, -P cores",
                Peer::KeysOnly { jobs: cores },
            ),
        ];
        for (name, peer) in peers {
            if peer.installed() {
                let dir = spec_dir.clone();
                sides.push((
                    name.into(),
                    Box::new(move |k| {
                        let out = dir.join(format!("{}-{k}", peer.tag()));
                        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
                        timed(&mut peer.command(alg, args.leaves, &out))
                    }),
                ));
            } else {
                println!("({name}: not installed; `apt-get install golang-cfssl` adds cfssl)");
            }
        }
        let samples = self.interleaved(&mut sides)?;
        print_table("generator", "peer / kubepki", &sides, &samples);
        Ok(())
    }

    /// The shipped pki.toml with `--nodes` workers, with and without the two per-worker
    /// kubeconfigs: cold, a no-op rerun, one worker's address changed, and `--check`.
    fn per_node(&self, args: &Args) -> Result<(), String> {
        let n = args.nodes;
        for kubeconfigs in [true, false] {
            let what = if kubeconfigs {
                "with 2 kubeconfigs per worker"
            } else {
                "certificates only"
            };
            println!("\n## shipped pki.toml, {n} workers, ecdsa-p256, {what}");
            let shipped = self.shipped()?;
            let dir = self.folder("nodes")?;
            let spec = Spec::shipped(&shipped, n, kubeconfigs, "ecdsa-p256")?;
            spec.write(&dir)?;
            let changed_dir = self.folder("nodes-changed")?;
            spec.with_worker_address_changed().write(&changed_dir)?;
            let out = |k: usize| dir.join(format!("out-{k}"));
            let mut sides: Vec<(String, Side<'_>)> = vec![
                (
                    "cold".into(),
                    Box::new(|k| timed(&mut self.pki(&dir, &out(k), &[]))),
                ),
                (
                    "no-op rerun".into(),
                    Box::new(|k| timed(&mut self.pki(&dir, &out(k), &[]))),
                ),
                (
                    "--check, up to date".into(),
                    Box::new(|k| timed(&mut self.pki(&dir, &out(k), &["--check"]))),
                ),
                (
                    "one worker's address changed".into(),
                    Box::new(|k| timed(&mut self.pki(&changed_dir, &out(k), &[]))),
                ),
            ];
            // Each run k goes through the rows in order on its own out-k: cold makes it, the
            // no-op and --check find it up to date, the change then re-signs one worker's files.
            let samples = self.interleaved(&mut sides)?;
            print_table("run", "run / cold", &sides, &samples);
        }
        Ok(())
    }

    /// Cold and no-op times over the `--scale` worker counts (interleaved), with the growth
    /// exponent between consecutive counts: 1 is linear, 2 quadratic.
    fn scaling(&self, args: &Args) -> Result<(), String> {
        println!("\n## scaling: shipped pki.toml with N workers and their kubeconfigs, ecdsa-p256");
        let shipped = self.shipped()?;
        let mut dirs = Vec::new();
        for &n in &args.scale {
            let dir = self.folder(&format!("scale-{n}"))?;
            Spec::shipped(&shipped, n, true, "ecdsa-p256")?.write(&dir)?;
            dirs.push((n, dir));
        }
        for (label, noop) in [("cold", false), ("no-op", true)] {
            let mut sides: Vec<(String, Side<'_>)> = Vec::new();
            for (n, dir) in &dirs {
                let (n, dir) = (*n, dir.clone());
                sides.push((
                    format!("N = {n}, {label}"),
                    Box::new(move |k| {
                        let out = dir.join(format!("out-{k}"));
                        if noop && !out.exists() {
                            timed(&mut self.pki(&dir, &out, &[]))?;
                        }
                        if !noop {
                            let _ = std::fs::remove_dir_all(&out);
                        }
                        timed(&mut self.pki(&dir, &out, &[]))
                    }),
                ));
            }
            let samples = self.interleaved(&mut sides)?;
            println!(
                "{:<24} {:>26} {:>10}  growth from the row above",
                "workers", "seconds", "peak MiB"
            );
            for (i, ((name, _), s)) in sides.iter().zip(&samples).enumerate() {
                let growth = match i {
                    0 => String::new(),
                    _ => growth(args.scale[i - 1], args.scale[i], &samples[i - 1], s),
                };
                println!("{name:<24} {:>26} {:>10}  {growth}", spread(s), peak(s));
            }
        }
        Ok(())
    }

    fn shipped(&self) -> Result<String, String> {
        let path = self.root.join("pki.toml");
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Runs every side `runs` times, interleaved: run 0 of each side in order, then run 1 of
    /// each, and so on, so a slow moment of the machine falls on every side alike.
    fn interleaved(&self, sides: &mut [(String, Side<'_>)]) -> Result<Vec<Vec<Sample>>, String> {
        let mut samples = vec![Vec::new(); sides.len()];
        for k in 0..self.runs {
            for (i, (name, side)) in sides.iter_mut().enumerate() {
                let s = side(k).map_err(|e| format!("{name}: {e}"))?;
                samples[i].push(s);
            }
        }
        Ok(samples)
    }
}

/// One side of a comparison: its run `k`, timed.
type Side<'a> = Box<dyn FnMut(usize) -> Result<Sample, String> + 'a>;

/// Runs `cmd` to its end, timed, with its peak memory from `/usr/bin/time` when it is there.
fn timed(cmd: &mut Command) -> Result<Sample, String> {
    let time_bin = Path::new("/usr/bin/time");
    let report = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let mut wrapped = if time_bin.exists() {
        let mut w = Command::new(time_bin);
        w.arg("-f").arg("%M").arg("-o").arg(report.path());
        w.arg(cmd.get_program()).args(cmd.get_args());
        w
    } else {
        std::mem::replace(cmd, Command::new("true"))
    };
    let start = Instant::now();
    let out = wrapped.output().map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    // `--check` exits 1 when something would change; the bench runs it on an up-to-date tree.
    if !out.status.success() {
        return Err(format!(
            "failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let peak_kib = std::fs::read_to_string(report.path())
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()));
    Ok(Sample { secs, peak_kib })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `median [min-max]` of the seconds.
fn spread(s: &[Sample]) -> String {
    let secs: Vec<f64> = s.iter().map(|s| s.secs).collect();
    let (min, max) = secs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    format!("{:.3} [{min:.3}-{max:.3}]", median(secs))
}

/// Run-by-run ratios of `b` to `a`, as `median [min-max]`.
fn ratio(a: &[Sample], b: &[Sample]) -> String {
    let r: Vec<f64> = a.iter().zip(b).map(|(a, b)| b.secs / a.secs).collect();
    let (min, max) = r
        .iter()
        .fold((f64::MAX, f64::MIN), |(x, y), &v| (x.min(v), y.max(v)));
    format!("{:.2}x [{min:.2}-{max:.2}]", median(r))
}

/// The largest peak resident memory of the runs, in MiB.
fn peak(s: &[Sample]) -> String {
    s.iter()
        .filter_map(|s| s.peak_kib)
        .max()
        .map_or("n/a".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

/// How the median time grew from `n1` to `n2` workers: the factor, and the exponent `e` of
/// `t ~ N^e` over that step, from the run-by-run ratios' median.
fn growth(n1: usize, n2: usize, a: &[Sample], b: &[Sample]) -> String {
    let r = median(a.iter().zip(b).map(|(a, b)| b.secs / a.secs).collect());
    let e = r.ln() / (n2 as f64 / n1 as f64).ln();
    format!(
        "x{r:.1} for x{:.0} workers, exponent {e:.2}",
        n2 as f64 / n1 as f64
    )
}

fn print_table(first: &str, vs: &str, sides: &[(String, Side<'_>)], samples: &[Vec<Sample>]) {
    println!("{first:<40} {:>26} {:>10}  {vs}", "seconds", "peak MiB");
    for ((name, _), s) in sides.iter().zip(samples) {
        println!(
            "{name:<40} {:>26} {:>10}  {}",
            spread(s),
            peak(s),
            ratio(&samples[0], s)
        );
    }
}
