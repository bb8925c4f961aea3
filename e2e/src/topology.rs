//! A description of a local stack (server, streamers, SFU, players) and the
//! code that brings it up in-process. The harness binary and the end-to-end
//! tests use the same description, so what a test proves is what the harness
//! runs.
//!
//! ```toml
//! [signalling]
//! player_port = 8080          # 0 = any free port
//! nodes = 2                    # optional: a cluster on a Redis it starts; streamers join
//!                              # the first node, the SFU and players the last
//!
//! [[streamers]]
//! id = "DefaultStreamer"
//! count = 2                    # DefaultStreamer, DefaultStreamer1
//!
//! [sfu]                        # optional
//! streamer = "DefaultStreamer"
//!
//! [[players]]
//! streamer = "DefaultStreamer1"
//! count = 10
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use mock_player::live::{Live, Phase};
use mock_player::{Player, PlayerConfig, PlayerStats};
use mock_streamer::{StreamerConfig, StreamerHandle};
use signalling::{ServerConfig, ServerHandle};

use crate::sfu::RunningSfu;
pub use crate::sfu::SfuSpec;

/// Why a topology could not be read or started.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid topology: {reason}")]
    Parse { path: String, reason: String },
    #[error("signalling server: {0}")]
    Server(#[from] signalling::ServerError),
    #[error("mock streamer: {0}")]
    Streamer(#[from] mock_streamer::StreamerError),
    #[error("sfu: {0}")]
    Sfu(String),
    #[error("mock player: {0}")]
    Player(#[from] mock_player::PlayerError),
    #[error("{0}")]
    Redis(String),
    #[error("streamer codecs: {0}")]
    Codecs(#[from] mock_streamer::config::CodecListError),
    #[error("a player group's impair")]
    Impairment(#[from] proto::impairment::ImpairmentError),
}

/// The name of cluster node `i`: `a`, `b`, … (then `n26`, …).
pub fn node_name(i: usize) -> String {
    match u8::try_from(i) {
        Ok(n) if n < 26 => char::from(b'a' + n).to_string(),
        _ => format!("n{i}"),
    }
}

/// The signalling server's part.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignallingSpec {
    pub streamer_port: u16,
    pub player_port: u16,
    pub sfu_port: u16,
    pub max_players: usize,
    /// Signalling nodes (0 or 1: one server, no Redis). With 2 or more the
    /// topology starts a `redis-server` and the nodes as one cluster
    /// (`a`, `b`, …); node `i` listens on each given port + 100 × `i`.
    pub nodes: usize,
    /// ICE server URLs for `config`'s `peerConnectionOptions` (e.g. a local
    /// coturn's `turn:127.0.0.1:3478?transport=udp`).
    pub ice_servers: Vec<String>,
    /// Mint coturn `use-auth-secret` credentials for the TURN URLs with this secret.
    pub turn_secret: Option<String>,
}

/// One group of mock streamers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamerSpec {
    /// The first id; more streamers get `<id>1`, `<id>2`, …
    pub id: String,
    pub count: usize,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u32,
    /// Three simulcast layers towards SFUs.
    pub simulcast: bool,
    /// Echo UIInteractions back as Responses.
    pub respond: bool,
    /// Send an Opus audio track too.
    pub audio: bool,
    /// Log each decoded input message.
    pub print_input: bool,
    /// Video codecs offered, most preferred first (`h264`, `vp8`, `vp9`,
    /// `av1`); empty: every codec the build encodes, H.264 first.
    pub codecs: Vec<String>,
}

impl Default for StreamerSpec {
    fn default() -> Self {
        StreamerSpec {
            id: "DefaultStreamer".into(),
            count: 1,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 2_000_000,
            simulcast: false,
            respond: false,
            audio: false,
            print_input: false,
            codecs: Vec::new(),
        }
    }
}

/// A group of mock players.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlayerGroup {
    /// The streamer (or SFU id) to watch; `None` = the only one listed.
    pub streamer: Option<String>,
    pub count: usize,
    /// `layerPreference` (spatial, temporal), for players of an SFU.
    pub layer: Option<(i64, i64)>,
    /// Input messages per second on the data channel.
    pub input_rate: f64,
    /// Measure data-channel round trips.
    pub latency_test: bool,
    /// Rejoin when the streamer goes away and comes back.
    pub reconnect: bool,
    /// The answer's video codec order (`--codec-preference`); empty: Epic's
    /// frontend's default (H.264 first).
    pub codec_preference: Vec<String>,
    /// The group's network, as `mock-player --impair` takes it
    /// (`"delay=40ms,jitter=10ms,loss=2%,rate=8mbit"`); absent: clean.
    pub impair: Option<String>,
    /// Ask for retransmissions of lost packets (`false`: `--no-nack`).
    pub nack: bool,
}

impl Default for PlayerGroup {
    fn default() -> Self {
        PlayerGroup {
            streamer: None,
            count: 1,
            layer: None,
            input_rate: 0.0,
            latency_test: false,
            reconnect: true,
            codec_preference: Vec::new(),
            impair: None,
            nack: true,
        }
    }
}

/// A whole local stack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    #[serde(default)]
    pub signalling: SignallingSpec,
    #[serde(default = "default_streamers")]
    pub streamers: Vec<StreamerSpec>,
    #[serde(default)]
    pub sfu: Option<SfuSpec>,
    #[serde(default)]
    pub players: Vec<PlayerGroup>,
}

fn default_streamers() -> Vec<StreamerSpec> {
    vec![StreamerSpec::default()]
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            signalling: SignallingSpec::default(),
            streamers: default_streamers(),
            sfu: None,
            players: Vec::new(),
        }
    }
}

impl Topology {
    /// Read a topology from a `.toml` or `.json` file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| TopologyError::Read { path: shown.clone(), source })?;
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            serde_json::from_str(&text).map_err(|e| TopologyError::Parse { path: shown, reason: e.to_string() })
        } else {
            toml::from_str(&text).map_err(|e| TopologyError::Parse { path: shown, reason: e.to_string() })
        }
    }

    /// Every streamer id this topology starts, in order.
    pub fn streamer_ids(&self) -> Vec<String> {
        self.streamers.iter().flat_map(|s| mock_streamer::numbered_ids(&s.id, s.count)).collect()
    }

    /// Bring the stack up on the current runtime: server first, then
    /// streamers, the SFU, and the players.
    pub async fn start(&self) -> Result<Running, TopologyError> {
        let nodes = self.signalling.nodes.max(1);
        let redis = if nodes > 1 {
            let redis = testkit::redis::RedisServer::start().await.ok_or_else(|| {
                TopologyError::Redis(format!(
                    "nodes = {nodes} needs redis-server (apt-get install redis-server): the nodes meet through Redis"
                ))
            })?;
            Some(redis)
        } else {
            None
        };
        let mut servers = Vec::new();
        for i in 0..nodes {
            let port = |p: u16| if p == 0 { 0 } else { p.saturating_add(100 * i as u16) };
            let server_config = ServerConfig {
                streamer_port: port(self.signalling.streamer_port),
                player_port: port(self.signalling.player_port),
                sfu_port: port(self.signalling.sfu_port),
                max_players: self.signalling.max_players,
                // Local runs (harness, e2e tests) use /api: keep REST on, as it was before it went off by default.
                rest_api: true,
                peer_options: match self.signalling.ice_servers.is_empty() {
                    true => serde_json::Map::new(),
                    false => serde_json::json!({"iceServers": [{"urls": self.signalling.ice_servers}]})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                },
                turn: self
                    .signalling
                    .turn_secret
                    .as_deref()
                    .and_then(signalling::config::Secret::new)
                    .map(|secret| signalling::config::TurnConfig { secret, ttl: Duration::from_secs(86_400) }),
                cluster: redis.as_ref().map(|r| signalling::cluster::ClusterConfig {
                    redis_url: r.url(),
                    node_id: node_name(i),
                    prefix: "ps".into(),
                }),
                ..ServerConfig::ephemeral()
            };
            servers.push(signalling::run(server_config).await?);
        }
        let server = servers.remove(0);
        let others = servers;
        // Streamers join the first node; the SFU and the players the last.
        let player_server = others.last().unwrap_or(&server);
        let streamer_url = format!("ws://{}", server.streamer_addr());
        let mut streamers = Vec::new();
        for spec in &self.streamers {
            streamers.push(mock_streamer::spawn(streamer_config(spec, &streamer_url)?)?);
        }
        let sfu = match &self.sfu {
            Some(spec) => {
                Some(crate::sfu::start(spec, player_server).await.map_err(|e| TopologyError::Sfu(e.to_string()))?)
            }
            None => None,
        };
        let cancel = CancellationToken::new();
        let mut players = Vec::new();
        let player_url = format!("ws://{}", player_server.player_addr());
        for group in &self.players {
            let config = Arc::new(player_config(group, &player_url)?);
            // One context per group: the answer's codec order and the network are the group's.
            let rtc = match group.count {
                0 => None,
                _ => Some(mock_player::rtc::RtcContext::for_config(&config, config.impair)?),
            };
            for _ in 0..group.count {
                players.push(RunningPlayer::spawn(players.len(), config.clone(), rtc.clone(), cancel.clone()));
            }
        }
        Ok(Running { server, others, redis, streamers, sfu, players, cancel })
    }
}

/// The mock-streamer settings for one group.
pub fn streamer_config(spec: &StreamerSpec, url: &str) -> Result<StreamerConfig, TopologyError> {
    let mut config = StreamerConfig { url: url.to_string(), ..StreamerConfig::default() };
    config.streamer_ids = mock_streamer::numbered_ids(&spec.id, spec.count);
    config.video.width = spec.width;
    config.video.height = spec.height;
    config.video.fps = spec.fps;
    config.video.bitrate_bps = spec.bitrate;
    config.simulcast = spec.simulcast;
    config.respond = spec.respond;
    config.audio = spec.audio;
    config.print_input = spec.print_input;
    if !spec.codecs.is_empty() {
        config.video_codecs = mock_streamer::config::codecs_from_names(&spec.codecs)?;
    }
    // Reconnect fast: in a local stack the server restarts in milliseconds.
    config.reconnect_min = Duration::from_millis(100);
    config.reconnect_max = Duration::from_secs(2);
    Ok(config)
}

/// The mock-player settings for one group (an `impair` string that does
/// not parse is an error naming what is wrong).
pub fn player_config(group: &PlayerGroup, url: &str) -> Result<PlayerConfig, TopologyError> {
    Ok(PlayerConfig {
        url: url.to_string(),
        streamer_id: group.streamer.clone(),
        layer: group.layer,
        reconnect: group.reconnect,
        input_rate: group.input_rate,
        latency_test: group.latency_test,
        codec_preference: group.codec_preference.clone(),
        impair: group.impair.as_deref().map(str::parse).transpose()?,
        nack: group.nack,
        ..PlayerConfig::default()
    })
}

/// One mock player running in the background.
pub struct RunningPlayer {
    pub live: Arc<Live>,
    pub task: JoinHandle<PlayerStats>,
}

impl RunningPlayer {
    pub fn spawn(
        index: usize,
        config: Arc<PlayerConfig>,
        rtc: Option<Arc<mock_player::rtc::RtcContext>>,
        cancel: CancellationToken,
    ) -> RunningPlayer {
        let live = Arc::new(Live::default());
        let player = Player::new(index, config, rtc, live.clone());
        let task = tokio::spawn(async move { player.run(cancel, None).await });
        RunningPlayer { live, task }
    }

    pub fn streaming(&self) -> bool {
        self.live.phase() == Phase::Streaming
    }
}

/// A stack that is up.
pub struct Running {
    /// The (first) signalling node: the streamers' node.
    pub server: ServerHandle,
    /// The other nodes of a cluster (`nodes` ≥ 2), in order.
    pub others: Vec<ServerHandle>,
    redis: Option<testkit::redis::RedisServer>,
    pub streamers: Vec<StreamerHandle>,
    pub sfu: Option<RunningSfu>,
    pub players: Vec<RunningPlayer>,
    /// Cancelled by [`Running::stop`]: players a test adds with it stop too.
    pub cancel: CancellationToken,
}

impl Running {
    /// The node players, the SFU and browsers use: the last one.
    pub fn player_server(&self) -> &ServerHandle {
        self.others.last().unwrap_or(&self.server)
    }

    /// Every signalling node, the first one first.
    pub fn servers(&self) -> impl Iterator<Item = &ServerHandle> {
        std::iter::once(&self.server).chain(self.others.iter())
    }

    /// Players currently streaming.
    pub fn players_streaming(&self) -> usize {
        self.players.iter().filter(|p| p.streaming()).count()
    }

    /// Stop players, SFU, streamers and server, in that order; returns the
    /// players' final stats.
    pub async fn stop(self) -> Vec<PlayerStats> {
        self.cancel.cancel();
        let mut stats = Vec::new();
        for p in self.players {
            if let Ok(s) = p.task.await {
                stats.push(s);
            }
        }
        if let Some(sfu) = self.sfu {
            sfu.stop().await;
        }
        for s in self.streamers {
            s.stop().await;
        }
        for node in self.others {
            node.shutdown().await;
        }
        self.server.shutdown().await;
        drop(self.redis);
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example topology shipped in `e2e/topologies/` parses.
    #[test]
    fn shipped_topologies_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("topologies dir") {
            let path = entry.expect("entry").path();
            let t = Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!t.streamer_ids().is_empty(), "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 2);
    }

    #[test]
    fn unknown_keys_are_refused_with_the_file_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[[streamers]]\nidd = \"x\"\n").expect("write");
        let err = Topology::load(&path).expect_err("unknown key");
        assert!(err.to_string().contains("bad.toml") && err.to_string().contains("idd"), "{err}");
    }
}
