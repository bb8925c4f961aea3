//! Counters of one SFU and their serialisable snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use std::sync::Arc;

use proto::rtc::repair_traffic::{RepairCounters, RepairTraffic};
use serde::Serialize;

/// Live counters, updated by every task of the SFU.
#[derive(Debug, Default)]
pub struct SfuStats {
    pub signalling_connects: AtomicU64,
    pub upstream_connects: AtomicU64,
    /// Upstream connections renewed while idle (`SfuConfig::renew_upstream_after`).
    pub upstream_renewals: AtomicU64,
    pub streaming: AtomicBool,
    /// Players with a peer connection now.
    pub players: AtomicU64,
    pub players_total: AtomicU64,
    pub packets_received: AtomicU64,
    pub bytes_received: AtomicU64,
    /// RTP packets written to players (one per player per packet).
    pub packets_forwarded: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    /// Packets not queued for a player because its queue was full.
    pub packets_dropped: AtomicU64,
    /// PLIs sent to the streamer.
    pub keyframe_requests_sent: AtomicU64,
    /// Keyframe needs (new players, PLI/FIR from players, layer switches,
    /// overflows) before rate limiting.
    pub keyframe_requests_wanted: AtomicU64,
    /// PLI/FIR received from players.
    pub player_plis: AtomicU64,
    pub layer_switches: AtomicU64,
    /// Player tracks started from the keyframe cache (no keyframe request).
    pub cached_starts: AtomicU64,
    pub dc_to_streamer: AtomicU64,
    pub dc_to_player: AtomicU64,
    pub dc_dropped: AtomicU64,
    /// Both sides' repair traffic: NACKs and PLIs sent to the streamer,
    /// NACKs and PLIs/FIRs received from players, packets resent to them.
    pub repair: Arc<RepairCounters>,
}

/// What [`SfuStats`] held at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SfuSnapshot {
    pub signalling_connects: u64,
    pub upstream_connects: u64,
    pub upstream_renewals: u64,
    pub streaming: bool,
    pub players: u64,
    pub players_total: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub packets_forwarded: u64,
    pub bytes_forwarded: u64,
    pub packets_dropped: u64,
    pub keyframe_requests_sent: u64,
    pub keyframe_requests_wanted: u64,
    pub player_plis: u64,
    pub layer_switches: u64,
    pub cached_starts: u64,
    pub dc_to_streamer: u64,
    pub dc_to_player: u64,
    pub dc_dropped: u64,
    /// Both sides' repair traffic (see [`SfuStats::repair`]).
    pub repair: RepairTraffic,
}

impl SfuStats {
    pub fn snapshot(&self) -> SfuSnapshot {
        SfuSnapshot {
            signalling_connects: self.signalling_connects.load(Relaxed),
            upstream_connects: self.upstream_connects.load(Relaxed),
            upstream_renewals: self.upstream_renewals.load(Relaxed),
            streaming: self.streaming.load(Relaxed),
            players: self.players.load(Relaxed),
            players_total: self.players_total.load(Relaxed),
            packets_received: self.packets_received.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            packets_forwarded: self.packets_forwarded.load(Relaxed),
            bytes_forwarded: self.bytes_forwarded.load(Relaxed),
            packets_dropped: self.packets_dropped.load(Relaxed),
            keyframe_requests_sent: self.keyframe_requests_sent.load(Relaxed),
            keyframe_requests_wanted: self.keyframe_requests_wanted.load(Relaxed),
            player_plis: self.player_plis.load(Relaxed),
            layer_switches: self.layer_switches.load(Relaxed),
            cached_starts: self.cached_starts.load(Relaxed),
            dc_to_streamer: self.dc_to_streamer.load(Relaxed),
            dc_to_player: self.dc_to_player.load(Relaxed),
            dc_dropped: self.dc_dropped.load(Relaxed),
            repair: self.repair.snapshot(),
        }
    }
}

impl SfuSnapshot {
    /// One log line.
    pub fn summary(&self) -> String {
        format!(
            "streaming={} players={} (total {}) rtp in={} forwarded={} dropped={} keyframe requests={} (wanted {}) \
             layer switches={} cached starts={} dc to streamer={} to players={} | resent={} for {} NACKs from players \
             (asking {}); NACKs to streamer={}",
            self.streaming,
            self.players,
            self.players_total,
            self.packets_received,
            self.packets_forwarded,
            self.packets_dropped,
            self.keyframe_requests_sent,
            self.keyframe_requests_wanted,
            self.layer_switches,
            self.cached_starts,
            self.dc_to_streamer,
            self.dc_to_player,
            self.repair.rtp_resent,
            self.repair.nacks_received,
            self.repair.nacked_packets_received,
            self.repair.nacks_sent,
        )
    }
}
