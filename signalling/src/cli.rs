//! Command-line flags and `config.json`, resolved into a [`ServerConfig`].
//!
//! Flag names and `config.json` keys are Wilbur's (snake_case, e.g. `--streamer_port` and
//! `"streamer_port"`), so existing start scripts and config files keep working. Each is defined
//! once, in [`Settings`]. Precedence is command line, then `config.json`, then built-in
//! defaults. Wilbur options we do not implement are still accepted with a warning. Secrets
//! (tokens, the TURN secret) can come from files (`--*_file`) so they stay out of `ps` and shell
//! history; none is ever logged or shown by `GET /api/config`.
//!
//! Only the binary (and harnesses that start the server as it does) use this module; the
//! library's server takes a resolved [`ServerConfig`].

mod lenient;
mod settings;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde_json::{Map, Value};

use crate::config::{ConsoleMessages, Limits, Secret, Security, ServerConfig, TlsConfig, TurnConfig};
use lenient::truncate;
pub use settings::{ConsoleMessagesArg, LogFormat, PeerOptions, SecretArg, Settings};

/// The file read when `--config_file` is not given; a missing one is not an error.
pub const DEFAULT_CONFIG_FILE: &str = "config.json";

/// `config.json` keys accepted silently though no setting has them: Wilbur keys that only make
/// sense with what we don't implement, or that describe Wilbur's own process (its log files,
/// stdin console, config rewriting), and keys that only make sense on the command line.
const IGNORED_CONFIG_KEYS: &[&str] = &[
    "log_folder",
    "log_level_file",
    "log_config",
    "stdin",
    "save",
    "no_save",
    "public_ip",
    "player_keepalive_timeout",
    "cors_allowed_origins",
    "cors_allowed_methods",
    "cors_allowed_headers",
    "cors_credentials",
    "reverse_proxy_num_proxies",
    "config_file",
    "no_config",
];

/// Pixel Streaming signalling server: a drop-in for Epic's reference server (Wilbur).
///
/// Every flag can also be set in config.json under the same name (e.g. "streamer_port": 8888);
/// the command line overrides the file. The player port also serves HTTP: the REST API under
/// /api, Prometheus metrics at /metrics, liveness at /healthz, and the admin API with
/// --admin_token.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "signalling", version)]
pub struct Cli {
    /// The settings `config.json` can also hold.
    #[command(flatten)]
    pub settings: Settings,

    /// config.json to read defaults from. [default: config.json in the working directory, if it
    /// exists; an explicitly given file must exist]
    #[arg(long = "config_file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Do not read any config file; only flags and built-in defaults apply.
    #[arg(long = "no_config")]
    pub no_config: bool,

    // ---- Wilbur options we accept but do not implement, on the command line only. ----
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
    #[error("--node_id and --cluster_prefix need --redis_url (the cluster's Redis)")]
    ClusterWithoutRedis,
    #[error("--redis_url {0}: expected redis://HOST:PORT (or rediss://, unix://)")]
    RedisUrl(String),
    #[error("--node_id \"{0}\": use letters, digits, '-', '_' or '.'")]
    NodeId(String),
    #[error("--cluster_prefix must not be empty")]
    ClusterPrefix,
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

/// Resolves flags, `config.json` and defaults into the server's configuration, the log level
/// and the warnings to log.
pub fn resolve_full(cli: Cli) -> Result<Resolved, CliError> {
    resolve_with_default_file(cli, Path::new(DEFAULT_CONFIG_FILE))
}

/// `resolve_full` with the default config path as a parameter, so tests don't depend on the
/// working directory.
fn resolve_with_default_file(cli: Cli, default_file: &Path) -> Result<Resolved, CliError> {
    let (file, mut warnings) = match (&cli.config_file, cli.no_config) {
        (_, true) => (Settings::default(), Vec::new()),
        (Some(path), false) => read_config_file(path)?,
        (None, false) if default_file.exists() => read_config_file(default_file)?,
        (None, false) => (Settings::default(), Vec::new()),
    };
    let mut flags = cli.settings.clone().peer_options_in_layer();
    // `--https_port` implies `--https` on the command line, as in Wilbur.
    flags.https = flags.https.or(flags.https_port.map(|_| true));
    let merged = flags.or(file);
    check_unsupported(&merged, &cli, &mut warnings);
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
    let peer_options = load_peer_options(merged.peer_options.clone())?;
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
        management_bind: merged.management_bind,
        cluster: cluster(&merged)?,
        console_messages: console_messages.unwrap_or(defaults.console_messages),
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
    Ok(Resolved { config, log_level, warnings, log_format: merged.log_format.unwrap_or_default() })
}

/// Reads and parses `peerConnectionOptions`, naming where it came from on error.
/// `--redis_url` (with `--node_id` and `--cluster_prefix`): a node of a cluster.
fn cluster(merged: &Settings) -> Result<Option<crate::cluster::ClusterConfig>, CliError> {
    let Some(url) = merged.redis_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
        if merged.node_id.is_some() || merged.cluster_prefix.is_some() {
            return Err(CliError::ClusterWithoutRedis);
        }
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
        return Err(CliError::RedisUrl(url.to_string()));
    }
    let node_id = match merged.node_id.as_deref().map(str::trim) {
        Some(id) if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) => {
            return Err(CliError::NodeId(id.to_string()))
        }
        Some(id) => id.to_string(),
        None => crate::cluster::ClusterConfig::random_node_id(),
    };
    let prefix = merged.cluster_prefix.as_deref().map(str::trim).unwrap_or("ps");
    if prefix.is_empty() {
        return Err(CliError::ClusterPrefix);
    }
    Ok(Some(crate::cluster::ClusterConfig { redis_url: url.to_string(), node_id, prefix: prefix.to_string() }))
}

fn load_peer_options(source: Option<PeerOptions>) -> Result<Map<String, Value>, CliError> {
    const IN_CONFIG_FILE: &str = "peer_options in the config file";
    let parse_text = |flag: &'static str, text: String| {
        serde_json::from_str(&text)
            .map(|value| (flag, value))
            .map_err(|error| CliError::PeerOptionsJson { flag, error })
    };
    let (flag, value) = match source {
        None => return Ok(Map::new()),
        Some(PeerOptions::ConfigValue(value)) => (IN_CONFIG_FILE, value),
        Some(PeerOptions::ConfigText(text)) => parse_text(IN_CONFIG_FILE, text)?,
        Some(PeerOptions::Flag(text)) => parse_text("--peer_options", text)?,
        Some(PeerOptions::File(path)) => {
            let text = fs::read_to_string(&path)
                .map_err(|error| CliError::PeerOptionsFileRead { path: path.clone(), error })?;
            let value = serde_json::from_str(&text).map_err(|error| CliError::PeerOptionsFileJson { path, error })?;
            ("--peer_options_file", value)
        }
    };
    match value {
        Value::Object(map) => Ok(map),
        other => Err(CliError::PeerOptionsNotObject { flag, got: truncate(&other.to_string(), 60) }),
    }
}

/// Reads one config.json into a settings layer, with warnings for keys nothing reads. Values
/// are accepted the way Wilbur's files write them (see `lenient`).
fn read_config_file(path: &Path) -> Result<(Settings, Vec<String>), CliError> {
    let text = fs::read_to_string(path).map_err(|error| CliError::ConfigRead { path: path.to_path_buf(), error })?;
    let value: Value =
        serde_json::from_str(&text).map_err(|error| CliError::ConfigJson { path: path.to_path_buf(), error })?;
    let Value::Object(map) = value else {
        return Err(CliError::ConfigNotObject { path: path.to_path_buf() });
    };
    let mut settings = Settings::default();
    let mut warnings = Vec::new();
    for (key, value) in map {
        if Settings::has_key(&key) {
            // One key at a time, so an error can name the key at fault.
            let one: Settings = serde_json::from_value(Value::Object(Map::from_iter([(key.clone(), value)])))
                .map_err(|error| CliError::ConfigValue { path: path.to_path_buf(), key, reason: error.to_string() })?;
            settings = one.or(settings);
        } else if !IGNORED_CONFIG_KEYS.contains(&key.as_str()) {
            warnings.push(format!("config file {}: unknown key \"{key}\" ignored", path.display()));
        }
    }
    Ok((settings.peer_options_in_layer(), warnings))
}

/// Warns about what we ignore.
fn check_unsupported(s: &Settings, cli: &Cli, warnings: &mut Vec<String>) {
    if s.cors == Some(true) {
        warnings.push("--cors is not supported yet and is ignored: no CORS headers are sent".into());
    }
    if s.reverse_proxy == Some(true) {
        warnings.push("--reverse-proxy is not supported yet and is ignored: X-Forwarded-For is not trusted".into());
    }
    // Only warned when given on the command line: Wilbur's stock config.json sets all of these.
    let https = s.https == Some(true);
    let flags = &cli.settings;
    let ignored_flags: [(&str, bool); 7] = [
        ("ssl_key_path (without --https)", flags.ssl_key_path.is_some() && !https),
        ("ssl_cert_path (without --https)", flags.ssl_cert_path.is_some() && !https),
        ("https_redirect (without --https)", flags.https_redirect == Some(true) && !https),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::REDACTED;
    use crate::http::api_config;
    use serde_json::json;

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
    fn cluster_flags_and_config_keys() {
        assert_eq!(resolve_args(&[]).expect("resolves").config.cluster, None, "one process without --redis_url");
        let r = resolve_args(&["--redis_url", "redis://127.0.0.1:6379", "--node_id", "a", "--cluster_prefix", "eu"])
            .expect("resolves");
        let c = r.config.cluster.expect("a cluster node");
        assert_eq!(
            (c.redis_url.as_str(), c.node_id.as_str(), c.prefix.as_str()),
            ("redis://127.0.0.1:6379", "a", "eu")
        );
        let c = resolve_args(&["--redis_url", "redis://h:1"]).expect("resolves").config.cluster.expect("node");
        assert!(c.node_id.starts_with("node-") && c.node_id.len() == 13, "random id: {}", c.node_id);
        assert_eq!(c.prefix, "ps");
        let dir = tempfile::tempdir().expect("tmp");
        let file = write(&dir, "c.json", r#"{"redis_url": "redis://r:6379", "node_id": "b", "cluster_prefix": "x"}"#);
        let c = resolve_args(&["--config_file", &file]).expect("resolves").config.cluster.expect("node");
        assert_eq!((c.node_id.as_str(), c.prefix.as_str()), ("b", "x"));
        for (args, wanted) in [
            (&["--node_id", "a"][..], "need --redis_url"),
            (&["--redis_url", "http://x"][..], "expected redis://"),
            (&["--redis_url", "redis://x", "--node_id", "a b"][..], "--node_id"),
            (&["--redis_url", "redis://x", "--cluster_prefix", " "][..], "must not be empty"),
        ] {
            let err = resolve_args(args).expect_err("refused").to_string();
            assert!(err.contains(wanted), "{args:?}: {err}");
        }
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
        assert_eq!((c.serve, c.rest_api), (true, false), "REST is off by default, as in Wilbur");
        assert_eq!(c.http_root, None);
        assert_eq!(c.homepage, "player.html");
        assert_eq!(c.console_messages, ConsoleMessages::Off);
        assert_eq!(r.log_level, "info");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let view = api_config(c);
        assert_eq!(view["config"]["playerPort"], json!(8080));
        assert_eq!(view["protocolConfig"]["protocolVersion"], json!(proto::PROTOCOL_VERSION));
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
    fn config_values_are_read_leniently_and_errors_say_what_was_expected() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(
            &dir,
            "config.json",
            r#"{"serve": "FALSE", "rest_api": "", "no_player_count": "true", "player_port": " 81 ",
                "bind": "0.0.0.0", "log_format": "JSON", "allowed_origins": ["https://a.example"],
                "turn_secret": false, "homepage": "", "max_message_size": 4096}"#,
        );
        let r = resolve_args(&["--config_file", &path]).expect("lenient values resolve");
        let c = &r.config;
        assert!(!c.serve && !c.rest_api && !c.send_player_count, "\"\" leaves rest_api at its default (off)");
        assert_eq!((c.player_port, c.bind.to_string().as_str(), c.max_message_size), (81, "0.0.0.0", 4096));
        assert_eq!((r.log_format, c.homepage.as_str()), (LogFormat::Json, "player.html"));
        assert_eq!(c.security.allowed_origins, ["https://a.example"]);
        assert!(c.turn.is_none());
        for (text, message) in [
            (r#"{"serve": "yes"}"#, r#"key "serve": expected true or false, got "yes""#),
            (
                r#"{"console_messages": "chatty"}"#,
                r#"key "console_messages": expected "basic", "verbose" or "formatted", got "chatty""#,
            ),
            (r#"{"log_format": "xml"}"#, r#"key "log_format": expected "text" or "json", got "xml""#),
            (r#"{"log_format": 1}"#, r#"key "log_format": expected a string, got 1"#),
            (r#"{"streamer_ids": [1]}"#, r#"key "streamer_ids": expected strings, got [1]"#),
            (r#"{"allowed_origins": 2}"#, r#"key "allowed_origins": expected a list of strings, got 2"#),
            (r#"{"bind": "here"}"#, r#"key "bind": expected an IP address, got "here""#),
            (r#"{"ping_interval": -1}"#, r#"key "ping_interval": expected a whole number of seconds, got -1"#),
            (r#"{"max_message_size": true}"#, r#"key "max_message_size": expected a number of bytes, got true"#),
            (r#"{"homepage": 5}"#, r#"key "homepage": expected a string, got 5"#),
        ] {
            let path = write(&dir, "bad.json", text);
            let err = resolve_args(&["--config_file", &path]).expect_err(text).to_string();
            assert_eq!(err, format!("config file {path}: {message}"));
        }
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
        let view = api_config(c);
        let public = view.to_string();
        assert!(!public.contains("hunter2"), "{public}");
        assert!(public.contains("turn:t.example:3478"), "{public}");
        assert_eq!(view["config"]["peerOptions"]["iceServers"][0]["username"], json!(REDACTED));
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
        let tls = r.config.tls.as_ref().expect("--https_port implies --https");
        assert_eq!((tls.https_port, tls.https_redirect), (9443, true));
        assert!(resolve_args(&["--https=false"]).expect("off").config.tls.is_none());
        assert_eq!(api_config(&r.config)["config"]["https"], json!(true));
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
        let view = api_config(&r.config);
        let shown = format!("{view} {:?} {parsed:?}", r.config);
        for secret in
            ["from-file", "ignored-flag", "sfu-secret-1", "streamer-secret-2", "admin-secret-3", "turn-secret-4"]
        {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert_eq!(view["config"]["playerToken"], json!(REDACTED));
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
    fn help_mentions_wilbur_port_and_defaults() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for needle in ["--streamer_port", "--player_port", "Wilbur uses 80", "[default: 30]"] {
            assert!(help.contains(needle), "help lacks {needle}");
        }
    }
}
