//! Section 7: an SFU between a streamer and players, over real sockets.

mod common;

use common::*;
use serde_json::json;

async fn sfu(h: &signalling::ServerHandle, id: &str) -> (Client, String) {
    let mut sfu = Client::connect(h.sfu_addr(), "sfu").await;
    sfu.expect_type("config").await;
    sfu.expect_type("identify").await;
    sfu.send(json!({"type": "endpointId", "id": id})).await;
    let id = sfu.expect_type("endpointIdConfirm").await["committedId"].as_str().unwrap().to_string();
    (sfu, id)
}

#[tokio::test]
async fn the_whole_sfu_flow() {
    let h = default_server().await;
    let (mut s, s_id) = Client::streamer(&h, "Streamer").await;
    let (mut sfu, sfu_id) = sfu(&h, "SFU").await;

    // Unlisted to players until it streams; an SFU asking sees every id.
    let mut p = Client::player(&h).await;
    p.send(json!({"type": "listStreamers"})).await;
    assert_eq!(p.recv().await, json!({"type": "streamerList", "ids": ["Streamer"]}));
    sfu.send(json!({"type": "listStreamers"})).await;
    assert_eq!(sfu.recv().await, json!({"type": "streamerList", "ids": ["Streamer", "SFU"]}));

    // The SFU subscribes like a player: the streamer sees sfu:true.
    sfu.send(json!({"type": "subscribe", "streamerId": s_id})).await;
    let connected = s.recv().await;
    let sfu_pid = connected["playerId"].as_str().unwrap().to_string();
    assert_eq!(connected, json!({"type": "playerConnected", "playerId": sfu_pid, "dataChannel": true, "sfu": true}));
    // Streamer → SFU offer (kept), SFU → streamer answer (SFU's id added).
    s.send(json!({"type": "offer", "sdp": "up", "playerId": sfu_pid})).await;
    assert_eq!(sfu.recv().await, json!({"type": "offer", "sdp": "up", "playerId": sfu_pid}));
    sfu.send_raw(r#"{"type":"answer","sdp":"up-answer"}"#).await;
    assert_eq!(s.recv_text().await, format!(r#"{{"type":"answer","sdp":"up-answer","playerId":"{sfu_pid}"}}"#));
    // An answer naming its own playerId keeps it.
    sfu.send_raw(r#"{"type":"answer","playerId":"Custom","sdp":"a2"}"#).await;
    assert_eq!(s.recv_text().await, r#"{"type":"answer","playerId":"Custom","sdp":"a2"}"#);

    sfu.send(json!({"type": "startStreaming"})).await;
    sfu.expect_nothing_pending().await;
    p.send(json!({"type": "listStreamers"})).await;
    assert_eq!(p.recv().await, json!({"type": "streamerList", "ids": ["Streamer", "SFU"]}));

    // A player subscribes to the SFU.
    p.send(json!({"type": "subscribe", "streamerId": sfu_id})).await;
    let pc = sfu.expect_type("playerConnected").await;
    let pid = pc["playerId"].as_str().unwrap().to_string();
    assert_eq!(pc["sfu"], false);
    // SFU → player offer: playerId removed, other fields kept.
    sfu.send_raw(&format!(r#"{{"type":"offer","sdp":"down","playerId":"{pid}","sfu":true,"scalabilityMode":"L1T3"}}"#))
        .await;
    assert_eq!(p.recv_text().await, r#"{"type":"offer","sdp":"down","sfu":true,"scalabilityMode":"L1T3"}"#);
    // Data channels: request → peerDataChannels → ready → streamerDataChannels (+sfuId).
    p.send(json!({"type": "dataChannelRequest"})).await;
    assert_eq!(sfu.recv().await, json!({"type": "dataChannelRequest", "playerId": pid}));
    sfu.send_raw(&format!(r#"{{"type":"peerDataChannels","playerId":"{pid}","sendStreamId":2,"recvStreamId":3}}"#))
        .await;
    assert_eq!(p.recv_text().await, r#"{"type":"peerDataChannels","sendStreamId":2,"recvStreamId":3}"#);
    p.send(json!({"type": "peerDataChannelsReady"})).await;
    assert_eq!(sfu.recv().await, json!({"type": "peerDataChannelsReady", "playerId": pid}));
    sfu.send_raw(&format!(r#"{{"type":"streamerDataChannels","playerId":"{pid}","sendStreamId":3,"recvStreamId":2}}"#))
        .await;
    assert_eq!(
        s.recv_text().await,
        format!(
            r#"{{"type":"streamerDataChannels","playerId":"{pid}","sendStreamId":3,"recvStreamId":2,"sfuId":"{sfu_pid}"}}"#
        )
    );
    // layerPreference: player → SFU with its id; streamer → every SFU subscribed.
    p.send(json!({"type": "layerPreference", "spatialLayer": 2, "temporalLayer": 0})).await;
    assert_eq!(
        sfu.recv().await,
        json!({"type": "layerPreference", "spatialLayer": 2, "temporalLayer": 0, "playerId": pid})
    );
    s.send_raw(&format!(r#"{{"type":"layerPreference","spatialLayer":0,"temporalLayer":1,"playerId":"{sfu_pid}"}}"#))
        .await;
    assert_eq!(sfu.recv().await["spatialLayer"], 0);

    // stopStreaming: unlisted, its players closed, the SFU told of each.
    sfu.send(json!({"type": "stopStreaming"})).await;
    assert_eq!(p.recv().await, json!({"type": "streamerDisconnected"}));
    p.expect_close(1000).await;
    assert_eq!(sfu.recv().await, json!({"type": "playerDisconnected", "playerId": pid}));
    let mut p2 = Client::player(&h).await;
    p2.send(json!({"type": "listStreamers"})).await;
    assert_eq!(p2.recv().await, json!({"type": "streamerList", "ids": ["Streamer"]}));

    // The SFU leaving is a player leaving for its streamer.
    drop(sfu);
    assert_eq!(s.recv().await, json!({"type": "playerDisconnected", "playerId": sfu_pid}));
    h.shutdown().await;
}
