//! Configuration of one SFU ([`SfuConfig`]).

use std::time::Duration;

use proto::rtc::IcePolicy;

/// Everything [`crate::spawn`] needs.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The signalling server's SFU endpoint, e.g. `ws://127.0.0.1:8889`.
    pub url: String,
    /// The id registered with `endpointId` (players subscribe to it).
    pub id: String,
    /// The streamer to subscribe to; `None`: the first listed id that is not ours.
    pub streamer: Option<String>,
    /// Simulcast layer (spatial index, 0 = lowest resolution) a player gets
    /// until it sends `layerPreference`; `None`: the highest. Clamped to the
    /// layers the streamer sends.
    pub default_layer: Option<usize>,
    pub ice: IcePolicy,
    /// Re-send `listStreamers` this often while not subscribed.
    pub list_interval: Duration,
    /// At most one keyframe request (PLI) per upstream layer this often
    /// (protects the streamer's encoder from PLI storms).
    pub keyframe_interval: Duration,
    /// A new player starts from the cached newest keyframe of its layer (and
    /// the frames since) while that keyframe is at most this old; beyond
    /// that it waits for a fresh keyframe. `Duration::ZERO`: no cache.
    /// See [`crate::forwarder`] for why the whole group of pictures since
    /// the keyframe is sent, and how its timestamps are rewritten.
    pub keyframe_cache: Duration,
    /// RTP packets queued per player and track before packets are dropped
    /// for that player (it then waits for the next keyframe).
    pub player_queue: usize,
    /// No RTP from the streamer for this long: `stopStreaming`.
    pub stall_timeout: Duration,
    /// Send `ping` to the server this often.
    pub ping_interval: Option<Duration>,
    /// First and largest delay between signalling reconnect attempts.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Renew the connection to the streamer once it has carried this many
    /// players' data channels, at a moment no player is connected (0:
    /// never). webrtc-rs 0.21 keeps the statistics of every data channel a
    /// connection ever had, on both ends, for as long as it lives (~0.3 KB
    /// per player, `e2e/bench/README.md`, churn); a new connection starts empty.
    pub renew_upstream_after: usize,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            url: "ws://127.0.0.1:8889".into(),
            id: "SFU".into(),
            streamer: None,
            default_layer: None,
            ice: IcePolicy::LOOPBACK,
            list_interval: Duration::from_secs(2),
            keyframe_interval: Duration::from_millis(500),
            keyframe_cache: Duration::from_millis(1000),
            player_queue: 512,
            stall_timeout: Duration::from_secs(5),
            ping_interval: Some(Duration::from_secs(30)),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(10),
            renew_upstream_after: 1000,
        }
    }
}
