//! Headless Pixel Streaming players.
//!
//! - [`Player`] ([`player`]): one player — join attempts ([`attempt`]) over
//!   `proto::client`'s signalling socket, peer session ([`peer`]), RTP
//!   statistics ([`rtp_stats`]), data-channel protocol ([`datachannel`]).
//! - [`run_load`] ([`load`]): many players in one process sharing one
//!   runtime and one WebRTC context ([`rtc`], webrtc-rs 0.21); [`report`] aggregates, [`html`] draws.
//! - `--signalling-only` ([`canned`]): no WebRTC at all.
//! - [`distributed`]: agents on several machines and a coordinator, over Redis.

pub mod attempt;
pub mod canned;
pub mod clock_offset;
pub mod config;
pub mod datachannel;
pub mod distributed;
pub mod error;
pub mod frame_delivery;
pub mod html;
pub mod keyframe_requests;
pub mod latency_histogram;
pub mod live;
pub mod load;
pub mod peer;
pub mod player;
pub mod report;
pub mod rtc;
pub mod rtp_stats;
pub mod turn_allocations;
pub mod udp_path;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::{LoadConfig, PlayerConfig, ProgressMode};
pub use error::PlayerError;
pub use load::{run_load, run_load_with, LoadHooks};
pub use player::{Player, PlayerStats};
pub use report::LoadReport;

/// Run one player to completion (its own WebRTC context).
pub async fn run_player(cfg: PlayerConfig, cancel: CancellationToken) -> Result<PlayerStats, PlayerError> {
    let rtc = if cfg.signalling_only { None } else { Some(rtc::RtcContext::for_config(&cfg, cfg.impairment_of(0))?) };
    let player = Player::new(0, Arc::new(cfg), rtc, Arc::default());
    Ok(player.run(cancel, None).await)
}
