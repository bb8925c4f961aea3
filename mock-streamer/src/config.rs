//! Configuration of a mock-streamer process (one or more streamers).

use std::time::Duration;

use proto::rtc::{IcePolicy, VideoCodecs};

use crate::video::VideoSettings;

/// Everything [`crate::spawn`] needs.
#[derive(Debug, Clone)]
pub struct StreamerConfig {
    /// The signalling server's streamer endpoint, e.g. `ws://127.0.0.1:8888`.
    pub url: String,
    /// One streamer per id, all in this process.
    pub streamer_ids: Vec<String>,
    pub video: VideoSettings,
    /// The video codecs offered (and encoded, each once, while a player
    /// uses it), most preferred first.
    pub video_codecs: VideoCodecs,
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
            video_codecs: crate::encoder::compiled_codecs(),
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

/// A `--codecs` list that names a codec this build cannot encode, or none.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecListError(String);

/// The codecs named in `names` (`h264`, `vp8`, `vp9`, `av1`), in that order,
/// each one this build encodes.
pub fn codecs_from_names(names: &[String]) -> Result<VideoCodecs, CodecListError> {
    let built = crate::encoder::compiled_codecs();
    let known = built.iter().map(|c| c.name().to_ascii_lowercase()).collect::<Vec<_>>().join(", ");
    let mut list = Vec::new();
    for name in names.iter().filter(|n| !n.trim().is_empty()) {
        let codec = proto::rtp_payload::Codec::from_name(name)
            .filter(|c| built.contains(*c))
            .ok_or_else(|| CodecListError(format!("unknown codec {name:?}: this build encodes {known}")))?;
        list.push(codec);
    }
    if list.is_empty() {
        return Err(CodecListError(format!("no codec named: this build encodes {known}")));
    }
    Ok(VideoCodecs::new(&list))
}

/// `count` ids from one base: `id`, `id1`, `id2`, …
pub fn numbered_ids(base: &str, count: usize) -> Vec<String> {
    (0..count.max(1)).map(|i| if i == 0 { base.to_string() } else { format!("{base}{i}") }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn codec_lists() {
        let names = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        let list = super::codecs_from_names(&names("H264")).unwrap();
        assert_eq!(list.first(), proto::rtp_payload::Codec::H264);
        let err = super::codecs_from_names(&names("h264,mpeg2")).unwrap_err().to_string();
        assert!(err.contains("mpeg2") && err.contains("h264"), "{err}");
        assert!(super::codecs_from_names(&names("")).is_err());
    }

    #[test]
    fn ids() {
        assert_eq!(super::numbered_ids("S", 3), vec!["S", "S1", "S2"]);
        assert_eq!(super::numbered_ids("S", 0), vec!["S"]);
    }
}
