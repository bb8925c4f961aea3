//! The streamer against a fake signalling server and webrtc-rs receivers.

mod common;

use std::sync::atomic::Ordering;

use common::{nal_types, start, wait_event, within};
use mock_streamer::datachannel::initial_settings_json;
use mock_streamer::video::VideoSettings;
use mock_streamer::{StreamerConfig, StreamerEvent};
use openh264::formats::YUVSource;
use proto::datachannel::{ToPlayer, ToStreamer};
use testkit::receiver::{negotiated_channel as negotiated, send_binary};

fn config(width: u32, height: u32) -> StreamerConfig {
    StreamerConfig {
        video: VideoSettings { width, height, fps: 30, bitrate_bps: 800_000 },
        respond: true,
        print_input: true,
        ping_interval: None,
        ..StreamerConfig::default()
    }
}

fn decode_dims(frames: &[&[u8]]) -> (usize, usize) {
    let mut decoder = openh264::decoder::Decoder::new().expect("decoder");
    for f in frames {
        if let Ok(Some(yuv)) = decoder.decode(f) {
            return yuv.dimensions();
        }
    }
    panic!("no frame decoded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_player_gets_video_and_the_data_channel_protocol() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("mock_streamer=debug,input=info").try_init();
    let cfg = config(640, 360);
    let (fps, bitrate) = (cfg.video.fps, cfg.video.bitrate_bps);
    let mut h = start(cfg, 1).await;
    let mut events = h.events.resubscribe();
    wait_event(
        &mut h.events,
        "Registered",
        |e| matches!(e, StreamerEvent::Registered { id, .. } if id == "DefaultStreamer"),
    )
    .await;
    assert_eq!(h.handle.committed_ids(), vec![Some("DefaultStreamer".to_string())]);

    let p = &mut h.players[0];
    p.wait_connected().await;

    // Loopback only: every candidate the streamer offered is on 127.0.0.1.
    {
        let cands = h.streamer_candidates.lock().unwrap().clone();
        assert!(!cands.is_empty(), "streamer trickled candidates");
        for c in &cands {
            assert!(c.contains(" 127.0.0.1 ") && c.contains(" udp "), "non-loopback candidate {c}");
        }
        let offer = h.offers.lock().unwrap()[0].clone();
        assert!(offer.contains("a=msid:"), "offer carries msid");
        assert!(offer.contains("H264/90000") && offer.contains("profile-level-id=42e01f"));
        assert!(offer.contains("m=application"), "offer has the data channel");
    }

    // Video: the first access unit is a keyframe with SPS, PPS and IDR, and decodes.
    let first = p.next_frame().await;
    let types = nal_types(&first);
    assert!(types.contains(&7) && types.contains(&8) && types.contains(&5), "first frame NAL types {types:?}");
    let second = p.next_frame().await;
    assert!(!nal_types(&second).contains(&5), "second frame is a P frame");
    assert_eq!(decode_dims(&[&first, &second]), (640, 360));
    assert_eq!(p.stream_id.lock().unwrap().as_deref(), Some(mock_streamer::peer::STREAM_ID));

    // Data channel: Protocol first, byte-exactly.
    let dc = within("the data channel", &mut p.dc).await.expect("dc");
    let protocol = p.next_dc_message().await;
    assert_eq!(protocol, ToPlayer::protocol().encode());
    wait_event(&mut events, "DataChannelOpen", |e| matches!(e, StreamerEvent::DataChannelOpen { .. })).await;

    // The frontend's handshake.
    let send = |m: ToStreamer| {
        let dc = dc.clone();
        async move { send_binary(dc.as_ref(), &m.encode()).await }
    };
    send(ToStreamer::RequestInitialSettings).await;
    send(ToStreamer::RequestQualityControl).await;
    assert_eq!(p.next_dc_message().await, ToPlayer::InitialSettings(initial_settings_json(fps, bitrate)).encode());
    assert_eq!(p.next_dc_message().await, vec![0, 1], "QualityControlOwnership(true)");

    // Echoes and latency tests.
    send(ToStreamer::UIInteraction(r#"{"hello":"wörld"}"#.into())).await;
    assert_eq!(p.next_dc_message().await, ToPlayer::Response(r#"{"hello":"wörld"}"#.into()).encode());
    send(ToStreamer::TestEcho("ping".into())).await;
    assert_eq!(p.next_dc_message().await, ToPlayer::TestEcho("ping".into()).encode());
    send(ToStreamer::DataChannelLatencyTest(r#"{"Seq":3,"FillResponseSize":5,"Filler":""}"#.into())).await;
    match ToPlayer::decode(&p.next_dc_message().await) {
        Ok(ToPlayer::DataChannelLatencyTest(s)) => {
            let v: serde_json::Value = serde_json::from_str(&s).expect("json");
            assert_eq!(v["Seq"], 3);
            assert_eq!(v["Filler"], "AAAAA");
            assert!(v["SentTimestamp"].as_u64() >= v["ReceivedTimestamp"].as_u64());
        }
        other => panic!("expected DataChannelLatencyTest, got {other:?}"),
    }
    send(ToStreamer::LatencyTest(r#"{"StartTime":1}"#.into())).await;
    match ToPlayer::decode(&p.next_dc_message().await) {
        Ok(ToPlayer::LatencyTest(s)) => {
            let v: serde_json::Value = serde_json::from_str(&s).expect("json");
            let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {s}"));
            assert!(f("ReceiptTimeMs") <= f("PreCaptureTimeMs"), "{s}");
            assert!(f("PreCaptureTimeMs") <= f("PostEncodeTimeMs"), "{s}");
            assert!(f("PostEncodeTimeMs") <= f("TransmissionTimeMs"), "{s}");
            assert!(f("EncodeMs") >= 0.0 && f("CaptureToSendMs") >= 0.0);
        }
        other => panic!("expected LatencyTest, got {other:?}"),
    }

    // Input is decoded and counted.
    let inputs = [
        ToStreamer::MouseDown { button: 0, x: 33423, y: 14418 },
        ToStreamer::MouseUp { button: 0, x: 33423, y: 14418 },
        ToStreamer::MouseMove { x: 1, y: 2, delta_x: -3, delta_y: 4 },
        ToStreamer::KeyDown { key_code: 65, is_repeat: false },
        ToStreamer::KeyUp { key_code: 65 },
        ToStreamer::MouseMove { x: 5, y: 6, delta_x: 1, delta_y: 1 },
    ];
    for m in inputs {
        send(m).await;
    }
    // The keyframe request is counted as well: wait until all 13 arrived.
    send(ToStreamer::IFrameRequest).await;
    wait_event(&mut events, "the IFrameRequest to be counted", |e| {
        matches!(e, StreamerEvent::Input { name: "IFrameRequest", .. })
    })
    .await;
    let counts = h.handle.input_counts();
    let c = |k: &str| counts.get(k).copied().unwrap_or(0);
    assert_eq!(c("MouseDown"), 1);
    assert_eq!(c("MouseUp"), 1);
    assert_eq!(c("MouseMove"), 2);
    assert_eq!(c("KeyDown"), 1);
    assert_eq!(c("KeyUp"), 1);
    assert_eq!(c("RequestInitialSettings"), 1);
    assert_eq!(c("RequestQualityControl"), 1);
    assert_eq!(c("UIInteraction"), 1);
    assert_eq!(c("IFrameRequest"), 1);
    assert_eq!(c("Invalid"), 0);

    // IFrameRequest brings a new keyframe.
    within("a keyframe after IFrameRequest", async {
        loop {
            if nal_types(&p.next_frame().await).contains(&5) {
                break;
            }
        }
    })
    .await;

    let stats = h.stop().await;
    let s = &stats.streamers[0];
    assert!(s.frames_encoded >= 3);
    assert!(s.keyframes_encoded >= 2);
    assert!(s.totals.frames_sent >= 3 && s.totals.bytes_sent > 0 && s.totals.keyframes_sent >= 2, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_players_on_one_streamer_all_receive_video() {
    let mut h = start(config(320, 240), 20).await;
    for p in h.players.iter_mut() {
        p.wait_connected().await;
    }
    for p in h.players.iter_mut() {
        // Every player starts at a keyframe that decodes, then keeps receiving.
        let first = p.next_frame().await;
        assert!(nal_types(&first).contains(&5), "{} first frame is a keyframe", p.id);
        assert_eq!(decode_dims(&[&first]), (320, 240), "{}", p.id);
        for _ in 0..5 {
            p.next_frame().await;
        }
        assert!(p.rtp_packets.load(Ordering::Relaxed) >= 6);
    }
    let snapshot = h.handle.stats();
    let s = &snapshot.streamers[0];
    assert_eq!(s.players.len(), 20);
    assert!(s.players.iter().all(|p| p.frames_sent >= 6), "{:?}", s.players);
    // Encoded once for everyone: far fewer frames encoded than sent.
    assert!(s.frames_encoded * 5 < s.totals.frames_sent, "{s:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfu_gets_pre_negotiated_data_channels_per_player() {
    let mut h = common::start_with(config(320, 240), vec![("SFU0".into(), true)]).await;
    let p = &mut h.players[0];
    p.wait_connected().await;
    // The offer's own channel works as usual (and proves SCTP is up).
    assert_eq!(p.next_dc_message().await, ToPlayer::protocol().encode());

    // One shared channel (send == recv) for Player7.
    let (shared_dc, mut shared_rx) = negotiated(p.pc.as_ref(), "datachannel", 10).await;
    // Split channels for Player8: the streamer sends on 12 and receives on 13.
    let (_to_sfu, mut from_streamer) = negotiated(p.pc.as_ref(), "send-datachannel", 12).await;
    let (to_streamer, _unused) = negotiated(p.pc.as_ref(), "recv-datachannel", 13).await;
    for (player, send, recv) in [("Player7", 10, 10), ("Player8", 12, 13)] {
        h.to_streamer
            .send(proto::Message::StreamerDataChannels {
                sfu_id: Some("SFU0".into()),
                player_id: player.into(),
                send_stream_id: send,
                recv_stream_id: recv,
            })
            .expect("relay");
    }
    let first = within("Protocol on the shared SFU channel", shared_rx.recv()).await.expect("msg");
    assert_eq!(first, ToPlayer::protocol().encode());
    let first = within("Protocol on the SFU send channel", from_streamer.recv()).await.expect("msg");
    assert_eq!(first, ToPlayer::protocol().encode());

    send_binary(shared_dc.as_ref(), &ToStreamer::RequestQualityControl.encode()).await;
    assert_eq!(within("reply on shared", shared_rx.recv()).await, Some(vec![0, 1]));
    send_binary(to_streamer.as_ref(), &ToStreamer::TestEcho("x".into()).encode()).await;
    assert_eq!(
        within("reply on the send channel", from_streamer.recv()).await,
        Some(ToPlayer::TestEcho("x".into()).encode())
    );
    // Counted per player, not per SFU.
    let snapshot = h.handle.stats();
    let players = &snapshot.streamers[0].players;
    let inputs = |id: &str| players.iter().find(|p| p.player_id == id).map(|p| p.input_messages);
    assert_eq!(inputs("Player7"), Some(1));
    assert_eq!(inputs("Player8"), Some(1));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_sends_three_layers_to_an_sfu_only() {
    let cfg = StreamerConfig { simulcast: true, ..config(640, 360) };
    let mut h = common::start_with(cfg, vec![("SFU0".into(), true), ("Player1".into(), false)]).await;
    // Both offers have been answered once both peers are connected.
    h.players[0].wait_connected().await;
    h.players[1].wait_connected().await;
    {
        let offers = h.offers.lock().unwrap().clone();
        assert_eq!(offers.len(), 2);
        let sfu_offer = offers.iter().find(|o| o.contains("a=simulcast")).expect("an offer with simulcast");
        for rid in ["f", "h", "q"] {
            assert!(sfu_offer.contains(&format!("a=rid:{rid} send")), "rid {rid} in {sfu_offer}");
        }
        assert_eq!(offers.iter().filter(|o| o.contains("a=simulcast")).count(), 1, "only the SFU gets simulcast");
    }
    let sfu = &mut h.players[0];
    // A keyframe that decodes at the layer's size, on every rid.
    let mut seen = std::collections::BTreeMap::new();
    within("keyframes on all three layers", async {
        while seen.len() < 3 {
            let (rid, frame) = sfu.rid_frames.recv().await.expect("frames");
            if !seen.contains_key(&rid) && nal_types(&frame).contains(&5) {
                seen.insert(rid, decode_dims(&[&frame]));
            }
        }
    })
    .await;
    assert_eq!(seen.get("f"), Some(&(640, 360)));
    assert_eq!(seen.get("h"), Some(&(320, 180)));
    assert_eq!(seen.get("q"), Some(&(160, 90)));
    // A plain player gets one full-resolution stream.
    let p = &mut h.players[1];
    let first = p.next_frame().await;
    assert_eq!(decode_dims(&[&first]), (640, 360));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_is_an_opus_tone() {
    if !mock_streamer::opus::available() {
        eprintln!("libopus not installed here: --audio cannot run; skipping");
        return;
    }
    let cfg = StreamerConfig { audio: true, ..config(320, 240) };
    let mut h = start(cfg, 1).await;
    let p = &mut h.players[0];
    p.wait_connected().await;
    assert!(h.offers.lock().unwrap()[0].contains("opus/48000/2"), "offer has Opus");
    // Video still works next to audio.
    assert!(nal_types(&p.next_frame().await).contains(&5));
    // Decode 0.5 s of audio: a 440 Hz tone, i.e. about 440 rising zero
    // crossings per second in the left channel, and real energy.
    let mut decoder = mock_streamer::opus::OpusDecoder::new(48_000, 2).expect("decoder");
    let mut left = Vec::new();
    while left.len() < 24_000 {
        let payload = within("audio packets", p.audio.recv()).await.expect("audio");
        let pcm = decoder.decode(&payload).expect("decodes");
        left.extend(pcm.chunks_exact(2).map(|s| f64::from(s[0])));
    }
    let tail = &left[4_800..]; // skip the codec's start-up
    let rms = (tail.iter().map(|v| v * v).sum::<f64>() / tail.len() as f64).sqrt();
    let crossings = tail.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    let hz = crossings as f64 / (tail.len() as f64 / 48_000.0);
    assert!(rms > 1000.0, "tone energy, rms {rms}");
    assert!((hz - 440.0).abs() < 20.0, "tone frequency {hz} Hz");
    let stats = h.stop().await;
    assert!(stats.streamers[0].audio_frames_encoded >= 25);
}
