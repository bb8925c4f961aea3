//! `config.json` values read the way Wilbur's files write them: ports and numbers as JSON
//! numbers or strings (`"8888"`), booleans as `true` or `"true"`, `""` and `null` for unset,
//! lists as an array or one comma-separated string, a number where a token is expected.
//!
//! Each function is a serde `deserialize_with` for one kind of [`Settings`](super::Settings)
//! field. An error reads "expected ..., got <the value>"; the caller adds the file and the key.

use std::str::FromStr;

use clap::ValueEnum;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::settings::{PeerOptions, SecretArg};

/// "`reason`, got `value`" as a deserialisation error.
fn error<E: serde::de::Error>(reason: &str, value: &Value) -> E {
    E::custom(format!("{reason}, got {}", truncate(&value.to_string(), 60)))
}

/// A value parsed from its text, whether written as a JSON number or a string.
fn parsed<'de, D: Deserializer<'de>, T: FromStr>(d: D, what: &str) -> Result<Option<T>, D::Error> {
    let v = Value::deserialize(d)?;
    let text = match &v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().to_string(),
        _ => return Err(error(&format!("expected {what}"), &v)),
    };
    text.parse().map(Some).map_err(|_| error(&format!("expected {what}"), &v))
}

pub fn ip_address<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error> {
    parsed(d, "an IP address")
}

pub fn socket_address<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error> {
    parsed(d, "an address and port (ADDR:PORT)")
}

pub fn port<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error> {
    parsed(d, "a port number")
}

pub fn whole_number<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error> {
    parsed(d, "a whole number")
}

pub fn seconds<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error> {
    parsed(d, "a whole number of seconds")
}

pub fn bytes<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error> {
    parsed(d, "a number of bytes")
}

/// A string (or a path); `null` and `""` mean unset.
pub fn string<'de, D: Deserializer<'de>, T: From<String>>(d: D) -> Result<Option<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(T::from(s))),
        other => Err(error("expected a string", &other)),
    }
}

/// `true`/`false`, or the same as a string (any case); `""` means unset.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(error("expected true or false", &v)),
        },
        _ => Err(error("expected true or false", &v)),
    }
}

/// A secret: any non-empty scalar is taken as set (a number token is still a token);
/// `null`, `false` and `""` mean unset.
pub fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretArg>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null | Value::Bool(false) => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(SecretArg(s)),
        other => Some(SecretArg(other.to_string())),
    })
}

/// A list: a JSON array of strings, or one comma-separated string.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.split(',').map(str::to_string).collect())),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(|| error("expected strings", &v)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(error("expected a list of strings", &v)),
    }
}

/// One of a flag's named values, in any case (`"Verbose"`); `null` and `""` mean unset.
pub fn choice<'de, D: Deserializer<'de>, T: ValueEnum>(d: D) -> Result<Option<T>, D::Error> {
    let v = Value::deserialize(d)?;
    let text = match &v {
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => s,
        _ => return Err(error("expected a string", &v)),
    };
    T::from_str(text, true).map(Some).map_err(|_| error(&expected_one_of::<T>(), &v))
}

/// `expected "a", "b" or "c"` for a flag's named values.
fn expected_one_of<T: ValueEnum>() -> String {
    let names: Vec<String> = T::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value())
        .map(|p| format!("\"{}\"", p.get_name()))
        .collect();
    match names.split_last() {
        Some((last, [])) => format!("expected {last}"),
        Some((last, rest)) => format!("expected {} or {last}", rest.join(", ")),
        None => "expected nothing".to_string(),
    }
}

/// `peer_options`: an object, JSON text in a string, or `""`/`null` for none.
pub fn peer_options<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PeerOptions>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(text) if text.trim().is_empty() => None,
        Value::String(text) => Some(PeerOptions::ConfigText(text)),
        other => Some(PeerOptions::ConfigValue(other)),
    })
}

/// `text` cut to at most `max` characters, for error messages that quote input.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}
