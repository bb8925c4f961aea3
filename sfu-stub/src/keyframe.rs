//! Rate-limited keyframe requests to the streamer.
//!
//! Whoever needs a keyframe of a layer (a new player, a PLI/FIR from a
//! player, a layer switch, a player that lost packets) calls
//! [`KeyframeRequester::request`]. Per layer, one request is sent at once and
//! then at most one per interval: every need that arrives in between
//! collapses into a single request at the end of the interval. So 100
//! players joining together cause two requests, not 100.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::stats::SfuStats;

/// Layers (simulcast encodings) a requester serves; higher ones are clamped.
pub const MAX_LAYERS: usize = 8;

/// Sends one keyframe request for a layer; resolves to whether it was sent.
pub type SendRequest = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Per-layer rate limiter in front of the upstream PLI.
#[derive(Debug)]
pub struct KeyframeRequester {
    layers: Vec<Arc<Notify>>,
    stats: Arc<SfuStats>,
}

impl KeyframeRequester {
    /// Start one small task per layer on the current runtime; they end with `cancel`.
    pub fn spawn(interval: Duration, send: SendRequest, stats: Arc<SfuStats>, cancel: CancellationToken) -> Self {
        let layers: Vec<Arc<Notify>> = (0..MAX_LAYERS).map(|_| Arc::new(Notify::new())).collect();
        for (layer, notify) in layers.iter().enumerate() {
            let (notify, send, stats, cancel) = (notify.clone(), send.clone(), stats.clone(), cancel.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = notify.notified() => {}
                    }
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
        if let Some(n) = self.layers.get(layer.min(MAX_LAYERS - 1)) {
            n.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[tokio::test]
    async fn a_burst_of_requests_becomes_two() {
        let sent = Arc::new(AtomicU64::new(0));
        let s = sent.clone();
        let send: SendRequest = Arc::new(move |layer| {
            let s = s.clone();
            Box::pin(async move {
                assert_eq!(layer, 0);
                s.fetch_add(1, Relaxed);
                true
            })
        });
        let stats = Arc::new(SfuStats::default());
        let cancel = CancellationToken::new();
        let k = KeyframeRequester::spawn(Duration::from_millis(300), send, stats.clone(), cancel.clone());
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
}
