//! The ICE servers in the `peerConnectionOptions` object of the server's
//! `config` message, read without any WebRTC library (`proto::rtc` turns them
//! into webrtc's `RTCIceServer`s).

use serde_json::Value;

/// One STUN/TURN server, as `RTCIceServer` has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// `peerConnectionOptions` whose `iceServers` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IceServersError {
    #[error("iceServers is not an array")]
    NotAnArray,
    #[error("an ICE server has no urls")]
    NoUrls,
}

/// The `iceServers` of `peerConnectionOptions`
/// (`{"iceServers":[{"urls":[…]|"…","username":"…","credential":"…"}]}`;
/// the legacy `url` is read too). Missing or `null`: none. Unknown keys are
/// ignored; a malformed `iceServers` is an error.
pub fn ice_servers(peer_connection_options: &Value) -> Result<Vec<IceServer>, IceServersError> {
    let servers = match peer_connection_options.get("iceServers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(IceServersError::NotAnArray),
    };
    servers
        .iter()
        .map(|server| {
            let urls = match server.get("urls").or_else(|| server.get("url")) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a.iter().filter_map(|u| u.as_str().map(String::from)).collect(),
                _ => return Err(IceServersError::NoUrls),
            };
            let text = |key: &str| server.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
            Ok(IceServer { urls, username: text("username"), credential: text("credential") })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_urls_credentials_and_refuses_malformed() {
        let opts = serde_json::json!({"iceServers":[
            {"urls":["stun:stun.example:3478"]},
            {"urls":"turn:turn.example:3478","username":"u","credential":"p"},
            {"url":"stun:legacy.example"}
        ], "other": 1});
        let s = ice_servers(&opts).expect("valid");
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].urls, vec!["stun:stun.example:3478".to_string()]);
        assert_eq!(
            s[1],
            IceServer { urls: vec!["turn:turn.example:3478".into()], username: "u".into(), credential: "p".into() }
        );
        assert_eq!(s[2].urls, vec!["stun:legacy.example".to_string()]);
        assert_eq!(ice_servers(&serde_json::json!({})), Ok(vec![]));
        assert_eq!(ice_servers(&serde_json::json!({"iceServers":null})), Ok(vec![]));
        assert_eq!(ice_servers(&serde_json::json!({"iceServers":5})), Err(IceServersError::NotAnArray));
        assert_eq!(ice_servers(&serde_json::json!({"iceServers":[{}]})), Err(IceServersError::NoUrls));
    }
}
