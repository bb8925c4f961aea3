//! The Pixel Streaming data-channel protocol, player side.
//!
//! Waits for the streamer's `Protocol` (255), answers with
//! `RequestInitialSettings` and `RequestQualityControl` (as the browser
//! frontend does), then sends input at the configured rate and latency tests
//! once a second, and counts everything that comes back.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use proto::datachannel::{ToPlayer, ToStreamer};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelState};

/// A data channel as webrtc 0.21 hands it out.
type Channel = Arc<dyn DataChannel>;

/// One channel of a player's data-channel endpoint.
#[derive(Clone)]
pub struct DcChannel {
    pub channel: Channel,
    /// The SCTP stream id it was pre-negotiated on (through an SFU); `None`
    /// for a channel the streamer announced in band. (0.21's `id()` is a
    /// handle, not the stream id.)
    pub negotiated_id: Option<u16>,
}

impl DcChannel {
    /// A channel the streamer announced in band.
    pub fn in_band(channel: Channel) -> Self {
        DcChannel { channel, negotiated_id: None }
    }

    /// A channel pre-negotiated on stream `id`.
    pub fn negotiated(channel: Channel, id: u16) -> Self {
        DcChannel { channel, negotiated_id: Some(id) }
    }

    /// Its label, with `(negotiated <id>)` for a pre-negotiated one.
    async fn describe(&self) -> String {
        let label = self.channel.label().await.unwrap_or_default();
        match self.negotiated_id {
            Some(id) => format!("{label} (negotiated {id})"),
            None => label,
        }
    }
}

/// What one player's data channel did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DcStats {
    /// The channel opened.
    pub opened: bool,
    /// Labels of the channels used (receive channel first), with
    /// `(negotiated id)` for pre-negotiated ones (through an SFU).
    pub channels: Vec<String>,
    /// The streamer's Protocol message arrived.
    pub protocol_received: bool,
    pub initial_settings_received: bool,
    pub quality_control_owner: Option<bool>,
    /// Messages sent (all kinds).
    pub sent: u64,
    /// Input events sent (mouse, keys, UI interactions).
    pub input_sent: u64,
    pub send_errors: u64,
    /// Messages received, by name.
    pub received: BTreeMap<String, u64>,
    pub decode_errors: u64,
    /// Data-channel round trips (`DataChannelLatencyTest` → its echo), ms.
    pub rtt_ms: Vec<f64>,
    /// `LatencyTest` → its `LatencyTest` reply, ms. Includes the streamer's
    /// own processing (Unreal answers with encoder timings), so it is kept
    /// apart from the pure data-channel round trip.
    pub latency_test_ms: Vec<f64>,
    /// The streamer's clock against ours, from the `LatencyTest` replies.
    #[serde(skip)]
    pub clock: crate::clock_offset::OffsetEstimate,
}

/// What the player asked the data channel to do.
#[derive(Debug, Clone, Copy)]
pub struct DcBehaviour {
    pub input_rate: f64,
    pub latency_test: bool,
}

#[derive(Default)]
struct Pending {
    /// Sent at (monotonic, and ms since 1970).
    latency: VecDeque<(Instant, f64)>,
    dc_latency: BTreeMap<u64, Instant>,
}

/// One player's data-channel endpoint (one channel, or a send/recv pair
/// through an SFU).
#[derive(Clone)]
pub struct DcSession {
    stats: Arc<Mutex<DcStats>>,
    pending: Arc<Mutex<Pending>>,
    behaviour: DcBehaviour,
    cancel: CancellationToken,
    /// Told the clock offset as `LatencyTest` replies estimate it.
    live: Option<Arc<crate::live::Live>>,
}

impl DcSession {
    pub fn new(behaviour: DcBehaviour, cancel: CancellationToken) -> Self {
        DcSession {
            stats: Arc::new(Mutex::new(DcStats::default())),
            pending: Arc::new(Mutex::new(Pending::default())),
            behaviour,
            cancel,
            live: None,
        }
    }

    /// The same, telling `live` the streamer's clock offset.
    pub fn with_live(mut self, live: Arc<crate::live::Live>) -> Self {
        self.live = Some(live);
        self
    }

    pub fn stats(&self) -> DcStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Read `recv` and answer on `send` (one channel both ways, or a
    /// receive/send pair through an SFU); `opened` fires when `recv` opens.
    ///
    /// Reading runs on tasks that end with the session's cancellation (or the
    /// channel's end); the channels are held by those tasks only, never by
    /// anything the connection owns, so no reference cycle keeps them, and
    /// their SCTP association, alive.
    pub fn attach(&self, recv: DcChannel, send: DcChannel, opened: Option<oneshot::Sender<()>>) {
        tokio::spawn(self.clone().read_channel(recv, send, opened));
    }

    /// Describe the channels, then read `recv` until it closes or the session
    /// ends, answering on `send`.
    async fn read_channel(self, recv: DcChannel, send: DcChannel, mut opened: Option<oneshot::Sender<()>>) {
        let separate_send = !Arc::ptr_eq(&recv.channel, &send.channel);
        let recv_name = recv.describe().await;
        let send_name = if separate_send { Some(send.describe().await) } else { None };
        let (recv, send) = (recv.channel, send.channel);
        if let Ok(mut st) = self.stats.lock() {
            st.channels.push(recv_name);
            st.channels.extend(send_name);
        }
        if separate_send {
            // Nothing is read from the send channel, but its events are
            // taken so they never wait in the connection for a reader.
            tokio::spawn(drain(send.clone(), self.cancel.clone()));
        }
        // A channel the streamer opened may be open when it is announced.
        if matches!(recv.ready_state().await, Ok(RTCDataChannelState::Open)) {
            self.on_open(&mut opened);
        }
        loop {
            let event = tokio::select! {
                _ = self.cancel.cancelled() => return,
                e = recv.poll() => e,
            };
            match event {
                Some(DataChannelEvent::OnOpen) => self.on_open(&mut opened),
                Some(DataChannelEvent::OnMessage(msg)) => self.on_message(&send, &msg.data).await,
                Some(DataChannelEvent::OnClose) | None => return,
                Some(_) => {}
            }
        }
    }

    fn on_open(&self, opened: &mut Option<oneshot::Sender<()>>) {
        if let Ok(mut s) = self.stats.lock() {
            s.opened = true;
        }
        if let Some(tx) = opened.take() {
            let _ = tx.send(());
        }
    }

    async fn on_message(&self, send: &Channel, data: &[u8]) {
        let now = Instant::now();
        let msg = match ToPlayer::decode(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable data-channel message");
                if let Ok(mut s) = self.stats.lock() {
                    s.decode_errors += 1;
                }
                return;
            }
        };
        let mut first_protocol = false;
        let mut rtt = None;
        let mut latency = None;
        if let Ok(mut s) = self.stats.lock() {
            s.opened = true;
            *s.received.entry(msg.name().to_string()).or_default() += 1;
            match &msg {
                ToPlayer::Protocol(_) => {
                    first_protocol = !s.protocol_received;
                    s.protocol_received = true;
                }
                ToPlayer::InitialSettings(_) => s.initial_settings_received = true,
                ToPlayer::QualityControlOwnership(b) => s.quality_control_owner = Some(*b),
                _ => {}
            }
        }
        match &msg {
            ToPlayer::LatencyTest(json) => {
                let sent = self.pending.lock().ok().and_then(|mut p| p.latency.pop_front());
                if let Some((at, t1)) = sent {
                    let elapsed = now.duration_since(at);
                    latency = Some(elapsed);
                    self.add_clock_sample(json, t1, t1 + elapsed.as_secs_f64() * 1000.0);
                }
            }
            ToPlayer::DataChannelLatencyTest(json) => {
                let seq = serde_json::from_str::<serde_json::Value>(json)
                    .ok()
                    .and_then(|v| v.get("Seq").and_then(serde_json::Value::as_u64));
                if let Ok(mut p) = self.pending.lock() {
                    let sent = match seq {
                        Some(seq) => p.dc_latency.remove(&seq),
                        None => p.dc_latency.pop_first().map(|(_, t)| t),
                    };
                    rtt = sent.map(|t| now.duration_since(t));
                }
            }
            _ => {}
        }
        if rtt.is_some() || latency.is_some() {
            if let Ok(mut s) = self.stats.lock() {
                if let Some(rtt) = rtt {
                    s.rtt_ms.push(rtt.as_secs_f64() * 1000.0);
                }
                if let Some(l) = latency {
                    s.latency_test_ms.push(l.as_secs_f64() * 1000.0);
                }
            }
        }
        if first_protocol {
            self.send(send, &ToStreamer::RequestInitialSettings).await;
            self.send(send, &ToStreamer::RequestQualityControl).await;
            if self.behaviour.input_rate > 0.0 {
                tokio::spawn(self.clone().input_loop(send.clone()));
            }
            if self.behaviour.latency_test {
                tokio::spawn(self.clone().latency_loop(send.clone()));
            }
        }
    }

    /// One `LatencyTest` exchange for the clock offset (t1, t4: ours).
    fn add_clock_sample(&self, reply: &str, t1: f64, t4: f64) {
        let v: serde_json::Value = serde_json::from_str(reply).unwrap_or_default();
        let field = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        let (Some(t2), Some(t3)) = (field("ReceiptTimeMs"), field("TransmissionTimeMs")) else { return };
        let estimate = self.stats.lock().ok().map(|mut s| {
            s.clock.add(t1, t2, t3, t4);
            s.clock
        });
        if let (Some(e), Some(live)) = (estimate, &self.live) {
            if e.samples > 0 {
                live.clock_offset.set(e.offset_ms);
            }
        }
    }

    async fn send(&self, ch: &Channel, msg: &ToStreamer) -> bool {
        let ok = ch.send(BytesMut::from(&msg.encode()[..])).await.is_ok();
        if let Ok(mut s) = self.stats.lock() {
            if ok {
                s.sent += 1;
            } else {
                s.send_errors += 1;
            }
        }
        ok
    }

    async fn input_loop(self, ch: Channel) {
        let period = Duration::from_secs_f64(1.0 / self.behaviour.input_rate.max(0.001));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let msg = input_event(n);
            n += 1;
            if self.send(&ch, &msg).await {
                if let Ok(mut s) = self.stats.lock() {
                    s.input_sent += 1;
                }
            }
        }
    }

    async fn latency_loop(self, ch: Channel) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut seq: u64 = 0;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
            if let Ok(mut p) = self.pending.lock() {
                // Keep the queues bounded if the streamer never answers.
                if p.latency.len() > 32 {
                    p.latency.pop_front();
                }
                p.latency.push_back((Instant::now(), proto::capture_time::unix_ms_now()));
                while p.dc_latency.len() > 32 {
                    p.dc_latency.pop_first();
                }
                p.dc_latency.insert(seq, Instant::now());
            }
            let lt = ToStreamer::LatencyTest(format!("{{\"StartTime\":{ms}}}"));
            let dlt =
                ToStreamer::DataChannelLatencyTest(format!("{{\"Seq\":{seq},\"FillResponseSize\":0,\"Filler\":\"\"}}"));
            seq += 1;
            if !self.send(&ch, &lt).await || !self.send(&ch, &dlt).await {
                return;
            }
        }
    }
}

/// Take a channel's events until it ends or `cancel` fires.
async fn drain(channel: Channel, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            e = channel.poll() => if matches!(e, None | Some(DataChannelEvent::OnClose)) { return },
        }
    }
}

/// The n-th synthetic input event: a cycle of mouse moves, a click, a key
/// press and a UI interaction.
pub fn input_event(n: u64) -> ToStreamer {
    let x = ((n * 997) % 65_536) as u16;
    let y = ((n * 613) % 65_536) as u16;
    match n % 8 {
        0..=2 => ToStreamer::MouseMove { x, y, delta_x: 3, delta_y: -2 },
        3 => ToStreamer::MouseDown { button: 0, x, y },
        4 => ToStreamer::MouseUp { button: 0, x, y },
        5 => ToStreamer::KeyDown { key_code: 65, is_repeat: false },
        6 => ToStreamer::KeyUp { key_code: 65 },
        _ => ToStreamer::UIInteraction(format!("{{\"mockPlayer\":{n}}}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_events_round_trip() {
        for n in 0..16 {
            let m = input_event(n);
            assert_eq!(ToStreamer::decode(&m.encode()).ok(), Some(m));
        }
    }
}
