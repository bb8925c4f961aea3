//! Signalling behaviour without media: reconnect and re-register, keepalive,
//! and the `--signalling-only` canned offer.

mod common;

use std::time::Duration;

use common::{wait_event, within};
use futures_util::{SinkExt, StreamExt};
use mock_streamer::{StreamerConfig, StreamerEvent};
use proto::{Incoming, Message};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

async fn accept(listener: &TcpListener) -> Ws {
    let (tcp, _) = within("a connection", listener.accept()).await.expect("accept");
    tokio_tungstenite::accept_async(tcp).await.expect("handshake")
}

async fn send(ws: &mut Ws, m: Message) {
    ws.send(WsMessage::text(m.to_json())).await.expect("send");
}

/// The next message that is not `skip`.
async fn next(ws: &mut Ws) -> Message {
    within("a message from the streamer", async {
        loop {
            let frame = ws.next().await.expect("open").expect("frame");
            if let Ok(i) = Incoming::parse(frame.to_text().unwrap_or_default().as_bytes()) {
                return i.message;
            }
        }
    })
    .await
}

async fn register(ws: &mut Ws, confirm_as: &str) -> Option<String> {
    // Wilbur's order (identify first) must work as well as ours.
    send(ws, Message::Identify).await;
    send(ws, Message::config(serde_json::json!({}))).await;
    let id = match next(ws).await {
        Message::EndpointId { id, .. } => id,
        other => panic!("expected endpointId, got {other:?}"),
    };
    send(ws, Message::EndpointIdConfirm { committed_id: confirm_as.into() }).await;
    id
}

fn config(listener: &TcpListener) -> StreamerConfig {
    StreamerConfig {
        url: format!("ws://{}", listener.local_addr().expect("addr")),
        streamer_ids: vec!["Alpha".into()],
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        ping_interval: None,
        ..StreamerConfig::default()
    }
}

#[tokio::test]
async fn reconnects_and_registers_the_same_id_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let handle = mock_streamer::spawn(StreamerConfig { signalling_only: true, ..config(&listener) }).expect("spawn");
    let mut events = handle.events();

    let mut ws = accept(&listener).await;
    assert_eq!(register(&mut ws, "Alpha1").await.as_deref(), Some("Alpha"));
    wait_event(&mut events, "Registered", |e| matches!(e, StreamerEvent::Registered { id, .. } if id == "Alpha1"))
        .await;
    assert_eq!(handle.committed_ids(), vec![Some("Alpha1".into())]);

    // The server goes away: the streamer comes back and asks for its id again.
    ws.close(None).await.expect("close");
    drop(ws);
    wait_event(&mut events, "SignallingLost", |e| matches!(e, StreamerEvent::SignallingLost { .. })).await;
    let mut ws = accept(&listener).await;
    assert_eq!(register(&mut ws, "Alpha").await.as_deref(), Some("Alpha"));
    wait_event(&mut events, "Registered again", |e| matches!(e, StreamerEvent::Registered { id, .. } if id == "Alpha"))
        .await;

    // Keepalive: a server ping is answered with the same time.
    send(&mut ws, Message::Ping { time: Some(1_700_000_000_123) }).await;
    assert_eq!(next(&mut ws).await, Message::Pong { time: 1_700_000_000_123 });

    let stats = handle.stop().await;
    assert_eq!(stats.streamers[0].signalling_connects, 2);
}

#[tokio::test]
async fn signalling_only_sends_a_canned_offer_and_accepts_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let handle = mock_streamer::spawn(StreamerConfig { signalling_only: true, ..config(&listener) }).expect("spawn");
    let mut ws = accept(&listener).await;
    register(&mut ws, "Alpha").await;
    for i in 0..3 {
        send(&mut ws, Message::PlayerConnected { player_id: format!("P{i}"), data_channel: true, sfu: false }).await;
    }
    for i in 0..3 {
        match next(&mut ws).await {
            Message::Offer { sdp, player_id, .. } => {
                assert_eq!(player_id, Some(format!("P{i}")));
                assert!(sdp.starts_with("v=0\r\n") && sdp.contains("a=msid:") && sdp.contains("m=application"));
            }
            other => panic!("expected offer, got {other:?}"),
        }
    }
    // Answers, candidates and disconnects are accepted quietly; the session stays up.
    send(
        &mut ws,
        Message::Answer {
            sdp: "v=0\r\n".into(),
            player_id: Some("P0".into()),
            min_bitrate_bps: None,
            max_bitrate_bps: None,
        },
    )
    .await;
    send(&mut ws, Message::PlayerDisconnected { player_id: "P1".into() }).await;
    send(&mut ws, Message::Ping { time: Some(5) }).await;
    assert_eq!(next(&mut ws).await, Message::Pong { time: 5 });
    let stats = handle.stop().await;
    assert_eq!(stats.streamers[0].players_connected_total, 3);
    assert_eq!(stats.streamers[0].frames_encoded, 0);
}

#[tokio::test]
async fn several_streamers_from_one_process() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cfg = StreamerConfig {
        streamer_ids: mock_streamer::numbered_ids("S", 3),
        signalling_only: true,
        ..config(&listener)
    };
    let handle = mock_streamer::spawn(cfg).expect("spawn");
    let mut ids = Vec::new();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut ws = accept(&listener).await;
        let id = register(&mut ws, "x").await.expect("id");
        send(&mut ws, Message::EndpointIdConfirm { committed_id: id.clone() }).await;
        ids.push(id);
        sockets.push(ws);
    }
    ids.sort();
    assert_eq!(ids, vec!["S", "S1", "S2"]);
    handle.stop().await;
}
