//! The SFU's signalling session (signalling.md §7): connect (and reconnect
//! with backoff), register as a streamer, subscribe to a streamer as a
//! player, and route every message to the upstream task or a player's task.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use proto::client::{connect_with, ClientOptions, SignallingReceiver, SignallingSender};
use proto::rtc::PeerSettings;
use proto::{Message, PROTOCOL_VERSION};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::SfuConfig;
use crate::datachannel_relay::{DataChannelRelay, PLAYER_RECV_STREAM_ID, PLAYER_SEND_STREAM_ID};
use crate::downstream::{run_downstream, DownstreamCommand, DownstreamParams};
use crate::events::{Internal, SfuEvent};
use crate::forwarder::{Forwarder, PlayerControl};
use crate::stats::SfuStats;
use crate::upstream::{run_upstream, UpstreamCommand, UpstreamParams};

/// What every session shares.
pub struct Shared {
    pub config: Arc<SfuConfig>,
    pub upstream_settings: PeerSettings,
    pub downstream_settings: PeerSettings,
    pub stats: Arc<SfuStats>,
    pub events: broadcast::Sender<SfuEvent>,
}

struct PlayerHandle {
    key: u64,
    commands: mpsc::UnboundedSender<DownstreamCommand>,
    control: Arc<PlayerControl>,
    cancel: CancellationToken,
}

struct UpstreamHandle {
    generation: u64,
    commands: mpsc::UnboundedSender<UpstreamCommand>,
    cancel: CancellationToken,
}

/// The state of one signalling connection.
struct Connection<'a> {
    shared: &'a Shared,
    tx: SignallingSender,
    internal_tx: mpsc::UnboundedSender<Internal>,
    tasks: JoinSet<()>,
    peer_options: Value,
    committed_id: Option<String>,
    subscribed: Option<String>,
    /// Our player id at the streamer (from its offer).
    own_player_id: Option<String>,
    upstream: Option<UpstreamHandle>,
    generation: u64,
    /// The forwarded tracks while media flows.
    media: Option<(Vec<Arc<Forwarder>>, Option<String>)>,
    streaming: bool,
    players: HashMap<String, PlayerHandle>,
    /// Players that arrived before media flowed.
    waiting: Vec<String>,
    relay: Arc<DataChannelRelay>,
    next_key: u64,
    /// Players whose data channels the current upstream connection opened.
    upstream_players: usize,
}

/// Run until `cancel`, reconnecting whenever the connection drops.
pub async fn run(shared: Shared, cancel: CancellationToken) {
    let config = shared.config.clone();
    let mut backoff = config.reconnect_min;
    let options = ClientOptions { ping_interval: config.ping_interval, ..ClientOptions::default() };
    while !cancel.is_cancelled() {
        let connected = tokio::select! {
            _ = cancel.cancelled() => break,
            c = connect_with(&config.url, options.clone()) => c,
        };
        match connected {
            Ok((tx, rx)) => {
                backoff = config.reconnect_min;
                shared.stats.signalling_connects.fetch_add(1, Relaxed);
                tracing::info!(url = %config.url, "signalling connected");
                run_connection(&shared, tx, rx, &cancel).await;
                if cancel.is_cancelled() {
                    break;
                }
                tracing::warn!("signalling connection lost; reconnecting");
                let _ = shared.events.send(SfuEvent::SignallingLost);
            }
            Err(e) => tracing::warn!(error = %e, "signalling connect failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.reconnect_max);
    }
}

async fn run_connection(shared: &Shared, tx: SignallingSender, mut rx: SignallingReceiver, cancel: &CancellationToken) {
    let (internal_tx, mut internal_rx) = mpsc::unbounded_channel();
    let mut c = Connection {
        shared,
        tx,
        internal_tx,
        tasks: JoinSet::new(),
        peer_options: Value::Object(Default::default()),
        committed_id: None,
        subscribed: None,
        own_player_id: None,
        upstream: None,
        generation: 0,
        media: None,
        streaming: false,
        players: HashMap::new(),
        waiting: Vec::new(),
        relay: DataChannelRelay::new(shared.stats.clone()),
        next_key: 0,
        upstream_players: 0,
    };
    let every = shared.config.list_interval;
    let mut relist = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                c.stop_streaming();
                c.tx.close();
                break;
            }
            m = rx.recv() => match m {
                Some(m) => c.on_message(m.message),
                None => break,
            },
            Some(event) = internal_rx.recv() => c.on_internal(event),
            Some(_) = c.tasks.join_next(), if !c.tasks.is_empty() => {}
            _ = relist.tick() => {
                if c.subscribed.is_none() && c.committed_id.is_some() {
                    let _ = c.tx.send(&Message::ListStreamers);
                }
            }
        }
    }
    c.drop_upstream();
    shared.stats.streaming.store(false, Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(3), async { while c.tasks.join_next().await.is_some() {} }).await;
}

impl Connection<'_> {
    fn config(&self) -> &SfuConfig {
        &self.shared.config
    }

    fn send(&self, m: &Message) {
        if let Err(e) = self.tx.send(m) {
            tracing::debug!(message = m.type_name(), error = %e, "not sent: signalling closed");
        }
    }

    fn event(&self, e: SfuEvent) {
        let _ = self.shared.events.send(e);
    }

    fn on_message(&mut self, m: Message) {
        match m {
            Message::Config { peer_connection_options, .. } => self.peer_options = peer_connection_options,
            Message::Identify => {
                self.send(&Message::EndpointId {
                    id: Some(self.config().id.clone()),
                    protocol_version: Some(PROTOCOL_VERSION.into()),
                });
                self.send(&Message::ListStreamers);
            }
            Message::EndpointIdConfirm { committed_id } => {
                tracing::info!(requested = %self.config().id, committed = %committed_id, "registered");
                self.event(SfuEvent::Registered { id: committed_id.clone() });
                self.committed_id = Some(committed_id);
            }
            Message::StreamerList { ids } => self.on_streamer_list(&ids),
            Message::SubscribeFailed { message } => {
                tracing::warn!(%message, "subscribe failed; will list again");
                self.subscribed = None;
            }
            Message::StreamerIdChanged { new_id } => {
                if self.subscribed.is_some() {
                    self.subscribed = Some(new_id);
                }
            }
            Message::Offer { sdp, player_id, scalability_mode, .. } => {
                self.on_streamer_offer(sdp, player_id, scalability_mode)
            }
            Message::IceCandidate { candidate, player_id } => {
                match player_id.as_deref().and_then(|id| self.players.get(id)) {
                    Some(player) => {
                        let _ = player.commands.send(DownstreamCommand::Candidate(candidate));
                    }
                    None => match &self.upstream {
                        Some(up) => {
                            let _ = up.commands.send(UpstreamCommand::Candidate(candidate));
                        }
                        None => tracing::debug!("candidate with no peer connection dropped"),
                    },
                }
            }
            Message::Answer { sdp, player_id: Some(player_id), .. } => match self.players.get(&player_id) {
                Some(player) => {
                    let _ = player.commands.send(DownstreamCommand::Answer(sdp));
                }
                None => tracing::warn!(player = %player_id, "answer from an unknown player dropped"),
            },
            Message::PlayerConnected { player_id, .. } => self.on_player_connected(player_id),
            Message::PlayerDisconnected { player_id } => self.on_player_disconnected(&player_id),
            Message::DataChannelRequest { player_id: Some(player_id) } => {
                if self.players.contains_key(&player_id) {
                    self.send(&Message::PeerDataChannels {
                        player_id: Some(player_id),
                        send_stream_id: PLAYER_SEND_STREAM_ID,
                        recv_stream_id: PLAYER_RECV_STREAM_ID,
                    });
                } else {
                    tracing::warn!(player = %player_id, "dataChannelRequest from an unknown player dropped");
                }
            }
            Message::PeerDataChannelsReady { player_id: Some(player_id) } => {
                match (&self.upstream, self.players.contains_key(&player_id)) {
                    (Some(up), true) => {
                        self.upstream_players += 1;
                        let _ = up.commands.send(UpstreamCommand::OpenChannels { player_id });
                    }
                    _ => {
                        tracing::warn!(player = %player_id, "peerDataChannelsReady with no streamer or player dropped")
                    }
                }
            }
            Message::LayerPreference { spatial_layer, temporal_layer, player_id: Some(player_id) } => {
                match self.players.get(&player_id) {
                    Some(player) => {
                        let layer = usize::try_from(spatial_layer.max(0)).unwrap_or(0);
                        tracing::info!(player = %player_id, spatial_layer, temporal_layer, "layer preference");
                        player.control.target.store(layer, Relaxed);
                    }
                    None => tracing::warn!(player = %player_id, "layerPreference from an unknown player dropped"),
                }
            }
            Message::StreamerDisconnected => {
                tracing::info!("the streamer disconnected");
                self.drop_upstream();
                self.subscribed = None;
                self.own_player_id = None;
                // The relist timer finds the streamer when it comes back.
                self.send(&Message::ListStreamers);
            }
            Message::Pong { .. } | Message::PlayerCount { .. } => {}
            other => tracing::debug!(message = other.type_name(), "ignored"),
        }
    }

    fn on_streamer_list(&mut self, ids: &[String]) {
        if self.subscribed.is_some() {
            return;
        }
        let own = [Some(self.config().id.as_str()), self.committed_id.as_deref()];
        let choice = match &self.config().streamer {
            Some(wanted) => ids.iter().find(|i| *i == wanted),
            None => ids.iter().find(|i| !own.contains(&Some(i.as_str()))),
        };
        let Some(streamer_id) = choice.cloned() else {
            tracing::debug!(?ids, "no streamer to subscribe to yet");
            return;
        };
        tracing::info!(streamer = %streamer_id, "subscribing");
        self.send(&Message::Subscribe { streamer_id: streamer_id.clone() });
        self.event(SfuEvent::Subscribed { streamer_id: streamer_id.clone() });
        self.subscribed = Some(streamer_id);
    }

    fn on_streamer_offer(&mut self, sdp: String, player_id: Option<String>, scalability_mode: Option<String>) {
        if self.upstream.is_some() {
            tracing::info!("a new offer from the streamer: starting over");
            self.drop_upstream();
        }
        if player_id.is_some() {
            self.own_player_id = player_id;
        }
        self.generation += 1;
        self.upstream_players = 0;
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let params = UpstreamParams {
            generation: self.generation,
            settings: self.shared.upstream_settings,
            config: self.shared.config.clone(),
            signal: self.tx.clone(),
            peer_options: self.peer_options.clone(),
            offer_sdp: sdp,
            scalability_mode,
            stats: self.shared.stats.clone(),
            relay: self.relay.clone(),
            events: self.internal_tx.clone(),
        };
        self.tasks.spawn(run_upstream(params, commands_rx, cancel.clone()));
        self.upstream = Some(UpstreamHandle { generation: self.generation, commands, cancel });
    }

    fn on_player_connected(&mut self, player_id: String) {
        if let Some(old) = self.players.remove(&player_id) {
            old.cancel.cancel();
        }
        if self.media.is_none() {
            tracing::info!(player = %player_id, "player waits for media");
            if !self.waiting.contains(&player_id) {
                self.waiting.push(player_id);
            }
            return;
        }
        self.start_player(player_id);
    }

    fn start_player(&mut self, player_id: String) {
        let Some((media, scalability_mode)) = self.media.clone() else { return };
        tracing::info!(player = %player_id, "offering to player");
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let control = PlayerControl::new(self.config().default_layer.unwrap_or(usize::MAX));
        self.next_key += 1;
        let params = DownstreamParams {
            player_id: player_id.clone(),
            key: self.next_key,
            settings: self.shared.downstream_settings,
            config: self.shared.config.clone(),
            signal: self.tx.clone(),
            peer_options: self.peer_options.clone(),
            media,
            scalability_mode: Some(scalability_mode.unwrap_or_else(|| "L1T1".into())),
            control: control.clone(),
            relay: self.relay.clone(),
            stats: self.shared.stats.clone(),
            internal: self.internal_tx.clone(),
            events: self.shared.events.clone(),
        };
        self.tasks.spawn(run_downstream(params, commands_rx, cancel.clone()));
        self.players.insert(player_id, PlayerHandle { key: self.next_key, commands, control, cancel });
    }

    fn on_player_disconnected(&mut self, player_id: &str) {
        self.waiting.retain(|p| p != player_id);
        if let Some(player) = self.players.remove(player_id) {
            tracing::info!(player = %player_id, "player disconnected");
            player.cancel.cancel();
            if let Some(up) = &self.upstream {
                let _ = up.commands.send(UpstreamCommand::PlayerGone { player_id: player_id.to_string() });
            }
            self.renew_upstream_if_due();
        }
    }

    /// With no player connected, renew an upstream connection that has
    /// carried `renew_upstream_after` players' data channels (see
    /// [`SfuConfig::renew_upstream_after`]): unsubscribe, and subscribe again
    /// for a new offer. Players arriving meanwhile wait for its media.
    fn renew_upstream_if_due(&mut self) {
        let after = self.config().renew_upstream_after;
        let idle = self.players.is_empty() && self.waiting.is_empty();
        if after == 0 || self.upstream_players < after || !idle || self.upstream.is_none() {
            return;
        }
        tracing::info!(players = self.upstream_players, "renewing the streamer connection (no player connected)");
        self.shared.stats.upstream_renewals.fetch_add(1, Relaxed);
        self.drop_upstream();
        if self.subscribed.take().is_some() {
            self.send(&Message::Unsubscribe);
        }
        self.send(&Message::ListStreamers);
    }

    fn on_internal(&mut self, event: Internal) {
        let current = self.upstream.as_ref().map(|u| u.generation);
        match event {
            Internal::MediaReady { generation, media, scalability_mode } if Some(generation) == current => {
                tracing::info!(tracks = media.len(), "media flows: startStreaming");
                self.media = Some((media, scalability_mode));
                self.streaming = true;
                self.shared.stats.streaming.store(true, Relaxed);
                self.send(&Message::StartStreaming);
                self.event(SfuEvent::Streaming);
                for player_id in std::mem::take(&mut self.waiting) {
                    self.start_player(player_id);
                }
            }
            Internal::MediaStalled { generation } if Some(generation) == current => {
                self.drop_players();
                self.media = None;
                self.stop_streaming();
            }
            Internal::UpstreamClosed { generation } if Some(generation) == current => {
                tracing::warn!("lost the streamer's peer connection: subscribing again");
                self.drop_upstream();
                if self.subscribed.take().is_some() {
                    self.send(&Message::Unsubscribe);
                }
                self.send(&Message::ListStreamers);
            }
            Internal::PlayerClosed { player_id, key } => {
                if self.players.get(&player_id).is_some_and(|p| p.key == key) {
                    // Its peer connection failed while it is still subscribed:
                    // let the server close it so that it can join again.
                    self.players.remove(&player_id);
                    if let Some(up) = &self.upstream {
                        let _ = up.commands.send(UpstreamCommand::PlayerGone { player_id: player_id.clone() });
                    }
                    tracing::warn!(player = %player_id, "player's peer connection ended: disconnectPlayer");
                    self.send(&Message::DisconnectPlayer {
                        player_id,
                        reason: Some("SFU peer connection failed".into()),
                    });
                    self.renew_upstream_if_due();
                }
            }
            _ => tracing::debug!("stale upstream event ignored"),
        }
    }

    fn stop_streaming(&mut self) {
        if self.streaming {
            self.streaming = false;
            self.shared.stats.streaming.store(false, Relaxed);
            self.send(&Message::StopStreaming);
            self.event(SfuEvent::StreamingStopped);
        }
    }

    fn drop_players(&mut self) {
        for (_, player) in self.players.drain() {
            player.cancel.cancel();
        }
        self.waiting.clear();
        self.relay.clear();
    }

    /// The streamer is gone: drop the players and the upstream, `stopStreaming`.
    fn drop_upstream(&mut self) {
        self.drop_players();
        self.media = None;
        if let Some(up) = self.upstream.take() {
            up.cancel.cancel();
        }
        self.stop_streaming();
    }
}
