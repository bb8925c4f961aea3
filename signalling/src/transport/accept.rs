//! Listeners: the accept loop of each port and, with TLS, the TLS handshake,
//! before an accepted stream is handed to [`super::handoff::serve_stream`].
//! One task per accepted stream; accept errors (EMFILE…) back off instead of
//! spinning.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::handoff::serve_stream;
use super::Shared;
use crate::registry::Role;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// WebSockets of this role (and HTTP on the player port).
    Ws(Role),
    /// Plain HTTP that redirects everything to HTTPS.
    Redirect,
    /// The operators' private plain-HTTP listener (`--management_bind`): no WebSockets.
    Management,
}

/// Accept connections on `listener` until shutdown.
pub async fn serve_listener(listener: TcpListener, kind: Listener, shared: Arc<Shared>) {
    loop {
        let (stream, addr) = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept on the {kind:?} port failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // (On Linux the listener's TCP_NODELAY is inherited.)
        if cfg!(not(target_os = "linux")) {
            let _ = stream.set_nodelay(true);
        }
        let shared2 = shared.clone();
        shared.tasks.spawn(async move {
            let timeout = shared2.config.limits.handshake_timeout;
            match (&shared2.tls, kind) {
                (Some(tls), Listener::Ws(_)) => {
                    let handshake = tokio::select! {
                        _ = shared2.shutdown.cancelled() => return,
                        // Boxed: the TLS handshake state is large and short-lived.
                        r = Box::pin(tokio::time::timeout(timeout, tls.accept(stream))) => r,
                    };
                    match handshake {
                        // Boxed: only TLS connections pay for the TLS stream's size.
                        Ok(Ok(tls_stream)) => Box::pin(serve_stream(tls_stream, addr, kind, shared2)).await,
                        Ok(Err(e)) => {
                            shared2.metrics.dropped("tls_handshake_failed");
                            debug!("TLS handshake from {addr} failed: {e}");
                        }
                        Err(_) => {
                            shared2.metrics.dropped("handshake_timeout");
                            debug!("TLS handshake from {addr} timed out");
                        }
                    }
                }
                _ => serve_stream(stream, addr, kind, shared2).await,
            }
        });
    }
}
