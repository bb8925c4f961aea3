//! Sections 2–5 and 8 of the contract against the real server over real sockets.

mod common;

use common::*;
use serde_json::json;
use signalling::ServerConfig;

#[tokio::test]
async fn connect_sequences_follow_the_seed_order() {
    let mut config = ServerConfig::ephemeral();
    config.peer_options = json!({"iceServers": [{"urls": ["stun:127.0.0.1:3478"]}]}).as_object().cloned().unwrap();
    let h = server(config).await;

    let mut s = Client::connect(h.streamer_addr(), "streamer").await;
    assert_eq!(
        s.recv_text().await,
        r#"{"type":"config","peerConnectionOptions":{"iceServers":[{"urls":["stun:127.0.0.1:3478"]}]},"protocolVersion":"1.3.0"}"#
    );
    assert_eq!(s.recv().await, json!({"type": "identify"}));

    let mut sfu = Client::connect(h.sfu_addr(), "sfu").await;
    assert_eq!(sfu.expect_type("config").await["protocolVersion"], "1.3.0");
    assert_eq!(sfu.recv().await, json!({"type": "identify"}));

    let mut p1 = Client::connect(h.player_addr(), "p1").await;
    p1.expect_type("config").await;
    assert_eq!(p1.recv().await, json!({"type": "playerCount", "count": 1}));
    let mut p2 = Client::connect(h.player_addr(), "p2").await;
    p2.expect_type("config").await;
    // SFUs are not counted.
    assert_eq!(p2.recv().await, json!({"type": "playerCount", "count": 2}));
    h.shutdown().await;
}

#[tokio::test]
async fn player_count_can_be_switched_off_for_strict_clients() {
    let mut config = ServerConfig::ephemeral();
    config.send_player_count = false;
    let h = server(config).await;
    let mut p = Client::connect(h.player_addr(), "p").await;
    p.expect_type("config").await;
    p.expect_nothing_pending().await;
    h.shutdown().await;
}

#[tokio::test]
async fn streamer_ids_collide_into_numbered_ids_and_are_listed_in_order() {
    let h = default_server().await;
    let mut p = Client::player(&h).await;
    // Not listed before it identifies.
    let mut s0 = Client::connect(h.streamer_addr(), "s0").await;
    s0.expect_type("config").await;
    s0.expect_type("identify").await;
    p.send(json!({"type": "listStreamers"})).await;
    assert_eq!(p.recv().await, json!({"type": "streamerList", "ids": []}));

    let (mut a, a_id) = Client::streamer(&h, "A").await;
    let (_a1, a1_id) = Client::streamer(&h, "A").await;
    let (_a2, a2_id) = Client::streamer(&h, "A").await;
    assert_eq!((a_id.as_str(), a1_id.as_str(), a2_id.as_str()), ("A", "A1", "A2"));
    // FIX: re-sending its own id keeps it.
    a.send(json!({"type": "endpointId", "id": "A"})).await;
    assert_eq!(a.recv().await, json!({"type": "endpointIdConfirm", "committedId": "A"}));
    // Empty id: a generated one, never a failure.
    s0.send(json!({"type": "endpointId", "id": ""})).await;
    let generated = s0.expect_type("endpointIdConfirm").await["committedId"].as_str().unwrap().to_string();
    assert!(!generated.is_empty());

    p.send(json!({"type": "listStreamers"})).await;
    assert_eq!(p.recv().await, json!({"type": "streamerList", "ids": [generated, "A", "A1", "A2"]}));
    h.shutdown().await;
}

#[tokio::test]
async fn id_change_reaches_subscribers_before_the_confirmation() {
    let h = default_server().await;
    let (mut s, id) = Client::streamer(&h, "Old").await;
    let (mut p, _) = Client::subscribed_player(&h, &mut s, &id).await;
    s.send(json!({"type": "endpointId", "id": "New"})).await;
    assert_eq!(p.recv().await, json!({"type": "streamerIdChanged", "newID": "New"}));
    assert_eq!(s.recv().await, json!({"type": "endpointIdConfirm", "committedId": "New"}));
    h.shutdown().await;
}

#[tokio::test]
async fn subscribe_failures_have_wilburs_texts() {
    let mut config = ServerConfig::ephemeral();
    config.max_players = 1;
    let h = server(config).await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let mut p = Client::player(&h).await;
    p.send(json!({"type": "subscribe", "streamerId": "Nope"})).await;
    assert_eq!(p.recv().await, json!({"type": "subscribeFailed", "message": "Streamer Nope does not exist."}));
    let (_p1, _) = Client::subscribed_player(&h, &mut s, &id).await;
    p.send(json!({"type": "subscribe", "streamerId": "S"})).await;
    assert_eq!(p.recv().await, json!({"type": "subscribeFailed", "message": "Streamer S is full. Max players = 1."}));
    // Without an id.
    p.send(json!({"type": "subscribe"})).await;
    assert_eq!(p.expect_type("subscribeFailed").await["type"], "subscribeFailed");
    s.expect_nothing_pending().await;
    h.shutdown().await;
}

#[tokio::test]
async fn subscribe_resubscribe_and_unsubscribe() {
    let h = default_server().await;
    let (mut a, _) = Client::streamer(&h, "A").await;
    let (mut b, _) = Client::streamer(&h, "B").await;
    let mut p = Client::player(&h).await;
    p.send(json!({"type": "subscribe", "streamerId": "A"})).await;
    let connected = a.recv().await;
    let pid = connected["playerId"].as_str().unwrap().to_string();
    assert_eq!(connected, json!({"type": "playerConnected", "playerId": pid, "dataChannel": true, "sfu": false}));
    // Nothing goes back to the player.
    p.expect_nothing_pending().await;
    // Subscribing again (even to the same streamer) ends the old subscription first.
    p.send(json!({"type": "subscribe", "streamerId": "A"})).await;
    assert_eq!(a.recv().await, json!({"type": "playerDisconnected", "playerId": pid}));
    assert_eq!(a.recv().await["type"], "playerConnected");
    p.send(json!({"type": "subscribe", "streamerId": "B"})).await;
    assert_eq!(a.recv().await, json!({"type": "playerDisconnected", "playerId": pid}));
    assert_eq!(b.recv().await["playerId"], pid.as_str());
    p.send(json!({"type": "unsubscribe"})).await;
    assert_eq!(b.recv().await, json!({"type": "playerDisconnected", "playerId": pid}));
    p.expect_nothing_pending().await;
    h.shutdown().await;
}

#[tokio::test]
async fn routing_table_streamer_and_player_rows() {
    let h = default_server().await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p, pid) = Client::subscribed_player(&h, &mut s, &id).await;

    // Streamer → player: kept as sent, byte for byte (unknown fields too).
    for raw in [
        format!(r#"{{"type":"offer","sdp":"v=0\r\n","playerId":"{pid}","future":{{"a":[1,2]}},"sfu":false}}"#),
        format!(
            r#"{{"type":"iceCandidate","playerId":"{pid}","candidate":{{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}}}"#
        ),
        format!(r#"{{"type":"answer","sdp":"x","playerId":"{pid}"}}"#),
    ] {
        s.send_raw(&raw).await;
        assert_eq!(p.recv_text().await, raw);
    }

    // Player → streamer: playerId set (overwritten when forged), order kept.
    p.send_raw(r#"{"type":"answer","x":1,"sdp":"a","playerId":"Forged","minBitrateBps":1}"#).await;
    assert_eq!(
        s.recv_text().await,
        format!(r#"{{"type":"answer","x":1,"sdp":"a","playerId":"{pid}","minBitrateBps":1}}"#)
    );
    for (sent, forwarded) in [
        (r#"{"type":"offer","sdp":"o"}"#.to_string(), format!(r#"{{"type":"offer","sdp":"o","playerId":"{pid}"}}"#)),
        (
            r#"{"type":"iceCandidate","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}"#.to_string(),
            format!(
                r#"{{"type":"iceCandidate","candidate":{{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}},"playerId":"{pid}"}}"#
            ),
        ),
        (
            r#"{"type":"dataChannelRequest"}"#.to_string(),
            format!(r#"{{"type":"dataChannelRequest","playerId":"{pid}"}}"#),
        ),
        (
            r#"{"type":"peerDataChannelsReady"}"#.to_string(),
            format!(r#"{{"type":"peerDataChannelsReady","playerId":"{pid}"}}"#),
        ),
        (
            r#"{"type":"layerPreference","spatialLayer":1,"temporalLayer":0}"#.to_string(),
            format!(r#"{{"type":"layerPreference","spatialLayer":1,"temporalLayer":0,"playerId":"{pid}"}}"#),
        ),
    ] {
        p.send_raw(&sent).await;
        assert_eq!(s.recv_text().await, forwarded);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn streamers_only_reach_their_own_players() {
    let h = default_server().await;
    let (mut a, a_id) = Client::streamer(&h, "A").await;
    let (mut b, b_id) = Client::streamer(&h, "B").await;
    let (mut pa, pa_id) = Client::subscribed_player(&h, &mut a, &a_id).await;
    let (mut pb, pb_id) = Client::subscribed_player(&h, &mut b, &b_id).await;
    // B addressing A's player, an unknown player, or nobody: dropped.
    b.send(json!({"type": "offer", "sdp": "evil", "playerId": pa_id})).await;
    b.send(json!({"type": "offer", "sdp": "x", "playerId": "Player999"})).await;
    b.send(json!({"type": "offer", "sdp": "x"})).await;
    b.send(json!({"type": "disconnectPlayer", "playerId": pa_id})).await;
    // Then a legitimate one for each: the next thing each player sees.
    a.send(json!({"type": "offer", "sdp": "for-a", "playerId": pa_id})).await;
    b.send(json!({"type": "offer", "sdp": "for-b", "playerId": pb_id})).await;
    assert_eq!(pa.recv().await["sdp"], "for-a");
    assert_eq!(pb.recv().await["sdp"], "for-b");
    let dropped = h.counters().dropped;
    assert_eq!(dropped.get("not_subscriber"), Some(&2));
    assert_eq!(dropped.get("no_such_player"), Some(&1));
    assert_eq!(dropped.get("missing_player_id"), Some(&1));
    h.shutdown().await;
}

#[tokio::test]
async fn ping_gets_pong_with_the_same_64_bit_time() {
    let h = default_server().await;
    for addr in [h.player_addr(), h.streamer_addr(), h.sfu_addr()] {
        let mut c = Client::connect(addr, "c").await;
        c.recv().await;
        c.recv().await;
        c.send(json!({"type": "ping", "time": 1_732_000_000_000i64})).await;
        assert_eq!(c.recv_text().await, r#"{"type":"pong","time":1732000000000}"#);
        c.send(json!({"type": "ping"})).await;
        assert_eq!(c.recv_text().await, r#"{"type":"pong","time":0}"#);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn legacy_player_offer_auto_subscribes_to_the_first_streamer() {
    let h = default_server().await;
    // No streamer: the player is closed.
    let mut lonely = Client::player(&h).await;
    lonely.send(json!({"type": "offer", "sdp": "legacy"})).await;
    lonely.ended().await;

    let (mut s, _) = Client::streamer(&h, "First").await;
    let (_s2, _) = Client::streamer(&h, "Second").await;
    let mut p = Client::player(&h).await;
    p.send(json!({"type": "offer", "sdp": "legacy"})).await;
    let connected = s.expect_type("playerConnected").await;
    let pid = connected["playerId"].as_str().unwrap();
    assert_eq!(s.recv().await, json!({"type": "offer", "sdp": "legacy", "playerId": pid}));
    h.shutdown().await;
}

#[tokio::test]
async fn legacy_offer_to_a_full_streamer_closes_only_that_player() {
    let mut config = ServerConfig::ephemeral();
    config.max_players = 1;
    let h = server(config).await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p1, p1_id) = Client::subscribed_player(&h, &mut s, &id).await;
    let mut p2 = Client::player(&h).await;
    p2.send(json!({"type": "offer", "sdp": "legacy"})).await;
    p2.ended().await;
    // The server and the other player carry on.
    s.send(json!({"type": "offer", "sdp": "still-here", "playerId": p1_id})).await;
    assert_eq!(p1.recv().await["sdp"], "still-here");
    h.shutdown().await;
}

#[tokio::test]
async fn any_path_and_query_and_the_first_subprotocol_are_accepted() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let h = default_server().await;
    let mut req = format!("ws://{}/some/path?StreamerId=x&token=y", h.player_addr()).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "first, second".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(req).await.expect("connects");
    assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "first");
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"config\""));
    h.shutdown().await;
}
