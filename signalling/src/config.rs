//! Server configuration: what the server needs to run, already resolved from
//! flags, `config.json` and defaults (see `cli` for where the values come from).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

/// How much of each signalling message the server logs (`--console_messages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsoleMessages {
    /// Nothing per message.
    #[default]
    Off,
    /// One line per message: direction, peer and type.
    Basic,
    /// One line per message with its whole JSON.
    Verbose,
    /// Like verbose, pretty-printed over several lines.
    Formatted,
}

/// Everything `run` needs. `Default` gives a server on loopback with Wilbur's
/// ports except the player port (80 needs privileges; we use 8080).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address every listener binds to.
    pub bind: IpAddr,
    pub streamer_port: u16,
    pub player_port: u16,
    pub sfu_port: u16,
    /// Subscribers allowed per streamer; 0 = unlimited.
    pub max_players: usize,
    /// The `peerConnectionOptions` object sent in every `config`.
    pub peer_options: Map<String, Value>,
    /// Send `playerCount` after `config` to players (SEED). Off for strict clients.
    pub send_player_count: bool,
    /// WebSocket ping interval for every connection; `None` = off.
    pub ping_interval: Option<Duration>,
    /// Largest accepted frame/message in bytes; larger closes with 1009.
    pub max_message_size: usize,
    /// Messages each connection may send per second (sustained) …
    pub rate_limit_per_sec: u32,
    /// … and in a burst; more closes the connection with 1008. Applies to players.
    pub rate_limit_burst: u32,
    /// The same for streamers and SFUs, which speak for all their players (an
    /// offer and candidates per join), so a player's limit would throttle them
    /// under load. 0 = no limit (the default; protect these ports with tokens).
    pub streamer_rate_limit_per_sec: u32,
    pub streamer_rate_limit_burst: u32,
    /// Frames queued towards one player before it is closed as not reading.
    pub send_queue_len: usize,
    /// The same for streamers and SFUs: a thousand players joining at once
    /// queue thousands of messages to their streamer in a moment.
    pub streamer_send_queue_len: usize,
    /// Serve static files from `http_root` on the player port.
    pub serve: bool,
    pub http_root: Option<PathBuf>,
    /// File under `http_root` served at `/`.
    pub homepage: String,
    /// Enable the REST API under `/api` on the player port.
    pub rest_api: bool,
    /// The operators' private HTTP listener (`--management_bind`): `/api`, `/metrics`, the
    /// admin API and `/healthz`, which the player port then no longer serves. `None` = off.
    pub management_bind: Option<std::net::SocketAddr>,
    /// One node of a cluster on Redis (`--redis_url`); `None` = one process.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    pub console_messages: ConsoleMessages,
    /// Who may connect: tokens per role, admin token, origins, streamer ids.
    pub security: Security,
    /// TLS on every listener (`--https`); `None` = plain TCP.
    pub tls: Option<TlsConfig>,
    /// Time-limited TURN credentials minted per connection (`--turn_secret`).
    pub turn: Option<TurnConfig>,
    /// Connection limits and the handshake timeout.
    pub limits: Limits,
}

/// Shown in place of a secret wherever one would be printed.
pub const REDACTED: &str = "<redacted>";

/// A secret from the command line or a file. `Debug` never shows it, so a
/// config printed in a log or a panic message cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `None` for an empty string: an empty token would be a token anyone has.
    pub fn new(value: impl Into<String>) -> Option<Secret> {
        let value = value.into();
        let trimmed = value.trim();
        (!trimmed.is_empty()).then(|| Secret(trimmed.to_string()))
    }
    /// The secret itself; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Authentication and authorisation settings.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Required from players (`?token=` or `Authorization: Bearer`); `None` = open.
    pub player_token: Option<Secret>,
    pub streamer_token: Option<Secret>,
    pub sfu_token: Option<Secret>,
    /// Enables the admin routes; `None` = they answer 404.
    pub admin_token: Option<Secret>,
    /// Browser `Origin`s allowed to open a WebSocket; empty = any. Requests
    /// without an `Origin` (native clients) are not affected.
    pub allowed_origins: Vec<String>,
    /// Streamer ids a streamer may claim; `None` = any.
    pub streamer_ids: Option<Vec<String>>,
}

/// Certificate chain and private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Port of the TLS player listener (HTTPS + WSS).
    pub https_port: u16,
    /// Also listen on `player_port` in plain HTTP and redirect everything there to HTTPS.
    pub https_redirect: bool,
}

/// coturn `use-auth-secret` credentials.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    pub secret: Secret,
    /// How long minted credentials stay valid.
    pub ttl: Duration,
}

/// Resource limits; 0 = unlimited.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_players: usize,
    pub max_streamers: usize,
    pub max_sfus: usize,
    /// WebSocket connections from one IP address, all roles together.
    pub max_per_ip: usize,
    /// A TCP connection must finish its TLS and HTTP handshakes within this.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_players: 0,
            max_streamers: 0,
            max_sfus: 0,
            max_per_ip: 0,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            streamer_port: 8888,
            player_port: 8080,
            sfu_port: 8889,
            max_players: 0,
            peer_options: Map::new(),
            send_player_count: true,
            ping_interval: Some(Duration::from_secs(30)),
            max_message_size: 1 << 20,
            rate_limit_per_sec: 200,
            rate_limit_burst: 1000,
            streamer_rate_limit_per_sec: 0,
            streamer_rate_limit_burst: 0,
            send_queue_len: 1024,
            streamer_send_queue_len: 65_536,
            serve: true,
            http_root: None,
            homepage: "player.html".to_string(),
            // Off as in Wilbur: it lists players and streamers to anyone on the player port.
            rest_api: false,
            management_bind: None,
            cluster: None,
            console_messages: ConsoleMessages::Off,
            security: Security::default(),
            tls: None,
            turn: None,
            limits: Limits::default(),
        }
    }
}

impl ServerConfig {
    /// A config for tests and embedding: every listener on 127.0.0.1, port 0.
    pub fn ephemeral() -> Self {
        ServerConfig { streamer_port: 0, player_port: 0, sfu_port: 0, ..ServerConfig::default() }
    }

    /// The token a role must present, if any.
    pub fn token_for(&self, role: crate::registry::Role) -> Option<&Secret> {
        match role {
            crate::registry::Role::Player => self.security.player_token.as_ref(),
            crate::registry::Role::Streamer => self.security.streamer_token.as_ref(),
            crate::registry::Role::Sfu => self.security.sfu_token.as_ref(),
        }
    }
}
