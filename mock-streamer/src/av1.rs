//! AV1 encoding with SVT-AV1 (Debian's `libsvtav1enc-dev`), through a small C
//! shim (`csrc/svt_av1_shim.c`, built by `build.rs`) so that the library's
//! large configuration struct is only ever read by a C compiler from the
//! installed headers. Set up for real time: preset [`AV1_PRESET`], low-delay
//! prediction, no lookahead or temporal filtering, CBR, one logical
//! processor, no periodic keyframes. SVT-AV1 1.4 forces keyframes only in
//! random-access CRF/CQP mode (it refuses `force_key_frames` otherwise), so a
//! keyframe request opens a new encoder, whose first frame is a keyframe
//! with the sequence header (measured cost in `mock-streamer/README.md`).
//!
//! Why SVT-AV1 and not rav1e: on the test pattern at 1280×720 and 2 Mbit/s
//! on one thread here, SVT-AV1 preset 12 took 19 ms of CPU per frame (57 % of
//! a core at 30 fps) and rav1e at its fastest speed (10, low latency) 400 ms
//! (12 cores' worth): see `mock-streamer/README.md`.
//!
//! SVT-AV1 encodes on threads of its own: a frame's packet is usually ready
//! by the next frame, so [`Av1Encoder::encode`] returns what is ready
//! (typically the previous frame) without waiting, one frame per call: two
//! frames in one picture would go out under one RTP timestamp, which a
//! decoder takes for one broken temporal unit (seen as stalls in Chromium).

use std::collections::VecDeque;
use std::ffi::c_void;

use proto::rtp_payload::leb128;

use crate::encoder::{EncodedPicture, EncoderError};
use crate::pattern::I420Frame;

/// SVT-AV1's speed preset (0–13, higher is faster): 12 holds 1280×720 at
/// 30 fps in about half a core here.
pub const AV1_PRESET: i32 = 12;

extern "C" {
    fn shim_svt_open(width: u32, height: u32, fps: u32, bitrate_bps: u32, preset: i32, out: *mut *mut c_void) -> i32;
    fn shim_svt_stream_header(e: *mut c_void, buf: *mut u8, cap: u32) -> i32;
    fn shim_svt_send(
        e: *mut c_void,
        y: *const u8,
        u: *const u8,
        v: *const u8,
        y_stride: u32,
        uv_stride: u32,
        force_key: i32,
    ) -> i32;
    fn shim_svt_receive(e: *mut c_void, buf: *mut u8, cap: u32, key: *mut i32) -> i32;
    fn shim_svt_close(e: *mut c_void) -> i32;
}

/// An SVT-AV1 encoder for one resolution.
pub struct Av1Encoder {
    handle: *mut c_void,
    width: u32,
    height: u32,
    bitrate_bps: u32,
    fps: u32,
    /// The sequence header OBU, put before a keyframe that lacks one.
    sequence_header: Vec<u8>,
    /// The current encoder's first frame (a keyframe) has not come out yet:
    /// a keyframe request is already being met. (Opening again would throw
    /// it away with the encoder's pipeline, and requests repeated faster
    /// than the pipeline's delay would then starve every player.)
    keyframe_pending: bool,
    /// Frames out of the encoder not yet returned (it sometimes hands over
    /// two at once).
    ready: VecDeque<EncodedPicture>,
    buf: Vec<u8>,
}

// SAFETY: the encoder handle has no thread affinity and is used through
// `&mut self` only.
unsafe impl Send for Av1Encoder {}

impl std::fmt::Debug for Av1Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Av1Encoder({}x{})", self.width, self.height)
    }
}

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;

fn obu_type(header: u8) -> u8 {
    (header >> 3) & 0x0f
}

/// Whether a low-overhead bitstream (OBUs with size fields) carries a
/// sequence header before its first frame: skips temporal delimiters.
fn has_sequence_header(mut data: &[u8]) -> bool {
    while let Some(&header) = data.first() {
        match obu_type(header) {
            OBU_SEQUENCE_HEADER => return true,
            OBU_TEMPORAL_DELIMITER => {
                // [header][extension?][leb128 size][payload]
                let at = 1 + usize::from(header & 0x04 != 0);
                let Some((size, used)) = leb128(data.get(at..).unwrap_or_default()) else { return false };
                let Ok(size) = usize::try_from(size) else { return false };
                data = data.get(at.saturating_add(used).saturating_add(size)..).unwrap_or_default();
            }
            _ => return false,
        }
    }
    false
}

impl Av1Encoder {
    pub fn new(width: u32, height: u32, bitrate_bps: u32, fps: u32) -> Result<Self, EncoderError> {
        let capacity = (width as usize * height as usize * 3 / 2).max(64 * 1024);
        let mut encoder = Av1Encoder {
            handle: std::ptr::null_mut(),
            width,
            height,
            bitrate_bps,
            fps: fps.max(1),
            sequence_header: Vec::new(),
            keyframe_pending: false,
            ready: VecDeque::new(),
            buf: vec![0; capacity],
        };
        encoder.open()?;
        Ok(encoder)
    }

    /// Open a new encoder in place of the current one (if any): its first
    /// frame is a keyframe.
    fn open(&mut self) -> Result<(), EncoderError> {
        self.close();
        let (width, height) = (self.width, self.height);
        let mut handle = std::ptr::null_mut();
        // SAFETY: `handle` receives a new encoder on success.
        let err = unsafe { shim_svt_open(width, height, self.fps, self.bitrate_bps, AV1_PRESET, &mut handle) };
        if err != 0 || handle.is_null() {
            return Err(EncoderError::Av1(format!("cannot open SVT-AV1 ({width}x{height}): error {err:#x}")));
        }
        self.handle = handle;
        self.keyframe_pending = true;
        // Frames of the old encoder are superseded by the new one's keyframe.
        self.ready.clear();
        // SAFETY: handle is open; buf holds `cap` bytes.
        let n = unsafe { shim_svt_stream_header(handle, self.buf.as_mut_ptr(), self.buf.len() as u32) };
        if n > 0 && (n as usize) <= self.buf.len() {
            self.sequence_header = self.buf[..n as usize].to_vec();
        }
        Ok(())
    }

    fn close(&mut self) {
        if !self.handle.is_null() {
            // SAFETY: opened by `open`, closed once.
            if unsafe { shim_svt_close(self.handle) } != 0 {
                // Leaked rather than a hung video task (see the shim).
                tracing::warn!(
                    width = self.width,
                    height = self.height,
                    "SVT-AV1 did not end its stream; encoder left open"
                );
            }
            self.handle = std::ptr::null_mut();
        }
    }

    /// Send one frame (`keyframe`: start a new encoder, whose first frame is
    /// one, unless the current encoder's first frame is still on its way)
    /// and return what the encoder has ready: usually the previous frame;
    /// empty at the start.
    pub fn encode(&mut self, frame: &I420Frame, keyframe: bool) -> Result<EncodedPicture, EncoderError> {
        if frame.width != self.width as usize || frame.height != self.height as usize {
            return Err(EncoderError::Size { expected: (self.width, self.height), got: (frame.width, frame.height) });
        }
        if keyframe && !self.keyframe_pending {
            self.open()?;
        }
        let (y_stride, uv_stride) = (frame.width as u32, (frame.width / 2) as u32);
        // SAFETY: the planes are live and of the sizes the strides imply;
        // SVT-AV1 copies the picture before `send` returns.
        let err = unsafe {
            shim_svt_send(
                self.handle,
                frame.y.as_ptr(),
                frame.u.as_ptr(),
                frame.v.as_ptr(),
                y_stride,
                uv_stride,
                i32::from(keyframe),
            )
        };
        if err != 0 {
            return Err(EncoderError::Av1(format!("send: error {err:#x}")));
        }
        loop {
            let mut key = 0;
            // SAFETY: buf holds `cap` bytes; key is written.
            let n = unsafe { shim_svt_receive(self.handle, self.buf.as_mut_ptr(), self.buf.len() as u32, &mut key) };
            if n == 0 {
                break;
            }
            if n < 0 || n as usize > self.buf.len() {
                return Err(EncoderError::Av1(format!("receive: {n}")));
            }
            let packet = &self.buf[..n as usize];
            let mut picture = EncodedPicture { data: Vec::with_capacity(packet.len()), keyframe: key != 0 };
            if picture.keyframe && !has_sequence_header(packet) {
                // A receiver joining here needs the sequence header.
                picture.data.extend_from_slice(&self.sequence_header);
            }
            picture.data.extend_from_slice(packet);
            self.keyframe_pending &= !picture.keyframe;
            self.ready.push_back(picture);
        }
        Ok(self.ready.pop_front().unwrap_or(EncodedPicture { data: Vec::new(), keyframe: false }))
    }
}

impl Drop for Av1Encoder {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proto::rtp_payload::Codec;

    use super::*;
    use crate::encoder::payloader;
    use crate::pattern::TestPattern;

    /// Threads of this process under a real-time policy (SCHED_FIFO or
    /// SCHED_RR: field 41 of `/proc/self/task/<tid>/stat`).
    fn realtime_threads() -> usize {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
                let policy = after_name.split_whitespace().nth(38).and_then(|p| p.parse::<u32>().ok());
                matches!(policy, Some(1 | 2))
            })
            .count()
    }

    /// AV1 tests one at a time: the real-time check below counts every thread
    /// of the process, and another test's encoder opening at that moment has
    /// real-time threads until its open returns.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn keyframes_on_demand_with_a_sequence_header_and_packetized_as_keyframes() {
        let _serial = one_at_a_time();
        let mut pattern = TestPattern::new(320, 180);
        let mut encoder = Av1Encoder::new(320, 180, 300_000, 30).unwrap();
        assert_eq!(realtime_threads(), 0, "SVT-AV1's threads keep real-time priority");
        let mut pictures = Vec::new();
        for n in 0..40 {
            // A keyframe asked for first (a fresh encoder's first frame is one).
            let picture = encoder.encode(pattern.render(n), n == 0 || n == 20).unwrap();
            if !picture.data.is_empty() {
                pictures.push(picture);
            }
            // Paced as the streamer paces it (30 fps): SVT-AV1 encodes on
            // threads of its own and returns each frame about a frame later.
            std::thread::sleep(std::time::Duration::from_millis(33));
        }
        assert!(pictures.len() >= 30, "only {} pictures out of 40 frames", pictures.len());
        let keys: Vec<usize> = pictures.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| i).collect();
        assert_eq!(keys.len(), 2, "the first frame and the forced one: {keys:?}");
        assert_eq!(keys[0], 0);
        let mut p = payloader(Codec::Av1);
        for (i, picture) in pictures.iter().enumerate() {
            assert_eq!(has_sequence_header(&picture.data), picture.keyframe, "picture {i}");
            let packets = p.payload(1200, &Bytes::from(picture.data.clone())).unwrap();
            assert!(!packets.is_empty());
            assert_eq!(Codec::Av1.is_keyframe_start(&packets[0]), picture.keyframe, "picture {i}");
            if picture.keyframe {
                assert_eq!(Codec::Av1.keyframe_resolution(&packets[0]), Some((320, 180)));
            }
            assert!(packets[1..].iter().all(|p| !Codec::Av1.is_keyframe_start(p)));
        }
    }

    #[test]
    fn keyframe_requests_on_every_frame_do_not_starve_the_stream() {
        let _serial = one_at_a_time();
        let mut pattern = TestPattern::new(320, 180);
        let mut encoder = Av1Encoder::new(320, 180, 300_000, 30).unwrap();
        let (mut pictures, mut keys) = (0, 0);
        for n in 0..30 {
            let picture = encoder.encode(pattern.render(n), true).unwrap();
            pictures += usize::from(!picture.data.is_empty());
            keys += usize::from(picture.keyframe);
            std::thread::sleep(std::time::Duration::from_millis(33));
        }
        // Each request met opens a new encoder, losing the frames in the old
        // one's pipeline; none is met while a keyframe is still on its way.
        assert!(pictures >= 8 && keys >= 2, "{pictures} pictures, {keys} keyframes out of 30 frames");
    }

    /// An encoder dropped before its first frame (an error right after
    /// opening) used to hang in SVT-AV1's deinit, which waits for an end of
    /// stream such an encoder never produces; seen in CI when an assertion
    /// failed between opening and the first frame.
    #[test]
    fn an_encoder_dropped_before_its_first_frame_closes() {
        let _serial = one_at_a_time();
        let (done, closed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..3 {
                drop(Av1Encoder::new(320, 180, 300_000, 30).unwrap());
            }
            let _ = done.send(());
        });
        closed.recv_timeout(std::time::Duration::from_secs(20)).expect("closing an unused encoder hung");
    }
}
