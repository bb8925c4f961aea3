//! A minimal Opus encoder and decoder over the system's libopus, loaded at
//! run time (`dlopen("libopus.so.0")`): no build-time dependency, and
//! `--audio` fails with a clear error where libopus is not installed
//! (Debian: `libopus0`, which Chromium also pulls in).

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::OnceLock;

extern "C" {
    fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

const RTLD_NOW: c_int = 2;
const OPUS_APPLICATION_AUDIO: c_int = 2049;
/// Largest Opus packet we accept or produce.
const MAX_PACKET: usize = 4000;

type EncoderCreate = unsafe extern "C" fn(i32, c_int, c_int, *mut c_int) -> *mut c_void;
type Encode = unsafe extern "C" fn(*mut c_void, *const i16, c_int, *mut u8, i32) -> i32;
type DecoderCreate = unsafe extern "C" fn(i32, c_int, *mut c_int) -> *mut c_void;
type Decode = unsafe extern "C" fn(*mut c_void, *const u8, i32, *mut i16, c_int, c_int) -> c_int;
type Destroy = unsafe extern "C" fn(*mut c_void);

/// Opus errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpusError {
    #[error("libopus is not available ({0}); install libopus0")]
    NotAvailable(String),
    #[error("libopus error {0}")]
    Code(i32),
}

struct Lib {
    encoder_create: EncoderCreate,
    encode: Encode,
    encoder_destroy: Destroy,
    decoder_create: DecoderCreate,
    decode: Decode,
    decoder_destroy: Destroy,
}

fn lib() -> Result<&'static Lib, OpusError> {
    static LIB: OnceLock<Result<Lib, OpusError>> = OnceLock::new();
    LIB.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Lib, OpusError> {
    let mut handle = std::ptr::null_mut();
    for name in ["libopus.so.0", "libopus.so"] {
        let c = CString::new(name).map_err(|e| OpusError::NotAvailable(e.to_string()))?;
        // SAFETY: dlopen with a valid NUL-terminated name; the library stays
        // loaded for the life of the process (never dlclose'd).
        handle = unsafe { dlopen(c.as_ptr(), RTLD_NOW) };
        if !handle.is_null() {
            break;
        }
    }
    if handle.is_null() {
        return Err(OpusError::NotAvailable("dlopen libopus.so.0 failed".into()));
    }
    let sym = |name: &str| -> Result<*mut c_void, OpusError> {
        let c = CString::new(name).map_err(|e| OpusError::NotAvailable(e.to_string()))?;
        // SAFETY: valid handle and symbol name.
        let p = unsafe { dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(OpusError::NotAvailable(format!("symbol {name} missing")))
        } else {
            Ok(p)
        }
    };
    // SAFETY: the symbols are libopus's public functions with these C
    // signatures (opus.h).
    unsafe {
        Ok(Lib {
            encoder_create: std::mem::transmute::<*mut c_void, EncoderCreate>(sym("opus_encoder_create")?),
            encode: std::mem::transmute::<*mut c_void, Encode>(sym("opus_encode")?),
            encoder_destroy: std::mem::transmute::<*mut c_void, Destroy>(sym("opus_encoder_destroy")?),
            decoder_create: std::mem::transmute::<*mut c_void, DecoderCreate>(sym("opus_decoder_create")?),
            decode: std::mem::transmute::<*mut c_void, Decode>(sym("opus_decode")?),
            decoder_destroy: std::mem::transmute::<*mut c_void, Destroy>(sym("opus_decoder_destroy")?),
        })
    }
}

/// Whether libopus can be loaded here.
pub fn available() -> bool {
    lib().is_ok()
}

/// An Opus encoder (interleaved i16 PCM in, one packet per frame out).
pub struct OpusEncoder {
    lib: &'static Lib,
    state: *mut c_void,
    channels: usize,
}

// SAFETY: the encoder state is only used through &mut self.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    pub fn new(sample_rate: i32, channels: usize) -> Result<Self, OpusError> {
        let lib = lib()?;
        let mut err: c_int = 0;
        // SAFETY: valid arguments; err is a valid out pointer.
        let state = unsafe { (lib.encoder_create)(sample_rate, channels as c_int, OPUS_APPLICATION_AUDIO, &mut err) };
        if state.is_null() || err != 0 {
            return Err(OpusError::Code(err));
        }
        Ok(OpusEncoder { lib, state, channels })
    }

    /// Encode one frame (`pcm.len() / channels` samples per channel, a valid
    /// Opus frame size such as 960 at 48 kHz).
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, OpusError> {
        let frame_size = (pcm.len() / self.channels) as c_int;
        let mut out = vec![0u8; MAX_PACKET];
        // SAFETY: pcm holds frame_size * channels samples; out has MAX_PACKET bytes.
        let n = unsafe { (self.lib.encode)(self.state, pcm.as_ptr(), frame_size, out.as_mut_ptr(), MAX_PACKET as i32) };
        if n < 0 {
            return Err(OpusError::Code(n));
        }
        out.truncate(n as usize);
        Ok(out)
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: state came from opus_encoder_create and is dropped once.
        unsafe { (self.lib.encoder_destroy)(self.state) }
    }
}

/// An Opus decoder (for tests and tools).
pub struct OpusDecoder {
    lib: &'static Lib,
    state: *mut c_void,
    channels: usize,
}

// SAFETY: the decoder state is only used through &mut self.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    pub fn new(sample_rate: i32, channels: usize) -> Result<Self, OpusError> {
        let lib = lib()?;
        let mut err: c_int = 0;
        // SAFETY: valid arguments; err is a valid out pointer.
        let state = unsafe { (lib.decoder_create)(sample_rate, channels as c_int, &mut err) };
        if state.is_null() || err != 0 {
            return Err(OpusError::Code(err));
        }
        Ok(OpusDecoder { lib, state, channels })
    }

    /// Decode one packet into interleaved PCM.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<i16>, OpusError> {
        let max_frame = 5760; // 120 ms at 48 kHz
        let mut pcm = vec![0i16; max_frame * self.channels];
        let len = packet.len().min(i32::MAX as usize) as i32;
        // SAFETY: packet has len bytes; pcm has room for max_frame samples per channel.
        let n = unsafe { (self.lib.decode)(self.state, packet.as_ptr(), len, pcm.as_mut_ptr(), max_frame as c_int, 0) };
        if n < 0 {
            return Err(OpusError::Code(n));
        }
        pcm.truncate(n as usize * self.channels);
        Ok(pcm)
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: state came from opus_decoder_create and is dropped once.
        unsafe { (self.lib.decoder_destroy)(self.state) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_when_libopus_is_installed() {
        if !available() {
            eprintln!("libopus not installed: skipping");
            return;
        }
        let mut e = OpusEncoder::new(48_000, 2).unwrap();
        let mut d = OpusDecoder::new(48_000, 2).unwrap();
        let pcm: Vec<i16> = (0..960 * 2).map(|i| ((i / 2) as f64 * 0.05).sin().mul_add(8000.0, 0.0) as i16).collect();
        let packet = e.encode(&pcm).unwrap();
        assert!(!packet.is_empty());
        assert_eq!(d.decode(&packet).unwrap().len(), 960 * 2);
    }
}
