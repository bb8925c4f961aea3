//! Plain HTTP on the player port: Wilbur's REST API, liveness, and static files.
//!
//! The transport hands every non-WebSocket request on the player port to [`routes`]. The filter
//! never rejects: anything it does not serve gets a 404, so the transport needs no fallback.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::admin::{Control, Pick};
use crate::config::ServerConfig;
use crate::percent::percent_decode;
use crate::snapshot::Snapshot;

mod api_config;
pub(crate) use api_config::api_config;

/// The built-in player page (plain HTML + JavaScript, no build step), served at
/// `/` when no `--http_root` is given, so a browser can watch a stream with
/// nothing else installed.
pub const PLAYER_PAGE: &str = include_str!("player_page.html");

/// The future [`HttpState::refresh`] returns.
pub type Refresh = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// What the HTTP routes read: a registry snapshot on demand, the config, and the start time.
#[derive(Clone)]
pub struct HttpState {
    /// Takes a fresh snapshot of the registry; called once per REST request.
    pub snapshot: Arc<dyn Fn() -> Snapshot + Send + Sync>,
    /// Awaited before each REST request that shows the registry: in a
    /// cluster it reads the other nodes' registries from Redis.
    pub refresh: Option<Arc<dyn Fn() -> Refresh + Send + Sync>>,
    pub config: Arc<ServerConfig>,
    /// When the server started, for `uptime` in `/api/status`.
    pub started: Instant,
    /// The running server, for `/metrics` and the admin routes; `None` in unit tests.
    pub control: Option<Arc<dyn Control>>,
}

/// Every HTTP route of the player port, ending in a 404 for anything else. With a management
/// listener (`--management_bind`) the operators' routes (`/api`, `/metrics`, admin) live there
/// instead, and this port serves only what players need: `/healthz`, the page, static files.
pub fn routes(state: HttpState) -> BoxedFilter<(Response,)> {
    let state = Arc::new(state);
    let mut filter = health(&state);
    if let Some(matchmaking) = matchmaking(&state) {
        filter = filter.or(matchmaking).unify().boxed();
    }
    if state.config.management_bind.is_none() {
        if let Some(operations) = operations(&state) {
            filter = filter.or(operations).unify().boxed();
        }
        if state.config.rest_api {
            filter = filter.or(api(state.clone(), Addresses::WithAdminToken)).unify().boxed();
        }
    }
    if state.config.serve {
        filter = filter.or(static_files(&state.config)).unify().boxed();
    }
    with_not_found(filter)
}

/// The management listener's routes: `/healthz`, `/metrics`, the admin API and the REST API
/// (whatever `--rest_api` says: this listener is private), with peers' addresses.
pub fn management_routes(state: HttpState) -> BoxedFilter<(Response,)> {
    let state = Arc::new(state);
    let mut filter = health(&state);
    if let Some(matchmaking) = matchmaking(&state) {
        filter = filter.or(matchmaking).unify().boxed();
    }
    if let Some(operations) = operations(&state) {
        filter = filter.or(operations).unify().boxed();
    }
    filter = filter.or(api(state.clone(), Addresses::Always)).unify().boxed();
    with_not_found(filter)
}

/// `/healthz`: what a load balancer asks (see [`Control::health`]).
fn health(state: &HttpState) -> BoxedFilter<(Response,)> {
    let control = state.control.clone();
    warp::get()
        .and(warp::path!("healthz"))
        .map(move || {
            let (code, body) = control.as_ref().map_or((200, "ok"), |c| c.health());
            text(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body)
        })
        .boxed()
}

/// Seconds a client told "none free" waits before asking again.
const RETRY_AFTER_SECS: u64 = 2;

/// `GET /match` (a browser is redirected to the picked streamer's page, or
/// shown a page that waits and retries) and `GET /api/match` (JSON). Every
/// pick reserves its streamer for a few seconds.
fn matchmaking(state: &HttpState) -> Option<BoxedFilter<(Response,)>> {
    let control = state.control.clone()?;
    let c = control.clone();
    let page =
        warp::path!("match").and(warp::header::optional::<String>("accept")).then(move |accept: Option<String>| {
            let pick = c.pick();
            async move {
                let browser = accept.is_some_and(|a| a.contains("text/html"));
                match pick.await {
                    Pick::Streamer { id, .. } => {
                        let location = format!("/?StreamerId={}", percent_encode(&id));
                        let mut r = warp::reply::with_status(String::new(), StatusCode::FOUND).into_response();
                        if let Ok(value) = warp::http::HeaderValue::from_str(&location) {
                            r.headers_mut().insert(warp::http::header::LOCATION, value);
                        }
                        r
                    }
                    Pick::NoneFree if browser => waiting_page(),
                    Pick::NoneFree => retry_later("no streamer is free"),
                    Pick::Unavailable(why) => retry_later(&format!("matchmaking unavailable: {why}")),
                }
            }
        });
    let api = warp::path!("api" / "match").then(move || {
        let pick = control.pick();
        async move {
            match pick.await {
                Pick::Streamer { id, node } => json_ok(&json!({ "streamerId": id, "node": node })),
                Pick::NoneFree => retry_later_json("No streamer is free."),
                Pick::Unavailable(why) => retry_later_json(&format!("Matchmaking is unavailable: {why}")),
            }
        }
    });
    Some(warp::get().and(page.or(api).unify()).boxed())
}

fn with_retry_after(mut r: Response) -> Response {
    r.headers_mut().insert(warp::http::header::RETRY_AFTER, warp::http::HeaderValue::from(RETRY_AFTER_SECS));
    r
}

fn retry_later(body: &str) -> Response {
    with_retry_after(text(StatusCode::SERVICE_UNAVAILABLE, body))
}

fn retry_later_json(message: &str) -> Response {
    with_retry_after(
        warp::reply::with_status(warp::reply::json(&json!({ "message": message })), StatusCode::SERVICE_UNAVAILABLE)
            .into_response(),
    )
}

/// For a person: every streamer is busy; the page asks again by itself.
fn waiting_page() -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{RETRY_AFTER_SECS}\">\
         <title>Waiting for a free stream</title></head><body style=\"font-family:sans-serif\">\
         <p>Every stream is busy. This page tries again every {RETRY_AFTER_SECS} seconds.</p></body></html>"
    );
    with_retry_after(warp::reply::with_status(warp::reply::html(html), StatusCode::SERVICE_UNAVAILABLE).into_response())
}

/// A streamer id as a query value.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn with_not_found(filter: BoxedFilter<(Response,)>) -> BoxedFilter<(Response,)> {
    filter.or(warp::any().map(|| text(StatusCode::NOT_FOUND, "Not Found"))).unify().boxed()
}

/// `/metrics` and the admin routes (the latter only with an admin token configured); `None`
/// without a running server (unit tests).
fn operations(state: &HttpState) -> Option<BoxedFilter<(Response,)>> {
    let control = state.control.as_ref()?;
    let c = control.clone();
    let metrics = warp::get().and(warp::path!("metrics")).map(move || {
        let mut r = warp::reply::with_status(c.metrics(), StatusCode::OK).into_response();
        r.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    });
    let mut filter = metrics.boxed();
    if let Some(admin) = crate::admin::routes(state.config.security.admin_token.clone(), control.clone()) {
        filter = filter.or(admin).unify().boxed();
    }
    Some(filter)
}

/// Who sees peers' `remoteAddress` in the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addresses {
    /// Only a request carrying the admin token (the public player port).
    WithAdminToken,
    /// Every request (the private management listener).
    Always,
}

/// Wilbur's REST API (`/api/...`), GET only. Peers' `remoteAddress` is personal data: on the
/// player port it is shown only to a request carrying the admin token (`Authorization:
/// Bearer`); everyone else sees ids and counts.
fn api(state: Arc<HttpState>, addresses: Addresses) -> BoxedFilter<(Response,)> {
    let authorised = move |state: &HttpState| match addresses {
        Addresses::WithAdminToken => authorised(state),
        Addresses::Always => warp::any().map(|| true).boxed(),
    };
    let refresh = state.refresh.clone();
    let fresh = warp::any()
        .then(move || {
            let r = refresh.clone();
            async move {
                if let Some(r) = r {
                    r().await;
                }
            }
        })
        .untuple_one()
        .boxed();
    let s = state.clone();
    let status = warp::path!("api" / "status").and(fresh.clone()).map(move || status(&s));
    let s = state.clone();
    let streamers = warp::path!("api" / "streamers")
        .and(fresh.clone())
        .and(authorised(&state))
        .map(move |full: bool| addressed_json(&(s.snapshot)().streamers, full));
    let s = state.clone();
    let streamer = warp::path!("api" / "streamers" / String).and(fresh.clone()).and(authorised(&state)).map(
        move |raw: String, full: bool| {
            let id = percent_decode(&raw);
            let snapshot = (s.snapshot)();
            match snapshot.streamers.iter().find(|st| st.streamer_id == id) {
                Some(found) => addressed_json(found, full),
                None => not_found_json(&format!("No streamer id matches {id}.")),
            }
        },
    );
    let s = state.clone();
    let players = warp::path!("api" / "players")
        .and(fresh.clone())
        .and(authorised(&state))
        .map(move |full: bool| addressed_json(&(s.snapshot)().players, full));
    let s = state.clone();
    let player = warp::path!("api" / "players" / String).and(fresh).and(authorised(&state)).map(
        move |raw: String, full: bool| {
            let id = percent_decode(&raw);
            let snapshot = (s.snapshot)();
            match snapshot.players.iter().find(|p| p.player_id == id) {
                Some(found) => addressed_json(found, full),
                None => not_found_json(&format!("No player ID matches {id}.")),
            }
        },
    );
    let c = state.control.clone();
    let nodes = warp::path!("api" / "nodes").map(move || match c.as_ref().and_then(|c| c.nodes()) {
        Some(nodes) => json_ok(&nodes),
        None => not_found_json("Not a cluster: this server runs without --redis_url."),
    });
    // The configuration does not change while the server runs: one view, built once.
    let view = api_config(&state.config);
    let config = warp::path!("api" / "config").map(move || json_ok(&view));
    warp::get()
        .and(
            status
                .or(streamers)
                .unify()
                .or(streamer)
                .unify()
                .or(players)
                .unify()
                .or(player)
                .unify()
                .or(nodes)
                .unify()
                .or(config)
                .unify(),
        )
        .boxed()
}

/// `true` when the request carries the admin token; never rejects (no token configured: `false`).
fn authorised(state: &HttpState) -> BoxedFilter<(bool,)> {
    let token = state.config.security.admin_token.clone();
    warp::header::headers_cloned()
        .map(move |headers: warp::http::HeaderMap| {
            token.as_ref().is_some_and(|t| crate::auth::check_token(Some(t), &headers, None).is_ok())
        })
        .boxed()
}

/// JSON of registry entries; without `full`, every `remoteAddress` is left out.
fn addressed_json<T: serde::Serialize>(body: &T, full: bool) -> Response {
    if full {
        return json_ok(body);
    }
    let mut value = serde_json::to_value(body).unwrap_or(serde_json::Value::Null);
    strip_addresses(&mut value);
    json_ok(&value)
}

fn strip_addresses(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("remoteAddress");
            map.values_mut().for_each(strip_addresses);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_addresses),
        _ => {}
    }
}

/// `GET /api/status`: `uptime` is in milliseconds, as in Wilbur.
fn status(state: &HttpState) -> Response {
    let snapshot = (state.snapshot)();
    let uptime_ms = u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut body = json!({
        "uptime": uptime_ms,
        "streamer_count": snapshot.streamers.len(),
        "player_count": snapshot.players.len(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    // In a cluster the counts are the cluster's; say over how many nodes, and which one answered.
    if let (Some(cluster), Some(nodes)) = (&state.config.cluster, state.control.as_ref().and_then(|c| c.nodes())) {
        body["node"] = json!(cluster.node_id);
        body["node_count"] = json!(nodes.as_array().map_or(1, Vec::len));
    }
    json_ok(&body)
}

/// Static files from `http_root` with the homepage at `/`, or the placeholder page at `/`.
fn static_files(config: &ServerConfig) -> BoxedFilter<(Response,)> {
    let get_or_head = warp::get().or(warp::head()).unify();
    let Some(root) = &config.http_root else {
        return get_or_head.and(warp::path::end()).map(|| warp::reply::html(PLAYER_PAGE).into_response()).boxed();
    };
    let homepage = root.join(&config.homepage);
    let missing = format!("Unable to locate file {}", config.homepage);
    let home = warp::path::end()
        .and(warp::fs::file(homepage))
        .map(Reply::into_response)
        .or(warp::path::end().map(move || text(StatusCode::NOT_FOUND, &missing)))
        .unify();
    let dir = warp::fs::dir(root.clone()).map(Reply::into_response);
    get_or_head.and(home.or(dir).unify()).boxed()
}

fn json_ok<T: serde::Serialize>(body: &T) -> Response {
    warp::reply::json(body).into_response()
}

/// Wilbur's 404 body for the REST API: `{"message": "..."}`.
fn not_found_json(message: &str) -> Response {
    warp::reply::with_status(warp::reply::json(&json!({ "message": message })), StatusCode::NOT_FOUND).into_response()
}

fn text(status: StatusCode, body: &str) -> Response {
    warp::reply::with_status(body.to_string(), status).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{EndpointKind, PlayerInfo, StreamerInfo, SubscriberKind};
    use serde_json::Value;

    fn player(id: &str, to: Option<&str>) -> PlayerInfo {
        PlayerInfo {
            player_id: id.to_string(),
            kind: SubscriberKind::Player,
            subscribed_to: to.map(str::to_string),
            remote_address: "127.0.0.1:5000".to_string(),
            node: None,
        }
    }

    fn sample() -> Snapshot {
        let p0 = player("Player0", Some("DefaultStreamer"));
        Snapshot {
            streamers: vec![StreamerInfo {
                streamer_id: "DefaultStreamer".to_string(),
                kind: EndpointKind::Streamer,
                streaming: true,
                remote_address: "127.0.0.1:4000".to_string(),
                subscribers: vec![p0.clone()],
                node: None,
            }],
            players: vec![p0, player("Player1", None)],
        }
    }

    /// The default config with `--rest_api` (off by default).
    fn rest_on() -> ServerConfig {
        ServerConfig { rest_api: true, ..ServerConfig::default() }
    }

    fn state(config: ServerConfig) -> HttpState {
        HttpState {
            snapshot: Arc::new(sample),
            refresh: None,
            config: Arc::new(config),
            started: Instant::now(),
            control: None,
        }
    }

    async fn get(filter: &BoxedFilter<(Response,)>, path: &str) -> (StatusCode, String) {
        let res = warp::test::request().path(path).reply(filter).await;
        let body = String::from_utf8_lossy(res.body()).into_owned();
        (res.status(), body)
    }

    async fn get_json(filter: &BoxedFilter<(Response,)>, path: &str) -> (StatusCode, Value) {
        let (status, body) = get(filter, path).await;
        match serde_json::from_str(&body) {
            Ok(v) => (status, v),
            Err(e) => panic!("{path} returned non-JSON {body:?}: {e}"),
        }
    }

    #[tokio::test]
    async fn status_has_wilbur_shape() {
        let f = routes(state(rest_on()));
        let (status, v) = get_json(&f, "/api/status").await;
        assert_eq!(status, StatusCode::OK);
        assert!(v["uptime"].is_u64(), "{v}");
        assert_eq!(v["streamer_count"], 1);
        assert_eq!(v["player_count"], 2);
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    }

    #[tokio::test]
    async fn streamers_list_and_one() {
        let f = routes(state(rest_on()));
        let (status, v) = get_json(&f, "/api/streamers").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v[0]["streamerId"], "DefaultStreamer");
        assert_eq!(v[0]["type"], "Streamer");
        assert_eq!(v[0]["streaming"], true);
        assert_eq!(v[0]["subscribers"][0]["playerId"], "Player0");

        let (status, v) = get_json(&f, "/api/streamers/DefaultStreamer").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["streamerId"], "DefaultStreamer");
        assert!(v.get("remoteAddress").is_none(), "{v}");

        let (status, v) = get_json(&f, "/api/streamers/Nope%20Here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v, serde_json::json!({"message": "No streamer id matches Nope Here."}));
    }

    #[tokio::test]
    async fn players_list_and_one() {
        let f = routes(state(rest_on()));
        let (status, v) = get_json(&f, "/api/players").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        assert_eq!(v[0]["subscribedTo"], "DefaultStreamer");
        assert!(v[1].get("subscribedTo").is_none(), "{v}");

        let (status, v) = get_json(&f, "/api/players/Player1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["type"], "Player");

        let (status, v) = get_json(&f, "/api/players/Player9").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v, serde_json::json!({"message": "No player ID matches Player9."}));
    }

    #[tokio::test]
    async fn config_returns_the_view_of_the_server_config() {
        let config = ServerConfig { player_port: 1, ..rest_on() };
        let f = routes(state(config.clone()));
        let (status, v) = get_json(&f, "/api/config").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, api_config(&config));
        assert_eq!(v["config"]["playerPort"], 1);
    }

    #[tokio::test]
    async fn addresses_only_with_the_admin_token() {
        let mut config = rest_on();
        config.security.admin_token = crate::config::Secret::new("adm-Z1");
        let f = routes(state(config));
        for path in ["/api/streamers", "/api/streamers/DefaultStreamer", "/api/players", "/api/players/Player0"] {
            let (status, body) = get(&f, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(!body.contains("remoteAddress") && !body.contains("127.0.0.1"), "{path}: {body}");
            for auth in ["Bearer wrong", "adm-Z1"] {
                let res = warp::test::request().path(path).header("authorization", auth).reply(&f).await;
                assert!(!String::from_utf8_lossy(res.body()).contains("127.0.0.1"), "{path} with {auth}");
            }
            let res = warp::test::request().path(path).header("authorization", "Bearer adm-Z1").reply(&f).await;
            let body = String::from_utf8_lossy(res.body()).into_owned();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert!(body.contains("\"remoteAddress\":\"127.0.0.1:"), "{path}: {body}");
        }
    }

    #[tokio::test]
    async fn rest_api_is_off_by_default() {
        let f = routes(state(ServerConfig::default()));
        assert_eq!(get(&f, "/api/streamers").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn rest_api_off_is_404_but_health_stays() {
        let config = ServerConfig { rest_api: false, ..ServerConfig::default() };
        let f = routes(state(config));
        assert_eq!(get(&f, "/api/status").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&f, "/healthz").await, (StatusCode::OK, "ok".to_string()));
    }

    #[tokio::test]
    async fn healthz_and_unknown_paths() {
        let f = routes(state(rest_on()));
        assert_eq!(get(&f, "/healthz").await, (StatusCode::OK, "ok".to_string()));
        assert_eq!(get(&f, "/nope").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&f, "/api/nope").await.0, StatusCode::NOT_FOUND);
        let res = warp::test::request().method("POST").path("/api/status").reply(&f).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn placeholder_page_without_http_root() {
        let f = routes(state(ServerConfig::default()));
        let (status, body) = get(&f, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, PLAYER_PAGE);

        let off = routes(state(ServerConfig { serve: false, ..ServerConfig::default() }));
        assert_eq!(get(&off, "/").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn static_files_with_homepage() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("home.html"), "<p>home</p>").expect("write");
        std::fs::create_dir(dir.path().join("js")).expect("mkdir");
        std::fs::write(dir.path().join("js/app.js"), "let x = 1;").expect("write");
        let config =
            ServerConfig { http_root: Some(dir.path().to_path_buf()), homepage: "home.html".to_string(), ..rest_on() };
        let f = routes(state(config));
        assert_eq!(get(&f, "/").await, (StatusCode::OK, "<p>home</p>".to_string()));
        let res = warp::test::request().path("/js/app.js").reply(&f).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body().as_ref(), b"let x = 1;");
        assert!(res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("javascript")));
        assert_eq!(get(&f, "/missing.css").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&f, "/../etc/passwd").await.0, StatusCode::NOT_FOUND);
        // The REST API still answers next to the files.
        assert_eq!(get(&f, "/api/streamers/DefaultStreamer").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn missing_homepage_is_404_like_wilbur() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = ServerConfig { http_root: Some(dir.path().to_path_buf()), ..ServerConfig::default() };
        let f = routes(state(config));
        assert_eq!(get(&f, "/").await, (StatusCode::NOT_FOUND, "Unable to locate file player.html".to_string()));
    }
}
