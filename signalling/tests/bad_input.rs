//! Section 9: nothing a peer sends crashes the server or disturbs others.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use signalling::ServerConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn junk_is_dropped_and_counted_and_the_connection_stays() {
    let h = default_server().await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p, pid) = Client::subscribed_player(&h, &mut s, &id).await;
    let junk = [
        "not json",
        "null",
        "42",
        "[1,2]",
        "\"str\"",
        "{}",
        r#"{"type":7}"#,
        r#"{"type":"noSuchType"}"#,
        r#"{"type":"disconnectPlayer","playerId":"Player0"}"#, // players may not send it
        r#"{"type":"offer"}"#,                                 // missing sdp
        r#"{"type":"iceCandidate","candidate":"not-an-object"}"#,
        "{\"type\":\"answer\",\"sdp\":", // truncated
    ];
    for text in junk {
        p.send_raw(text).await;
    }
    // Binary frames carrying JSON are handled like text.
    p.ws.send(Message::binary(br#"{"type":"listStreamers"}"#.to_vec())).await.unwrap();
    assert_eq!(p.recv().await, json!({"type": "streamerList", "ids": ["S"]}));
    // A streamer sending a player's message.
    s.send(json!({"type": "subscribe", "streamerId": "S"})).await;
    s.send_raw("null").await;
    // Everyone is still connected and routing works.
    s.send(json!({"type": "offer", "sdp": "ok", "playerId": pid})).await;
    assert_eq!(p.recv().await["sdp"], "ok");
    p.expect_nothing_pending().await;
    s.expect_nothing_pending().await;
    let counters = h.counters();
    assert_eq!(counters.dropped_total(), junk.len() as u64 + 2, "{:?}", counters.dropped);
    assert_eq!(counters.dropped.get("not_json"), Some(&2));
    assert_eq!(counters.dropped.get("not_object"), Some(&5));
    assert_eq!(counters.dropped.get("not_allowed"), Some(&2));
    h.shutdown().await;
}

#[tokio::test]
async fn a_16_mib_frame_closes_that_connection_with_1009() {
    let h = default_server().await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p, pid) = Client::subscribed_player(&h, &mut s, &id).await;
    let mut big = Client::player(&h).await;
    let payload = format!(r#"{{"type":"stats","data":"{}"}}"#, "x".repeat(16 << 20));
    // Write and read concurrently: the server closes while we are still sending.
    let _ = big.ws.send(Message::text(payload)).await;
    assert_eq!(big.expect_close(1009).await, "message too big");
    s.send(json!({"type": "offer", "sdp": "still", "playerId": pid})).await;
    assert_eq!(p.recv().await["sdp"], "still");
    h.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_closes_that_connection_with_1007() {
    let h = default_server().await;
    let mut p = Client::player(&h).await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    p.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(p.expect_close(1007).await, "invalid UTF-8 in a text frame");
    let mut other = Client::player(&h).await;
    other.expect_nothing_pending().await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_flood_is_closed_with_1008_and_others_are_unaffected() {
    let mut config = ServerConfig::ephemeral();
    config.rate_limit_per_sec = 100;
    config.rate_limit_burst = 200;
    let h = server(config).await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p, pid) = Client::subscribed_player(&h, &mut s, &id).await;
    let mut flooder = Client::player(&h).await;
    let flood = tokio::spawn(async move {
        for _ in 0..5000 {
            if flooder.ws.feed(Message::text(r#"{"type":"listStreamers"}"#)).await.is_err() {
                break;
            }
        }
        let _ = flooder.ws.flush().await;
        flooder
    });
    let mut flooder = flood.await.unwrap();
    let mut answers = 0;
    let ended = loop {
        match flooder.ended_or_text().await {
            Some(_) => answers += 1,
            None => break flooder.last_close.clone(),
        }
    };
    assert_eq!(ended, Some((1008, "message rate limit exceeded".to_string())));
    assert!(answers <= 200 + 10, "answered {answers} before closing");
    s.send(json!({"type": "offer", "sdp": "fine", "playerId": pid})).await;
    assert_eq!(p.recv().await["sdp"], "fine");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_flood_others_latency_stays_low_and_the_flooder_is_closed() {
    use std::time::{Duration, Instant};
    let mut config = ServerConfig::ephemeral();
    // A burst big enough that the flood lasts a while before the bucket runs dry.
    config.rate_limit_per_sec = 1000;
    config.rate_limit_burst = 30_000;
    let h = server(config).await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p, pid) = Client::subscribed_player(&h, &mut s, &id).await;
    let mut flooder = Client::player(&h).await;
    // Messages that need no answer, so the flooder's own queue never fills:
    // only the rate limit can stop it.
    let flood = tokio::spawn(async move {
        let started = Instant::now();
        let mut sent = 0u64;
        while flooder.ws.send(Message::text(r#"{"type":"pong","time":1}"#)).await.is_ok() {
            sent += 1;
        }
        let took = started.elapsed();
        let mut closed = None;
        while closed.is_none() {
            if flooder.ended_or_text().await.is_none() {
                closed = Some(flooder.last_close.clone());
            }
        }
        (sent, took, closed.flatten())
    });
    let mut latencies = Vec::new();
    let mut i = 0u64;
    while !flood.is_finished() {
        let sent = Instant::now();
        s.send(json!({"type": "offer", "sdp": format!("m{i}"), "playerId": pid})).await;
        assert_eq!(p.recv().await["sdp"], format!("m{i}"));
        latencies.push(sent.elapsed());
        i += 1;
        assert!(i < 1_000_000, "flood never stopped");
    }
    let (sent, took, closed) = flood.await.unwrap();
    assert_eq!(closed, Some((1008, "message rate limit exceeded".to_string())));
    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "flood: flooder sent {sent} frames in {took:?} before its close; others' round trip over {} messages: \
         p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    assert!(latencies.len() >= 10, "too few samples during the flood");
    assert!(pct(0.99) < Duration::from_millis(100), "p99 {:?}", pct(0.99));
    assert!(h.counters().received_by_type.get("pong").copied().unwrap_or(0) >= 30_000);
    h.shutdown().await;
}

/// Streamers speak for all their players: by default they have no message
/// rate limit, and `streamer_rate_limit` gives them one of their own.
#[tokio::test]
async fn streamers_have_their_own_rate_limit() {
    let h = default_server().await;
    let (mut s, _) = Client::streamer(&h, "Busy").await;
    // 2,700 messages in a few milliseconds: far over a player's burst of
    // 1,000. (In rounds, reading the answers, so our own send queue of
    // 1,024 never fills.)
    for round in 0..3 {
        for i in 0..900 {
            s.ws.feed(Message::text(format!(r#"{{"type":"ping","time":{}}}"#, round * 900 + i))).await.unwrap();
        }
        s.ws.flush().await.unwrap();
        for i in 0..900 {
            assert_eq!(s.recv().await, json!({"type": "pong", "time": round * 900 + i}));
        }
    }
    h.shutdown().await;

    let mut config = ServerConfig::ephemeral();
    config.streamer_rate_limit_per_sec = 100;
    config.streamer_rate_limit_burst = 200;
    let h = server(config).await;
    let (mut s, _) = Client::streamer(&h, "Flooder").await;
    for i in 0..3000 {
        if s.ws.feed(Message::text(format!(r#"{{"type":"ping","time":{i}}}"#))).await.is_err() {
            break;
        }
    }
    let _ = s.ws.flush().await;
    while s.ended_or_text().await.is_some() {}
    assert_eq!(s.last_close, Some((1008, "message rate limit exceeded".to_string())));
    h.shutdown().await;
}
