//! The body of `GET /api/config`: the effective [`ServerConfig`] in Wilbur's shape
//! (`{config, protocolConfig}`), with every secret and secret-looking value redacted.
//!
//! Built from the resolved configuration alone, so a server started from flags, from
//! `config.json` or by hand (tests, harnesses) shows the same view.

use serde_json::{json, Value};

use crate::config::{ConsoleMessages, ServerConfig, REDACTED};

/// The `/api/config` document for `c`.
pub fn api_config(c: &ServerConfig) -> Value {
    let mut peer_options = Value::Object(c.peer_options.clone());
    redact(&mut peer_options);
    let console_messages = match c.console_messages {
        ConsoleMessages::Off => Value::Null,
        ConsoleMessages::Basic => json!("basic"),
        ConsoleMessages::Verbose => json!("verbose"),
        ConsoleMessages::Formatted => json!("formatted"),
    };
    json!({
        "config": {
            "bind": c.bind.to_string(),
            "streamerPort": c.streamer_port,
            "playerPort": c.player_port,
            "sfuPort": c.sfu_port,
            "peerOptions": peer_options,
            "maxSubscribers": c.max_players,
            "sendPlayerCount": c.send_player_count,
            "pingInterval": c.ping_interval.map_or(0, |d| d.as_secs()),
            "maxMessageSize": c.max_message_size,
            "rateLimit": c.rate_limit_per_sec,
            "rateLimitBurst": c.rate_limit_burst,
            "streamerRateLimit": c.streamer_rate_limit_per_sec,
            "streamerRateLimitBurst": c.streamer_rate_limit_burst,
            "sendQueueLen": c.send_queue_len,
            "streamerSendQueueLen": c.streamer_send_queue_len,
            "serve": c.serve,
            "homepage": c.homepage,
            "restApi": c.rest_api,
            "managementBind": c.management_bind.map(|a| a.to_string()),
            "consoleMessages": console_messages,
            "https": c.tls.is_some(),
            "httpsPort": c.tls.as_ref().map(|t| t.https_port),
            "httpsRedirect": c.tls.as_ref().is_some_and(|t| t.https_redirect),
            "playerToken": c.security.player_token.as_ref().map(|_| REDACTED),
            "streamerToken": c.security.streamer_token.as_ref().map(|_| REDACTED),
            "sfuToken": c.security.sfu_token.as_ref().map(|_| REDACTED),
            "adminToken": c.security.admin_token.as_ref().map(|_| REDACTED),
            "streamerIds": c.security.streamer_ids,
            "allowedOrigins": c.security.allowed_origins,
            "turnSecret": c.turn.as_ref().map(|_| REDACTED),
            "turnTtl": c.turn.as_ref().map(|t| t.ttl.as_secs()),
            "maxConnectionsPlayer": c.limits.max_players,
            "maxConnectionsStreamer": c.limits.max_streamers,
            "maxConnectionsSfu": c.limits.max_sfus,
            "maxConnectionsPerIp": c.limits.max_per_ip,
            "handshakeTimeout": c.limits.handshake_timeout.as_secs(),
            "redisUrl": c.cluster.as_ref().map(|k| crate::cluster::redacted_url(&k.redis_url)),
            "nodeId": c.cluster.as_ref().map(|k| k.node_id.clone()),
            "clusterPrefix": c.cluster.as_ref().map(|k| k.prefix.clone()),
        },
        "protocolConfig": {
            "protocolVersion": proto::PROTOCOL_VERSION,
            "peerConnectionOptions": peer_options,
        },
    })
}

/// Replaces, at any depth, values whose key looks secret (TURN username and credential,
/// passwords, tokens, keys).
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let k = key.to_ascii_lowercase();
                let secret = ["credential", "password", "secret", "token", "username", "key"]
                    .iter()
                    .any(|needle| k.contains(needle));
                if secret && !v.is_null() {
                    *v = json!(REDACTED);
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_secret_keys_at_any_depth() {
        let mut v = json!({"a": [{"password": "p", "Token": 1, "urls": "x"}], "apiKey": "k"});
        redact(&mut v);
        assert_eq!(v, json!({"a": [{"password": REDACTED, "Token": REDACTED, "urls": "x"}], "apiKey": REDACTED}));
    }

    #[test]
    fn a_redis_password_is_never_shown() {
        assert_eq!(
            crate::cluster::redacted_url("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://:<redacted>@10.0.0.1:6379/0"
        );
        assert_eq!(crate::cluster::redacted_url("rediss://u:p@h"), "rediss://u:<redacted>@h");
        assert_eq!(crate::cluster::redacted_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn defaults_show_ports_and_protocol_version() {
        let v = api_config(&ServerConfig::default());
        assert_eq!(v["config"]["playerPort"], json!(8080));
        assert_eq!(v["protocolConfig"]["protocolVersion"], json!(proto::PROTOCOL_VERSION));
    }
}
