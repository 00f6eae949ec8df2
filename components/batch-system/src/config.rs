//! Batch-system settings.

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid batch-system config: {0}")]
pub struct ConfigError(pub String);

#[derive(Clone, Debug)]
pub struct Config {
    /// Poller threads; 0 starts none, and the system is driven by inline pollers
    /// (`BatchSystem::inline_poller`) on threads of its user.
    pub pool_size: usize,
    /// FSMs handled per poller round.
    pub max_batch_size: usize,
    /// An FSM polled continuously for longer goes back to the shared queue, so one hot FSM
    /// cannot keep a poller to itself.
    pub reschedule_duration: Duration,
    /// Soft capacity of a mailbox; `try_send` beyond it fails with `Full`.
    pub mailbox_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pool_size: 2,
            max_batch_size: 256,
            reschedule_duration: Duration::from_secs(5),
            mailbox_capacity: 40960,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_batch_size == 0 {
            return Err(ConfigError("max-batch-size must be > 0".into()));
        }
        if self.mailbox_capacity == 0 {
            return Err(ConfigError("mailbox-capacity must be > 0".into()));
        }
        Ok(())
    }
}
