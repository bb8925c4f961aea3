//! Waiting on a condition or a future, failing the test after a timeout
//! (tests wait on events, never sleep-and-hope).

use std::future::Future;
use std::time::Duration;

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
    #[should_panic(expected = "waiting for pending")]
    async fn within_panics_after_the_timeout() {
        within(Duration::from_millis(50), "pending", std::future::pending::<()>()).await;
    }
}
