//! Parsing a received frame into a typed view plus the original JSON object.
//!
//! Routing decisions read [`Incoming::message`]; forwarding sends
//! [`Incoming::fields`], the object exactly as it arrived (every field, unknown
//! ones included, in their order), with only `playerId` / `sfuId` touched.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::message::{Message, KNOWN_TYPES};

/// Why a frame is not a signalling message. Each variant names the problem
/// precisely enough to log and count it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object but {0}")]
    NotObject(&'static str),
    #[error("object has no \"type\" field")]
    MissingType,
    #[error("\"type\" is not a string")]
    TypeNotString,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("{type_name} is missing required field {field:?}")]
    MissingField { type_name: String, field: String },
    #[error("{type_name} has an invalid field: {reason}")]
    InvalidField { type_name: String, reason: String },
}

impl ParseError {
    /// A short stable label for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::NotJson(_) => "not_json",
            ParseError::NotObject(_) => "not_object",
            ParseError::MissingType => "missing_type",
            ParseError::TypeNotString => "type_not_string",
            ParseError::UnknownType(_) => "unknown_type",
            ParseError::MissingField { .. } => "missing_field",
            ParseError::InvalidField { .. } => "invalid_field",
        }
    }

    /// The message type, when the frame was an object with a known `type`.
    pub fn type_name(&self) -> Option<&str> {
        match self {
            ParseError::MissingField { type_name, .. } | ParseError::InvalidField { type_name, .. } => Some(type_name),
            _ => None,
        }
    }
}

/// A received message: the typed view and the original object.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub message: Message,
    pub fields: Map<String, Value>,
}

impl Incoming {
    /// Parse one frame's bytes (text frames, or binary frames carrying JSON).
    pub fn parse(bytes: &[u8]) -> Result<Incoming, ParseError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::NotJson(e.to_string()))?;
        let fields = match value {
            Value::Object(map) => map,
            other => return Err(ParseError::NotObject(json_kind(&other))),
        };
        let type_name = match fields.get("type") {
            None => return Err(ParseError::MissingType),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(ParseError::TypeNotString),
        };
        if !KNOWN_TYPES.contains(&type_name) {
            return Err(ParseError::UnknownType(truncate(type_name, 64)));
        }
        // Deserialise the typed view from the borrowed map: no copy of the
        // (possibly large) SDP strings is made for the object itself.
        let message = Message::deserialize(MapRef(&fields)).map_err(|e| field_error(type_name, &e))?;
        Ok(Incoming { message, fields })
    }

    /// Set `key` to a string value. An existing key keeps its position; a new
    /// one is appended.
    pub fn set_str(&mut self, key: &str, value: &str) {
        self.fields.insert(key.to_string(), Value::String(value.to_string()));
    }

    /// Remove `key`, keeping the order of the other fields.
    pub fn remove(&mut self, key: &str) {
        self.fields.shift_remove(key);
    }

    /// The JSON text of the (possibly modified) original object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.fields).unwrap_or_else(|_| String::from("{}"))
    }
}

/// Lets serde read a `&Map` as a deserializer without cloning it.
struct MapRef<'a>(&'a Map<String, Value>);

impl<'de> serde::Deserializer<'de> for MapRef<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_any(
            serde::de::value::MapDeserializer::new(self.0.iter().map(|(k, v)| (k.as_str(), v))),
            visitor,
        )
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

fn field_error(type_name: &str, e: &serde_json::Error) -> ParseError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("missing field `") {
        if let Some(end) = rest.find('`') {
            return ParseError::MissingField { type_name: type_name.to_string(), field: rest[..end].to_string() };
        }
    }
    ParseError::InvalidField { type_name: type_name.to_string(), reason: truncate(&text, 200) }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Cut peer-supplied text for logs, on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
