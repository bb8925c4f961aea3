//! The public surface of the player port, pinned: with the flags a user gives, which requests
//! answer 200, and that no body shows a peer's address. Servers are started from real flags
//! (`Cli` → `resolve_full` → `run`), with a real streamer and a real player connected, so there
//! are addresses that could leak.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use clap::Parser;
use common::*;
use signalling::cli::{resolve_full, Cli};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::MaybeTlsStream;

const ADMIN_TOKEN: &str = "surface-admin-7Q";

/// One HTTP/1.1 request; returns (status, body).
async fn request(addr: SocketAddr, method: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw)).await.expect("answer in time").expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn local_addr(client: &Client) -> SocketAddr {
    match client.ws.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr().expect("local addr"),
        _ => panic!("plain TCP expected"),
    }
}

/// A server started from these flags (after `--no_config` and ephemeral ports), with streamer
/// `S` and one subscribed player.
struct Running {
    handle: signalling::ServerHandle,
    _streamer: Client,
    _player: Client,
    player_id: String,
    /// The peers' addresses as the server sees them (`ip:port`).
    peer_addresses: Vec<String>,
}

async fn start(flags: &[&str]) -> Running {
    let mut args = vec!["signalling", "--no_config", "--streamer_port=0", "--player_port=0", "--sfu_port=0"];
    args.extend_from_slice(flags);
    let cli = Cli::try_parse_from(&args).expect("flags parse");
    let resolved = resolve_full(cli).expect("flags resolve");
    let handle = server(resolved.config).await;
    let (mut streamer, id) = Client::streamer(&handle, "S").await;
    assert_eq!(id, "S");
    let (player, player_id) = Client::subscribed_player(&handle, &mut streamer, &id).await;
    let peer_addresses = vec![local_addr(&streamer).to_string(), local_addr(&player).to_string()];
    Running { handle, _streamer: streamer, _player: player, player_id, peer_addresses }
}

/// Every request the server knows (and a few it does not), as a visitor without credentials
/// would send them. Admin routes that act are only ever sent without a token here.
fn every_path(player_id: &str) -> Vec<(&'static str, String)> {
    let get = |p: &str| ("GET", p.to_string());
    let post = |p: String| ("POST", p);
    vec![
        get("/healthz"),
        get("/"),
        get("/player.html"),
        get("/metrics"),
        get("/api/status"),
        get("/api/streamers"),
        get("/api/streamers/S"),
        get("/api/players"),
        get(&format!("/api/players/{player_id}")),
        get("/api/config"),
        get("/api/nodes"),
        get("/api/admin/drain"),
        get("/nope"),
        get("/api/nope"),
        post(format!("/api/admin/players/{player_id}/kick")),
        post("/api/admin/streamers/S/disconnect".to_string()),
        post("/api/admin/drain".to_string()),
    ]
}

/// Sends every request to `addr`; returns the set that answered 200, and fails if any body
/// contains one of `addresses`.
async fn sweep(addr: SocketAddr, player_id: &str, addresses: &[String]) -> BTreeSet<String> {
    let mut ok = BTreeSet::new();
    for (method, path) in every_path(player_id) {
        let (status, body) = request(addr, method, &path, None).await;
        for address in addresses {
            assert!(!body.contains(address.as_str()), "{method} {path} on {addr} shows peer address {address}: {body}");
        }
        if status == 200 {
            ok.insert(format!("{method} {}", path.replace(player_id, "{player}")));
        }
    }
    ok
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const REST: [&str; 6] = [
    "GET /api/status",
    "GET /api/streamers",
    "GET /api/streamers/S",
    "GET /api/players",
    "GET /api/players/{player}",
    "GET /api/config",
];

#[tokio::test]
async fn default_flags_serve_health_the_page_and_metrics_only() {
    let r = start(&[]).await;
    assert_eq!(r.handle.management_addr(), None);
    let ok = sweep(r.handle.player_addr(), &r.player_id, &r.peer_addresses).await;
    assert_eq!(ok, set(&["GET /healthz", "GET /", "GET /metrics"]));
    r.handle.shutdown().await;
}

#[tokio::test]
async fn rest_api_adds_the_rest_without_addresses() {
    let r = start(&["--rest_api", &format!("--admin_token={ADMIN_TOKEN}")]).await;
    let ok = sweep(r.handle.player_addr(), &r.player_id, &r.peer_addresses).await;
    let mut expected = set(&["GET /healthz", "GET /", "GET /metrics"]);
    expected.extend(set(&REST));
    assert_eq!(ok, expected);
    // The admin routes exist (401, not 404) but answer nothing without the token…
    let (status, _) = request(r.handle.player_addr(), "POST", "/api/admin/drain", None).await;
    assert_eq!(status, 401);
    // …and the addresses are there for the operator who has it (so the sweep above could fail).
    let (status, body) = request(r.handle.player_addr(), "GET", "/api/players", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains(&r.peer_addresses[1]), "{body}");
    r.handle.shutdown().await;
}

#[tokio::test]
async fn management_bind_moves_operations_off_the_player_port() {
    let r = start(&["--rest_api", "--management_bind=127.0.0.1:0", &format!("--admin_token={ADMIN_TOKEN}")]).await;
    let player_port = r.handle.player_addr();
    let management = r.handle.management_addr().expect("management listener bound");
    assert_ne!(management.port(), player_port.port());

    // The player port: only what players need, and the admin routes are gone (404, not 401).
    let ok = sweep(player_port, &r.player_id, &r.peer_addresses).await;
    assert_eq!(ok, set(&["GET /healthz", "GET /"]));
    let (status, _) = request(player_port, "POST", "/api/admin/drain", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 404);

    // The management listener: health, metrics and the REST API, no page; admin still needs its token.
    let ok = sweep(management, &r.player_id, &[]).await;
    let mut expected = set(&["GET /healthz", "GET /metrics"]);
    expected.extend(set(&REST));
    assert_eq!(ok, expected);
    for path in ["/api/players", "/api/streamers"] {
        let (status, body) = request(management, "GET", path, None).await;
        assert_eq!(status, 200);
        assert!(r.peer_addresses.iter().any(|a| body.contains(a.as_str())), "{path} shows addresses: {body}");
    }
    let (status, _) = request(management, "POST", "/api/admin/drain", None).await;
    assert_eq!(status, 401);
    let (status, body) = request(management, "POST", "/api/admin/drain", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    // No WebSocket on the management listener.
    let (status, _) = request(management, "GET", "/", None).await;
    assert_eq!(status, 404);
    r.handle.shutdown().await;
}

#[tokio::test]
async fn management_bind_serves_the_rest_api_even_without_rest_api() {
    let r = start(&["--management_bind=127.0.0.1:0"]).await;
    let management = r.handle.management_addr().expect("management listener bound");
    let ok = sweep(r.handle.player_addr(), &r.player_id, &r.peer_addresses).await;
    assert_eq!(ok, set(&["GET /healthz", "GET /"]));
    let ok = sweep(management, &r.player_id, &[]).await;
    let mut expected = set(&["GET /healthz", "GET /metrics"]);
    expected.extend(set(&REST));
    assert_eq!(ok, expected);
    r.handle.shutdown().await;
}

#[tokio::test]
async fn static_files_stay_on_the_player_port() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("player.html"), "<html>home</html>").expect("write page");
    std::fs::write(root.path().join("app.js"), "// app").expect("write script");
    let http_root = format!("--http_root={}", root.path().display());
    let r = start(&["--management_bind=127.0.0.1:0", &http_root]).await;
    let management = r.handle.management_addr().expect("management listener bound");
    for path in ["/", "/player.html", "/app.js"] {
        assert_eq!(request(r.handle.player_addr(), "GET", path, None).await.0, 200, "{path} on the player port");
        assert_eq!(request(management, "GET", path, None).await.0, 404, "{path} on the management listener");
    }
    r.handle.shutdown().await;
}

#[tokio::test]
async fn a_taken_management_address_is_a_clear_start_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let config = signalling::ServerConfig { management_bind: Some(addr), ..signalling::ServerConfig::ephemeral() };
    let error = signalling::run(config).await.err().expect("must not start");
    let text = error.to_string();
    assert!(text.contains("management") && text.contains(&addr.to_string()), "{text}");
}
