//! The Pixel Streaming data-channel protocol, streamer side: what to send
//! when a channel opens and how to answer each player → streamer message.
//!
//! [`Protocol::handle`] is plain logic (bytes in, replies out) so it can be
//! tested without WebRTC; [`attach`] runs it on webrtc-rs data channels.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use proto::datachannel::{ToPlayer, ToStreamer};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelMessage, RTCDataChannelState};

use crate::events::StreamerEvent;
use crate::fanout::VideoSources;
use crate::stats::StreamerStats;
use crate::video::{now_ms, FrameTimings};

/// Largest `Filler` we put in a `DataChannelLatencyTest` reply (UTF-16 units).
pub const MAX_FILLER: usize = 16_000;

/// How one streamer speaks the data-channel protocol.
#[derive(Debug)]
pub struct Protocol {
    pub streamer: usize,
    pub stats: Arc<StreamerStats>,
    pub video: Arc<VideoSources>,
    pub timings: Arc<Mutex<FrameTimings>>,
    pub events: broadcast::Sender<StreamerEvent>,
    /// Log every decoded input message readably.
    pub print_input: bool,
    /// Echo each UIInteraction back as a Response.
    pub respond: bool,
    /// The JSON sent as `InitialSettings`.
    pub initial_settings: String,
}

/// A reply to send, now or after the next encoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Now(ToPlayer),
    /// A `LatencyTest` answer, built once a frame captured after
    /// `receipt_ms` has been encoded (real capture/encode timestamps).
    LatencyTest {
        receipt_ms: f64,
    },
}

/// `InitialSettings` JSON in the shape Epic's frontend reads.
pub fn initial_settings_json(fps: u32, bitrate_bps: u32) -> String {
    json!({
        "PixelStreaming": {"AllowPixelStreamingCommands": false, "DisableLatencyTest": false},
        "Encoder": {"TargetBitrate": bitrate_bps, "MaxBitrate": bitrate_bps, "MinQP": 0, "MaxQP": 51,
                    "RateControl": "CBR", "FillerData": 0, "MultiPass": "DISABLED"},
        "WebRTC": {"DegradationPref": "MAINTAIN_FRAMERATE", "FPS": fps, "MinBitrate": 100_000,
                   "MaxBitrate": bitrate_bps, "LowQP": 25, "HighQP": 37},
        "ConfigOptions": {}
    })
    .to_string()
}

/// The `LatencyTest` reply JSON (field names of the frontend's
/// `LatencyTestResults`; all times in ms since 1970).
pub fn latency_reply_json(receipt_ms: f64, t: &FrameTimings, transmission_ms: f64) -> String {
    json!({
        "ReceiptTimeMs": receipt_ms,
        "PreCaptureTimeMs": t.pre_capture_ms,
        "PostCaptureTimeMs": t.post_capture_ms,
        "PreEncodeTimeMs": t.pre_encode_ms,
        "PostEncodeTimeMs": t.post_encode_ms,
        "EncodeMs": t.post_encode_ms - t.pre_encode_ms,
        "CaptureToSendMs": transmission_ms - t.pre_capture_ms,
        "TransmissionTimeMs": transmission_ms,
    })
    .to_string()
}

/// The `DataChannelLatencyTest` reply to a request
/// `{"Seq":n,"FillResponseSize":n,"Filler":"…"}`.
pub fn datachannel_latency_reply(request: &str, received_ms: f64) -> String {
    let req: Value = serde_json::from_str(request).unwrap_or(Value::Null);
    let seq = req.get("Seq").cloned().unwrap_or(Value::from(0));
    let fill = req.get("FillResponseSize").and_then(Value::as_u64).unwrap_or(0).min(MAX_FILLER as u64) as usize;
    json!({
        "Seq": seq,
        "Filler": "A".repeat(fill),
        "ReceivedTimestamp": received_ms as u64,
        "SentTimestamp": now_ms() as u64,
    })
    .to_string()
}

impl Protocol {
    /// What to send as soon as the channel is open.
    pub fn on_open(&self) -> Vec<ToPlayer> {
        vec![ToPlayer::protocol()]
    }

    /// Decode, count and log one message from `player_id`; return the replies.
    pub fn handle(&self, player_id: &str, bytes: &[u8]) -> Vec<Reply> {
        let receipt_ms = now_ms();
        let msg = match ToStreamer::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(player = player_id, error = %e, "undecodable data-channel message");
                self.stats.count_input(player_id, "Invalid");
                return Vec::new();
            }
        };
        self.stats.count_input(player_id, msg.name());
        if self.print_input {
            tracing::info!(target: "input", "{player_id} {msg}");
        }
        let _ = self.events.send(StreamerEvent::Input {
            streamer: self.streamer,
            player_id: player_id.to_string(),
            name: msg.name(),
            message: msg.clone(),
        });
        match msg {
            ToStreamer::RequestInitialSettings => {
                vec![Reply::Now(ToPlayer::InitialSettings(self.initial_settings.clone()))]
            }
            ToStreamer::RequestQualityControl => {
                vec![Reply::Now(ToPlayer::QualityControlOwnership(true))]
            }
            ToStreamer::LatencyTest(_) => vec![Reply::LatencyTest { receipt_ms }],
            ToStreamer::TestEcho(s) => vec![Reply::Now(ToPlayer::TestEcho(s))],
            ToStreamer::DataChannelLatencyTest(s) => {
                vec![Reply::Now(ToPlayer::DataChannelLatencyTest(datachannel_latency_reply(&s, receipt_ms)))]
            }
            ToStreamer::IFrameRequest => {
                self.video.request_keyframe();
                Vec::new()
            }
            ToStreamer::UIInteraction(s) if self.respond => vec![Reply::Now(ToPlayer::Response(s))],
            _ => Vec::new(),
        }
    }

    /// Wait (up to 500 ms) for a frame captured after `receipt_ms`, then build
    /// the `LatencyTest` reply.
    pub async fn latency_reply(&self, receipt_ms: f64) -> ToPlayer {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        let timings = loop {
            let t = self.timings.lock().map(|t| *t).unwrap_or_default();
            if t.pre_capture_ms >= receipt_ms || tokio::time::Instant::now() >= deadline {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        ToPlayer::LatencyTest(latency_reply_json(receipt_ms, &timings, now_ms()))
    }
}

async fn send(dc: &dyn DataChannel, msg: &ToPlayer, protocol: &Protocol, player_id: &str) {
    match dc.send(BytesMut::from(&msg.encode()[..])).await {
        Ok(()) => {
            protocol
                .stats
                .player(player_id)
                .datachannel_messages_sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => tracing::debug!(player = player_id, error = %e, "data-channel send failed"),
    }
}

/// Run the protocol for `player_id` on `send_dc` (where we send) and
/// `recv_dc` (where the player sends; the same channel unless an SFU split
/// them): a task that reads both channels' events until the player's
/// channel closes or the peer connection does. The task, not a callback
/// inside the channel, holds the channels, so nothing keeps a closed
/// connection's channels alive.
pub fn attach(
    protocol: Arc<Protocol>,
    player_id: String,
    send_dc: Arc<dyn DataChannel>,
    recv_dc: Arc<dyn DataChannel>,
    departure: Departure,
) {
    tokio::spawn(run(protocol, player_id, send_dc, recv_dc, departure));
}

/// What ends a player's entry in the streamer's stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// A direct player: the end of its peer connection (`peer.rs`).
    WithConnection,
    /// A player behind an SFU: it has no connection of its own here, only its channels on the
    /// SFU's, so their end is its departure. (Missed before 4 December: every SFU player's
    /// entry stayed, ~0.2 KB per SFU join for the streamer's life.)
    WithChannels,
}

async fn run(
    protocol: Arc<Protocol>,
    player_id: String,
    send_dc: Arc<dyn DataChannel>,
    recv_dc: Arc<dyn DataChannel>,
    departure: Departure,
) {
    let split = !Arc::ptr_eq(&send_dc, &recv_dc);
    let mut opened = false;
    // A channel created once SCTP is up (the SFU's negotiated ones) is open
    // at once and announces no open event.
    if matches!(send_dc.ready_state().await, Ok(RTCDataChannelState::Open)) {
        on_open(&protocol, &player_id, send_dc.as_ref(), &mut opened).await;
    }
    let mut send_open = true;
    loop {
        let (event, from_send) = tokio::select! {
            e = recv_dc.poll() => (e, !split),
            e = send_dc.poll(), if split && send_open => (e, true),
        };
        match event {
            Some(DataChannelEvent::OnOpen) if from_send => {
                on_open(&protocol, &player_id, send_dc.as_ref(), &mut opened).await
            }
            Some(DataChannelEvent::OnMessage(m)) if !split || !from_send => {
                on_message(&protocol, &player_id, &send_dc, m).await
            }
            None | Some(DataChannelEvent::OnClose) if split && from_send => send_open = false,
            None | Some(DataChannelEvent::OnClose) => break,
            Some(_) => {}
        }
    }
    if split {
        // The player is gone: release the channel we sent on too.
        let _ = send_dc.close().await;
    }
    proto::rtc::drop_closed_channels(vec![send_dc, recv_dc]);
    if departure == Departure::WithChannels {
        protocol.stats.remove_player(&player_id);
    }
}

async fn on_open(protocol: &Protocol, player_id: &str, dc: &dyn DataChannel, opened: &mut bool) {
    if std::mem::replace(opened, true) {
        return;
    }
    for msg in protocol.on_open() {
        send(dc, &msg, protocol, player_id).await;
    }
    let _ = protocol
        .events
        .send(StreamerEvent::DataChannelOpen { streamer: protocol.streamer, player_id: player_id.to_string() });
}

async fn on_message(protocol: &Arc<Protocol>, player_id: &str, dc: &Arc<dyn DataChannel>, m: RTCDataChannelMessage) {
    if m.is_string {
        tracing::warn!(player = %player_id, "text frame on the data channel ignored");
        return;
    }
    for reply in protocol.handle(player_id, &m.data) {
        match reply {
            Reply::Now(msg) => send(dc.as_ref(), &msg, protocol, player_id).await,
            Reply::LatencyTest { receipt_ms } => {
                let (protocol, player_id, dc) = (protocol.clone(), player_id.to_string(), dc.clone());
                tokio::spawn(async move {
                    let msg = protocol.latency_reply(receipt_ms).await;
                    send(dc.as_ref(), &msg, &protocol, &player_id).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(respond: bool) -> Protocol {
        Protocol {
            streamer: 0,
            stats: Arc::default(),
            video: Arc::default(),
            timings: Arc::default(),
            events: broadcast::channel(16).0,
            print_input: false,
            respond,
            initial_settings: initial_settings_json(30, 1_000_000),
        }
    }

    #[test]
    fn answers_the_handshake_and_counts() {
        let p = protocol(true);
        assert_eq!(p.on_open(), vec![ToPlayer::protocol()]);
        let r = p.handle("P", &ToStreamer::RequestInitialSettings.encode());
        assert!(matches!(&r[..], [Reply::Now(ToPlayer::InitialSettings(s))] if s.contains("\"FPS\":30")));
        let r = p.handle("P", &ToStreamer::RequestQualityControl.encode());
        assert_eq!(r, vec![Reply::Now(ToPlayer::QualityControlOwnership(true))]);
        let r = p.handle("P", &ToStreamer::UIInteraction("x".into()).encode());
        assert_eq!(r, vec![Reply::Now(ToPlayer::Response("x".into()))]);
        assert!(p.handle("P", &[0]).is_empty());
        assert!(p.video.first().full().take_keyframe_request());
        assert!(p.handle("P", &[250]).is_empty());
        let counts = p.stats.input_counts();
        assert_eq!(counts.get("UIInteraction"), Some(&1));
        assert_eq!(counts.get("Invalid"), Some(&1));
        assert!(protocol(false).handle("P", &ToStreamer::UIInteraction("x".into()).encode()).is_empty());
    }

    #[test]
    fn datachannel_latency_reply_has_the_fields() {
        let v: Value =
            serde_json::from_str(&datachannel_latency_reply(r#"{"Seq":7,"FillResponseSize":3,"Filler":""}"#, 1000.0))
                .unwrap();
        assert_eq!(v["Seq"], 7);
        assert_eq!(v["Filler"], "AAA");
        assert_eq!(v["ReceivedTimestamp"], 1000);
        assert!(v["SentTimestamp"].as_u64().unwrap() > 1000);
    }
}
