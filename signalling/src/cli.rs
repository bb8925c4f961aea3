//! Command-line flags and `config.json`, resolved into a [`ServerConfig`].
//!
//! Flag names and `config.json` keys are Wilbur's (snake_case, e.g. `--streamer_port` and
//! `"streamer_port"`), so existing start scripts and config files keep working. Precedence is
//! command line, then `config.json`, then built-in defaults. Wilbur options we do not implement
//! are still accepted with a warning. Secrets (tokens, the TURN secret) can come from files
//! (`--*_file`) so they stay out of `ps` and shell history; none is ever logged or shown by
//! `GET /api/config`.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::{json, Map, Value};

use crate::config::{ConsoleMessages, Limits, Secret, Security, ServerConfig, TlsConfig, TurnConfig};

/// The file read when `--config_file` is not given; a missing one is not an error.
pub const DEFAULT_CONFIG_FILE: &str = "config.json";

/// Shown in place of secret-looking values in `public_config`.
const REDACTED: &str = "<redacted>";

/// Pixel Streaming signalling server: a drop-in for Epic's reference server (Wilbur).
///
/// Every flag can also be set in config.json under the same name (e.g. "streamer_port": 8888);
/// the command line overrides the file. The player port also serves HTTP: the REST API under
/// /api, Prometheus metrics at /metrics, liveness at /healthz, and the admin API with
/// --admin_token.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "signalling", version)]
pub struct Cli {
    /// Address every listener binds to. Use 0.0.0.0 to accept connections from other machines.
    /// [default: 127.0.0.1]
    #[arg(long = "bind", value_name = "ADDR")]
    pub bind: Option<IpAddr>,

    /// Port for streamer connections (Unreal Engine: -PixelStreamingURL=ws://host:PORT).
    /// [default: 8888]
    #[arg(long = "streamer_port", value_name = "PORT")]
    pub streamer_port: Option<u16>,

    /// Port for player connections; it also serves HTTP (static files, REST API).
    /// [default: 8080; Wilbur uses 80, which needs privileges]
    #[arg(long = "player_port", value_name = "PORT")]
    pub player_port: Option<u16>,

    /// Port for SFU connections. [default: 8889]
    #[arg(long = "sfu_port", value_name = "PORT")]
    pub sfu_port: Option<u16>,

    /// Most subscribers (players and SFUs) per streamer; 0 = unlimited. [default: 0]
    #[arg(long = "max_players", value_name = "N")]
    pub max_players: Option<usize>,

    /// Serve static files from --http_root on the player port. `--serve` alone turns it on,
    /// `--serve=false` off. [default: true]
    #[arg(long = "serve", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub serve: Option<bool>,

    /// Directory served by --serve. Without it, `/` shows the built-in player page.
    /// [default: none]
    #[arg(long = "http_root", value_name = "PATH")]
    pub http_root: Option<PathBuf>,

    /// File under --http_root served at `/`. [default: player.html]
    #[arg(long = "homepage", value_name = "FILE")]
    pub homepage: Option<String>,

    /// Enable the REST API under /api (status, streamers, players, config). `--rest_api` alone
    /// turns it on, `--rest_api=false` off. [default: true]
    #[arg(long = "rest_api", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub rest_api: Option<bool>,

    /// JSON object sent to every peer as peerConnectionOptions (ICE servers, ...).
    /// Prefer --peer_options_file: JSON on a command line is hard to quote. [default: {}]
    #[arg(long = "peer_options", value_name = "JSON")]
    pub peer_options: Option<String>,

    /// File holding the peerConnectionOptions JSON object; wins over --peer_options.
    #[arg(long = "peer_options_file", value_name = "PATH")]
    pub peer_options_file: Option<PathBuf>,

    /// Console log level: debug, info, warning (or warn), error. RUST_LOG overrides it.
    /// [default: info]
    #[arg(long = "log_level_console", value_name = "LEVEL")]
    pub log_level_console: Option<String>,

    /// Log every signalling message: basic (one line), verbose (whole JSON), formatted
    /// (pretty JSON). `--console_messages` alone means basic. [default: off]
    #[arg(long = "console_messages", value_name = "DETAIL", num_args = 0..=1,
          default_missing_value = "basic")]
    pub console_messages: Option<ConsoleMessagesArg>,

    /// config.json to read defaults from. [default: config.json in the working directory, if it
    /// exists; an explicitly given file must exist]
    #[arg(long = "config_file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Do not read any config file; only flags and built-in defaults apply.
    #[arg(long = "no_config")]
    pub no_config: bool,

    /// Do not send playerCount to players after config (for strict clients such as Epic's
    /// signalling tester).
    #[arg(long = "no_player_count")]
    pub no_player_count: bool,

    /// Seconds between WebSocket pings to each connection; one whose previous ping went
    /// unanswered is closed. 0 = off. [default: 30]
    #[arg(long = "ping_interval", value_name = "SECONDS")]
    pub ping_interval: Option<u64>,

    /// Largest accepted message in bytes; a larger one closes the connection with 1009.
    /// [default: 1048576]
    #[arg(long = "max_message_size", value_name = "BYTES")]
    pub max_message_size: Option<usize>,

    /// Messages per second each player connection may send, sustained; more closes it with
    /// 1008. [default: 200]
    #[arg(long = "rate_limit", value_name = "PER_SEC")]
    pub rate_limit: Option<u32>,

    /// Messages each connection may send in a burst above --rate_limit. [default: 1000]
    #[arg(long = "rate_limit_burst", value_name = "N")]
    pub rate_limit_burst: Option<u32>,

    /// Messages per second each streamer or SFU connection may send, sustained; more closes it
    /// with 1008. They speak for all their players (an offer and ICE candidates per join), so
    /// they have their own limit. 0 = no limit. [default: 0]
    #[arg(long = "streamer_rate_limit", value_name = "PER_SEC")]
    pub streamer_rate_limit: Option<u32>,

    /// Messages each streamer or SFU connection may send in a burst above
    /// --streamer_rate_limit. [default: 2 x --streamer_rate_limit]
    #[arg(long = "streamer_rate_limit_burst", value_name = "N")]
    pub streamer_rate_limit_burst: Option<u32>,

    /// Messages queued towards one connection before it is closed as not reading.
    /// [default: 1024]
    #[arg(long = "send_queue_len", value_name = "N")]
    pub send_queue_len: Option<usize>,

    /// Messages queued towards one streamer or SFU before it is closed as not reading (they
    /// receive a message or more per player join). [default: 65536]
    #[arg(long = "streamer_send_queue_len", value_name = "N")]
    pub streamer_send_queue_len: Option<usize>,

    // ---- TLS ----
    /// Serve TLS on every listener: players on --https_port (HTTPS and wss://), streamers and
    /// SFUs on their usual ports (wss://). Needs --ssl_cert_path and --ssl_key_path.
    /// [default: false]
    #[arg(long = "https", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub https: Option<bool>,

    /// Player port with --https (HTTPS and wss://); implies --https.
    /// [default: 8443; Wilbur uses 443, which needs privileges]
    #[arg(long = "https_port", value_name = "PORT")]
    pub https_port: Option<u16>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --https.
    /// [default: certificates/client-key.pem, as Wilbur]
    #[arg(long = "ssl_key_path", value_name = "PATH")]
    pub ssl_key_path: Option<PathBuf>,

    /// PEM certificate chain for --https. [default: certificates/client-cert.pem, as Wilbur]
    #[arg(long = "ssl_cert_path", value_name = "PATH")]
    pub ssl_cert_path: Option<PathBuf>,

    /// With --https, also listen on --player_port in plain HTTP and answer every request there
    /// (WebSocket upgrades included) with a 301 redirect to the same path on --https_port.
    /// Without it, --player_port is not bound when --https is on. [default: false]
    #[arg(long = "https_redirect", value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true")]
    pub https_redirect: Option<bool>,

    // ---- Authentication ----
    /// Token players must present (`?token=...` or `Authorization: Bearer ...`); without it the
    /// upgrade is refused with 401. Prefer --player_token_file. [default: none, open]
    #[arg(long = "player_token", value_name = "TOKEN")]
    pub player_token: Option<SecretArg>,

    /// File holding the player token (surrounding whitespace ignored); wins over --player_token.
    #[arg(long = "player_token_file", value_name = "PATH")]
    pub player_token_file: Option<PathBuf>,

    /// Token streamers must present, like --player_token. [default: none, open]
    #[arg(long = "streamer_token", value_name = "TOKEN")]
    pub streamer_token: Option<SecretArg>,

    /// File holding the streamer token; wins over --streamer_token.
    #[arg(long = "streamer_token_file", value_name = "PATH")]
    pub streamer_token_file: Option<PathBuf>,

    /// Token SFUs must present, like --player_token. [default: none, open]
    #[arg(long = "sfu_token", value_name = "TOKEN")]
    pub sfu_token: Option<SecretArg>,

    /// File holding the SFU token; wins over --sfu_token.
    #[arg(long = "sfu_token_file", value_name = "PATH")]
    pub sfu_token_file: Option<PathBuf>,

    /// Bearer token for the admin API (POST /api/admin/players/ID/kick,
    /// /api/admin/streamers/ID/disconnect, /api/admin/drain). Without it those routes answer 404.
    #[arg(long = "admin_token", value_name = "TOKEN")]
    pub admin_token: Option<SecretArg>,

    /// File holding the admin token; wins over --admin_token.
    #[arg(long = "admin_token_file", value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,

    /// Comma-separated streamer ids streamers may claim. A streamer asking for an id not on the
    /// list, or for one another streamer holds, is closed with 1008 and a reason (no numbered
    /// variant is handed out). SFUs are not restricted. [default: any id]
    #[arg(long = "streamer_ids", value_name = "ID,ID,...", value_delimiter = ',')]
    pub streamer_ids: Option<Vec<String>>,

    /// Comma-separated browser origins (like https://example.org) allowed to open WebSockets;
    /// an upgrade with another Origin header gets 403. Clients sending no Origin (native ones)
    /// are not affected. [default: any origin]
    #[arg(long = "allowed_origins", value_name = "ORIGIN,...", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,

    // ---- TURN ----
    /// Shared secret of a TURN server run with coturn's use-auth-secret: each connection's
    /// config gets its own time-limited username and credential on every TURN entry of
    /// iceServers. Prefer --turn_secret_file. [default: none]
    #[arg(long = "turn_secret", value_name = "SECRET")]
    pub turn_secret: Option<SecretArg>,

    /// File holding the TURN secret; wins over --turn_secret.
    #[arg(long = "turn_secret_file", value_name = "PATH")]
    pub turn_secret_file: Option<PathBuf>,

    /// Lifetime of minted TURN credentials, in seconds. [default: 86400]
    #[arg(long = "turn_ttl", value_name = "SECONDS")]
    pub turn_ttl: Option<u64>,

    // ---- Limits ----
    /// Most player connections at once; more are refused with 503. 0 = unlimited. [default: 0]
    #[arg(long = "max_connections_player", value_name = "N")]
    pub max_connections_player: Option<usize>,

    /// Most streamer connections at once; more are refused with 503. 0 = unlimited. [default: 0]
    #[arg(long = "max_connections_streamer", value_name = "N")]
    pub max_connections_streamer: Option<usize>,

    /// Most SFU connections at once; more are refused with 503. 0 = unlimited. [default: 0]
    #[arg(long = "max_connections_sfu", value_name = "N")]
    pub max_connections_sfu: Option<usize>,

    /// Most WebSocket connections from one IP address (all roles); more are refused with 429.
    /// 0 = unlimited. [default: 0]
    #[arg(long = "max_connections_per_ip", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,

    /// Seconds a TCP connection has to finish its TLS handshake and send its HTTP request
    /// headers (on the streamer and SFU ports: to complete the WebSocket upgrade) before it is
    /// dropped. [default: 10]
    #[arg(long = "handshake_timeout", value_name = "SECONDS")]
    pub handshake_timeout: Option<u64>,

    /// Log line format: text or json (one JSON object per line). [default: text]
    #[arg(long = "log_format", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    // ---- Wilbur options we accept but do not implement (yet). ----
    /// Not supported: CORS headers. Accepted and ignored with a warning.
    #[arg(long = "cors", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub cors: Option<bool>,

    /// Not supported: trusting X-Forwarded-For. Accepted and ignored with a warning.
    #[arg(long = "reverse-proxy", alias = "reverse_proxy", value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true")]
    pub reverse_proxy: Option<bool>,

    /// Not supported: log files (we log to the console only). Accepted and ignored with a warning.
    #[arg(long = "log_folder", value_name = "PATH")]
    pub log_folder: Option<PathBuf>,

    /// Not supported: log files (we log to the console only). Accepted and ignored with a warning.
    #[arg(long = "log_level_file", value_name = "LEVEL")]
    pub log_level_file: Option<String>,

    /// Not supported: use --ping_interval. Accepted and ignored with a warning.
    #[arg(long = "player_keepalive_timeout", value_name = "MILLISECONDS")]
    pub player_keepalive_timeout: Option<u64>,

    /// Not supported: Wilbur's config.json rewrite on start. Accepted and ignored with a warning;
    /// this server never writes its config file.
    #[arg(long = "save")]
    pub save: bool,
}

/// A secret as typed on the command line or in config.json, before it is
/// checked. `Debug` is redacted so printing a [`Cli`] cannot leak it.
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

/// Why the configuration could not be resolved; every variant names the flag or file at fault.
///
/// Underlying errors are part of the message rather than a `source()`, so a printed chain
/// does not repeat them.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read config file {path}: {error}")]
    ConfigRead { path: PathBuf, error: std::io::Error },
    #[error("config file {path} is not valid JSON: {error}")]
    ConfigJson { path: PathBuf, error: serde_json::Error },
    #[error("config file {path} must contain a JSON object at the top level")]
    ConfigNotObject { path: PathBuf },
    #[error("config file {path}: key \"{key}\": {reason}")]
    ConfigValue { path: PathBuf, key: String, reason: String },
    #[error("{flag} is not valid JSON: {error}")]
    PeerOptionsJson { flag: &'static str, error: serde_json::Error },
    #[error("cannot read --peer_options_file {path}: {error}")]
    PeerOptionsFileRead { path: PathBuf, error: std::io::Error },
    #[error("--peer_options_file {path} is not valid JSON: {error}")]
    PeerOptionsFileJson { path: PathBuf, error: serde_json::Error },
    #[error("{flag} must be a JSON object (like {{\"iceServers\":[...]}}), got {got}")]
    PeerOptionsNotObject { flag: &'static str, got: String },
    #[error("cannot read --{flag} {path}: {error}")]
    SecretFile { flag: &'static str, path: PathBuf, error: std::io::Error },
    #[error("--{flag} {path} is empty; an empty secret would protect nothing")]
    EmptySecretFile { flag: &'static str, path: PathBuf },
    #[error("--{0} is empty; an empty secret would protect nothing (leave it out to turn it off)")]
    EmptySecret(&'static str),
    #[error("--https needs a certificate and a key: {0} does not exist")]
    TlsFileMissing(PathBuf),
    #[error("--log_level_console: unknown level \"{0}\" (expected debug, info, warning or error)")]
    LogLevel(String),
    #[error("--{flag} must be at least 1")]
    Zero { flag: &'static str },
}

/// The result of [`resolve_full`]: the server config plus what only `main` needs.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: ServerConfig,
    /// A `tracing` filter directive for the console (`debug`, `info`, `warn`, `error`).
    pub log_level: String,
    /// Problems worth telling the operator once logging is up (ignored options, ...).
    pub warnings: Vec<String>,
    pub log_format: LogFormat,
}

/// Resolves flags, `config.json` and defaults into the server's configuration.
pub fn resolve(cli: Cli) -> Result<ServerConfig, CliError> {
    resolve_full(cli).map(|r| r.config)
}

/// Like [`resolve`], also returning the log level and the warnings to log.
pub fn resolve_full(cli: Cli) -> Result<Resolved, CliError> {
    resolve_with_default_file(cli, Path::new(DEFAULT_CONFIG_FILE))
}

/// `resolve_full` with the default config path as a parameter, so tests don't depend on the
/// working directory.
fn resolve_with_default_file(cli: Cli, default_file: &Path) -> Result<Resolved, CliError> {
    let file = if cli.no_config {
        Settings::default()
    } else {
        match &cli.config_file {
            Some(path) => read_config_file(path)?,
            None if default_file.exists() => read_config_file(default_file)?,
            None => Settings::default(),
        }
    };
    let mut warnings = file.warnings.clone();
    let merged = Settings::from_cli(&cli).or(file);
    check_unsupported(&merged, &cli, &mut warnings)?;
    let security = Security {
        player_token: secret(&merged.player_token, &merged.player_token_file, "player_token")?,
        streamer_token: secret(&merged.streamer_token, &merged.streamer_token_file, "streamer_token")?,
        sfu_token: secret(&merged.sfu_token, &merged.sfu_token_file, "sfu_token")?,
        admin_token: secret(&merged.admin_token, &merged.admin_token_file, "admin_token")?,
        allowed_origins: list(merged.allowed_origins.clone()).unwrap_or_default(),
        streamer_ids: list(merged.streamer_ids.clone()),
    };
    let turn = secret(&merged.turn_secret, &merged.turn_secret_file, "turn_secret")?
        .map(|secret| TurnConfig { secret, ttl: Duration::from_secs(merged.turn_ttl.unwrap_or(86400)) });
    let tls = if merged.https == Some(true) {
        let cert_path = merged.ssl_cert_path.clone().unwrap_or_else(|| "certificates/client-cert.pem".into());
        let key_path = merged.ssl_key_path.clone().unwrap_or_else(|| "certificates/client-key.pem".into());
        for path in [&cert_path, &key_path] {
            if !path.exists() {
                return Err(CliError::TlsFileMissing(path.clone()));
            }
        }
        Some(TlsConfig {
            cert_path,
            key_path,
            https_port: merged.https_port.unwrap_or(8443),
            https_redirect: merged.https_redirect.unwrap_or(false),
        })
    } else {
        None
    };
    let default_limits = Limits::default();
    let limits = Limits {
        max_players: merged.max_connections_player.unwrap_or(0),
        max_streamers: merged.max_connections_streamer.unwrap_or(0),
        max_sfus: merged.max_connections_sfu.unwrap_or(0),
        max_per_ip: merged.max_connections_per_ip.unwrap_or(0),
        handshake_timeout: match merged.handshake_timeout {
            Some(secs) => Duration::from_secs(nonzero(Some(secs), 0, "handshake_timeout")?),
            None => default_limits.handshake_timeout,
        },
    };

    let defaults = ServerConfig::default();
    let peer_options = merged.peer_options.clone().unwrap_or_default().load()?;
    let console_messages = merged.console_messages.map(ConsoleMessages::from);
    let config = ServerConfig {
        bind: merged.bind.unwrap_or(defaults.bind),
        streamer_port: merged.streamer_port.unwrap_or(defaults.streamer_port),
        player_port: merged.player_port.unwrap_or(defaults.player_port),
        sfu_port: merged.sfu_port.unwrap_or(defaults.sfu_port),
        max_players: merged.max_players.unwrap_or(defaults.max_players),
        peer_options,
        send_player_count: !merged.no_player_count.unwrap_or(false),
        ping_interval: match merged.ping_interval {
            Some(0) => None,
            Some(secs) => Some(Duration::from_secs(secs)),
            None => defaults.ping_interval,
        },
        max_message_size: nonzero(merged.max_message_size, defaults.max_message_size, "max_message_size")?,
        rate_limit_per_sec: nonzero(merged.rate_limit, defaults.rate_limit_per_sec, "rate_limit")?,
        rate_limit_burst: nonzero(merged.rate_limit_burst, defaults.rate_limit_burst, "rate_limit_burst")?,
        streamer_rate_limit_per_sec: merged.streamer_rate_limit.unwrap_or(defaults.streamer_rate_limit_per_sec),
        streamer_rate_limit_burst: merged
            .streamer_rate_limit_burst
            .unwrap_or_else(|| merged.streamer_rate_limit.unwrap_or(0).saturating_mul(2)),
        send_queue_len: nonzero(merged.send_queue_len, defaults.send_queue_len, "send_queue_len")?,
        streamer_send_queue_len: nonzero(
            merged.streamer_send_queue_len,
            defaults.streamer_send_queue_len,
            "streamer_send_queue_len",
        )?,
        serve: merged.serve.unwrap_or(defaults.serve),
        http_root: merged.http_root.clone().or(defaults.http_root),
        homepage: merged.homepage.clone().unwrap_or(defaults.homepage),
        rest_api: merged.rest_api.unwrap_or(defaults.rest_api),
        console_messages: console_messages.unwrap_or(defaults.console_messages),
        public_config: Value::Null,
        security,
        tls,
        turn,
        limits,
    };
    if let (true, Some(root)) = (config.serve, &config.http_root) {
        if !root.is_dir() {
            warnings.push(format!("http_root {} is not a directory; static files will answer 404", root.display()));
        }
    }
    let log_level = log_level(merged.log_level_console.as_deref().unwrap_or("info"))?;
    let config = ServerConfig { public_config: public_config(&config), ..config };
    Ok(Resolved { config, log_level, warnings, log_format: merged.log_format.unwrap_or_default() })
}

/// Where `peerConnectionOptions` comes from, before it is read and parsed.
#[derive(Debug, Clone, Default)]
enum PeerOptionsSource {
    #[default]
    None,
    /// Already-parsed JSON (a config.json object); `flag` names where it came from.
    Value {
        flag: &'static str,
        value: Value,
    },
    /// JSON text from `--peer_options` or a config.json string; `flag` names where it came from.
    Text {
        flag: &'static str,
        text: String,
    },
    File(PathBuf),
}

impl PeerOptionsSource {
    fn load(self) -> Result<Map<String, Value>, CliError> {
        let (flag, value) = match self {
            PeerOptionsSource::None => return Ok(Map::new()),
            PeerOptionsSource::Value { flag, value } => (flag, value),
            PeerOptionsSource::Text { flag, text } => {
                (flag, serde_json::from_str(&text).map_err(|error| CliError::PeerOptionsJson { flag, error })?)
            }
            PeerOptionsSource::File(path) => {
                let text = fs::read_to_string(&path)
                    .map_err(|error| CliError::PeerOptionsFileRead { path: path.clone(), error })?;
                let value =
                    serde_json::from_str(&text).map_err(|error| CliError::PeerOptionsFileJson { path, error })?;
                ("--peer_options_file", value)
            }
        };
        match value {
            Value::Object(map) => Ok(map),
            other => Err(CliError::PeerOptionsNotObject { flag, got: truncate(&other.to_string(), 60) }),
        }
    }
}

/// One layer of settings (the command line, or config.json); `None` = not set in this layer.
#[derive(Debug, Clone, Default)]
struct Settings {
    bind: Option<IpAddr>,
    streamer_port: Option<u16>,
    player_port: Option<u16>,
    sfu_port: Option<u16>,
    max_players: Option<usize>,
    serve: Option<bool>,
    http_root: Option<PathBuf>,
    homepage: Option<String>,
    rest_api: Option<bool>,
    peer_options: Option<PeerOptionsSource>,
    log_level_console: Option<String>,
    console_messages: Option<ConsoleMessagesArg>,
    no_player_count: Option<bool>,
    ping_interval: Option<u64>,
    max_message_size: Option<usize>,
    rate_limit: Option<u32>,
    rate_limit_burst: Option<u32>,
    streamer_rate_limit: Option<u32>,
    streamer_rate_limit_burst: Option<u32>,
    send_queue_len: Option<usize>,
    streamer_send_queue_len: Option<usize>,
    https: Option<bool>,
    https_port: Option<u16>,
    ssl_key_path: Option<PathBuf>,
    ssl_cert_path: Option<PathBuf>,
    https_redirect: Option<bool>,
    player_token: Option<SecretArg>,
    player_token_file: Option<PathBuf>,
    streamer_token: Option<SecretArg>,
    streamer_token_file: Option<PathBuf>,
    sfu_token: Option<SecretArg>,
    sfu_token_file: Option<PathBuf>,
    admin_token: Option<SecretArg>,
    admin_token_file: Option<PathBuf>,
    streamer_ids: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    turn_secret: Option<SecretArg>,
    turn_secret_file: Option<PathBuf>,
    turn_ttl: Option<u64>,
    max_connections_player: Option<usize>,
    max_connections_streamer: Option<usize>,
    max_connections_sfu: Option<usize>,
    max_connections_per_ip: Option<usize>,
    handshake_timeout: Option<u64>,
    log_format: Option<LogFormat>,
    cors: Option<bool>,
    reverse_proxy: Option<bool>,
    /// Warnings found while reading this layer (unknown keys, ...).
    warnings: Vec<String>,
}

impl Settings {
    fn from_cli(cli: &Cli) -> Settings {
        // The file variant wins within one layer, as in Wilbur.
        let peer_options = match (&cli.peer_options_file, &cli.peer_options) {
            (Some(path), _) => Some(PeerOptionsSource::File(path.clone())),
            (None, Some(text)) => Some(PeerOptionsSource::Text { flag: "--peer_options", text: text.clone() }),
            (None, None) => None,
        };
        Settings {
            bind: cli.bind,
            streamer_port: cli.streamer_port,
            player_port: cli.player_port,
            sfu_port: cli.sfu_port,
            max_players: cli.max_players,
            serve: cli.serve,
            http_root: cli.http_root.clone(),
            homepage: cli.homepage.clone(),
            rest_api: cli.rest_api,
            peer_options,
            log_level_console: cli.log_level_console.clone(),
            console_messages: cli.console_messages,
            no_player_count: cli.no_player_count.then_some(true),
            ping_interval: cli.ping_interval,
            max_message_size: cli.max_message_size,
            rate_limit: cli.rate_limit,
            rate_limit_burst: cli.rate_limit_burst,
            streamer_rate_limit: cli.streamer_rate_limit,
            streamer_rate_limit_burst: cli.streamer_rate_limit_burst,
            send_queue_len: cli.send_queue_len,
            streamer_send_queue_len: cli.streamer_send_queue_len,
            // `--https_port` implies `--https` on the command line, as in Wilbur.
            https: cli.https.or(cli.https_port.map(|_| true)),
            https_port: cli.https_port,
            ssl_key_path: cli.ssl_key_path.clone(),
            ssl_cert_path: cli.ssl_cert_path.clone(),
            https_redirect: cli.https_redirect,
            player_token: cli.player_token.clone(),
            player_token_file: cli.player_token_file.clone(),
            streamer_token: cli.streamer_token.clone(),
            streamer_token_file: cli.streamer_token_file.clone(),
            sfu_token: cli.sfu_token.clone(),
            sfu_token_file: cli.sfu_token_file.clone(),
            admin_token: cli.admin_token.clone(),
            admin_token_file: cli.admin_token_file.clone(),
            streamer_ids: cli.streamer_ids.clone(),
            allowed_origins: cli.allowed_origins.clone(),
            turn_secret: cli.turn_secret.clone(),
            turn_secret_file: cli.turn_secret_file.clone(),
            turn_ttl: cli.turn_ttl,
            max_connections_player: cli.max_connections_player,
            max_connections_streamer: cli.max_connections_streamer,
            max_connections_sfu: cli.max_connections_sfu,
            max_connections_per_ip: cli.max_connections_per_ip,
            handshake_timeout: cli.handshake_timeout,
            log_format: cli.log_format,
            cors: cli.cors,
            reverse_proxy: cli.reverse_proxy,
            warnings: Vec::new(),
        }
    }

    /// This layer, with anything it leaves unset taken from `lower`.
    fn or(self, lower: Settings) -> Settings {
        Settings {
            bind: self.bind.or(lower.bind),
            streamer_port: self.streamer_port.or(lower.streamer_port),
            player_port: self.player_port.or(lower.player_port),
            sfu_port: self.sfu_port.or(lower.sfu_port),
            max_players: self.max_players.or(lower.max_players),
            serve: self.serve.or(lower.serve),
            http_root: self.http_root.or(lower.http_root),
            homepage: self.homepage.or(lower.homepage),
            rest_api: self.rest_api.or(lower.rest_api),
            peer_options: self.peer_options.or(lower.peer_options),
            log_level_console: self.log_level_console.or(lower.log_level_console),
            console_messages: self.console_messages.or(lower.console_messages),
            no_player_count: self.no_player_count.or(lower.no_player_count),
            ping_interval: self.ping_interval.or(lower.ping_interval),
            max_message_size: self.max_message_size.or(lower.max_message_size),
            rate_limit: self.rate_limit.or(lower.rate_limit),
            rate_limit_burst: self.rate_limit_burst.or(lower.rate_limit_burst),
            streamer_rate_limit: self.streamer_rate_limit.or(lower.streamer_rate_limit),
            streamer_rate_limit_burst: self.streamer_rate_limit_burst.or(lower.streamer_rate_limit_burst),
            send_queue_len: self.send_queue_len.or(lower.send_queue_len),
            streamer_send_queue_len: self.streamer_send_queue_len.or(lower.streamer_send_queue_len),
            https: self.https.or(lower.https),
            https_port: self.https_port.or(lower.https_port),
            ssl_key_path: self.ssl_key_path.or(lower.ssl_key_path),
            ssl_cert_path: self.ssl_cert_path.or(lower.ssl_cert_path),
            https_redirect: self.https_redirect.or(lower.https_redirect),
            player_token: self.player_token.or(lower.player_token),
            player_token_file: self.player_token_file.or(lower.player_token_file),
            streamer_token: self.streamer_token.or(lower.streamer_token),
            streamer_token_file: self.streamer_token_file.or(lower.streamer_token_file),
            sfu_token: self.sfu_token.or(lower.sfu_token),
            sfu_token_file: self.sfu_token_file.or(lower.sfu_token_file),
            admin_token: self.admin_token.or(lower.admin_token),
            admin_token_file: self.admin_token_file.or(lower.admin_token_file),
            streamer_ids: self.streamer_ids.or(lower.streamer_ids),
            allowed_origins: self.allowed_origins.or(lower.allowed_origins),
            turn_secret: self.turn_secret.or(lower.turn_secret),
            turn_secret_file: self.turn_secret_file.or(lower.turn_secret_file),
            turn_ttl: self.turn_ttl.or(lower.turn_ttl),
            max_connections_player: self.max_connections_player.or(lower.max_connections_player),
            max_connections_streamer: self.max_connections_streamer.or(lower.max_connections_streamer),
            max_connections_sfu: self.max_connections_sfu.or(lower.max_connections_sfu),
            max_connections_per_ip: self.max_connections_per_ip.or(lower.max_connections_per_ip),
            handshake_timeout: self.handshake_timeout.or(lower.handshake_timeout),
            log_format: self.log_format.or(lower.log_format),
            cors: self.cors.or(lower.cors),
            reverse_proxy: self.reverse_proxy.or(lower.reverse_proxy),
            warnings: self.warnings.into_iter().chain(lower.warnings).collect(),
        }
    }
}

/// Reads one config.json into a settings layer. Values are accepted the way Wilbur's files
/// write them: ports as numbers or strings (`"8888"`), `peer_options` as an object, a JSON
/// string, or `""` for none.
fn read_config_file(path: &Path) -> Result<Settings, CliError> {
    let text = fs::read_to_string(path).map_err(|error| CliError::ConfigRead { path: path.to_path_buf(), error })?;
    let value: Value =
        serde_json::from_str(&text).map_err(|error| CliError::ConfigJson { path: path.to_path_buf(), error })?;
    let Value::Object(map) = value else {
        return Err(CliError::ConfigNotObject { path: path.to_path_buf() });
    };
    let mut s = Settings::default();
    let mut peer_text: Option<PeerOptionsSource> = None;
    let mut peer_file: Option<PeerOptionsSource> = None;
    for (key, v) in &map {
        let f = FileValue { path, key, v };
        match key.as_str() {
            "bind" => s.bind = f.parsed("an IP address")?,
            "streamer_port" => s.streamer_port = f.parsed("a port number")?,
            "player_port" => s.player_port = f.parsed("a port number")?,
            "sfu_port" => s.sfu_port = f.parsed("a port number")?,
            "max_players" => s.max_players = f.parsed("a whole number")?,
            "serve" => s.serve = f.boolean()?,
            "http_root" => s.http_root = f.string()?.map(PathBuf::from),
            "homepage" => s.homepage = f.string()?,
            "rest_api" => s.rest_api = f.boolean()?,
            "log_level_console" => s.log_level_console = f.string()?,
            "console_messages" => {
                s.console_messages = match f.string()? {
                    None => None,
                    Some(text) => Some(
                        ConsoleMessagesArg::from_str(&text, true)
                            .map_err(|_| f.error("expected \"basic\", \"verbose\" or \"formatted\""))?,
                    ),
                }
            }
            "no_player_count" => s.no_player_count = f.boolean()?,
            "ping_interval" => s.ping_interval = f.parsed("a whole number of seconds")?,
            "max_message_size" => s.max_message_size = f.parsed("a number of bytes")?,
            "rate_limit" => s.rate_limit = f.parsed("a whole number")?,
            "rate_limit_burst" => s.rate_limit_burst = f.parsed("a whole number")?,
            "streamer_rate_limit" => s.streamer_rate_limit = f.parsed("a whole number")?,
            "streamer_rate_limit_burst" => s.streamer_rate_limit_burst = f.parsed("a whole number")?,
            "send_queue_len" => s.send_queue_len = f.parsed("a whole number")?,
            "streamer_send_queue_len" => s.streamer_send_queue_len = f.parsed("a whole number")?,
            "peer_options" => {
                peer_text = match v {
                    Value::Null => None,
                    Value::String(text) if text.trim().is_empty() => None,
                    Value::String(text) => {
                        Some(PeerOptionsSource::Text { flag: "peer_options in the config file", text: text.clone() })
                    }
                    other => {
                        Some(PeerOptionsSource::Value { flag: "peer_options in the config file", value: other.clone() })
                    }
                }
            }
            "peer_options_file" => peer_file = f.string()?.map(|p| PeerOptionsSource::File(p.into())),
            "https" => s.https = f.boolean()?,
            "https_port" => s.https_port = f.parsed("a port number")?,
            "ssl_key_path" => s.ssl_key_path = f.string()?.map(PathBuf::from),
            "ssl_cert_path" => s.ssl_cert_path = f.string()?.map(PathBuf::from),
            "https_redirect" => s.https_redirect = f.boolean()?,
            "player_token" => s.player_token = f.secret(),
            "player_token_file" => s.player_token_file = f.string()?.map(PathBuf::from),
            "streamer_token" => s.streamer_token = f.secret(),
            "streamer_token_file" => s.streamer_token_file = f.string()?.map(PathBuf::from),
            "sfu_token" => s.sfu_token = f.secret(),
            "sfu_token_file" => s.sfu_token_file = f.string()?.map(PathBuf::from),
            "admin_token" => s.admin_token = f.secret(),
            "admin_token_file" => s.admin_token_file = f.string()?.map(PathBuf::from),
            "streamer_ids" => s.streamer_ids = f.list()?,
            "allowed_origins" => s.allowed_origins = f.list()?,
            "turn_secret" => s.turn_secret = f.secret(),
            "turn_secret_file" => s.turn_secret_file = f.string()?.map(PathBuf::from),
            "turn_ttl" => s.turn_ttl = f.parsed("a whole number of seconds")?,
            "max_connections_player" => s.max_connections_player = f.parsed("a whole number")?,
            "max_connections_streamer" => s.max_connections_streamer = f.parsed("a whole number")?,
            "max_connections_sfu" => s.max_connections_sfu = f.parsed("a whole number")?,
            "max_connections_per_ip" => s.max_connections_per_ip = f.parsed("a whole number")?,
            "handshake_timeout" => s.handshake_timeout = f.parsed("a whole number of seconds")?,
            "log_format" => {
                s.log_format = match f.string()? {
                    None => None,
                    Some(text) => {
                        Some(LogFormat::from_str(&text, true).map_err(|_| f.error("expected \"text\" or \"json\""))?)
                    }
                }
            }
            "cors" => s.cors = f.boolean()?,
            "reverse_proxy" => s.reverse_proxy = f.boolean()?,
            // Wilbur keys that only make sense with what we don't implement, or that describe
            // Wilbur's own process (its log files, stdin console, config rewriting).
            "log_folder"
            | "log_level_file"
            | "log_config"
            | "stdin"
            | "save"
            | "no_save"
            | "public_ip"
            | "player_keepalive_timeout"
            | "cors_allowed_origins"
            | "cors_allowed_methods"
            | "cors_allowed_headers"
            | "cors_credentials"
            | "reverse_proxy_num_proxies" => {}
            // Keys that only make sense on the command line.
            "config_file" | "no_config" => {}
            other => s.warnings.push(format!("config file {}: unknown key \"{other}\" ignored", path.display())),
        }
    }
    s.peer_options = peer_file.or(peer_text);
    Ok(s)
}

/// One `config.json` entry, for typed reads that name the key on error.
struct FileValue<'a> {
    path: &'a Path,
    key: &'a str,
    v: &'a Value,
}

impl FileValue<'_> {
    fn error(&self, reason: &str) -> CliError {
        CliError::ConfigValue {
            path: self.path.to_path_buf(),
            key: self.key.to_string(),
            reason: format!("{reason}, got {}", truncate(&self.v.to_string(), 60)),
        }
    }

    /// A string value; `null` and `""` mean unset.
    fn string(&self) -> Result<Option<String>, CliError> {
        match self.v {
            Value::Null => Ok(None),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(self.error("expected a string")),
        }
    }

    /// A secret: any non-empty scalar is taken as set (a number token is still a token).
    fn secret(&self) -> Option<SecretArg> {
        match self.v {
            Value::Null | Value::Bool(false) => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(SecretArg(s.clone())),
            other => Some(SecretArg(other.to_string())),
        }
    }

    /// A list: a JSON array of strings, or one comma-separated string.
    fn list(&self) -> Result<Option<Vec<String>>, CliError> {
        match self.v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.split(',').map(str::to_string).collect())),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string).ok_or_else(|| self.error("expected strings")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            _ => Err(self.error("expected a list of strings")),
        }
    }

    /// `true`/`false`, or the same as a string.
    fn boolean(&self) -> Result<Option<bool>, CliError> {
        match self.v {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(self.error("expected true or false")),
            },
            _ => Err(self.error("expected true or false")),
        }
    }

    /// A value parsed from its text, whether written as a JSON number or a string.
    fn parsed<T: std::str::FromStr>(&self, what: &str) -> Result<Option<T>, CliError> {
        let text = match self.v {
            Value::Null => return Ok(None),
            Value::Number(n) => n.to_string(),
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => s.trim().to_string(),
            _ => return Err(self.error(&format!("expected {what}"))),
        };
        text.parse().map(Some).map_err(|_| self.error(&format!("expected {what}")))
    }
}

/// Warns about what we ignore.
fn check_unsupported(s: &Settings, cli: &Cli, warnings: &mut Vec<String>) -> Result<(), CliError> {
    if s.cors == Some(true) {
        warnings.push("--cors is not supported yet and is ignored: no CORS headers are sent".into());
    }
    if s.reverse_proxy == Some(true) {
        warnings.push("--reverse-proxy is not supported yet and is ignored: X-Forwarded-For is not trusted".into());
    }
    // Only warned when given on the command line: Wilbur's stock config.json sets all of these.
    let https = s.https == Some(true);
    let ignored_flags: [(&str, bool); 7] = [
        ("ssl_key_path (without --https)", cli.ssl_key_path.is_some() && !https),
        ("ssl_cert_path (without --https)", cli.ssl_cert_path.is_some() && !https),
        ("https_redirect (without --https)", cli.https_redirect == Some(true) && !https),
        ("log_folder", cli.log_folder.is_some()),
        ("log_level_file", cli.log_level_file.is_some()),
        ("player_keepalive_timeout", cli.player_keepalive_timeout.is_some()),
        ("save", cli.save),
    ];
    for (flag, given) in ignored_flags {
        if given {
            warnings.push(format!("--{flag} is not supported and is ignored"));
        }
    }
    Ok(())
}

/// A secret from its `_file` variant (which wins) or its value. An empty one
/// given explicitly is an error, not "no protection".
fn secret(value: &Option<SecretArg>, file: &Option<PathBuf>, flag: &'static str) -> Result<Option<Secret>, CliError> {
    if let Some(path) = file {
        let file_flag: &'static str = match flag {
            "player_token" => "player_token_file",
            "streamer_token" => "streamer_token_file",
            "sfu_token" => "sfu_token_file",
            "admin_token" => "admin_token_file",
            _ => "turn_secret_file",
        };
        let text = fs::read_to_string(path).map_err(|error| CliError::SecretFile {
            flag: file_flag,
            path: path.clone(),
            error,
        })?;
        return Secret::new(text).map(Some).ok_or(CliError::EmptySecretFile { flag: file_flag, path: path.clone() });
    }
    match value {
        None => Ok(None),
        Some(v) => Secret::new(v.0.as_str()).map(Some).ok_or(CliError::EmptySecret(flag)),
    }
}

/// A comma list with blanks removed; `None` when nothing is left.
fn list(items: Option<Vec<String>>) -> Option<Vec<String>> {
    let items: Vec<String> = items?.iter().map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).collect();
    (!items.is_empty()).then_some(items)
}

/// `value` or the default, refusing 0 where 0 would make the server unusable.
fn nonzero<T: Default + PartialEq>(value: Option<T>, default: T, flag: &'static str) -> Result<T, CliError> {
    match value {
        Some(v) if v == T::default() => Err(CliError::Zero { flag }),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// Maps Wilbur's level names onto `tracing` filter directives.
fn log_level(level: &str) -> Result<String, CliError> {
    let directive = match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warning" | "warn" => "warn",
        "error" => "error",
        _ => return Err(CliError::LogLevel(level.to_string())),
    };
    Ok(directive.to_string())
}

/// The effective configuration in Wilbur's `GET /api/config` shape
/// (`{config, protocolConfig}`), with secret-looking values redacted.
///
/// Public so code that builds a [`ServerConfig`] by hand (tests, the harness) can fill
/// `public_config` the same way [`resolve`] does.
pub fn public_config(c: &ServerConfig) -> Value {
    let mut peer_options = Value::Object(c.peer_options.clone());
    redact(&mut peer_options);
    let console_messages = match c.console_messages {
        ConsoleMessages::Off => Value::Null,
        ConsoleMessages::Basic => json!("basic"),
        ConsoleMessages::Verbose => json!("verbose"),
        ConsoleMessages::Formatted => json!("formatted"),
    };
    json!({
        "config": {
            "bind": c.bind.to_string(),
            "streamerPort": c.streamer_port,
            "playerPort": c.player_port,
            "sfuPort": c.sfu_port,
            "peerOptions": peer_options,
            "maxSubscribers": c.max_players,
            "sendPlayerCount": c.send_player_count,
            "pingInterval": c.ping_interval.map_or(0, |d| d.as_secs()),
            "maxMessageSize": c.max_message_size,
            "rateLimit": c.rate_limit_per_sec,
            "rateLimitBurst": c.rate_limit_burst,
            "streamerRateLimit": c.streamer_rate_limit_per_sec,
            "streamerRateLimitBurst": c.streamer_rate_limit_burst,
            "sendQueueLen": c.send_queue_len,
            "streamerSendQueueLen": c.streamer_send_queue_len,
            "serve": c.serve,
            "homepage": c.homepage,
            "restApi": c.rest_api,
            "consoleMessages": console_messages,
            "https": c.tls.is_some(),
            "httpsPort": c.tls.as_ref().map(|t| t.https_port),
            "httpsRedirect": c.tls.as_ref().is_some_and(|t| t.https_redirect),
            "playerToken": c.security.player_token.as_ref().map(|_| REDACTED),
            "streamerToken": c.security.streamer_token.as_ref().map(|_| REDACTED),
            "sfuToken": c.security.sfu_token.as_ref().map(|_| REDACTED),
            "adminToken": c.security.admin_token.as_ref().map(|_| REDACTED),
            "streamerIds": c.security.streamer_ids,
            "allowedOrigins": c.security.allowed_origins,
            "turnSecret": c.turn.as_ref().map(|_| REDACTED),
            "turnTtl": c.turn.as_ref().map(|t| t.ttl.as_secs()),
            "maxConnectionsPlayer": c.limits.max_players,
            "maxConnectionsStreamer": c.limits.max_streamers,
            "maxConnectionsSfu": c.limits.max_sfus,
            "maxConnectionsPerIp": c.limits.max_per_ip,
            "handshakeTimeout": c.limits.handshake_timeout.as_secs(),
        },
        "protocolConfig": {
            "protocolVersion": proto::PROTOCOL_VERSION,
            "peerConnectionOptions": peer_options,
        },
    })
}

/// Replaces, at any depth, values whose key looks secret (TURN username and credential,
/// passwords, tokens, keys).
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let k = key.to_ascii_lowercase();
                let secret = ["credential", "password", "secret", "token", "username", "key"]
                    .iter()
                    .any(|needle| k.contains(needle));
                if secret && !v.is_null() {
                    *v = json!(REDACTED);
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `text` cut to at most `max` characters, for error messages that quote input.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let argv = std::iter::once("signalling").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli,
            Err(e) => panic!("flags {args:?} did not parse: {e}"),
        }
    }

    /// Resolves with a default config path that does not exist, so the working directory
    /// cannot leak into tests.
    fn resolve_args(args: &[&str]) -> Result<Resolved, CliError> {
        let dir = tempfile::tempdir().expect("temp dir");
        resolve_with_default_file(cli(args), &dir.path().join("config.json"))
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let path = dir.path().join(name);
        fs::write(&path, text).expect("write temp file");
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn defaults_match_server_config_default() {
        let r = resolve_args(&[]).expect("defaults resolve");
        let d = ServerConfig::default();
        let c = &r.config;
        assert_eq!(c.bind, d.bind);
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        assert_eq!((c.streamer_port, c.player_port, c.sfu_port), (8888, 8080, 8889));
        assert_eq!(c.max_players, 0);
        assert!(c.peer_options.is_empty());
        assert!(c.send_player_count);
        assert_eq!(c.ping_interval, Some(Duration::from_secs(30)));
        assert_eq!(c.max_message_size, d.max_message_size);
        assert_eq!(c.rate_limit_per_sec, d.rate_limit_per_sec);
        assert_eq!(c.rate_limit_burst, d.rate_limit_burst);
        assert_eq!(c.send_queue_len, d.send_queue_len);
        assert_eq!((c.serve, c.rest_api), (true, true));
        assert_eq!(c.http_root, None);
        assert_eq!(c.homepage, "player.html");
        assert_eq!(c.console_messages, ConsoleMessages::Off);
        assert_eq!(r.log_level, "info");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(c.public_config["config"]["playerPort"], json!(8080));
        assert_eq!(c.public_config["protocolConfig"]["protocolVersion"], json!(proto::PROTOCOL_VERSION));
    }

    #[test]
    fn flags_set_every_field() {
        let r = resolve_args(&[
            "--bind=0.0.0.0",
            "--streamer_port=1",
            "--player_port",
            "2",
            "--sfu_port=3",
            "--max_players=4",
            "--serve=false",
            "--http_root=/srv/www",
            "--homepage=index.html",
            "--rest_api=false",
            "--no_player_count",
            "--ping_interval=0",
            "--max_message_size=5",
            "--rate_limit=6",
            "--rate_limit_burst=7",
            "--send_queue_len=8",
            "--log_level_console=warning",
            "--console_messages",
        ])
        .expect("flags resolve");
        let c = &r.config;
        assert_eq!(c.bind.to_string(), "0.0.0.0");
        assert_eq!((c.streamer_port, c.player_port, c.sfu_port, c.max_players), (1, 2, 3, 4));
        assert!(!c.serve && !c.rest_api && !c.send_player_count);
        assert_eq!(c.http_root.as_deref(), Some(Path::new("/srv/www")));
        assert_eq!(c.homepage, "index.html");
        assert_eq!(c.ping_interval, None);
        assert_eq!((c.max_message_size, c.rate_limit_per_sec, c.rate_limit_burst, c.send_queue_len), (5, 6, 7, 8));
        assert_eq!(r.log_level, "warn");
        assert_eq!(c.console_messages, ConsoleMessages::Basic);
    }

    #[test]
    fn bare_switches_turn_on_like_wilbur() {
        let r = resolve_args(&["--serve", "--rest_api", "--console_messages=formatted"]).expect("switches resolve");
        assert!(r.config.serve && r.config.rest_api);
        assert_eq!(r.config.console_messages, ConsoleMessages::Formatted);
    }

    #[test]
    fn config_file_supplies_defaults_and_flags_override_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Wilbur writes ports as strings; accept both.
        let path = write(
            &dir,
            "config.json",
            r#"{"streamer_port": "7000", "player_port": 7001, "sfu_port": "7002",
                "max_players": 3, "serve": false, "homepage": "home.html",
                "log_level_console": "debug", "console_messages": "verbose",
                "peer_options": {"iceServers": [{"urls": ["stun:example.org"]}]}}"#,
        );
        let r = resolve_args(&["--config_file", &path, "--player_port=9000", "--serve"]).expect("file + flags resolve");
        let c = &r.config;
        assert_eq!(c.streamer_port, 7000, "from the file");
        assert_eq!(c.player_port, 9000, "the flag beats the file");
        assert_eq!(c.sfu_port, 7002);
        assert_eq!(c.max_players, 3);
        assert!(c.serve, "--serve beats serve:false in the file");
        assert_eq!(c.homepage, "home.html");
        assert_eq!(r.log_level, "debug");
        assert_eq!(c.console_messages, ConsoleMessages::Verbose);
        assert_eq!(c.peer_options["iceServers"][0]["urls"][0], json!("stun:example.org"));
    }

    #[test]
    fn wilbur_stock_config_file_is_accepted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(
            &dir,
            "config.json",
            r#"{"log_folder": "logs", "log_level_console": "info", "log_level_file": "info",
                "streamer_port": "8888", "player_port": "80", "sfu_port": "8889",
                "serve": true, "http_root": "www", "homepage": "player.html",
                "https": false, "https_port": 443, "ssl_key_path": "certificates/client-key.pem",
                "ssl_cert_path": "certificates/client-cert.pem", "https_redirect": true,
                "rest_api": false, "cors": false, "reverse_proxy": false,
                "reverse_proxy_num_proxies": 1, "peer_options": "", "log_config": true,
                "stdin": false, "console_messages": "verbose"}"#,
        );
        let r = resolve_args(&["--config_file", &path]).expect("Wilbur's config.json resolves");
        assert_eq!(r.config.player_port, 80);
        assert!(!r.config.rest_api);
        assert!(r.config.peer_options.is_empty());
        // Only the missing `www` directory is worth a warning.
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("http_root www"), "{:?}", r.warnings);
    }

    #[test]
    fn default_config_file_is_read_when_present() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(&dir, "config.json", r#"{"sfu_port": 1234}"#);
        let c = resolve_with_default_file(cli(&[]), Path::new(&path)).expect("resolves");
        assert_eq!(c.config.sfu_port, 1234);
    }

    #[test]
    fn no_config_ignores_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(&dir, "config.json", r#"{"sfu_port": 1234}"#);
        let c = resolve_with_default_file(cli(&["--no_config"]), Path::new(&path)).expect("resolves");
        assert_eq!(c.config.sfu_port, 8889);
        let c = resolve_args(&["--no_config", "--config_file", &path]).expect("resolves");
        assert_eq!(c.config.sfu_port, 8889);
    }

    #[test]
    fn missing_explicit_config_file_is_an_error() {
        let err = resolve_args(&["--config_file", "/nonexistent/dir/config.json"]).expect_err("missing explicit file");
        assert!(matches!(err, CliError::ConfigRead { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/dir/config.json"));
    }

    #[test]
    fn bad_config_file_errors_name_the_file_and_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(&dir, "bad.json", "{ not json");
        let err = resolve_args(&["--config_file", &path]).expect_err("bad json");
        assert!(matches!(err, CliError::ConfigJson { .. }), "{err}");

        let path = write(&dir, "array.json", "[1, 2]");
        let err = resolve_args(&["--config_file", &path]).expect_err("not an object");
        assert!(matches!(err, CliError::ConfigNotObject { .. }), "{err}");

        let path = write(&dir, "port.json", r#"{"player_port": "eighty"}"#);
        let err = resolve_args(&["--config_file", &path]).expect_err("bad port");
        assert!(err.to_string().contains("player_port"), "{err}");
        assert!(err.to_string().contains("eighty"), "{err}");
    }

    #[test]
    fn unknown_config_keys_warn() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(&dir, "config.json", r#"{"streamer_prot": 1}"#);
        let r = resolve_args(&["--config_file", &path]).expect("resolves");
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("streamer_prot"));
    }

    #[test]
    fn peer_options_as_a_string_in_the_config_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(&dir, "config.json", r#"{"peer_options": "{\"iceServers\":[]}"}"#);
        let r = resolve_args(&["--config_file", &path]).expect("resolves");
        assert_eq!(r.config.peer_options["iceServers"], json!([]));
        let path = write(&dir, "bad.json", r#"{"peer_options": "{nope"}"#);
        let err = resolve_args(&["--config_file", &path]).expect_err("bad json");
        assert!(err.to_string().contains("peer_options in the config file"), "{err}");
    }

    #[test]
    fn peer_options_from_the_command_line() {
        let r = resolve_args(&["--peer_options", r#"{"iceServers":[]}"#]).expect("resolves");
        assert_eq!(r.config.peer_options["iceServers"], json!([]));
    }

    #[test]
    fn bad_peer_options_json_names_the_flag() {
        let err = resolve_args(&["--peer_options", "{iceServers"]).expect_err("bad json");
        assert!(matches!(err, CliError::PeerOptionsJson { .. }));
        assert!(err.to_string().contains("--peer_options"), "{err}");

        let err = resolve_args(&["--peer_options", "[1]"]).expect_err("not an object");
        assert!(err.to_string().contains("--peer_options"), "{err}");
    }

    #[test]
    fn peer_options_from_a_file_win_over_the_flag() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(
            &dir,
            "peer.json",
            r#"{"iceServers":[{"urls":["turn:t.example:3478"],"username":"u","credential":"hunter2"}]}"#,
        );
        let r =
            resolve_args(&["--peer_options", r#"{"ignored":true}"#, "--peer_options_file", &path]).expect("resolves");
        let c = &r.config;
        assert_eq!(c.peer_options["iceServers"][0]["credential"], json!("hunter2"));
        assert!(c.peer_options.get("ignored").is_none());
        // ... and never shows the secret in /api/config.
        let public = c.public_config.to_string();
        assert!(!public.contains("hunter2"), "{public}");
        assert!(public.contains("turn:t.example:3478"), "{public}");
        assert_eq!(c.public_config["config"]["peerOptions"]["iceServers"][0]["username"], json!(REDACTED));
    }

    #[test]
    fn bad_peer_options_file_names_the_flag() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(&dir, "peer.json", "{oops");
        let err = resolve_args(&["--peer_options_file", &path]).expect_err("bad json");
        assert!(matches!(err, CliError::PeerOptionsFileJson { .. }));
        assert!(err.to_string().contains("--peer_options_file"), "{err}");

        let err = resolve_args(&["--peer_options_file", "/nonexistent/peer.json"]).expect_err("missing file");
        assert!(matches!(err, CliError::PeerOptionsFileRead { .. }));
    }

    #[test]
    fn command_line_peer_options_beat_the_config_files_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let peer = write(&dir, "peer.json", r#"{"from":"file"}"#);
        let config = write(&dir, "config.json", &format!(r#"{{"peer_options_file": {}}}"#, json!(peer)));
        let r = resolve_args(&["--config_file", &config]).expect("resolves");
        assert_eq!(r.config.peer_options["from"], json!("file"));
        let r = resolve_args(&["--config_file", &config, "--peer_options", r#"{"from":"cli"}"#]).expect("resolves");
        assert_eq!(r.config.peer_options["from"], json!("cli"));
    }

    #[test]
    fn https_needs_existing_files_and_sets_tls() {
        let err = resolve_args(&["--https", "--ssl_cert_path=/nonexistent/c.pem", "--ssl_key_path=/nonexistent/k.pem"])
            .expect_err("missing files");
        assert!(matches!(err, CliError::TlsFileMissing(_)), "{err}");
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = write(&dir, "c.pem", "x");
        let key = write(&dir, "k.pem", "x");
        let r =
            resolve_args(&["--https_port=9443", "--ssl_cert_path", &cert, "--ssl_key_path", &key, "--https_redirect"])
                .expect("https resolves");
        let tls = r.config.tls.expect("--https_port implies --https");
        assert_eq!((tls.https_port, tls.https_redirect), (9443, true));
        assert!(resolve_args(&["--https=false"]).expect("off").config.tls.is_none());
        assert_eq!(r.config.public_config["config"]["https"], json!(true));
    }

    #[test]
    fn tokens_from_flags_files_and_config_are_never_shown() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = write(&dir, "player.token", "  from-file\n");
        let config = write(&dir, "config.json", r#"{"sfu_token": "sfu-secret-1", "streamer_ids": "A, B,,"}"#);
        let r = resolve_args(&[
            "--config_file",
            &config,
            "--player_token=ignored-flag",
            "--player_token_file",
            &file,
            "--streamer_token=streamer-secret-2",
            "--admin_token=admin-secret-3",
            "--turn_secret=turn-secret-4",
            "--turn_ttl=60",
            "--allowed_origins=https://a.example,https://b.example",
        ])
        .expect("resolves");
        let sec = &r.config.security;
        assert_eq!(sec.player_token.as_ref().map(Secret::expose), Some("from-file"));
        assert_eq!(sec.streamer_token.as_ref().map(Secret::expose), Some("streamer-secret-2"));
        assert_eq!(sec.sfu_token.as_ref().map(Secret::expose), Some("sfu-secret-1"));
        assert_eq!(sec.admin_token.as_ref().map(Secret::expose), Some("admin-secret-3"));
        assert_eq!(sec.streamer_ids, Some(vec!["A".to_string(), "B".to_string()]));
        assert_eq!(sec.allowed_origins.len(), 2);
        let turn = r.config.turn.as_ref().expect("turn");
        assert_eq!((turn.secret.expose(), turn.ttl.as_secs()), ("turn-secret-4", 60));
        let parsed = cli(&["--player_token=ignored-flag", "--streamer_token=streamer-secret-2"]);
        let shown = format!("{} {:?} {parsed:?}", r.config.public_config, r.config);
        for secret in
            ["from-file", "ignored-flag", "sfu-secret-1", "streamer-secret-2", "admin-secret-3", "turn-secret-4"]
        {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert_eq!(r.config.public_config["config"]["playerToken"], json!(REDACTED));
    }

    #[test]
    fn empty_or_unreadable_secrets_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = write(&dir, "empty", " \n");
        let err = resolve_args(&["--player_token_file", &empty]).expect_err("empty file");
        assert!(matches!(err, CliError::EmptySecretFile { .. }), "{err}");
        let err = resolve_args(&["--turn_secret_file=/nonexistent/t"]).expect_err("missing file");
        assert!(err.to_string().contains("turn_secret_file"), "{err}");
        let err = resolve_args(&["--admin_token="]).expect_err("empty token");
        assert!(matches!(err, CliError::EmptySecret("admin_token")), "{err}");
        // A config.json number is a token; "" there means unset.
        let path = write(&dir, "config.json", r#"{"player_token": 12345678}"#);
        let r = resolve_args(&["--config_file", &path]).expect("number token");
        assert_eq!(r.config.security.player_token.as_ref().map(Secret::expose), Some("12345678"));
        let path = write(&dir, "config2.json", r#"{"player_token": ""}"#);
        assert!(resolve_args(&["--config_file", &path]).expect("unset").config.security.player_token.is_none());
    }

    #[test]
    fn limits_and_log_format() {
        let r = resolve_args(&[
            "--max_connections_player=5",
            "--max_connections_streamer=2",
            "--max_connections_sfu=1",
            "--max_connections_per_ip=7",
            "--handshake_timeout=3",
            "--log_format=json",
        ])
        .expect("resolves");
        let l = &r.config.limits;
        assert_eq!((l.max_players, l.max_streamers, l.max_sfus, l.max_per_ip), (5, 2, 1, 7));
        assert_eq!(l.handshake_timeout, Duration::from_secs(3));
        assert_eq!(r.log_format, LogFormat::Json);
        assert!(resolve_args(&["--handshake_timeout=0"]).is_err());
        assert!(Cli::try_parse_from(["signalling", "--log_format=xml"]).is_err());
    }

    #[test]
    fn ignored_wilbur_flags_warn() {
        let r = resolve_args(&["--log_folder=logs", "--cors", "--save"]).expect("resolves");
        assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
    }

    #[test]
    fn zero_and_bad_values_are_rejected() {
        let err = resolve_args(&["--send_queue_len=0"]).expect_err("zero queue");
        assert!(err.to_string().contains("send_queue_len"));
        let err = resolve_args(&["--log_level_console=loud"]).expect_err("bad level");
        assert!(err.to_string().contains("loud"));
        assert!(Cli::try_parse_from(["signalling", "--console_messages=chatty"]).is_err());
        assert!(Cli::try_parse_from(["signalling", "--player_port=99999"]).is_err());
    }

    #[test]
    fn redact_hides_secret_keys_at_any_depth() {
        let mut v = json!({"a": [{"password": "p", "Token": 1, "urls": "x"}], "apiKey": "k"});
        redact(&mut v);
        assert_eq!(v, json!({"a": [{"password": REDACTED, "Token": REDACTED, "urls": "x"}], "apiKey": REDACTED}));
    }

    #[test]
    fn help_mentions_wilbur_port_and_defaults() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for needle in ["--streamer_port", "--player_port", "Wilbur uses 80", "[default: 30]"] {
            assert!(help.contains(needle), "help lacks {needle}");
        }
    }
}
