//! Keeps one misbehaving request from taking a client task down or holding it forever: a
//! request that panics inside the client library (client 0.4 asserts on some answers a store
//! may give to async-commit and 1PC prewrites) or outlasts its deadline becomes a failed
//! request, counted as an error, and the task goes on with the next one.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use super::backend::BackendError;

/// Runs `request`, turning a panic or a run past `limit` into a [`BackendError::Request`].
///
/// The request future is polled in place: boxing it would copy the whole operation's state
/// (about 1.7 KiB for the runner's per-operation future) into a new allocation on every
/// request.
pub async fn guarded<T, F>(limit: Duration, request: F) -> Result<T, BackendError>
where
    F: Future<Output = Result<T, BackendError>>,
{
    // The future is dropped right after a panic and never polled again, so no broken state
    // is observed: that is what makes asserting unwind safety sound here.
    match tokio::time::timeout(limit, AssertUnwindSafe(request).catch_unwind()).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(panic)) => Err(BackendError::Request(format!(
            "the client panicked: {}",
            panic_message(panic.as_ref())
        ))),
        Err(_) => Err(BackendError::Request(format!(
            "no answer within {}",
            humantime::format_duration(limit)
        ))),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_pass_through() {
        let ok = guarded(Duration::from_secs(1), async { Ok::<_, BackendError>(7) }).await;
        assert_eq!(ok.unwrap(), 7);
        let failed: Result<(), _> = guarded(Duration::from_secs(1), async {
            Err(BackendError::NotFound)
        })
        .await;
        assert!(matches!(failed, Err(BackendError::NotFound)));
    }

    #[tokio::test]
    async fn a_panic_becomes_an_error() {
        let panicked: Result<(), BackendError> = guarded(Duration::from_secs(1), async {
            tokio::task::yield_now().await;
            let answers: Vec<u64> = vec![1, 2];
            assert_eq!(answers.len(), 1, "one region answered");
            Ok(())
        })
        .await;
        match panicked {
            Err(BackendError::Request(m)) => {
                assert!(m.starts_with("the client panicked:"), "{m}");
                assert!(m.contains("one region answered"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_past_its_limit_becomes_an_error() {
        let stuck: Result<(), BackendError> =
            guarded(Duration::from_millis(50), std::future::pending()).await;
        match stuck {
            Err(BackendError::Request(m)) => assert_eq!(m, "no answer within 50ms"),
            other => panic!("{other:?}"),
        }
    }
}
