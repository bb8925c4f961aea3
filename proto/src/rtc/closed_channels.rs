//! Letting go of closed data channels without leaking their event queues.
//!
//! webrtc 0.21.1 unregisters a data channel's event queue (256 slots, ~12 KB)
//! from its connection when the last handle drops, but only if that drop wins
//! a `try_lock` on the connection's channel map (`DataChannelImpl::drop`,
//! `data_channel/mod.rs:331`). The connection's driver holds that lock while it
//! delivers every data-channel event, and a channel's close comes with a burst
//! of them (closing, close, the other direction's close) just as the
//! application lets go. A lost race keeps the queue for as long as the
//! connection lives: heaptrack of mock-streamer behind a churning SFU found it
//! for 18 % of the channels, ~2.2 KB per SFU join on average
//! (`e2e/bench/README.md`, `churn`). Two drops race each other the same way,
//! and an SFU's players leave in bursts. So the last handles go to a task that
//! drops them once the close's events are delivered, one channel at a time
//! across the process: the lost race becomes rare.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use webrtc::data_channel::DataChannel;

/// Held while a channel is dropped, so that no two drops contend for one
/// connection's map (any runtime: tests run one per test).
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// How long after the close the handles are dropped: the close's events are
/// delivered within milliseconds on loopback; this is generous.
const GRACE: Duration = Duration::from_millis(250);

/// Drop `channels` (closed, or whose connection is closing) after [`GRACE`],
/// from a task of their own, one at a time with every other such drop. Needs a tokio runtime; without one they are
/// dropped at once.
pub fn drop_closed_channels(channels: Vec<Arc<dyn DataChannel>>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                tokio::time::sleep(GRACE).await;
                for channel in channels {
                    let _turn = ONE_AT_A_TIME.lock().await;
                    drop(channel);
                }
                // The last handles can be what kept a closed connection's SCTP association
                // alive: its memory is freed only now, after the trim its close asked for.
                super::release_freed_memory();
            });
        }
        Err(_) => drop(channels),
    }
}
