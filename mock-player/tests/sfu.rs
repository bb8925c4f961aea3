//! A player through the SFU: `offer` with `sfu: true`, `dataChannelRequest`,
//! pre-negotiated channels from `peerDataChannels`, `peerDataChannelsReady`.

mod common;

use std::time::Duration;

use common::{player_url, run_to_end, server, streamer, wait_until};
use mock_player::PlayerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_streams_through_sfu() {
    let srv = server().await;
    let st = streamer(&srv, "S1").await;
    let sfu = sfu_stub::spawn(sfu_stub::SfuConfig {
        url: format!("ws://{}", srv.sfu_addr()),
        id: "SFU".into(),
        streamer: Some("S1".into()),
        list_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .expect("sfu starts");
    let mut events = sfu.events();
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match events.recv().await {
                Ok(sfu_stub::SfuEvent::Streaming) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("sfu events ended: {e}"),
            }
        }
    })
    .await
    .expect("SFU streams in time");

    let cfg = PlayerConfig {
        url: player_url(&srv),
        streamer_id: Some("SFU".into()),
        layer: Some((0, 0)),
        input_rate: 10.0,
        latency_test: true,
        duration: Some(Duration::from_secs(4)),
        expect_frames: Some(30),
        join_timeout: Duration::from_secs(15),
        ..Default::default()
    };
    let stats = run_to_end(cfg).await;
    assert!(stats.passed, "{:?}", stats.error);
    assert!(stats.sfu, "the offer did not say sfu: true");
    assert!(stats.dc.opened, "{:?}", stats.dc);
    assert!(
        stats.dc.channels.iter().any(|c| c.contains("negotiated")),
        "expected pre-negotiated channels: {:?}",
        stats.dc.channels
    );
    assert!(stats.dc.protocol_received, "{:?}", stats.dc);
    wait_until(Duration::from_secs(5), "input relayed to the streamer", || {
        st.input_counts().get("MouseMove").copied().unwrap_or(0) > 0
    })
    .await;
    sfu.stop().await;
    st.stop().await;
    srv.shutdown().await;
}
