//! Player → streamer messages ([`ToStreamer`]): the table (ids as in
//! `datachannel.md`), the `Protocol` JSON a streamer announces from it, and
//! the readable log form. Strings carry a `u16` count of UTF-16 units.

use std::fmt;

use serde_json::{Map, Value};

use super::table::message_table;
use super::wire::{put_prefixed_string, PlayerToStreamer, Reader, WireField};
use super::DataChannelError;

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

/// u16 count of UTF-16 units, then the UTF-16LE units.
impl WireField<PlayerToStreamer> for String {
    const STRUCTURE: &'static [&'static str] = &["string"];
    fn put(&self, out: &mut Vec<u8>) {
        put_prefixed_string(out, self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DataChannelError> {
        r.prefixed_string()
    }
}

/// u8 count, then per touch x, y, id, force, valid. The Protocol table
/// declares one touch, as the frontend sends them. More than 255 touches are
/// cut at 255 (the count is one byte).
impl WireField<PlayerToStreamer> for Vec<Touch> {
    const STRUCTURE: &'static [&'static str] = &["uint8", "uint16", "uint16", "uint8", "uint8", "uint8"];
    fn put(&self, out: &mut Vec<u8>) {
        let touches = &self[..self.len().min(u8::MAX as usize)];
        out.push(touches.len() as u8);
        for t in touches {
            put(&t.x, out);
            put(&t.y, out);
            put(&t.id, out);
            put(&t.force, out);
            put(&t.valid, out);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DataChannelError> {
        let count: u8 = read(r)?;
        let mut touches = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            touches.push(Touch { x: read(r)?, y: read(r)?, id: read(r)?, force: read(r)?, valid: read(r)? });
        }
        Ok(touches)
    }
}

fn put<T: WireField<PlayerToStreamer>>(value: &T, out: &mut Vec<u8>) {
    value.put(out);
}

fn read<T: WireField<PlayerToStreamer>>(r: &mut Reader<'_>) -> Result<T, DataChannelError> {
    T::read(r)
}

message_table! {
    /// Player → streamer messages.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ToStreamer;
    direction: PlayerToStreamer;
    /// The player → streamer message table: name, id, field types, in id
    /// order. [`to_streamer_protocol_json`] announces it and
    /// [`ToStreamer::decode`] reads by it.
    pub const TO_STREAMER_PROTOCOL;
    {
        0 => IFrameRequest,
        1 => RequestQualityControl,
        2 => FpsRequest,
        3 => AverageBitrateRequest,
        4 => StartStreaming,
        5 => StopStreaming,
        /// JSON, e.g. `{"StartTime":1700000000000}`.
        6 => LatencyTest(json: String),
        7 => RequestInitialSettings,
        // The frontend's default table gives these two no fields: an empty
        // payload is accepted too.
        8 => TestEcho(text: String, or_empty),
        /// JSON `{"Seq":n,"FillResponseSize":n,"Filler":"…"}`.
        9 => DataChannelLatencyTest(json: String, or_empty),
        50 => UIInteraction(text: String),
        51 => Command(json: String),
        52 => TextboxEntry(text: String),
        60 => KeyDown { key_code: u8, is_repeat: bool },
        61 => KeyUp { key_code: u8 },
        62 => KeyPress { char_code: u16 },
        70 => MouseEnter,
        71 => MouseLeave,
        72 => MouseDown { button: u8, x: u16, y: u16 },
        73 => MouseUp { button: u8, x: u16, y: u16 },
        74 => MouseMove { x: u16, y: u16, delta_x: i16, delta_y: i16 },
        75 => MouseWheel { delta: i16, x: u16, y: u16 },
        76 => MouseDouble { button: u8, x: u16, y: u16 },
        80 => TouchStart(touches: Vec<Touch>),
        81 => TouchEnd(touches: Vec<Touch>),
        82 => TouchMove(touches: Vec<Touch>),
        90 => GamepadButtonPressed { controller: u8, button: u8, is_repeat: bool },
        91 => GamepadButtonReleased { controller: u8, button: u8, is_repeat: bool },
        92 => GamepadAnalog { controller: u8, axis: u8, value: f64 },
        93 => GamepadConnected,
        94 => GamepadDisconnected { controller: u8 },
    }
}

/// The player → streamer name of an id, if known.
pub fn to_streamer_name(id: u8) -> Option<&'static str> {
    TO_STREAMER_PROTOCOL.iter().find(|(_, i, _)| *i == id).map(|(n, _, _)| *n)
}

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
