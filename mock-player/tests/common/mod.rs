//! Test helpers: an in-process signalling server and a real mock-streamer
//! (the fake WebSocket-only streamer is `testkit::fake_streamer`).

#![allow(dead_code)]

use std::time::Duration;

pub use testkit::wait_until;

pub async fn server() -> signalling::ServerHandle {
    signalling::run(signalling::ServerConfig::ephemeral()).await.expect("signalling server starts")
}

pub fn player_url(h: &signalling::ServerHandle) -> String {
    format!("ws://{}", h.player_addr())
}

/// Wait until the server no longer lists `id` (a killed streamer's socket
/// closes asynchronously; a new one with the same id would be renamed).
pub async fn wait_unlisted(h: &signalling::ServerHandle, id: &str) {
    wait_until(Duration::from_secs(5), &format!("streamer {id} to be unlisted"), || {
        !h.snapshot().streamers.iter().any(|s| s.streamer_id == id)
    })
    .await;
}

/// A real mock-streamer (H.264 over WebRTC) registered as `id`.
pub async fn streamer(h: &signalling::ServerHandle, id: &str) -> mock_streamer::StreamerHandle {
    let cfg = mock_streamer::StreamerConfig {
        url: format!("ws://{}", h.streamer_addr()),
        streamer_ids: vec![id.to_string()],
        video: mock_streamer::video::VideoSettings { width: 320, height: 240, fps: 30, bitrate_bps: 300_000 },
        ..Default::default()
    };
    let handle = mock_streamer::spawn(cfg).expect("mock-streamer starts");
    let mut events = handle.events();
    let registered = testkit::next_event(&mut events, Duration::from_secs(10), "streamer registers", |e| {
        matches!(e, mock_streamer::StreamerEvent::Registered { .. })
    })
    .await;
    let mock_streamer::StreamerEvent::Registered { id: registered, .. } = registered else {
        unreachable!("next_event returns a matching event")
    };
    assert_eq!(registered, id, "streamer registered under another id");
    handle
}

/// Run one player to its end (30 s at most) and print its stats for the log.
pub async fn run_to_end(cfg: mock_player::PlayerConfig) -> mock_player::PlayerStats {
    let run = mock_player::run_player(cfg, tokio_util::sync::CancellationToken::new());
    let stats =
        tokio::time::timeout(Duration::from_secs(30), run).await.expect("player ends in time").expect("player runs");
    println!("{}", serde_json::to_string_pretty(&stats).unwrap_or_default());
    stats
}
