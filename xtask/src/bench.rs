//! `cargo xtask bench`: generates the same PKI (one CA, N server certificates with SANs) with this
//! tool and with peers, in the same run, on the same machine, and reports ratios. The machines are
//! shared and noisy, so only ratios measured side by side mean anything; no test asserts on time.

use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many leaf certificates.
    #[arg(long, default_value_t = 200)]
    leaves: usize,
    /// Key algorithm for every key: rsa-2048 or ecdsa-p256 (both supported by every peer).
    #[arg(long, default_value = "rsa-2048")]
    algorithm: String,
    /// Repetitions; the best of each is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub fn run(args: Args) -> Result<(), String> {
    if !matches!(args.algorithm.as_str(), "rsa-2048" | "ecdsa-p256") {
        return Err(format!(
            "--algorithm {}: use rsa-2048 or ecdsa-p256",
            args.algorithm
        ));
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "generating 1 CA + {} {} leaves, best of {} runs, {} cores, this tool built in {profile}",
        args.leaves,
        args.algorithm,
        args.runs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut results: Vec<(&str, Duration)> = Vec::new();
    results.push(("cargo xtask pki", best(args.runs, || ours(&args))?));
    results.push(("openssl script", best(args.runs, || openssl(&args, 1))?));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    results.push((
        "openssl script, xargs -P cores",
        best(args.runs, || openssl(&args, cores))?,
    ));
    if which("cfssl") && which("cfssljson") {
        results.push(("cfssl", best(args.runs, || cfssl(&args))?));
    } else {
        println!("(cfssl not installed: `apt-get install golang-cfssl` adds it to the comparison)");
    }
    let base = results[0].1.as_secs_f64();
    println!("{:<34} {:>10} {:>12}", "generator", "seconds", "vs ours");
    for (name, d) in &results {
        println!(
            "{name:<34} {:>10.2} {:>11.2}x",
            d.as_secs_f64(),
            d.as_secs_f64() / base
        );
    }
    Ok(())
}

fn best(runs: usize, mut f: impl FnMut() -> Result<Duration, String>) -> Result<Duration, String> {
    let mut best = Duration::MAX;
    for _ in 0..runs.max(1) {
        best = best.min(f()?);
    }
    Ok(best)
}

fn which(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tempdir() -> Result<tempfile::TempDir, String> {
    tempfile::tempdir().map_err(|e| format!("cannot create a temporary folder: {e}"))
}

fn ours(args: &Args) -> Result<Duration, String> {
    let dir = tempdir()?;
    let mut spec = format!(
        "[defaults]\nalgorithm = \"{}\"\n\n[[ca]]\nname = \"ca\"\ncn = \"bench-ca\"\ncert = \"ca.crt\"\nkey = \"ca.key\"\n",
        args.algorithm
    );
    for i in 0..args.leaves {
        spec.push_str(&format!(
            "\n[[cert]]\nname = \"leaf-{i}\"\nissuer = \"ca\"\ncn = \"leaf-{i}\"\ndns = [\"leaf-{i}.example\"]\nips = [\"10.0.{}.{}\"]\nusage = [\"server\"]\ncert = \"leaf-{i}.crt\"\nkey = \"leaf-{i}.key\"\n",
            i / 250,
            i % 250 + 1
        ));
    }
    std::fs::write(dir.path().join("pki.toml"), spec).map_err(|e| e.to_string())?;
    let now = time::OffsetDateTime::now_utc();
    let opts = kubepki::Options {
        spec_file: dir.path().join("pki.toml"),
        templates_dir: dir.path().join("templates"),
        out_dir: dir.path().join("out"),
        check: false,
        diff: false,
        prune: false,
        rekey: Default::default(),
        now,
        clock: kubepki::Clock::system(now),
        color: false,
        format: kubepki::report::PlanFormat::Text,
        renew: Default::default(),
        identities: Vec::new().into(),
    };
    let start = Instant::now();
    kubepki::run(&opts).map_err(|e| e.to_string())?;
    Ok(start.elapsed())
}

/// The way people do it by hand: genpkey, req, x509 -req per certificate.
fn openssl(args: &Args, jobs: usize) -> Result<Duration, String> {
    let dir = tempdir()?;
    let keyopt = if args.algorithm == "rsa-2048" {
        "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"
    } else {
        "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"
    };
    let script = format!(
        r#"set -e
cd "$1"
openssl genpkey {keyopt} -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 3650 -sha256 -out ca.crt
cat > leaf.sh <<'SH'
set -e
i=$1
openssl genpkey {keyopt} -out leaf-$i.key 2>/dev/null
openssl req -new -key leaf-$i.key -subj /CN=leaf-$i -out leaf-$i.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:leaf-%s.example,IP:10.0.%s.%s\nauthorityKeyIdentifier=keyid\n' $i $((i / 250)) $((i % 250 + 1)) > leaf-$i.ext
openssl x509 -req -in leaf-$i.csr -CA ca.crt -CAkey ca.key -set_serial 0x$(openssl rand -hex 16) -days 365 -sha256 -extfile leaf-$i.ext -out leaf-$i.crt 2>/dev/null
SH
seq 0 $(($2 - 1)) | xargs -P {jobs} -n 1 sh leaf.sh
"#
    );
    timed(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(dir.path())
            .arg(args.leaves.to_string()),
    )
}

/// cfssl: one gencert per certificate, as its documentation shows.
fn cfssl(args: &Args) -> Result<Duration, String> {
    let dir = tempdir()?;
    let (algo, size) = if args.algorithm == "rsa-2048" {
        ("rsa", 2048)
    } else {
        ("ecdsa", 256)
    };
    let script = format!(
        r#"set -e
cd "$1"
echo '{{"CN":"bench-ca","key":{{"algo":"{algo}","size":{size}}}}}' > ca-csr.json
echo '{{"signing":{{"default":{{"expiry":"8760h","usages":["signing","key encipherment","server auth"]}}}}}}' > config.json
cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca
for i in $(seq 0 $(($2 - 1))); do
  echo "{{\"CN\":\"leaf-$i\",\"hosts\":[\"leaf-$i.example\",\"10.0.$((i / 250)).$((i % 250 + 1))\"],\"key\":{{\"algo\":\"{algo}\",\"size\":{size}}}}}" > leaf.json
  cfssl gencert -ca ca.pem -ca-key ca-key.pem -config config.json leaf.json 2>/dev/null | cfssljson -bare leaf-$i
done
"#
    );
    timed(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(dir.path())
            .arg(args.leaves.to_string()),
    )
}

fn timed(cmd: &mut Command) -> Result<Duration, String> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "peer failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(elapsed)
}
