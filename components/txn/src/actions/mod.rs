//! The transactional commands as functions of a snapshot and a request: each reads through an
//! `MvccReader`, adds its changes to an `MvccTxn`, and returns the answer. Nothing here
//! touches raft or the network, so every rule is unit-tested on a plain engine. The rules are
//! TiKV's (`src/storage/txn/actions`, `commands`), summarised in each file.
//!
//! Writing commands (run by the scheduler under key latches, their changes proposed through
//! raft): `prewrite`, `commit`, `rollback`, `heartbeat`, `check_txn_status`,
//! `check_secondary_locks`, `resolve_lock`, `gc`, and for pessimistic transactions
//! `acquire_pessimistic_lock` (TiKV `src/storage/txn/actions/acquire_pessimistic_lock.rs`) and
//! `pessimistic_rollback` (TiKV `src/storage/txn/commands/pessimistic_rollback.rs`). Reads (no
//! latches): `read` (get, batch get, scan) and `scan_lock`.

pub mod acquire_pessimistic_lock;
pub mod async_commit;
pub mod check_secondary_locks;
pub mod check_txn_status;
pub mod commit;
pub mod gc;
pub mod heartbeat;
pub mod pessimistic_rollback;
pub mod prewrite;
pub mod read;
pub mod resolve_lock;
pub mod rollback;
pub mod scan_lock;
