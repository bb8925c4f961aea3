//! A streamer that only does signalling over WebSocket: it registers, offers
//! a canned SDP to every player the server announces and counts the answers.
//! For tests of players and of the server that need no media.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proto::{Incoming, Message};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as Ws;

/// The offer it sends: one H.264 video section and a data channel.
pub const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:102 H264/90000\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sctp-port:5000\r\n";

/// A streamer that only does signalling. Counts the answers it got.
pub struct FakeStreamer {
    pub answers: watch::Receiver<usize>,
    cmd: tokio::sync::mpsc::UnboundedSender<Message>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeStreamer {
    pub async fn start(addr: SocketAddr, id: &str) -> FakeStreamer {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await.expect("streamer connects");
        let (mut tx, mut rx) = ws.split();
        let (ans_tx, answers) = watch::channel(0usize);
        let ans_tx = Arc::new(ans_tx);
        let id = id.to_string();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (cmd, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            tx.send(Ws::text(Message::EndpointId { id: Some(id), protocol_version: None }.to_json())).await.ok();
            loop {
                let frame = tokio::select! {
                    c = cmd_rx.recv() => {
                        let Some(m) = c else { return };
                        if tx.send(Ws::text(m.to_json())).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    f = rx.next() => match f {
                        Some(Ok(f)) => f,
                        _ => return,
                    },
                };
                let Ws::Text(t) = frame else { continue };
                let Ok(inc) = Incoming::parse(t.as_bytes()) else { continue };
                match inc.message {
                    Message::EndpointIdConfirm { .. } => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Message::PlayerConnected { player_id, .. } => {
                        let offer = Message::Offer {
                            sdp: OFFER.into(),
                            player_id: Some(player_id),
                            sfu: None,
                            multiplex: None,
                            scalability_mode: None,
                        };
                        if tx.send(Ws::text(offer.to_json())).await.is_err() {
                            return;
                        }
                    }
                    Message::Answer { .. } => ans_tx.send_modify(|n| *n += 1),
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), ready_rx)
            .await
            .expect("endpointIdConfirm in time")
            .expect("streamer task alive");
        FakeStreamer { answers, cmd, task }
    }

    /// Wait until at least `n` answers arrived.
    pub async fn wait_answers(&mut self, n: usize, within: Duration) {
        let ok = tokio::time::timeout(within, self.answers.wait_for(|&a| a >= n)).await.is_ok_and(|r| r.is_ok());
        assert!(ok, "{n} answers within {within:?}, got {}", *self.answers.borrow());
    }

    /// Send a message to the server as this streamer.
    pub fn send(&self, m: Message) {
        let _ = self.cmd.send(m);
    }

    /// Drop the socket (the server tells its players).
    pub fn kill(self) {
        self.task.abort();
    }
}
