//! Players against the real signalling server and the real mock-streamer
//! (WebRTC on loopback).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{player_url, run_to_end, server, streamer, wait_until};
use mock_player::live::{Live, Phase};
use mock_player::rtc::RtcContext;
use mock_player::{run_load, LoadConfig, Player, PlayerConfig};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_player_streams_with_data_channel() {
    let srv = server().await;
    let st = streamer(&srv, "S1").await;
    let cfg = PlayerConfig {
        url: player_url(&srv),
        input_rate: 20.0,
        latency_test: true,
        duration: Some(Duration::from_secs(4)),
        expect_frames: Some(30),
        join_timeout: Duration::from_secs(15),
        ..Default::default()
    };
    let stats = run_to_end(cfg).await;
    assert!(stats.passed, "{:?}", stats.error);
    assert!(stats.video_frames >= 30, "frames {}", stats.video_frames);
    assert!(stats.keyframes >= 1);
    assert!(stats.join.first_keyframe_ms.is_some());
    assert!(stats.dc.protocol_received, "{:?}", stats.dc);
    assert!(stats.dc.initial_settings_received, "{:?}", stats.dc);
    assert!(stats.dc.input_sent >= 20, "{:?}", stats.dc);
    assert!(!stats.dc.rtt_ms.is_empty(), "no data-channel round trip: {:?}", stats.dc);
    assert!(!stats.dc.latency_test_ms.is_empty(), "no LatencyTest reply: {:?}", stats.dc);
    // The input reached the streamer.
    wait_until(Duration::from_secs(5), "input counted by the streamer", || {
        let c = st.input_counts();
        c.get("MouseMove").copied().unwrap_or(0) > 0
            && c.get("RequestInitialSettings").copied().unwrap_or(0) > 0
            && c.get("UIInteraction").copied().unwrap_or(0) > 0
    })
    .await;
    println!("streamer input counts: {:?}", st.input_counts());
    st.stop().await;
    srv.shutdown().await;
}

async fn many_players_stream(n: usize) {
    let srv = server().await;
    let st = streamer(&srv, "S1").await;
    let cfg = PlayerConfig {
        url: player_url(&srv),
        input_rate: 2.0,
        duration: Some(Duration::from_secs(5)),
        expect_frames: Some(30),
        join_timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let load = LoadConfig { players: n, ramp: 20.0, max_joining: 10, ..Default::default() };
    let report = tokio::time::timeout(Duration::from_secs(60), run_load(cfg, load, CancellationToken::new()))
        .await
        .expect("run ends in time")
        .expect("run starts");
    println!("{}", report.to_text());
    assert_eq!(report.passed, n, "{:?}", report.failures);
    st.stop().await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_players_stream() {
    many_players_stream(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamer_restart_with_reconnect_brings_player_back() {
    let srv = server().await;
    let st = streamer(&srv, "S1").await;
    let cfg = Arc::new(PlayerConfig {
        url: player_url(&srv),
        streamer_id: Some("S1".into()),
        reconnect: true,
        join_timeout: Duration::from_secs(15),
        list_interval: Duration::from_millis(200),
        ..Default::default()
    });
    let rtc = RtcContext::new(true).expect("webrtc api");
    let live = Arc::new(Live::default());
    let player = Player::new(0, cfg, Some(rtc), live.clone());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(player.run(cancel.clone(), None));

    wait_until(Duration::from_secs(15), "first streaming", || live.phase() == Phase::Streaming).await;
    st.stop().await;
    wait_until(Duration::from_secs(10), "player notices the loss", || live.phase() != Phase::Streaming).await;
    common::wait_unlisted(&srv, "S1").await;
    let frames_before = live.frames.load(std::sync::atomic::Ordering::Relaxed);
    let st2 = streamer(&srv, "S1").await;
    wait_until(Duration::from_secs(20), "streaming again", || {
        live.phase() == Phase::Streaming && live.frames.load(std::sync::atomic::Ordering::Relaxed) > frames_before + 10
    })
    .await;
    cancel.cancel();
    let stats = task.await.expect("player task");
    assert!(stats.passed, "{:?}", stats.error);
    assert!(stats.reconnects >= 1);
    assert_eq!(stats.rejoins.len(), 1, "{:?}", stats.rejoins);
    st2.stop().await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_players_stream() {
    many_players_stream(50).await;
}
