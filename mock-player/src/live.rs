//! Live counters a player updates and the load scheduler samples.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Where a player is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Waiting = 0,
    Joining = 1,
    Streaming = 2,
    Failed = 3,
    Done = 4,
}

/// Counters shared between a player's tasks and the sampler.
#[derive(Debug, Default)]
pub struct Live {
    phase: AtomicU8,
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// The player streamed at least once.
    ever_streamed: AtomicU8,
    /// The streamer it is subscribed to (follows `streamerIdChanged`).
    streamer: std::sync::Mutex<Option<String>>,
    /// Our clock minus the streamer's, for frame latencies.
    pub clock_offset: crate::clock_offset::SharedClockOffset,
    /// Freezes so far (all video tracks), for the timeline.
    pub freezes: AtomicU64,
}

impl Live {
    pub fn set_phase(&self, p: Phase) {
        if p == Phase::Streaming {
            self.ever_streamed.store(1, Ordering::Relaxed);
        }
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Waiting,
            1 => Phase::Joining,
            2 => Phase::Streaming,
            3 => Phase::Failed,
            _ => Phase::Done,
        }
    }

    pub fn set_streamer(&self, id: &str) {
        if let Ok(mut s) = self.streamer.lock() {
            *s = Some(id.to_string());
        }
    }

    pub fn streamer(&self) -> Option<String> {
        self.streamer.lock().ok().and_then(|s| s.clone())
    }

    pub fn ever_streamed(&self) -> bool {
        self.ever_streamed.load(Ordering::Relaxed) != 0
    }

    pub fn add_media(&self, frames: u64, bytes: u64) {
        if frames > 0 {
            self.frames.fetch_add(frames, Ordering::Relaxed);
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}
