//! The server under test: our `signalling` started as a child process on
//! free loopback ports (so its `/proc` can be read), or any server given by
//! URL (with `--server-pid` for memory and CPU).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bench::util::{free_ports, loopback_addr, wait_listening};

/// Which server the benches talk to.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetOpts {
    /// Player WebSocket URL of a server that is already running (ours, the reference server, any
    /// other). Without it, our `signalling` is started as a child process on free ports.
    #[arg(long, value_name = "URL", global = true)]
    pub server_url: Option<String>,
    /// Streamer WebSocket URL of that server (default: the player URL's host with port 8888).
    #[arg(long, value_name = "URL", global = true)]
    pub streamer_url: Option<String>,
    /// SFU WebSocket URL of that server (media bench through the SFU; default: port 8889).
    #[arg(long, value_name = "URL", global = true)]
    pub sfu_url: Option<String>,
    /// Process id of that server, to read its memory and CPU from /proc (without it those
    /// figures are not reported for an external server).
    #[arg(long, value_name = "PID", global = true)]
    pub server_pid: Option<u32>,
    /// Start our server as a child process (the default when --server-url is not given).
    #[arg(long, global = true, conflicts_with = "server_url")]
    pub spawn_ours: bool,
    /// Our `signalling` binary. Default: `signalling` next to this executable, else this
    /// executable runs the signalling library itself in a child process (also what
    /// `--server-bin builtin` asks for).
    #[arg(long, value_name = "PATH", global = true)]
    pub server_bin: Option<PathBuf>,
    /// Extra flag for our server (repeatable), e.g. `--server-arg=--send_queue_len=1024`. The
    /// bench starts it with `--send_queue_len 65536` (a streamer of 1,000 joining players gets
    /// bursts of thousands of messages; the default 1,024 closes it) and no rate limit.
    #[arg(long, value_name = "FLAG", global = true, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// Run our server as a cluster of N nodes on a `redis-server` the bench starts (needs
    /// redis-server): streamers join the first node, players the last, so every message
    /// between them crosses Redis. CPU figures are of every node plus Redis; the Redis
    /// operations and bytes per join or message are reported from its INFO.
    #[arg(long, value_name = "N", default_value_t = 1, global = true, conflicts_with = "server_url")]
    pub nodes: usize,
}

/// What a cluster's Redis has done so far.
#[derive(Debug, Clone, Default)]
pub struct RedisCounters {
    pub commands: f64,
    /// Network bytes in + out.
    pub bytes: f64,
    /// Calls per command (`INFO commandstats`).
    pub calls: std::collections::BTreeMap<String, f64>,
}

impl RedisCounters {
    /// Per-`n` differences from `before` to `self`: (commands, bytes, calls per command).
    pub fn per(&self, before: &RedisCounters, n: f64) -> (f64, f64, serde_json::Value) {
        let n = n.max(1.0);
        let calls: serde_json::Map<String, serde_json::Value> = self
            .calls
            .iter()
            .map(|(k, v)| (k.clone(), v - before.calls.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d > 0.0)
            .map(|(k, d)| (k, serde_json::json!((d / n * 1000.0).round() / 1000.0)))
            .collect();
        ((self.commands - before.commands) / n, (self.bytes - before.bytes) / n, serde_json::Value::Object(calls))
    }
}

/// A running (or attached) server.
pub struct Target {
    pub label: String,
    pub player_url: String,
    pub streamer_url: String,
    pub sfu_url: String,
    pub pid: Option<u32>,
    child: Option<Child>,
    /// A cluster's other nodes (`--nodes`), and its Redis.
    others: Vec<Child>,
    redis: Option<testkit::redis::RedisServer>,
}

/// The server of each run: ours is started fresh per run (so runs do not see
/// each other's heap); a server given by URL is attached to once and shared.
pub struct RunTargets<'a> {
    opts: &'a TargetOpts,
    shared: Option<Target>,
    fresh: Option<Target>,
}

impl<'a> RunTargets<'a> {
    pub fn new(opts: &'a TargetOpts) -> Self {
        RunTargets { opts, shared: None, fresh: None }
    }

    /// The server for the next run (the previous run's own server is stopped).
    pub async fn next(&mut self) -> anyhow::Result<&Target> {
        self.fresh = None;
        if self.opts.server_url.is_some() {
            if self.shared.is_none() {
                self.shared = Some(Target::start(self.opts).await?);
            }
            return self.shared.as_ref().ok_or_else(|| anyhow::anyhow!("no target"));
        }
        self.fresh = Some(Target::start(self.opts).await?);
        self.fresh.as_ref().ok_or_else(|| anyhow::anyhow!("no target"))
    }

    /// Stop this run's own server now (before its figures are used).
    pub fn end_run(&mut self) {
        self.fresh = None;
    }
}

impl Target {
    pub async fn start(opts: &TargetOpts) -> anyhow::Result<Target> {
        if let Some(url) = &opts.server_url {
            let addr = loopback_addr(url)?;
            let with_port = |p: u16| format!("ws://{}:{p}", addr.ip());
            let streamer_url = opts.streamer_url.clone().unwrap_or_else(|| with_port(8888));
            let sfu_url = opts.sfu_url.clone().unwrap_or_else(|| with_port(8889));
            loopback_addr(&streamer_url)?;
            loopback_addr(&sfu_url)?;
            wait_listening(addr, Duration::from_secs(5)).await?;
            return Ok(Target {
                label: format!("external {url}{}", opts.server_pid.map(|p| format!(" (pid {p})")).unwrap_or_default()),
                player_url: url.clone(),
                streamer_url,
                sfu_url,
                pid: opts.server_pid,
                child: None,
                others: Vec::new(),
                redis: None,
            });
        }
        let nodes = opts.nodes.clamp(1, 16);
        let redis = if nodes > 1 {
            let redis = testkit::redis::RedisServer::start()
                .await
                .ok_or_else(|| anyhow::anyhow!("--nodes {nodes} needs redis-server (apt-get install redis-server)"))?;
            Some(redis)
        } else {
            None
        };
        let mut first: Option<Target> = None;
        for i in 0..nodes {
            let cluster: Vec<String> = match &redis {
                Some(r) => vec!["--redis_url".into(), r.url(), "--node_id".into(), crate::topology::node_name(i)],
                None => Vec::new(),
            };
            let node = Target::spawn_node(opts, &cluster).await?;
            match first.as_mut() {
                None => first = Some(node),
                Some(t) => {
                    // Players (and SFUs) use the last node; streamers stay on the first.
                    t.player_url = node.player_url.clone();
                    t.sfu_url = node.sfu_url.clone();
                    let mut node = node;
                    if let Some(c) = node.child.take() {
                        t.others.push(c);
                    }
                }
            }
        }
        let mut t = first.ok_or_else(|| anyhow::anyhow!("no node started"))?;
        if let Some(r) = redis {
            t.label = format!("ours, {nodes} nodes on redis-server :{} ({})", r.port, t.label);
            t.redis = Some(r);
        }
        Ok(t)
    }

    /// One `signalling` child on free ports, with `extra` flags.
    async fn spawn_node(opts: &TargetOpts, extra: &[String]) -> anyhow::Result<Target> {
        let [sp, pp, fp] = free_ports::<3>()?.map(|port| port.to_string());
        let defaults: [(&str, &str); 9] = [
            ("--streamer_port", &sp),
            ("--player_port", &pp),
            ("--sfu_port", &fp),
            ("--ping_interval", "0"),
            // No rate limit in effect (the benches send far more than a browser does).
            ("--rate_limit", "100000000"),
            ("--rate_limit_burst", "100000000"),
            // A streamer serving 1,000 joining players gets bursts of thousands of messages.
            ("--send_queue_len", "65536"),
            ("--log_level_console", "warn"),
            ("--no_config", ""),
        ];
        // A flag given with --server-arg replaces the default one.
        let overridden = |flag: &str| opts.server_arg.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
        let mut args: Vec<String> = Vec::new();
        for (flag, value) in defaults {
            if overridden(flag) {
                continue;
            }
            args.push(flag.to_string());
            if !value.is_empty() {
                args.push(value.to_string());
            }
        }
        args.extend(opts.server_arg.iter().cloned());
        args.extend(extra.iter().cloned());
        let (mut cmd, how) = match server_binary(opts) {
            Some(bin) => (Command::new(&bin), bin.display().to_string()),
            None => {
                let me = std::env::current_exe().context("locating the bench executable")?;
                let mut c = Command::new(me);
                c.arg("child-signalling");
                (c, "bench child-signalling (the signalling library)".to_string())
            }
        };
        cmd.args(&args).env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        let child = cmd.spawn().with_context(|| format!("starting {how}"))?;
        let pid = child.id();
        let mut t = Target {
            label: format!("ours ({how}, pid {pid})"),
            player_url: format!("ws://127.0.0.1:{pp}"),
            streamer_url: format!("ws://127.0.0.1:{sp}"),
            sfu_url: format!("ws://127.0.0.1:{fp}"),
            pid: Some(pid),
            child: Some(child),
            others: Vec::new(),
            redis: None,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        for port in [&sp, &pp, &fp] {
            let port: u16 = port.parse().context("port")?;
            for _ in 0..1000 {
                if let Some(Ok(Some(st))) = t.child.as_mut().map(Child::try_wait) {
                    t.child = None;
                    bail!("our server exited at start-up ({st}); its error is above");
                }
                if wait_listening(([127, 0, 0, 1], port).into(), Duration::from_millis(100)).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    t.stop();
                    bail!("our server is not listening on port {port} after 15 s");
                }
            }
        }
        Ok(t)
    }

    /// Whether this target is a cluster of our nodes on Redis.
    pub fn is_cluster(&self) -> bool {
        self.redis.is_some()
    }

    /// Whether this target is a child we started (so a fresh one per run is possible).
    pub fn is_ours(&self) -> bool {
        self.child.is_some()
    }

    pub fn stop(&mut self) {
        for mut c in self.others.drain(..) {
            stop_child(&mut c, Duration::from_secs(3));
        }
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(3));
        }
        self.redis = None;
    }

    /// CPU seconds (user + system) of the server so far: every node and Redis
    /// for a cluster; `None` without a pid to read.
    pub fn cpu_secs(&self) -> Option<f64> {
        let first = crate::bench::util::cpu_secs(self.pid?)?;
        let others: f64 = self.others.iter().filter_map(|c| crate::bench::util::cpu_secs(c.id())).sum();
        let redis = self.redis.as_ref().and_then(|r| r.pid()).and_then(crate::bench::util::cpu_secs).unwrap_or(0.0);
        Some(first + others + redis)
    }

    /// A cluster's Redis counters now (`INFO stats` and `INFO commandstats`).
    pub async fn redis_counters(&self) -> Option<RedisCounters> {
        let r = self.redis.as_ref()?;
        let stats = r.command(&["INFO", "stats"]).await?;
        let field = |name: &str| {
            stats.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
        };
        let commandstats = r.command(&["INFO", "commandstats"]).await?;
        // cmdstat_publish:calls=123,usec=…
        let calls = commandstats
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse::<f64>().ok()?;
                Some((name.to_string(), calls))
            })
            .collect();
        Some(RedisCounters {
            commands: field("total_commands_processed:"),
            bytes: field("total_net_input_bytes:") + field("total_net_output_bytes:"),
            calls,
        })
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

fn server_binary(opts: &TargetOpts) -> Option<PathBuf> {
    if let Some(p) = &opts.server_bin {
        return (p.as_os_str() != "builtin").then(|| p.clone());
    }
    let me = std::env::current_exe().ok()?;
    let sibling = me.parent()?.join("signalling");
    sibling.is_file().then_some(sibling)
}

/// SIGINT, wait up to `grace`, then SIGKILL; always reaps.
pub fn stop_child(c: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = c.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(c.id()) {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}
