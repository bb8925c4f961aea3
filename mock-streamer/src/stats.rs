//! Counters: per streamer (encoder, input messages by type) and per player
//! (frames, bytes, keyframes sent), plus serialisable snapshots.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use proto::rtc::repair_traffic::{RepairCounters, RepairTraffic};
use proto::rtp_payload::Codec;
use serde::Serialize;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the statistics down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters of one player connection.
#[derive(Debug, Default)]
pub struct PlayerStats {
    /// The video codec its answer picked (`H264`, `VP8`, `VP9`, `AV1`).
    codec: Mutex<String>,
    pub frames_sent: AtomicU64,
    pub keyframes_sent: AtomicU64,
    pub packets_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Frames not delivered because the player's queue was full or it was
    /// waiting for a keyframe.
    pub frames_dropped: AtomicU64,
    pub input_messages: AtomicU64,
    pub datachannel_messages_sent: AtomicU64,
}

/// What [`PlayerStats`] held at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlayerSnapshot {
    pub player_id: String,
    /// The video codec its answer picked; empty for the totals.
    pub codec: String,
    pub frames_sent: u64,
    pub keyframes_sent: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub frames_dropped: u64,
    pub input_messages: u64,
    pub datachannel_messages_sent: u64,
}

impl PlayerSnapshot {
    /// Add `other`'s counters to these (its id and codec are not kept).
    fn add(&mut self, other: &PlayerSnapshot) {
        self.frames_sent += other.frames_sent;
        self.keyframes_sent += other.keyframes_sent;
        self.packets_sent += other.packets_sent;
        self.bytes_sent += other.bytes_sent;
        self.frames_dropped += other.frames_dropped;
        self.input_messages += other.input_messages;
        self.datachannel_messages_sent += other.datachannel_messages_sent;
    }
}

impl PlayerStats {
    pub fn set_codec(&self, codec: Codec) {
        *lock(&self.codec) = codec.name().to_owned();
    }

    fn snapshot(&self, player_id: &str) -> PlayerSnapshot {
        PlayerSnapshot {
            player_id: player_id.to_string(),
            codec: lock(&self.codec).clone(),
            frames_sent: self.frames_sent.load(Relaxed),
            keyframes_sent: self.keyframes_sent.load(Relaxed),
            packets_sent: self.packets_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            input_messages: self.input_messages.load(Relaxed),
            datachannel_messages_sent: self.datachannel_messages_sent.load(Relaxed),
        }
    }
}

/// Counters of one streamer.
#[derive(Debug, Default)]
pub struct StreamerStats {
    committed_id: Mutex<Option<String>>,
    pub frames_encoded: AtomicU64,
    pub keyframes_encoded: AtomicU64,
    pub bytes_encoded: AtomicU64,
    pub encode_micros: AtomicU64,
    pub audio_frames_encoded: AtomicU64,
    pub players_connected_total: AtomicU64,
    pub signalling_connects: AtomicU64,
    players: Mutex<HashMap<String, Arc<PlayerStats>>>,
    /// The counters of every player that has left, summed, so totals never go down. A sum,
    /// not a list: a streamer serving for days would otherwise keep ~0.2 KB per join forever
    /// (it was a list: the churn bench's live heap grew ~0.2 MB per 1,000 joins).
    departed: Mutex<PlayerSnapshot>,
    input_counts: Mutex<BTreeMap<String, u64>>,
    encoders: Mutex<BTreeMap<&'static str, EncoderCounts>>,
    /// Every peer connection's repair traffic (see `proto::rtc::repair_traffic`).
    pub repair: Arc<RepairCounters>,
}

/// Encoders of one codec (one per simulcast layer in use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EncoderCounts {
    /// Encoders running now.
    pub running: u64,
    /// Encoders started so far.
    pub started: u64,
    pub frames_encoded: u64,
}

/// What [`StreamerStats`] held at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamerSnapshot {
    pub streamer_id: Option<String>,
    pub frames_encoded: u64,
    pub keyframes_encoded: u64,
    pub bytes_encoded: u64,
    /// Mean encode time per frame, microseconds.
    pub encode_micros_avg: u64,
    /// Opus frames encoded (`--audio`).
    pub audio_frames_encoded: u64,
    pub players_connected_total: u64,
    pub signalling_connects: u64,
    /// Current players, by id.
    pub players: Vec<PlayerSnapshot>,
    /// Sums over current and departed players.
    pub totals: PlayerSnapshot,
    /// Player → streamer data-channel messages by type name.
    pub input_counts: BTreeMap<String, u64>,
    /// Encoders by codec name: each codec in use is encoded once per
    /// layer, whatever the number of its players.
    pub encoders: BTreeMap<String, EncoderCounts>,
    /// What the players asked again and what was resent: NACKs received and
    /// the packets they named, RTP packets resent (answering them), PLIs
    /// and FIRs received (each answered with a keyframe, `keyframes_encoded`).
    pub repair: RepairTraffic,
}

impl StreamerStats {
    pub fn set_committed_id(&self, id: &str) {
        *lock(&self.committed_id) = Some(id.to_string());
    }

    pub fn committed_id(&self) -> Option<String> {
        lock(&self.committed_id).clone()
    }

    /// The counters of `player_id`, created on first use.
    pub fn player(&self, player_id: &str) -> Arc<PlayerStats> {
        lock(&self.players).entry(player_id.to_string()).or_default().clone()
    }

    /// Move a player's counters to the departed totals.
    pub fn remove_player(&self, player_id: &str) {
        if let Some(p) = lock(&self.players).remove(player_id) {
            lock(&self.departed).add(&p.snapshot(player_id));
        }
    }

    /// Count one decoded input message of type `name` from `player_id`.
    pub fn count_input(&self, player_id: &str, name: &str) {
        *lock(&self.input_counts).entry(name.to_string()).or_default() += 1;
        self.player(player_id).input_messages.fetch_add(1, Relaxed);
    }

    pub fn encoder_started(&self, codec: Codec) {
        let mut encoders = lock(&self.encoders);
        let e = encoders.entry(codec.name()).or_default();
        e.running += 1;
        e.started += 1;
    }

    pub fn encoder_stopped(&self, codec: Codec) {
        let mut encoders = lock(&self.encoders);
        let e = encoders.entry(codec.name()).or_default();
        e.running = e.running.saturating_sub(1);
    }

    pub fn count_encoded_frame(&self, codec: Codec) {
        lock(&self.encoders).entry(codec.name()).or_default().frames_encoded += 1;
    }

    pub fn input_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.input_counts).clone()
    }

    pub fn snapshot(&self) -> StreamerSnapshot {
        let mut players: Vec<PlayerSnapshot> = lock(&self.players).iter().map(|(id, p)| p.snapshot(id)).collect();
        players.sort_by(|a, b| a.player_id.cmp(&b.player_id));
        let mut totals = PlayerSnapshot { player_id: "total".into(), ..lock(&self.departed).clone() };
        for p in &players {
            totals.add(p);
        }
        let frames = self.frames_encoded.load(Relaxed);
        StreamerSnapshot {
            streamer_id: self.committed_id(),
            frames_encoded: frames,
            keyframes_encoded: self.keyframes_encoded.load(Relaxed),
            bytes_encoded: self.bytes_encoded.load(Relaxed),
            encode_micros_avg: self.encode_micros.load(Relaxed).checked_div(frames).unwrap_or(0),
            audio_frames_encoded: self.audio_frames_encoded.load(Relaxed),
            players_connected_total: self.players_connected_total.load(Relaxed),
            signalling_connects: self.signalling_connects.load(Relaxed),
            players,
            totals,
            input_counts: self.input_counts(),
            encoders: lock(&self.encoders).iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            repair: self.repair.snapshot(),
        }
    }
}

/// Stats of every streamer of a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub streamers: Vec<StreamerSnapshot>,
}

impl StatsSnapshot {
    /// Human-readable multi-line summary for periodic logging.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for s in &self.streamers {
            let id = s.streamer_id.as_deref().unwrap_or("(unregistered)");
            out.push_str(&format!(
                "{id}: players={} encoded frames={} keyframes={} bytes={} avg_encode={}us | sent frames={} keyframes={} bytes={} dropped={} inputs={}\n",
                s.players.len(),
                s.frames_encoded,
                s.keyframes_encoded,
                s.bytes_encoded,
                s.encode_micros_avg,
                s.totals.frames_sent,
                s.totals.keyframes_sent,
                s.totals.bytes_sent,
                s.totals.frames_dropped,
                s.totals.input_messages,
            ));
            let running: Vec<String> = s
                .encoders
                .iter()
                .filter(|(_, e)| e.running > 0)
                .map(|(codec, e)| format!("{codec} x{}", e.running))
                .collect();
            if !running.is_empty() {
                out.push_str(&format!("  encoders: {}\n", running.join(", ")));
            }
            let r = &s.repair;
            if r.nacks_received + r.plis_received + r.firs_received > 0 {
                out.push_str(&format!(
                    "  repair: resent {} packets for {} NACKs (asking for {}); PLIs {} FIRs {} received\n",
                    r.rtp_resent, r.nacks_received, r.nacked_packets_received, r.plis_received, r.firs_received
                ));
            }
            for p in &s.players {
                out.push_str(&format!(
                    "  {}: {} frames={} keyframes={} bytes={} dropped={} inputs={}\n",
                    p.player_id,
                    p.codec,
                    p.frames_sent,
                    p.keyframes_sent,
                    p.bytes_sent,
                    p.frames_dropped,
                    p.input_messages
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_keep_departed_players_counters() {
        let stats = StreamerStats::default();
        for i in 0..1000 {
            let id = format!("Player{i}");
            let p = stats.player(&id);
            p.frames_sent.fetch_add(3, Relaxed);
            p.bytes_sent.fetch_add(100, Relaxed);
            stats.count_input(&id, "MouseDown");
            stats.remove_player(&id);
        }
        let here = stats.player("Player1000");
        here.frames_sent.fetch_add(1, Relaxed);
        let s = stats.snapshot();
        assert_eq!(s.players.len(), 1);
        assert_eq!(s.totals.player_id, "total");
        assert_eq!((s.totals.frames_sent, s.totals.bytes_sent, s.totals.input_messages), (3001, 100_000, 1000));
        // Departed players are summed, not listed: nothing of their ids is kept.
        assert_eq!(lock(&stats.departed).player_id, "");
    }
}
