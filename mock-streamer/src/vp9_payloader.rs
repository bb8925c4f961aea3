//! RTP packetization of VP9 (RFC 9628, flexible mode, one spatial layer).
//!
//! webrtc-rs's `Vp9Payloader` marks every frame as not inter-predicted
//! (P = 0) and never references earlier pictures, so a receiver or an SFU
//! that looks for keyframes the way RFC 9628 says (B = 1, P = 0) sees one in
//! every frame. This one reads the frame type from each frame's uncompressed
//! header: keyframes go out with P = 0 and the scalability structure (the
//! picture size, as libwebrtc sends it); other frames with P = 1 and one
//! reference, the picture before (P_DIFF = 1).

use bytes::{BufMut, Bytes, BytesMut};
use rtc::rtp::packetizer::Payloader;

/// Largest descriptor: flags, 15-bit picture id, then a P_DIFF byte or a
/// 5-byte scalability structure.
const MAX_DESCRIPTOR: usize = 1 + 2 + 5;

#[derive(Debug, Clone)]
pub struct Vp9Payloader {
    picture_id: u16,
}

impl Default for Vp9Payloader {
    fn default() -> Self {
        Vp9Payloader { picture_id: rand::random::<u16>() & 0x7fff }
    }
}

/// Whether a VP9 frame (by its uncompressed header) is a key
/// frame, and its size when it is.
fn keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    let (w, h) = proto::rtp_payload::vp9_frame_keyframe_size(frame)?;
    Some((u16::try_from(w).ok()?, u16::try_from(h).ok()?))
}

impl Payloader for Vp9Payloader {
    fn payload(&mut self, mtu: usize, payload: &Bytes) -> Result<Vec<Bytes>, rtc::shared::error::Error> {
        if payload.is_empty() || mtu <= MAX_DESCRIPTOR {
            return Ok(vec![]);
        }
        let key = keyframe_size(payload);
        let mut packets = Vec::new();
        let mut at = 0;
        while at < payload.len() {
            let first = at == 0;
            let mut descriptor = [0u8; MAX_DESCRIPTOR];
            // I = 1, F = 1; P when inter-predicted; B on the first packet;
            // V on a keyframe's first packet.
            descriptor[0] = 0x90;
            if key.is_none() {
                descriptor[0] |= 0x40;
            }
            if first {
                descriptor[0] |= 0x08;
            }
            descriptor[1] = 0x80 | (self.picture_id >> 8) as u8;
            descriptor[2] = (self.picture_id & 0xff) as u8;
            let mut len = 3;
            match key {
                None => {
                    descriptor[3] = 1 << 1; // P_DIFF = 1, N = 0
                    len += 1;
                }
                Some((w, h)) if first => {
                    descriptor[0] |= 0x02;
                    descriptor[3] = 0x10; // N_S = 0, Y = 1, G = 0
                    descriptor[4..6].copy_from_slice(&w.to_be_bytes());
                    descriptor[6..8].copy_from_slice(&h.to_be_bytes());
                    len += 5;
                }
                Some(_) => {}
            }
            let take = (mtu - len).min(payload.len() - at);
            if at + take == payload.len() {
                descriptor[0] |= 0x04; // E
            }
            let mut out = BytesMut::with_capacity(len + take);
            out.put_slice(&descriptor[..len]);
            out.put_slice(&payload[at..at + take]);
            packets.push(out.freeze());
            at += take;
        }
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        Ok(packets)
    }

    fn clone_to(&self) -> Box<dyn Payloader> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::rtp_payload::Codec;

    /// A VP9 profile-0 keyframe header for 640x360 (see proto's tests).
    fn key_header() -> Vec<u8> {
        // 10 00 0 0 1 0 | 49 83 42 | 010 0 | w-1 (16) | h-1 (16)
        let mut bits: Vec<u8> = Vec::new();
        let mut push = |n: u32, v: u32| (0..n).rev().for_each(|i| bits.push(((v >> i) & 1) as u8));
        push(2, 2);
        push(2, 0);
        push(1, 0);
        push(1, 0);
        push(1, 1);
        push(1, 0);
        push(24, 0x49_83_42);
        push(3, 2);
        push(1, 0);
        push(16, 639);
        push(16, 359);
        bits.chunks(8).map(|c| c.iter().enumerate().fold(0u8, |b, (i, &bit)| b | bit << (7 - i))).collect()
    }

    #[test]
    fn keyframes_and_inter_frames() {
        let mut p = Vp9Payloader::default();
        let mut key = key_header();
        key.resize(3000, 0xaa);
        let packets = p.payload(1200, &Bytes::from(key)).unwrap();
        assert_eq!(packets.len(), 3);
        assert!(Codec::Vp9.is_keyframe_start(&packets[0]));
        assert_eq!(Codec::Vp9.keyframe_resolution(&packets[0]), Some((640, 360)));
        assert!(!Codec::Vp9.is_keyframe_start(&packets[1]), "not the start of the frame");
        assert_eq!(packets[2][0] & 0x04, 0x04, "E on the last packet");
        assert!(packets.iter().all(|p| p.len() <= 1200));

        // An inter frame (frame_type = 1): P = 1 with one P_DIFF, no keyframe.
        let mut inter = vec![0x86, 0x00];
        inter.resize(500, 0x55);
        let packets = p.payload(1200, &Bytes::from(inter)).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0][0], 0x90 | 0x40 | 0x08 | 0x04);
        assert_eq!(packets[0][3], 0x02);
        assert!(!Codec::Vp9.is_keyframe_start(&packets[0]));
    }
}
