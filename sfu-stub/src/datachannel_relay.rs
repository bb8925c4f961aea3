//! The data-channel relay: each player's channel through the SFU is paired
//! with a channel for that player on the streamer's peer connection, and
//! binary messages are copied both ways unchanged.
//!
//! Stream ids follow Epic's SFU: towards a player, `sendStreamId` is the id
//! the player sends on (the SFU receives on it) and `recvStreamId` the one
//! it receives on; the same holds for the streamer with `streamerDataChannels`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::data_channel::data_channel_message::DataChannelMessage;
use webrtc::data_channel::data_channel_state::RTCDataChannelState;
use webrtc::data_channel::RTCDataChannel;
use webrtc::peer_connection::RTCPeerConnection;

use crate::stats::SfuStats;

/// The stream ids of a player's channels on its own peer connection.
pub const PLAYER_SEND_STREAM_ID: u16 = 2;
pub const PLAYER_RECV_STREAM_ID: u16 = 3;

/// First stream id used for players' channels on the streamer's connection
/// (clear of the streamer's own `datachannel`).
pub const FIRST_STREAMER_STREAM_ID: u16 = 100;

/// Messages held per direction while the channel they go to is missing or
/// not open yet, at most this many (then the oldest are dropped, counted).
const PENDING_MAX: usize = 256;

#[derive(Default)]
struct Link {
    /// The SFU sends to the player on this one.
    to_player: Option<Arc<RTCDataChannel>>,
    /// The SFU sends to the streamer (for this player) on this one.
    to_streamer: Option<Arc<RTCDataChannel>>,
    /// The streamer sends (for this player) on this one: kept so that it can be closed when
    /// the player leaves. It lives on the streamer's long-lived peer connection, and an open
    /// channel keeps its reader task and a 64 KiB buffer (measured: ~47 KB per join, `bench
    /// churn --peer sfu`).
    from_streamer: Option<Arc<RTCDataChannel>>,
    /// Held messages, by [`Direction::index`]. The streamer sends `Protocol`
    /// the moment its channel opens, which can be before the player's
    /// channel is open: dropping it would leave the player waiting forever.
    pending: [std::collections::VecDeque<DataChannelMessage>; 2],
    /// A flush of that direction is under way (keeps messages in order).
    flushing: [bool; 2],
}

impl Link {
    fn target(&self, direction: Direction) -> Option<Arc<RTCDataChannel>> {
        match direction {
            Direction::ToStreamer => self.to_streamer.clone(),
            Direction::ToPlayer => self.to_player.clone(),
        }
    }
}

/// Every player's pair of channels.
#[derive(Default)]
pub struct DataChannelRelay {
    links: Mutex<HashMap<String, Link>>,
    stats: Arc<SfuStats>,
}

/// Which way a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToStreamer,
    ToPlayer,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToStreamer => 0,
            Direction::ToPlayer => 1,
        }
    }
}

impl DataChannelRelay {
    pub fn new(stats: Arc<SfuStats>) -> Arc<Self> {
        Arc::new(DataChannelRelay { links: Mutex::new(HashMap::new()), stats })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Link>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget a player; its streamer-side channels (both directions) are closed.
    pub async fn remove(&self, player_id: &str) {
        let Some(link) = self.lock().remove(player_id) else { return };
        let (to, from) = (link.to_streamer, link.from_streamer);
        if let Some(dc) = &to {
            let _ = dc.close().await;
        }
        if let Some(dc) = from.filter(|f| !to.as_ref().is_some_and(|t| Arc::ptr_eq(t, f))) {
            let _ = dc.close().await;
        }
    }

    /// Forget every player (the streamer is gone).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Open the player's negotiated channels on its peer connection (before
    /// the offer, so that the offer carries SCTP) and wire them. `opened`
    /// fires when they open, i.e. when the SCTP association with the player
    /// is up (negotiated channels need no handshake of their own).
    pub async fn open_player_side(
        self: &Arc<Self>,
        pc: &RTCPeerConnection,
        player_id: &str,
        opened: tokio::sync::oneshot::Sender<()>,
    ) -> Result<Vec<Arc<RTCDataChannel>>, webrtc::Error> {
        let (from_player, to_player) = open_pair(pc, PLAYER_SEND_STREAM_ID, PLAYER_RECV_STREAM_ID).await?;
        self.lock().entry(player_id.to_string()).or_default().to_player = Some(to_player.clone());
        self.wire(&from_player, player_id, Direction::ToStreamer);
        self.flush_on_open(&to_player, player_id, Direction::ToPlayer, Some(opened));
        Ok(vec![from_player, to_player])
    }

    /// Open the channels for `player_id` on the streamer's peer connection:
    /// the streamer sends on `streamer_send`, receives on `streamer_recv`.
    pub async fn open_streamer_side(
        self: &Arc<Self>,
        pc: &RTCPeerConnection,
        player_id: &str,
        streamer_send: u16,
        streamer_recv: u16,
    ) -> Result<(), webrtc::Error> {
        let (from_streamer, to_streamer) = open_pair(pc, streamer_send, streamer_recv).await?;
        {
            let mut links = self.lock();
            let link = links.entry(player_id.to_string()).or_default();
            link.to_streamer = Some(to_streamer.clone());
            link.from_streamer = Some(from_streamer.clone());
        }
        self.wire(&from_streamer, player_id, Direction::ToPlayer);
        self.flush_on_open(&to_streamer, player_id, Direction::ToStreamer, None);
        Ok(())
    }

    fn wire(self: &Arc<Self>, from: &Arc<RTCDataChannel>, player_id: &str, direction: Direction) {
        let relay = Arc::downgrade(self);
        let player_id = player_id.to_string();
        from.on_message(Box::new(move |msg: DataChannelMessage| {
            let relay = relay.clone();
            let player_id = player_id.clone();
            Box::pin(async move {
                if let Some(relay) = relay.upgrade() {
                    relay.forward(&player_id, direction, msg).await;
                }
            })
        }));
    }

    /// When `target` opens, send what was held for it.
    /// On `target`'s open: flush what was held for it, then fire `opened`.
    /// (A channel has one open handler: this is it.)
    fn flush_on_open(
        self: &Arc<Self>,
        target: &Arc<RTCDataChannel>,
        player_id: &str,
        direction: Direction,
        opened: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let relay = Arc::downgrade(self);
        let player_id = player_id.to_string();
        target.on_open(Box::new(move || {
            if let Some(opened) = opened {
                let _ = opened.send(());
            }
            Box::pin(async move {
                if let Some(relay) = relay.upgrade() {
                    relay.flush(&player_id, direction).await;
                }
            })
        }));
    }

    async fn forward(&self, player_id: &str, direction: Direction, msg: DataChannelMessage) {
        let i = direction.index();
        // Some(open) when the message was held.
        let held = {
            let mut links = self.lock();
            let Some(link) = links.get_mut(player_id) else {
                // The player is gone (removed while this was in flight).
                self.stats.dc_dropped.fetch_add(1, Relaxed);
                return;
            };
            let open = link.target(direction).is_some_and(|t| t.ready_state() == RTCDataChannelState::Open);
            // Behind held messages, or with nowhere open to go: hold it.
            if !open || !link.pending[i].is_empty() || link.flushing[i] {
                if link.pending[i].len() >= PENDING_MAX {
                    link.pending[i].pop_front();
                    self.stats.dc_dropped.fetch_add(1, Relaxed);
                    tracing::debug!(player = %player_id, ?direction, "data-channel hold full; oldest message dropped");
                }
                link.pending[i].push_back(msg.clone());
                Some(open)
            } else {
                None
            }
        };
        match held {
            Some(true) => return self.flush(player_id, direction).await,
            Some(false) => return,
            None => {}
        }
        let target = self.lock().get(player_id).and_then(|l| l.target(direction));
        if let Some(target) = target {
            self.send(&target, player_id, direction, msg).await;
        }
    }

    /// Send the held messages of one direction, in order, once its channel
    /// is open. Only one flush per direction runs at a time.
    async fn flush(&self, player_id: &str, direction: Direction) {
        let i = direction.index();
        let target = {
            let mut links = self.lock();
            let Some(link) = links.get_mut(player_id) else { return };
            let Some(target) = link.target(direction) else { return };
            if link.flushing[i] || target.ready_state() != RTCDataChannelState::Open {
                return;
            }
            link.flushing[i] = true;
            target
        };
        loop {
            let next = {
                let mut links = self.lock();
                let Some(link) = links.get_mut(player_id) else { return };
                let next = link.pending[i].pop_front();
                if next.is_none() {
                    link.flushing[i] = false;
                }
                next
            };
            match next {
                Some(msg) => self.send(&target, player_id, direction, msg).await,
                None => return,
            }
        }
    }

    async fn send(&self, target: &RTCDataChannel, player_id: &str, direction: Direction, msg: DataChannelMessage) {
        let sent = if msg.is_string {
            // Never turn a frame into another kind: text stays text.
            target.send_text(String::from_utf8_lossy(&msg.data).into_owned()).await
        } else {
            target.send(&Bytes::clone(&msg.data)).await
        };
        match sent {
            Ok(_) => {
                let counter = match direction {
                    Direction::ToStreamer => &self.stats.dc_to_streamer,
                    Direction::ToPlayer => &self.stats.dc_to_player,
                };
                counter.fetch_add(1, Relaxed);
            }
            Err(e) => {
                self.stats.dc_dropped.fetch_add(1, Relaxed);
                tracing::debug!(player = %player_id, ?direction, error = %e, "data-channel relay send failed");
            }
        }
    }
}

/// Negotiated channels: the SFU receives on `remote_send` and sends on
/// `remote_recv` (one `datachannel` when they are equal).
async fn open_pair(
    pc: &RTCPeerConnection,
    remote_send: u16,
    remote_recv: u16,
) -> Result<(Arc<RTCDataChannel>, Arc<RTCDataChannel>), webrtc::Error> {
    let init = |id: u16| Some(RTCDataChannelInit { ordered: Some(true), negotiated: Some(id), ..Default::default() });
    if remote_send == remote_recv {
        let dc = pc.create_data_channel("datachannel", init(remote_send)).await?;
        Ok((dc.clone(), dc))
    } else {
        // Labels as the remote end names them.
        let from_remote = pc.create_data_channel("send-datachannel", init(remote_send)).await?;
        let to_remote = pc.create_data_channel("recv-datachannel", init(remote_recv)).await?;
        Ok((from_remote, to_remote))
    }
}
