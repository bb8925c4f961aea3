//! mock-streamer: a headless stand-in for an Unreal Engine Pixel Streaming
//! application.
//!
//! It connects to a signalling server's streamer port, registers one or more
//! streamer ids and serves every subscribing player (or SFU) a WebRTC peer
//! connection with real H.264 video (a live test pattern, encoded once per
//! streamer and fanned out as RTP) and the Pixel Streaming data channel.
//!
//! Modules, one concept each: [`config`], [`session`] (signalling),
//! [`peer`] (one peer connection), [`pattern`], [`encoder`], [`video`]
//! (source thread), [`fanout`], [`datachannel`] (the data-channel protocol), [`stats`],
//! [`events`], [`canned`] (signalling-only offers).
//!
//! ```no_run
//! # async fn demo() -> Result<(), mock_streamer::StreamerError> {
//! let mut config = mock_streamer::StreamerConfig::default();
//! config.url = "ws://127.0.0.1:8888".into();
//! let handle = mock_streamer::spawn(config)?;
//! // … handle.events(), handle.stats(), handle.input_counts() …
//! let final_stats = handle.stop().await;
//! # Ok(()) }
//! ```

pub mod audio;
pub mod av1;
pub mod canned;
pub mod config;
pub mod datachannel;
pub mod encoder;
pub mod events;
pub mod fanout;
pub mod opus;
pub mod pattern;
pub mod peer;
pub mod session;
pub mod stats;
pub mod video;
pub mod vp9_payloader;
pub mod vpx;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::rtc::{Interceptors, PeerSettings};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{numbered_ids, StreamerConfig};
pub use events::StreamerEvent;
pub use stats::{StatsSnapshot, StreamerSnapshot};

use crate::datachannel::{initial_settings_json, Protocol};
use crate::fanout::{Fanout, VideoSources};
use crate::peer::PeerShared;
use crate::session::Session;
use crate::stats::StreamerStats;

/// Errors starting a streamer.
#[derive(Debug, thiserror::Error)]
pub enum StreamerError {
    #[error(transparent)]
    Rtc(#[from] proto::rtc::RtcError),
    #[error("cannot start the video thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("--audio: {0}")]
    Audio(#[from] opus::OpusError),
    #[error("no streamer ids configured")]
    NoIds,
}

/// A running set of streamers. Dropping it does not stop them: call
/// [`StreamerHandle::stop`].
pub struct StreamerHandle {
    stats: Vec<Arc<StreamerStats>>,
    events: broadcast::Sender<StreamerEvent>,
    first_events: Mutex<Option<broadcast::Receiver<StreamerEvent>>>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Start the streamers of `config` on the current Tokio runtime.
pub fn spawn(config: StreamerConfig) -> Result<StreamerHandle, StreamerError> {
    if config.streamer_ids.is_empty() {
        return Err(StreamerError::NoIds);
    }
    let config = Arc::new(config);
    let cancel = CancellationToken::new();
    let (events, first_rx) = broadcast::channel(4096);
    // Every peer connection is built the same way: a sender's interceptors,
    // the ICE policy, and as the controlling ICE agent a short check interval.
    // The process's certificate is made now, so that a failure stops the start.
    proto::rtc::process_crypto()?;
    let settings =
        PeerSettings { video_codecs: config.video_codecs, ..PeerSettings::offerer(config.ice, Interceptors::Full) };
    let initial_settings = initial_settings_json(config.video.fps, config.video.bitrate_bps);
    let mut handle = StreamerHandle {
        stats: Vec::new(),
        events: events.clone(),
        first_events: Mutex::new(Some(first_rx)),
        cancel: cancel.clone(),
        tasks: Vec::new(),
        threads: Vec::new(),
    };
    for (index, id) in config.streamer_ids.iter().enumerate() {
        let stats = Arc::new(StreamerStats::default());
        let video = Arc::new(VideoSources::new(config.video_codecs, config.simulcast));
        let timings = Arc::default();
        if !config.signalling_only {
            let thread = video::spawn_video_thread(
                config.video.clone(),
                video.clone(),
                stats.clone(),
                Arc::clone(&timings),
                cancel.clone(),
                id.clone(),
            );
            match thread {
                Ok(t) => handle.threads.push(t),
                Err(e) => {
                    cancel.cancel();
                    return Err(e.into());
                }
            }
        }
        let audio = if config.audio && !config.signalling_only {
            let encoder =
                opus::OpusEncoder::new(audio::SAMPLE_RATE as i32, audio::CHANNELS).inspect_err(|_| cancel.cancel())?;
            let fanout = Arc::new(Fanout::default());
            let thread = audio::spawn_audio_thread(encoder, fanout.clone(), stats.clone(), cancel.clone(), id.clone());
            match thread {
                Ok(t) => handle.threads.push(t),
                Err(e) => {
                    cancel.cancel();
                    return Err(e.into());
                }
            }
            Some(fanout)
        } else {
            None
        };
        let protocol = Arc::new(Protocol {
            streamer: index,
            stats: stats.clone(),
            video: video.clone(),
            timings,
            events: events.clone(),
            print_input: config.print_input,
            respond: config.respond,
            initial_settings: initial_settings.clone(),
        });
        let shared = Arc::new(PeerShared {
            streamer: index,
            settings,
            video,
            audio,
            stats: stats.clone(),
            protocol,
            events: events.clone(),
        });
        let session = Session { index, id: id.clone(), config: config.clone(), shared, cancel: cancel.clone() };
        handle.tasks.push(tokio::spawn(session.run()));
        handle.stats.push(stats);
    }
    if let Some(every) = config.stats_interval.filter(|d| !d.is_zero()) {
        let stats = handle.stats.clone();
        let cancel = cancel.clone();
        handle.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        let snapshot = StatsSnapshot { streamers: stats.iter().map(|s| s.snapshot()).collect() };
                        tracing::info!(target: "stats", "\n{}\n{}", snapshot.summary().trim_end(), proto::rtc::memory_line());
                    }
                }
            }
        }));
    }
    Ok(handle)
}

/// Run until `shutdown` is cancelled, then stop and return the final stats.
pub async fn run(config: StreamerConfig, shutdown: CancellationToken) -> Result<StatsSnapshot, StreamerError> {
    let handle = spawn(config)?;
    shutdown.cancelled().await;
    Ok(handle.stop().await)
}

impl StreamerHandle {
    /// Events from every streamer. The first call also gets everything that
    /// happened since [`spawn`]; later calls see only later events.
    pub fn events(&self) -> broadcast::Receiver<StreamerEvent> {
        let first = self.first_events.lock().ok().and_then(|mut f| f.take());
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// Current statistics of every streamer.
    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot { streamers: self.stats.iter().map(|s| s.snapshot()).collect() }
    }

    /// Player → streamer data-channel messages by type, over all streamers.
    pub fn input_counts(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for s in &self.stats {
            for (k, v) in s.input_counts() {
                *total.entry(k).or_insert(0) += v;
            }
        }
        total
    }

    /// The ids the server confirmed, per streamer (None until registered).
    pub fn committed_ids(&self) -> Vec<Option<String>> {
        self.stats.iter().map(|s| s.committed_id()).collect()
    }

    /// Stop everything (close peer connections, leave the server, stop
    /// the video threads) and return the final statistics.
    pub async fn stop(mut self) -> StatsSnapshot {
        self.cancel.cancel();
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        self.stats()
    }
}

impl Drop for StreamerHandle {
    fn drop(&mut self) {
        // Never leave threads encoding behind a dropped handle.
        self.cancel.cancel();
    }
}
