//! Issue 19: `signalling` as a cluster. Real `redis-server` processes on free
//! loopback ports, real `signalling` processes (the binary) as nodes, real
//! WebSocket peers. Under `CI=true` a missing redis-server fails the tests.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use testkit::redis::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_signalling");
const ADMIN: &str = "cluster-test-admin";
/// The issue's bound for noticing a dead node, and for re-registering after Redis returns.
const FIVE_S: Duration = Duration::from_secs(5);

/// One `signalling` process of the cluster, killed on drop.
struct Node {
    name: String,
    child: Child,
    player: SocketAddr,
    streamer: SocketAddr,
    sfu: SocketAddr,
    log: PathBuf,
}

impl Node {
    async fn start(redis: &RedisServer, name: &str, extra: &[&str]) -> Node {
        let [p, s, f] = testkit::ports::free_ports::<3>().expect("ports");
        let log = std::env::temp_dir().join(format!("cluster-test-{}-{name}-{p}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .args(["--bind", "127.0.0.1", "--rest_api", "--admin_token", ADMIN, "--log_level_console", "debug"])
            .args(["--player_port", &p.to_string(), "--streamer_port", &s.to_string(), "--sfu_port", &f.to_string()])
            .args(["--redis_url", &redis.url(), "--node_id", name])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("signalling starts");
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let node = Node { name: name.into(), child, player: at(p), streamer: at(s), sfu: at(f), log };
        let deadline = Instant::now() + WAIT;
        while node.get("/healthz").await != (200, "ok".to_string()) {
            assert!(Instant::now() < deadline, "node {name} healthy within {WAIT:?}; log: {}", node.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// `kill -9`.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn http(&self, method: &str, path: &str, accept: &str) -> (u16, String, String) {
        let Ok(mut s) = tokio::net::TcpStream::connect(self.player).await else {
            return (0, String::new(), String::new());
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN}\r\nAccept: {accept}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).await.is_err() {
            return (0, String::new(), String::new());
        }
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (status, head.to_string(), body.to_string())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.http("GET", path, "*/*").await;
        (status, body)
    }

    async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path} on {}: {body}", self.name);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    async fn streamer(&self, id: &str) -> (Client, String) {
        let mut c = Client::connect(self.streamer, id).await;
        c.expect_type("config").await;
        c.expect_type("identify").await;
        c.send(json!({"type": "endpointId", "id": id})).await;
        let confirm = c.expect_type("endpointIdConfirm").await;
        (c, confirm["committedId"].as_str().expect("committedId").to_string())
    }

    async fn player(&self) -> Client {
        let mut c = Client::connect(self.player, &format!("player@{}", self.name)).await;
        c.expect_type("config").await;
        c.expect_type("playerCount").await;
        c
    }

    /// Ask `listStreamers` (through `p`, a player on this node) until `ok` holds.
    async fn wait_listing(&self, p: &mut Client, what: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            p.send(json!({"type": "listStreamers"})).await;
            let list = p.expect_type("streamerList").await;
            let ids: Vec<String> =
                list["ids"].as_array().expect("ids").iter().filter_map(|v| v.as_str().map(String::from)).collect();
            if ok(&ids) {
                return ids;
            }
            assert!(Instant::now() < deadline, "node {}: {what}; listing is {ids:?}", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("--- node {} log ({}):\n{}", self.name, self.log.display(), self.log_tail());
        }
    }
}

async fn subscribe(p: &mut Client, streamer: &mut Client, id: &str) -> String {
    p.send(json!({"type": "subscribe", "streamerId": id})).await;
    let connected = streamer.expect_type("playerConnected").await;
    connected["playerId"].as_str().expect("playerId").to_string()
}

fn contains(ids: &[String], id: &str) -> bool {
    ids.iter().any(|i| i == id)
}

#[tokio::test]
async fn any_node_any_streamer_with_cluster_wide_ids_and_limits() {
    let Some(redis) = RedisServer::start().await else { return };
    let max = ["--max_players", "4"];
    let (a, b, c) =
        tokio::join!(Node::start(&redis, "a", &max), Node::start(&redis, "b", &max), Node::start(&redis, "c", &max));

    // 1. A streamer on a is listed on b and c.
    let (mut sa, id) = a.streamer("A").await;
    assert_eq!(id, "A");
    let mut pb = b.player().await;
    let mut pc = c.player().await;
    b.wait_listing(&mut pb, "lists A", |ids| contains(ids, "A")).await;
    c.wait_listing(&mut pc, "lists A", |ids| contains(ids, "A")).await;

    // 2. A second streamer claiming A on b gets A1.
    let (mut sb, id) = b.streamer("A").await;
    assert_eq!(id, "A1");
    let ids = c.wait_listing(&mut pc, "lists A then A1", |ids| contains(ids, "A1")).await;
    assert_eq!(ids, ["A", "A1"], "registration order");

    // A player on b subscribes to A on a: every message flows both ways, fields kept.
    let xb = subscribe(&mut pb, &mut sa, "A").await;
    let offer = json!({"type": "offer", "playerId": xb, "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", "extra": {"n": [1, 2.5, null]}});
    sa.send(offer.clone()).await;
    assert_eq!(pb.recv().await, offer);
    pb.send(json!({"type": "answer", "sdp": "v=0 answer", "minBitrate": 100})).await;
    assert_eq!(sa.recv().await, json!({"type": "answer", "sdp": "v=0 answer", "minBitrate": 100, "playerId": xb}));
    let cand = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    sa.send(json!({"type": "iceCandidate", "playerId": xb, "candidate": cand})).await;
    assert_eq!(pb.recv().await, json!({"type": "iceCandidate", "playerId": xb, "candidate": cand}));
    for (i, m) in [
        json!({"type": "iceCandidate", "candidate": cand}),
        json!({"type": "layerPreference", "spatialLayer": 2, "temporalLayer": 1}),
        json!({"type": "dataChannelRequest"}),
    ]
    .into_iter()
    .enumerate()
    {
        pb.send(m.clone()).await;
        let mut want = m;
        want["playerId"] = json!(xb);
        assert_eq!(sa.recv().await, want, "message {i} from the remote player");
    }

    // Player ids are unique over the nodes and keep Wilbur's shape.
    let mut pa = a.player().await;
    let xa = subscribe(&mut pa, &mut sa, "A").await;
    let xc = subscribe(&mut pc, &mut sa, "A").await;
    let ids = [&xa, &xb, &xc];
    for x in ids {
        assert!(x.strip_prefix("Player").is_some_and(|n| n.parse::<u64>().is_ok()), "{x}");
    }
    assert!(xa != xb && xb != xc && xa != xc, "{ids:?}");

    // An SFU on c subscribes to A on a and serves a player of b.
    let mut sfu = Client::connect(c.sfu, "sfu").await;
    sfu.expect_type("config").await;
    sfu.expect_type("identify").await;
    sfu.send(json!({"type": "endpointId", "id": "SFU"})).await;
    sfu.expect_type("endpointIdConfirm").await;
    sfu.send(json!({"type": "subscribe", "streamerId": "A"})).await;
    let connected = sa.expect_type("playerConnected").await;
    assert_eq!(connected["sfu"], true);
    let sfu_pid = connected["playerId"].as_str().expect("playerId").to_string();
    sfu.send(json!({"type": "startStreaming"})).await;
    let mut pd = b.player().await;
    b.wait_listing(&mut pd, "lists the SFU", |ids| contains(ids, "SFU")).await;
    pd.send(json!({"type": "subscribe", "streamerId": "SFU"})).await;
    let pd_id = sfu.expect_type("playerConnected").await["playerId"].as_str().expect("id").to_string();
    sfu.send(json!({"type": "offer", "playerId": pd_id, "sdp": "v=0 sfu"})).await;
    assert_eq!(pd.recv().await, json!({"type": "offer", "sdp": "v=0 sfu"}));
    sa.send(json!({"type": "layerPreference", "playerId": sfu_pid, "spatialLayer": 0, "temporalLayer": 0})).await;
    assert_eq!(sfu.expect_type("layerPreference").await["spatialLayer"], 0);

    // --max_players 4 counts A's subscribers on every node (a, b, c and the SFU).
    let mut full = b.player().await;
    full.send(json!({"type": "subscribe", "streamerId": "A"})).await;
    assert_eq!(
        full.recv().await,
        json!({"type": "subscribeFailed", "message": "Streamer A is full. Max players = 4."})
    );

    // disconnectPlayer from a closes the player on c.
    sa.send(json!({"type": "disconnectPlayer", "playerId": xc, "reason": "enough"})).await;
    assert_eq!(pc.expect_close(1011).await, "enough");
    assert_eq!(sa.expect_type("playerDisconnected").await["playerId"], xc.as_str());

    // 3. A player leaving b: the streamer on a hears of it.
    drop(pb);
    assert_eq!(sa.expect_type("playerDisconnected").await["playerId"], xb.as_str());

    // The streamer leaving a: every subscriber on every node is told, players are closed
    // with 1000, the SFU stays and its player on b is ended too.
    drop(sa);
    assert_eq!(pa.expect_type("streamerDisconnected").await, json!({"type": "streamerDisconnected"}));
    pa.expect_close(1000).await;
    assert_eq!(sfu.expect_type("streamerDisconnected").await, json!({"type": "streamerDisconnected"}));
    assert_eq!(pd.expect_type("streamerDisconnected").await, json!({"type": "streamerDisconnected"}));
    pd.expect_close(1000).await;
    let mut pb2 = b.player().await;
    b.wait_listing(&mut pb2, "forgets A", |ids| !contains(ids, "A") && contains(ids, "A1")).await;
    sb.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_node_killed_with_sigkill_is_noticed_within_5_s_and_nothing_else_is_disturbed() {
    let Some(redis) = RedisServer::start().await else { return };
    let (mut a, b) = tokio::join!(Node::start(&redis, "a", &[]), Node::start(&redis, "b", &[]));
    let (mut sa, _) = a.streamer("A").await;
    let (mut sb, _) = b.streamer("B").await;
    let mut pb = b.player().await;
    b.wait_listing(&mut pb, "lists A", |ids| contains(ids, "A")).await;
    subscribe(&mut pb, &mut sa, "A").await;
    let mut pa = a.player().await;
    a.wait_listing(&mut pa, "lists B", |ids| contains(ids, "B")).await;
    let xa = subscribe(&mut pa, &mut sb, "B").await;
    let mut pb_local = b.player().await;
    let xl = subscribe(&mut pb_local, &mut sb, "B").await;

    let killed = Instant::now();
    a.kill9();
    assert_eq!(sb.expect_type("playerDisconnected").await["playerId"], xa.as_str());
    assert_eq!(pb.expect_type("streamerDisconnected").await, json!({"type": "streamerDisconnected"}));
    pb.expect_close(1000).await;
    let noticed = killed.elapsed();
    assert!(noticed <= FIVE_S, "noticed after {noticed:?}");
    let mut probe = b.player().await;
    let ids = b.wait_listing(&mut probe, "forgets A", |ids| !contains(ids, "A")).await;
    assert!(killed.elapsed() <= FIVE_S + Duration::from_secs(1), "A unlisted after {:?}", killed.elapsed());
    assert_eq!(ids, ["B"]);
    // The local session on b never noticed.
    pb_local.send(json!({"type": "answer", "sdp": "v=0"})).await;
    assert_eq!(sb.recv().await, json!({"type": "answer", "sdp": "v=0", "playerId": xl}));
    let nodes = b.get_json("/api/nodes").await;
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes}");
    drop(sa);
}

#[tokio::test]
async fn without_redis_nodes_serve_their_own_sessions_and_converge_when_it_returns_empty() {
    let Some(mut redis) = RedisServer::start().await else { return };
    let (a, b) = tokio::join!(Node::start(&redis, "a", &[]), Node::start(&redis, "b", &[]));
    let (mut sa, _) = a.streamer("A").await;
    let mut pa = a.player().await;
    let xa = subscribe(&mut pa, &mut sa, "A").await;
    let mut pb = b.player().await;
    b.wait_listing(&mut pb, "lists A", |ids| contains(ids, "A")).await;

    redis.stop();
    let deadline = Instant::now() + WAIT;
    while b.get("/healthz").await != (200, "degraded".to_string()) {
        assert!(Instant::now() < deadline, "b says degraded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Same-node sessions carry on, without an error.
    pa.send(json!({"type": "answer", "sdp": "v=0"})).await;
    assert_eq!(sa.recv().await, json!({"type": "answer", "sdp": "v=0", "playerId": xa}));
    // A cross-node subscribe fails cleanly, with the reason.
    pb.send(json!({"type": "subscribe", "streamerId": "A"})).await;
    assert_eq!(
        pb.recv().await,
        json!({"type": "subscribeFailed", "message": "Streamer A is on node a, which cannot be reached now."})
    );
    // Meanwhile b hands out A too (it cannot ask anyone).
    let (mut sb, id) = b.streamer("A").await;
    assert_eq!(id, "A");

    // Redis returns with no data: both nodes re-register within 5 s, and the
    // documented rule leaves exactly one A (first to register) and one A1.
    redis.restart().await;
    let back = Instant::now();
    for node in [&a, &b] {
        let mut p = node.player().await;
        node.wait_listing(&mut p, "lists A and A1", |ids| {
            let mut sorted = ids.to_vec();
            sorted.sort();
            sorted == ["A", "A1"]
        })
        .await;
    }
    assert!(back.elapsed() <= FIVE_S, "converged after {:?}", back.elapsed());
    assert_eq!(a.get("/healthz").await, (200, "ok".to_string()));
    // The renamed one was told its new id.
    let renamed = tokio::select! {
        v = sa.recv() => ("a", v),
        v = sb.recv() => ("b", v),
    };
    assert_eq!(renamed.1, json!({"type": "endpointIdConfirm", "committedId": "A1"}), "{renamed:?}");
    let streamers = a.get_json("/api/streamers").await;
    let listed: Vec<(String, String)> = streamers
        .as_array()
        .expect("array")
        .iter()
        .map(|s| (s["streamerId"].as_str().unwrap_or("").into(), s["node"].as_str().unwrap_or("").into()))
        .collect();
    assert_eq!(listed.len(), 2, "{streamers}");
    assert_ne!(listed[0].0, listed[1].0, "no id listed twice: {listed:?}");
}

#[tokio::test]
async fn operating_a_cluster_apis_drain_matchmaking_and_junk() {
    let Some(redis) = RedisServer::start().await else { return };
    let one = ["--max_players", "1"];
    let (a, b, x) = tokio::join!(
        Node::start(&redis, "a", &one),
        Node::start(&redis, "b", &one),
        // Another cluster on the same Redis.
        Node::start(&redis, "x", &["--cluster_prefix", "other"])
    );
    let (mut sa, _) = a.streamer("A").await;
    let mut pb = b.player().await;
    b.wait_listing(&mut pb, "lists A", |ids| contains(ids, "A")).await;
    // b has it; the cluster under another prefix does not, and knows only itself.
    let mut px = x.player().await;
    assert_eq!(x.wait_listing(&mut px, "answers", |_| true).await, Vec::<String>::new());
    let x_nodes = x.get_json("/api/nodes").await;
    assert_eq!(x_nodes.as_array().map(|l| l.len()), Some(1), "{x_nodes}");
    let xb = subscribe(&mut pb, &mut sa, "A").await;

    // The REST API of any node shows the cluster, each entry with its node.
    let deadline = Instant::now() + WAIT;
    loop {
        let streamers = b.get_json("/api/streamers").await;
        let a_entry = streamers.as_array().and_then(|l| l.iter().find(|s| s["streamerId"] == "A")).cloned();
        if let Some(s) = a_entry {
            if s["subscribers"].as_array().is_some_and(|l| !l.is_empty()) {
                assert_eq!(s["node"], "a");
                assert_eq!(s["subscribers"][0]["playerId"], xb.as_str());
                assert_eq!(s["subscribers"][0]["node"], "b");
                break;
            }
        }
        assert!(Instant::now() < deadline, "b's /api/streamers shows A with its subscriber: {streamers}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let players = a.get_json("/api/players").await;
    assert!(
        players.as_array().is_some_and(|l| l.iter().any(|p| p["playerId"] == xb.as_str() && p["node"] == "b")),
        "{players}"
    );
    let status = b.get_json("/api/status").await;
    assert_eq!((status["node"].as_str(), status["node_count"].as_u64()), (Some("b"), Some(2)), "{status}");
    assert_eq!(status["streamer_count"], 1, "the cluster's streamers: {status}");
    let nodes = a.get_json("/api/nodes").await;
    let names: Vec<&str> = nodes.as_array().expect("nodes").iter().filter_map(|n| n["node"].as_str()).collect();
    assert_eq!(names, ["a", "b"], "{nodes}");
    assert!(nodes[1]["heartbeatAgeMs"].as_u64().is_some_and(|ms| ms < 3000), "{nodes}");
    let (_, metrics) = b.get("/metrics").await;
    for name in [
        "signalling_cluster_messages_total",
        "signalling_cluster_bus_rtt_seconds",
        "signalling_cluster_bus_errors_total",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics");
    }

    // Matchmaking: with --max_players 1, M1 (a) and M2 (b) are free, A is taken.
    let (_m1, _) = a.streamer("M1").await;
    let (_m2, _) = b.streamer("M2").await;
    b.wait_listing(&mut pb, "lists M1 and M2", |ids| contains(ids, "M1") && contains(ids, "M2")).await;
    // Drain b: it says so, and matchmaking sends nobody to it; its sessions carry on.
    let (status, _, _) = b.http("POST", "/api/admin/drain", "*/*").await;
    assert_eq!(status, 200);
    assert_eq!(b.get("/healthz").await, (503, "draining".to_string()));
    let deadline = Instant::now() + WAIT;
    while !a.get_json("/api/nodes").await[1]["draining"].as_bool().unwrap_or(false) {
        assert!(Instant::now() < deadline, "a sees b draining");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pb.send(json!({"type": "answer", "sdp": "v=0"})).await;
    assert_eq!(sa.recv().await, json!({"type": "answer", "sdp": "v=0", "playerId": xb}));
    assert_eq!(a.get_json("/api/match").await, json!({"streamerId": "M1", "node": "a"}));
    // M1 is now reserved: nobody else gets it, through either URL.
    let (status, head, _) = a.http("GET", "/api/match", "application/json").await;
    assert_eq!(status, 503);
    assert!(head.to_ascii_lowercase().contains("retry-after: 2"), "{head}");
    let (status, _, page) = b.http("GET", "/match", "text/html").await;
    assert_eq!(status, 503);
    assert!(page.contains("http-equiv=\"refresh\""), "a page that retries: {page}");
    let (_m3, _) = a.streamer("M3").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, head, _) = b.http("GET", "/match", "text/html").await;
        if status == 302 {
            assert!(head.contains("location: /?StreamerId=M3") || head.contains("Location: /?StreamerId=M3"), "{head}");
            break;
        }
        assert!(Instant::now() < deadline, "/match on b redirects to M3 once b knows it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Junk on the bus: counted and dropped, the node carries on.
    let inbox = "ps:node:a:inbox";
    for junk in [
        "not json",
        r#"{"v":2,"from":"x","type":"leave","player_id":"Player1"}"#,
        r#"{"v":1,"from":"x","type":"to_player","player_id":"Nobody","frame":"{"}"#,
    ] {
        assert!(redis.command(&["PUBLISH", inbox, junk]).await.is_some_and(|r| r.starts_with(':')));
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, metrics) = a.get("/metrics").await;
        let junk = metrics
            .lines()
            .find_map(|l| l.strip_prefix("signalling_cluster_junk_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if junk >= 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "junk counted: {junk}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sa.expect_nothing_pending().await;
    let mut pa = a.player().await;
    a.wait_listing(&mut pa, "still serves", |ids| contains(ids, "A")).await;
}

#[tokio::test]
async fn a_redis_that_answers_slowly_never_holds_up_routing_between_local_peers() {
    let Some(redis) = RedisServer::start().await else { return };
    let a = Node::start(&redis, "a", &[]).await;
    let (mut s, _) = a.streamer("A").await;
    let mut p = a.player().await;
    let x = subscribe(&mut p, &mut s, "A").await;
    // Redis stops answering every client for 3 s (it queues their commands).
    let pause = redis.command(&["CLIENT", "PAUSE", "3000", "ALL"]).await;
    assert_eq!(pause.as_deref(), Some("+OK\r\n"));
    let paused = Instant::now();
    let mut slowest = Duration::ZERO;
    while paused.elapsed() < Duration::from_millis(2500) {
        let sent = Instant::now();
        p.send(json!({"type": "iceCandidate", "candidate": {"candidate": "x"}})).await;
        assert_eq!(s.expect_type("iceCandidate").await["playerId"], x.as_str());
        slowest = slowest.max(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(slowest < Duration::from_millis(250), "a local message took {slowest:?} while Redis was paused");
    // A streamer identifying meanwhile waits at most the bus timeout, then gets its id.
    let started = Instant::now();
    let (_s2, id) = a.streamer("B").await;
    assert_eq!(id, "B");
    assert!(started.elapsed() < Duration::from_secs(3), "identified after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_second_process_with_a_running_node_s_id_refuses_to_start() {
    let Some(redis) = RedisServer::start().await else { return };
    let a = Node::start(&redis, "a", &[]).await;
    let [p, s, f] = testkit::ports::free_ports::<3>().expect("ports");
    let started = Instant::now();
    let out = tokio::process::Command::new(BIN)
        .args(["--bind", "127.0.0.1", "--redis_url", &redis.url(), "--node_id", "a"])
        .args(["--player_port", &p.to_string(), "--streamer_port", &s.to_string(), "--sfu_port", &f.to_string()])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out).await.expect("exits in time").expect("runs");
    assert!(!out.status.success(), "a second node a must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node id a is in use by another running node"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(8));
    // The first node a is undisturbed.
    assert_eq!(a.get("/healthz").await, (200, "ok".to_string()));
}
