//! Waiting on conditions with a deadline instead of sleeping a fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `condition` until it holds; panics naming `what` once `timeout` passes.
pub async fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `check` until it returns `Ok`; panics with the last reason once `timeout` passes.
pub async fn wait_ok(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {why}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Like [`wait_until`] for conditions that need to await (client calls).
pub async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `probe` until it yields a value; panics naming `what` once `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_until(Duration::from_secs(10), "third call", || {
            calls += 1;
            calls >= 3
        })
        .await;
        assert_eq!(calls, 3);
        let got = wait_for(Duration::from_secs(10), "a value", || async { Some(7) }).await;
        assert_eq!(got, 7);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for ok: still 3")]
    async fn wait_ok_reports_the_last_reason() {
        let mut n = 0;
        wait_ok(Duration::from_millis(200), "ok", || {
            n += 1;
            Err(format!("still {}", n.min(3)))
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after")]
    async fn panics_with_the_description_at_the_deadline() {
        wait_until(Duration::from_millis(200), "never", || false).await;
    }
}
