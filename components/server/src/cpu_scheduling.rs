//! The Linux scheduling policy of the store's threads (`[server] cpu-scheduling`).
//!
//! Under the default policy (`SCHED_OTHER`) a thread that wakes up may preempt the thread
//! running on its core at once. A store's write crosses several threads (gRPC worker, raft
//! poller, apply thread), each waking the next. When the cores are shared by more runnable
//! threads than there are cores (several stores on one host, or clients beside the store),
//! each hand-over then becomes an immediate context switch: the gRPC worker queues one
//! proposal, the raft poller preempts it and handles that one proposal alone, and so on.
//! Under `SCHED_BATCH` (sched(7)) a woken thread never preempts a running one; it runs when
//! the running thread blocks or its time slice ends, by which time more work has queued up
//! for it. Fairness between threads is unchanged; only wake-up preemption goes.

use std::io;

use serde::{Deserialize, Serialize};

/// Which policy the store process's threads run under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuScheduling {
    /// Linux's default, `SCHED_OTHER`: threads are left as the system starts them.
    #[default]
    Normal,
    /// `SCHED_BATCH` for every thread of the process (those running when it is applied, and,
    /// by inheritance, every thread they start later).
    Batch,
}

/// A scheduling policy the kernel refused.
#[derive(Debug, thiserror::Error)]
pub enum CpuSchedulingError {
    #[error("cannot list the process's threads in /proc/self/task: {0}")]
    ListThreads(io::Error),
    #[error("cannot set SCHED_BATCH on thread {tid}: {source}")]
    SetPolicy { tid: i32, source: io::Error },
}

impl CpuScheduling {
    /// Applies the policy to every thread of this process. New threads inherit the policy of
    /// the thread that starts them (pthread's default `PTHREAD_INHERIT_SCHED`), so calling
    /// this before the store starts its threads covers them all. `Normal` changes nothing.
    ///
    /// Errors: `/proc/self/task` unreadable, or the kernel refusing the policy for a thread
    /// (an unprivileged process may always choose `SCHED_BATCH` at nice 0). A thread that
    /// ends while this runs is skipped.
    pub fn apply_to_process(self) -> Result<(), CpuSchedulingError> {
        let policy = match self {
            CpuScheduling::Normal => return Ok(()),
            CpuScheduling::Batch => libc::SCHED_BATCH,
        };
        let tasks =
            std::fs::read_dir("/proc/self/task").map_err(CpuSchedulingError::ListThreads)?;
        for task in tasks {
            let task = task.map_err(CpuSchedulingError::ListThreads)?;
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            match set_policy(tid, policy) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(source) => return Err(CpuSchedulingError::SetPolicy { tid, source }),
            }
        }
        Ok(())
    }
}

/// `sched_setscheduler(tid, policy, priority 0)`; Linux takes a thread id for the pid.
fn set_policy(tid: i32, policy: i32) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialized `sched_param` that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(tid, policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_read_from_toml_as_lowercase_words() {
        #[derive(Deserialize)]
        struct T {
            p: CpuScheduling,
        }
        let parse = |s: &str| toml::from_str::<T>(&format!("p = \"{s}\"")).map(|t| t.p);
        assert_eq!(parse("normal").unwrap(), CpuScheduling::Normal);
        assert_eq!(parse("batch").unwrap(), CpuScheduling::Batch);
        assert!(parse("fifo").is_err());
        assert_eq!(CpuScheduling::default(), CpuScheduling::Normal);
    }
}
