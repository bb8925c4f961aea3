//! End-to-end layer of the toolkit: topologies (a description of a local
//! stack and the code that starts it in-process), the one-command harness
//! (`src/main.rs`), a recording relay for observing message sequences
//! ([`tap`]), a headless-Chromium driver for browser tests ([`browser`]), and a
//! streamer running in Chromium, libwebrtc's sender ([`browser_streamer`]).

pub mod bench;
pub mod browser;
pub mod browser_streamer;
pub mod sfu;
pub mod tap;
pub mod topology;

pub use topology::{Running, Topology};
