//! Rate-limited keyframe requests to the streamer.
//!
//! Whoever needs a keyframe of a layer (a new player, a PLI/FIR from a
//! player, a layer switch, a player that lost packets) calls
//! [`KeyframeRequester::request`]. Per layer, one request is sent at once and
//! then at most one per interval: every need that arrives in between
//! collapses into a single request at the end of the interval. So 100
//! players joining together cause at most two requests, not 100.
//!
//! A need is met by the first keyframe of its layer that *starts after it*
//! (whoever asked is subscribed by then and receives it). So the merged
//! request at the end of an interval is dropped when every need behind it is
//! older than the newest keyframe ([`KeyframeRequester::keyframe_started`]):
//! players that joined while the first request was in flight get that
//! keyframe, and no second one is forced on everybody. (New players mostly
//! do not ask at all: the forwarder starts them from its keyframe cache.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::stats::SfuStats;

/// Layers (simulcast encodings) a requester serves; higher ones are clamped.
pub const MAX_LAYERS: usize = 8;

/// Sends one keyframe request for a layer; resolves to whether it was sent.
pub type SendRequest = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// The request state of one layer.
#[derive(Debug, Default)]
struct LayerState {
    notify: Notify,
    /// Keyframes of this layer that started so far.
    keyframes: AtomicU64,
    /// `keyframes` as it was when the newest need was registered: the need
    /// is unmet while `keyframes` has not grown past it.
    wanted_at: AtomicU64,
}

impl LayerState {
    fn unmet(&self) -> bool {
        self.wanted_at.load(SeqCst) >= self.keyframes.load(SeqCst)
    }
}

/// Per-layer rate limiter in front of the upstream PLI.
#[derive(Debug)]
pub struct KeyframeRequester {
    layers: Vec<Arc<LayerState>>,
    stats: Arc<SfuStats>,
}

impl KeyframeRequester {
    /// Start one small task per layer on the current runtime; they end with `cancel`.
    pub fn spawn(interval: Duration, send: SendRequest, stats: Arc<SfuStats>, cancel: CancellationToken) -> Self {
        let layers: Vec<Arc<LayerState>> = (0..MAX_LAYERS).map(|_| Arc::default()).collect();
        for (layer, state) in layers.iter().enumerate() {
            let (state, send, stats, cancel) = (state.clone(), send.clone(), stats.clone(), cancel.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = state.notify.notified() => {}
                    }
                    if !state.unmet() {
                        // A keyframe started after every need: nothing to ask for.
                        tracing::debug!(layer, "keyframe request already met");
                        continue;
                    }
                    tracing::debug!(layer, "keyframe request");
                    if send(layer).await {
                        stats.keyframe_requests_sent.fetch_add(1, Relaxed);
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(interval) => {}
                    }
                }
            });
        }
        KeyframeRequester { layers, stats }
    }

    /// Ask for a keyframe of `layer` (never blocks).
    pub fn request(&self, layer: usize) {
        self.stats.keyframe_requests_wanted.fetch_add(1, Relaxed);
        let state = &self.layers[layer.min(MAX_LAYERS - 1)];
        state.wanted_at.fetch_max(state.keyframes.load(SeqCst), SeqCst);
        state.notify.notify_one();
    }

    /// The first packet of a keyframe of `layer` arrived (and is being
    /// forwarded): it meets every need registered before now.
    pub fn keyframe_started(&self, layer: usize) {
        tracing::debug!(layer, "keyframe started");
        self.layers[layer.min(MAX_LAYERS - 1)].keyframes.fetch_add(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    //! On tokio's paused clock: the sleeps below advance virtual time once
    //! every task is idle, so the timing is exact and the tests take no time.
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A requester whose requests are only counted (layers seen checked by `check`).
    fn counting(check: fn(usize)) -> (KeyframeRequester, Arc<AtomicU64>, Arc<SfuStats>, CancellationToken) {
        let sent = Arc::new(AtomicU64::new(0));
        let s = sent.clone();
        let send: SendRequest = Arc::new(move |layer| {
            let s = s.clone();
            Box::pin(async move {
                check(layer);
                s.fetch_add(1, Relaxed);
                true
            })
        });
        let stats = Arc::new(SfuStats::default());
        let cancel = CancellationToken::new();
        let k = KeyframeRequester::spawn(Duration::from_millis(300), send, stats.clone(), cancel.clone());
        (k, sent, stats, cancel)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_requests_becomes_two() {
        let (k, sent, stats, cancel) = counting(|layer| assert_eq!(layer, 0));
        tokio::task::yield_now().await;
        // A burst of 100 requests (far shorter than the interval): one goes
        // out at once, one at the end of the interval.
        for _ in 0..100 {
            k.request(0);
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(sent.load(Relaxed), 2);
        assert_eq!(stats.keyframe_requests_sent.load(Relaxed), 2);
        assert_eq!(stats.keyframe_requests_wanted.load(Relaxed), 100);
        // Quiet for a while: the next one goes out at once.
        k.request(0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sent.load(Relaxed), 3);
        cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn needs_met_by_a_keyframe_in_flight_are_not_asked_again() {
        let (k, sent, _stats, cancel) = counting(|_| {});
        tokio::task::yield_now().await;
        // First player: asked at once.
        k.request(0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sent.load(Relaxed), 1);
        // Players that join while that keyframe is on its way…
        for _ in 0..10 {
            k.request(0);
        }
        // …get it: no second request at the end of the interval.
        k.keyframe_started(0);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(sent.load(Relaxed), 1);
        // A need after that keyframe is asked for (at once: the interval is over).
        k.request(0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sent.load(Relaxed), 2);
        // And a need after it, within the interval, at the end of the interval.
        k.keyframe_started(0);
        k.request(0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sent.load(Relaxed), 2);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(sent.load(Relaxed), 3);
        // Another layer is independent.
        k.request(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sent.load(Relaxed), 4);
        cancel.cancel();
    }
}
