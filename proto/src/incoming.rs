//! Parsing a received frame into a typed view plus the original JSON object.
//!
//! Routing decisions read [`Incoming::message`]; forwarding sends
//! [`Incoming::to_json`], the object exactly as it arrived (every field,
//! unknown ones included, in their order, values byte for byte), with only
//! `playerId` / `sfuId` touched.
//!
//! The object is kept as spans into the received frame rather than as a
//! `serde_json::Value` tree: a relayed message then costs one pass to find
//! its members and no allocation per field.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

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

/// A received message: the typed view, and the original object as members
/// that point into the frame (nothing of it is copied unless changed).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub message: Message,
    text: Bytes,
    members: Vec<Member>,
}

/// One top-level member of the received object.
#[derive(Debug, Clone)]
struct Member {
    key: Key,
    value: Text,
}

/// A member's name: where it is in the frame when it has no escapes (the
/// common case), else unescaped.
#[derive(Debug, Clone)]
enum Key {
    Span(Range<usize>),
    Owned(String),
}

/// JSON text: a span of the frame, or text the server set.
#[derive(Debug, Clone)]
enum Text {
    Span(Range<usize>),
    Owned(String),
}

impl Incoming {
    /// Parse one frame's bytes (text frames, or binary frames carrying JSON).
    pub fn parse(bytes: &[u8]) -> Result<Incoming, ParseError> {
        Self::parse_frame(Bytes::copy_from_slice(bytes))
    }

    /// [`Incoming::parse`] of a frame the caller already owns (no copy).
    pub fn parse_frame(text: Bytes) -> Result<Incoming, ParseError> {
        let parsed = {
            let raw: Vec<(Cow<'_, str>, &RawValue)> = match serde_json::from_slice::<RawObject<'_>>(&text) {
                Ok(RawObject(members)) => members,
                Err(e) => return Err(not_an_object(&text, e)),
            };
            let type_name = match raw.iter().rev().find(|(k, _)| k == "type") {
                None => return Err(ParseError::MissingType),
                Some((_, v)) => match serde_json::from_str::<Name<'_>>(v.get()) {
                    Ok(Name(t)) => t,
                    Err(_) => return Err(ParseError::TypeNotString),
                },
            };
            if !KNOWN_TYPES.contains(&type_name.as_ref()) {
                return Err(ParseError::UnknownType(truncate(&type_name, 64)));
            }
            let members = raw.iter().map(|(k, v)| (BorrowedKey(k.as_ref()), *v));
            let message = Message::deserialize(serde::de::value::MapDeserializer::new(members))
                .map_err(|e: serde_json::Error| field_error(&type_name, &e))?;
            let base = text.as_ptr() as usize;
            let span = |s: &str| {
                let start = s.as_ptr() as usize - base;
                start..start + s.len()
            };
            let members = raw
                .iter()
                .map(|(k, v)| Member {
                    key: match k {
                        Cow::Borrowed(k) => Key::Span(span(k)),
                        Cow::Owned(k) => Key::Owned(k.clone()),
                    },
                    value: Text::Span(span(v.get())),
                })
                .collect();
            (message, members)
        };
        let (message, members) = parsed;
        Ok(Incoming { message, text, members })
    }

    fn key_str<'a>(&'a self, key: &'a Key) -> &'a str {
        match key {
            // Spans come from `&str`s of this frame: valid UTF-8 on boundaries.
            Key::Span(r) => std::str::from_utf8(&self.text[r.clone()]).unwrap_or_default(),
            Key::Owned(k) => k,
        }
    }

    fn text_str<'a>(&'a self, value: &'a Text) -> &'a str {
        match value {
            Text::Span(r) => std::str::from_utf8(&self.text[r.clone()]).unwrap_or_default(),
            Text::Owned(t) => t,
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.members.iter().position(|m| self.key_str(&m.key) == key)
    }

    /// The member `key` of the object as received (or as set), if present.
    pub fn get(&self, key: &str) -> Option<Value> {
        let member = &self.members[self.position(key)?];
        serde_json::from_str(self.text_str(&member.value)).ok()
    }

    /// The names of the object's members, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| self.key_str(&m.key))
    }

    /// Set `key` to a string value. An existing key keeps its position; a new
    /// one is appended.
    pub fn set_str(&mut self, key: &str, value: &str) {
        let mut text = String::with_capacity(value.len() + 2);
        push_json_string(&mut text, value);
        let value = Text::Owned(text);
        match self.position(key) {
            Some(i) => self.members[i].value = value,
            None => self.members.push(Member { key: Key::Owned(key.to_string()), value }),
        }
    }

    /// Remove `key`, keeping the order of the other fields.
    pub fn remove(&mut self, key: &str) {
        if let Some(i) = self.position(key) {
            self.members.remove(i);
        }
    }

    /// The JSON text of the (possibly modified) original object: members in
    /// their order, values exactly as received (numbers keep every digit).
    pub fn to_json(&self) -> String {
        // Exactly the length needed: a `Bytes` made from it then needs no
        // allocation of its own.
        let key_len = |k: &Key| match k {
            Key::Span(r) => r.len() + 2,
            Key::Owned(k) => json_string_len(k),
        };
        let value_len = |v: &Text| match v {
            Text::Span(r) => r.len(),
            Text::Owned(t) => t.len(),
        };
        let len = 2
            + self.members.iter().map(|m| key_len(&m.key) + 1 + value_len(&m.value)).sum::<usize>()
            + self.members.len().saturating_sub(1);
        let mut out = String::with_capacity(len);
        out.push('{');
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match &m.key {
                // A name without escapes is valid JSON string content as it is.
                Key::Span(_) => {
                    out.push('"');
                    out.push_str(self.key_str(&m.key));
                    out.push('"');
                }
                Key::Owned(k) => push_json_string(&mut out, k),
            }
            out.push(':');
            out.push_str(self.text_str(&m.value));
        }
        out.push('}');
        debug_assert_eq!(out.len(), len, "to_json's length: {out}");
        out
    }
}

impl PartialEq for Incoming {
    /// Same typed view and same object text.
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.to_json() == other.to_json()
    }
}

/// Whether `s` goes into a JSON string literal as it is.
fn needs_no_escape(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Append `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    if needs_no_escape(s) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Serialising a `&str` cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// The length of `s` as a JSON string literal.
fn json_string_len(s: &str) -> usize {
    if needs_no_escape(s) {
        s.len() + 2
    } else {
        serde_json::to_string(s).map_or(0, |t| t.len())
    }
}

/// A member name or string value, borrowed from the input unless it has
/// escapes (serde's own `Cow<str>` always copies).
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// A member name handed to the typed view as borrowed: serde buffers an
/// internally tagged enum's fields, and a plain `&str` key would be copied
/// into each buffer entry.
struct BorrowedKey<'a>(&'a str);

impl<'de, E: serde::de::Error> serde::de::IntoDeserializer<'de, E> for BorrowedKey<'de> {
    type Deserializer = serde::de::value::BorrowedStrDeserializer<'de, E>;

    fn into_deserializer(self) -> Self::Deserializer {
        serde::de::value::BorrowedStrDeserializer::new(self.0)
    }
}

/// A JSON object as its members, borrowed from the input: names (unescaped
/// only when they have escapes) and raw value text. A repeated name keeps
/// its first position and its last value, as `JSON.parse` does.
struct RawObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::with_capacity(8);
                // Names seen, for objects too large to search linearly.
                let mut index: Option<HashMap<String, usize>> = None;
                while let Some(Name(key)) = map.next_key::<Name<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    if members.len() >= 16 && index.is_none() {
                        index = Some(members.iter().enumerate().map(|(i, (k, _))| (k.to_string(), i)).collect());
                    }
                    let seen = match &mut index {
                        Some(index) => index.get(key.as_ref()).copied(),
                        None => members.iter().position(|(k, _)| *k == key),
                    };
                    match seen {
                        Some(i) => members[i].1 = value,
                        None => {
                            if let Some(index) = &mut index {
                                index.insert(key.to_string(), members.len());
                            }
                            members.push((key, value));
                        }
                    }
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// Why `bytes` did not parse as an object: not JSON at all, or JSON of another kind.
fn not_an_object(bytes: &[u8], e: serde_json::Error) -> ParseError {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_)) | Err(_) => ParseError::NotJson(e.to_string()),
        Ok(other) => ParseError::NotObject(json_kind(&other)),
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
