//! Player signalling against the real server and a fake streamer
//! (`--signalling-only`: no WebRTC).

mod common;

use std::time::Duration;

use common::{player_url, server};
use mock_player::{run_load, run_player, LoadConfig, PlayerConfig};
use testkit::fake_streamer::FakeStreamer;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_signalling_only_players_join() {
    let srv = server().await;
    let mut streamer = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    let cfg = PlayerConfig {
        url: player_url(&srv),
        signalling_only: true,
        duration: Some(Duration::from_millis(1500)),
        join_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let load = LoadConfig { players: 200, ramp: 1000.0, max_joining: 100, ..Default::default() };
    let report = tokio::time::timeout(Duration::from_secs(30), run_load(cfg, load, CancellationToken::new()))
        .await
        .expect("run in time")
        .expect("run starts");
    println!("{}", report.to_text());
    assert_eq!(report.passed, 200, "{:?}", report.failures);
    streamer.wait_answers(200, Duration::from_secs(5)).await;
    assert_eq!(report.phases["6 joined"].n, 200);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_streamer_fails_clearly() {
    let srv = server().await;
    let _streamer = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    let cfg = PlayerConfig {
        url: player_url(&srv),
        streamer_id: Some("NoSuchStreamer".into()),
        signalling_only: true,
        join_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let stats = tokio::time::timeout(Duration::from_secs(15), run_player(cfg, CancellationToken::new()))
        .await
        .expect("fails in time")
        .expect("runs");
    assert!(!stats.passed);
    assert_eq!(stats.error_kind.as_deref(), Some("subscribe_failed"), "{:?}", stats.error);
    assert!(stats.error.as_deref().unwrap_or("").contains("NoSuchStreamer"), "{:?}", stats.error);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_is_a_connect_failure() {
    // A port nobody listens on.
    let [port] = testkit::ports::free_ports().expect("a free port");
    let cfg = PlayerConfig {
        url: format!("ws://127.0.0.1:{port}"),
        signalling_only: true,
        join_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let stats = run_player(cfg, CancellationToken::new()).await.expect("runs");
    assert_eq!(stats.error_kind.as_deref(), Some("connect"), "{:?}", stats.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_waits_for_streamer_then_rejoins_after_restart() {
    let srv = server().await;
    let cfg = PlayerConfig {
        url: player_url(&srv),
        streamer_id: Some("S1".into()),
        signalling_only: true,
        reconnect: true,
        join_timeout: Duration::from_secs(10),
        list_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let cancel = CancellationToken::new();
    // The player starts before any streamer exists and waits for it.
    let player = tokio::spawn(run_player(cfg, cancel.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s1 = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    s1.wait_answers(1, Duration::from_secs(10)).await;
    s1.kill();
    common::wait_unlisted(&srv, "S1").await;
    let mut s2 = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    s2.wait_answers(1, Duration::from_secs(10)).await;
    cancel.cancel();
    let stats = player.await.expect("player task").expect("runs");
    assert!(stats.passed, "{:?}", stats.error);
    assert!(stats.reconnects >= 1);
    assert_eq!(stats.rejoins.len(), 1, "{stats:?}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_streamer_id_change() {
    let srv = server().await;
    let mut streamer = FakeStreamer::start(srv.streamer_addr(), "S1").await;
    let cfg = PlayerConfig {
        url: player_url(&srv),
        signalling_only: true,
        join_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let live = std::sync::Arc::new(mock_player::live::Live::default());
    let player = mock_player::Player::new(0, std::sync::Arc::new(cfg), None, live.clone());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(player.run(cancel.clone(), None));
    streamer.wait_answers(1, Duration::from_secs(10)).await;
    assert_eq!(live.streamer().as_deref(), Some("S1"));
    streamer.send(proto::Message::EndpointId { id: Some("Renamed".into()), protocol_version: None });
    common::wait_until(Duration::from_secs(5), "the player to follow the rename", || {
        live.streamer().as_deref() == Some("Renamed")
    })
    .await;
    cancel.cancel();
    let stats = task.await.expect("player task");
    assert!(stats.passed, "{:?}", stats.error);
    assert_eq!(stats.streamer_id.as_deref(), Some("Renamed"));
    srv.shutdown().await;
}
