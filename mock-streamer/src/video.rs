//! The video source of one streamer: a thread that renders the test pattern
//! once per layer, encodes it once per codec in use, packetizes it once (RTP)
//! and hands it to the [`Fanout`] of that codec and layer. Layers (full, and
//! with simulcast half and quarter resolution) of each codec are encoded only
//! while someone watches them: an encoder is made when its first player
//! arrives and dropped [`IDLE_ENCODER`] after its last one left (an AV1
//! encoder holds tens of megabytes).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::rtp_payload::Codec;
use rtc::rtp::packetizer::{new_packetizer, Packetizer};
use rtc::rtp::sequence::new_random_sequencer;
use tokio_util::sync::CancellationToken;

use crate::encoder::{payloader, VideoEncoder};
use crate::fanout::{Fanout, VideoFrame, VideoSources};
use crate::pattern::TestPattern;
use crate::stats::StreamerStats;

/// RTP payload size limit (bytes of one RTP packet).
pub const RTP_MTU: usize = 1200;

/// Milliseconds since 1970 (the clock `abs-capture-time` stamps).
pub fn now_ms() -> f64 {
    proto::capture_time::unix_ms_now()
}

/// Wall-clock timings of the most recent frame (ms since 1970), for the
/// data-channel `LatencyTest` reply.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameTimings {
    pub pre_capture_ms: f64,
    pub post_capture_ms: f64,
    pub pre_encode_ms: f64,
    pub post_encode_ms: f64,
}

/// Settings of the video source.
#[derive(Debug, Clone)]
pub struct VideoSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u32,
}

/// How long an encoder nobody watches is kept before it is dropped.
pub const IDLE_ENCODER: Duration = Duration::from_secs(10);

/// Start the source thread. It stops when `stop` is cancelled.
pub fn spawn_video_thread(
    settings: VideoSettings,
    video: Arc<VideoSources>,
    stats: Arc<StreamerStats>,
    timings: Arc<Mutex<FrameTimings>>,
    stop: CancellationToken,
    name: String,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("video-{name}")).spawn(move || run(settings, video, stats, timings, stop))
}

/// Encoder state of one layer of one codec.
struct Layer {
    codec: Codec,
    /// Index into the streamer's layers (and patterns): 0 full, 1 half, 2 quarter.
    index: usize,
    fanout: Arc<Fanout>,
    bitrate_bps: u32,
    /// While someone watches (or watched less than [`IDLE_ENCODER`] ago).
    encoder: Option<VideoEncoder>,
    /// Failed to make: not retried (the error is logged once).
    broken: bool,
    idle_since: Option<Instant>,
    packetizer: Box<dyn Packetizer>,
}

fn run(
    settings: VideoSettings,
    video: Arc<VideoSources>,
    stats: Arc<StreamerStats>,
    timings: Arc<Mutex<FrameTimings>>,
    stop: CancellationToken,
) {
    let fps = settings.fps.max(1);
    let layer_count = video.first().layers.len();
    let mut patterns: Vec<TestPattern> = (0..layer_count)
        .map(|i| TestPattern::new((settings.width >> i) as usize, (settings.height >> i) as usize))
        .collect();
    let mut layers: Vec<Layer> = video
        .by_codec
        .iter()
        .flat_map(|codec_layers| {
            codec_layers.layers.iter().enumerate().map(|(index, fanout)| Layer {
                codec: codec_layers.codec,
                index,
                fanout: fanout.clone(),
                bitrate_bps: (settings.bitrate_bps >> (2 * index)).max(100_000),
                encoder: None,
                broken: false,
                idle_since: None,
                packetizer: Box::new(new_packetizer(
                    Instant::now(),
                    RTP_MTU,
                    proto::rtc::codec_parameters(codec_layers.codec).map_or(0, |c| c.payload_type),
                    fanout.ssrc(),
                    payloader(codec_layers.codec),
                    Box::new(new_random_sequencer()),
                    90_000,
                )),
            })
        })
        .collect();
    let samples = 90_000 / fps;
    let period = Duration::from_secs_f64(1.0 / f64::from(fps));
    let mut next = Instant::now();
    let mut n: u64 = 0;
    while !stop.is_cancelled() {
        // Render each resolution once, for every codec that encodes it.
        let mut rendered: Vec<Option<(f64, f64)>> = vec![None; layer_count];
        for layer in layers.iter_mut() {
            if !prepare_encoder(layer, &settings, fps, &stats) {
                layer.packetizer.skip_samples(samples);
                continue;
            }
            let capture = *rendered[layer.index].get_or_insert_with(|| {
                let pre = now_ms();
                patterns[layer.index].render(n);
                (pre, now_ms())
            });
            let timings = (layer.index == 0).then_some(&timings);
            encode_layer(layer, &patterns[layer.index], n, samples, capture, &stats, timings);
        }
        n += 1;
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > period * 4 {
            // Far behind (CPU starved): drop the backlog instead of bursting.
            next = now;
        }
    }
}

/// Make the layer's encoder when someone watches it, drop it when nobody
/// has for [`IDLE_ENCODER`]. Whether the layer encodes this frame.
fn prepare_encoder(layer: &mut Layer, settings: &VideoSettings, fps: u32, stats: &StreamerStats) -> bool {
    if layer.fanout.is_empty() {
        let since = *layer.idle_since.get_or_insert_with(Instant::now);
        if layer.encoder.is_some() && since.elapsed() >= IDLE_ENCODER {
            layer.encoder = None;
            stats.encoder_stopped(layer.codec);
            tracing::debug!(codec = layer.codec.name(), layer = layer.index, "encoder dropped: nobody watches");
        }
        return false;
    }
    layer.idle_since = None;
    if layer.encoder.is_none() && !layer.broken {
        let (width, height) = (settings.width >> layer.index, settings.height >> layer.index);
        match VideoEncoder::new(layer.codec, width, height, layer.bitrate_bps, fps) {
            Ok(e) => {
                layer.encoder = Some(e);
                stats.encoder_started(layer.codec);
                // A new encoder's first frame is a keyframe anyway.
                layer.fanout.take_keyframe_request();
                tracing::debug!(codec = layer.codec.name(), layer = layer.index, width, height, "encoder started");
            }
            Err(e) => {
                layer.broken = true;
                tracing::error!(codec = layer.codec.name(), layer = layer.index, error = %e, "cannot create the encoder: no video in this codec");
            }
        }
    }
    layer.encoder.is_some()
}

fn encode_layer(
    layer: &mut Layer,
    pattern: &TestPattern,
    n: u64,
    samples: u32,
    (pre_capture_ms, post_capture_ms): (f64, f64),
    stats: &StreamerStats,
    timings: Option<&Arc<Mutex<FrameTimings>>>,
) {
    let Some(encoder) = layer.encoder.as_mut() else {
        layer.packetizer.skip_samples(samples);
        return;
    };
    let fanout = &layer.fanout;
    let force = fanout.take_keyframe_request();
    let started = Instant::now();
    match encoder.encode(pattern.frame(), force) {
        Ok(encoded) if !encoded.data.is_empty() => {
            let post_encode_ms = now_ms();
            stats.encode_micros.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
            stats.frames_encoded.fetch_add(1, Relaxed);
            stats.count_encoded_frame(layer.codec);
            stats.bytes_encoded.fetch_add(encoded.data.len() as u64, Relaxed);
            if encoded.keyframe {
                stats.keyframes_encoded.fetch_add(1, Relaxed);
                tracing::debug!(
                    frame = n,
                    codec = layer.codec.name(),
                    force,
                    bytes = encoded.data.len(),
                    micros = started.elapsed().as_micros() as u64,
                    players = fanout.len(),
                    "keyframe"
                );
            }
            if let Some(Ok(mut t)) = timings.map(|t| t.lock()) {
                *t = FrameTimings { pre_capture_ms, post_capture_ms, pre_encode_ms: post_capture_ms, post_encode_ms };
            }
            let bytes = encoded.data.len();
            let captured = std::time::Duration::from_secs_f64(pre_capture_ms.max(0.0) / 1000.0);
            let capture_time = Some(Bytes::copy_from_slice(&proto::capture_time::encode(captured)));
            match layer.packetizer.packetize(Instant::now(), &Bytes::from(encoded.data), samples) {
                Ok(packets) => fanout.publish(Arc::new(VideoFrame {
                    number: n,
                    keyframe: encoded.keyframe,
                    bytes,
                    packets,
                    capture_time,
                })),
                Err(e) => tracing::warn!(error = %e, "packetize failed"),
            }
        }
        other => {
            if let Err(e) = other {
                tracing::warn!(error = %e, "encode failed");
            }
            tracing::debug!(frame = n, force, "frame skipped by rate control");
            // Skipped by rate control or failed: a keyframe asked for is still due.
            if force {
                fanout.request_keyframe();
            }
            layer.packetizer.skip_samples(samples);
        }
    }
}
