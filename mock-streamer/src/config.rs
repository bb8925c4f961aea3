//! Configuration of a mock-streamer process (one or more streamers).

use std::time::Duration;

use proto::rtc::IcePolicy;

use crate::video::VideoSettings;

/// Everything [`crate::spawn`] needs.
#[derive(Debug, Clone)]
pub struct StreamerConfig {
    /// The signalling server's streamer endpoint, e.g. `ws://127.0.0.1:8888`.
    pub url: String,
    /// One streamer per id, all in this process.
    pub streamer_ids: Vec<String>,
    pub video: VideoSettings,
    pub ice: IcePolicy,
    /// Log every decoded input message (`Player3 MouseDown button=0 x=0.51 y=0.22`).
    pub print_input: bool,
    /// Echo each UIInteraction back as a Response.
    pub respond: bool,
    /// No WebRTC: answer `playerConnected` with a canned offer.
    pub signalling_only: bool,
    /// Offer SFU connections (`playerConnected` with `sfu: true`) three
    /// simulcast encodings (rids f, h, q: full, half, quarter resolution).
    pub simulcast: bool,
    /// Add an Opus audio track (a 440 Hz tone) to every offer. Needs libopus.
    pub audio: bool,
    /// Log stats this often.
    pub stats_interval: Option<Duration>,
    /// Send `ping` to the server this often.
    pub ping_interval: Option<Duration>,
    /// First and largest delay between signalling reconnect attempts.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Default for StreamerConfig {
    fn default() -> Self {
        StreamerConfig {
            url: "ws://127.0.0.1:8888".into(),
            streamer_ids: vec!["DefaultStreamer".into()],
            video: VideoSettings { width: 1280, height: 720, fps: 30, bitrate_bps: 2_000_000 },
            ice: IcePolicy::LOOPBACK,
            print_input: false,
            respond: false,
            signalling_only: false,
            simulcast: false,
            audio: false,
            stats_interval: None,
            ping_interval: Some(Duration::from_secs(30)),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(10),
        }
    }
}

/// `count` ids from one base: `id`, `id1`, `id2`, …
pub fn numbered_ids(base: &str, count: usize) -> Vec<String> {
    (0..count.max(1)).map(|i| if i == 0 { base.to_string() } else { format!("{base}{i}") }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        assert_eq!(super::numbered_ids("S", 3), vec!["S", "S1", "S2"]);
        assert_eq!(super::numbered_ids("S", 0), vec!["S"]);
    }
}
