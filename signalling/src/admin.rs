//! The operator's REST API, behind `--admin_token` (`Authorization: Bearer`):
//!
//! - `POST /api/admin/players/{id}/kick`: close that player (1008, "kicked by
//!   the operator"); its streamer gets `playerDisconnected`.
//! - `POST /api/admin/streamers/{id}/disconnect`: close that streamer (or
//!   SFU); its players get `streamerDisconnected` and are closed.
//! - `POST /api/admin/drain`: refuse new WebSocket connections (503) from now
//!   on and let the current sessions end by themselves.
//!
//! Without an admin token the routes do not exist (404): an unconfigured
//! server has no way in. A wrong or missing token gets 401.

use std::sync::Arc;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::auth;
use crate::config::Secret;
use crate::percent::percent_decode;

/// What the HTTP routes may ask of the running server.
pub trait Control: Send + Sync {
    /// Close a player by id; false when there is none.
    fn kick_player(&self, id: &str) -> bool;
    /// Close a streamer or SFU by streamer id; false when there is none.
    fn disconnect_streamer(&self, id: &str) -> bool;
    /// Stop accepting WebSocket connections; returns the connections still open.
    fn drain(&self) -> usize;
    /// The Prometheus exposition.
    fn metrics(&self) -> String;
    /// `/healthz`: 200 `ok`; 200 `degraded` while a cluster node cannot reach
    /// Redis (it still serves its own sessions); 503 `draining` after a drain.
    fn health(&self) -> (u16, &'static str) {
        (200, "ok")
    }
    /// `/api/nodes`: the cluster's nodes; `None` on one node.
    fn nodes(&self) -> Option<serde_json::Value> {
        None
    }
    /// Pick a streamer with room and reserve it (`GET /match`).
    fn pick(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Pick> + Send + 'static>>;
}

/// What matchmaking found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Reserved for this request; `node` in a cluster.
    Streamer { id: String, node: Option<String> },
    /// Every streamer is full (or there is none, or all are on draining nodes).
    NoneFree,
    /// The cluster's Redis did not answer.
    Unavailable(String),
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// The admin routes, or `None` when no admin token is configured.
pub fn routes(token: Option<Secret>, control: Arc<dyn Control>) -> Option<BoxedFilter<(Response,)>> {
    let token = Arc::new(token?);
    let authorised = warp::path::full().and(warp::header::headers_cloned()).and_then(
        move |path: warp::path::FullPath, headers: http::HeaderMap| {
            let token = token.clone();
            async move {
                if !path.as_str().starts_with("/api/admin/") {
                    return Err(warp::reject::not_found());
                }
                // Bearer only: a token in a URL ends up in proxies' access logs.
                auth::check_token(Some(&token), &headers, None).map_err(|_| warp::reject::custom(Unauthorised))
            }
        },
    );
    let c = control.clone();
    let kick = warp::path!("api" / "admin" / "players" / String / "kick").map(move |raw: String| {
        let id = percent_decode(&raw);
        if c.kick_player(&id) {
            reply(StatusCode::OK, json!({"kicked": id}))
        } else {
            reply(StatusCode::NOT_FOUND, json!({"message": format!("No player ID matches {id}.")}))
        }
    });
    let c = control.clone();
    let disconnect = warp::path!("api" / "admin" / "streamers" / String / "disconnect").map(move |raw: String| {
        let id = percent_decode(&raw);
        if c.disconnect_streamer(&id) {
            reply(StatusCode::OK, json!({"disconnected": id}))
        } else {
            reply(StatusCode::NOT_FOUND, json!({"message": format!("No streamer id matches {id}.")}))
        }
    });
    let c = control;
    let drain = warp::path!("api" / "admin" / "drain").map(move || {
        let open = c.drain();
        reply(StatusCode::OK, json!({"draining": true, "connections": open}))
    });
    let routes = warp::post()
        .and(authorised)
        .untuple_one()
        .and(kick.or(disconnect).unify().or(drain).unify())
        .recover(|rejection: warp::Rejection| async move {
            if rejection.find::<Unauthorised>().is_some() {
                let mut r = reply(StatusCode::UNAUTHORIZED, json!({"message": "admin token required"}));
                r.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
                Ok(r)
            } else {
                Err(rejection)
            }
        })
        .unify();
    Some(routes.boxed())
}

#[derive(Debug)]
struct Unauthorised;
impl warp::reject::Reject for Unauthorised {}
