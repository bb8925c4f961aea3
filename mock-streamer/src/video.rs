//! The video source of one streamer: a thread that renders the test pattern,
//! encodes it once, packetizes it once (H.264, RTP) and hands it to the
//! [`Fanout`] of its layer. Layers (full, and with simulcast half and
//! quarter resolution) are encoded only while someone watches them.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::{new_packetizer, Packetizer};
use rtc::rtp::sequence::new_random_sequencer;
use tokio_util::sync::CancellationToken;

use crate::encoder::H264Encoder;
use crate::fanout::{Fanout, VideoFrame, VideoLayers};
use crate::pattern::TestPattern;
use crate::stats::StreamerStats;

/// RTP payload size limit (bytes of one RTP packet).
pub const RTP_MTU: usize = 1200;

/// Milliseconds since 1970.
pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
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

/// Start the source thread. It stops when `stop` is cancelled.
pub fn spawn_video_thread(
    settings: VideoSettings,
    video: Arc<VideoLayers>,
    stats: Arc<StreamerStats>,
    timings: Arc<Mutex<FrameTimings>>,
    stop: CancellationToken,
    name: String,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("video-{name}")).spawn(move || run(settings, video, stats, timings, stop))
}

/// Encoder state of one layer.
struct Layer {
    fanout: Arc<Fanout>,
    encoder: Option<H264Encoder>,
    pattern: TestPattern,
    packetizer: Box<dyn Packetizer>,
}

fn run(
    settings: VideoSettings,
    video: Arc<VideoLayers>,
    stats: Arc<StreamerStats>,
    timings: Arc<Mutex<FrameTimings>>,
    stop: CancellationToken,
) {
    let fps = settings.fps.max(1);
    let mut layers: Vec<Layer> = video
        .layers
        .iter()
        .enumerate()
        .map(|(i, fanout)| {
            let shift = i as u32;
            let encoder = match H264Encoder::new((settings.bitrate_bps >> (2 * shift)).max(100_000), fps) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::error!(error = %e, layer = i, "cannot create the H.264 encoder: no video");
                    None
                }
            };
            Layer {
                fanout: fanout.clone(),
                encoder,
                pattern: TestPattern::new((settings.width >> shift) as usize, (settings.height >> shift) as usize),
                packetizer: Box::new(new_packetizer(
                    Instant::now(),
                    RTP_MTU,
                    proto::rtc::H264_PAYLOAD_TYPE,
                    fanout.ssrc(),
                    Box::new(H264Payloader::default()),
                    Box::new(new_random_sequencer()),
                    90_000,
                )),
            }
        })
        .collect();
    let samples = 90_000 / fps;
    let period = Duration::from_secs_f64(1.0 / f64::from(fps));
    let mut next = Instant::now();
    let mut n: u64 = 0;
    while !stop.is_cancelled() {
        for (i, layer) in layers.iter_mut().enumerate() {
            let timings = (i == 0).then_some(&timings);
            encode_layer(layer, n, samples, &stats, timings);
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

fn encode_layer(
    layer: &mut Layer,
    n: u64,
    samples: u32,
    stats: &StreamerStats,
    timings: Option<&Arc<Mutex<FrameTimings>>>,
) {
    let (Some(encoder), false) = (layer.encoder.as_mut(), layer.fanout.is_empty()) else {
        layer.packetizer.skip_samples(samples);
        return;
    };
    let fanout = &layer.fanout;
    let pre_capture_ms = now_ms();
    let picture = layer.pattern.render(n);
    let post_capture_ms = now_ms();
    let force = fanout.take_keyframe_request();
    let started = Instant::now();
    match encoder.encode(picture, force) {
        Ok(encoded) if !encoded.data.is_empty() => {
            let post_encode_ms = now_ms();
            stats.encode_micros.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
            stats.frames_encoded.fetch_add(1, Relaxed);
            stats.bytes_encoded.fetch_add(encoded.data.len() as u64, Relaxed);
            if encoded.keyframe {
                stats.keyframes_encoded.fetch_add(1, Relaxed);
                tracing::debug!(
                    frame = n,
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
            match layer.packetizer.packetize(Instant::now(), &Bytes::from(encoded.data), samples) {
                Ok(packets) => {
                    fanout.publish(Arc::new(VideoFrame { number: n, keyframe: encoded.keyframe, bytes, packets }))
                }
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
