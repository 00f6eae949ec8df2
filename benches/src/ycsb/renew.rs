//! One client shared by every client task, replaced by a new one when a request cannot reach
//! a store.
//!
//! tikv-client 0.4 keeps a region's cached leader when it cannot open a connection to that
//! leader's store: the connect error (`Error::Grpc`) is returned without invalidating the
//! region, unlike an error on an open connection. A bench whose region's leader store was
//! killed asks PD once (after the open connection broke), hears of the dead leader again
//! before the new one reported, and from then on every request fails at once on the dead
//! store, even long after the region elected a new leader. A new client asks PD again, which
//! is what an application does with such an error; the tasks share the one new client.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often the client may be replaced at most, so a cluster that is down altogether is not
/// hit by a connection storm (each failed try is still counted as an error).
pub const MIN_RENEW_INTERVAL: Duration = Duration::from_secs(1);

/// Builds a new client; `None` when connecting failed (the old one stays).
pub type Connect<T> =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Option<T>> + Send>> + Send + Sync>;

/// The client of every task, with a generation that changes each time it is replaced.
pub struct Renewable<T: Clone> {
    current: Mutex<(u64, T)>,
    /// `None`: never replaced (etcd's client balances over its members itself).
    connect: Option<Connect<T>>,
    /// Held while a replacement connects, so concurrent failures make one new client.
    renewing: tokio::sync::Mutex<Option<Instant>>,
}

impl<T: Clone> Renewable<T> {
    /// Starts with `client`; `connect` makes its replacements.
    pub fn new(client: T, connect: Option<Connect<T>>) -> Renewable<T> {
        Renewable {
            current: Mutex::new((0, client)),
            connect,
            renewing: tokio::sync::Mutex::new(None),
        }
    }

    /// The client in use and its generation.
    pub fn current(&self) -> (u64, T) {
        self.current.lock().clone()
    }

    /// Called after a request through generation `seen` could not reach a store: replaces
    /// the client unless another task already did, or one was made less than
    /// [`MIN_RENEW_INTERVAL`] ago, and returns the client to use next.
    pub async fn renew(&self, seen: u64) -> (u64, T) {
        let Some(connect) = &self.connect else {
            return self.current();
        };
        let mut last = self.renewing.lock().await;
        let current = self.current();
        if current.0 != seen || last.is_some_and(|at| at.elapsed() < MIN_RENEW_INTERVAL) {
            return current;
        }
        *last = Some(Instant::now());
        match connect().await {
            Some(client) => {
                let mut slot = self.current.lock();
                *slot = (slot.0 + 1, client);
                slot.clone()
            }
            None => current,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A renewable counter whose replacements are 1, 2, 3... (`fail`: connecting fails).
    fn counter(fail: bool) -> (Renewable<u32>, Arc<AtomicU32>) {
        let made = Arc::new(AtomicU32::new(0));
        let counting = made.clone();
        let connect: Connect<u32> = Box::new(move || {
            let n = counting.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move { (!fail).then_some(n) })
        });
        (Renewable::new(0, Some(connect)), made)
    }

    #[tokio::test]
    async fn tasks_that_saw_the_same_client_fail_get_one_new_client() {
        let (r, made) = counter(false);
        let (seen, _) = r.current();
        assert_eq!(r.renew(seen).await, (1, 1));
        // A second task that failed on generation 0 takes the new client as it is.
        assert_eq!(r.renew(seen).await, (1, 1));
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_new_client_fails_again_soon_after_and_is_kept_for_a_while() {
        let (r, made) = counter(false);
        assert_eq!(r.renew(0).await, (1, 1));
        // Its first request failed too: within the interval no other client is made.
        assert_eq!(r.renew(1).await, (1, 1));
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_connect_keeps_the_old_client() {
        let (r, made) = counter(true);
        assert_eq!(r.renew(0).await, (0, 0));
        assert_eq!(made.load(Ordering::SeqCst), 1);
        let fixed = Renewable::new(7u32, None);
        assert_eq!(fixed.renew(0).await, (0, 7));
    }
}
