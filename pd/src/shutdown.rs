//! A shutdown signal every long-running task and stream of PD watches.

use tokio::sync::watch;

/// Fires once; clones all see it.
#[derive(Clone, Debug)]
pub struct ShutdownSignal(watch::Receiver<bool>);

/// The side that fires the signal.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

pub fn shutdown_pair() -> (ShutdownTrigger, ShutdownSignal) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), ShutdownSignal(rx))
}

impl ShutdownTrigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl ShutdownSignal {
    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the signal fired (or its trigger is gone).
    pub async fn wait(self) {
        let mut rx = self.0;
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_signal() {
        let (trigger, signal) = shutdown_pair();
        let other = signal.clone();
        assert!(!signal.is_fired());
        let waiter = tokio::spawn(other.wait());
        trigger.fire();
        waiter.await.unwrap();
        assert!(signal.is_fired());
        signal.wait().await;
    }
}
