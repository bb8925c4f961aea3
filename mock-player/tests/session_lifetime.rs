//! A player's peer session gives its connection back when it ends: nothing
//! the connection owns (its event handler) is kept alive by a reference
//! cycle through the handler, the data channel or its reader tasks.
//!
//! The remote side is a second webrtc 0.21 connection in the test that opens
//! a data channel and speaks first on it, as the streamer does.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mock_player::datachannel::{DcBehaviour, DcSession};
use mock_player::live::Live;
use mock_player::peer::{PeerEvent, PeerSession};
use mock_player::rtc::RtcContext;
use mock_player::rtc::{from_rtc_candidate, to_rtc_candidate};
use proto::datachannel::ToPlayer;
use proto::IceCandidate;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::DataChannelEvent;
use webrtc::peer_connection::{PeerConnectionEventHandler, RTCPeerConnectionIceEvent, RTCSessionDescription};

/// The remote side's handler: its local candidates, for the test to trickle.
struct RemoteCandidates(mpsc::UnboundedSender<IceCandidate>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for RemoteCandidates {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            if !init.candidate.is_empty() {
                let _ = self.0.send(from_rtc_candidate(init));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_session_frees_its_connection_and_handler() {
    let ctx = RtcContext::new(true).expect("webrtc context");
    let (remote_candidates_tx, mut remote_candidates) = mpsc::unbounded_channel();
    let remote = ctx
        .new_peer_connection(
            &Value::Null,
            Arc::new(RemoteCandidates(remote_candidates_tx)),
            Arc::default(),
            Arc::default(),
        )
        .await
        .expect("remote");
    let remote_channel = remote.create_data_channel("datachannel", None).await.expect("data channel");
    let offer = remote.create_offer(None).await.expect("offer");
    remote.set_local_description(offer.clone()).await.expect("local offer");

    // The handler holds the only sender of `events`: the channel closes when,
    // and only when, the connection has dropped its handler.
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let dc = DcSession::new(DcBehaviour { input_rate: 0.0, latency_test: false }, cancel.clone());
    let session = PeerSession::new(ctx.clone(), &Value::Null, events_tx, Arc::new(Live::default()), dc.clone(), cancel)
        .await
        .expect("session");
    let answer = session.answer(&offer.sdp).await.expect("answer");
    remote.set_remote_description(RTCSessionDescription::answer(answer).expect("answer SDP")).await.expect("remote");

    // The remote side speaks first once its channel is open, as the streamer does.
    let speaker = tokio::spawn(async move {
        while let Some(event) = remote_channel.poll().await {
            if matches!(event, DataChannelEvent::OnOpen) {
                remote_channel.send(BytesMut::from(&ToPlayer::protocol().encode()[..])).await.expect("send Protocol");
            }
        }
    });

    // Trickle both ways until the player answered `Protocol`.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dc.stats().sent < 2 {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => panic!("no data channel in 10 s: {:?}", dc.stats()),
            Some(c) = remote_candidates.recv() => session.add_candidate(c).await.expect("remote candidate"),
            Some(e) = events.recv() => match e {
                PeerEvent::LocalCandidate(c) => remote.add_ice_candidate(to_rtc_candidate(&c)).await.expect("candidate"),
                PeerEvent::Failed(why) => panic!("peer failed: {why}"),
                _ => {}
            },
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let stats = dc.stats();
    assert!(stats.protocol_received && stats.sent >= 2, "{stats:?}");
    assert_eq!(stats.channels, vec!["datachannel".to_string()]);

    session.close().await;
    drop(session);
    let freed = tokio::time::timeout(Duration::from_secs(5), async { while events.recv().await.is_some() {} }).await;
    assert!(freed.is_ok(), "the closed session's connection still holds its handler");
    remote.close().await.expect("close remote");
    speaker.await.expect("the remote channel's reader ends with its connection");
}
