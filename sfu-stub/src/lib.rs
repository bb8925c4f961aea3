//! sfu-stub: a forwarding SFU for Pixel Streaming.
//!
//! It connects to the signalling server's SFU port, registers as a streamer
//! (players subscribe to it) and subscribes to a streamer as a player. It
//! receives the streamer's media once and forwards the RTP, undecoded, to
//! every player — with simulcast, the layer each player asked for — and
//! relays each player's data channel to the streamer.
//!
//! Modules, one concept each: [`config`], [`session`] (signalling),
//! [`upstream`] (the streamer's peer connection), [`downstream`] (a player's
//! peer connection), [`forwarder`] (fan-out of [`packet`]s), [`gop_cache`] (a fast start for
//! new players), [`layer`] (layer selection and
//! RTP rewriting), [`keyframe`] (rate-limited keyframe requests), [`codec`]
//! (keyframe detection), [`datachannel_relay`] (data channels between players and the streamer), [`rtc`] (WebRTC
//! settings), [`stats`], [`events`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), sfu_stub::SfuError> {
//! let config = sfu_stub::SfuConfig { url: "ws://127.0.0.1:8889".into(), ..Default::default() };
//! let sfu = sfu_stub::spawn(config)?;
//! // … sfu.stats(), sfu.events() …
//! let final_stats = sfu.stop().await;
//! # Ok(()) }
//! ```

pub use proto::rtp_payload as codec;
pub mod config;
pub mod datachannel_relay;
pub mod downstream;
pub mod error;
pub mod events;
pub mod forwarder;
pub mod gop_cache;
pub mod keyframe;
pub mod layer;
pub mod packet;
pub mod rtc;
pub mod session;
pub mod stats;
pub mod upstream;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::SfuConfig;
pub use error::SfuError;
pub use events::SfuEvent;
pub use stats::{SfuSnapshot, SfuStats};

/// A running SFU. Dropping it stops it; [`SfuHandle::stop`] waits for that.
pub struct SfuHandle {
    stats: Arc<SfuStats>,
    events: broadcast::Sender<SfuEvent>,
    first_events: Mutex<Option<broadcast::Receiver<SfuEvent>>>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Start an SFU on the current Tokio runtime.
pub fn spawn(config: SfuConfig) -> Result<SfuHandle, SfuError> {
    // The process's certificate now, so that a failure stops the start.
    proto::rtc::process_crypto()?;
    let upstream_settings = rtc::upstream_settings(config.ice);
    let downstream_settings = rtc::downstream_settings(config.ice);
    let stats = Arc::new(SfuStats::default());
    let (events, first_rx) = broadcast::channel(4096);
    let cancel = CancellationToken::new();
    let shared = session::Shared {
        config: Arc::new(config),
        upstream_settings,
        downstream_settings,
        stats: stats.clone(),
        events: events.clone(),
    };
    let task = tokio::spawn(session::run(shared, cancel.clone()));
    Ok(SfuHandle { stats, events, first_events: Mutex::new(Some(first_rx)), cancel, task: Some(task) })
}

/// Run until `shutdown` is cancelled; return the final statistics.
pub async fn run(config: SfuConfig, shutdown: CancellationToken) -> Result<SfuSnapshot, SfuError> {
    let handle = spawn(config)?;
    shutdown.cancelled().await;
    Ok(handle.stop().await)
}

impl SfuHandle {
    /// Current statistics.
    pub fn stats(&self) -> SfuSnapshot {
        self.stats.snapshot()
    }

    /// The live counters (for periodic logging).
    pub fn stats_source(&self) -> Arc<SfuStats> {
        self.stats.clone()
    }

    /// Events. The first call also gets everything since [`spawn`].
    pub fn events(&self) -> broadcast::Receiver<SfuEvent> {
        let first = self.first_events.lock().ok().and_then(|mut f| f.take());
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// Stop (`stopStreaming`, close every peer connection, leave the server)
    /// and return the final statistics.
    pub async fn stop(mut self) -> SfuSnapshot {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.stats()
    }
}

impl Drop for SfuHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
