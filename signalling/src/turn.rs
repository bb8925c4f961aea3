//! Time-limited TURN credentials, coturn `use-auth-secret` style (the "TURN
//! REST API" draft): username = `<expiry unix time>:<id>`, credential =
//! base64(HMAC-SHA1(secret, username)). Each connection gets its own, so a
//! leaked credential expires and names who leaked it, and the shared secret
//! never leaves the server.
//!
//! Sans-I/O: the caller passes the current unix time.

use base64::Engine as _;
use ring::hmac;
use serde_json::{Map, Value};

use crate::config::TurnConfig;

/// `(username, credential)` valid until `now_unix + ttl`.
pub fn credentials(turn: &TurnConfig, id: &str, now_unix: u64) -> (String, String) {
    let expiry = now_unix.saturating_add(turn.ttl.as_secs());
    let username = format!("{expiry}:{id}");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, turn.secret.expose().as_bytes());
    let tag = hmac::sign(&key, username.as_bytes());
    (username, base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
}

/// True for `turn:` and `turns:` urls (STUN servers take no credentials).
fn is_turn_url(url: &Value) -> bool {
    url.as_str().is_some_and(|u| {
        let u = u.trim_start().to_ascii_lowercase();
        u.starts_with("turn:") || u.starts_with("turns:")
    })
}

/// `peer_options` with `username`/`credential` set on every `iceServers`
/// entry that has a TURN url (`urls` or legacy `url`, a string or an array).
/// Returns `None` when there is no such entry (the shared frame can be used).
pub fn inject(peer_options: &Map<String, Value>, username: &str, credential: &str) -> Option<Map<String, Value>> {
    let servers = peer_options.get("iceServers")?.as_array()?;
    let has_turn = |server: &Value| {
        ["urls", "url"].iter().filter_map(|k| server.get(*k)).any(|urls| match urls {
            Value::Array(list) => list.iter().any(is_turn_url),
            single => is_turn_url(single),
        })
    };
    if !servers.iter().any(has_turn) {
        return None;
    }
    let mut options = peer_options.clone();
    if let Some(Value::Array(servers)) = options.get_mut("iceServers") {
        for server in servers.iter_mut().filter(|s| has_turn(s)) {
            if let Value::Object(fields) = server {
                fields.insert("username".into(), Value::String(username.to_string()));
                fields.insert("credential".into(), Value::String(credential.to_string()));
            }
        }
    }
    Some(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use serde_json::json;
    use std::time::Duration;

    fn turn() -> TurnConfig {
        TurnConfig { secret: Secret::new("north").expect("secret"), ttl: Duration::from_secs(86400) }
    }

    #[test]
    fn matches_coturn_reference_vector() {
        // Computed independently: printf '%s' 1700086400:Player0 | openssl dgst -sha1 -hmac north -binary | base64
        let (user, cred) = credentials(&turn(), "Player0", 1_700_000_000);
        assert_eq!(user, "1700086400:Player0");
        assert_eq!(cred, "skI3xRFraHpBPcEa4S62lMiABTc=");
    }

    #[test]
    fn injects_only_into_turn_entries() {
        let options = json!({"iceServers": [
            {"urls": ["stun:s.example:3478"]},
            {"urls": ["turn:t.example:3478?transport=udp", "turns:t.example:5349"]},
            {"url": "TURN:legacy.example"},
        ], "other": 1});
        let Value::Object(map) = options else { unreachable!() };
        let out = Value::Object(inject(&map, "u", "c").expect("has turn"));
        assert!(out["iceServers"][0].get("username").is_none());
        assert_eq!(out["iceServers"][1]["username"], "u");
        assert_eq!(out["iceServers"][1]["credential"], "c");
        assert_eq!(out["iceServers"][2]["credential"], "c");
        assert_eq!(out["other"], 1);
        let Value::Object(stun_only) = json!({"iceServers": [{"urls": "stun:x"}]}) else { unreachable!() };
        assert!(inject(&stun_only, "u", "c").is_none());
        assert!(inject(&Map::new(), "u", "c").is_none());
    }
}
