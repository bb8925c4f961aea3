//! The audio source of one streamer (`--audio`): a 440 Hz stereo tone,
//! Opus-encoded every 20 ms once, packetized once and fanned out like video
//! (every audio frame counts as a "keyframe": players can start anywhere).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp::codec::opus::OpusPayloader;
use rtc::rtp::packetizer::{new_packetizer, Packetizer};
use rtc::rtp::sequence::new_random_sequencer;
use tokio_util::sync::CancellationToken;

use crate::fanout::{Fanout, VideoFrame};
use crate::opus::OpusEncoder;
use crate::stats::StreamerStats;
use crate::video::RTP_MTU;

pub const SAMPLE_RATE: u32 = 48_000;
pub const CHANNELS: usize = 2;
/// 20 ms at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
pub const TONE_HZ: f64 = 440.0;

/// Start the audio thread with a ready encoder. It stops when `stop` fires.
pub fn spawn_audio_thread(
    encoder: OpusEncoder,
    fanout: Arc<Fanout>,
    stats: Arc<StreamerStats>,
    stop: CancellationToken,
    name: String,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("audio-{name}")).spawn(move || run(encoder, fanout, stats, stop))
}

fn run(mut encoder: OpusEncoder, fanout: Arc<Fanout>, stats: Arc<StreamerStats>, stop: CancellationToken) {
    let mut packetizer = new_packetizer(
        Instant::now(),
        RTP_MTU,
        proto::rtc::OPUS_PAYLOAD_TYPE,
        fanout.ssrc(),
        Box::new(OpusPayloader),
        Box::new(new_random_sequencer()),
        SAMPLE_RATE,
    );
    let period = Duration::from_millis(20);
    let step = 2.0 * std::f64::consts::PI * TONE_HZ / f64::from(SAMPLE_RATE);
    let mut phase = 0.0f64;
    let mut pcm = vec![0i16; FRAME_SAMPLES * CHANNELS];
    let mut next = Instant::now();
    let mut n = 0u64;
    while !stop.is_cancelled() {
        for frame in pcm.chunks_exact_mut(CHANNELS) {
            let v = (phase.sin() * 6000.0) as i16;
            frame.fill(v);
            phase = (phase + step) % (2.0 * std::f64::consts::PI);
        }
        if fanout.is_empty() {
            packetizer.skip_samples(FRAME_SAMPLES as u32);
        } else {
            match encoder.encode(&pcm) {
                Ok(packet) => {
                    stats.audio_frames_encoded.fetch_add(1, Relaxed);
                    let bytes = packet.len();
                    match packetizer.packetize(Instant::now(), &Bytes::from(packet), FRAME_SAMPLES as u32) {
                        Ok(packets) => fanout.publish(Arc::new(VideoFrame {
                            number: n,
                            keyframe: true,
                            bytes,
                            packets,
                            capture_time: None,
                        })),
                        Err(e) => tracing::warn!(error = %e, "opus packetize failed"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "opus encode failed");
                    packetizer.skip_samples(FRAME_SAMPLES as u32);
                }
            }
        }
        n += 1;
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > period * 4 {
            next = now;
        }
    }
}
