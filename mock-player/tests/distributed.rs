//! Distributed runs for real: a `redis-server` on a free loopback port
//! (persistence off), three `mock-player agent` processes and a coordinator
//! process (the real binary), against our signalling server and a streamer
//! in this process. Under `CI=true` a missing `redis-server` fails the tests;
//! elsewhere they are skipped with a note.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use mock_player::report::Percentiles;
use serde_json::Value;
use testkit::fake_streamer::FakeStreamer;
use testkit::redis::RedisServer as Redis;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_mock-player");

/// A child process whose stdout lines are kept and can be waited for.
struct Proc {
    child: Child,
    lines: watch::Receiver<Vec<String>>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mock-player starts");
        // stdout and stderr (errors, logs) in one list of lines.
        let out = child.stdout.take().expect("stdout piped");
        let err = child.stderr.take().expect("stderr piped");
        let (tx, lines) = watch::channel(Vec::new());
        let tx_err = tx.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(out).lines();
            while let Ok(Some(l)) = r.next_line().await {
                tx.send_modify(|v| v.push(l));
            }
        });
        tokio::spawn(async move {
            let mut r = BufReader::new(err).lines();
            while let Ok(Some(l)) = r.next_line().await {
                tx_err.send_modify(|v| v.push(l));
            }
        });
        Proc { child, lines }
    }

    async fn wait_line(&mut self, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let got = tokio::time::timeout(within, self.lines.wait_for(|v| v.iter().any(|l| pred(l))))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|v| v.iter().find(|l| pred(l)).cloned()));
        match got {
            Some(line) => line,
            None => panic!("{what} within {within:?}; output:\n{}", self.output()),
        }
    }

    fn output(&self) -> String {
        self.lines.borrow().join("\n")
    }

    async fn exit_code(&mut self, within: Duration) -> i32 {
        let st = tokio::time::timeout(within, self.child.wait()).await;
        match st {
            Ok(Ok(s)) => s.code().unwrap_or(-1),
            _ => panic!("exits within {within:?}; output:\n{}", self.output()),
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill").args([sig, &pid]).status().is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    }
}

struct Cluster {
    redis: Redis,
    prefix: String,
    dir: PathBuf,
    agents: Vec<Proc>,
}

impl Cluster {
    /// Redis and agents `a1`, `a2`, … of the given capacities, all waiting for runs.
    async fn start(test: &str, capacities: &[usize]) -> Option<Cluster> {
        let redis = Redis::start().await?;
        let url = redis.url();
        Cluster::start_on(redis, test, capacities, |_| url.clone()).await
    }

    /// The same, each agent reaching Redis at `url_of(agent index)` (a proxy, for some).
    async fn start_on(
        redis: Redis,
        test: &str,
        capacities: &[usize],
        url_of: impl Fn(usize) -> String,
    ) -> Option<Cluster> {
        let prefix = format!("t-{test}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut agents = Vec::new();
        for (i, cap) in capacities.iter().enumerate() {
            let name = format!("a{}", i + 1);
            let mut p = Proc::spawn(&[
                "agent",
                "--redis-url",
                &url_of(i),
                "--redis-prefix",
                &prefix,
                "--name",
                &name,
                "--capacity",
                &cap.to_string(),
                "--keep-results",
                dir.to_str().expect("utf-8 temp dir"),
            ]);
            p.wait_line("agent ready", Duration::from_secs(20), |l| l.contains("waiting for runs")).await;
            agents.push(p);
        }
        Some(Cluster { redis, prefix, dir, agents })
    }

    fn coordinator(&self, extra: &[&str]) -> Proc {
        let url = self.redis.url();
        let mut args = vec![
            "--redis-url",
            &url,
            "--redis-prefix",
            &self.prefix,
            "--agents",
            "3",
            "--agents-timeout",
            "20",
            "--progress",
            "plain",
        ];
        args.extend_from_slice(extra);
        Proc::spawn(&args)
    }
}

/// A loopback TCP proxy in front of Redis that a test can cut (every connection closed, new
/// ones closed at once, as when a network path dies) and restore.
struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("redis://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("addr").port();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut = cut_rx.clone();
                if *cut.borrow() {
                    continue; // dropped: closed at once
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn media_streamer(srv: &signalling::ServerHandle, id: &str) -> mock_streamer::StreamerHandle {
    let cfg = mock_streamer::StreamerConfig {
        url: format!("ws://{}", srv.streamer_addr()),
        streamer_ids: vec![id.to_string()],
        video: mock_streamer::video::VideoSettings { width: 160, height: 120, fps: 15, bitrate_bps: 150_000 },
        ..Default::default()
    };
    let handle = mock_streamer::spawn(cfg).expect("mock-streamer starts");
    let mut events = handle.events();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(mock_streamer::StreamerEvent::Registered { .. }) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("streamer events ended: {e}"),
            }
        }
    })
    .await
    .expect("streamer registers in time");
    handle
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).expect("valid JSON")
}

/// Every agent's raw results of the run (`--keep-results`), by agent name.
fn raw_results(dir: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("results dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else { continue };
        let Some((_, agent)) = stem.rsplit_once('-') else { continue };
        let Value::Array(players) = read_json(&e.path()) else { panic!("{name}: an array") };
        out.insert(agent.to_string(), players);
    }
    out
}

/// The merged report's figures recomputed from the agents' raw per-player data.
fn check_against_raw(report: &Value, raw: &BTreeMap<String, Vec<Value>>) {
    let all: Vec<&Value> = raw.values().flatten().collect();
    assert_eq!(report["players"].as_u64(), Some(all.len() as u64), "players = sum of the agents' results");
    let passed = all.iter().filter(|p| p["passed"] == Value::Bool(true)).count();
    assert_eq!(report["passed"].as_u64(), Some(passed as u64));
    let joined_ms: Vec<f64> = all.iter().filter_map(|p| p["join"]["joined_ms"].as_f64()).collect();
    let p = Percentiles::of(joined_ms);
    let j = &report["phases"]["6 joined"];
    assert_eq!(j["n"].as_u64(), Some(p.n as u64));
    for (k, v) in [("p50", p.p50), ("p90", p.p90), ("p99", p.p99), ("max", p.max)] {
        let got = j[k].as_f64().expect("a number");
        assert!((got - v).abs() < 1e-9, "joined {k}: report {got}, recomputed {v}");
    }
    let mut indices: Vec<u64> = all.iter().filter_map(|p| p["index"].as_u64()).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), all.len(), "every player index once across agents");
    for a in report["agents"].as_array().expect("agents table") {
        let name = a["name"].as_str().expect("name");
        let mine = raw.get(name).map_or(0, Vec::len) as u64;
        assert_eq!(a["players"].as_u64(), Some(mine), "agent {name}'s players");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_signalling_players_over_three_agents() {
    let Some(cluster) = Cluster::start("sig", &[1000, 1000, 2000]).await else { return };
    let srv = signalling::run(signalling::ServerConfig::ephemeral()).await.expect("server starts");
    let _streamer = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    let url = format!("ws://{}", srv.player_addr());
    let report = cluster.dir.join("run.json");
    let html = cluster.dir.join("run.html");
    let mut c = cluster.coordinator(&[
        "--url",
        &url,
        "--signalling-only",
        "--players",
        "3000",
        "--ramp",
        "1500",
        "--max-joining",
        "300",
        "--duration",
        "2",
        "--join-timeout",
        "20",
        "--report",
        report.to_str().expect("utf-8"),
        "--html",
        html.to_str().expect("utf-8"),
    ]);
    let code = c.exit_code(Duration::from_secs(60)).await;
    let out = c.output();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PASS"), "{out}");
    assert!(out.contains("started 3000/3000"), "live progress in total: {out}");
    assert!(out.contains("a3             started"), "live progress per agent: {out}");
    let r = read_json(&report);
    assert_eq!((r["players"].as_u64(), r["passed"].as_u64()), (Some(3000), Some(3000)));
    let shares: Vec<u64> =
        r["agents"].as_array().expect("agents").iter().filter_map(|a| a["players"].as_u64()).collect();
    assert_eq!(shares, vec![750, 750, 1500], "split by capacity");
    assert!(r["agents"][0]["cpu_secs"].as_f64().is_some_and(|c| c > 0.0), "agent CPU measured");
    // The merged report against the raw per-player data the agents kept.
    let raw = raw_results(&cluster.dir);
    assert_eq!(raw.len(), 3, "{:?}", raw.keys());
    check_against_raw(&r, &raw);
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("<h2>Agents</h2>") && page.contains("a2"));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_webrtc_players_one_agent_killed_mid_run() {
    let Some(mut cluster) = Cluster::start("rtc", &[10, 10, 10]).await else { return };
    let srv = signalling::run(signalling::ServerConfig::ephemeral()).await.expect("server starts");
    let st = media_streamer(&srv, "S1").await;
    let url = format!("ws://{}", srv.player_addr());
    let report = cluster.dir.join("run.json");
    let mut c = cluster.coordinator(&[
        "--url",
        &url,
        "--players",
        "30",
        "--ramp",
        "30",
        "--max-joining",
        "15",
        "--duration",
        "8",
        "--join-timeout",
        "20",
        "--report",
        report.to_str().expect("utf-8"),
    ]);
    // Every player of every agent streaming (per-agent progress lines), then kill agent a2.
    c.wait_line("all 30 players streaming", Duration::from_secs(40), |l| l.contains("streaming 30 ")).await;
    let mut killed = cluster.agents.remove(1);
    killed.signal("-KILL");
    let _ = killed.exit_code(Duration::from_secs(5)).await;
    let lost = c.wait_line("a2 reported lost", Duration::from_secs(15), |l| l.contains("agent a2 lost at")).await;
    println!("{lost}");
    let code = c.exit_code(Duration::from_secs(40)).await;
    let out = c.output();
    assert_eq!(code, 1, "a run with lost players fails: {out}");
    assert!(out.contains("FAIL: 10 player(s): agent lost: a2"), "{out}");
    let r = read_json(&report);
    assert_eq!(
        (r["players"].as_u64(), r["passed"].as_u64(), r["failed"].as_u64()),
        (Some(30), Some(20), Some(10)),
        "{out}"
    );
    let agents = r["agents"].as_array().expect("agents");
    let lost: Vec<&str> = agents.iter().filter(|a| !a["lost"].is_null()).filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(lost, vec!["a2"]);
    assert!(agents[1]["lost"]["at_secs"].as_f64().is_some_and(|t| t > 0.0));
    assert_eq!(r["failures"][0]["kind"], "agent_lost");
    // The survivors' players really streamed.
    assert!(r["fps"]["n"].as_u64() == Some(20) && r["fps"]["p50"].as_f64().is_some_and(|f| f > 5.0), "{}", r["fps"]);
    let raw = raw_results(&cluster.dir);
    assert_eq!(raw.keys().collect::<Vec<_>>(), vec!["a1", "a3"]);
    let survivors: Vec<&Value> = raw.values().flatten().collect();
    assert_eq!(survivors.iter().filter(|p| p["passed"] == Value::Bool(true)).count(), 20);
    st.stop().await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_every_agent_and_agents_take_the_next_run() {
    let Some(mut cluster) = Cluster::start("int", &[100, 100, 100]).await else { return };
    let srv = signalling::run(signalling::ServerConfig::ephemeral()).await.expect("server starts");
    let _streamer = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    let url = format!("ws://{}", srv.player_addr());
    let report = cluster.dir.join("run.json");
    let mut c = cluster.coordinator(&[
        "--url",
        &url,
        "--signalling-only",
        "--players",
        "300",
        "--ramp",
        "300",
        "--duration",
        "120",
        "--report",
        report.to_str().expect("utf-8"),
    ]);
    c.wait_line("all players streaming", Duration::from_secs(30), |l| {
        l.starts_with('[') && l.contains("streaming 300 ")
    })
    .await;
    let t0 = Instant::now();
    c.signal("-INT");
    // Every agent's players have stopped within 2 s of the Ctrl-C, as each agent reports it
    // (the line is printed when its last player has ended).
    for a in &mut cluster.agents {
        let within = Duration::from_secs(2).saturating_sub(t0.elapsed());
        let line = a.wait_line("players stopped within 2 s of Ctrl-C", within, |l| l.contains("players stopped")).await;
        println!("{line}");
    }
    let code = c.exit_code(Duration::from_secs(15)).await;
    let took = t0.elapsed();
    let out = c.output();
    // Their results came back (nobody lost) well before the 120 s.
    assert!(took < Duration::from_secs(3), "Ctrl-C to the merged report took {took:?}: {out}");
    let r = read_json(&report);
    assert_eq!(r["players"].as_u64(), Some(300), "{out}");
    assert!(r["agents"].as_array().expect("agents").iter().all(|a| a["lost"].is_null()), "{out}");
    assert!(r["elapsed_secs"].as_f64().is_some_and(|e| e < 20.0), "{out}");
    assert!(code == 0 || code == 1, "{code}: {out}");
    for a in &mut cluster.agents {
        a.wait_line("agent back to waiting", Duration::from_secs(5), |l| l.contains("waiting for the next run")).await;
    }
    // The same agents serve the next run.
    let mut c2 = cluster.coordinator(&[
        "--url",
        &url,
        "--signalling-only",
        "--players",
        "30",
        "--ramp",
        "100",
        "--duration",
        "1",
    ]);
    let code = c2.exit_code(Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{}", c2.output());
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_loses_redis_is_lost_stops_its_players_and_comes_back() {
    let Some(redis) = Redis::start().await else { return };
    let proxy = Proxy::start(&redis.url()).await;
    let (direct, through) = (redis.url(), proxy.url());
    // a2 reaches Redis through the proxy; a1 and a3 directly.
    let url_of = move |i: usize| if i == 1 { through.clone() } else { direct.clone() };
    let Some(mut cluster) = Cluster::start_on(redis, "loss", &[100, 100, 100], url_of).await else { return };
    let srv = signalling::run(signalling::ServerConfig::ephemeral()).await.expect("server starts");
    let _streamer = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    let url = format!("ws://{}", srv.player_addr());
    let report = cluster.dir.join("run.json");
    let mut c = cluster.coordinator(&[
        "--url",
        &url,
        "--signalling-only",
        "--players",
        "300",
        "--ramp",
        "300",
        "--duration",
        "12",
        "--report",
        report.to_str().expect("utf-8"),
    ]);
    c.wait_line("all players streaming", Duration::from_secs(30), |l| {
        l.starts_with('[') && l.contains("streaming 300 ")
    })
    .await;
    proxy.cut();
    let lost = c.wait_line("a2 reported lost", Duration::from_secs(15), |l| l.contains("agent a2 lost at")).await;
    println!("{lost}");
    // a2 noticed by itself and stopped its players: the server sees only a1's and a3's.
    let a2 = &mut cluster.agents[1];
    a2.wait_line("a2 stops its run", Duration::from_secs(15), |l| l.contains("stopping the run")).await;
    a2.wait_line("a2's players ended", Duration::from_secs(5), |l| l.contains("players stopped")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.snapshot().players.len() > 200 {
        assert!(Instant::now() < deadline, "a2's players still connected: {}", srv.snapshot().players.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Redis reachable again: a2 is back to waiting without anyone's help.
    proxy.restore();
    let within = Duration::from_secs(15);
    let back = tokio::time::timeout(
        within,
        a2.lines.wait_for(|v| v.iter().filter(|l| l.contains("waiting for runs")).count() >= 2),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    assert!(back, "a2 waits for runs again within {within:?}: {}", a2.output());

    let code = c.exit_code(Duration::from_secs(40)).await;
    let out = c.output();
    assert_eq!(code, 1, "a run with lost players fails: {out}");
    let r = read_json(&report);
    assert_eq!((r["players"].as_u64(), r["failed"].as_u64()), (Some(300), Some(100)), "{out}");
    let agents = r["agents"].as_array().expect("agents");
    let lost: Vec<&str> = agents.iter().filter(|a| !a["lost"].is_null()).filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(lost, vec!["a2"], "{out}");
    assert!(agents[1]["lost"]["at_secs"].as_f64().is_some_and(|t| t > 0.0), "when a2 was lost");
    assert_eq!(r["failures"][0]["kind"], "agent_lost");

    // All three serve the next run.
    let mut c2 = cluster.coordinator(&[
        "--url",
        &url,
        "--signalling-only",
        "--players",
        "30",
        "--ramp",
        "100",
        "--duration",
        "1",
    ]);
    let code = c2.exit_code(Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{}", c2.output());
    srv.shutdown().await;
}

/// Lines in which an agent reported a finished run.
fn runs_done(p: &Proc) -> usize {
    p.lines.borrow().iter().filter(|l| l.contains(" passed, ") && l.contains(": run ")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_never_share_agents() {
    let Some(cluster) = Cluster::start("two", &[100, 100]).await else { return };
    let srv = signalling::run(signalling::ServerConfig::ephemeral()).await.expect("server starts");
    let _streamer = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    let url = format!("ws://{}", srv.player_addr());
    let run = |agents: &str, duration: &str, timeout: &str| {
        Proc::spawn(&[
            "--redis-url",
            &cluster.redis.url(),
            "--redis-prefix",
            &cluster.prefix,
            "--agents",
            agents,
            "--agents-timeout",
            timeout,
            "--progress",
            "off",
            "--url",
            &url,
            "--signalling-only",
            "--players",
            "20",
            "--ramp",
            "100",
            "--duration",
            duration,
        ])
    };
    // Both want both agents at once: one gets them, the other gives up with a clear reason.
    let (mut x, mut y) = (run("2", "6", "2"), run("2", "6", "2"));
    let (cx, cy) = (x.exit_code(Duration::from_secs(40)).await, y.exit_code(Duration::from_secs(40)).await);
    let (winner, loser) = match (cx, cy) {
        (0, 2) => (&x, &y),
        (2, 0) => (&y, &x),
        _ => panic!("one run and one setup error expected, got {cx} and {cy}:\n{}\n---\n{}", x.output(), y.output()),
    };
    assert!(winner.output().contains("PASS"), "{}", winner.output());
    let why = loser.output();
    assert!(why.contains("only 0 of 2 agents free"), "{why}");
    assert!(why.contains("running another run") || why.contains("claimed by another coordinator"), "{why}");
    assert_eq!(cluster.agents.iter().map(runs_done).collect::<Vec<_>>(), vec![1, 1], "each agent ran one run");

    // Both want one agent: both run, on different agents.
    let (mut x, mut y) = (run("1", "3", "10"), run("1", "3", "10"));
    let (cx, cy) = (x.exit_code(Duration::from_secs(40)).await, y.exit_code(Duration::from_secs(40)).await);
    assert_eq!((cx, cy), (0, 0), "{}\n---\n{}", x.output(), y.output());
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.agents.iter().map(runs_done).collect::<Vec<_>>() != vec![2, 2] {
        let done: Vec<usize> = cluster.agents.iter().map(runs_done).collect();
        assert!(Instant::now() < deadline, "each agent ran exactly one of the two runs: {done:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv.shutdown().await;
}

/// Coordinator-side failures that need no agents: too few agents in time, junk on the bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_agents_is_a_setup_error_and_junk_is_ignored() {
    let Some(redis) = Redis::start().await else { return };
    let prefix = format!("t-few-{}", std::process::id());
    // Junk where agents are advertised and in an agent's inbox: logged, not fatal.
    let client = redis::Client::open(redis.url().as_str()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connects");
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:agent:bogus"))
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .expect("set");
    let _: () = redis::cmd("RPUSH")
        .arg(format!("{prefix}:agent:a1:inbox"))
        .arg("junk")
        .query_async(&mut conn)
        .await
        .expect("push");
    let mut agent = Proc::spawn(&["agent", "--redis-url", &redis.url(), "--redis-prefix", &prefix, "--name", "a1"]);
    agent.wait_line("agent ready", Duration::from_secs(20), |l| l.contains("waiting for runs")).await;
    let mut c = Proc::spawn(&[
        "--redis-url",
        &redis.url(),
        "--redis-prefix",
        &prefix,
        "--agents",
        "2",
        "--agents-timeout",
        "1",
        "--url",
        "ws://127.0.0.1:9",
    ]);
    let code = c.exit_code(Duration::from_secs(20)).await;
    assert_eq!(code, 2, "{}", c.output());
    // The agent is still alive after the junk.
    assert!(agent.child.try_wait().expect("wait").is_none(), "agent survived junk: {}", agent.output());
}
