//! The binary Pixel Streaming data-channel messages (`datachannel.md`), both
//! directions.
//!
//! Every message is one binary frame: byte 0 is the message id, then the
//! payload, numbers little-endian.
//!
//! # Strings: the two directions differ
//!
//! Checked against Epic's browser frontend (`EpicGamesExt/PixelStreamingInfrastructure`,
//! `Frontend/library`):
//!
//! - **Player → streamer** strings carry a `u16` count of UTF-16 code units,
//!   then the UTF-16LE units. `SendMessageController.sendMessageToStreamer`
//!   writes `setUint16(len)` then one `setUint16(charCodeAt(i))` per unit for
//!   every field whose type in the Protocol table is `"string"`
//!   (UIInteraction, Command, LatencyTest, …).
//! - **Streamer → player** strings are **raw UTF-16LE to the end of the
//!   message, with no length prefix**: the frontend decodes Response, Command,
//!   InitialSettings, LatencyTest, VideoEncoderAvgQP, GamepadResponse,
//!   DataChannelLatencyTest and Protocol with
//!   `new TextDecoder('utf-16').decode(message.slice(1))`, and Epic's own
//!   JS streamer (`Extras/JSStreamer`) encodes them as `only_string`. A length
//!   prefix would show up as two garbage characters and break `JSON.parse`.
//!
//! The frontend encodes player → streamer messages from the `Protocol` table
//! the streamer sends ([`to_streamer_protocol_json`]), so that table and
//! [`ToStreamer::decode`] must agree; both come from [`TO_STREAMER_PROTOCOL`].
//! Its default table has `TestEcho` and `DataChannelLatencyTest` with no
//! fields; ours declares one `"string"` (what the frontend sends for them) and
//! the decoder also accepts an empty payload for those two.
//!
//! Decoding never panics: truncated payloads, trailing bytes, odd UTF-16
//! lengths, unpaired surrogates and unknown ids are all [`DataChannelError`]s.

use std::fmt;

use serde_json::{Map, Value};

/// Why a data-channel message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataChannelError {
    #[error("empty message (no id byte)")]
    Empty,
    #[error("unknown message id {0}")]
    UnknownId(u8),
    #[error("{name}: payload truncated (needed {needed} more bytes, {had} left)")]
    Truncated { name: &'static str, needed: usize, had: usize },
    #[error("{name}: {extra} unexpected trailing bytes")]
    TrailingBytes { name: &'static str, extra: usize },
    #[error("{name}: odd UTF-16 byte length {len}")]
    OddUtf16Length { name: &'static str, len: usize },
    #[error("{name}: invalid UTF-16 (unpaired surrogate)")]
    InvalidUtf16 { name: &'static str },
}

/// One touch point of a touch message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// Normalised 0..=65535 across the video.
    pub x: u16,
    pub y: u16,
    pub id: u8,
    pub force: u8,
    pub valid: bool,
}

/// Player → streamer messages.
#[derive(Debug, Clone, PartialEq)]
pub enum ToStreamer {
    IFrameRequest,
    RequestQualityControl,
    FpsRequest,
    AverageBitrateRequest,
    StartStreaming,
    StopStreaming,
    /// JSON, e.g. `{"StartTime":1700000000000}`.
    LatencyTest(String),
    RequestInitialSettings,
    TestEcho(String),
    /// JSON `{"Seq":n,"FillResponseSize":n,"Filler":"…"}`.
    DataChannelLatencyTest(String),
    UIInteraction(String),
    Command(String),
    TextboxEntry(String),
    KeyDown {
        key_code: u8,
        is_repeat: bool,
    },
    KeyUp {
        key_code: u8,
    },
    KeyPress {
        char_code: u16,
    },
    MouseEnter,
    MouseLeave,
    MouseDown {
        button: u8,
        x: u16,
        y: u16,
    },
    MouseUp {
        button: u8,
        x: u16,
        y: u16,
    },
    MouseMove {
        x: u16,
        y: u16,
        delta_x: i16,
        delta_y: i16,
    },
    MouseWheel {
        delta: i16,
        x: u16,
        y: u16,
    },
    MouseDouble {
        button: u8,
        x: u16,
        y: u16,
    },
    TouchStart(Vec<Touch>),
    TouchEnd(Vec<Touch>),
    TouchMove(Vec<Touch>),
    GamepadButtonPressed {
        controller: u8,
        button: u8,
        is_repeat: bool,
    },
    GamepadButtonReleased {
        controller: u8,
        button: u8,
        is_repeat: bool,
    },
    GamepadAnalog {
        controller: u8,
        axis: u8,
        value: f64,
    },
    GamepadConnected,
    GamepadDisconnected {
        controller: u8,
    },
}

/// Streamer → player messages. Strings are raw UTF-16LE to the end (see the
/// module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToPlayer {
    QualityControlOwnership(bool),
    Response(String),
    Command(String),
    /// `total_size` is the size of the whole JPEG; `jpeg` is this message's
    /// part of it (all of it when it fits one message).
    FreezeFrame {
        total_size: u32,
        jpeg: Vec<u8>,
    },
    UnfreezeFrame,
    VideoEncoderAvgQP(String),
    LatencyTest(String),
    InitialSettings(String),
    FileExtension(String),
    FileMimeType(String),
    /// Same framing as `FreezeFrame`: u32 total size, then bytes.
    FileContents {
        total_size: u32,
        data: Vec<u8>,
    },
    TestEcho(String),
    InputControlOwnership(bool),
    GamepadResponse(String),
    DataChannelLatencyTest(String),
    Protocol(String),
}

/// The player → streamer message table: name, id, field types (the names
/// Epic's frontend understands: `uint8`, `uint16`, `int16`, `double`,
/// `string`). Touch messages declare one touch, as the frontend sends them.
pub const TO_STREAMER_PROTOCOL: &[(&str, u8, &[&str])] = &[
    ("IFrameRequest", 0, &[]),
    ("RequestQualityControl", 1, &[]),
    ("FpsRequest", 2, &[]),
    ("AverageBitrateRequest", 3, &[]),
    ("StartStreaming", 4, &[]),
    ("StopStreaming", 5, &[]),
    ("LatencyTest", 6, &["string"]),
    ("RequestInitialSettings", 7, &[]),
    ("TestEcho", 8, &["string"]),
    ("DataChannelLatencyTest", 9, &["string"]),
    ("UIInteraction", 50, &["string"]),
    ("Command", 51, &["string"]),
    ("TextboxEntry", 52, &["string"]),
    ("KeyDown", 60, &["uint8", "uint8"]),
    ("KeyUp", 61, &["uint8"]),
    ("KeyPress", 62, &["uint16"]),
    ("MouseEnter", 70, &[]),
    ("MouseLeave", 71, &[]),
    ("MouseDown", 72, &["uint8", "uint16", "uint16"]),
    ("MouseUp", 73, &["uint8", "uint16", "uint16"]),
    ("MouseMove", 74, &["uint16", "uint16", "int16", "int16"]),
    ("MouseWheel", 75, &["int16", "uint16", "uint16"]),
    ("MouseDouble", 76, &["uint8", "uint16", "uint16"]),
    ("TouchStart", 80, &["uint8", "uint16", "uint16", "uint8", "uint8", "uint8"]),
    ("TouchEnd", 81, &["uint8", "uint16", "uint16", "uint8", "uint8", "uint8"]),
    ("TouchMove", 82, &["uint8", "uint16", "uint16", "uint8", "uint8", "uint8"]),
    ("GamepadButtonPressed", 90, &["uint8", "uint8", "uint8"]),
    ("GamepadButtonReleased", 91, &["uint8", "uint8", "uint8"]),
    ("GamepadAnalog", 92, &["uint8", "uint8", "double"]),
    ("GamepadConnected", 93, &[]),
    ("GamepadDisconnected", 94, &["uint8"]),
];

/// The streamer → player ids, by name (for a Direction 1 table and for logs).
pub const TO_PLAYER_IDS: &[(&str, u8)] = &[
    ("QualityControlOwnership", 0),
    ("Response", 1),
    ("Command", 2),
    ("FreezeFrame", 3),
    ("UnfreezeFrame", 4),
    ("VideoEncoderAvgQP", 5),
    ("LatencyTest", 6),
    ("InitialSettings", 7),
    ("FileExtension", 8),
    ("FileMimeType", 9),
    ("FileContents", 10),
    ("TestEcho", 11),
    ("InputControlOwnership", 12),
    ("GamepadResponse", 13),
    ("DataChannelLatencyTest", 14),
    ("Protocol", 255),
];

/// The `Protocol` (255) JSON a streamer sends when the channel opens:
/// `{"Direction":0,"IFrameRequest":{"id":0,"structure":[]},…}` listing every
/// player → streamer message it understands, in id order, as Unreal Engine
/// does.
pub fn to_streamer_protocol_json() -> String {
    let mut map = Map::new();
    map.insert("Direction".into(), Value::from(0));
    for (name, id, structure) in TO_STREAMER_PROTOCOL {
        let mut entry = Map::new();
        entry.insert("id".into(), Value::from(*id));
        entry.insert("structure".into(), Value::Array(structure.iter().map(|s| Value::from(*s)).collect()));
        map.insert((*name).into(), Value::Object(entry));
    }
    Value::Object(map).to_string()
}

// ---------------------------------------------------------------------------
// Encoding helpers

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// u16 count + UTF-16LE. A string longer than 65535 code units is cut at
/// 65535 units (the wire format cannot say more).
fn put_prefixed_string(out: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(u16::MAX as usize).collect();
    put_u16(out, units.len() as u16);
    for u in units {
        put_u16(out, u);
    }
}

/// Raw UTF-16LE, no prefix.
fn put_raw_string(out: &mut Vec<u8>, s: &str) {
    for u in s.encode_utf16() {
        put_u16(out, u);
    }
}

fn put_touches(out: &mut Vec<u8>, touches: &[Touch]) {
    let touches = &touches[..touches.len().min(u8::MAX as usize)];
    out.push(touches.len() as u8);
    for t in touches {
        put_u16(out, t.x);
        put_u16(out, t.y);
        out.push(t.id);
        out.push(t.force);
        out.push(u8::from(t.valid));
    }
}

// ---------------------------------------------------------------------------
// Decoding helpers

struct Reader<'a> {
    name: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DataChannelError> {
        if self.buf.len() < n {
            return Err(DataChannelError::Truncated { name: self.name, needed: n, had: self.buf.len() });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DataChannelError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, DataChannelError> {
        Ok(self.u8()? != 0)
    }
    fn u16(&mut self) -> Result<u16, DataChannelError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn i16(&mut self) -> Result<i16, DataChannelError> {
        let b = self.take(2)?;
        Ok(i16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DataChannelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f64(&mut self) -> Result<f64, DataChannelError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }
    fn utf16(&self, bytes: &[u8]) -> Result<String, DataChannelError> {
        if bytes.len() & 1 != 0 {
            return Err(DataChannelError::OddUtf16Length { name: self.name, len: bytes.len() });
        }
        let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        String::from_utf16(&units).map_err(|_| DataChannelError::InvalidUtf16 { name: self.name })
    }
    fn prefixed_string(&mut self) -> Result<String, DataChannelError> {
        let count = self.u16()? as usize;
        let bytes = self.take(count * 2)?;
        self.utf16(bytes)
    }
    /// Everything left, as raw UTF-16LE.
    fn raw_string(&mut self) -> Result<String, DataChannelError> {
        let bytes = std::mem::take(&mut self.buf);
        self.utf16(bytes)
    }
    fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf).to_vec()
    }
    fn touches(&mut self) -> Result<Vec<Touch>, DataChannelError> {
        let count = self.u8()? as usize;
        let mut touches = Vec::with_capacity(count);
        for _ in 0..count {
            touches.push(Touch {
                x: self.u16()?,
                y: self.u16()?,
                id: self.u8()?,
                force: self.u8()?,
                valid: self.bool()?,
            });
        }
        Ok(touches)
    }
    fn finish<T>(self, value: T) -> Result<T, DataChannelError> {
        if self.buf.is_empty() {
            Ok(value)
        } else {
            Err(DataChannelError::TrailingBytes { name: self.name, extra: self.buf.len() })
        }
    }
}

fn split_id(bytes: &[u8]) -> Result<(u8, &[u8]), DataChannelError> {
    match bytes.split_first() {
        Some((id, rest)) => Ok((*id, rest)),
        None => Err(DataChannelError::Empty),
    }
}

// ---------------------------------------------------------------------------
// Player → streamer

impl ToStreamer {
    /// The message id (byte 0).
    pub fn id(&self) -> u8 {
        use ToStreamer::*;
        match self {
            IFrameRequest => 0,
            RequestQualityControl => 1,
            FpsRequest => 2,
            AverageBitrateRequest => 3,
            StartStreaming => 4,
            StopStreaming => 5,
            LatencyTest(_) => 6,
            RequestInitialSettings => 7,
            TestEcho(_) => 8,
            DataChannelLatencyTest(_) => 9,
            UIInteraction(_) => 50,
            Command(_) => 51,
            TextboxEntry(_) => 52,
            KeyDown { .. } => 60,
            KeyUp { .. } => 61,
            KeyPress { .. } => 62,
            MouseEnter => 70,
            MouseLeave => 71,
            MouseDown { .. } => 72,
            MouseUp { .. } => 73,
            MouseMove { .. } => 74,
            MouseWheel { .. } => 75,
            MouseDouble { .. } => 76,
            TouchStart(_) => 80,
            TouchEnd(_) => 81,
            TouchMove(_) => 82,
            GamepadButtonPressed { .. } => 90,
            GamepadButtonReleased { .. } => 91,
            GamepadAnalog { .. } => 92,
            GamepadConnected => 93,
            GamepadDisconnected { .. } => 94,
        }
    }

    /// The message name as in the Protocol table.
    pub fn name(&self) -> &'static str {
        to_streamer_name(self.id()).unwrap_or("Unknown")
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        use ToStreamer::*;
        let mut out = vec![self.id()];
        match self {
            IFrameRequest
            | RequestQualityControl
            | FpsRequest
            | AverageBitrateRequest
            | StartStreaming
            | StopStreaming
            | RequestInitialSettings
            | MouseEnter
            | MouseLeave
            | GamepadConnected => {}
            LatencyTest(s)
            | TestEcho(s)
            | DataChannelLatencyTest(s)
            | UIInteraction(s)
            | Command(s)
            | TextboxEntry(s) => put_prefixed_string(&mut out, s),
            KeyDown { key_code, is_repeat } => {
                out.push(*key_code);
                out.push(u8::from(*is_repeat));
            }
            KeyUp { key_code } => out.push(*key_code),
            KeyPress { char_code } => put_u16(&mut out, *char_code),
            MouseDown { button, x, y } | MouseUp { button, x, y } | MouseDouble { button, x, y } => {
                out.push(*button);
                put_u16(&mut out, *x);
                put_u16(&mut out, *y);
            }
            MouseMove { x, y, delta_x, delta_y } => {
                put_u16(&mut out, *x);
                put_u16(&mut out, *y);
                out.extend_from_slice(&delta_x.to_le_bytes());
                out.extend_from_slice(&delta_y.to_le_bytes());
            }
            MouseWheel { delta, x, y } => {
                out.extend_from_slice(&delta.to_le_bytes());
                put_u16(&mut out, *x);
                put_u16(&mut out, *y);
            }
            TouchStart(t) | TouchEnd(t) | TouchMove(t) => put_touches(&mut out, t),
            GamepadButtonPressed { controller, button, is_repeat }
            | GamepadButtonReleased { controller, button, is_repeat } => {
                out.push(*controller);
                out.push(*button);
                out.push(u8::from(*is_repeat));
            }
            GamepadAnalog { controller, axis, value } => {
                out.push(*controller);
                out.push(*axis);
                out.extend_from_slice(&value.to_le_bytes());
            }
            GamepadDisconnected { controller } => out.push(*controller),
        }
        out
    }

    /// Parse one message. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DataChannelError> {
        use ToStreamer::*;
        let (id, payload) = split_id(bytes)?;
        let name = to_streamer_name(id).ok_or(DataChannelError::UnknownId(id))?;
        let mut r = Reader { name, buf: payload };
        let msg = match id {
            0 => IFrameRequest,
            1 => RequestQualityControl,
            2 => FpsRequest,
            3 => AverageBitrateRequest,
            4 => StartStreaming,
            5 => StopStreaming,
            6 => LatencyTest(r.prefixed_string()?),
            7 => RequestInitialSettings,
            // The frontend's default table gives these no fields: accept both.
            8 if payload.is_empty() => TestEcho(String::new()),
            8 => TestEcho(r.prefixed_string()?),
            9 if payload.is_empty() => DataChannelLatencyTest(String::new()),
            9 => DataChannelLatencyTest(r.prefixed_string()?),
            50 => UIInteraction(r.prefixed_string()?),
            51 => Command(r.prefixed_string()?),
            52 => TextboxEntry(r.prefixed_string()?),
            60 => KeyDown { key_code: r.u8()?, is_repeat: r.bool()? },
            61 => KeyUp { key_code: r.u8()? },
            62 => KeyPress { char_code: r.u16()? },
            70 => MouseEnter,
            71 => MouseLeave,
            72 => MouseDown { button: r.u8()?, x: r.u16()?, y: r.u16()? },
            73 => MouseUp { button: r.u8()?, x: r.u16()?, y: r.u16()? },
            74 => MouseMove { x: r.u16()?, y: r.u16()?, delta_x: r.i16()?, delta_y: r.i16()? },
            75 => MouseWheel { delta: r.i16()?, x: r.u16()?, y: r.u16()? },
            76 => MouseDouble { button: r.u8()?, x: r.u16()?, y: r.u16()? },
            80 => TouchStart(r.touches()?),
            81 => TouchEnd(r.touches()?),
            82 => TouchMove(r.touches()?),
            90 => GamepadButtonPressed { controller: r.u8()?, button: r.u8()?, is_repeat: r.bool()? },
            91 => GamepadButtonReleased { controller: r.u8()?, button: r.u8()?, is_repeat: r.bool()? },
            92 => GamepadAnalog { controller: r.u8()?, axis: r.u8()?, value: r.f64()? },
            93 => GamepadConnected,
            94 => GamepadDisconnected { controller: r.u8()? },
            other => return Err(DataChannelError::UnknownId(other)),
        };
        r.finish(msg)
    }
}

/// The player → streamer name of an id, if known.
pub fn to_streamer_name(id: u8) -> Option<&'static str> {
    TO_STREAMER_PROTOCOL.iter().find(|(_, i, _)| *i == id).map(|(n, _, _)| *n)
}

/// The streamer → player name of an id, if known.
pub fn to_player_name(id: u8) -> Option<&'static str> {
    TO_PLAYER_IDS.iter().find(|(_, i)| *i == id).map(|(n, _)| *n)
}

fn norm(v: u16) -> f64 {
    f64::from(v) / 65535.0
}

/// Readable one-line form for logs: `MouseDown button=0 x=0.51 y=0.22`
/// (coordinates normalised to 0..1).
impl fmt::Display for ToStreamer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ToStreamer::*;
        let name = self.name();
        match self {
            LatencyTest(s)
            | TestEcho(s)
            | DataChannelLatencyTest(s)
            | UIInteraction(s)
            | Command(s)
            | TextboxEntry(s) => write!(f, "{name} {s:?}"),
            KeyDown { key_code, is_repeat } => {
                write!(f, "{name} key_code={key_code} repeat={is_repeat}")
            }
            KeyUp { key_code } => write!(f, "{name} key_code={key_code}"),
            KeyPress { char_code } => match char::from_u32(u32::from(*char_code)) {
                Some(c) if !c.is_control() => write!(f, "{name} char_code={char_code} ({c:?})"),
                _ => write!(f, "{name} char_code={char_code}"),
            },
            MouseDown { button, x, y } | MouseUp { button, x, y } | MouseDouble { button, x, y } => {
                write!(f, "{name} button={button} x={:.2} y={:.2}", norm(*x), norm(*y))
            }
            MouseMove { x, y, delta_x, delta_y } => {
                write!(f, "{name} x={:.2} y={:.2} dx={delta_x} dy={delta_y}", norm(*x), norm(*y))
            }
            MouseWheel { delta, x, y } => {
                write!(f, "{name} delta={delta} x={:.2} y={:.2}", norm(*x), norm(*y))
            }
            TouchStart(t) | TouchEnd(t) | TouchMove(t) => {
                write!(f, "{name} touches={}", t.len())?;
                for t in t {
                    write!(
                        f,
                        " [id={} x={:.2} y={:.2} force={} valid={}]",
                        t.id,
                        norm(t.x),
                        norm(t.y),
                        t.force,
                        t.valid
                    )?;
                }
                Ok(())
            }
            GamepadButtonPressed { controller, button, is_repeat }
            | GamepadButtonReleased { controller, button, is_repeat } => {
                write!(f, "{name} controller={controller} button={button} repeat={is_repeat}")
            }
            GamepadAnalog { controller, axis, value } => {
                write!(f, "{name} controller={controller} axis={axis} value={value:.3}")
            }
            GamepadDisconnected { controller } => write!(f, "{name} controller={controller}"),
            _ => f.write_str(name),
        }
    }
}

// ---------------------------------------------------------------------------
// Streamer → player

impl ToPlayer {
    /// The message id (byte 0).
    pub fn id(&self) -> u8 {
        use ToPlayer::*;
        match self {
            QualityControlOwnership(_) => 0,
            Response(_) => 1,
            Command(_) => 2,
            FreezeFrame { .. } => 3,
            UnfreezeFrame => 4,
            VideoEncoderAvgQP(_) => 5,
            LatencyTest(_) => 6,
            InitialSettings(_) => 7,
            FileExtension(_) => 8,
            FileMimeType(_) => 9,
            FileContents { .. } => 10,
            TestEcho(_) => 11,
            InputControlOwnership(_) => 12,
            GamepadResponse(_) => 13,
            DataChannelLatencyTest(_) => 14,
            Protocol(_) => 255,
        }
    }

    /// The message name.
    pub fn name(&self) -> &'static str {
        to_player_name(self.id()).unwrap_or("Unknown")
    }

    /// A whole JPEG in one `FreezeFrame` message.
    pub fn freeze_frame(jpeg: Vec<u8>) -> Self {
        let total_size = u32::try_from(jpeg.len()).unwrap_or(u32::MAX);
        ToPlayer::FreezeFrame { total_size, jpeg }
    }

    /// The `Protocol` message announcing [`to_streamer_protocol_json`].
    pub fn protocol() -> Self {
        ToPlayer::Protocol(to_streamer_protocol_json())
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        use ToPlayer::*;
        let mut out = vec![self.id()];
        match self {
            QualityControlOwnership(b) | InputControlOwnership(b) => out.push(u8::from(*b)),
            Response(s)
            | Command(s)
            | VideoEncoderAvgQP(s)
            | LatencyTest(s)
            | InitialSettings(s)
            | FileExtension(s)
            | FileMimeType(s)
            | TestEcho(s)
            | GamepadResponse(s)
            | DataChannelLatencyTest(s)
            | Protocol(s) => put_raw_string(&mut out, s),
            FreezeFrame { total_size, jpeg: data } | FileContents { total_size, data } => {
                out.extend_from_slice(&total_size.to_le_bytes());
                out.extend_from_slice(data);
            }
            UnfreezeFrame => {}
        }
        out
    }

    /// Parse one message. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DataChannelError> {
        use ToPlayer::*;
        let (id, payload) = split_id(bytes)?;
        let name = to_player_name(id).ok_or(DataChannelError::UnknownId(id))?;
        let mut r = Reader { name, buf: payload };
        let msg = match id {
            0 => QualityControlOwnership(r.bool()?),
            1 => Response(r.raw_string()?),
            2 => Command(r.raw_string()?),
            3 => FreezeFrame { total_size: r.u32()?, jpeg: r.rest() },
            4 => UnfreezeFrame,
            5 => VideoEncoderAvgQP(r.raw_string()?),
            6 => LatencyTest(r.raw_string()?),
            7 => InitialSettings(r.raw_string()?),
            8 => FileExtension(r.raw_string()?),
            9 => FileMimeType(r.raw_string()?),
            10 => FileContents { total_size: r.u32()?, data: r.rest() },
            11 => TestEcho(r.raw_string()?),
            12 => InputControlOwnership(r.bool()?),
            13 => GamepadResponse(r.raw_string()?),
            14 => DataChannelLatencyTest(r.raw_string()?),
            255 => Protocol(r.raw_string()?),
            other => return Err(DataChannelError::UnknownId(other)),
        };
        r.finish(msg)
    }
}

impl fmt::Display for ToPlayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ToPlayer::*;
        let name = self.name();
        match self {
            QualityControlOwnership(b) | InputControlOwnership(b) => write!(f, "{name} {b}"),
            Response(s)
            | Command(s)
            | VideoEncoderAvgQP(s)
            | LatencyTest(s)
            | InitialSettings(s)
            | FileExtension(s)
            | FileMimeType(s)
            | TestEcho(s)
            | GamepadResponse(s)
            | DataChannelLatencyTest(s)
            | Protocol(s) => {
                write!(f, "{name} {s:?}")
            }
            FreezeFrame { total_size, jpeg: data } | FileContents { total_size, data } => {
                write!(f, "{name} total_size={total_size} bytes={}", data.len())
            }
            UnfreezeFrame => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn touch(i: u8) -> Touch {
        Touch { x: 100 * u16::from(i), y: 65535 - u16::from(i), id: i, force: 128, valid: i & 1 == 0 }
    }

    fn all_to_streamer() -> Vec<ToStreamer> {
        use ToStreamer::*;
        vec![
            IFrameRequest,
            RequestQualityControl,
            FpsRequest,
            AverageBitrateRequest,
            StartStreaming,
            StopStreaming,
            LatencyTest(r#"{"StartTime":1700000000000}"#.into()),
            RequestInitialSettings,
            TestEcho("echo ü".into()),
            DataChannelLatencyTest(r#"{"Seq":1,"FillResponseSize":0,"Filler":""}"#.into()),
            UIInteraction(r#"{"action":"go"}"#.into()),
            Command(r#"{"Resolution.Width":800,"Resolution.Height":600}"#.into()),
            TextboxEntry("héllo 😀".into()),
            KeyDown { key_code: 65, is_repeat: true },
            KeyUp { key_code: 65 },
            KeyPress { char_code: 0x20AC },
            MouseEnter,
            MouseLeave,
            MouseDown { button: 2, x: 1, y: 65535 },
            MouseUp { button: 0, x: 32768, y: 0 },
            MouseMove { x: 10, y: 20, delta_x: -5, delta_y: 300 },
            MouseWheel { delta: -120, x: 5, y: 6 },
            MouseDouble { button: 1, x: 7, y: 8 },
            TouchStart(vec![touch(1)]),
            TouchEnd(vec![touch(1), touch(2)]),
            TouchMove(vec![]),
            GamepadButtonPressed { controller: 1, button: 3, is_repeat: false },
            GamepadButtonReleased { controller: 1, button: 3, is_repeat: true },
            GamepadAnalog { controller: 0, axis: 2, value: -0.25 },
            GamepadConnected,
            GamepadDisconnected { controller: 3 },
        ]
    }

    fn all_to_player() -> Vec<ToPlayer> {
        use ToPlayer::*;
        vec![
            QualityControlOwnership(true),
            Response("ok".into()),
            Command(r#"{"command":"onScreenKeyboard"}"#.into()),
            FreezeFrame { total_size: 4, jpeg: vec![0xff, 0xd8, 0xff, 0xd9] },
            UnfreezeFrame,
            VideoEncoderAvgQP("27.5".into()),
            LatencyTest(r#"{"ReceiptTimeMs":1}"#.into()),
            InitialSettings(r#"{"PixelStreaming":{}}"#.into()),
            FileExtension(".txt".into()),
            FileMimeType("text/plain".into()),
            FileContents { total_size: 10, data: vec![1, 2, 3] },
            TestEcho("echo".into()),
            InputControlOwnership(false),
            GamepadResponse(r#"{"controllerId":0}"#.into()),
            DataChannelLatencyTest(r#"{"Seq":1}"#.into()),
            ToPlayer::protocol(),
        ]
    }

    #[test]
    fn every_to_streamer_id_round_trips() {
        let msgs = all_to_streamer();
        // Every id of the table is covered exactly once.
        let mut ids: Vec<u8> = msgs.iter().map(ToStreamer::id).collect();
        ids.sort_unstable();
        let mut table: Vec<u8> = TO_STREAMER_PROTOCOL.iter().map(|e| e.1).collect();
        table.sort_unstable();
        assert_eq!(ids, table);
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(bytes[0], m.id());
            assert_eq!(ToStreamer::decode(&bytes), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn every_to_player_id_round_trips() {
        let msgs = all_to_player();
        let mut ids: Vec<u8> = msgs.iter().map(ToPlayer::id).collect();
        ids.sort_unstable();
        let mut table: Vec<u8> = TO_PLAYER_IDS.iter().map(|e| e.1).collect();
        table.sort_unstable();
        assert_eq!(ids, table);
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(bytes[0], m.id());
            assert_eq!(ToPlayer::decode(&bytes), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn byte_exact_vectors() {
        assert_eq!(
            ToStreamer::MouseDown { button: 1, x: 0x1234, y: 0xABCD }.encode(),
            vec![72, 1, 0x34, 0x12, 0xCD, 0xAB]
        );
        assert_eq!(ToStreamer::KeyDown { key_code: 65, is_repeat: false }.encode(), vec![60, 65, 0]);
        assert_eq!(
            ToStreamer::MouseMove { x: 1, y: 2, delta_x: -1, delta_y: 256 }.encode(),
            vec![74, 1, 0, 2, 0, 0xFF, 0xFF, 0, 1]
        );
        // UIInteraction: id, u16 unit count, UTF-16LE.
        assert_eq!(ToStreamer::UIInteraction("hi€".into()).encode(), vec![50, 3, 0, b'h', 0, b'i', 0, 0xAC, 0x20]);
        // Streamer → player strings: raw UTF-16LE, no prefix.
        assert_eq!(ToPlayer::Response("ok".into()).encode(), vec![1, b'o', 0, b'k', 0]);
        assert_eq!(ToPlayer::QualityControlOwnership(true).encode(), vec![0, 1]);
        assert_eq!(ToPlayer::freeze_frame(vec![9, 8]).encode(), vec![3, 2, 0, 0, 0, 9, 8]);
        // Astral characters take two code units and count as two.
        assert_eq!(ToStreamer::TextboxEntry("😀".into()).encode(), vec![52, 2, 0, 0x3D, 0xD8, 0x00, 0xDE]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(ToStreamer::decode(&[]), Err(DataChannelError::Empty));
        assert_eq!(ToPlayer::decode(&[]), Err(DataChannelError::Empty));
        assert_eq!(ToStreamer::decode(&[200]), Err(DataChannelError::UnknownId(200)));
        assert_eq!(ToPlayer::decode(&[100]), Err(DataChannelError::UnknownId(100)));
        assert!(matches!(ToStreamer::decode(&[72, 1, 2]), Err(DataChannelError::Truncated { .. })));
        assert!(matches!(ToStreamer::decode(&[61, 1, 2]), Err(DataChannelError::TrailingBytes { .. })));
        // Count says 5 units, only 1 present.
        assert!(matches!(ToStreamer::decode(&[50, 5, 0, b'a', 0]), Err(DataChannelError::Truncated { .. })));
        assert!(matches!(ToPlayer::decode(&[1, b'a']), Err(DataChannelError::OddUtf16Length { .. })));
        // Lone high surrogate.
        assert!(matches!(ToPlayer::decode(&[1, 0x00, 0xD8]), Err(DataChannelError::InvalidUtf16 { .. })));
        assert!(matches!(ToStreamer::decode(&[80, 2, 0, 0, 0, 0, 1, 1, 1]), Err(DataChannelError::Truncated { .. })));
        // TestEcho with no payload, as the default frontend table sends it.
        assert_eq!(ToStreamer::decode(&[8]), Ok(ToStreamer::TestEcho(String::new())));
    }

    #[test]
    fn protocol_table_lists_every_player_message() {
        let v: Value = serde_json::from_str(&to_streamer_protocol_json()).unwrap();
        assert_eq!(v["Direction"], 0);
        assert_eq!(v["MouseDown"]["id"], 72);
        assert_eq!(v["MouseDown"]["structure"], serde_json::json!(["uint8", "uint16", "uint16"]));
        assert_eq!(v["UIInteraction"]["structure"], serde_json::json!(["string"]));
        assert_eq!(v.as_object().unwrap().len(), TO_STREAMER_PROTOCOL.len() + 1);
        // The first key is Direction, as UE sends it.
        assert!(to_streamer_protocol_json().starts_with(r#"{"Direction":0,"#));
    }

    #[test]
    fn display_is_readable() {
        let m = ToStreamer::MouseDown { button: 0, x: 33423, y: 14418 };
        assert_eq!(m.to_string(), "MouseDown button=0 x=0.51 y=0.22");
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ToStreamer::decode(&bytes);
            let _ = ToPlayer::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_known_ids(id in prop::sample::select(vec![0u8,1,3,6,8,9,10,50,60,72,74,80,92,94,255]),
                                             rest in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = vec![id];
            bytes.extend(rest);
            if let Ok(m) = ToStreamer::decode(&bytes) {
                // Whatever decodes re-encodes to a message that decodes the same.
                // (Compared as bytes: a NaN axis value is not equal to itself.)
                let again = ToStreamer::decode(&m.encode()).map(|m| m.encode());
                prop_assert_eq!(again, Ok(m.encode()));
            }
            if let Ok(m) = ToPlayer::decode(&bytes) {
                prop_assert_eq!(ToPlayer::decode(&m.encode()), Ok(m));
            }
        }

        #[test]
        fn strings_round_trip(s in ".{0,50}") {
            let m = ToStreamer::UIInteraction(s.clone());
            prop_assert_eq!(ToStreamer::decode(&m.encode()), Ok(m));
            let p = ToPlayer::Response(s);
            prop_assert_eq!(ToPlayer::decode(&p.encode()), Ok(p));
        }
    }
}
