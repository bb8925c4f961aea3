//! Issue 19, end to end: the mock streamer on signalling node `a`, the SFU
//! and every mock player on node `b` (a real `redis-server` between them,
//! started by the topology), real WebRTC on loopback. All signalling between
//! the streamer and its viewers crosses Redis; the media goes peer to peer.
//! The built-in page in Chromium on node `b` is in `browser.rs`.

use std::time::Duration;

use e2e::topology::Topology;
use signalling::snapshot::SubscriberKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_on_one_node_watch_a_streamer_on_another_directly_and_through_the_sfu() {
    if !redis_or_skip() {
        return;
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/two-nodes.toml");
    let running = Topology::load(&path).expect("topology").start().await.expect("stack starts");
    testkit::wait_until(Duration::from_secs(60), "5 players streaming", || running.players_streaming() == 5).await;

    // The streamer's node holds the session: three players and the SFU, all of node b.
    let on_a = running.server.snapshot();
    let streamer = on_a.streamers.iter().find(|s| s.streamer_id == "DefaultStreamer").expect("streamer on a");
    assert_eq!(streamer.node.as_deref(), Some("a"));
    let nodes: Vec<(&str, SubscriberKind)> =
        streamer.subscribers.iter().map(|p| (p.node.as_deref().unwrap_or(""), p.kind)).collect();
    assert_eq!(nodes.iter().filter(|(n, k)| *n == "b" && *k == SubscriberKind::Player).count(), 3, "{nodes:?}");
    assert_eq!(nodes.iter().filter(|(n, k)| *n == "b" && *k == SubscriberKind::Sfu).count(), 1, "{nodes:?}");
    assert!(on_a.players.is_empty(), "no player is connected to node a");
    // Node b has the SFU (listed) and its two players, local.
    let on_b = running.player_server().snapshot();
    let sfu = on_b.streamers.iter().find(|s| s.streamer_id == "SFU").expect("SFU on b");
    assert!(sfu.streaming);
    assert_eq!(sfu.subscribers.len(), 2);

    // Frames keep arriving at every player.
    let frames = |r: &e2e::Running| -> Vec<u64> {
        r.players.iter().map(|p| p.live.frames.load(std::sync::atomic::Ordering::Relaxed)).collect()
    };
    let before = frames(&running);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = frames(&running);
    assert!(before.iter().zip(&after).all(|(b, a)| a > b), "frames {before:?} -> {after:?}");
    let stats = running.stop().await;
    assert_eq!(stats.len(), 5);
    for s in &stats {
        assert!(s.video_frames > 10 && s.keyframes > 0, "{:?}: {} frames", s.player_id, s.video_frames);
    }
}

fn redis_or_skip() -> bool {
    let installed = std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but redis-server is not installed (apt-get install redis-server; see .ci/run)");
    }
    if !installed {
        eprintln!("SKIPPED: redis-server not installed (apt-get install redis-server)");
    }
    installed
}
