//! A fake signalling server for one streamer under test, with webrtc-rs
//! receive-only players: it greets and registers the streamer, announces the
//! players, relays offers, answers and candidates, and hands each player's
//! video frames, audio and data-channel messages to the test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use proto::rtc::{event_channel, to_rtc_candidate, IcePolicy, Interceptors, PeerEvent, PeerSettings};
use proto::{Incoming, Message};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

/// How long each step may take (WebRTC on a loaded machine is slow).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Await `f` or fail after [`TIMEOUT`] with `what`.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    crate::within(TIMEOUT, what, f).await
}

/// One simulated player: a receive-only webrtc-rs peer.
pub struct TestPlayer {
    pub id: String,
    pub pc: Arc<dyn PeerConnection>,
    /// Complete access units (Annex-B), in arrival order.
    pub frames: mpsc::UnboundedReceiver<Vec<u8>>,
    /// Complete access units of simulcast tracks, with their rid.
    pub rid_frames: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    /// Opus payloads of the audio track, if any.
    pub audio: mpsc::UnboundedReceiver<Vec<u8>>,
    /// Binary data-channel messages, in arrival order.
    pub dc_messages: mpsc::UnboundedReceiver<Vec<u8>>,
    pub dc: oneshot::Receiver<Arc<dyn DataChannel>>,
    pub connected: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    /// The remote track's stream id (msid), once it arrived.
    pub stream_id: Arc<Mutex<Option<String>>>,
    pub rtp_packets: Arc<std::sync::atomic::AtomicU64>,
}

struct PlayerWiring {
    offer_tx: mpsc::UnboundedSender<String>,
    candidate_tx: mpsc::UnboundedSender<proto::IceCandidate>,
}

/// The fake server's side: its players and what it saw.
pub struct FakeServer {
    pub players: Vec<TestPlayer>,
    pub streamer_candidates: Arc<Mutex<Vec<String>>>,
    pub offers: Arc<Mutex<Vec<String>>>,
    pub committed_id: String,
    pub to_streamer: mpsc::UnboundedSender<Message>,
    pub relay: tokio::task::JoinHandle<()>,
}

/// Accept one streamer on `listener`, register it (it must ask for
/// `requested_id`), and connect `player_specs` players to it.
pub async fn serve(listener: TcpListener, requested_id: &str, player_specs: Vec<(String, bool)>) -> FakeServer {
    let (tcp, _) = within("the streamer to connect", listener.accept()).await.expect("accept");
    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("ws handshake");
    let send = |m: Message| WsMessage::text(m.to_json());
    ws.send(send(Message::config(serde_json::json!({})))).await.expect("send config");
    ws.send(send(Message::Identify)).await.expect("send identify");
    let id = within("endpointId", async {
        loop {
            let frame = ws.next().await.expect("socket open").expect("frame");
            if let Ok(incoming) = Incoming::parse(frame.to_text().unwrap_or_default().as_bytes()) {
                if let Message::EndpointId { id, .. } = incoming.message {
                    return id.unwrap_or_default();
                }
            }
        }
    })
    .await;
    assert_eq!(id, requested_id);
    let committed_id = id.clone();
    ws.send(send(Message::EndpointIdConfirm { committed_id: id })).await.expect("send confirm");

    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
    let to_streamer = out_tx.clone();
    let mut players = Vec::new();
    let mut wiring = HashMap::new();
    for (id, sfu) in player_specs {
        let (player, wire) = new_player(id.clone(), out_tx.clone()).await;
        players.push(player);
        wiring.insert(id.clone(), wire);
        ws.send(send(Message::PlayerConnected { player_id: id, data_channel: true, sfu }))
            .await
            .expect("send playerConnected");
    }

    let streamer_candidates = Arc::new(Mutex::new(Vec::new()));
    let offers = Arc::new(Mutex::new(Vec::new()));
    let (cands, offs) = (streamer_candidates.clone(), offers.clone());
    let relay = tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = ws.next() => {
                    let Some(Ok(frame)) = frame else { break };
                    let Ok(text) = frame.to_text() else { continue };
                    let Ok(incoming) = Incoming::parse(text.as_bytes()) else { continue };
                    match incoming.message {
                        Message::Offer { sdp, player_id: Some(p), .. } => {
                            offs.lock().unwrap().push(sdp.clone());
                            if let Some(w) = wiring.get(&p) { let _ = w.offer_tx.send(sdp); }
                        }
                        Message::IceCandidate { candidate, player_id: Some(p) } => {
                            cands.lock().unwrap().push(candidate.candidate.clone());
                            if let Some(w) = wiring.get(&p) { let _ = w.candidate_tx.send(candidate); }
                        }
                        Message::Ping { time } => {
                            let _ = ws.send(send(Message::Pong { time: time.unwrap_or(0) })).await;
                        }
                        _ => {}
                    }
                }
                out = out_rx.recv() => {
                    let Some(m) = out else { break };
                    if ws.send(send(m)).await.is_err() { break; }
                }
            }
        }
    });
    FakeServer { players, streamer_candidates, offers, committed_id, to_streamer, relay }
}

/// Where a player's received media and messages go.
#[derive(Clone)]
struct Sinks {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    rid_frames: mpsc::UnboundedSender<(String, Vec<u8>)>,
    audio: mpsc::UnboundedSender<Vec<u8>>,
    dc_messages: mpsc::UnboundedSender<Vec<u8>>,
    stream_id: Arc<Mutex<Option<String>>>,
    rtp_packets: Arc<std::sync::atomic::AtomicU64>,
}

async fn new_player(id: String, out: mpsc::UnboundedSender<Message>) -> (TestPlayer, PlayerWiring) {
    let (handler, mut events) = event_channel();
    let settings = PeerSettings::answerer(IcePolicy::LOOPBACK, Interceptors::Receiver);
    let pc = proto::rtc::new_peer_connection(&settings, &serde_json::json!({}), handler).await.expect("pc");
    let (frames_tx, frames) = mpsc::unbounded_channel();
    let (rid_tx, rid_frames) = mpsc::unbounded_channel();
    let (audio_tx, audio) = mpsc::unbounded_channel();
    let (dc_tx, dc_messages) = mpsc::unbounded_channel();
    let (dc_handle_tx, dc) = oneshot::channel();
    let (state_tx, connected) = mpsc::unbounded_channel();
    let stream_id = Arc::new(Mutex::new(None));
    let rtp_packets = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sinks = Sinks {
        frames: frames_tx,
        rid_frames: rid_tx,
        audio: audio_tx,
        dc_messages: dc_tx,
        stream_id: stream_id.clone(),
        rtp_packets: rtp_packets.clone(),
    };

    {
        let (out, id) = (out.clone(), id.clone());
        let mut dc_handle_tx = Some(dc_handle_tx);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    PeerEvent::LocalCandidate(candidate) => {
                        let _ = out.send(Message::IceCandidate { candidate, player_id: Some(id.clone()) });
                    }
                    PeerEvent::State(s) => {
                        let _ = state_tx.send(s);
                    }
                    PeerEvent::Track(track) => {
                        tokio::spawn(read_track(track, sinks.clone()));
                    }
                    PeerEvent::DataChannel(dc) => {
                        if let Some(h) = dc_handle_tx.take() {
                            let _ = h.send(dc.clone());
                        }
                        tokio::spawn(forward_messages(dc, sinks.dc_messages.clone()));
                    }
                    PeerEvent::GatheringDone | PeerEvent::IceState(_) => {}
                }
            }
        });
    }

    let (offer_tx, mut offer_rx) = mpsc::unbounded_channel::<String>();
    let (candidate_tx, mut candidate_rx) = mpsc::unbounded_channel::<proto::IceCandidate>();
    let pc2 = pc.clone();
    let id2 = id.clone();
    tokio::spawn(async move {
        let Some(sdp) = offer_rx.recv().await else {
            return;
        };
        let offer = RTCSessionDescription::offer(sdp).expect("offer");
        pc2.set_remote_description(offer).await.expect("set offer");
        let answer = pc2.create_answer(None).await.expect("answer");
        pc2.set_local_description(answer.clone()).await.expect("set answer");
        let _ = out.send(Message::Answer {
            sdp: answer.sdp,
            player_id: Some(id2),
            min_bitrate_bps: None,
            max_bitrate_bps: None,
        });
        while let Some(c) = candidate_rx.recv().await {
            if !c.candidate.is_empty() {
                pc2.add_ice_candidate(to_rtc_candidate(&c)).await.expect("add candidate");
            }
        }
    });
    let player = TestPlayer { id, pc, frames, rid_frames, audio, dc_messages, dc, connected, stream_id, rtp_packets };
    (player, PlayerWiring { offer_tx, candidate_tx })
}

/// Audio: every payload. Video: depacketized H.264 access units, per rid
/// when simulcast (all of a track's encodings arrive on the one track).
async fn read_track(track: Arc<dyn TrackRemote>, sinks: Sinks) {
    *sinks.stream_id.lock().unwrap() = Some(track.stream_id().await);
    let audio = track.kind().await == RtpCodecKind::Audio;
    // Per SSRC: its rid ("" without simulcast), depacketizer and frame so far.
    let mut streams: HashMap<u32, (String, H264Packet, Vec<u8>)> = HashMap::new();
    while let Some(event) = track.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnOpen(init) => {
                let rid = init.rid.unwrap_or_default();
                streams.insert(init.ssrc, (rid, H264Packet::default(), Vec::new()));
                continue;
            }
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            _ => continue,
        };
        if audio {
            let _ = sinks.audio.send(packet.payload.to_vec());
            continue;
        }
        sinks.rtp_packets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ssrc = packet.header.ssrc;
        if let std::collections::hash_map::Entry::Vacant(slot) = streams.entry(ssrc) {
            // The rid lookup awaits, so it cannot run inside `or_insert_with`.
            let rid = track.rid(ssrc).await.unwrap_or_default();
            slot.insert((rid, H264Packet::default(), Vec::new()));
        }
        let Some((rid, depacketizer, frame)) = streams.get_mut(&ssrc) else { continue };
        if let Ok(nals) = depacketizer.depacketize(&packet.payload) {
            frame.extend_from_slice(&nals);
        }
        if packet.header.marker && !frame.is_empty() {
            let frame = std::mem::take(frame);
            if rid.is_empty() {
                let _ = sinks.frames.send(frame);
            } else {
                let _ = sinks.rid_frames.send((rid.clone(), frame));
            }
        }
    }
}

/// Forward a channel's messages until it or its connection closes.
async fn forward_messages(dc: Arc<dyn DataChannel>, to: mpsc::UnboundedSender<Vec<u8>>) {
    while let Some(event) = dc.poll().await {
        match event {
            DataChannelEvent::OnMessage(m) => {
                let _ = to.send(m.data.to_vec());
            }
            DataChannelEvent::OnClose => return,
            _ => {}
        }
    }
}

/// A pre-negotiated channel (`negotiated: id`) on `pc`, and its received
/// messages.
pub async fn negotiated_channel(
    pc: &dyn PeerConnection,
    label: &str,
    id: u16,
) -> (Arc<dyn DataChannel>, mpsc::UnboundedReceiver<Vec<u8>>) {
    let init = RTCDataChannelInit { negotiated: Some(id), ..Default::default() };
    let dc = pc.create_data_channel(label, Some(init)).await.expect("negotiated channel");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(forward_messages(dc.clone(), tx));
    (dc, rx)
}

/// Send a binary message on `dc`.
pub async fn send_binary(dc: &dyn DataChannel, bytes: &[u8]) {
    dc.send(BytesMut::from(bytes)).await.expect("data-channel send");
}

impl TestPlayer {
    pub async fn wait_connected(&mut self) {
        within(&format!("{} to connect", self.id), async {
            loop {
                match self.connected.recv().await {
                    Some(RTCPeerConnectionState::Connected) => return,
                    Some(RTCPeerConnectionState::Failed) => panic!("{} failed", self.id),
                    Some(_) => continue,
                    None => panic!("state channel closed"),
                }
            }
        })
        .await
    }

    pub async fn next_frame(&mut self) -> Vec<u8> {
        within(&format!("a video frame at {}", self.id), self.frames.recv()).await.expect("frames channel open")
    }

    pub async fn next_dc_message(&mut self) -> Vec<u8> {
        within(&format!("a data-channel message at {}", self.id), self.dc_messages.recv())
            .await
            .expect("dc channel open")
    }
}
