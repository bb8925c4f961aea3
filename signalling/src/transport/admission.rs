//! Admission: whether a WebSocket upgrade may go ahead — not while the
//! operator drains the server, only from an allowed origin, only with the
//! role's token, only under the connection limits — and, if not, the HTTP
//! answer that says why.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use tracing::info;
use warp::reply::Response;

use super::handoff::plain;
use super::Shared;
use crate::auth::{self, Refusal};
use crate::handshake;
use crate::limits::{LimitRefusal, Permit};
use crate::registry::Role;

/// An upgrade that may not go ahead: the HTTP answer to give.
pub(super) struct Refused {
    status: http::StatusCode,
    body: &'static str,
    /// Add `WWW-Authenticate: Bearer`.
    bearer: bool,
}

impl Refused {
    pub(super) fn bad_handshake() -> Self {
        Refused { status: http::StatusCode::BAD_REQUEST, body: "Bad WebSocket handshake.\n", bearer: false }
    }

    /// The answer through hyper.
    pub(super) fn into_response(self) -> Response {
        let mut response = plain(self.status, self.body);
        if self.bearer {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        response
    }

    /// The answer written by hand (see [`crate::handshake`]).
    pub(super) fn to_http1(&self) -> Vec<u8> {
        let extra: &[(&str, &str)] = if self.bearer { &[("www-authenticate", "Bearer")] } else { &[] };
        handshake::response(self.status, extra, self.body)
    }
}

/// Decide whether this upgrade may go ahead. Order: draining, origin,
/// token, limits (so a client without the token learns nothing about the
/// limits).
pub(super) fn admit(
    headers: &http::HeaderMap,
    query: Option<&str>,
    addr: SocketAddr,
    role: Role,
    shared: &Shared,
) -> Result<Permit, Refused> {
    let refuse = |reason: &'static str, status: http::StatusCode, body: &'static str| {
        shared.metrics.refused(reason);
        info!("refused a {} connection from {addr}: {reason}", role.as_str());
        Refused { status, body, bearer: false }
    };
    if shared.refusing_upgrades.load(Ordering::Relaxed) {
        return Err(refuse("draining", http::StatusCode::SERVICE_UNAVAILABLE, "Server is draining.\n"));
    }
    let checks = auth::check_origin(&shared.config.security.allowed_origins, headers)
        .and_then(|()| auth::check_token(shared.config.token_for(role), headers, query));
    match checks {
        Ok(()) => {}
        Err(Refusal::ForbiddenOrigin) => {
            return Err(refuse("forbidden_origin", http::StatusCode::FORBIDDEN, "Origin not allowed.\n"))
        }
        Err(Refusal::Unauthorized) => {
            let refused = refuse("unauthorized", http::StatusCode::UNAUTHORIZED, "Missing or wrong token.\n");
            return Err(Refused { bearer: true, ..refused });
        }
    }
    match shared.gate.admit(role, addr.ip()) {
        Ok(permit) => Ok(permit),
        Err(LimitRefusal::Role(_)) => {
            Err(refuse("role_limit", http::StatusCode::SERVICE_UNAVAILABLE, "Too many connections of this kind.\n"))
        }
        Err(LimitRefusal::PerIp) => {
            Err(refuse("ip_limit", http::StatusCode::TOO_MANY_REQUESTS, "Too many connections from this address.\n"))
        }
    }
}
