//! The SFU's own behaviour against the real signalling server and the real
//! mock-streamer (or a scripted one), with small scripted viewers, in-process,
//! WebRTC on loopback only: reconnecting, simulcast layers, the keyframe
//! cache, media stalls. Streamer → signalling → SFU → mock-player tests are in
//! `e2e/tests/sfu.rs`.
//!
//! The tests share two cores: they run one at a time (a global lock).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use proto::rtc::{event_channel, to_rtc_candidate, IcePolicy, Interceptors, PeerEvent, PeerSettings};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use sfu_stub::{SfuConfig, SfuEvent, SfuHandle};
use testkit::wait_until;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn server() -> signalling::ServerHandle {
    signalling::run(signalling::ServerConfig::ephemeral()).await.expect("signalling server starts")
}

async fn streamer(srv: &signalling::ServerHandle, id: &str, respond: bool) -> mock_streamer::StreamerHandle {
    streamer_with(srv, id, respond, false).await
}

async fn streamer_with(
    srv: &signalling::ServerHandle,
    id: &str,
    respond: bool,
    audio: bool,
) -> mock_streamer::StreamerHandle {
    let cfg = mock_streamer::StreamerConfig {
        url: format!("ws://{}", srv.streamer_addr()),
        streamer_ids: vec![id.to_string()],
        video: mock_streamer::video::VideoSettings { width: 320, height: 240, fps: 30, bitrate_bps: 300_000 },
        respond,
        audio,
        reconnect_min: Duration::from_millis(100),
        ..Default::default()
    };
    let handle = mock_streamer::spawn(cfg).expect("mock-streamer starts");
    let mut events = handle.events();
    testkit::next_event(&mut events, Duration::from_secs(10), "the streamer to register", |e| {
        matches!(e, mock_streamer::StreamerEvent::Registered { .. })
    })
    .await;
    handle
}

fn sfu(srv: &signalling::ServerHandle) -> SfuHandle {
    let cfg = SfuConfig {
        url: format!("ws://{}", srv.sfu_addr()),
        list_interval: Duration::from_millis(300),
        reconnect_min: Duration::from_millis(100),
        ..Default::default()
    };
    sfu_stub::spawn(cfg).expect("SFU starts")
}

/// Wait for an event matching `f`.
async fn wait_event(
    events: &mut broadcast::Receiver<SfuEvent>,
    within: Duration,
    what: &str,
    f: impl Fn(&SfuEvent) -> bool,
) {
    testkit::next_event(events, within, what, f).await;
}

/// Wait until the SFU has sent `startStreaming` and the server lists it
/// (players that list before that would not find it).
async fn wait_streaming(srv: &signalling::ServerHandle, events: &mut broadcast::Receiver<SfuEvent>, what: &str) {
    wait_event(events, Duration::from_secs(20), what, |e| *e == SfuEvent::Streaming).await;
    wait_until(Duration::from_secs(5), "the server to list the SFU", || {
        srv.snapshot().streamers.iter().any(|s| s.streamer_id == "SFU" && s.streaming)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfu_connects_late_and_reconnects_after_signalling_restart() {
    let _serial = SERIAL.lock().await;
    testkit::init_test_logs();
    // An SFU started before any server, then a server on that port: it
    // retries with backoff and registers once the server is there.
    let [port] = testkit::ports::free_ports().expect("a free port");
    let cfg = SfuConfig {
        url: format!("ws://127.0.0.1:{port}"),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        ..Default::default()
    };
    let sfu = sfu_stub::spawn(cfg).expect("SFU starts");
    let mut events = sfu.events();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server_cfg = signalling::ServerConfig { sfu_port: port, ..signalling::ServerConfig::ephemeral() };
    let srv = signalling::run(server_cfg).await.expect("server starts");
    wait_event(&mut events, Duration::from_secs(10), "registration", |e| matches!(e, SfuEvent::Registered { .. }))
        .await;
    assert_eq!(sfu.stats().signalling_connects, 1);

    // The server goes away and comes back on the same port: the SFU notices,
    // reconnects and registers again.
    srv.shutdown().await;
    wait_event(&mut events, Duration::from_secs(10), "the loss", |e| *e == SfuEvent::SignallingLost).await;
    let server_cfg = signalling::ServerConfig { sfu_port: port, ..signalling::ServerConfig::ephemeral() };
    let srv = signalling::run(server_cfg).await.expect("server restarts");
    wait_event(&mut events, Duration::from_secs(10), "registration again", |e| {
        matches!(e, SfuEvent::Registered { .. })
    })
    .await;
    assert_eq!(sfu.stats().signalling_connects, 2);
    sfu.stop().await;
    srv.shutdown().await;
}

/// A small receive-only player for the simulcast test: it reads the
/// resolution from every SPS it receives and counts sequence-number jumps.
struct Viewer {
    signal: proto::client::SignallingSender,
    /// Its video track, once it arrived (PLIs are sent on it).
    track: Arc<std::sync::Mutex<Option<Arc<dyn TrackRemote>>>>,
    ssrc: Arc<std::sync::atomic::AtomicU32>,
    resolution: tokio::sync::watch::Receiver<Option<(u32, u32)>>,
    jumps: Arc<std::sync::atomic::AtomicU64>,
    packets: Arc<std::sync::atomic::AtomicU64>,
    cancel: CancellationToken,
}

/// The SPS in an H.264 RTP payload (single NAL or STAP-A), if any.
fn sps_in(payload: &[u8]) -> Option<&[u8]> {
    let first = *payload.first()?;
    match first & 0x1f {
        7 => Some(payload),
        24 => {
            let mut i = 1;
            while i + 2 < payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[i], payload[i + 1]]));
                let nal = payload.get(i + 2..i + 2 + size)?;
                if nal.first().is_some_and(|b| b & 0x1f == 7) {
                    return Some(nal);
                }
                i += 2 + size;
            }
            None
        }
        _ => None,
    }
}

async fn viewer(srv: &signalling::ServerHandle, layer: Option<i64>) -> Viewer {
    viewer_with(srv, layer, None).await
}

/// Every RTP packet a viewer receives, with its arrival time.
type Tap = tokio::sync::mpsc::UnboundedSender<(std::time::Instant, Packet)>;

/// A viewer; with `tap`, each packet it receives is also sent there.
async fn viewer_with(srv: &signalling::ServerHandle, layer: Option<i64>, tap: Option<Tap>) -> Viewer {
    use proto::Message;
    use std::sync::atomic::AtomicU64;

    let (handler, mut events) = event_channel();
    let settings = PeerSettings::answerer(IcePolicy::LOOPBACK, Interceptors::Receiver);
    let pc = proto::rtc::new_peer_connection(&settings, &serde_json::json!({}), handler).await.expect("pc");
    let (signal, mut rx) = proto::client::connect(&format!("ws://{}", srv.player_addr())).await.expect("connect");
    let (res_tx, resolution) = tokio::sync::watch::channel(None);
    let res_tx = Arc::new(res_tx);
    let jumps = Arc::new(AtomicU64::new(0));
    let packets = Arc::new(AtomicU64::new(0));
    let cancel = CancellationToken::new();
    let ssrc = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let track_slot: Arc<std::sync::Mutex<Option<Arc<dyn TrackRemote>>>> = Arc::default();
    {
        let (jumps, packets, cancel, ssrc) = (jumps.clone(), packets.clone(), cancel.clone(), ssrc.clone());
        let (signal, track_slot) = (signal.clone(), track_slot.clone());
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    PeerEvent::LocalCandidate(candidate) => {
                        let _ = signal.send(&Message::IceCandidate { candidate, player_id: None });
                    }
                    PeerEvent::Track(track) => {
                        *track_slot.lock().unwrap() = Some(track.clone());
                        let reader = read_viewer_track(
                            track,
                            ssrc.clone(),
                            res_tx.clone(),
                            jumps.clone(),
                            packets.clone(),
                            tap.clone(),
                            cancel.clone(),
                        );
                        tokio::spawn(reader);
                    }
                    _ => {}
                }
            }
        });
    }
    signal.send(&Message::Subscribe { streamer_id: "SFU".into() }).expect("subscribe");
    let task_signal = signal.clone();
    let task_cancel = cancel.clone();
    tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                _ = task_cancel.cancelled() => break,
                m = rx.recv() => match m { Some(m) => m.message, None => break },
            };
            match m {
                Message::Offer { sdp, .. } => {
                    let Ok(offer) = RTCSessionDescription::offer(sdp) else { break };
                    if pc.set_remote_description(offer).await.is_err() {
                        break;
                    }
                    let Ok(answer) = pc.create_answer(None).await else { break };
                    if pc.set_local_description(answer.clone()).await.is_err() {
                        break;
                    }
                    let _ = task_signal.send(&Message::Answer {
                        sdp: answer.sdp,
                        player_id: None,
                        min_bitrate_bps: None,
                        max_bitrate_bps: None,
                    });
                    if let Some(l) = layer {
                        let _ = task_signal.send(&Message::LayerPreference {
                            spatial_layer: l,
                            temporal_layer: 0,
                            player_id: None,
                        });
                    }
                }
                Message::IceCandidate { candidate, .. } if !candidate.candidate.is_empty() => {
                    let _ = pc.add_ice_candidate(to_rtc_candidate(&candidate)).await;
                }
                _ => {}
            }
        }
        let _ = pc.close().await;
    });
    Viewer { signal, track: track_slot, ssrc, resolution, jumps, packets, cancel }
}

/// Read a viewer's track: resolution from each SPS, sequence-number jumps,
/// every packet to `tap`.
async fn read_viewer_track(
    track: Arc<dyn TrackRemote>,
    ssrc: Arc<std::sync::atomic::AtomicU32>,
    res_tx: Arc<tokio::sync::watch::Sender<Option<(u32, u32)>>>,
    jumps: Arc<std::sync::atomic::AtomicU64>,
    packets: Arc<std::sync::atomic::AtomicU64>,
    tap: Option<Tap>,
    cancel: CancellationToken,
) {
    let mut last: Option<u16> = None;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = track.poll() => e,
        };
        let p = match event {
            Some(TrackRemoteEvent::OnRtpPacket(p)) => p,
            Some(_) => continue,
            None => return,
        };
        ssrc.store(p.header.ssrc, Relaxed);
        packets.fetch_add(1, Relaxed);
        if let Some(tap) = &tap {
            let _ = tap.send((std::time::Instant::now(), p.clone()));
        }
        if let Some(prev) = last {
            let delta = p.header.sequence_number.wrapping_sub(prev);
            if delta > 100 && delta < 65_436 {
                jumps.fetch_add(1, Relaxed);
            }
        }
        last = Some(p.header.sequence_number);
        if let Some(sps) = sps_in(&p.payload) {
            if let Some(r) = sfu_stub::codec::h264_sps_resolution(sps) {
                res_tx.send_replace(Some(r));
            }
        }
    }
}

async fn wait_resolution(v: &mut Viewer, want: (u32, u32), what: &str) {
    let ok = tokio::time::timeout(Duration::from_secs(20), v.resolution.wait_for(|r| *r == Some(want))).await.is_ok();
    assert!(ok, "{what}: wanted {want:?}, have {:?}", *v.resolution.borrow());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_players_get_their_layers_and_switch() {
    let _serial = SERIAL.lock().await;
    testkit::init_test_logs();
    let srv = server().await;
    let cfg = mock_streamer::StreamerConfig {
        url: format!("ws://{}", srv.streamer_addr()),
        streamer_ids: vec!["S1".into()],
        video: mock_streamer::video::VideoSettings { width: 640, height: 480, fps: 30, bitrate_bps: 600_000 },
        simulcast: true,
        ..Default::default()
    };
    let st = mock_streamer::spawn(cfg).expect("mock-streamer starts");
    let sfu = sfu(&srv);
    let mut events = sfu.events();
    wait_streaming(&srv, &mut events, "startStreaming").await;

    let full = (640, 480);
    let half = (320, 240);
    let quarter = (160, 120);
    let mut low = viewer(&srv, Some(0)).await;
    let mut mid = viewer(&srv, Some(1)).await;
    let mut high = viewer(&srv, Some(2)).await;
    wait_resolution(&mut low, quarter, "layer 0").await;
    wait_resolution(&mut mid, half, "layer 1").await;
    wait_resolution(&mut high, full, "layer 2").await;

    // The low player changes its mind.
    low.signal
        .send(&proto::Message::LayerPreference { spatial_layer: 2, temporal_layer: 0, player_id: None })
        .expect("send");
    wait_resolution(&mut low, full, "after switching to layer 2").await;
    low.signal
        .send(&proto::Message::LayerPreference { spatial_layer: 1, temporal_layer: 0, player_id: None })
        .expect("send");
    wait_resolution(&mut low, half, "after switching to layer 1").await;
    let s = sfu.stats();
    assert!(s.layer_switches >= 2, "{s:?}");

    // A PLI from a player becomes a (rate-limited) keyframe request upstream.
    let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: mid.ssrc.load(Relaxed) };
    let mid_track = mid.track.lock().unwrap().clone().expect("the mid viewer's track");
    mid_track.write_rtcp(vec![Box::new(pli)]).await.expect("PLI sent");
    wait_until(Duration::from_secs(5), "the PLI to reach the SFU", || {
        let now = sfu.stats();
        now.player_plis >= 1 && now.keyframe_requests_wanted > s.keyframe_requests_wanted
    })
    .await;
    wait_until(Duration::from_secs(10), "packets at every viewer", || {
        [&low, &mid, &high].iter().all(|v| v.packets.load(Relaxed) > 100)
    })
    .await;
    println!("SFU: {}", sfu.stats().summary());
    for (name, v) in [("low", &low), ("mid", &mid), ("high", &high)] {
        // Layers have their own sequence numbers: the rewrite keeps them continuous.
        assert_eq!(v.jumps.load(Relaxed), 0, "{name}: sequence-number jumps");
        v.cancel.cancel();
    }
    assert_eq!(st.stats().streamers[0].players_connected_total, 1);
    sfu.stop().await;
    st.stop().await;
    srv.shutdown().await;
}

/// What decoding a viewer's H.264 RTP gave.
#[derive(Debug, Default)]
struct Decoded {
    pictures: usize,
    errors: usize,
    /// Sequence numbers that did not follow the previous packet's.
    gaps: usize,
    /// Frames whose timestamp was not after the previous frame's.
    ts_not_increasing: usize,
    /// NAL unit types of the first access unit.
    first_nals: Vec<u8>,
}

/// Depacketize (RFC 6184) and decode with OpenH264, frame by frame, from
/// the first packet on: what a browser's decoder would get.
fn decode_h264(packets: &[Packet]) -> Decoded {
    use rtc::rtp::codec::h264::H264Packet;
    use rtc::rtp::packetizer::Depacketizer;

    let mut out = Decoded::default();
    let mut decoder = openh264::decoder::Decoder::new().expect("decoder");
    let mut depacketizer = H264Packet::default();
    let mut frame: Vec<u8> = Vec::new();
    let mut frames = 0usize;
    let mut decode = |frame: &mut Vec<u8>, out: &mut Decoded| {
        if frame.is_empty() {
            return;
        }
        if frames == 0 {
            out.first_nals = mock_streamer::encoder::nal_types(frame);
        }
        frames += 1;
        match decoder.decode(frame) {
            Ok(Some(_)) => out.pictures += 1,
            Ok(None) => {}
            Err(_) => out.errors += 1,
        }
        frame.clear();
    };
    let mut prev: Option<&Packet> = None;
    for p in packets {
        if let Some(q) = prev {
            if p.header.sequence_number != q.header.sequence_number.wrapping_add(1) {
                out.gaps += 1;
            }
            if p.header.timestamp != q.header.timestamp {
                decode(&mut frame, &mut out);
                let delta = p.header.timestamp.wrapping_sub(q.header.timestamp);
                if delta == 0 || delta > u32::MAX / 2 {
                    out.ts_not_increasing += 1;
                }
            }
        }
        let nals = depacketizer.depacketize(&p.payload).expect("valid H.264 RTP payload");
        frame.extend_from_slice(&nals);
        if p.header.marker {
            decode(&mut frame, &mut out);
        }
        prev = Some(p);
    }
    decode(&mut frame, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_joining_after_the_keyframe_starts_at_once_from_the_cache_and_decodes() {
    let _serial = SERIAL.lock().await;
    testkit::init_test_logs();
    let srv = server().await;
    let st = streamer(&srv, "S1", false).await;
    // A keyframe request interval far longer than the test: a player that
    // needed a fresh keyframe after the first request would wait 30 s.
    let sfu = sfu_stub::spawn(SfuConfig {
        url: format!("ws://{}", srv.sfu_addr()),
        list_interval: Duration::from_millis(300),
        keyframe_interval: Duration::from_secs(30),
        keyframe_cache: Duration::from_secs(30),
        ..Default::default()
    })
    .expect("SFU starts");
    let mut events = sfu.events();
    wait_streaming(&srv, &mut events, "startStreaming").await;

    // The first player: its keyframe has gone by once it has seen one.
    let first = viewer(&srv, None).await;
    wait_until(Duration::from_secs(10), "the first player's keyframe", || first.resolution.borrow().is_some()).await;
    let before = sfu.stats();

    // The second player joins now, after that keyframe.
    let (tap, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let joined_at = std::time::Instant::now();
    let second = viewer_with(&srv, None, Some(tap)).await;
    let mut packets = Vec::new();
    let mut first_at = None;
    let mut frames = 0;
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some((at, p)) = rx.recv().await {
            first_at.get_or_insert(at);
            if packets.last().is_none_or(|q: &Packet| q.header.timestamp != p.header.timestamp) {
                frames += 1;
            }
            packets.push(p);
            if frames > 60 {
                break;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "the second player got {frames} frames in 10 s (keyframe interval 30 s)");
    let after = sfu.stats();
    println!("second player: first packet after {:?}; SFU: {}", first_at.map(|t| t - joined_at), after.summary());
    assert_eq!(after.keyframe_requests_sent, before.keyframe_requests_sent, "no keyframe was asked for it");
    assert!(after.cached_starts > before.cached_starts, "{after:?}");

    // What it got is a valid stream from its first packet: SPS, PPS and an
    // IDR first, then every frame decodes, no gap, timestamps increasing.
    let d = decode_h264(&packets);
    println!("{d:?}");
    assert!(d.first_nals.starts_with(&[7, 8]) && d.first_nals.contains(&5), "{d:?}");
    assert_eq!((d.gaps, d.errors, d.ts_not_increasing), (0, 0, 0), "{d:?}");
    assert!(d.pictures >= 60, "{d:?}");

    first.cancel.cancel();
    second.cancel.cancel();
    sfu.stop().await;
    st.stop().await;
    srv.shutdown().await;
}

/// A minimal streamer that sends synthetic H.264 RTP (every packet an IDR
/// NAL) while `sending` is true: lets a test stop the media without
/// closing anything.
async fn pausable_streamer(
    srv: &signalling::ServerHandle,
    sending: Arc<std::sync::atomic::AtomicBool>,
    cancel: CancellationToken,
) {
    use proto::Message;

    const SSRC: u32 = 0x5eed;
    let (signal, mut rx) = proto::client::connect(&format!("ws://{}", srv.streamer_addr())).await.expect("connect");
    // The track of the current peer connection (webrtc 0.21 binds a track to one sender).
    let current: Arc<std::sync::Mutex<Option<Arc<TrackLocalStaticRTP>>>> = Arc::default();
    {
        let (current, cancel) = (current.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            let mut seq: u16 = 0;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if !sending.load(Relaxed) {
                    continue;
                }
                seq = seq.wrapping_add(1);
                let mut p = Packet::default();
                p.header.version = 2;
                p.header.marker = true;
                p.header.sequence_number = seq;
                p.header.timestamp = u32::from(seq) * 3000;
                p.header.ssrc = SSRC;
                p.header.payload_type = proto::rtc::H264_PAYLOAD_TYPE;
                p.payload = bytes::Bytes::from_static(&[0x65, 0x88, 0x84, 0x00]);
                let track = current.lock().unwrap().clone();
                if let Some(track) = track {
                    let _ = track.write_rtp(p).await;
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut pc: Option<Arc<dyn PeerConnection>> = None;
        loop {
            let m = tokio::select! {
                _ = cancel.cancelled() => break,
                m = rx.recv() => match m { Some(m) => m.message, None => break },
            };
            match m {
                Message::Identify => {
                    let _ = signal.send(&Message::EndpointId { id: Some("P1".into()), protocol_version: None });
                }
                Message::PlayerConnected { player_id, .. } => {
                    if let Some(old) = pc.take() {
                        let _ = old.close().await;
                    }
                    let (handler, mut events) = event_channel();
                    let settings = PeerSettings::offerer(IcePolicy::LOOPBACK, Interceptors::ReportsOnly);
                    let Ok(new_pc) = proto::rtc::new_peer_connection(&settings, &serde_json::json!({}), handler).await
                    else {
                        break;
                    };
                    let coding = RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(SSRC), ..Default::default() },
                        active: true,
                        codec: proto::rtc::media::h264_codec(),
                        ..Default::default()
                    };
                    let track = MediaStreamTrack::new(
                        "stream".into(),
                        "video".into(),
                        "video".into(),
                        RtpCodecKind::Video,
                        vec![coding],
                    );
                    let track = Arc::new(TrackLocalStaticRTP::new(track));
                    let _ = new_pc.add_track(track.clone() as Arc<dyn TrackLocal>).await;
                    *current.lock().unwrap() = Some(track);
                    let (signal2, id2) = (signal.clone(), player_id.clone());
                    tokio::spawn(async move {
                        while let Some(event) = events.recv().await {
                            if let PeerEvent::LocalCandidate(candidate) = event {
                                let _ =
                                    signal2.send(&Message::IceCandidate { candidate, player_id: Some(id2.clone()) });
                            }
                        }
                    });
                    let Ok(offer) = new_pc.create_offer(None).await else { break };
                    let _ = new_pc.set_local_description(offer.clone()).await;
                    let _ = signal.send(&Message::Offer {
                        sdp: offer.sdp,
                        player_id: Some(player_id),
                        sfu: None,
                        multiplex: None,
                        scalability_mode: None,
                    });
                    pc = Some(new_pc);
                }
                Message::Answer { sdp, .. } => {
                    if let (Some(pc), Ok(answer)) = (&pc, RTCSessionDescription::answer(sdp)) {
                        let _ = pc.set_remote_description(answer).await;
                    }
                }
                Message::IceCandidate { candidate, .. } if !candidate.candidate.is_empty() => {
                    if let Some(pc) = &pc {
                        let _ = pc.add_ice_candidate(to_rtc_candidate(&candidate)).await;
                    }
                }
                _ => {}
            }
        }
        if let Some(pc) = pc {
            let _ = pc.close().await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_stall_stops_streaming_and_resume_starts_again() {
    let _serial = SERIAL.lock().await;
    testkit::init_test_logs();
    let srv = server().await;
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let cancel = CancellationToken::new();
    pausable_streamer(&srv, sending.clone(), cancel.clone()).await;
    let cfg = SfuConfig {
        url: format!("ws://{}", srv.sfu_addr()),
        list_interval: Duration::from_millis(200),
        stall_timeout: Duration::from_millis(800),
        ..Default::default()
    };
    let sfu = sfu_stub::spawn(cfg).expect("SFU starts");
    let mut events = sfu.events();
    wait_streaming(&srv, &mut events, "startStreaming").await;

    sending.store(false, Relaxed);
    wait_event(&mut events, Duration::from_secs(5), "stopStreaming on a stall", |e| *e == SfuEvent::StreamingStopped)
        .await;
    wait_until(Duration::from_secs(5), "the server to unlist the SFU", || {
        !srv.snapshot().streamers.iter().any(|s| s.streamer_id == "SFU" && s.streaming)
    })
    .await;

    sending.store(true, Relaxed);
    wait_streaming(&srv, &mut events, "startStreaming on resume").await;
    assert_eq!(sfu.stats().upstream_connects, 1, "the same upstream connection throughout");
    cancel.cancel();
    sfu.stop().await;
    srv.shutdown().await;
}
