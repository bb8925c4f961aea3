//! Every setting the server takes, written once: the same field is a command-line flag
//! (`--streamer_port`, clap) and a `config.json` key (`"streamer_port"`, serde).
//!
//! Each field is `None` when its layer (the command line, or one config file) leaves it unset;
//! [`Settings::or`] lays one layer over another. Resolving the merged layer into a
//! [`ServerConfig`](crate::config::ServerConfig), with defaults, is `cli`'s job.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::Value;

use super::lenient;
use crate::config::{ConsoleMessages, REDACTED};

/// Declares [`Settings`] from its fields, and [`Settings::or`] over the same list, so a new
/// setting is one field with its flag and its key, never a line in a merge kept in step by hand.
macro_rules! settings {
    (
        $(#[$($struct_attr:tt)*])*
        pub struct Settings {
            $( $(#[$($field_attr:tt)*])* pub $field:ident: Option<$ty:ty>, )*
        }
    ) => {
        $(#[$($struct_attr)*])*
        pub struct Settings {
            $( $(#[$($field_attr)*])* pub $field: Option<$ty>, )*
        }

        impl Settings {
            /// This layer, with anything it leaves unset taken from `lower`.
            pub fn or(self, lower: Settings) -> Settings {
                Settings { $( $field: self.$field.or(lower.$field), )* }
            }
        }
    };
}

settings! {
    /// One layer of settings; `None` = not set in this layer. Flag names and `config.json` keys
    /// are Wilbur's. In `config.json`, every value is read the way Wilbur's files write it
    /// (see [`lenient`]): `""` and `null` mean unset.
    #[derive(Debug, Clone, Default, Args, Deserialize)]
    #[serde(default)]
    pub struct Settings {
        /// Address every listener binds to. Use 0.0.0.0 to accept connections from other machines.
        /// [default: 127.0.0.1]
        #[arg(long = "bind", value_name = "ADDR")]
        #[serde(deserialize_with = "lenient::ip_address")]
        pub bind: Option<IpAddr>,

        /// Port for streamer connections (Unreal Engine: -PixelStreamingURL=ws://host:PORT).
        /// [default: 8888]
        #[arg(long = "streamer_port", value_name = "PORT")]
        #[serde(deserialize_with = "lenient::port")]
        pub streamer_port: Option<u16>,

        /// Port for player connections; it also serves HTTP (static files, REST API).
        /// [default: 8080; Wilbur uses 80, which needs privileges]
        #[arg(long = "player_port", value_name = "PORT")]
        #[serde(deserialize_with = "lenient::port")]
        pub player_port: Option<u16>,

        /// Port for SFU connections. [default: 8889]
        #[arg(long = "sfu_port", value_name = "PORT")]
        #[serde(deserialize_with = "lenient::port")]
        pub sfu_port: Option<u16>,

        /// Most subscribers (players and SFUs) per streamer; 0 = unlimited. [default: 0]
        #[arg(long = "max_players", value_name = "N")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub max_players: Option<usize>,

        /// Serve static files from --http_root on the player port. `--serve` alone turns it on,
        /// `--serve=false` off. [default: true]
        #[arg(long = "serve", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        #[serde(deserialize_with = "lenient::boolean")]
        pub serve: Option<bool>,

        /// Directory served by --serve. Without it, `/` shows the built-in player page.
        /// [default: none]
        #[arg(long = "http_root", value_name = "PATH")]
        #[serde(deserialize_with = "lenient::string")]
        pub http_root: Option<PathBuf>,

        /// File under --http_root served at `/`. [default: player.html]
        #[arg(long = "homepage", value_name = "FILE")]
        #[serde(deserialize_with = "lenient::string")]
        pub homepage: Option<String>,

        /// Enable the REST API under /api on the player port: /api/status, /api/streamers,
        /// /api/streamers/{id} (what test harnesses poll, e.g. /api/streamers/DefaultStreamer),
        /// /api/players, /api/players/{id} and the redacted /api/config. `--rest_api` alone turns
        /// it on, `--rest_api=false` off. [default: false]
        #[arg(long = "rest_api", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        #[serde(deserialize_with = "lenient::boolean")]
        pub rest_api: Option<bool>,

        /// A second, private HTTP listener (ADDR:PORT, e.g. 127.0.0.1:9090 or a cluster-internal
        /// address) for operators: it serves the REST API under /api (always, with peers'
        /// remoteAddress), /metrics, the admin API (still behind --admin_token) and /healthz.
        /// When it is set, the player port answers none of /api, /metrics or the admin API.
        /// Plain HTTP even with --https: never expose it publicly. [default: off]
        #[arg(long = "management_bind", value_name = "ADDR:PORT")]
        #[serde(deserialize_with = "lenient::socket_address")]
        pub management_bind: Option<SocketAddr>,

        /// Run as one node of a cluster: several signalling processes sharing one registry
        /// through this Redis (or Valkey), e.g. redis://127.0.0.1:6379. Any node lists every
        /// streamer; a player on any node can watch a streamer on any other. Leave it out for
        /// one process and no Redis. See signalling/CLUSTER.md. [default: off]
        #[arg(long = "redis_url", value_name = "URL")]
        #[serde(deserialize_with = "lenient::string")]
        pub redis_url: Option<String>,

        /// This node's name in the cluster (with --redis_url); unique per node. [default: a random
        /// id, printed at start]
        #[arg(long = "node_id", value_name = "NAME")]
        #[serde(deserialize_with = "lenient::string")]
        pub node_id: Option<String>,

        /// Prefix of every Redis key and channel of the cluster, so several clusters can share
        /// one Redis. [default: ps]
        #[arg(long = "cluster_prefix", value_name = "PREFIX")]
        #[serde(deserialize_with = "lenient::string")]
        pub cluster_prefix: Option<String>,

        /// JSON object sent to every peer as peerConnectionOptions (ICE servers, ...).
        /// Prefer --peer_options_file: JSON on a command line is hard to quote. [default: {}]
        #[arg(long = "peer_options", value_name = "JSON", value_parser = PeerOptions::from_flag)]
        #[serde(deserialize_with = "lenient::peer_options")]
        pub peer_options: Option<PeerOptions>,

        /// File holding the peerConnectionOptions JSON object; wins over --peer_options.
        #[arg(long = "peer_options_file", value_name = "PATH")]
        #[serde(deserialize_with = "lenient::string")]
        pub peer_options_file: Option<PathBuf>,

        /// Console log level: debug, info, warning (or warn), error. Given on the command line it
        /// beats RUST_LOG, which beats this key in config.json and the default. [default: info]
        #[arg(long = "log_level_console", value_name = "LEVEL")]
        #[serde(deserialize_with = "lenient::string")]
        pub log_level_console: Option<String>,

        /// Log every signalling message: basic (one line), verbose (whole JSON), formatted
        /// (pretty JSON). `--console_messages` alone means basic. [default: off]
        #[arg(long = "console_messages", value_name = "DETAIL", num_args = 0..=1,
              default_missing_value = "basic")]
        #[serde(deserialize_with = "lenient::choice")]
        pub console_messages: Option<ConsoleMessagesArg>,

        /// Do not send playerCount to players after config (for strict clients such as Epic's
        /// signalling tester).
        #[arg(long = "no_player_count", num_args = 0, default_missing_value = "true")]
        #[serde(deserialize_with = "lenient::boolean")]
        pub no_player_count: Option<bool>,

        /// Seconds between WebSocket pings to each connection; one whose previous ping went
        /// unanswered is closed. 0 = off. [default: 30]
        #[arg(long = "ping_interval", value_name = "SECONDS")]
        #[serde(deserialize_with = "lenient::seconds")]
        pub ping_interval: Option<u64>,

        /// Largest accepted message in bytes; a larger one closes the connection with 1009.
        /// [default: 1048576]
        #[arg(long = "max_message_size", value_name = "BYTES")]
        #[serde(deserialize_with = "lenient::bytes")]
        pub max_message_size: Option<usize>,

        /// Messages per second each player connection may send, sustained; more closes it with
        /// 1008. [default: 200]
        #[arg(long = "rate_limit", value_name = "PER_SEC")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub rate_limit: Option<u32>,

        /// Messages each connection may send in a burst above --rate_limit. [default: 1000]
        #[arg(long = "rate_limit_burst", value_name = "N")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub rate_limit_burst: Option<u32>,

        /// Messages per second each streamer or SFU connection may send, sustained; more closes it
        /// with 1008. They speak for all their players (an offer and ICE candidates per join), so
        /// they have their own limit. 0 = no limit. [default: 0]
        #[arg(long = "streamer_rate_limit", value_name = "PER_SEC")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub streamer_rate_limit: Option<u32>,

        /// Messages each streamer or SFU connection may send in a burst above
        /// --streamer_rate_limit. [default: 2 x --streamer_rate_limit]
        #[arg(long = "streamer_rate_limit_burst", value_name = "N")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub streamer_rate_limit_burst: Option<u32>,

        /// Messages queued towards one connection before it is closed as not reading.
        /// [default: 1024]
        #[arg(long = "send_queue_len", value_name = "N")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub send_queue_len: Option<usize>,

        /// Messages queued towards one streamer or SFU before it is closed as not reading (they
        /// receive a message or more per player join). [default: 65536]
        #[arg(long = "streamer_send_queue_len", value_name = "N")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub streamer_send_queue_len: Option<usize>,

        // ---- TLS ----
        /// Serve TLS on every listener: players on --https_port (HTTPS and wss://), streamers and
        /// SFUs on their usual ports (wss://). Needs --ssl_cert_path and --ssl_key_path.
        /// [default: false]
        #[arg(long = "https", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        #[serde(deserialize_with = "lenient::boolean")]
        pub https: Option<bool>,

        /// Player port with --https (HTTPS and wss://); implies --https.
        /// [default: 8443; Wilbur uses 443, which needs privileges]
        #[arg(long = "https_port", value_name = "PORT")]
        #[serde(deserialize_with = "lenient::port")]
        pub https_port: Option<u16>,

        /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --https.
        /// [default: certificates/client-key.pem, as Wilbur]
        #[arg(long = "ssl_key_path", value_name = "PATH")]
        #[serde(deserialize_with = "lenient::string")]
        pub ssl_key_path: Option<PathBuf>,

        /// PEM certificate chain for --https. [default: certificates/client-cert.pem, as Wilbur]
        #[arg(long = "ssl_cert_path", value_name = "PATH")]
        #[serde(deserialize_with = "lenient::string")]
        pub ssl_cert_path: Option<PathBuf>,

        /// With --https, also listen on --player_port in plain HTTP and answer every request there
        /// (WebSocket upgrades included) with a 301 redirect to the same path on --https_port.
        /// Without it, --player_port is not bound when --https is on. [default: false]
        #[arg(long = "https_redirect", value_name = "BOOL", num_args = 0..=1,
              default_missing_value = "true")]
        #[serde(deserialize_with = "lenient::boolean")]
        pub https_redirect: Option<bool>,

        // ---- Authentication ----
        /// Token players must present (`?token=...` or `Authorization: Bearer ...`); without it the
        /// upgrade is refused with 401. Prefer --player_token_file. [default: none, open]
        #[arg(long = "player_token", value_name = "TOKEN")]
        #[serde(deserialize_with = "lenient::secret")]
        pub player_token: Option<SecretArg>,

        /// File holding the player token (surrounding whitespace ignored); wins over --player_token.
        #[arg(long = "player_token_file", value_name = "PATH")]
        #[serde(deserialize_with = "lenient::string")]
        pub player_token_file: Option<PathBuf>,

        /// Token streamers must present, like --player_token. [default: none, open]
        #[arg(long = "streamer_token", value_name = "TOKEN")]
        #[serde(deserialize_with = "lenient::secret")]
        pub streamer_token: Option<SecretArg>,

        /// File holding the streamer token; wins over --streamer_token.
        #[arg(long = "streamer_token_file", value_name = "PATH")]
        #[serde(deserialize_with = "lenient::string")]
        pub streamer_token_file: Option<PathBuf>,

        /// Token SFUs must present, like --player_token. [default: none, open]
        #[arg(long = "sfu_token", value_name = "TOKEN")]
        #[serde(deserialize_with = "lenient::secret")]
        pub sfu_token: Option<SecretArg>,

        /// File holding the SFU token; wins over --sfu_token.
        #[arg(long = "sfu_token_file", value_name = "PATH")]
        #[serde(deserialize_with = "lenient::string")]
        pub sfu_token_file: Option<PathBuf>,

        /// Bearer token for the admin API (POST /api/admin/players/ID/kick,
        /// /api/admin/streamers/ID/disconnect, /api/admin/drain). Without it those routes answer 404.
        #[arg(long = "admin_token", value_name = "TOKEN")]
        #[serde(deserialize_with = "lenient::secret")]
        pub admin_token: Option<SecretArg>,

        /// File holding the admin token; wins over --admin_token.
        #[arg(long = "admin_token_file", value_name = "PATH")]
        #[serde(deserialize_with = "lenient::string")]
        pub admin_token_file: Option<PathBuf>,

        /// Comma-separated streamer ids streamers may claim. A streamer asking for an id not on the
        /// list, or for one another streamer holds, is closed with 1008 and a reason (no numbered
        /// variant is handed out). SFUs are not restricted. [default: any id]
        #[arg(long = "streamer_ids", value_name = "ID,ID,...", value_delimiter = ',')]
        #[serde(deserialize_with = "lenient::list")]
        pub streamer_ids: Option<Vec<String>>,

        /// Comma-separated browser origins (like https://example.org) allowed to open WebSockets;
        /// an upgrade with another Origin header gets 403. Clients sending no Origin (native ones)
        /// are not affected. [default: any origin]
        #[arg(long = "allowed_origins", value_name = "ORIGIN,...", value_delimiter = ',')]
        #[serde(deserialize_with = "lenient::list")]
        pub allowed_origins: Option<Vec<String>>,

        // ---- TURN ----
        /// Shared secret of a TURN server run with coturn's use-auth-secret: each connection's
        /// config gets its own time-limited username and credential on every TURN entry of
        /// iceServers. Prefer --turn_secret_file. [default: none]
        #[arg(long = "turn_secret", value_name = "SECRET")]
        #[serde(deserialize_with = "lenient::secret")]
        pub turn_secret: Option<SecretArg>,

        /// File holding the TURN secret; wins over --turn_secret.
        #[arg(long = "turn_secret_file", value_name = "PATH")]
        #[serde(deserialize_with = "lenient::string")]
        pub turn_secret_file: Option<PathBuf>,

        /// Lifetime of minted TURN credentials, in seconds. [default: 86400]
        #[arg(long = "turn_ttl", value_name = "SECONDS")]
        #[serde(deserialize_with = "lenient::seconds")]
        pub turn_ttl: Option<u64>,

        // ---- Limits ----
        /// Most player connections at once; more are refused with 503. 0 = unlimited. [default: 0]
        #[arg(long = "max_connections_player", value_name = "N")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub max_connections_player: Option<usize>,

        /// Most streamer connections at once; more are refused with 503. 0 = unlimited. [default: 0]
        #[arg(long = "max_connections_streamer", value_name = "N")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub max_connections_streamer: Option<usize>,

        /// Most SFU connections at once; more are refused with 503. 0 = unlimited. [default: 0]
        #[arg(long = "max_connections_sfu", value_name = "N")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub max_connections_sfu: Option<usize>,

        /// Most WebSocket connections from one IP address (all roles); more are refused with 429.
        /// 0 = unlimited. [default: 0]
        #[arg(long = "max_connections_per_ip", value_name = "N")]
        #[serde(deserialize_with = "lenient::whole_number")]
        pub max_connections_per_ip: Option<usize>,

        /// Seconds a TCP connection has to finish its TLS handshake and send its HTTP request
        /// headers (on the streamer and SFU ports: to complete the WebSocket upgrade) before it is
        /// dropped. [default: 10]
        #[arg(long = "handshake_timeout", value_name = "SECONDS")]
        #[serde(deserialize_with = "lenient::seconds")]
        pub handshake_timeout: Option<u64>,

        /// Log line format: text or json (one JSON object per line). [default: text]
        #[arg(long = "log_format", value_name = "FORMAT")]
        #[serde(deserialize_with = "lenient::choice")]
        pub log_format: Option<LogFormat>,

        // ---- Wilbur options we accept but do not implement (yet). ----
        /// Not supported: CORS headers. Accepted and ignored with a warning.
        #[arg(long = "cors", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        #[serde(deserialize_with = "lenient::boolean")]
        pub cors: Option<bool>,

        /// Not supported: trusting X-Forwarded-For. Accepted and ignored with a warning.
        #[arg(long = "reverse-proxy", alias = "reverse_proxy", value_name = "BOOL", num_args = 0..=1,
              default_missing_value = "true")]
        #[serde(deserialize_with = "lenient::boolean")]
        pub reverse_proxy: Option<bool>,
    }
}

impl Settings {
    /// The setting called `key` in `config.json` exists (a key is its field's name, which is
    /// also its argument's id).
    pub fn has_key(key: &str) -> bool {
        Settings::augment_args(clap::Command::new("config.json")).get_arguments().any(|arg| arg.get_id() == key)
    }

    /// Resolves what one layer says about peer options: its `peer_options_file` wins over its
    /// `peer_options`, as in Wilbur, before layers are merged (a command-line `--peer_options`
    /// must beat a config file's `peer_options_file`).
    pub fn peer_options_in_layer(mut self) -> Settings {
        if let Some(path) = self.peer_options_file.take() {
            self.peer_options = Some(PeerOptions::File(path));
        }
        self
    }
}

/// Where `peerConnectionOptions` comes from, before it is read and parsed. Each variant knows
/// where it was written, so an error names the flag or the config file.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerOptions {
    /// JSON text from `--peer_options`.
    Flag(String),
    /// JSON text from a config.json string.
    ConfigText(String),
    /// Already-parsed JSON from config.json.
    ConfigValue(Value),
    /// `--peer_options_file` or its config.json key.
    File(PathBuf),
}

impl PeerOptions {
    fn from_flag(text: &str) -> Result<PeerOptions, std::convert::Infallible> {
        Ok(PeerOptions::Flag(text.to_string()))
    }
}

/// A secret as typed on the command line or in config.json, before it is
/// checked. `Debug` is redacted so printing a [`Settings`] cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretArg(pub String);

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretArg(s.to_string()))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// `--log_format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `--console_messages` values (Wilbur's choices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsoleMessagesArg {
    Basic,
    Verbose,
    Formatted,
}

impl From<ConsoleMessagesArg> for ConsoleMessages {
    fn from(arg: ConsoleMessagesArg) -> Self {
        match arg {
            ConsoleMessagesArg::Basic => ConsoleMessages::Basic,
            ConsoleMessagesArg::Verbose => ConsoleMessages::Verbose,
            ConsoleMessagesArg::Formatted => ConsoleMessages::Formatted,
        }
    }
}
