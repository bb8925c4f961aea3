//! VP8 and VP9 encoding with libvpx (Debian's `libvpx-dev`, through the
//! `env-libvpx-sys` bindings), set up as a WebRTC sender sets it up: the
//! real-time deadline at a fast speed, one thread, CBR at the bitrate, no
//! lag, error resilient, and keyframes only when asked for (the first frame
//! is one).
//!
//! The FFI is confined to this file; each call's contract is in a comment.

use std::ffi::c_int;
use std::mem::MaybeUninit;

use proto::rtp_payload::Codec;
use vpx_sys as vpx;

use crate::encoder::{EncodedPicture, EncoderError};
use crate::pattern::I420Frame;

/// libvpx's real-time speed for each codec: the fastest that keeps the
/// picture readable (VP8 accepts up to 16, VP9 up to 9; libwebrtc uses
/// 6–10 and 7–9 on slow machines).
const VP8_SPEED: c_int = 12;
const VP9_SPEED: c_int = 9;

/// A libvpx encoder for one codec at one resolution.
pub struct VpxEncoder {
    /// Boxed: libvpx keeps pointers into the context.
    ctx: Box<vpx::vpx_codec_ctx_t>,
    width: u32,
    height: u32,
    pts: i64,
}

// SAFETY: a libvpx context has no thread affinity; `VpxEncoder` is used by
// one thread at a time (`&mut self` for every call).
unsafe impl Send for VpxEncoder {}

impl std::fmt::Debug for VpxEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VpxEncoder({}x{})", self.width, self.height)
    }
}

fn check(what: &'static str, err: vpx::vpx_codec_err_t) -> Result<(), EncoderError> {
    if err == vpx::vpx_codec_err_t::VPX_CODEC_OK {
        Ok(())
    } else {
        Err(EncoderError::Vpx(what, format!("{err:?}")))
    }
}

impl VpxEncoder {
    /// A VP8 or VP9 (profile 0) encoder for `width`×`height` pictures.
    pub fn new(codec: Codec, width: u32, height: u32, bitrate_bps: u32, fps: u32) -> Result<Self, EncoderError> {
        let (iface, speed) = match codec {
            // SAFETY: both return a pointer to a static interface table.
            Codec::Vp8 => (unsafe { vpx::vpx_codec_vp8_cx() }, VP8_SPEED),
            Codec::Vp9 => (unsafe { vpx::vpx_codec_vp9_cx() }, VP9_SPEED),
            other => return Err(EncoderError::Unsupported(other.name())),
        };
        let mut cfg = MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::zeroed();
        // SAFETY: fills the whole configuration for this interface.
        check("default configuration", unsafe { vpx::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0) })?;
        // SAFETY: initialised by the call above (which succeeded).
        let mut cfg = unsafe { cfg.assume_init() };
        cfg.g_w = width;
        cfg.g_h = height;
        cfg.g_timebase = vpx::vpx_rational { num: 1, den: fps.max(1) as c_int };
        cfg.g_threads = 1;
        cfg.g_lag_in_frames = 0;
        cfg.g_error_resilient = 1; // VPX_ERROR_RESILIENT_DEFAULT
        cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
        cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = (bitrate_bps / 1000).max(50);
        cfg.rc_dropframe_thresh = 0;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        cfg.rc_undershoot_pct = 50;
        cfg.rc_overshoot_pct = 50;
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 56;
        // VPX_KF_DISABLED (= VPX_KF_FIXED): keyframes only when forced.
        cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_FIXED;
        cfg.kf_min_dist = 0;
        cfg.kf_max_dist = 0;
        let mut ctx: Box<vpx::vpx_codec_ctx_t> = Box::new(
            // SAFETY: an all-zero context is the documented "uninitialised" state.
            unsafe { MaybeUninit::zeroed().assume_init() },
        );
        // SAFETY: ctx and cfg are valid; the ABI version is the headers'.
        check("init", unsafe {
            vpx::vpx_codec_enc_init_ver(&mut *ctx, iface, &cfg, 0, vpx::VPX_ENCODER_ABI_VERSION as c_int)
        })?;
        let mut encoder = VpxEncoder { ctx, width, height, pts: 0 };
        encoder.control(vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int, speed)?;
        if codec == Codec::Vp9 {
            encoder.control(vpx::vp8e_enc_control_id::VP9E_SET_TILE_COLUMNS as c_int, 0)?;
            encoder.control(vpx::vp8e_enc_control_id::VP9E_SET_ROW_MT as c_int, 0)?;
            // Cyclic refresh, as libwebrtc's VP9 encoder runs.
            encoder.control(vpx::vp8e_enc_control_id::VP9E_SET_AQ_MODE as c_int, 3)?;
        } else {
            encoder.control(vpx::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD as c_int, 1)?;
        }
        Ok(encoder)
    }

    fn control(&mut self, id: c_int, value: c_int) -> Result<(), EncoderError> {
        // SAFETY: every control used here takes one int.
        check("control", unsafe { vpx::vpx_codec_control_(&mut *self.ctx, id, value) })
    }

    /// Encode one frame; `keyframe` forces one.
    pub fn encode(&mut self, frame: &I420Frame, keyframe: bool) -> Result<EncodedPicture, EncoderError> {
        if frame.width != self.width as usize || frame.height != self.height as usize {
            return Err(EncoderError::Size { expected: (self.width, self.height), got: (frame.width, frame.height) });
        }
        let mut img = MaybeUninit::<vpx::vpx_image_t>::zeroed();
        // SAFETY: wraps (does not copy) the Y plane; the chroma planes and
        // strides are then pointed at our separate U and V planes. libvpx
        // only reads through them, during `vpx_codec_encode`, while `frame`
        // is borrowed.
        let img = unsafe {
            let wrapped = vpx::vpx_img_wrap(
                img.as_mut_ptr(),
                vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
                self.width,
                self.height,
                1,
                frame.y.as_ptr().cast_mut(),
            );
            if wrapped.is_null() {
                return Err(EncoderError::Vpx("image", "cannot wrap the frame".into()));
            }
            let mut img = img.assume_init();
            img.planes[1] = frame.u.as_ptr().cast_mut();
            img.planes[2] = frame.v.as_ptr().cast_mut();
            img.stride[0] = frame.width as c_int;
            img.stride[1] = (frame.width / 2) as c_int;
            img.stride[2] = (frame.width / 2) as c_int;
            img
        };
        let flags = if keyframe { vpx::VPX_EFLAG_FORCE_KF as vpx::vpx_enc_frame_flags_t } else { 0 };
        // SAFETY: ctx is initialised; img points at live planes of the right size.
        check("encode", unsafe {
            vpx::vpx_codec_encode(&mut *self.ctx, &img, self.pts, 1, flags, vpx::VPX_DL_REALTIME.into())
        })?;
        self.pts += 1;
        let mut picture = EncodedPicture { data: Vec::new(), keyframe: false };
        let mut iter: vpx::vpx_codec_iter_t = std::ptr::null();
        loop {
            // SAFETY: iterates the packets of the last encode; each stays
            // valid until the next call on this context.
            let packet = unsafe { vpx::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            // SAFETY: null or a valid packet (see above).
            let Some(packet) = (unsafe { packet.as_ref() }) else { break };
            if packet.kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: a frame packet's union member is `frame`, whose buffer
            // holds `sz` bytes.
            let frame = unsafe { packet.data.frame };
            let Ok(len) = usize::try_from(frame.sz) else { continue };
            let bytes = unsafe { std::slice::from_raw_parts(frame.buf.cast::<u8>(), len) };
            picture.data.extend_from_slice(bytes);
            picture.keyframe |= frame.flags & vpx::VPX_FRAME_IS_KEY != 0;
        }
        Ok(picture)
    }
}

impl Drop for VpxEncoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { vpx::vpx_codec_destroy(&mut *self.ctx) };
    }
}

/// Decode VP8 or VP9 with libvpx and return each picture's size: for tests
/// and benches, to prove the bitstream.
pub fn decoded_sizes(codec: Codec, frames: &[Vec<u8>]) -> Result<Vec<(u32, u32)>, EncoderError> {
    let iface = match codec {
        // SAFETY: static interface tables.
        Codec::Vp8 => unsafe { vpx::vpx_codec_vp8_dx() },
        Codec::Vp9 => unsafe { vpx::vpx_codec_vp9_dx() },
        other => return Err(EncoderError::Unsupported(other.name())),
    };
    // SAFETY: zeroed is the uninitialised state; init with default config.
    let mut ctx: Box<vpx::vpx_codec_ctx_t> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
    check("decoder init", unsafe {
        vpx::vpx_codec_dec_init_ver(&mut *ctx, iface, std::ptr::null(), 0, vpx::VPX_DECODER_ABI_VERSION as c_int)
    })?;
    let mut sizes = Vec::new();
    let mut result = Ok(());
    for data in frames {
        // SAFETY: data is a live buffer of data.len() bytes.
        let err =
            unsafe { vpx::vpx_codec_decode(&mut *ctx, data.as_ptr(), data.len() as u32, std::ptr::null_mut(), 0) };
        if let Err(e) = check("decode", err) {
            result = Err(e);
            break;
        }
        let mut iter: vpx::vpx_codec_iter_t = std::ptr::null();
        // SAFETY: pictures of the last decode, valid until the next call.
        while let Some(img) = unsafe { vpx::vpx_codec_get_frame(&mut *ctx, &mut iter).as_ref() } {
            sizes.push((img.d_w, img.d_h));
        }
    }
    // SAFETY: initialised above, destroyed once.
    unsafe { vpx::vpx_codec_destroy(&mut *ctx) };
    result.map(|()| sizes)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::encoder::payloader;
    use crate::pattern::TestPattern;

    #[test]
    fn keyframes_on_demand_decodable_and_packetized_as_keyframes() {
        for codec in [Codec::Vp8, Codec::Vp9] {
            let mut pattern = TestPattern::new(320, 180);
            let mut encoder = VpxEncoder::new(codec, 320, 180, 300_000, 30).unwrap();
            let mut frames = Vec::new();
            let mut keys = Vec::new();
            for n in 0..12 {
                let picture = encoder.encode(pattern.render(n), n == 8).unwrap();
                assert!(!picture.data.is_empty(), "{codec:?}: frame {n} empty");
                keys.push(picture.keyframe);
                frames.push(picture.data);
            }
            let expected: Vec<bool> = (0..12).map(|n| n == 0 || n == 8).collect();
            assert_eq!(keys, expected, "{codec:?}: keyframes first and when forced only");
            // A real decoder proves the bitstream.
            let sizes = decoded_sizes(codec, &frames).unwrap();
            assert_eq!(sizes, vec![(320, 180); 12], "{codec:?}");
            // Packetized: the first packet of a keyframe is a keyframe start
            // with the picture size; no other packet is.
            let mut p = payloader(codec);
            for (n, frame) in frames.iter().enumerate() {
                let packets = p.payload(1200, &Bytes::from(frame.clone())).unwrap();
                for (i, packet) in packets.iter().enumerate() {
                    let key = codec.is_keyframe_start(packet);
                    assert_eq!(key, i == 0 && expected[n], "{codec:?} frame {n} packet {i}");
                    if key {
                        assert_eq!(codec.keyframe_resolution(packet), Some((320, 180)), "{codec:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_frame_of_another_size_is_an_error() {
        let mut encoder = VpxEncoder::new(Codec::Vp8, 320, 180, 300_000, 30).unwrap();
        let mut pattern = TestPattern::new(160, 90);
        assert!(matches!(encoder.encode(pattern.render(0), false), Err(EncoderError::Size { .. })));
    }
}
