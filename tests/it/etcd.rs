//! A real three-member etcd cluster judges the etcd PKI: members authenticate each other with
//! the generated peer certificates (mutual TLS both ways), clients with the generated client
//! certificates, and everything not signed by the etcd CA is refused.
//!
//! Every member listens on its own loopback address (127.B.T.n: on Linux all of 127.0.0.0/8 is
//! routed to `lo`) and on ports the kernel picks at run time, so runs and tests never collide and
//! nothing leaves the machine. Every etcd and etcdctl process is owned by a guard that kills it
//! by PID when dropped, also when a test panics; every wait polls against a deadline; etcd's logs
//! go to files in the test's temporary folder and are printed, summarized, when a test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use time::OffsetDateTime;

use crate::support::*;

/// How long a cluster may take to form (it takes a few seconds; CI machines are slow).
const FORM_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a broken cluster is watched for the refusals that keep it from forming.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);
/// The most one etcdctl call may take (its own timeouts are shorter).
const ETCDCTL_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(200);
/// Written into a member's log before each start.
const START_MARK: &str = "===== kubepki test: starting";

struct Tools {
    etcd: PathBuf,
    etcdctl: PathBuf,
}

fn tools() -> Option<Tools> {
    let etcd = tool("etcd", "etcd-server");
    let etcdctl = tool("etcdctl", "etcd-client");
    Some(Tools {
        etcd: etcd?,
        etcdctl: etcdctl?,
    })
}

/// Runs a command to its end, at most `timeout` (then it is killed and reported as code -1).
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Run {
    run_with_timeout(cmd, timeout).unwrap_or_else(|mut r| {
        r.stderr
            .push_str(&format!("\n(killed after {timeout:?})\n"));
        r
    })
}

// ---------------------------------------------------------------------------------------------
// Addresses.

/// A loopback address for test `test`, host `host`: 127.B.test.host, where B depends on the
/// process id, so that two test runs on one machine use different addresses.
fn loopback(test: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 100 + (std::process::id() % 100) as u8, test, host)
}

/// Free ports on the given addresses, picked by the kernel. All listeners are held until every
/// port is chosen, so no two are the same.
fn free_ports(addrs: &[Ipv4Addr]) -> Vec<u16> {
    let listeners: Vec<TcpListener> = addrs
        .iter()
        .map(|ip| {
            TcpListener::bind((*ip, 0)).unwrap_or_else(|e| {
                panic!("cannot bind {ip}:0 ({e}); is 127.0.0.0/8 routed to lo?")
            })
        })
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    ip: Ipv4Addr,
    client_port: u16,
    peer_port: u16,
    /// A second address the member also serves clients on (once its certificate names it).
    extra_client: Option<(Ipv4Addr, u16)>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("https://{}:{}", self.ip, self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("https://{}:{}", self.ip, self.peer_port)
    }
}

/// Three members on loopback addresses of block `test`.
fn members(test: u8) -> Vec<Member> {
    let ips: Vec<Ipv4Addr> = (1..=3).map(|h| loopback(test, h)).collect();
    let both: Vec<Ipv4Addr> = ips.iter().flat_map(|ip| [*ip, *ip]).collect();
    let ports = free_ports(&both);
    ips.iter()
        .enumerate()
        .map(|(i, ip)| Member {
            name: format!("etcd-{}", i + 1),
            ip: *ip,
            client_port: ports[2 * i],
            peer_port: ports[2 * i + 1],
            extra_client: None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The fixture's pki.toml.

/// How a test's pki.toml differs from kubeadm's shape.
#[derive(Default)]
struct Variant {
    /// Extra addresses of a node (index into the members).
    extra_ip: Option<(usize, Ipv4Addr)>,
    /// The peer certificates' usages; kubeadm's are server and client.
    peer_server_only: bool,
    /// A member whose server and peer certificates the Kubernetes CA signs instead of etcd's.
    rogue: Option<usize>,
}

/// etcd's per-node certificates as kubeadm makes them: CN and DNS the node name, localhost, the
/// node's addresses and 127.0.0.1, serverAuth and clientAuth. The peer certificates are short
/// lived so that a test can move the clock into their renewal window without signing
/// certificates that the real clock sees as not yet valid (they are backdated five minutes).
fn etcd_certs(name: &str, issuer: &str, nodes: &str, peer_usage: &str) -> String {
    format!(
        r#"
[[cert]]
name = "{name}-server"
issuer = "{issuer}"
{nodes}
cn = "{{node}}"
dns = ["{{node}}", "localhost"]
ips = ["{{node.ips}}", "127.0.0.1"]
usage = ["server", "client"]
cert = "nodes/{{node}}/etcd/server.crt"
key = "nodes/{{node}}/etcd/server.key"

[[cert]]
name = "{name}-peer"
issuer = "{issuer}"
{nodes}
cn = "{{node}}"
dns = ["{{node}}", "localhost"]
ips = ["{{node.ips}}", "127.0.0.1"]
usage = {peer_usage}
validity = "1h"
renew-before = "58m"
cert = "nodes/{{node}}/etcd/peer.crt"
key = "nodes/{{node}}/etcd/peer.key"
"#
    )
}

fn spec(members: &[Member], v: &Variant) -> String {
    let mut s = format!(
        r#"{KUBEADM_ROOTS}
[[cert]]
name = "etcd-healthcheck-client"
issuer = "etcd-ca"
cn = "kube-etcd-healthcheck-client"
usage = ["client"]
cert = "pki/etcd/healthcheck-client.crt"
key = "pki/etcd/healthcheck-client.key"

[[cert]]
name = "apiserver-etcd-client"
issuer = "etcd-ca"
cn = "kube-apiserver-etcd-client"
usage = ["client"]
cert = "pki/apiserver-etcd-client.crt"
key = "pki/apiserver-etcd-client.key"

# The API server's etcd client identity, but signed by the Kubernetes CA: etcd must refuse it.
[[cert]]
name = "impostor-etcd-client"
issuer = "kubernetes-ca"
cn = "kube-apiserver-etcd-client"
usage = ["client"]
cert = "pki/impostor-etcd-client.crt"
key = "pki/impostor-etcd-client.key"

[[cert]]
name = "front-proxy-client"
issuer = "front-proxy-ca"
cn = "front-proxy-client"
usage = ["client"]
cert = "pki/front-proxy-client.crt"
key = "pki/front-proxy-client.key"
"#,
    );
    for (i, m) in members.iter().enumerate() {
        let mut ips = vec![m.ip.to_string()];
        if let Some((j, ip)) = v.extra_ip
            && j == i
        {
            ips.push(ip.to_string());
        }
        let ips: Vec<String> = ips.iter().map(|ip| format!("\"{ip}\"")).collect();
        s.push_str(&format!(
            "\n[[node]]\nname = \"{}\"\nips = [{}]\nrole = \"control-plane\"\n",
            m.name,
            ips.join(", ")
        ));
    }
    let peer_usage = if v.peer_server_only {
        r#"["server"]"#
    } else {
        r#"["server", "client"]"#
    };
    match v.rogue {
        None => s.push_str(&etcd_certs(
            "etcd",
            "etcd-ca",
            r#"for-each-node = "control-plane""#,
            peer_usage,
        )),
        Some(r) => {
            let list = |ms: Vec<&Member>| {
                let names: Vec<String> = ms.iter().map(|m| format!("\"{}\"", m.name)).collect();
                format!("nodes = [{}]", names.join(", "))
            };
            let good = list(
                members
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != r)
                    .map(|(_, m)| m)
                    .collect(),
            );
            s.push_str(&etcd_certs("etcd", "etcd-ca", &good, peer_usage));
            let bad = list(vec![&members[r]]);
            s.push_str(&etcd_certs("rogue", "kubernetes-ca", &bad, peer_usage));
        }
    }
    s
}

/// The non-keep lines of a plan report: item -> (action, reasons).
fn planned(report: &str) -> BTreeMap<String, (String, String)> {
    plan_lines(report)
        .into_iter()
        .map(|(action, item, reasons)| (item, (action, reasons)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The cluster.

/// Client credentials, relative to out/.
#[derive(Clone, Copy)]
struct Creds {
    ca: &'static str,
    cert: &'static str,
    key: &'static str,
}

const HEALTHCHECK: Creds = Creds {
    ca: "pki/etcd/ca.crt",
    cert: "pki/etcd/healthcheck-client.crt",
    key: "pki/etcd/healthcheck-client.key",
};
const APISERVER: Creds = Creds {
    ca: "pki/etcd/ca.crt",
    cert: "pki/apiserver-etcd-client.crt",
    key: "pki/apiserver-etcd-client.key",
};
const IMPOSTOR: Creds = Creds {
    ca: "pki/etcd/ca.crt",
    cert: "pki/impostor-etcd-client.crt",
    key: "pki/impostor-etcd-client.key",
};
const FRONT_PROXY: Creds = Creds {
    ca: "pki/etcd/ca.crt",
    cert: "pki/front-proxy-client.crt",
    key: "pki/front-proxy-client.key",
};

struct Cluster<'t> {
    tools: &'t Tools,
    /// The fixture's root: data dirs, logs and scratch files live beside out/.
    root: PathBuf,
    out: PathBuf,
    members: Vec<Member>,
    procs: Vec<Option<Proc>>,
}

impl<'t> Cluster<'t> {
    fn new(tools: &'t Tools, f: &Fixture, members: Vec<Member>) -> Cluster<'t> {
        let n = members.len();
        Cluster {
            tools,
            root: f.root().to_path_buf(),
            out: f.out(),
            members,
            procs: (0..n).map(|_| None).collect(),
        }
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.root.join(format!("{}.log", self.members[i].name))
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    fn node_file(&self, i: usize, file: &str) -> PathBuf {
        self.out
            .join(format!("nodes/{}/etcd/{file}", self.members[i].name))
    }

    fn start(&mut self, i: usize) {
        assert!(self.procs[i].is_none(), "member {i} is running");
        let m = &self.members[i];
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        let mut client_urls = vec![m.client_url()];
        if let Some((ip, port)) = m.extra_client {
            client_urls.push(format!("https://{ip}:{port}"));
        }
        let ca = self.out.join("pki/etcd/ca.crt");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        writeln!(log, "{START_MARK} {}", m.name).unwrap();
        let mut cmd = Command::new(&self.tools.etcd);
        cmd.env_clear()
            .current_dir(&self.root)
            .arg(format!("--name={}", m.name))
            .arg(format!(
                "--data-dir={}",
                self.root.join(format!("data/{}", m.name)).display()
            ))
            .arg(format!("--listen-client-urls={}", client_urls.join(",")))
            .arg(format!("--advertise-client-urls={}", m.client_url()))
            .arg(format!("--listen-peer-urls={}", m.peer_url()))
            .arg(format!("--initial-advertise-peer-urls={}", m.peer_url()))
            .arg(format!("--initial-cluster={}", initial.join(",")))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=kubepki-it")
            .arg("--client-cert-auth")
            .arg(format!("--trusted-ca-file={}", ca.display()))
            .arg(format!(
                "--cert-file={}",
                self.node_file(i, "server.crt").display()
            ))
            .arg(format!(
                "--key-file={}",
                self.node_file(i, "server.key").display()
            ))
            .arg("--peer-client-cert-auth")
            .arg(format!("--peer-trusted-ca-file={}", ca.display()))
            .arg(format!(
                "--peer-cert-file={}",
                self.node_file(i, "peer.crt").display()
            ))
            .arg(format!(
                "--peer-key-file={}",
                self.node_file(i, "peer.key").display()
            ))
            .arg("--heartbeat-interval=100")
            .arg("--election-timeout=1000")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.procs[i] = Some(Proc::spawn(&mut cmd));
    }

    fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.start(i);
        }
    }

    fn stop_all(&mut self) {
        for p in self.procs.iter_mut() {
            if let Some(mut p) = p.take() {
                p.kill();
            }
        }
    }

    /// Fails the test if a started member has exited: every member is meant to keep running,
    /// refused or not, so that what a test sees is TLS at work and not a crash.
    fn assert_running(&mut self) {
        for i in 0..self.procs.len() {
            if let Some(status) = self.procs[i].as_mut().and_then(Proc::exited) {
                panic!("{} exited early: {status}", self.members[i].name);
            }
        }
    }

    /// `etcdctl --endpoints=URLS ARGS` with the given client credentials.
    fn etcdctl(&self, endpoints: &[String], creds: Creds, args: &[&str]) -> Run {
        let mut cmd = Command::new(&self.tools.etcdctl);
        cmd.env_clear()
            .env("ETCDCTL_API", "3")
            .current_dir(&self.root)
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg(format!("--cacert={}", self.out.join(creds.ca).display()))
            .arg(format!("--cert={}", self.out.join(creds.cert).display()))
            .arg(format!("--key={}", self.out.join(creds.key).display()))
            .arg("--dial-timeout=2s")
            .arg("--command-timeout=3s")
            .args(args);
        run_bounded(&mut cmd, ETCDCTL_TIMEOUT)
    }

    fn urls(&self, which: &[usize]) -> Vec<String> {
        which
            .iter()
            .map(|&i| self.members[i].client_url())
            .collect()
    }

    /// Polls `check` until it returns true; fails after `timeout`, or as soon as a member exits.
    fn wait_for(&mut self, what: &str, timeout: Duration, mut check: impl FnMut(&Self) -> bool) {
        poll(timeout, POLL, || {
            self.assert_running();
            check(self).then_some(())
        })
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"));
    }

    /// Waits until the members `which` all report healthy to the healthcheck client (a
    /// linearizable read through the raft leader: it needs a formed cluster).
    fn wait_healthy(&mut self, which: &[usize]) {
        let urls = self.urls(which);
        self.wait_for("the cluster to become healthy", FORM_TIMEOUT, |c| {
            c.etcdctl(&urls, HEALTHCHECK, &["endpoint", "health"]).code == 0
        });
    }

    /// `member list` as (name, status, peer URL, client URL) rows.
    /// `member list` as rows of (ID, status, name, peer URL, client URL).
    fn member_list(&self, via: usize) -> Vec<[String; 5]> {
        let r = self.etcdctl(&self.urls(&[via]), HEALTHCHECK, &["member", "list"]);
        assert_eq!(r.code, 0, "member list: {}", r.all());
        r.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                // ID, status, name, peer URLs, client URLs, is learner
                let f: Vec<&str> = l.split(", ").collect();
                assert_eq!(f.len(), 6, "unexpected member list line: {l}");
                [f[0], f[1], f[2], f[3], f[4]].map(str::to_string)
            })
            .collect()
    }

    /// Asserts that the three members form one cluster: all started under their names and URLs,
    /// all healthy, one leader that every member agrees on, and between every two members
    /// streams dialled from each side (each side's peer certificate accepted by the other both
    /// as a server and as a client certificate).
    fn assert_formed(&mut self) {
        self.wait_healthy(&[0, 1, 2]);
        let mut ids = Vec::new();
        for via in 0..3 {
            let list = self.member_list(via);
            let got: BTreeSet<[String; 4]> = list
                .iter()
                .map(|[_, status, name, peer, client]| {
                    [name, status, peer, client].map(String::clone)
                })
                .collect();
            let want: BTreeSet<[String; 4]> = self
                .members
                .iter()
                .map(|m| {
                    [
                        m.name.clone(),
                        "started".to_string(),
                        m.peer_url(),
                        m.client_url(),
                    ]
                })
                .collect();
            assert_eq!(got, want, "member list via {}", self.members[via].name);
            ids = self
                .members
                .iter()
                .map(|m| {
                    let row = list.iter().find(|r| r[2] == m.name).unwrap();
                    row[0].clone()
                })
                .collect();
        }
        let r = self.etcdctl(
            &self.urls(&[0, 1, 2]),
            HEALTHCHECK,
            &["endpoint", "status", "-w", "fields"],
        );
        assert_eq!(r.code, 0, "endpoint status: {}", r.all());
        let leaders: Vec<&str> = r
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("\"Leader\" : "))
            .collect();
        assert_eq!(leaders.len(), 3, "{}", r.stdout);
        let agreed: BTreeSet<&str> = leaders.iter().copied().collect();
        assert_eq!(
            agreed.len(),
            1,
            "the members disagree on the leader: {}",
            r.stdout
        );
        assert!(!agreed.contains("0"), "no leader: {}", r.stdout);
        // etcd logs member IDs in hexadecimal, as member list prints them.
        self.wait_for(
            "every member to stream to and from every other",
            FORM_TIMEOUT,
            |c| {
                (0..3).all(|i| {
                    let log = c.current_log(i);
                    (0..3).filter(|j| *j != i).all(|j| {
                        let peer = format!("\"remote-peer-id\":\"{}\"", ids[j]);
                        ["stream-reader-type", "stream-writer-type"]
                            .iter()
                            .all(|dir| {
                                log.lines().any(|l| {
                                    l.contains("established TCP streaming connection")
                                        && l.contains(dir)
                                        && l.contains(&peer)
                                })
                            })
                    })
                })
            },
        );
    }

    /// Member `i`'s log since it was last started.
    fn current_log(&self, i: usize) -> String {
        let log = self.log(i);
        match log.rfind(START_MARK) {
            Some(at) => log[at..].to_string(),
            None => log,
        }
    }

    /// Counts the lines of member `i`'s current log that contain every one of `needles`.
    fn log_count(&self, i: usize, needles: &[&str]) -> usize {
        self.current_log(i)
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }
}

/// An etcd log with each distinct message once (time stamps and client ports stripped), with
/// how often it occurred: refused handshakes repeat hundreds of times.
fn summarize(log: &str) -> String {
    let strip = |l: &str| -> String {
        let mut s = l.to_string();
        for key in ["\"ts\":\"", "\"remote-addr\":\""] {
            if let Some(at) = s.find(key)
                && let Some(end) = s[at + key.len()..].find('"')
            {
                let mut to = at + key.len() + end + 1;
                if s[to..].starts_with(',') {
                    to += 1;
                }
                s.replace_range(at..to, "");
            }
        }
        s
    };
    let mut order: Vec<String> = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in log.lines() {
        let k = strip(l);
        let n = counts.entry(k.clone()).or_insert(0);
        if *n == 0 {
            order.push(k);
        }
        *n += 1;
    }
    let lines: Vec<String> = order
        .into_iter()
        .map(|k| match counts[&k] {
            1 => k,
            n => format!("[{n}x] {k}"),
        })
        .collect();
    let skip = lines.len().saturating_sub(300);
    lines[skip..].join("\n")
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        self.stop_all();
        if std::thread::panicking() {
            for i in 0..self.members.len() {
                eprintln!(
                    "----- {} ({}) -----\n{}",
                    self.members[i].name,
                    self.log_path(i).display(),
                    summarize(&self.log(i))
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn etcd_cluster_forms_over_generated_certificates_and_survives_resigning() {
    let Some(tools) = tools() else { return };
    let mut ms = members(1);
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let f = Fixture::new(&spec(&ms, &Variant::default()));
    let r = f.apply(&["--now", &rfc3339(t0)]);
    // 3 CAs, 4 clients, 3 server and 3 peer certificates.
    assert!(r.stdout.contains("plan: 13 create"), "{}", r.stdout);

    let mut c = Cluster::new(&tools, &f, ms.clone());
    c.start_all();
    c.assert_formed();

    // The API server's client certificate writes through one member and reads through the others.
    let key = "/registry/kubepki/probe";
    let value = "written-with-apiserver-etcd-client";
    let r = c.etcdctl(&c.urls(&[0]), APISERVER, &["put", key, value]);
    assert_eq!(r.code, 0, "put: {}", r.all());
    assert_eq!(r.stdout.trim(), "OK");
    for i in [1, 2] {
        let r = c.etcdctl(
            &c.urls(&[i]),
            APISERVER,
            &["get", key, "--print-value-only"],
        );
        assert_eq!(r.code, 0, "get via {}: {}", ms[i].name, r.all());
        assert_eq!(r.stdout.trim(), value);
    }
    // The healthcheck client checks every member, one by one.
    for (i, m) in ms.iter().enumerate() {
        let r = c.etcdctl(&c.urls(&[i]), HEALTHCHECK, &["endpoint", "health"]);
        assert_eq!(r.code, 0, "health of {}: {}", m.name, r.all());
        assert!(r.all().contains("is healthy"), "{}", r.all());
    }
    // Clients of the other two CAs are refused at the TLS handshake, even one that carries the
    // API server's very name: etcd-1 logs each refusal as an unknown authority.
    let refused = ["rejected connection", "unknown authority"];
    assert_eq!(c.log_count(0, &refused), 0, "a refusal before any was due");
    for (who, creds) in [
        ("a Kubernetes-CA client", IMPOSTOR),
        ("the front-proxy client", FRONT_PROXY),
    ] {
        let before = c.log_count(0, &refused);
        let r = c.etcdctl(&c.urls(&[0]), creds, &["get", key, "--print-value-only"]);
        assert_ne!(r.code, 0, "{who} was let in: {}", r.all());
        assert!(!r.stdout.contains(value), "{who} read the key: {}", r.all());
        c.wait_for(
            &format!("etcd-1 to log the refusal of {who}"),
            REFUSAL_TIMEOUT,
            |c| c.log_count(0, &refused) > before,
        );
    }

    // Re-sign, keeping every key: etcd-2 gets a second address (its SANs change) ...
    let before = f.hashes();
    let extra = loopback(1, 12);
    f.set_spec(&spec(
        &ms,
        &Variant {
            extra_ip: Some((1, extra)),
            ..Variant::default()
        },
    ));
    let r = f.apply(&["--now", &rfc3339(t0)]);
    let sans = format!("SANs changed: +IP:{extra}");
    let want: BTreeMap<String, (String, String)> = ["etcd-server@etcd-2", "etcd-peer@etcd-2"]
        .into_iter()
        .map(|i| (i.to_string(), ("re-sign".to_string(), sans.clone())))
        .collect();
    assert_eq!(planned(&r.stdout), want, "{}", r.stdout);
    assert!(
        r.stdout.contains("plan: 2 re-sign, 11 keep"),
        "{}",
        r.stdout
    );
    // ... then the clock moves into the peer certificates' renewal window (the last 58 minutes
    // of their hour): all three are re-signed, and nothing else.
    let later = t0 + time::Duration::minutes(3);
    let r = f.apply(&["--now", &rfc3339(later)]);
    let want: BTreeMap<String, (String, String)> = ms
        .iter()
        .map(|m| {
            let why = "expires in 57m (renew-before 58m)".to_string();
            (
                format!("etcd-peer@{}", m.name),
                ("re-sign".to_string(), why),
            )
        })
        .collect();
    assert_eq!(planned(&r.stdout), want, "{}", r.stdout);
    assert!(
        r.stdout.contains("plan: 3 re-sign, 10 keep"),
        "{}",
        r.stdout
    );
    let r = f.pki(&["--check", "--now", &rfc3339(later)]);
    assert_eq!(r.code, 0, "not up to date after re-signing: {}", r.all());

    let after = f.hashes();
    let mut differ = changed_files(&before, &after);
    differ.remove("inventory.txt");
    assert_eq!(
        differ,
        [
            "nodes/etcd-1/etcd/peer.crt",
            "nodes/etcd-2/etcd/peer.crt",
            "nodes/etcd-2/etcd/server.crt",
            "nodes/etcd-3/etcd/peer.crt",
        ]
        .map(String::from)
        .into(),
        "only these certificates change; every key stays"
    );
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for m in &ms {
        let peer = cert_facts(&f.path(&format!("nodes/{}/etcd/peer.crt", m.name)));
        assert_eq!(peer.not_before, t0 - time::Duration::minutes(2));
    }

    // Restart every member on the new files; etcd-2 now also serves clients on its new
    // address, which only its re-signed certificate names.
    c.stop_all();
    let extra_port = free_ports(&[extra])[0];
    ms[1].extra_client = Some((extra, extra_port));
    c.members = ms.clone();
    c.start_all();
    c.assert_formed();
    for i in 0..3 {
        let r = c.etcdctl(
            &c.urls(&[i]),
            APISERVER,
            &["get", key, "--print-value-only"],
        );
        assert_eq!(r.code, 0, "get after restart: {}", r.all());
        assert_eq!(r.stdout.trim(), value, "the key written before is gone");
    }
    let r = c.etcdctl(
        &[format!("https://{extra}:{extra_port}")],
        HEALTHCHECK,
        &["endpoint", "health"],
    );
    assert_eq!(r.code, 0, "etcd-2 on its new address {extra}: {}", r.all());
}

/// Polls until every member of `c` has logged `evidence` and etcd's own verdict that it found
/// no cluster (it gives up publishing itself after seven seconds); fails at once if any member
/// ever elects a leader.
fn wait_refused(c: &mut Cluster<'_>, which: &[usize], what: &str, evidence: &[&str]) {
    c.wait_for(what, REFUSAL_TIMEOUT, |c| {
        for i in which {
            assert_eq!(
                c.log_count(*i, &["elected leader"]),
                0,
                "{} elected a leader",
                c.members[*i].name
            );
        }
        which.iter().all(|&i| {
            c.log_count(i, evidence) > 0
                && c.log_count(i, &["failed to publish local member to cluster"]) > 0
        })
    });
}

#[test]
fn etcd_cluster_does_not_form_with_peer_certificates_lacking_client_auth() {
    let Some(tools) = tools() else { return };
    let ms = members(2);
    let f = Fixture::new(&spec(
        &ms,
        &Variant {
            peer_server_only: true,
            ..Variant::default()
        },
    ));
    f.apply(&[]);
    for m in &ms {
        let peer = cert_facts(&f.path(&format!("nodes/{}/etcd/peer.crt", m.name)));
        assert_eq!(peer.usages, [kubepki::spec::Usage::Server]);
    }

    let mut c = Cluster::new(&tools, &f, ms);
    c.start_all();
    // Every member refuses the others' peer certificates as client certificates (Go's TLS
    // server wants clientAuth in a client certificate; etcd-io/etcd#9785), so none finds a
    // quorum ...
    wait_refused(
        &mut c,
        &[0, 1, 2],
        "every member to refuse its peers and give up",
        &["rejected connection", "incompatible key usage"],
    );
    // ... and none serves: the cluster is not there for its clients.
    let r = c.etcdctl(&c.urls(&[0, 1, 2]), HEALTHCHECK, &["endpoint", "health"]);
    assert_ne!(r.code, 0, "the cluster is healthy: {}", r.all());
    assert_eq!(r.all().matches("is unhealthy").count(), 3, "{}", r.all());
    c.assert_running();
}

#[test]
fn etcd_refuses_a_member_signed_by_the_kubernetes_ca() {
    let Some(tools) = tools() else { return };
    let ms = members(3);
    let f = Fixture::new(&spec(
        &ms,
        &Variant {
            rogue: Some(2),
            ..Variant::default()
        },
    ));
    f.apply(&[]);
    let k8s = cert_facts(&f.path("pki/ca.crt"));
    for file in ["server.crt", "peer.crt"] {
        let rogue = cert_facts(&f.path(&format!("nodes/etcd-3/etcd/{file}")));
        assert_eq!(rogue.aki, k8s.ski, "etcd-3's {file} is not the rogue one");
        assert_eq!(rogue.subject.cn.as_deref(), Some("etcd-3"));
    }

    let mut c = Cluster::new(&tools, &f, ms);
    c.start_all();
    // etcd-1 and etcd-2 are a quorum of three: they form the cluster without etcd-3.
    c.wait_healthy(&[0, 1]);
    // Both refuse etcd-3's peer certificate when it dials them (issuer unknown to them) ...
    c.wait_for(
        "etcd-1 and etcd-2 to refuse etcd-3's client certificate",
        REFUSAL_TIMEOUT,
        |c| (0..2).all(|i| c.log_count(i, &["rejected connection", "unknown authority"]) > 0),
    );
    // ... and abort their handshakes when they dial it (etcd-3 sees its serving certificate
    // refused), so it never joins and gives up.
    wait_refused(
        &mut c,
        &[2],
        "etcd-3 to be refused by its peers and give up",
        &["rejected connection", "remote error: tls:"],
    );
    // The cluster goes on without it: the others list it (from --initial-cluster) without the
    // client URLs that a member publishes through raft once it has joined.
    let list = c.member_list(0);
    let published: BTreeMap<String, String> =
        list.iter().map(|m| (m[2].clone(), m[4].clone())).collect();
    let want = BTreeMap::from([
        ("etcd-1".to_string(), c.members[0].client_url()),
        ("etcd-2".to_string(), c.members[1].client_url()),
        ("etcd-3".to_string(), String::new()),
    ]);
    assert_eq!(published, want, "{list:?}");
    let r = c.etcdctl(&c.urls(&[0, 1]), HEALTHCHECK, &["endpoint", "health"]);
    assert_eq!(r.code, 0, "{}", r.all());
    c.assert_running();
}
