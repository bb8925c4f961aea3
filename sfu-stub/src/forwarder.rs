//! Fan-out of one upstream track (all its simulcast layers) to every player.
//!
//! The upstream reader calls [`Forwarder::publish`] once per RTP packet.
//! Each player has its own writer task fed by a bounded queue (`try_send`:
//! a slow player never holds up the reader or the others; on overflow its
//! packets are dropped and it waits for the next keyframe). The writer runs
//! the player's [`LayerSelector`], rewrites the header and writes to the
//! player's `TrackLocalStaticRTP`, so the players are written in parallel.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

use crate::codec::Codec;
use crate::keyframe::KeyframeRequester;
use crate::layer::{LayerSelector, Verdict};
use crate::stats::SfuStats;

/// While waiting for a keyframe, ask again this often.
const REASK: Duration = Duration::from_millis(1000);

/// "No layer yet" in [`PlayerControl::current`].
const NO_LAYER: usize = usize::MAX;

/// One upstream packet as the writers see it.
#[derive(Debug)]
pub struct Upstream {
    pub layer: usize,
    pub keyframe: bool,
    pub packet: Packet,
}

/// What a player asked for, shared by its tracks' writers.
#[derive(Debug)]
pub struct PlayerControl {
    /// Wanted spatial layer (`layerPreference`), clamped per track.
    pub target: AtomicUsize,
}

impl PlayerControl {
    pub fn new(target: usize) -> Arc<Self> {
        Arc::new(PlayerControl { target: AtomicUsize::new(target) })
    }
}

struct Subscriber {
    key: u64,
    tx: mpsc::Sender<Arc<Upstream>>,
    control: Arc<PlayerControl>,
    /// The layer the writer forwards now (NO_LAYER before the first keyframe).
    current: Arc<AtomicUsize>,
    resync: Arc<AtomicBool>,
}

/// How a forwarded track is described to players.
#[derive(Debug, Clone)]
pub struct TrackInfo {
    pub kind: RTPCodecType,
    pub capability: RTCRtpCodecCapability,
    pub track_id: String,
    pub stream_id: String,
}

/// The players receiving one upstream track.
pub struct Forwarder {
    pub info: TrackInfo,
    pub codec: Codec,
    layers: AtomicUsize,
    subscribers: Mutex<Vec<Subscriber>>,
    next_key: AtomicU64,
    keyframes: Arc<KeyframeRequester>,
    stats: Arc<SfuStats>,
    queue: usize,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("track", &self.info.track_id).field("layers", &self.layer_count()).finish()
    }
}

/// Removes its player from the forwarder when dropped (its writer then ends).
pub struct Subscription {
    forwarder: Arc<Forwarder>,
    key: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.forwarder.lock().retain(|s| s.key != self.key);
    }
}

impl Forwarder {
    pub fn new(info: TrackInfo, keyframes: Arc<KeyframeRequester>, stats: Arc<SfuStats>, queue: usize) -> Self {
        Forwarder {
            codec: Codec::from_mime(&info.capability.mime_type),
            info,
            layers: AtomicUsize::new(1),
            subscribers: Mutex::new(Vec::new()),
            next_key: AtomicU64::new(0),
            keyframes,
            stats,
            queue: queue.max(16),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Layers known so far (highest layer index seen + 1).
    pub fn layer_count(&self) -> usize {
        self.layers.load(Relaxed)
    }

    /// A layer (simulcast encoding) of this track exists.
    pub fn add_layer(&self, layer: usize) {
        self.layers.fetch_max(layer + 1, Relaxed);
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().len()
    }

    /// Ask the streamer for a keyframe of `layer` (rate limited).
    pub fn request_keyframe(&self, layer: usize) {
        if self.codec.needs_keyframe() {
            self.keyframes.request(layer);
        }
    }

    /// Start forwarding to `track`: spawns the player's writer task.
    pub fn subscribe(self: &Arc<Self>, track: Arc<TrackLocalStaticRTP>, control: Arc<PlayerControl>) -> Subscription {
        let key = self.next_key.fetch_add(1, Relaxed);
        let (tx, rx) = mpsc::channel(self.queue);
        let current = Arc::new(AtomicUsize::new(NO_LAYER));
        let resync = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            forwarder: self.clone(),
            track,
            control: control.clone(),
            current: current.clone(),
            resync: resync.clone(),
        };
        tokio::spawn(writer.run(rx));
        self.lock().push(Subscriber { key, tx, control, current, resync });
        Subscription { forwarder: self.clone(), key }
    }

    /// Queue one upstream packet for every player that may want it. Never blocks.
    pub fn publish(&self, layer: usize, packet: Packet) {
        let keyframe = self.codec.starts_keyframe(&packet.payload);
        let item = Arc::new(Upstream { layer, keyframe, packet });
        let layers = self.layer_count();
        let mut resync_layers = Vec::new();
        for s in self.lock().iter() {
            let target = s.control.target.load(Relaxed).min(layers.saturating_sub(1));
            let current = s.current.load(Relaxed);
            if layer != target && layer != current {
                continue;
            }
            match s.tx.try_send(item.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.stats.packets_dropped.fetch_add(1, Relaxed);
                    if !s.resync.swap(true, Relaxed) {
                        resync_layers.push(target);
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for layer in resync_layers {
            self.request_keyframe(layer);
        }
    }
}

struct Writer {
    forwarder: Arc<Forwarder>,
    track: Arc<TrackLocalStaticRTP>,
    control: Arc<PlayerControl>,
    current: Arc<AtomicUsize>,
    resync: Arc<AtomicBool>,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Arc<Upstream>>) {
        let f = &self.forwarder;
        let clamp = |t: usize| t.min(f.layer_count().saturating_sub(1));
        let mut selector = LayerSelector::new(
            clamp(self.control.target.load(Relaxed)),
            f.codec.needs_keyframe(),
            f.info.capability.clock_rate,
        );
        let mut last_ask: Option<Instant> = None;
        while let Some(item) = rx.recv().await {
            let now = Instant::now();
            let target = clamp(self.control.target.load(Relaxed));
            if target != selector.target() {
                selector.set_target(target);
                last_ask = None;
            }
            if self.resync.swap(false, Relaxed) {
                selector.resync();
            }
            let p = &item.packet;
            let verdict =
                selector.on_packet(now, item.layer, p.header.sequence_number, p.header.timestamp, item.keyframe);
            let waiting = selector.current() != Some(selector.target());
            if waiting && f.codec.needs_keyframe() && last_ask.is_none_or(|t| now.duration_since(t) >= REASK) {
                last_ask = Some(now);
                f.request_keyframe(selector.target());
            }
            match verdict {
                Verdict::Forward { sequence_number, timestamp, switched } => {
                    if switched {
                        f.stats.layer_switches.fetch_add(1, Relaxed);
                    }
                    self.current.store(item.layer, Relaxed);
                    let mut out = p.clone();
                    out.header.sequence_number = sequence_number;
                    out.header.timestamp = timestamp;
                    // Upstream extension ids (mid, rid, …) mean nothing to the player.
                    out.header.extension = false;
                    out.header.extension_profile = 0;
                    out.header.extensions.clear();
                    match self.track.write_rtp(&out).await {
                        Ok(n) => {
                            f.stats.packets_forwarded.fetch_add(1, Relaxed);
                            f.stats.bytes_forwarded.fetch_add(n as u64, Relaxed);
                        }
                        Err(e) => tracing::debug!(error = %e, "write_rtp failed"),
                    }
                }
                Verdict::Drop => {}
                Verdict::NeedKeyframe { .. } => {
                    if selector.current().is_none() {
                        self.current.store(NO_LAYER, Relaxed);
                    }
                }
            }
        }
    }
}
