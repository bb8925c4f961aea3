//! One player's join, as mock-player does it: WebSocket, `config`,
//! `listStreamers` until the streamer is listed, `subscribe`, answer the
//! `offer`, trickle ICE (remote candidates applied once ours are gathered),
//! receive for the given time, then leave (close the peer connection and
//! the socket). Returns the phase times and the received totals.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use proto::{Incoming, Message};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::peer::{PeerEvent, PeerSession};
use crate::settings::PlayerRtcOptions;

/// Milliseconds from the start of the join to each phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JoinTimes {
    pub ws_connect_ms: Option<f64>,
    pub offer_ms: Option<f64>,
    pub ice_connected_ms: Option<f64>,
    pub dtls_connected_ms: Option<f64>,
    pub first_rtp_ms: Option<f64>,
    pub first_keyframe_ms: Option<f64>,
    pub data_channel_open_ms: Option<f64>,
}

/// What one player measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlayerResult {
    pub index: usize,
    pub join: JoinTimes,
    pub video_frames: u64,
    pub keyframes: u64,
    pub packets: u64,
    pub lost: u64,
    pub jitter_ms: f64,
    pub error: Option<String>,
}

/// One player's settings.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    pub url: String,
    /// Leave this long after the join started (mock-player's `--duration`).
    pub duration: Duration,
    pub join_timeout: Duration,
    pub rtc: PlayerRtcOptions,
}

fn ms_since(t0: Instant, t: Instant) -> Option<f64> {
    Some(t.duration_since(t0).as_secs_f64() * 1000.0)
}

/// Join, receive, leave.
pub async fn run_player(index: usize, cfg: &PlayerConfig) -> PlayerResult {
    let mut r = PlayerResult { index, ..Default::default() };
    if let Err(e) = join_and_receive(cfg, &mut r).await {
        r.error = Some(e.to_string());
    }
    r
}

async fn join_and_receive(cfg: &PlayerConfig, r: &mut PlayerResult) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let join_deadline = tokio::time::Instant::from_std(t0 + cfg.join_timeout);
    // The same WebSocket buffers as mock-player (4 KiB read buffer, no write buffer).
    let ws_config =
        WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0).max_message_size(Some(4 << 20));
    let (ws, _) = tokio::time::timeout_at(
        join_deadline,
        tokio_tungstenite::connect_async_with_config(cfg.url.as_str(), Some(ws_config), true),
    )
    .await??;
    r.join.ws_connect_ms = ms_since(t0, Instant::now());
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(text) = out_rx.recv().await {
            if sink.send(WsMessage::text(text)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let send = move |m: &Message| drop(out_tx.send(m.to_json()));

    let (peer_tx, mut peer_rx) = mpsc::unbounded_channel::<PeerEvent>();
    let mut peer: Option<PeerSession> = None;
    let mut early = Vec::new();
    let mut gathered = false;
    let mut subscribed = false;
    let mut relist = tokio::time::interval(Duration::from_secs(1));
    relist.tick().await;
    let stay_until = tokio::time::Instant::from_std(t0 + cfg.duration);
    let mut phase = "waiting for the streamer";

    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(join_deadline), if r.join.first_rtp_ms.is_none() => {
                break Err(anyhow::anyhow!("join timeout ({phase})"));
            }
            _ = tokio::time::sleep_until(stay_until) => break Ok(()),
            _ = relist.tick(), if !subscribed => send(&Message::ListStreamers),
            Some(ev) = peer_rx.recv() => match ev {
                PeerEvent::LocalCandidate(c) => send(&Message::IceCandidate { candidate: c, player_id: None }),
                PeerEvent::GatheringDone => {
                    gathered = true;
                    if let Some(p) = &peer {
                        for c in early.drain(..) {
                            p.add_candidate(c).await?;
                        }
                    }
                }
                PeerEvent::IceConnected(t) => { r.join.ice_connected_ms.get_or_insert(ms_since(t0, t).unwrap_or_default()); phase = "DTLS"; }
                PeerEvent::Connected(t) => { r.join.dtls_connected_ms.get_or_insert(ms_since(t0, t).unwrap_or_default()); phase = "waiting for RTP"; }
                PeerEvent::FirstRtp(t) => {
                    r.join.first_rtp_ms.get_or_insert(ms_since(t0, t).unwrap_or_default());
                }
                PeerEvent::FirstKeyframe(t) => { r.join.first_keyframe_ms.get_or_insert(ms_since(t0, t).unwrap_or_default()); }
                PeerEvent::DataChannelOpen(t) => { r.join.data_channel_open_ms.get_or_insert(ms_since(t0, t).unwrap_or_default()); }
                PeerEvent::Failed(why) => break Err(anyhow::anyhow!(why)),
            },
            frame = stream.next() => {
                let bytes = match frame {
                    None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => break Err(anyhow::anyhow!("signalling closed ({phase})")),
                    Some(Ok(WsMessage::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(WsMessage::Binary(b))) => b.to_vec(),
                    Some(Ok(_)) => continue,
                };
                let Ok(incoming) = Incoming::parse(&bytes) else { continue };
                match incoming.message {
                    Message::Ping { time } => send(&Message::Pong { time: time.unwrap_or(0) }),
                    Message::Config { .. } => send(&Message::ListStreamers),
                    Message::StreamerList { ids } if !subscribed => {
                        if let [only] = ids.as_slice() {
                            subscribed = true;
                            phase = "waiting for the offer";
                            send(&Message::Subscribe { streamer_id: only.clone() });
                        }
                    }
                    Message::Offer { sdp, .. } => {
                        r.join.offer_ms.get_or_insert(ms_since(t0, Instant::now()).unwrap_or_default());
                        phase = "ICE";
                        if peer.is_none() {
                            peer = Some(PeerSession::new(cfg.rtc, peer_tx.clone()).await?);
                        }
                        if let Some(p) = &peer {
                            let answer = p.answer(&sdp).await?;
                            send(&Message::Answer { sdp: answer, player_id: None, min_bitrate_bps: None, max_bitrate_bps: None });
                        }
                    }
                    Message::IceCandidate { candidate, .. } => match &peer {
                        Some(p) if gathered => p.add_candidate(candidate).await?,
                        _ => early.push(candidate),
                    },
                    Message::StreamerDisconnected => break Err(anyhow::anyhow!("streamer disconnected")),
                    _ => {}
                }
            }
        }
    };

    if let Some(p) = peer {
        let t = p.video_totals();
        r.video_frames = t.frames;
        r.keyframes = t.keyframes;
        r.packets = t.packets;
        r.lost = t.lost;
        r.jitter_ms = t.jitter_ms;
        p.close().await;
    }
    drop(send);
    let _ = writer.await;
    outcome
}
