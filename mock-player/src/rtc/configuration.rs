//! A peer connection's `RTCConfiguration`: the server's ICE servers (unless
//! loopback-only) and the process's DTLS certificate.

use proto::ice_servers::ice_servers;
use serde_json::Value;
use webrtc::peer_connection::{RTCCertificate, RTCConfiguration, RTCConfigurationBuilder, RTCIceServer};

/// The configuration for the `peerConnectionOptions` of the server's
/// `config`. Loopback-only ignores its ICE servers (no STUN/TURN); malformed
/// ones are ignored with a warning (the player can still join on host
/// candidates).
pub fn configuration(
    peer_connection_options: &Value,
    loopback_only: bool,
    certificate: &RTCCertificate,
) -> RTCConfiguration {
    let builder = RTCConfigurationBuilder::new().with_certificates(vec![certificate.clone()]);
    if loopback_only {
        return builder.build();
    }
    let servers = match ice_servers(peer_connection_options) {
        Ok(servers) => servers,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the server's peerConnectionOptions");
            Vec::new()
        }
    };
    let servers = servers
        .into_iter()
        .map(|s| RTCIceServer { urls: s.urls, username: s.username, credential: s.credential })
        .collect();
    builder.with_ice_servers(servers).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtc::crypto::process_crypto;

    #[test]
    fn ice_servers_are_used_unless_loopback() {
        let certificate = &process_crypto().expect("crypto").certificate;
        let opts =
            serde_json::json!({"iceServers":[{"urls":"turn:turn.example:3478","username":"u","credential":"p"}]});
        let any = configuration(&opts, false, certificate);
        assert_eq!(any.ice_servers().len(), 1);
        assert_eq!(any.ice_servers()[0].credential, "p");
        assert_eq!(any.certificates().len(), 1);
        assert!(configuration(&opts, true, certificate).ice_servers().is_empty());
        let malformed = configuration(&serde_json::json!({"iceServers":5}), false, certificate);
        assert!(malformed.ice_servers().is_empty());
        assert_eq!(malformed.certificates().len(), 1);
    }
}
