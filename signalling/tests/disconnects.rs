//! Section 6 (disconnects) and section 8 (keepalive) against the real server.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use signalling::ServerConfig;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn disconnect_player_closes_it_with_1011_and_the_reason() {
    let h = default_server().await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p, pid) = Client::subscribed_player(&h, &mut s, &id).await;
    s.send(json!({"type": "disconnectPlayer", "playerId": pid, "reason": "kicked for testing"})).await;
    assert_eq!(p.expect_close(1011).await, "kicked for testing");
    assert_eq!(s.recv().await, json!({"type": "playerDisconnected", "playerId": pid}));
    wait_until("player forgotten", || h.connection_count() == 1).await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_player_leaving_is_told_to_its_streamer() {
    let h = default_server().await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (p, pid) = Client::subscribed_player(&h, &mut s, &id).await;
    drop(p);
    assert_eq!(s.recv().await, json!({"type": "playerDisconnected", "playerId": pid}));
    wait_until("player forgotten", || h.connection_count() == 1).await;
    assert!(h.snapshot().streamers[0].subscribers.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn a_streamer_leaving_tells_and_closes_its_players_and_keeps_sfus() {
    let h = default_server().await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p1, _) = Client::subscribed_player(&h, &mut s, &id).await;
    let (mut p2, _) = Client::subscribed_player(&h, &mut s, &id).await;
    // An SFU subscribed to S, with a player of its own.
    let mut sfu = Client::connect(h.sfu_addr(), "sfu").await;
    sfu.expect_type("config").await;
    sfu.expect_type("identify").await;
    sfu.send(json!({"type": "endpointId", "id": "SFU"})).await;
    sfu.expect_type("endpointIdConfirm").await;
    sfu.send(json!({"type": "subscribe", "streamerId": "S"})).await;
    assert_eq!(s.expect_type("playerConnected").await["sfu"], true);
    sfu.send(json!({"type": "startStreaming"})).await;
    // Barrier: startStreaming is processed before the pong comes back.
    sfu.expect_nothing_pending().await;
    let (mut sp, sp_id) = Client::subscribed_player(&h, &mut sfu, "SFU").await;
    // Another streamer's player is not affected.
    let (mut other, other_id) = Client::streamer(&h, "Other").await;
    let (mut op, op_id) = Client::subscribed_player(&h, &mut other, &other_id).await;

    drop(s);
    for p in [&mut p1, &mut p2] {
        assert_eq!(p.recv().await, json!({"type": "streamerDisconnected"}));
        assert_eq!(p.expect_close(1000).await, "streamer disconnected");
    }
    assert_eq!(sfu.recv().await, json!({"type": "streamerDisconnected"}));
    assert_eq!(sfu.recv().await, json!({"type": "playerDisconnected", "playerId": sp_id}));
    assert_eq!(sp.recv().await, json!({"type": "streamerDisconnected"}));
    sp.expect_close(1000).await;
    // The SFU stays connected, unlisted.
    sfu.expect_nothing_pending().await;
    op.send(json!({"type": "listStreamers"})).await;
    assert_eq!(op.recv().await, json!({"type": "streamerList", "ids": ["Other"]}));
    other.send(json!({"type": "offer", "sdp": "x", "playerId": op_id})).await;
    assert_eq!(op.recv().await["sdp"], "x");
    wait_until("registry cleaned", || h.connection_count() == 3).await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_dead_peer_loses_its_slot_within_two_ping_intervals() {
    let mut config = ServerConfig::ephemeral();
    config.ping_interval = Some(Duration::from_millis(300));
    config.max_players = 1;
    let h = server(config).await;
    let (mut s, _) = Client::streamer(&h, "S").await;
    let mut tcp = dead_player(h.player_addr()).await;
    // Subscribe by writing one masked text frame by hand.
    tcp.write_all(&masked_text_frame(br#"{"type":"subscribe","streamerId":"S"}"#)).await.unwrap();
    let connected = s.expect_type("playerConnected").await;
    let started = std::time::Instant::now();
    // The streamer answers our pings, the dead player does not.
    assert_eq!(s.recv().await, json!({"type": "playerDisconnected", "playerId": connected["playerId"]}));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(300 * 2 + 500), "slot held for {took:?}");
    // The slot is free again.
    let (_p, _) = Client::subscribed_player(&h, &mut s, "S").await;
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let h = default_server().await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p, _) = Client::subscribed_player(&h, &mut s, &id).await;
    let mut sfu = Client::connect(h.sfu_addr(), "sfu").await;
    let closing = tokio::spawn(h.shutdown());
    assert_eq!(p.expect_close(1001).await, "server shutting down");
    s.expect_close(1001).await;
    sfu.expect_close(1001).await;
    closing.await.unwrap();
}
