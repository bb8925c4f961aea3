//! Test harness: a streamer under test behind testkit's fake signalling
//! server (one streamer, N webrtc-rs receivers). Everything waits on events
//! with timeouts.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use mock_streamer::{StreamerConfig, StreamerEvent, StreamerHandle};
use proto::Message;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

pub use testkit::receiver::{serve, TestPlayer, TIMEOUT};

/// Await `f` or fail the test after [`TIMEOUT`] with `what`.
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    testkit::within(TIMEOUT, what, f).await
}

/// Wait for the first event matching `pred`.
pub async fn wait_event(
    rx: &mut broadcast::Receiver<StreamerEvent>,
    what: &str,
    pred: impl FnMut(&StreamerEvent) -> bool,
) -> StreamerEvent {
    testkit::next_event(rx, TIMEOUT, what, pred).await
}

/// The fake server plus its players.
pub struct Harness {
    pub handle: StreamerHandle,
    pub events: broadcast::Receiver<StreamerEvent>,
    pub players: Vec<TestPlayer>,
    /// Every candidate string the streamer trickled.
    pub streamer_candidates: Arc<Mutex<Vec<String>>>,
    /// Every offer SDP the streamer sent.
    pub offers: Arc<Mutex<Vec<String>>>,
    pub committed_id: String,
    /// Send a message to the streamer as the server.
    pub to_streamer: mpsc::UnboundedSender<Message>,
    relay: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub async fn stop(self) -> mock_streamer::StatsSnapshot {
        for p in &self.players {
            let _ = p.pc.close().await;
        }
        let stats = self.handle.stop().await;
        self.relay.abort();
        stats
    }
}

/// Start a streamer with `config` (its url is replaced) against a fake
/// server that connects `n_players` players to it.
pub async fn start(config: StreamerConfig, n_players: usize) -> Harness {
    let players = (0..n_players).map(|i| (format!("Player{i}"), false)).collect();
    start_with(config, players).await
}

/// Like [`start`], with explicit `(player id, sfu)` pairs.
pub async fn start_with(mut config: StreamerConfig, player_specs: Vec<(String, bool)>) -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    config.url = format!("ws://{addr}");
    let requested_id = config.streamer_ids[0].clone();
    let handle = mock_streamer::spawn(config).expect("spawn streamer");
    let events = handle.events();
    let server = serve(listener, &requested_id, player_specs).await;
    Harness {
        handle,
        events,
        players: server.players,
        streamer_candidates: server.streamer_candidates,
        offers: server.offers,
        committed_id: server.committed_id,
        to_streamer: server.to_streamer,
        relay: server.relay,
    }
}

/// NAL unit types in an Annex-B buffer.
pub fn nal_types(annex_b: &[u8]) -> Vec<u8> {
    mock_streamer::encoder::nal_types(annex_b)
}
