//! Keeps one misbehaving request from taking a client task down or holding it forever: a
//! request that panics inside the client library (client 0.4 asserts on some answers a store
//! may give to async-commit and 1PC prewrites) or outlasts its deadline becomes a failed
//! request, counted as an error, and the task goes on with the next one.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::backend::BackendError;

/// Runs `request`, turning a panic or a run past `limit` into a [`BackendError::Request`].
pub async fn guarded<T, F>(limit: Duration, request: F) -> Result<T, BackendError>
where
    F: Future<Output = Result<T, BackendError>>,
{
    match tokio::time::timeout(limit, CatchPanic(Box::pin(request))).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(panic)) => Err(BackendError::Request(format!(
            "the client panicked: {panic}"
        ))),
        Err(_) => Err(BackendError::Request(format!(
            "no answer within {}",
            humantime::format_duration(limit)
        ))),
    }
}

/// A future that answers `Err(message)` when polling the inner one panics. The inner future
/// is dropped with the task after that and never polled again, so no broken state is observed.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
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
