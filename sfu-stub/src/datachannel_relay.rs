//! The data-channel relay: each player's channel through the SFU is paired
//! with a channel for that player on the streamer's peer connection, and
//! binary messages are copied both ways unchanged.
//!
//! Stream ids follow Epic's SFU: towards a player, `sendStreamId` is the id
//! the player sends on (the SFU receives on it) and `recvStreamId` the one
//! it receives on; the same holds for the streamer with `streamerDataChannels`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use webrtc::data_channel::{
    DataChannel, DataChannelEvent, RTCDataChannelInit, RTCDataChannelMessage, RTCDataChannelState,
};
use webrtc::peer_connection::PeerConnection;

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
    to_player: Option<Arc<dyn DataChannel>>,
    /// The SFU sends to the streamer (for this player) on this one.
    to_streamer: Option<Arc<dyn DataChannel>>,
    /// The streamer sends (for this player) on this one: kept so that it can be closed when
    /// the player leaves. It lives on the streamer's long-lived peer connection, and an open
    /// channel keeps its buffers (webrtc 0.17: a reader task and 64 KiB, ~47 KB per join,
    /// `bench churn --peer sfu`).
    from_streamer: Option<Arc<dyn DataChannel>>,
    /// Whether the target of each direction is open, by [`Direction::index`].
    open: [bool; 2],
    /// Held messages, by [`Direction::index`]. The streamer sends `Protocol`
    /// the moment its channel opens, which can be before the player's
    /// channel is open: dropping it would leave the player waiting forever.
    pending: [std::collections::VecDeque<RTCDataChannelMessage>; 2],
    /// A flush of that direction is under way (keeps messages in order).
    flushing: [bool; 2],
}

impl Link {
    fn target(&self, direction: Direction) -> Option<Arc<dyn DataChannel>> {
        match direction {
            Direction::ToStreamer => self.to_streamer.clone(),
            Direction::ToPlayer => self.to_player.clone(),
        }
    }

    /// The target of `direction`, if there is one and it is open.
    fn open_target(&self, direction: Direction) -> Option<Arc<dyn DataChannel>> {
        self.target(direction).filter(|_| self.open[direction.index()])
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

    fn opposite(self) -> Direction {
        match self {
            Direction::ToStreamer => Direction::ToPlayer,
            Direction::ToPlayer => Direction::ToStreamer,
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
        if let Some(dc) = from.as_ref().filter(|f| !to.as_ref().is_some_and(|t| Arc::ptr_eq(t, f))) {
            let _ = dc.close().await;
        }
        proto::rtc::drop_closed_channels(to.into_iter().chain(from).chain(link.to_player).collect());
    }

    /// Forget every player (the streamer is gone).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Open the player's negotiated channels on its peer connection (before
    /// the offer, so that the offer carries SCTP) and relay them. `opened`
    /// fires when they open, i.e. when the SCTP association with the player
    /// is up (negotiated channels need no handshake of their own).
    pub async fn open_player_side(
        self: &Arc<Self>,
        pc: &dyn PeerConnection,
        player_id: &str,
        opened: tokio::sync::oneshot::Sender<()>,
    ) -> Result<(), webrtc::error::Error> {
        let (from_player, to_player) = open_pair(pc, PLAYER_SEND_STREAM_ID, PLAYER_RECV_STREAM_ID).await?;
        self.lock().entry(player_id.to_string()).or_default().to_player = Some(to_player.clone());
        tokio::spawn(relay_pair(
            Arc::downgrade(self),
            player_id.to_string(),
            from_player,
            to_player,
            Direction::ToStreamer,
            Some(opened),
        ));
        Ok(())
    }

    /// Open the channels for `player_id` on the streamer's peer connection:
    /// the streamer sends on `streamer_send`, receives on `streamer_recv`.
    pub async fn open_streamer_side(
        self: &Arc<Self>,
        pc: &dyn PeerConnection,
        player_id: &str,
        streamer_send: u16,
        streamer_recv: u16,
    ) -> Result<(), webrtc::error::Error> {
        let (from_streamer, to_streamer) = open_pair(pc, streamer_send, streamer_recv).await?;
        {
            let mut links = self.lock();
            let link = links.entry(player_id.to_string()).or_default();
            link.to_streamer = Some(to_streamer.clone());
            link.from_streamer = Some(from_streamer.clone());
        }
        tokio::spawn(relay_pair(
            Arc::downgrade(self),
            player_id.to_string(),
            from_streamer,
            to_streamer,
            Direction::ToPlayer,
            None,
        ));
        Ok(())
    }

    /// `direction`'s target channel opened: send what was held for it.
    async fn on_open(&self, player_id: &str, direction: Direction) {
        if let Some(link) = self.lock().get_mut(player_id) {
            link.open[direction.index()] = true;
        }
        self.flush(player_id, direction).await;
    }

    async fn forward(&self, player_id: &str, direction: Direction, msg: RTCDataChannelMessage) {
        let i = direction.index();
        // Some(open) when the message was held.
        let held = {
            let mut links = self.lock();
            let Some(link) = links.get_mut(player_id) else {
                // The player is gone (removed while this was in flight).
                self.stats.dc_dropped.fetch_add(1, Relaxed);
                return;
            };
            let open = link.open_target(direction).is_some();
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
        let target = self.lock().get(player_id).and_then(|l| l.open_target(direction));
        if let Some(target) = target {
            self.send(target.as_ref(), player_id, direction, msg).await;
        }
    }

    /// Send the held messages of one direction, in order, once its channel
    /// is open. Only one flush per direction runs at a time.
    async fn flush(&self, player_id: &str, direction: Direction) {
        let i = direction.index();
        let target = {
            let mut links = self.lock();
            let Some(link) = links.get_mut(player_id) else { return };
            let Some(target) = link.open_target(direction) else { return };
            if link.flushing[i] {
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
                Some(msg) => self.send(target.as_ref(), player_id, direction, msg).await,
                None => return,
            }
        }
    }

    async fn send(&self, target: &dyn DataChannel, player_id: &str, direction: Direction, msg: RTCDataChannelMessage) {
        let sent = if msg.is_string {
            // Never turn a frame into another kind: text stays text.
            target.send_text(&String::from_utf8_lossy(&msg.data)).await
        } else {
            target.send(msg.data).await
        };
        match sent {
            Ok(()) => {
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

/// Relay one pair of channels of `player_id` until `from` or its connection
/// closes: messages read from `from` go `direction`; `to` (the same channel
/// when not split) is the target of the other direction, which opens when
/// `to` does (then `opened` fires). A task, not callbacks inside the
/// channels, holds the channels, and it holds the relay weakly.
async fn relay_pair(
    relay: Weak<DataChannelRelay>,
    player_id: String,
    from: Arc<dyn DataChannel>,
    to: Arc<dyn DataChannel>,
    direction: Direction,
    mut opened: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let split = !Arc::ptr_eq(&from, &to);
    let target_direction = direction.opposite();
    let on_open = |opened: &mut Option<tokio::sync::oneshot::Sender<()>>| {
        if let Some(opened) = opened.take() {
            let _ = opened.send(());
        }
        let (relay, player_id) = (relay.clone(), player_id.clone());
        async move {
            if let Some(relay) = relay.upgrade() {
                relay.on_open(&player_id, target_direction).await;
            }
        }
    };
    // A negotiated channel created once SCTP is up (all of the streamer side)
    // is open at once and announces no open event.
    if matches!(to.ready_state().await, Ok(RTCDataChannelState::Open)) {
        on_open(&mut opened).await;
    }
    let mut to_open = split;
    loop {
        let (event, from_to) = tokio::select! {
            e = from.poll() => (e, !split),
            e = to.poll(), if to_open => (e, true),
        };
        match event {
            Some(DataChannelEvent::OnOpen) if from_to => on_open(&mut opened).await,
            Some(DataChannelEvent::OnMessage(msg)) if !split || !from_to => match relay.upgrade() {
                Some(relay) => relay.forward(&player_id, direction, msg).await,
                None => break,
            },
            None | Some(DataChannelEvent::OnClose) if split && from_to => to_open = false,
            None | Some(DataChannelEvent::OnClose) => break,
            Some(_) => {}
        }
    }
    proto::rtc::drop_closed_channels(vec![from, to]);
}

/// Negotiated channels: the SFU receives on `remote_send` and sends on
/// `remote_recv` (one `datachannel` when they are equal).
async fn open_pair(
    pc: &dyn PeerConnection,
    remote_send: u16,
    remote_recv: u16,
) -> Result<(Arc<dyn DataChannel>, Arc<dyn DataChannel>), webrtc::error::Error> {
    let init = |id: u16| Some(RTCDataChannelInit { negotiated: Some(id), ..Default::default() });
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
