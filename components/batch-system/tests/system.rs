//! Batch-system behaviour: FIFO delivery, exactly-once handling under concurrency, stop and
//! close, capacity, control messages and shutdown.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use batch_system::{HandlerBuilder, InlinePoller, TrySendError};
use common::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn one_fsm_sees_messages_in_fifo_order() {
    let s = TestSystem::new(2, 1 << 20);
    s.add_fsm(1, true);
    for v in 0..10_000 {
        s.router.force_send(1, Msg::Value(v)).unwrap();
    }
    assert!(wait_until(T, || s.handled.load(Ordering::SeqCst) == 10_000));
    let seen: Vec<u64> = s.seen.lock().iter().map(|(_, v)| *v).collect();
    assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
}

#[test]
fn many_senders_many_fsms_exactly_once() {
    let s = Arc::new(TestSystem::new(2, 1 << 20));
    let fsms = 200u64;
    for id in 0..fsms {
        s.add_fsm(id, true);
    }
    let per_thread = 5_000u64;
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let id = (i * 7 + t) % fsms;
                    s.router
                        .force_send(id, Msg::Value(t * per_thread + i))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total = 4 * per_thread as usize;
    assert!(wait_until(T, || s.handled.load(Ordering::SeqCst) == total));
    let mut values: Vec<u64> = s.seen.lock().iter().map(|(_, v)| *v).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (0..total as u64).collect::<Vec<_>>(),
        "each message exactly once"
    );
    // Per FSM and per sender, order is kept.
    let seen = s.seen.lock().clone();
    for id in 0..fsms {
        for t in 0..4u64 {
            let from_t: Vec<u64> = seen
                .iter()
                .filter(|(f, v)| *f == id && v / per_thread == t)
                .map(|(_, v)| *v)
                .collect();
            assert!(from_t.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[test]
fn stopped_fsm_is_removed_and_dropped() {
    let s = TestSystem::new(1, 1024);
    s.add_fsm(7, false);
    s.router.force_send(7, Msg::Value(1)).unwrap();
    s.router.force_send(7, Msg::Stop).unwrap();
    assert!(wait_until(T, || s.drops.load(Ordering::SeqCst) == 1));
    assert!(matches!(
        s.router.force_send(7, Msg::Value(2)),
        Err(TrySendError::Disconnected(_))
    ));
    s.router.close(7);
    assert!(matches!(
        s.router.force_send(7, Msg::Value(2)),
        Err(TrySendError::NotFound(_))
    ));
}

#[test]
fn full_mailbox_refuses_try_send_but_not_force_send() {
    let s = TestSystem::new(1, 8);
    s.add_fsm(1, false);
    // Hold the only poller so nothing drains while the mailbox fills.
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    s.router.force_send(1, Msg::Block(gate_rx)).unwrap();
    let mut full = false;
    for v in 0..64 {
        match s.router.try_send(1, Msg::Value(v)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                full = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full, "a mailbox over capacity answers Full");
    assert!(s.router.force_send(1, Msg::Value(0)).is_ok());
    drop(gate_tx);
    assert!(wait_until(T, || s
        .router
        .mailbox(1)
        .is_some_and(|m| m.is_empty())));
}

/// Try-sends to a mailbox that nothing drains: how many were accepted, out of `attempts`.
/// Any refusal but `Full` fails the test.
fn accepted_try_sends<T>(attempts: u64, send: impl Fn(u64) -> Result<(), TrySendError<T>>) -> u64 {
    (0..attempts)
        .filter(|v| match send(*v) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            Err(_) => panic!("a try-send was refused for another reason than a full mailbox"),
        })
        .count() as u64
}

/// Accepted beyond the capacity at most: the length is checked on every 8th send until a
/// check finds the mailbox full, then on every send.
const CHECK_INTERVAL: u64 = 8;

#[test]
fn a_mailbox_over_capacity_refuses_every_try_send_until_it_drains() {
    let capacity = 8;
    let s = TestSystem::new(1, capacity);
    s.add_fsm(1, true);
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    s.router.force_send(1, Msg::Block(gate_rx)).unwrap();
    let accepted = accepted_try_sends(800, |v| s.router.try_send(1, Msg::Value(v)));
    assert!(
        accepted <= capacity as u64 + CHECK_INTERVAL,
        "{accepted} of 800 messages queued in a mailbox of capacity {capacity}"
    );
    drop(gate_tx);
    assert!(wait_until(T, || s.handled.load(Ordering::SeqCst) == accepted as usize));
    assert!(
        s.router.try_send(1, Msg::Value(1000)).is_ok(),
        "a drained mailbox takes messages again"
    );
}

#[test]
fn a_full_control_mailbox_refuses_try_send_but_not_send() {
    let capacity = 8;
    let s = TestSystem::new(1, capacity);
    s.add_fsm(1, false);
    // The only poller is held, so the control FSM is not handled either.
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    s.router.force_send(1, Msg::Block(gate_rx)).unwrap();
    assert!(wait_until(T, || s
        .router
        .mailbox(1)
        .is_some_and(|m| m.is_empty())));
    let accepted = accepted_try_sends(800, |v| s.router.try_send_control(v));
    assert!(
        accepted <= capacity as u64 + CHECK_INTERVAL,
        "{accepted} of 800 control messages queued with capacity {capacity}"
    );
    s.router.send_control(5000).unwrap();
    drop(gate_tx);
    assert!(wait_until(T, || s.control_seen.lock().len() == accepted as usize + 1));
    assert_eq!(s.control_seen.lock().last(), Some(&5000));
}

#[test]
fn control_messages_are_handled() {
    let s = TestSystem::new(2, 1024);
    for v in 0..100 {
        s.router.send_control(v).unwrap();
    }
    assert!(wait_until(T, || s.control_seen.lock().len() == 100));
    assert_eq!(*s.control_seen.lock(), (0..100).collect::<Vec<_>>());
}

#[test]
fn end_sees_every_fsm_of_the_round() {
    let s = TestSystem::new(1, 1 << 20);
    for id in 0..50 {
        s.add_fsm(id, false);
    }
    for id in 0..50 {
        for v in 0..10 {
            s.router.force_send(id, Msg::Value(v)).unwrap();
        }
    }
    assert!(wait_until(T, || s.handled.load(Ordering::SeqCst) == 500));
    let rounds = s.rounds_seen.lock().clone();
    assert!(!rounds.is_empty());
    assert!(rounds.iter().all(|n| *n >= 1));
}

#[test]
fn shutdown_joins_pollers_and_drops_every_fsm() {
    let mut s = TestSystem::new(2, 1024);
    for id in 0..100 {
        s.add_fsm(id, false);
    }
    for id in 0..50 {
        s.router.force_send(id, Msg::Value(id)).unwrap();
    }
    assert!(wait_until(T, || s.handled.load(Ordering::SeqCst) == 50));
    s.system.shutdown();
    assert_eq!(s.drops.load(Ordering::SeqCst), 100);
    assert!(s.router.is_shutdown());
}

#[test]
fn close_drops_an_idle_fsm() {
    let s = TestSystem::new(1, 1024);
    s.add_fsm(3, false);
    s.router.close(3);
    assert_eq!(s.drops.load(Ordering::SeqCst), 1);
    assert_eq!(s.router.alive_count(), 0);
}

/// A system with no poller threads of its own and an inline poller for the test's thread.
fn inline_system() -> (TestSystem, InlinePoller<Counter, Control, Handler>) {
    let s = TestSystem::new(0, 1 << 20);
    let poller = s.system.inline_poller(
        Builder {
            rounds_seen: s.rounds_seen.clone(),
        }
        .build(),
    );
    (s, poller)
}

#[test]
fn an_inline_poller_does_the_work_on_the_thread_that_polls() {
    let (s, mut poller) = inline_system();
    assert_eq!(s.system.pool_size(), 0);
    for id in 0..10 {
        s.add_fsm(id, true);
    }
    for v in 0..100 {
        for id in 0..10 {
            s.router.force_send(id, Msg::Value(v)).unwrap();
        }
    }
    s.router.send_control(7).unwrap();
    // No thread of the system's own exists to take the work.
    assert_eq!(s.handled.load(Ordering::SeqCst), 0);

    assert!(!poller.poll(usize::MAX), "everything done in one call");
    assert_eq!(s.handled.load(Ordering::SeqCst), 1000);
    assert_eq!(*s.control_seen.lock(), vec![7]);
    let seen = s.seen.lock().clone();
    for id in 0..10 {
        let values: Vec<u64> = seen
            .iter()
            .filter(|(f, _)| *f == id)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(values, (0..100).collect::<Vec<_>>(), "FIFO per FSM");
    }

    // Later messages schedule the FSMs again, for the next poll.
    s.router.force_send(3, Msg::Value(100)).unwrap();
    assert!(!poller.poll(usize::MAX));
    assert_eq!(s.handled.load(Ordering::SeqCst), 1001);
}

#[test]
fn an_inline_poller_stops_at_its_round_limit_and_resumes_where_it_stopped() {
    let (s, mut poller) = inline_system();
    s.add_fsm(1, true);
    // The handler takes 64 messages per round and keeps an FSM with more in its batch.
    for v in 0..1000 {
        s.router.force_send(1, Msg::Value(v)).unwrap();
    }
    assert!(poller.poll(2), "work is left after two rounds");
    assert_eq!(s.handled.load(Ordering::SeqCst), 128);
    assert!(!poller.poll(usize::MAX));
    assert_eq!(s.handled.load(Ordering::SeqCst), 1000);
    let values: Vec<u64> = s.seen.lock().iter().map(|(_, v)| *v).collect();
    assert_eq!(values, (0..1000).collect::<Vec<_>>());
}

#[test]
fn dropping_an_inline_poller_closes_the_fsms_it_still_holds() {
    let (mut s, mut poller) = inline_system();
    s.add_fsm(1, false);
    s.add_fsm(2, false);
    for v in 0..1000 {
        s.router.force_send(1, Msg::Value(v)).unwrap();
    }
    s.router.force_send(2, Msg::Value(0)).unwrap();
    assert!(poller.poll(1));
    drop(poller);
    assert_eq!(
        s.drops.load(Ordering::SeqCst),
        1,
        "the FSM held in the batch"
    );
    assert!(
        s.router.force_send(1, Msg::Value(0)).is_err(),
        "its mailbox is closed"
    );
    // The system's shutdown drops the rest.
    s.system.shutdown();
    assert_eq!(s.drops.load(Ordering::SeqCst), 2);
}
