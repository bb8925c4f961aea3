//! What a receiver or forwarder needs to know about an RTP video payload
//! without decoding it: whether a packet starts a keyframe, and (H.264) the
//! picture size an SPS announces. Shared by mock-player (counting keyframes)
//! and sfu-stub (starting and switching players at keyframes).

/// The video codecs with keyframe detection (anything else, audio
/// included, is [`Codec::Other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Vp8,
    /// Audio, or a codec without keyframe detection: every packet is a
    /// valid starting point.
    Other,
}

impl Codec {
    pub fn from_mime(mime: &str) -> Codec {
        let m = mime.to_ascii_lowercase();
        if m == "video/h264" {
            Codec::H264
        } else if m == "video/vp8" {
            Codec::Vp8
        } else {
            Codec::Other
        }
    }

    /// Whether a player has to start (or resume) at a keyframe.
    pub fn needs_keyframe(self) -> bool {
        self != Codec::Other
    }

    /// Whether this RTP payload is the first packet of a keyframe (H.264: an
    /// SPS or IDR NAL unit, alone, in a STAP-A, or starting an FU-A; VP8: the
    /// start of partition 0 of a key frame). Never for [`Codec::Other`].
    pub fn is_keyframe_start(self, payload: &[u8]) -> bool {
        match self {
            Codec::H264 => h264_starts_keyframe(payload),
            Codec::Vp8 => vp8_starts_keyframe(payload),
            Codec::Other => false,
        }
    }

    /// Whether a receiver may start (or resume) at this packet: a keyframe
    /// start, or any packet of a codec without keyframes (audio).
    pub fn starts_keyframe(self, payload: &[u8]) -> bool {
        !self.needs_keyframe() || self.is_keyframe_start(payload)
    }
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else { return false };
    match first & 0x1f {
        NAL_SPS | NAL_IDR => true,
        NAL_STAP_A => {
            // [hdr][size16][nal]…
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                // A zero-sized or truncated unit: the aggregate is broken.
                if size == 0 || rest.len() < 2 + size {
                    return false;
                }
                let nal = rest[2] & 0x1f;
                if nal == NAL_SPS || nal == NAL_IDR {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        NAL_FU_A => payload.get(1).is_some_and(|h| h & 0x80 != 0 && h & 0x1f == NAL_IDR),
        _ => false,
    }
}

fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    vp8_keyframe_header(payload).is_some()
}

/// The VP8 payload (RFC 6386 §9.1: frame tag, then for a key frame the start
/// code and picture size) when this RTP payload starts partition 0 of a key
/// frame; `None` otherwise.
fn vp8_keyframe_header(payload: &[u8]) -> Option<&[u8]> {
    // RFC 7741 payload descriptor: |X|R|N|S|R|PID(3)|
    let b0 = *payload.first()?;
    let start_of_partition = b0 & 0x10 != 0;
    let partition_id = b0 & 0x07;
    if !start_of_partition || partition_id != 0 {
        return None;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let p = *payload.get(i)?;
            i += if p & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/KEYIDX
        }
    }
    // VP8 payload header: the P bit (bit 0 of the frame tag) is 0 for key frames.
    let vp8 = payload.get(i..)?;
    (vp8.first()? & 0x01 == 0).then_some(vp8)
}

/// The picture size in a VP8 key frame's header (RFC 6386 §9.1: 3-byte
/// frame tag, start code 9d 01 2a, then 14-bit width and height, each with
/// 2 scaling bits), when this RTP payload starts a key frame.
pub fn vp8_keyframe_resolution(payload: &[u8]) -> Option<(u32, u32)> {
    let vp8 = vp8_keyframe_header(payload)?;
    if vp8.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let dimension = |at: usize| -> Option<u32> {
        let raw = u16::from_le_bytes([*vp8.get(at)?, *vp8.get(at + 1)?]);
        Some(u32::from(raw & 0x3fff))
    };
    let (width, height) = (dimension(6)?, dimension(8)?);
    (width > 0 && height > 0).then_some((width, height))
}

/// The SPS NAL unit an H.264 RTP payload carries (alone or in a STAP-A), if
/// any. (Encoders send SPS whole: it is a few bytes, never fragmented.)
pub fn h264_sps_in_payload(payload: &[u8]) -> Option<&[u8]> {
    let first = *payload.first()?;
    match first & 0x1f {
        NAL_SPS => Some(payload),
        NAL_STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let unit = rest.get(2..2 + size)?;
                if unit.first().is_some_and(|h| h & 0x1f == NAL_SPS) {
                    return Some(unit);
                }
                rest = &rest[2 + size..];
            }
            None
        }
        _ => None,
    }
}

/// Width and height from an H.264 SPS NAL unit (starting at the NAL header).
/// `None` when it cannot be parsed.
pub fn h264_sps_resolution(nal: &[u8]) -> Option<(u32, u32)> {
    if nal.first()? & 0x1f != NAL_SPS {
        return None;
    }
    // Remove emulation-prevention bytes.
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in &nal[1..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = BitReader { data: &rbsp, pos: 0 };
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags + level
    r.ue()?; // sps id
    let mut chroma_format_idc = 1;
    if matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.bits(1)?;
        }
        r.ue()?;
        r.ue()?;
        r.bits(1)?;
        if r.bits(1)? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bits(1)? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num
    let poc_type = r.ue()?;
    if poc_type == 0 {
        r.ue()?;
    } else if poc_type == 1 {
        r.bits(1)?;
        r.se()?;
        r.se()?;
        let n = r.ue()?;
        for _ in 0..n {
            r.se()?;
        }
    }
    r.ue()?; // max_num_ref_frames
    r.bits(1)?;
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_map_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bits(1)?;
    if frame_mbs_only == 0 {
        r.bits(1)?;
    }
    r.bits(1)?; // direct_8x8
    let (mut crop_x, mut crop_y) = (0, 0);
    if r.bits(1)? == 1 {
        let (l, rr, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (unit_x, unit_y) = match chroma_format_idc {
            0 | 3 => (1, 2 - frame_mbs_only),
            2 => (2, 2 - frame_mbs_only),
            _ => (2, 2 * (2 - frame_mbs_only)),
        };
        crop_x = l.checked_add(rr)?.checked_mul(unit_x)?;
        crop_y = t.checked_add(b)?.checked_mul(unit_y)?;
    }
    // Checked: the SPS comes from the network.
    let width = width_mbs.checked_mul(16)?.checked_sub(crop_x)?;
    let height = (2 - frame_mbs_only).checked_mul(height_map_units)?.checked_mul(16)?.checked_sub(crop_y)?;
    Some((width, height))
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_keyframes() {
        assert!(Codec::H264.starts_keyframe(&[0x67, 0x42]));
        assert!(Codec::H264.starts_keyframe(&[0x65, 0x88]));
        assert!(!Codec::H264.starts_keyframe(&[0x41, 0x9a]));
        // STAP-A with SPS.
        assert!(Codec::H264.starts_keyframe(&[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]));
        // FU-A start of IDR, and a middle fragment.
        assert!(Codec::H264.starts_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!Codec::H264.starts_keyframe(&[0x7c, 0x05, 0x00]));
        assert!(!Codec::H264.starts_keyframe(&[]));
    }

    #[test]
    fn vp8_keyframes() {
        assert!(Codec::Vp8.starts_keyframe(&[0x10, 0x00]));
        assert!(!Codec::Vp8.starts_keyframe(&[0x10, 0x01]));
        assert!(!Codec::Vp8.starts_keyframe(&[0x00, 0x00]));
        // With extended PictureID.
        assert!(Codec::Vp8.starts_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x00]));
    }

    #[test]
    fn vp8_keyframe_picture_size() {
        // Descriptor, frame tag (key frame), start code, 640 and 360 (with
        // scaling bits set on the width, which do not count).
        let key = [0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0xc2, 0x68, 0x01, 0xff];
        assert_eq!(vp8_keyframe_resolution(&key), Some((640, 360)));
        // The same with an extended descriptor (15-bit PictureID).
        let mut extended = vec![0x90, 0x80, 0x81, 0x23];
        extended.extend_from_slice(&key[1..]);
        assert_eq!(vp8_keyframe_resolution(&extended), Some((640, 360)));
        // An inter frame, a broken start code, a truncated header: none.
        let mut inter = key;
        inter[1] |= 0x01;
        assert_eq!(vp8_keyframe_resolution(&inter), None);
        let mut broken = key;
        broken[5] = 0x00;
        assert_eq!(vp8_keyframe_resolution(&broken), None);
        assert_eq!(vp8_keyframe_resolution(&key[..9]), None);
    }

    #[test]
    fn sps_resolution() {
        // 1280x720 constrained baseline SPS (from an x264/openh264 stream).
        let sps = [0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40];
        assert_eq!(h264_sps_resolution(&sps), Some((1280, 720)));
        assert_eq!(h264_sps_resolution(&[0x65]), None);
        // Garbage never panics.
        for n in 0..64u8 {
            let junk: Vec<u8> = std::iter::once(0x67).chain((0..n).map(|i| i.wrapping_mul(37) ^ 0xff)).collect();
            let _ = h264_sps_resolution(&junk);
            let _ = Codec::H264.starts_keyframe(&junk[1..]);
            let _ = Codec::Vp8.starts_keyframe(&junk[1..]);
        }
        let all_ones = [0x67, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let _ = h264_sps_resolution(&all_ones);
        let zeros = [0x67, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let _ = h264_sps_resolution(&zeros);
    }

    #[test]
    fn receiver_vectors() {
        let key = |c: Codec, p: &[u8]| c.is_keyframe_start(p);
        assert!(key(Codec::H264, &[0x65, 1, 2]));
        assert!(!key(Codec::H264, &[0x78, 0, 1, 0x41]));
        // A truncated STAP-A is not a keyframe (and does not panic).
        assert!(!key(Codec::H264, &[0x78, 0, 9, 0x67]));
        assert!(!key(Codec::H264, &[0x7c]));
        assert!(key(Codec::Vp8, &[0x90, 0x80, 0x81, 0x22, 0x00]));
        assert!(!key(Codec::Vp8, &[0x90, 0x80, 0x81]));
        // Audio never has keyframes, but any packet is a starting point.
        assert!(!key(Codec::Other, &[0x65]));
        assert!(Codec::Other.starts_keyframe(&[0x65]));
    }
}
