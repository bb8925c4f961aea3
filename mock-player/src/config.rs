//! What one player does ([`PlayerConfig`]) and how many are scheduled
//! ([`LoadConfig`]).

use std::time::Duration;

use proto::impairment::Impairment;

/// One player's behaviour. `Default` gives a player that joins the only
/// streamer on `ws://127.0.0.1:8080` with loopback-only ICE and streams until
/// cancelled.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// Signalling server player URL.
    pub url: String,
    /// Streamer to subscribe to; `None` = the only one listed.
    pub streamer_id: Option<String>,
    /// Gather and accept only 127.0.0.1 host candidates; ignore the server's
    /// ICE servers.
    pub ice_loopback_only: bool,
    /// `layerPreference` (spatial, temporal) sent after the answer.
    pub layer: Option<(i64, i64)>,
    /// On `streamerDisconnected` or socket close: wait for the streamer and rejoin.
    pub reconnect: bool,
    /// Input messages per second on the data channel (0 = none).
    pub input_rate: f64,
    /// Send a latency test once a second on the data channel.
    pub latency_test: bool,
    /// Stop after this long (from the player's start).
    pub duration: Option<Duration>,
    /// Pass only if at least this many video frames arrived.
    pub expect_frames: Option<u64>,
    /// With `expect_frames` and no `duration`: stop as soon as they arrived.
    pub stop_at_expected_frames: bool,
    /// Pass only if the video frame rate was at least this.
    pub min_fps: Option<f64>,
    /// From the start of a join to streaming (first RTP; with
    /// `signalling_only`, the answer sent).
    pub join_timeout: Duration,
    /// Re-list interval while the wanted streamer is not listed.
    pub list_interval: Duration,
    /// No WebRTC: canned answer and candidates.
    pub signalling_only: bool,
    /// Video codecs the answer prefers, first most (`h264`, `vp8`); empty:
    /// Epic's frontend's default, H.264 first (see `rtc::answer_codec_order`).
    pub codec_preference: Vec<String>,
    /// Ask for retransmissions of lost packets (RTCP NACK), as browsers do.
    pub nack: bool,
    /// A bad network on the player's UDP path (`--impair`); `None`: clean.
    pub impair: Option<Impairment>,
    /// The share of a load run's players that get `impair` (0..=1; the
    /// rest are clean), spread evenly over the players' indices.
    pub impair_share: f64,
    /// ICE over TURN relays only (`iceTransportPolicy: "relay"`).
    pub relay_only: bool,
}

impl PlayerConfig {
    /// The impairment of player `index` of a run: `impair` for an evenly
    /// spread `impair_share` of the indices (index i when ⌊(i+1)·share⌋
    /// passes ⌊i·share⌋), `None` for the others.
    pub fn impairment_of(&self, index: usize) -> Option<Impairment> {
        let share = self.impair_share.clamp(0.0, 1.0);
        let gets = ((index + 1) as f64 * share).floor() > (index as f64 * share).floor();
        self.impair.filter(|i| gets && !i.is_none())
    }
}

impl Default for PlayerConfig {
    fn default() -> Self {
        PlayerConfig {
            url: "ws://127.0.0.1:8080".to_string(),
            streamer_id: None,
            ice_loopback_only: true,
            layer: None,
            reconnect: false,
            input_rate: 0.0,
            latency_test: false,
            duration: None,
            expect_frames: None,
            stop_at_expected_frames: true,
            min_fps: None,
            join_timeout: Duration::from_secs(20),
            list_interval: Duration::from_secs(1),
            signalling_only: false,
            codec_preference: Vec::new(),
            nack: true,
            impair: None,
            impair_share: 1.0,
            relay_only: false,
        }
    }
}

/// When progress is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// One updating line on a terminal, plain lines otherwise.
    Auto,
    /// Plain periodic lines.
    Plain,
    Off,
}

/// How many players and how fast they start.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub players: usize,
    /// Players started per second.
    pub ramp: f64,
    /// Joins in flight at most (started, not yet streaming or failed).
    pub max_joining: usize,
    pub progress: ProgressMode,
    /// Sampling / progress interval.
    pub sample_interval: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            players: 1,
            ramp: 10.0,
            max_joining: 50,
            progress: ProgressMode::Off,
            sample_interval: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impair_share_spreads_over_the_players() {
        let cfg = PlayerConfig { impair: Some("loss=2%".parse().unwrap()), impair_share: 0.1, ..Default::default() };
        let impaired: Vec<usize> = (0..40).filter(|i| cfg.impairment_of(*i).is_some()).collect();
        assert_eq!(impaired, [9, 19, 29, 39]);
        let all = PlayerConfig { impair_share: 1.0, ..cfg.clone() };
        assert!((0..5).all(|i| all.impairment_of(i).is_some()));
        let none = PlayerConfig { impair: None, ..all };
        assert!(none.impairment_of(0).is_none());
    }
}
