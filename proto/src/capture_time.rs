//! The `abs-capture-time` RTP header extension: when a frame was captured,
//! on the sender's clock, carried by its packets.
//!
//! Chosen over an H.264 SEI message because it is codec-independent (VP8,
//! VP9 and AV1 have no SEI), a forwarding SFU passes it on without touching
//! the payload, a receiver reads it without parsing the bitstream, and
//! Chromium reads it (`RTCRtpSynchronizationSource.captureTimestamp`).
//! Format (webrtc.org's abs-capture-time spec): an NTP timestamp, UQ32.32
//! seconds since 1900, big-endian; an optional 8-byte estimated clock
//! offset follows (16 bytes in all), which we neither send nor need.

use std::time::Duration;

/// The extension's URI in SDP (`a=extmap:<id> <uri>`).
pub const ABS_CAPTURE_TIME_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// The extension's 8-byte value for a capture `since_unix_epoch`.
pub fn encode(since_unix_epoch: Duration) -> [u8; 8] {
    let secs = since_unix_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET_SECS) & 0xffff_ffff;
    let frac = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    ((secs << 32) | frac).to_be_bytes()
}

/// The capture time an extension value carries, in milliseconds since the
/// Unix epoch; `None` if it is shorter than 8 bytes. (A 32-bit NTP second
/// count wraps in 2036; times are read in the era after 1970 the sender
/// and receiver share.)
pub fn decode_unix_ms(value: &[u8]) -> Option<f64> {
    let bytes: [u8; 8] = value.get(..8)?.try_into().ok()?;
    let ntp = u64::from_be_bytes(bytes);
    let secs = (ntp >> 32).wrapping_sub(NTP_UNIX_OFFSET_SECS) & 0xffff_ffff;
    let frac = (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0;
    Some((secs as f64 + frac) * 1000.0)
}

/// The id an SDP gives the extension in its first video section
/// (`a=extmap:<id>[/direction] <uri>`), if it has one.
pub fn sdp_extension_id(sdp: &str) -> Option<u8> {
    let mut in_video = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_video {
                return None;
            }
            in_video = m.starts_with("video ");
        } else if let Some(rest) = line.strip_prefix("a=extmap:").filter(|_| in_video) {
            let mut parts = rest.split_whitespace();
            let (Some(id), Some(uri)) = (parts.next(), parts.next()) else { continue };
            if uri == ABS_CAPTURE_TIME_URI {
                return id.split('/').next()?.parse().ok();
            }
        }
    }
    None
}

/// Milliseconds since the Unix epoch now, on this host's clock.
pub fn unix_ms_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_to_well_under_a_millisecond() {
        for ms in [0u64, 1_700_000_000_123, 1_796_000_000_999] {
            let d = Duration::from_millis(ms) + Duration::from_micros(250);
            let back = decode_unix_ms(&encode(d)).unwrap();
            assert!((back - d.as_secs_f64() * 1000.0).abs() < 0.001, "{ms}: {back}");
        }
    }

    #[test]
    fn finds_the_id_in_the_video_section() {
        let sdp =
            "v=0\r\nm=audio 9 x 111\r\na=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time\r\n\
                   m=video 9 x 96\r\na=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
                   a=extmap:9/sendonly http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time\r\n";
        assert_eq!(sdp_extension_id(sdp), Some(9));
        assert_eq!(sdp_extension_id("v=0\r\nm=video 9 x 96\r\n"), None);
    }

    #[test]
    fn a_known_value_and_short_input() {
        // 2026-01-01T00:00:00.5Z: NTP seconds 0xED003780, fraction one half.
        let v = encode(Duration::from_millis(1_767_225_600_500));
        assert_eq!(v, [0xED, 0x00, 0x37, 0x80, 0x80, 0, 0, 0]);
        assert_eq!(decode_unix_ms(&v[..7]), None);
        // The 16-byte form (with a clock offset) reads the same.
        let mut long = v.to_vec();
        long.extend_from_slice(&[0; 8]);
        assert_eq!(decode_unix_ms(&long), decode_unix_ms(&v));
    }
}
