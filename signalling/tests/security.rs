//! Issue 7, security: tokens per role, origin check, streamer-id allow-list,
//! TURN credentials, redaction, admin API.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{json, Value};
use signalling::config::{Secret, TurnConfig};
use signalling::ServerConfig;

fn secret(s: &str) -> Option<Secret> {
    Secret::new(s)
}

fn tokens_config() -> ServerConfig {
    let mut config = ServerConfig::ephemeral();
    config.security.player_token = secret("player-tok-Q1");
    config.security.streamer_token = secret("streamer-tok-Q2");
    config.security.sfu_token = secret("sfu-tok-Q3");
    config.rest_api = true;
    config
}

#[tokio::test]
async fn each_role_needs_its_token_by_query_or_bearer_and_refusal_is_401_before_any_message() {
    let h = server(tokens_config()).await;
    let cases = [
        (h.player_addr(), "player-tok-Q1", "config"),
        (h.streamer_addr(), "streamer-tok-Q2", "config"),
        (h.sfu_addr(), "sfu-tok-Q3", "config"),
    ];
    for (addr, token, first) in cases {
        // Missing, wrong, another role's, empty, a prefix, in the wrong header: all 401.
        assert_eq!(try_connect(addr, "/", &[]).await.err(), Some(401));
        assert_eq!(try_connect(addr, "/?token=nope", &[]).await.err(), Some(401));
        assert_eq!(try_connect(addr, "/?token=", &[]).await.err(), Some(401));
        assert_eq!(try_connect(addr, &format!("/?token={}", &token[..token.len() - 1]), &[]).await.err(), Some(401));
        assert_eq!(try_connect(addr, "/", &[("authorization", &format!("Basic {token}"))]).await.err(), Some(401));
        let other = if token.starts_with("player") { "sfu-tok-Q3" } else { "player-tok-Q1" };
        assert_eq!(try_connect(addr, &format!("/?token={other}"), &[]).await.err(), Some(401));
        // Right token, either way.
        let mut c = try_connect(addr, &format!("/?StreamerId=x&token={token}"), &[]).await.expect("query token");
        c.expect_type(first).await;
        let bearer = format!("Bearer {token}");
        let mut c = try_connect(addr, "/", &[("authorization", &bearer)]).await.expect("bearer token");
        c.expect_type(first).await;
    }
    assert_eq!(h.metrics().refused_count("unauthorized"), 18);
    // Refused upgrades never reached the router.
    assert_eq!(h.counters().received, 0);
    let text = h.render_metrics();
    assert!(text.contains("signalling_upgrades_refused_total{reason=\"unauthorized\"} 18"), "{text}");
    h.shutdown().await;
}

/// Collects every log line of the server while the test runs (current-thread
/// runtime, so every task logs through this subscriber).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_never_appear_in_logs_or_api_config() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut config = tokens_config();
    config.console_messages = signalling::ConsoleMessages::Verbose;
    config.security.admin_token = secret("admin-tok-Q4");
    config.turn =
        Some(TurnConfig { secret: Secret::new("turn-secret-Q5").expect("s"), ttl: std::time::Duration::from_secs(60) });
    config.peer_options =
        serde_json::from_value(json!({"iceServers": [{"urls": ["turn:t.example:3478"]}]})).expect("map");
    let h = server(config).await;
    let _ = try_connect(h.player_addr(), "/?token=wrong-guess-Q6", &[]).await;
    let mut s = try_connect(h.streamer_addr(), "/?token=streamer-tok-Q2", &[]).await.expect("streamer");
    s.expect_type("config").await;
    s.expect_type("identify").await;
    s.send(json!({"type": "endpointId", "id": "S"})).await;
    s.expect_type("endpointIdConfirm").await;
    let mut p = try_connect(h.player_addr(), "/?token=player-tok-Q1", &[]).await.expect("player");
    let config_msg = p.expect_type("config").await;
    let credential =
        config_msg["peerConnectionOptions"]["iceServers"][0]["credential"].as_str().expect("cred").to_string();
    p.send(json!({"type": "subscribe", "streamerId": "S"})).await;
    s.expect_type("playerConnected").await;
    let (_, api) = http_request(h.player_addr(), "GET", "/api/config", &[]).await;
    let (status, _) =
        http_request(h.player_addr(), "POST", "/api/admin/drain", &[("Authorization", "Bearer bad-admin-Q7")]).await;
    assert_eq!(status, 401);
    drop(p);
    s.expect_type("playerDisconnected").await;
    h.shutdown().await;

    let logs = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(logs.contains("refused a player connection"), "logging works: {logs}");
    for needle in [
        "player-tok-Q1",
        "streamer-tok-Q2",
        "sfu-tok-Q3",
        "admin-tok-Q4",
        "turn-secret-Q5",
        "wrong-guess-Q6",
        "bad-admin-Q7",
        &credential,
    ] {
        assert!(!logs.contains(needle), "{needle} in the logs");
        assert!(!api.contains(needle), "{needle} in /api/config: {api}");
    }
    assert!(api.contains("<redacted>"), "{api}");
}

#[tokio::test]
async fn a_browser_origin_not_on_the_list_gets_403() {
    let mut config = ServerConfig::ephemeral();
    config.security.allowed_origins = vec!["https://good.example".into()];
    let h = server(config).await;
    assert_eq!(try_connect(h.player_addr(), "/", &[("origin", "https://evil.example")]).await.err(), Some(403));
    assert_eq!(try_connect(h.streamer_addr(), "/", &[("origin", "null")]).await.err(), Some(403));
    let mut ok = try_connect(h.player_addr(), "/", &[("origin", "https://good.example")]).await.expect("allowed");
    ok.expect_type("config").await;
    let mut native = try_connect(h.player_addr(), "/", &[]).await.expect("no Origin: native client");
    native.expect_type("config").await;
    assert_eq!(h.metrics().refused_count("forbidden_origin"), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn streamer_ids_outside_the_allow_list_or_taken_are_closed_1008() {
    let mut config = ServerConfig::ephemeral();
    config.security.streamer_ids = Some(vec!["A".into(), "B".into()]);
    let h = server(config).await;
    let (_a, id) = Client::streamer(&h, "A").await;
    assert_eq!(id, "A");
    for (asked, reason) in [
        (json!("Z"), "streamer id not allowed"),
        (json!("A"), "streamer id already in use"),
        (json!(""), "streamer id not allowed"),
        (json!("A1"), "streamer id not allowed"),
        (Value::Null, "streamer id not allowed"),
    ] {
        let mut c = Client::connect(h.streamer_addr(), "squatter").await;
        c.expect_type("config").await;
        c.expect_type("identify").await;
        c.send(json!({"type": "endpointId", "id": asked})).await;
        assert_eq!(c.expect_close(1008).await, reason, "asked {asked}");
    }
    let (_b, id) = Client::streamer(&h, "B").await;
    assert_eq!(id, "B");
    let mut p = Client::player(&h).await;
    p.send(json!({"type": "listStreamers"})).await;
    assert_eq!(p.recv().await, json!({"type": "streamerList", "ids": ["A", "B"]}));
    // SFUs are authorised by their token, not by the list.
    let mut sfu = Client::connect(h.sfu_addr(), "sfu").await;
    sfu.expect_type("config").await;
    sfu.expect_type("identify").await;
    sfu.send(json!({"type": "endpointId", "id": "SFU"})).await;
    assert_eq!(sfu.expect_type("endpointIdConfirm").await["committedId"], "SFU");
    assert_eq!(h.counters().dropped.get("streamer_id_not_allowed"), Some(&5));
    h.shutdown().await;
}

#[tokio::test]
async fn each_connection_gets_its_own_turn_credentials() {
    let mut config = ServerConfig::ephemeral();
    config.turn =
        Some(TurnConfig { secret: Secret::new("north").expect("s"), ttl: std::time::Duration::from_secs(3600) });
    config.peer_options = serde_json::from_value(json!({"iceServers": [
        {"urls": ["stun:s.example:3478"]},
        {"urls": ["turn:t.example:3478", "turns:t.example:5349"], "username": "static", "credential": "static"},
    ]}))
    .expect("map");
    let h = server(config).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let mut users = Vec::new();
    for _ in 0..2 {
        let mut p = Client::connect(h.player_addr(), "p").await;
        let c = p.expect_type("config").await;
        let servers = &c["peerConnectionOptions"]["iceServers"];
        assert!(servers[0].get("username").is_none(), "STUN entries get no credentials: {c}");
        let user = servers[1]["username"].as_str().expect("username").to_string();
        let (expiry, id) = user.split_once(':').expect("expiry:id");
        let expiry: u64 = expiry.parse().expect("unix time");
        assert!((now + 3600..=now + 3602).contains(&expiry), "{expiry} vs {now}");
        assert!(id.starts_with("Player"), "{id}");
        // The credential is HMAC-SHA1(secret, username), base64, as coturn checks it.
        let want = {
            use base64::Engine as _;
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"north");
            base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, user.as_bytes()).as_ref())
        };
        assert_eq!(servers[1]["credential"], want);
        users.push(user);
    }
    assert_ne!(users[0], users[1]);
    // Streamers get theirs too.
    let mut s = Client::connect(h.streamer_addr(), "s").await;
    let c = s.expect_type("config").await;
    assert!(c["peerConnectionOptions"]["iceServers"][1]["username"]
        .as_str()
        .is_some_and(|u| u.contains(":UnknownStreamer")));
    h.shutdown().await;
}

#[tokio::test]
async fn admin_routes_are_404_without_an_admin_token() {
    let h = default_server().await;
    for path in ["/api/admin/drain", "/api/admin/players/Player0/kick", "/api/admin/streamers/S/disconnect"] {
        let (status, _) = http_request(h.player_addr(), "POST", path, &[("Authorization", "Bearer x")]).await;
        assert_eq!(status, 404, "{path}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn admin_kick_disconnect_and_drain() {
    let mut config = ServerConfig::ephemeral();
    config.security.admin_token = secret("adm");
    let h = server(config).await;
    let auth = [("Authorization", "Bearer adm")];
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p1, p1_id) = Client::subscribed_player(&h, &mut s, &id).await;
    let (mut p2, _) = Client::subscribed_player(&h, &mut s, &id).await;

    for bad in [&[][..], &[("Authorization", "Bearer nope")][..], &[("Authorization", "adm")][..]] {
        let (status, _) = http_request(h.player_addr(), "POST", &format!("/api/admin/players/{p1_id}/kick"), bad).await;
        assert_eq!(status, 401);
    }
    // GET is not an admin verb.
    assert_eq!(http_request(h.player_addr(), "GET", "/api/admin/drain", &auth).await.0, 404);

    let (status, body) =
        http_request(h.player_addr(), "POST", &format!("/api/admin/players/{p1_id}/kick"), &auth).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(p1.expect_close(1008).await, "kicked by the operator");
    assert_eq!(s.recv().await, json!({"type": "playerDisconnected", "playerId": p1_id}));
    assert_eq!(http_request(h.player_addr(), "POST", "/api/admin/players/Nobody/kick", &auth).await.0, 404);

    let (status, _) = http_request(h.player_addr(), "POST", "/api/admin/streamers/S/disconnect", &auth).await;
    assert_eq!(status, 200);
    assert_eq!(p2.recv().await, json!({"type": "streamerDisconnected"}));
    p2.expect_close(1000).await;
    s.expect_close(1000).await;

    // Drain: sessions in progress continue, new connections get 503.
    let (mut s, id) = Client::streamer(&h, "S2").await;
    let (mut p, pid) = Client::subscribed_player(&h, &mut s, &id).await;
    let (status, body) = http_request(h.player_addr(), "POST", "/api/admin/drain", &auth).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"draining\":true"), "{body}");
    assert_eq!(try_connect(h.player_addr(), "/", &[]).await.err(), Some(503));
    assert_eq!(try_connect(h.streamer_addr(), "/", &[]).await.err(), Some(503));
    s.send(json!({"type": "offer", "sdp": "still", "playerId": pid})).await;
    assert_eq!(p.recv().await["sdp"], "still");
    // HTTP keeps working while draining.
    let (status, metrics) = http_request(h.player_addr(), "GET", "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("signalling_draining 1"), "{metrics}");
    h.shutdown().await;
}
