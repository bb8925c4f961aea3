//! [`LayerPacket`]: one RTP packet from the streamer, tagged with its
//! simulcast layer and whether it starts a keyframe — what the forwarder
//! fans out to the players' writers and what the keyframe cache keeps.

use rtc::rtp::packet::Packet;

/// One RTP packet of one simulcast layer, as received from the streamer.
#[derive(Debug)]
pub struct LayerPacket {
    pub layer: usize,
    pub keyframe: bool,
    pub packet: Packet,
}
