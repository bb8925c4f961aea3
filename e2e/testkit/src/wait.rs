//! Waiting on a condition or a future, failing the test after a timeout
//! (tests wait on events, never sleep-and-hope).

use std::future::Future;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

/// How often [`wait_until`] polls: state that changes asynchronously
/// (server snapshots, counters) has no event to await.
const POLL: Duration = Duration::from_millis(10);

/// Poll `f` until it is true; panic with `what` once `timeout` passes.
pub async fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let ok = tokio::time::timeout(timeout, async {
        while !f() {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .is_ok();
    assert!(ok, "timed out after {timeout:?} waiting for {what}");
}

/// Await `f`; panic with `what` once `timeout` passes.
pub async fn within<T>(timeout: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// The first event from `rx` matching `pred` (a lagging receiver skips
/// what it missed); panic with `what` once `timeout` passes or the sender is gone.
pub async fn next_event<T: Clone>(
    rx: &mut broadcast::Receiver<T>,
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut(&T) -> bool,
) -> T {
    within(timeout, what, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("events ended while waiting for {what}"),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_until_returns_once_true() {
        let mut n = 0;
        wait_until(Duration::from_secs(5), "three polls", || {
            n += 1;
            n >= 3
        })
        .await;
        assert_eq!(n, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for never")]
    async fn wait_until_panics_after_the_timeout() {
        wait_until(Duration::from_millis(50), "never", || false).await;
    }

    #[tokio::test]
    async fn next_event_skips_what_does_not_match() {
        let (tx, mut rx) = broadcast::channel(8);
        for n in [1, 2, 3] {
            tx.send(n).unwrap();
        }
        assert_eq!(next_event(&mut rx, Duration::from_secs(5), "an even number", |n| n % 2 == 0).await, 2);
    }

    #[tokio::test]
    #[should_panic(expected = "events ended while waiting for more")]
    async fn next_event_panics_when_the_sender_is_gone() {
        let (tx, mut rx) = broadcast::channel::<u32>(8);
        drop(tx);
        next_event(&mut rx, Duration::from_secs(5), "more", |_| true).await;
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for pending")]
    async fn within_panics_after_the_timeout() {
        within(Duration::from_millis(50), "pending", std::future::pending::<()>()).await;
    }
}
