//! Fan-out of packetized video to every player.
//!
//! The encoder thread packetizes each frame once and [`Fanout::publish`]es it.
//! Each player has its own writer task fed by a small bounded queue
//! (`try_send`: a slow player never holds up the encoder or the others), which
//! writes the RTP packets to that player's `TrackLocalStaticRTP`. A player
//! starts at a keyframe, and after it has lost frames (full queue) it waits
//! for the next keyframe, asking for one.
//!
//! Every packet of a fan-out carries its SSRC ([`Fanout::ssrc`]); each
//! player's track is declared with that SSRC (webrtc 0.21 sends what it is
//! given and checks that the SSRC and payload type belong to the sender).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use proto::rtc::VideoCodecs;
use proto::rtp_payload::Codec;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::MarshalSize;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;

use crate::stats::PlayerStats;

/// Frames a player may have queued before frames are dropped for it.
pub const PLAYER_QUEUE_FRAMES: usize = 8;

/// One encoded, packetized video frame.
#[derive(Debug)]
pub struct VideoFrame {
    pub number: u64,
    pub keyframe: bool,
    /// Encoded size (Annex-B bytes).
    pub bytes: usize,
    pub packets: Vec<Packet>,
    /// The `abs-capture-time` value of the frame's capture (video only).
    pub capture_time: Option<Bytes>,
}

struct Subscriber {
    key: u64,
    tx: mpsc::Sender<Arc<VideoFrame>>,
    resync: Arc<AtomicBool>,
    stats: Arc<PlayerStats>,
}

/// RTP header extensions added to the packets sent to one player (webrtc
/// 0.21 adds none itself), by their negotiated ids.
#[derive(Debug, Clone, Default)]
pub struct PacketExtensions {
    /// The same on every packet: the mid and rid of a simulcast encoding.
    pub fixed: Vec<(u8, Bytes)>,
    /// `abs-capture-time`, each packet with its frame's capture time, when
    /// the player accepted it: players measure each frame's latency with it.
    pub capture_time: Option<u8>,
}

/// The set of players receiving one streamer's video (or audio).
pub struct Fanout {
    ssrc: u32,
    subscribers: Mutex<Vec<Subscriber>>,
    keyframe_wanted: AtomicBool,
    next_key: AtomicU64,
}

impl Default for Fanout {
    /// A fan-out with a random SSRC.
    fn default() -> Self {
        Fanout::with_ssrc(rand::random())
    }
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").field("ssrc", &self.ssrc).field("subscribers", &self.len()).finish()
    }
}

/// Removes its player from the fan-out when dropped.
pub struct Subscription {
    fanout: Arc<Fanout>,
    key: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.fanout.lock().retain(|s| s.key != self.key);
    }
}

impl Fanout {
    /// A fan-out whose packets carry `ssrc`.
    pub fn with_ssrc(ssrc: u32) -> Self {
        Fanout {
            ssrc,
            subscribers: Mutex::default(),
            keyframe_wanted: AtomicBool::new(false),
            next_key: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The SSRC of every packet published here.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ask the encoder for a keyframe (new player, PLI/FIR, IFrameRequest).
    pub fn request_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::Relaxed);
    }

    /// Whether a keyframe was asked for since the last call.
    pub fn take_keyframe_request(&self) -> bool {
        self.keyframe_wanted.swap(false, Ordering::Relaxed)
    }

    /// Start sending to `track`, each packet with `extensions` added; spawns
    /// the player's writer task on the current Tokio runtime and asks for a
    /// keyframe.
    pub fn subscribe(
        self: &Arc<Self>,
        track: Arc<TrackLocalStaticRTP>,
        extensions: PacketExtensions,
        stats: Arc<PlayerStats>,
    ) -> Subscription {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(PLAYER_QUEUE_FRAMES);
        let resync = Arc::new(AtomicBool::new(true));
        let writer = Writer { track, extensions, resync: resync.clone(), stats: stats.clone(), fanout: self.clone() };
        tokio::spawn(writer.run(rx));
        self.lock().push(Subscriber { key, tx, resync, stats });
        self.request_keyframe();
        Subscription { fanout: self.clone(), key }
    }

    /// Queue `frame` for every player. Never blocks.
    pub fn publish(&self, frame: Arc<VideoFrame>) {
        let mut want_key = false;
        self.lock().retain(|s| match s.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                s.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                s.resync.store(true, Ordering::Relaxed);
                want_key = true;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if want_key {
            self.request_keyframe();
        }
    }
}

/// One player's writer task.
struct Writer {
    track: Arc<TrackLocalStaticRTP>,
    extensions: PacketExtensions,
    resync: Arc<AtomicBool>,
    stats: Arc<PlayerStats>,
    fanout: Arc<Fanout>,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Arc<VideoFrame>>) {
        while let Some(frame) = rx.recv().await {
            if self.resync.load(Ordering::Relaxed) {
                if !frame.keyframe {
                    self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    self.fanout.request_keyframe();
                    continue;
                }
                self.resync.store(false, Ordering::Relaxed);
            }
            self.send(&frame).await;
        }
    }

    async fn send(&self, frame: &VideoFrame) {
        let stats = &self.stats;
        let mut bytes = 0;
        for packet in &frame.packets {
            let mut packet = packet.clone();
            let capture_time = self.extensions.capture_time.zip(frame.capture_time.clone());
            for (id, value) in self.extensions.fixed.iter().cloned().chain(capture_time) {
                if let Err(e) = packet.header.set_extension(id, value) {
                    tracing::debug!(error = %e, id, "RTP header extension not set");
                }
            }
            let size = packet.marshal_size() as u64;
            match self.track.write_rtp(packet).await {
                Ok(()) => bytes += size,
                Err(e) => tracing::debug!(error = %e, "write_rtp failed"),
            }
        }
        stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        stats.packets_sent.fetch_add(frame.packets.len() as u64, Ordering::Relaxed);
        stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        if frame.keyframe {
            stats.keyframes_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Simulcast rids, full, half and quarter resolution.
pub const SIMULCAST_RIDS: [&str; 3] = ["f", "h", "q"];

/// The fan-outs of one streamer's video in one codec: layer 0 at full
/// resolution, and with simulcast layers 1 and 2 at half and quarter
/// resolution. Each layer is encoded only while someone subscribes to it.
#[derive(Debug)]
pub struct VideoLayers {
    pub codec: Codec,
    pub layers: Vec<Arc<Fanout>>,
}

impl Default for VideoLayers {
    fn default() -> Self {
        VideoLayers::new(Codec::H264, false)
    }
}

impl VideoLayers {
    pub fn new(codec: Codec, simulcast: bool) -> Self {
        let n = if simulcast { SIMULCAST_RIDS.len() } else { 1 };
        VideoLayers { codec, layers: (0..n).map(|_| Arc::new(Fanout::default())).collect() }
    }

    /// The full-resolution layer (what every non-simulcast player gets).
    pub fn full(&self) -> &Arc<Fanout> {
        &self.layers[0]
    }

    pub fn simulcast(&self) -> bool {
        self.layers.len() > 1
    }

    /// Ask every layer for a keyframe.
    pub fn request_keyframe(&self) {
        for l in &self.layers {
            l.request_keyframe();
        }
    }
}

/// One streamer's video in every codec it offers, most preferred first.
/// Layer `i` has the same SSRC in every codec: a player's track is declared
/// with its SSRCs in the offer, before the player's answer picks the codec,
/// and a player receives one codec only.
#[derive(Debug)]
pub struct VideoSources {
    pub by_codec: Vec<Arc<VideoLayers>>,
}

impl Default for VideoSources {
    fn default() -> Self {
        VideoSources::new(VideoCodecs::new(&[Codec::H264]), false)
    }
}

impl VideoSources {
    pub fn new(codecs: VideoCodecs, simulcast: bool) -> Self {
        let n = if simulcast { SIMULCAST_RIDS.len() } else { 1 };
        let ssrcs: Vec<u32> = (0..n).map(|_| rand::random()).collect();
        let by_codec = codecs
            .iter()
            .map(|codec| {
                let layers = ssrcs.iter().map(|&ssrc| Arc::new(Fanout::with_ssrc(ssrc))).collect();
                Arc::new(VideoLayers { codec, layers })
            })
            .collect();
        VideoSources { by_codec }
    }

    /// The most preferred codec's layers (what a track is declared with).
    pub fn first(&self) -> &Arc<VideoLayers> {
        &self.by_codec[0]
    }

    /// The layers of `codec`, if offered.
    pub fn get(&self, codec: Codec) -> Option<&Arc<VideoLayers>> {
        self.by_codec.iter().find(|l| l.codec == codec)
    }

    pub fn simulcast(&self) -> bool {
        self.first().simulcast()
    }

    /// Ask every layer of every codec for a keyframe (only watched layers
    /// are encoded: the others ignore it).
    pub fn request_keyframe(&self) {
        for layers in &self.by_codec {
            layers.request_keyframe();
        }
    }
}
