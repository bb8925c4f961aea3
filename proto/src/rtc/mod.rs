//! WebRTC settings shared by every WebRTC peer of the toolkit (mock-streamer,
//! mock-player, sfu-stub, the test receivers), for `webrtc = "=0.21.1"`.
//!
//! webrtc 0.21 has no shared `API` object: every peer connection is built
//! from its own media engine, setting engine and interceptor registry, so
//! [`new_peer_connection`] builds one from a [`PeerSettings`]:
//!
//! - [`media`]: our codecs (H.264, VP8, VP9, AV1, Opus; which video codecs
//!   a connection registers is its [`VideoCodecs`]) and the simulcast header
//!   extensions;
//! - [`settings`]: the ICE policy ([`IcePolicy`]: loopback-only binds the
//!   connection's UDP socket to 127.0.0.1, IPv4 UDP only, mDNS off, no ICE
//!   servers), DTLS role, ICE check interval, interceptors
//!   ([`Interceptors`]) and the `RTCConfiguration`;
//! - [`crypto`]: one crypto provider and one DTLS certificate per process;
//! - [`keyframe_requests`]: PLI/FIR handed to the application;
//! - [`repair_traffic`]: NACK/PLI/FIR and retransmissions counted at the wire;
//! - [`events`]: the connection's callbacks as a channel of [`PeerEvent`]s;
//! - [`candidate`]: `proto::IceCandidate` ⇄ `RTCIceCandidateInit`;
//! - [`freed_memory`]: closed connections' memory back to the system, and
//!   what the allocator holds ([`allocator_usage`]).

pub mod candidate;
pub mod closed_channels;
pub mod crypto;
pub mod events;
pub mod freed_memory;
pub mod keyframe_requests;
pub mod media;
pub mod repair_traffic;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCSessionDescription,
};

pub use candidate::{candidate_is_loopback, filter_sdp_candidates, from_rtc_candidate, to_rtc_candidate};
pub use closed_channels::drop_closed_channels;
pub use crypto::{process_crypto, ProcessCrypto};
pub use events::{event_channel, EventSender, PeerEvent};
pub use freed_memory::{
    allocator_usage, memory_line, release_freed_memory, resident_memory, AllocatorUsage, ResidentMemory,
};
pub use media::{
    codec_parameters, first_video_codec, media_engine, media_engine_with_feedback, video_codecs, VideoCodecs,
    AV1_PAYLOAD_TYPE, H264_FMTP, H264_PAYLOAD_TYPE, OPUS_FMTP, OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE, VP9_PAYLOAD_TYPE,
};
pub use settings::{rtc_configuration, NACK_HISTORY};

/// Where ICE may gather candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcePolicy {
    /// Host candidates on 127.0.0.1 only, UDP4 only, mDNS off, and of the
    /// ICE servers from `config` only those on 127.0.0.1 (a TURN server a
    /// test started). For tests, demos and benchmarks on one machine.
    pub loopback_only: bool,
}

impl IcePolicy {
    pub const LOOPBACK: IcePolicy = IcePolicy { loopback_only: true };
    pub const ANY: IcePolicy = IcePolicy { loopback_only: false };
}

/// Which RTP/RTCP interceptors a peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interceptors {
    /// webrtc-rs defaults (NACK generator + responder, sender/receiver
    /// reports, TWCC receiver), except that the NACK responder keeps
    /// [`NACK_HISTORY`] sent packets per stream. For senders.
    Full,
    /// What a browser's receiver sends back: receiver reports, NACKs (a NACK
    /// generator) and transport-wide congestion-control feedback (the
    /// `transport-cc` feedback and the `transport-wide-cc` header extension;
    /// every libwebrtc sender, Unreal's included, estimates its bandwidth from
    /// it). No NACK responder buffer. For receive-only peers (players; the
    /// application sends PLIs itself).
    Receiver,
    /// Reports and a NACK responder (keeping [`NACK_HISTORY`] packets per
    /// stream): what a forwarding SFU runs towards its players, so it
    /// resends what they lose instead of leaving them to ask for keyframes.
    Forwarder,
    /// [`Interceptors::Receiver`] without the NACK generator (and no `nack`
    /// in the answer, only `nack pli`): a receiver that lets losses stand.
    ReceiverWithoutNack,
    /// Receiver/sender reports only.
    ReportsOnly,
}

/// The ICE check interval of the peers that are the controlling ICE agent
/// (the offerers: the streamer towards players and SFUs, the SFU towards
/// players). webrtc 0.21's controlling agent nominates a pair on its next
/// check tick after the pair's check succeeded, and a 0.21 controlled agent
/// nominated before its own check of the pair succeeded ignores the
/// nomination, so the pair is selected only at a later tick
/// (e2e/bench/README.md, "webrtc-rs line"): each step can cost one interval,
/// 200 ms by default, towards browsers and our own players alike.
pub const CONTROLLING_ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// How one peer connection is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSettings {
    pub ice: IcePolicy,
    pub interceptors: Interceptors,
    /// Answer as DTLS server (`a=setup:passive`).
    pub answer_as_dtls_server: bool,
    /// ICE connectivity-check interval; `None`: webrtc's 200 ms.
    pub ice_check_interval: Option<Duration>,
    /// The video codecs registered, most preferred first.
    pub video_codecs: VideoCodecs,
}

impl PeerSettings {
    /// An offering sender (streamer, SFU towards players): the controlling
    /// ICE agent, with [`CONTROLLING_ICE_CHECK_INTERVAL`].
    pub fn offerer(ice: IcePolicy, interceptors: Interceptors) -> Self {
        PeerSettings {
            ice,
            interceptors,
            answer_as_dtls_server: false,
            ice_check_interval: Some(CONTROLLING_ICE_CHECK_INTERVAL),
            video_codecs: VideoCodecs::ALL,
        }
    }

    /// An answering peer with webrtc's defaults for the rest.
    pub fn answerer(ice: IcePolicy, interceptors: Interceptors) -> Self {
        PeerSettings {
            ice,
            interceptors,
            answer_as_dtls_server: false,
            ice_check_interval: None,
            video_codecs: VideoCodecs::ALL,
        }
    }
}

/// Errors building a peer connection.
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error("crypto provider: {0}")]
    Crypto(#[from] ::rtc::crypto::CryptoError),
    #[error("peerConnectionOptions: {0}")]
    Options(String),
    #[error("DTLS certificate: {0}")]
    Certificate(String),
}

/// A new peer connection: `settings`, the ICE servers of
/// `peer_connection_options` (the server's `config`), the process's
/// certificate, and `handler` for its events (see [`events`]: it must not
/// hold the connection). Close it with `close()`: dropped without, its
/// driver task keeps running.
pub async fn new_peer_connection(
    settings: &PeerSettings,
    peer_connection_options: &Value,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, RtcError> {
    new_peer_connection_counted(settings, peer_connection_options, handler, repair_traffic::process_totals()).await
}

/// [`new_peer_connection`], counting its repair traffic (NACKs, PLIs, FIRs,
/// retransmissions) into `repair` (a streamer's or an SFU's own counters).
pub async fn new_peer_connection_counted(
    settings: &PeerSettings,
    peer_connection_options: &Value,
    handler: Arc<dyn PeerConnectionEventHandler>,
    repair: Arc<repair_traffic::RepairCounters>,
) -> Result<Arc<dyn PeerConnection>, RtcError> {
    let crypto = process_crypto()?;
    let mut media = media_engine(settings.video_codecs)?;
    let registry = settings::interceptors(settings.interceptors, &mut media, repair)?;
    let pc = PeerConnectionBuilder::new()
        .with_configuration(rtc_configuration(peer_connection_options, settings.ice, crypto)?)
        .with_media_engine(media)
        .with_setting_engine(settings::setting_engine(settings, crypto))
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(settings::bind_addresses(settings.ice))
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// Set our offer or answer as `pc`'s local description and return the SDP to
/// send: the local description as it now stands (candidates gathered so far
/// included; the rest trickle).
pub async fn set_local(pc: &dyn PeerConnection, description: RTCSessionDescription) -> Result<String, RtcError> {
    let fallback = description.sdp.clone();
    pc.set_local_description(description).await?;
    Ok(pc.local_description().await.map_or(fallback, |d| d.sdp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loopback_peer_connection_offers_one_loopback_candidate() {
        let (handler, mut events) = event_channel();
        let settings = PeerSettings::offerer(IcePolicy::LOOPBACK, Interceptors::Full);
        let pc = new_peer_connection(&settings, &serde_json::json!({}), handler).await.unwrap();
        let dc = pc.create_data_channel("datachannel", None).await.unwrap();
        let offer = pc.create_offer(None).await.unwrap();
        set_local(pc.as_ref(), offer).await.unwrap();
        let mut candidates = Vec::new();
        let gathered = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(e) = events.recv().await {
                match e {
                    PeerEvent::LocalCandidate(c) => candidates.push(c.candidate),
                    PeerEvent::GatheringDone => return,
                    _ => {}
                }
            }
        })
        .await;
        assert!(gathered.is_ok(), "gathering completes");
        assert_eq!(candidates.len(), 1, "{candidates:?}");
        assert!(candidate_is_loopback(&candidates[0]) && candidates[0].contains(" udp "), "{candidates:?}");
        drop(dc);
        pc.close().await.unwrap();
    }
}
