//! What a receiver or forwarder needs to know about an RTP video payload
//! without decoding it: whether a packet starts a keyframe, and the picture
//! size a keyframe announces (H.264 SPS, VP8 and VP9 keyframe headers, AV1
//! sequence header OBU). Shared by mock-player (counting keyframes, reading
//! the resolution) and sfu-stub (starting and switching players at
//! keyframes). Every parser here reads bytes from the network: truncated or
//! malformed input gives `None`/`false`, never a panic.

/// The video codecs with keyframe detection (anything else, audio
/// included, is [`Codec::Other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Vp8,
    Vp9,
    Av1,
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
        } else if m == "video/vp9" {
            Codec::Vp9
        } else if m == "video/av1" {
            Codec::Av1
        } else {
            Codec::Other
        }
    }

    /// A video codec by name, as users write it (`h264`, `vp8`, `vp9`,
    /// `av1`, any case; also `avc`). `None` for anything else.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name.trim().to_ascii_lowercase().as_str() {
            "h264" | "avc" => Some(Codec::H264),
            "vp8" => Some(Codec::Vp8),
            "vp9" => Some(Codec::Vp9),
            "av1" => Some(Codec::Av1),
            _ => None,
        }
    }

    /// The codec's name as SDP writes it (`H264`, `VP8`, `VP9`, `AV1`), or
    /// `other`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "H264",
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::Av1 => "AV1",
            Codec::Other => "other",
        }
    }

    /// The picture size a keyframe's first RTP payload announces (H.264: an
    /// SPS in this payload; VP8 and VP9: the keyframe header; AV1: the
    /// sequence header OBU's maximum frame size), if this payload has one.
    pub fn keyframe_resolution(self, payload: &[u8]) -> Option<(u32, u32)> {
        match self {
            Codec::H264 => h264_sps_in_payload(payload).and_then(h264_sps_resolution),
            Codec::Vp8 => vp8_keyframe_resolution(payload),
            Codec::Vp9 => vp9_keyframe_resolution(payload),
            Codec::Av1 => av1_keyframe_resolution(payload),
            Codec::Other => None,
        }
    }

    /// Whether a player has to start (or resume) at a keyframe.
    pub fn needs_keyframe(self) -> bool {
        self != Codec::Other
    }

    /// Whether this RTP payload is the first packet of a keyframe (H.264: an
    /// SPS or IDR NAL unit, alone, in a STAP-A, or starting an FU-A; VP8: the
    /// start of partition 0 of a key frame; VP9: the start of a frame that is
    /// not inter-predicted, in the base spatial layer; AV1: the first packet
    /// of a new coded video sequence). Never for [`Codec::Other`].
    pub fn is_keyframe_start(self, payload: &[u8]) -> bool {
        match self {
            Codec::H264 => h264_starts_keyframe(payload),
            Codec::Vp8 => vp8_starts_keyframe(payload),
            Codec::Vp9 => vp9_keyframe_start(payload).is_some(),
            Codec::Av1 => av1_starts_keyframe(payload),
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

/// The VP9 payload (the frame's uncompressed header onwards) and the
/// descriptor's scalability structure, when this RTP payload starts a frame
/// that is not inter-picture predicted in the base spatial layer (RFC 9628
/// §4.2: B = 1, P = 0, and no layer indices or spatial layer 0); `None`
/// otherwise.
fn vp9_keyframe_start(payload: &[u8]) -> Option<Vp9Start<'_>> {
    // |I|P|L|F|B|E|V|Z|
    let b0 = *payload.first()?;
    let (picture_id, predicted, layers, flexible, begins, has_ss) =
        (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x20 != 0, b0 & 0x10 != 0, b0 & 0x08 != 0, b0 & 0x02 != 0);
    if !begins || predicted {
        return None;
    }
    let mut i = 1;
    if picture_id {
        let m = *payload.get(i)?;
        i += if m & 0x80 != 0 { 2 } else { 1 };
    }
    if layers {
        // |TID|U|SID|D|, then TL0PICIDX in non-flexible mode.
        let spatial_layer = (*payload.get(i)? >> 1) & 0x07;
        if spatial_layer != 0 {
            return None;
        }
        i += if flexible { 1 } else { 2 };
    }
    // (P_DIFF entries follow only when P = 1.)
    let mut ss_size = None;
    if has_ss {
        // |N_S|Y|G|-|-|-|, N_S + 1 sizes if Y, N_G and its pictures if G.
        let v = *payload.get(i)?;
        let spatial_layers = usize::from(v >> 5) + 1;
        let mut j = i + 1;
        if v & 0x10 != 0 {
            let w = u16::from_be_bytes([*payload.get(j)?, *payload.get(j + 1)?]);
            let h = u16::from_be_bytes([*payload.get(j + 2)?, *payload.get(j + 3)?]);
            ss_size = Some((u32::from(w), u32::from(h)));
            j += 4 * spatial_layers;
        }
        if v & 0x08 != 0 {
            let pictures = *payload.get(j)?;
            j += 1;
            for _ in 0..pictures {
                // |TID|U|R|-|-|, then R P_DIFF bytes.
                let r = usize::from((*payload.get(j)? >> 2) & 0x03);
                j += 1 + r;
            }
        }
        i = j;
    }
    Some(Vp9Start { frame: payload.get(i..)?, ss_size })
}

struct Vp9Start<'a> {
    frame: &'a [u8],
    /// The base layer's size from the scalability structure, when sent.
    ss_size: Option<(u32, u32)>,
}

/// The picture size of a VP9 keyframe whose first RTP packet this is: from
/// the descriptor's scalability structure when it has one (libwebrtc sends it
/// with every keyframe), else from the keyframe's uncompressed header (VP9
/// bitstream spec §6.2: frame marker, profile, frame type, sync code
/// 49 83 42, colour config, then 16-bit width − 1 and height − 1).
pub fn vp9_keyframe_resolution(payload: &[u8]) -> Option<(u32, u32)> {
    let start = vp9_keyframe_start(payload)?;
    if let Some((w, h)) = start.ss_size.filter(|&(w, h)| w > 0 && h > 0) {
        return Some((w, h));
    }
    vp9_frame_keyframe_size(start.frame)
}

/// The size in a VP9 frame's uncompressed header (VP9 spec §6.2) when the
/// frame is a keyframe, else `None`: for a sender, which has whole frames.
pub fn vp9_frame_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader { data: frame, pos: 0 };
    if r.bits(2)? != 2 {
        return None; // frame_marker
    }
    let profile = {
        let low = r.bits(1)?;
        let high = r.bits(1)?;
        (high << 1) | low
    };
    if profile == 3 {
        r.bits(1)?;
    }
    if r.bits(1)? == 1 {
        return None; // show_existing_frame: no header of its own
    }
    if r.bits(1)? != 0 {
        return None; // frame_type: not a key frame
    }
    r.bits(2)?; // show_frame, error_resilient_mode
    if r.bits(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        r.bits(1)?; // ten_or_twelve_bit
    }
    let color_space = r.bits(3)?;
    const CS_RGB: u32 = 7;
    if color_space != CS_RGB {
        r.bits(1)?; // color_range
        if profile == 1 || profile == 3 {
            r.bits(3)?; // subsampling_x, subsampling_y, reserved
        }
    } else if profile == 1 || profile == 3 {
        r.bits(1)?;
    }
    let width = r.bits(16)? + 1;
    let height = r.bits(16)? + 1;
    Some((width, height))
}

/// AV1 RTP aggregation header (AV1 RTP spec §4.4): |Z|Y|W|W|N|-|-|-|.
const AV1_Z: u8 = 0x80;
const AV1_N: u8 = 0x08;
const OBU_SEQUENCE_HEADER: u8 = 1;

/// Whether an AV1 RTP payload is the first packet of a new coded video
/// sequence (N = 1, and it does not continue an OBU of an earlier packet):
/// what a sender sets on every keyframe's first packet.
fn av1_starts_keyframe(payload: &[u8]) -> bool {
    payload.first().is_some_and(|&h| h & AV1_N != 0 && h & AV1_Z == 0)
}

/// The OBU elements of an AV1 RTP payload (each a whole OBU, or a fragment
/// of one at either end), in order; stops at the first malformed length.
fn av1_obu_elements(payload: &[u8]) -> Vec<&[u8]> {
    let mut elements = Vec::new();
    let Some(&header) = payload.first() else { return elements };
    let count = usize::from((header >> 4) & 0x03); // W: 0 = every element has a length
    let mut rest = &payload[1..];
    while !rest.is_empty() {
        let last_without_length = count != 0 && elements.len() + 1 == count;
        if last_without_length {
            elements.push(rest);
            break;
        }
        let Some((length, used)) = leb128(rest) else { break };
        let Some(element) = usize::try_from(length).ok().and_then(|l| rest.get(used..used.checked_add(l)?)) else {
            break;
        };
        elements.push(element);
        rest = &rest[used + element.len()..];
    }
    elements
}

/// An unsigned LEB128 number (at most 8 bytes, as AV1 allows) and the bytes
/// it took.
pub fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The maximum frame size of the sequence header OBU in this AV1 RTP payload
/// (AV1 spec §5.5: what a real-time encoder sends as its frame size), when
/// the payload starts a coded video sequence and carries one.
pub fn av1_keyframe_resolution(payload: &[u8]) -> Option<(u32, u32)> {
    if !av1_starts_keyframe(payload) {
        return None;
    }
    av1_obu_elements(payload).into_iter().find_map(av1_sequence_header_resolution)
}

/// The maximum frame width and height of a sequence header OBU (OBU header
/// included; `None` for any other OBU or a truncated one).
fn av1_sequence_header_resolution(obu: &[u8]) -> Option<(u32, u32)> {
    // |F|type(4)|X|S|-|, an extension byte if X, a LEB128 size if S.
    let header = *obu.first()?;
    if (header >> 3) & 0x0f != OBU_SEQUENCE_HEADER {
        return None;
    }
    let mut at = 1 + usize::from(header & 0x04 != 0);
    if header & 0x02 != 0 {
        at += leb128(obu.get(at..)?)?.1;
    }
    let mut r = BitReader { data: obu.get(at..)?, pos: 0 };
    r.bits(3)?; // seq_profile
    r.bits(1)?; // still_picture
    if r.bits(1)? == 1 {
        r.bits(5)?; // reduced_still_picture_header: seq_level_idx[0]
    } else {
        let timing_info = r.bits(1)? == 1;
        let mut decoder_model_info = false;
        let mut buffer_delay_bits = 0;
        if timing_info {
            r.bits(32)?; // num_units_in_display_tick
            r.bits(32)?; // time_scale
            if r.bits(1)? == 1 {
                r.uvlc()?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info = r.bits(1)? == 1;
            if decoder_model_info {
                buffer_delay_bits = r.bits(5)? + 1;
                r.bits(32)?; // num_units_in_decoding_tick
                r.bits(10)?; // buffer_removal_time_length_minus_1, frame_presentation_time_length_minus_1
            }
        }
        let initial_display_delay = r.bits(1)? == 1;
        let operating_points = r.bits(5)? + 1;
        for _ in 0..operating_points {
            r.bits(12)?; // operating_point_idc
            if r.bits(5)? > 7 {
                r.bits(1)?; // seq_tier
            }
            if decoder_model_info && r.bits(1)? == 1 {
                r.bits(buffer_delay_bits)?;
                r.bits(buffer_delay_bits)?;
                r.bits(1)?; // low_delay_mode_flag
            }
            if initial_display_delay && r.bits(1)? == 1 {
                r.bits(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = r.bits(width_bits)?.checked_add(1)?;
    let height = r.bits(height_bits)?.checked_add(1)?;
    Some((width, height))
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

    /// AV1's variable-length unsigned number (AV1 spec §4.10.3).
    fn uvlc(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros >= 32 {
                return None;
            }
        }
        self.bits(zeros)?.checked_add((1u32 << zeros) - 1)
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

    /// Writes bits MSB first, for building headers in tests.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        fn put(&mut self, n: u32, value: u32) -> &mut Self {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                if let Some(last) = self.bytes.last_mut() {
                    *last |= bit << (7 - (self.bits % 8));
                }
                self.bits += 1;
            }
            self
        }
    }

    /// A VP9 profile-0 keyframe's uncompressed header, up to the frame size.
    fn vp9_keyframe_header(width: u32, height: u32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.put(2, 2).put(2, 0).put(1, 0).put(1, 0).put(1, 1).put(1, 0); // marker, profile 0, key, shown
        w.put(24, 0x49_83_42).put(3, 2).put(1, 0); // sync code, colour space, range
        w.put(16, width - 1).put(16, height - 1);
        w.bytes
    }

    #[test]
    fn vp9_keyframes_and_picture_size() {
        // Flexible mode, 15-bit picture id, B = 1, no SS: the size comes from
        // the uncompressed header.
        let mut key = vec![0x98, 0x80, 0x01];
        key.extend(vp9_keyframe_header(640, 360));
        assert!(Codec::Vp9.is_keyframe_start(&key));
        assert_eq!(Codec::Vp9.keyframe_resolution(&key), Some((640, 360)));
        // With a scalability structure (V = 1, one spatial layer, Y = 1):
        // its size wins.
        let mut with_ss = vec![0x9a, 0x80, 0x01, 0x10, 0x05, 0x00, 0x02, 0xd0];
        with_ss.extend(vp9_keyframe_header(640, 360));
        assert_eq!(vp9_keyframe_resolution(&with_ss), Some((1280, 720)));
        // SS with a picture group (G = 1, two pictures, one with a P_DIFF).
        let mut with_group = vec![0x9a, 0x80, 0x01, 0x18, 0x05, 0x00, 0x02, 0xd0, 0x02, 0x04, 0x24, 0x01];
        with_group.extend(vp9_keyframe_header(320, 180));
        assert_eq!(vp9_keyframe_resolution(&with_group), Some((1280, 720)));
        // Inter-predicted (P = 1), not the start of a frame (B = 0), a higher
        // spatial layer (L = 1, SID = 1): not a keyframe start.
        let mut inter = key.clone();
        inter[0] |= 0x40;
        assert!(!Codec::Vp9.is_keyframe_start(&inter));
        let mut middle = key.clone();
        middle[0] &= !0x08;
        assert!(!Codec::Vp9.is_keyframe_start(&middle));
        let upper = [0xb8, 0x80, 0x01, 0x02, 0x00];
        assert!(!Codec::Vp9.is_keyframe_start(&upper));
        let base = [0xb8, 0x80, 0x01, 0x00, 0x00];
        assert!(Codec::Vp9.is_keyframe_start(&base));
        // A non-key frame header behind a P = 0 descriptor has no size.
        let mut not_key = key.clone();
        not_key[3] |= 0x04;
        assert_eq!(vp9_keyframe_resolution(&not_key), None);
        assert_eq!(vp9_keyframe_resolution(&key[..8]), None);
    }

    /// An AV1 sequence header OBU (with its size field) for a max frame size.
    fn av1_sequence_header(width: u32, height: u32, timing: bool) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.put(3, 0).put(1, 0).put(1, 0); // profile, still picture, reduced header
        w.put(1, u32::from(timing));
        if timing {
            w.put(32, 1).put(32, 90_000).put(1, 1).put(3, 0b010); // equal picture interval, uvlc 1
            w.put(1, 1).put(5, 9).put(32, 1).put(10, 0); // decoder model info, 10-bit delays
        }
        w.put(1, 1).put(5, 0); // initial display delay present, one operating point
        w.put(12, 0).put(5, 8).put(1, 0); // idc, level 8 (> 7: tier)
        if timing {
            w.put(1, 1).put(10, 5).put(10, 6).put(1, 1); // decoder model for this point
        }
        w.put(1, 1).put(4, 3); // initial display delay for this point
        w.put(4, 10).put(4, 9).put(11, width - 1).put(10, height - 1);
        w.put(8, 0xff); // the rest, not read
        let body = w.bytes;
        let mut obu = vec![0x0a, body.len() as u8];
        obu.extend(body);
        obu
    }

    #[test]
    fn av1_keyframes_and_picture_size() {
        // N = 1, W = 1: one element without a length.
        let mut key = vec![0x18];
        key.extend(av1_sequence_header(1280, 720, false));
        assert!(Codec::Av1.is_keyframe_start(&key));
        assert_eq!(Codec::Av1.keyframe_resolution(&key), Some((1280, 720)));
        // W = 0: every element has a length; the sequence header second,
        // with timing and decoder model info.
        let seq = av1_sequence_header(640, 360, true);
        let mut two = vec![0x08, 0x02, 0x12, 0x00];
        two.push(seq.len() as u8);
        two.extend(&seq);
        assert_eq!(av1_keyframe_resolution(&two), Some((640, 360)));
        // W = 2: the first element has a length, the last not.
        let mut w2 = vec![0x28, 0x02, 0x12, 0x00];
        w2.extend(&seq);
        assert_eq!(av1_keyframe_resolution(&w2), Some((640, 360)));
        // N = 0, or Z = 1 (continues an OBU): no keyframe start, no size.
        let mut not_new = key.clone();
        not_new[0] = 0x10;
        assert!(!Codec::Av1.is_keyframe_start(&not_new));
        assert_eq!(av1_keyframe_resolution(&not_new), None);
        let mut continued = key.clone();
        continued[0] |= 0x80;
        assert!(!Codec::Av1.is_keyframe_start(&continued));
        // Truncated or lying lengths: none, no panic.
        assert_eq!(av1_keyframe_resolution(&key[..5]), None);
        assert_eq!(av1_keyframe_resolution(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), None);
    }

    #[test]
    fn names_and_mime_types() {
        for (mime, codec) in [
            ("video/H264", Codec::H264),
            ("video/VP8", Codec::Vp8),
            ("video/vp9", Codec::Vp9),
            ("video/AV1", Codec::Av1),
            ("audio/opus", Codec::Other),
        ] {
            assert_eq!(Codec::from_mime(mime), codec);
        }
        assert_eq!(Codec::Av1.name(), "AV1");
        assert_eq!(Codec::from_name(" VP9"), Some(Codec::Vp9));
        assert_eq!(Codec::from_name("opus"), None);
        assert_eq!(Codec::Vp9.name(), "VP9");
    }

    #[test]
    fn any_bytes_never_panic() {
        let mut seed = 0x2545_f491_u32;
        for len in 0..200usize {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        seed as u8
                    })
                    .collect();
                for codec in [Codec::H264, Codec::Vp8, Codec::Vp9, Codec::Av1, Codec::Other] {
                    let _ = codec.starts_keyframe(&bytes);
                    let _ = codec.keyframe_resolution(&bytes);
                }
            }
        }
    }
}
