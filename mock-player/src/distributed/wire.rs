//! A player's configuration and a player's results as they travel over the
//! bus. [`PlayerConfig`] and [`PlayerStats`] are defined elsewhere; the serde
//! mirrors here are "remote" derives, so the compiler rejects a mirror that
//! misses a field of the real type.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock_offset::ClockOffsetReport;
use crate::config::PlayerConfig;
use crate::datachannel::DcStats;
use crate::frame_delivery::DeliverySummary;
use crate::latency_histogram::LatencySummary;
use crate::player::{JoinTimes, PlayerStats};
use crate::rtp_stats::TrackSummary;
use proto::impairment::Impairment;
use proto::rtc::repair_traffic::RepairTraffic;

#[derive(Serialize, Deserialize)]
#[serde(remote = "PlayerConfig")]
struct PlayerConfigDef {
    url: String,
    streamer_id: Option<String>,
    ice_loopback_only: bool,
    layer: Option<(i64, i64)>,
    reconnect: bool,
    input_rate: f64,
    latency_test: bool,
    duration: Option<Duration>,
    expect_frames: Option<u64>,
    stop_at_expected_frames: bool,
    min_fps: Option<f64>,
    join_timeout: Duration,
    list_interval: Duration,
    signalling_only: bool,
    #[serde(default)]
    codec_preference: Vec<String>,
    #[serde(default = "yes")]
    nack: bool,
    #[serde(default, with = "impairment_text")]
    impair: Option<Impairment>,
    #[serde(default = "all")]
    impair_share: f64,
    #[serde(default)]
    relay_only: bool,
}

fn yes() -> bool {
    true
}

fn all() -> f64 {
    1.0
}

/// An impairment on the bus as its `--impair` text.
mod impairment_text {
    use proto::impairment::Impairment;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Impairment>, s: S) -> Result<S::Ok, S::Error> {
        v.map(|i| i.to_string()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Impairment>, D::Error> {
        Option::<String>::deserialize(d)?.map(|t| t.parse().map_err(serde::de::Error::custom)).transpose()
    }
}

/// A [`PlayerConfig`] on the bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireConfig(#[serde(with = "PlayerConfigDef")] pub PlayerConfig);

#[derive(Deserialize)]
#[serde(remote = "JoinTimes")]
struct JoinTimesDef {
    ws_connect_ms: Option<f64>,
    offer_ms: Option<f64>,
    ice_connected_ms: Option<f64>,
    dtls_connected_ms: Option<f64>,
    first_rtp_ms: Option<f64>,
    first_keyframe_ms: Option<f64>,
    joined_ms: Option<f64>,
}

#[derive(Deserialize)]
struct JoinTimesDe(#[serde(with = "JoinTimesDef")] JoinTimes);

#[derive(Deserialize)]
#[serde(remote = "TrackSummary")]
struct TrackSummaryDef {
    kind: String,
    codec: String,
    packets: u64,
    bytes: u64,
    frames: u64,
    keyframes: u64,
    #[serde(default)]
    plis_sent: u64,
    lost: u64,
    loss: f64,
    jitter_ms: f64,
    active_secs: f64,
    fps: f64,
    bitrate_bps: f64,
    width: u32,
    height: u32,
    #[serde(default)]
    retransmitted: u64,
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    delivery: DeliverySummary,
}

#[derive(Deserialize)]
struct TrackSummaryDe(#[serde(with = "TrackSummaryDef")] TrackSummary);

#[derive(Deserialize)]
#[serde(remote = "DcStats")]
struct DcStatsDef {
    opened: bool,
    channels: Vec<String>,
    protocol_received: bool,
    initial_settings_received: bool,
    quality_control_owner: Option<bool>,
    sent: u64,
    input_sent: u64,
    send_errors: u64,
    received: BTreeMap<String, u64>,
    decode_errors: u64,
    rtt_ms: Vec<f64>,
    latency_test_ms: Vec<f64>,
    #[serde(skip)]
    clock: crate::clock_offset::OffsetEstimate,
}

#[derive(Deserialize)]
#[serde(remote = "PlayerStats")]
struct PlayerStatsDef {
    index: usize,
    streamer_id: Option<String>,
    player_id: Option<String>,
    joined: bool,
    #[serde(with = "JoinTimesDef")]
    join: JoinTimes,
    #[serde(deserialize_with = "join_times_vec")]
    rejoins: Vec<JoinTimes>,
    reconnects: u32,
    #[serde(deserialize_with = "tracks_vec")]
    tracks: Vec<TrackSummary>,
    video_frames: u64,
    keyframes: u64,
    fps: f64,
    bitrate_bps: f64,
    loss: f64,
    jitter_ms: f64,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    latency: LatencySummary,
    #[serde(default)]
    clock_offset: ClockOffsetReport,
    #[serde(default)]
    frames_complete: u64,
    #[serde(default)]
    frames_incomplete: u64,
    #[serde(default)]
    freezes: u64,
    #[serde(default)]
    frozen_secs: f64,
    #[serde(default)]
    retransmitted: u64,
    #[serde(default)]
    repair: RepairTraffic,
    #[serde(with = "DcStatsDef")]
    dc: DcStats,
    offers: u32,
    sfu: bool,
    elapsed_secs: f64,
    passed: bool,
    error_kind: Option<String>,
    error: Option<String>,
    started_at_secs: f64,
}

fn join_times_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<JoinTimes>, D::Error> {
    Ok(Vec::<JoinTimesDe>::deserialize(d)?.into_iter().map(|j| j.0).collect())
}

fn tracks_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TrackSummary>, D::Error> {
    Ok(Vec::<TrackSummaryDe>::deserialize(d)?.into_iter().map(|t| t.0).collect())
}

/// A [`PlayerStats`] on the bus (serialised by its own `Serialize`).
#[derive(Debug, Clone)]
pub struct WireStats(pub PlayerStats);

impl Serialize for WireStats {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for WireStats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PlayerStatsDef::deserialize(d).map(WireStats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_stats_round_trip() {
        let mut s = PlayerStats {
            index: 7,
            joined: true,
            passed: true,
            fps: 29.5,
            started_at_secs: 1.25,
            error_kind: Some("x".into()),
            ..Default::default()
        };
        s.join.joined_ms = Some(12.5);
        s.rejoins.push(JoinTimes { offer_ms: Some(3.0), ..Default::default() });
        s.dc.rtt_ms = vec![1.0, 2.0];
        s.dc.received.insert("Protocol".into(), 1);
        let json = serde_json::to_string(&WireStats(s.clone())).expect("serialises");
        let back: WireStats = serde_json::from_str(&json).expect("deserialises");
        // PlayerStats has no PartialEq: compare the JSON of both.
        assert_eq!(serde_json::to_value(&back.0).ok(), serde_json::to_value(&s).ok());
    }

    #[test]
    fn player_config_round_trip() {
        let c = PlayerConfig {
            streamer_id: Some("S1".into()),
            layer: Some((1, 0)),
            duration: Some(Duration::from_millis(2500)),
            signalling_only: true,
            ..Default::default()
        };
        let json = serde_json::to_string(&WireConfig(c.clone())).expect("serialises");
        let back: WireConfig = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(format!("{:?}", back.0), format!("{c:?}"));
    }
}
