//! Fan-out of one upstream track (all its simulcast layers) to every player.
//!
//! The upstream reader calls [`Forwarder::publish`] once per RTP packet.
//! Each player has its own writer task fed by a bounded queue (`try_send`:
//! a slow player never holds up the reader or the others; on overflow its
//! packets are dropped and it waits for the next keyframe). The writer runs
//! the player's [`LayerSelector`], rewrites the header (sequence number,
//! timestamp, and the SSRC and payload type of the player's stream: webrtc
//! 0.21 sends what it is given) and writes to the player's
//! `TrackLocalStaticRTP`, so the players are written in parallel.
//!
//! New players start from the layer's [`GopCache`] (see there).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use rtc::shared::marshal::MarshalSize;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;

use crate::codec::Codec;
use crate::gop_cache::{compressed_timestamps, GopCache};
use crate::keyframe::KeyframeRequester;
use crate::layer::{LayerSelector, Verdict};
use crate::packet::LayerPacket;
use crate::stats::SfuStats;

/// While waiting for a keyframe, ask again this often.
const REASK: Duration = Duration::from_millis(1000);

/// "No layer yet" in [`PlayerControl::current`].
const NO_LAYER: usize = usize::MAX;

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
    tx: mpsc::Sender<Arc<LayerPacket>>,
    control: Arc<PlayerControl>,
    /// The layer the writer forwards now (NO_LAYER before the first keyframe).
    current: Arc<AtomicUsize>,
    resync: Arc<AtomicBool>,
}

/// How a forwarded track is described to players.
#[derive(Debug, Clone)]
pub struct TrackInfo {
    pub kind: RtpCodecKind,
    pub codec: RTCRtpCodec,
    pub track_id: String,
    pub stream_id: String,
    /// The upstream's `abs-capture-time` extension id (from the streamer's offer).
    pub capture_time_id: Option<u8>,
}

/// A player's stream of one forwarded track: the SSRC its track declares
/// and the payload type negotiated for the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayerStream {
    pub ssrc: u32,
    pub payload_type: u8,
    /// The player's `abs-capture-time` extension id, when it accepted it.
    pub capture_time_id: Option<u8>,
}

/// What the forwarder's lock guards: the players and the per-layer caches
/// (one lock, so that a new player's cached start and its first live packet
/// are contiguous).
#[derive(Default)]
struct State {
    subscribers: Vec<Subscriber>,
    caches: Vec<GopCache>,
}

/// The players receiving one upstream track.
pub struct Forwarder {
    pub info: TrackInfo,
    pub codec: Codec,
    layers: AtomicUsize,
    state: Mutex<State>,
    next_key: AtomicU64,
    keyframes: Arc<KeyframeRequester>,
    stats: Arc<SfuStats>,
    queue: usize,
    /// Keyframe cache age limit (`SfuConfig::keyframe_cache`); zero: off.
    cache_max_age: Duration,
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
        self.forwarder.lock().subscribers.retain(|s| s.key != self.key);
    }
}

impl Forwarder {
    /// `cache_max_age`: how old a cached keyframe may be to start a new
    /// player with it (see the module docs); `Duration::ZERO`: no cache.
    pub fn new(
        info: TrackInfo,
        keyframes: Arc<KeyframeRequester>,
        stats: Arc<SfuStats>,
        queue: usize,
        cache_max_age: Duration,
    ) -> Self {
        Forwarder {
            codec: Codec::from_mime(&info.codec.mime_type),
            info,
            layers: AtomicUsize::new(1),
            state: Mutex::new(State::default()),
            next_key: AtomicU64::new(0),
            keyframes,
            stats,
            queue: queue.max(16),
            cache_max_age,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn caching(&self) -> bool {
        self.codec.needs_keyframe() && !self.cache_max_age.is_zero()
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
        self.lock().subscribers.len()
    }

    /// Ask the streamer for a keyframe of `layer` (rate limited).
    pub fn request_keyframe(&self, layer: usize) {
        if self.codec.needs_keyframe() {
            self.keyframes.request(layer);
        }
    }

    /// Start forwarding to `track` as `stream`: spawns the player's writer
    /// task, which starts with the cached keyframe of the player's layer if
    /// there is a usable one (module docs), else at the next live keyframe.
    pub fn subscribe(
        self: &Arc<Self>,
        track: Arc<TrackLocalStaticRTP>,
        stream: PlayerStream,
        control: Arc<PlayerControl>,
    ) -> Subscription {
        let key = self.next_key.fetch_add(1, Relaxed);
        let (tx, rx) = mpsc::channel(self.queue);
        let current = Arc::new(AtomicUsize::new(NO_LAYER));
        let resync = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            forwarder: self.clone(),
            track,
            stream,
            control: control.clone(),
            current: current.clone(),
            resync: resync.clone(),
        };
        let mut state = self.lock();
        let start = if self.caching() {
            let layer = control.target.load(Relaxed).min(self.layer_count().saturating_sub(1));
            state.caches.get(layer).and_then(|c| c.usable(Instant::now(), self.cache_max_age)).map(|p| (layer, p))
        } else {
            None
        };
        tracing::debug!(track = %self.info.track_id, cached = start.as_ref().map(|(_, p)| p.len()), "subscribe");
        if let Some((layer, _)) = &start {
            self.stats.cached_starts.fetch_add(1, Relaxed);
            // Published from now on goes to this player: it is on `layer`.
            current.store(*layer, Relaxed);
        }
        let target = control.target.load(Relaxed).min(self.layer_count().saturating_sub(1));
        state.subscribers.push(Subscriber { key, tx, control, current, resync });
        drop(state);
        if start.is_none() {
            // Ask now rather than at the writer's first packet (up to a frame later).
            self.request_keyframe(target);
        }
        tokio::spawn(writer.run(start.map(|(_, p)| p).unwrap_or_default(), rx));
        Subscription { forwarder: self.clone(), key }
    }

    /// A player on `control`'s layer will [`Forwarder::subscribe`] within
    /// `within` (its connection is up, its receivers nearly so): if the
    /// cache will not have a usable keyframe for it by then, ask for one now,
    /// so that it is cached (or on its way) when the player starts instead
    /// of being asked for only then. A burst of joins shares the request
    /// (rate limiter) and the cached keyframe.
    pub fn prepare(&self, control: &PlayerControl, within: Duration) {
        if !self.caching() {
            return;
        }
        let layer = control.target.load(Relaxed).min(self.layer_count().saturating_sub(1));
        let usable = {
            let state = self.lock();
            state.caches.get(layer).is_some_and(|c| c.fresh(Instant::now() + within, self.cache_max_age))
        };
        if !usable {
            self.request_keyframe(layer);
        }
    }

    /// Queue one upstream packet for every player that may want it. Never blocks.
    pub fn publish(&self, layer: usize, packet: Packet) {
        let keyframe = self.codec.starts_keyframe(&packet.payload);
        let item = Arc::new(LayerPacket { layer, keyframe, packet });
        let layers = self.layer_count();
        let mut resync_layers = Vec::new();
        let mut state = self.lock();
        if self.caching() {
            if state.caches.len() <= layer {
                state.caches.resize_with(layer + 1, GopCache::default);
            }
            if state.caches[layer].push(Instant::now(), &item, self.cache_max_age) {
                self.keyframes.keyframe_started(layer);
            }
        } else if keyframe && self.codec.needs_keyframe() {
            self.keyframes.keyframe_started(layer);
        }
        for s in state.subscribers.iter() {
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
        drop(state);
        for layer in resync_layers {
            self.request_keyframe(layer);
        }
    }
}

struct Writer {
    forwarder: Arc<Forwarder>,
    track: Arc<TrackLocalStaticRTP>,
    stream: PlayerStream,
    control: Arc<PlayerControl>,
    current: Arc<AtomicUsize>,
    resync: Arc<AtomicBool>,
}

impl Writer {
    /// `cached`: the group of pictures to start with (may be empty), then
    /// the live packets from `rx`.
    async fn run(self, cached: Vec<Arc<LayerPacket>>, mut rx: mpsc::Receiver<Arc<LayerPacket>>) {
        let f = &self.forwarder;
        let clamp = |t: usize| t.min(f.layer_count().saturating_sub(1));
        let mut selector = LayerSelector::new(
            clamp(self.control.target.load(Relaxed)),
            f.codec.needs_keyframe(),
            f.info.codec.clock_rate,
        );
        let mut last_ask: Option<Instant> = None;
        let timestamps = compressed_timestamps(&cached);
        let mut cached = cached.into_iter().zip(timestamps);
        loop {
            let (item, timestamp) = match cached.next() {
                Some(c) => c,
                None => match rx.recv().await {
                    Some(item) => {
                        let ts = item.packet.header.timestamp;
                        (item, ts)
                    }
                    None => break,
                },
            };
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
            let verdict = selector.on_packet(now, item.layer, p.header.sequence_number, timestamp, item.keyframe);
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
                    out.header.ssrc = self.stream.ssrc;
                    out.header.payload_type = self.stream.payload_type;
                    // Upstream extension ids (mid, rid, …) mean nothing to the
                    // player; the capture time is passed on under the player's id.
                    let capture_time = f.info.capture_time_id.and_then(|id| p.header.get_extension(id));
                    out.header.extension = false;
                    out.header.extension_profile = 0;
                    out.header.extensions.clear();
                    if let (Some(id), Some(value)) = (self.stream.capture_time_id, capture_time) {
                        if let Err(e) = out.header.set_extension(id, value) {
                            tracing::debug!(error = %e, "abs-capture-time not set");
                        }
                    }
                    let size = out.marshal_size() as u64;
                    match self.track.write_rtp(out).await {
                        Ok(()) => {
                            f.stats.packets_forwarded.fetch_add(1, Relaxed);
                            f.stats.bytes_forwarded.fetch_add(size, Relaxed);
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
