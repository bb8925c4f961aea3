//! The signalling session of one streamer: connect (and reconnect with
//! backoff), register its id, and route player messages to peer tasks.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use proto::client::{connect_with, ClientOptions, SignallingReceiver, SignallingSender};
use proto::{Message, PROTOCOL_VERSION};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::canned::canned_offer;
use crate::config::StreamerConfig;
use crate::events::StreamerEvent;
use crate::peer::{run_peer, PeerCommand, PeerParams, PeerShared};

struct PeerHandle {
    commands: mpsc::UnboundedSender<PeerCommand>,
    cancel: CancellationToken,
}

/// One streamer's signalling session.
pub struct Session {
    pub index: usize,
    pub id: String,
    pub config: Arc<StreamerConfig>,
    pub shared: Arc<PeerShared>,
    pub cancel: CancellationToken,
}

impl Session {
    /// Run until cancelled, reconnecting whenever the connection drops.
    pub async fn run(self) {
        let mut backoff = self.config.reconnect_min;
        let options = ClientOptions { ping_interval: self.config.ping_interval, ..ClientOptions::default() };
        while !self.cancel.is_cancelled() {
            let connected = tokio::select! {
                _ = self.cancel.cancelled() => break,
                c = connect_with(&self.config.url, options.clone()) => c,
            };
            match connected {
                Ok((tx, rx)) => {
                    backoff = self.config.reconnect_min;
                    self.shared.stats.signalling_connects.fetch_add(1, Relaxed);
                    tracing::info!(streamer = %self.id, url = %self.config.url, "signalling connected");
                    self.run_connection(tx, rx).await;
                    if self.cancel.is_cancelled() {
                        break;
                    }
                    tracing::warn!(streamer = %self.id, "signalling connection lost; reconnecting");
                    let _ = self.shared.events.send(StreamerEvent::SignallingLost { streamer: self.index });
                }
                Err(e) => {
                    tracing::warn!(streamer = %self.id, error = %e, "signalling connect failed")
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.reconnect_max);
        }
    }

    async fn run_connection(&self, tx: SignallingSender, mut rx: SignallingReceiver) {
        let mut peers: HashMap<String, PeerHandle> = HashMap::new();
        let mut tasks = JoinSet::new();
        let mut peer_options = Value::Object(Default::default());
        let streamer = self.index;
        loop {
            let incoming = tokio::select! {
                _ = self.cancel.cancelled() => { tx.close(); break; }
                m = rx.recv() => match m { Some(m) => m, None => break },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            };
            match incoming.message {
                Message::Config { peer_connection_options, .. } => peer_options = peer_connection_options,
                Message::Identify => {
                    let _ = tx.send(&Message::EndpointId {
                        id: Some(self.id.clone()),
                        protocol_version: Some(PROTOCOL_VERSION.into()),
                    });
                }
                Message::EndpointIdConfirm { committed_id } => {
                    tracing::info!(requested = %self.id, committed = %committed_id, "registered");
                    self.shared.stats.set_committed_id(&committed_id);
                    let _ = self.shared.events.send(StreamerEvent::Registered { streamer, id: committed_id });
                }
                Message::PlayerConnected { player_id, data_channel, sfu } => {
                    tracing::info!(player = %player_id, data_channel, sfu, "player connected");
                    self.shared.stats.players_connected_total.fetch_add(1, Relaxed);
                    let _ = self
                        .shared
                        .events
                        .send(StreamerEvent::PlayerConnected { streamer, player_id: player_id.clone() });
                    if let Some(old) = peers.remove(&player_id) {
                        old.cancel.cancel();
                    }
                    if self.config.signalling_only {
                        let _ = tx.send(&Message::Offer {
                            sdp: canned_offer(),
                            player_id: Some(player_id),
                            sfu: None,
                            multiplex: None,
                            scalability_mode: None,
                        });
                        continue;
                    }
                    let (commands, commands_rx) = mpsc::unbounded_channel();
                    let cancel = self.cancel.child_token();
                    let params = PeerParams {
                        shared: self.shared.clone(),
                        signal: tx.clone(),
                        peer_options: peer_options.clone(),
                        player_id: player_id.clone(),
                        data_channel,
                        sfu,
                    };
                    tasks.spawn(run_peer(params, commands_rx, cancel.clone()));
                    peers.insert(player_id, PeerHandle { commands, cancel });
                }
                Message::PlayerDisconnected { player_id } => {
                    tracing::info!(player = %player_id, "player disconnected");
                    let _ = self
                        .shared
                        .events
                        .send(StreamerEvent::PlayerDisconnected { streamer, player_id: player_id.clone() });
                    if let Some(peer) = peers.remove(&player_id) {
                        peer.cancel.cancel();
                    }
                }
                Message::Answer { sdp, player_id: Some(player_id), .. } => {
                    forward(&peers, &player_id, PeerCommand::Answer(sdp), self.config.signalling_only)
                }
                Message::IceCandidate { candidate, player_id: Some(player_id) } => {
                    forward(&peers, &player_id, PeerCommand::Candidate(candidate), self.config.signalling_only)
                }
                Message::StreamerDataChannels { sfu_id, player_id, send_stream_id, recv_stream_id } => {
                    let Some(sfu_id) = sfu_id else {
                        tracing::warn!("streamerDataChannels without sfuId dropped");
                        continue;
                    };
                    let command =
                        PeerCommand::SfuDataChannels { player_id, send_id: send_stream_id, recv_id: recv_stream_id };
                    forward(&peers, &sfu_id, command, self.config.signalling_only);
                }
                Message::Pong { .. } => {}
                other => tracing::debug!(message = other.type_name(), "ignored"),
            }
        }
        // The server drops our players with us: close every peer connection.
        for peer in peers.values() {
            peer.cancel.cancel();
        }
        drop(peers);
        let _ =
            tokio::time::timeout(Duration::from_secs(3), async { while tasks.join_next().await.is_some() {} }).await;
    }
}

fn forward(peers: &HashMap<String, PeerHandle>, player_id: &str, command: PeerCommand, signalling_only: bool) {
    if signalling_only {
        return; // Accepted and dropped: there is no peer connection.
    }
    match peers.get(player_id) {
        Some(peer) => {
            let _ = peer.commands.send(command);
        }
        None => tracing::warn!(player = %player_id, "message for an unknown player dropped"),
    }
}
