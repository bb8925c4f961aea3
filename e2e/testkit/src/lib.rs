//! Helpers for the workspace's tests and benches, written once: waiting on
//! conditions with timeouts, `/proc` readings, medians and percentiles, free
//! loopback ports, a fake WebSocket streamer, WebRTC test receivers, and
//! throwaway redis-server and coturn instances.
//!
//! Depends only on `proto` and third-party crates, so every crate of the
//! workspace can dev-depend on it without a cycle.

pub mod fake_streamer;
pub mod logs;
pub mod ports;
pub mod procfs;
pub mod receiver;
pub mod redis;
pub mod stats;
pub mod turn;
pub mod wait;

pub use logs::init_test_logs;
pub use wait::{next_event, wait_until, within};
