//! Failpoint tests: the store is built with its failure-injection points
//! (`raftstore::failpoints`), and each test holds or crashes one store at a precise step, then
//! checks that no acknowledged write is lost and that every replica ends with the same data.
//! Failpoints are process-wide: every test holds a `fail::FailScenario`, so they run one at a
//! time.

mod apply_order;
mod crash_points;
mod load;
mod mailbox_bound;
mod snapshot_worker;
