//! Carries raftstore's answers from its threads to the gRPC runtime in batches.
//!
//! Raftstore answers a write on its apply thread, one callback per command, a whole apply
//! batch in a row. A tokio oneshot completed from a thread outside the runtime wakes the
//! waiting handler through the runtime's remote queue, and on the current-thread runtime
//! (the fleet's `grpc-concurrency = 1`) every such wake writes the runtime's eventfd: one
//! syscall per answer, and the runtime often wakes for a single answer and writes that
//! response alone. Measured on a loaded leader: ~1 eventfd write and ~1 response `writev`
//! per put.
//!
//! The relay is an unbounded channel into a task on the runtime. The channel wakes its
//! receiver only when the receiver waits (the first send takes the registered waker; later
//! sends find none), so an apply batch of N answers costs one wake. The relay task then
//! completes the N oneshots on the runtime's own thread, the released handlers run in one
//! round, and the connection writes their responses together.
//!
//! No answer is lost to the relay: a send that finds the relay gone completes the oneshot
//! directly, and a relay dropped with answers queued (its runtime shutting down) completes
//! them as it drops.

use std::cell::RefCell;

use raftstore::CmdResponse;
use tokio::sync::{mpsc, oneshot};

/// An answer on its way to the handler waiting on the receiver.
type Answer = (oneshot::Sender<CmdResponse>, CmdResponse);

/// The most answers the relay completes in one turn before it lets the runtime run others.
const RELAY_BATCH: usize = 256;

thread_local! {
    /// The relay serving the runtime this thread last started one on.
    static RELAY: RefCell<Option<mpsc::UnboundedSender<Answer>>> = const { RefCell::new(None) };
}

/// Where answers for requests made on this thread go: the relay of the runtime this thread
/// runs (started on first use), or `None` off any runtime.
pub fn for_this_runtime() -> Option<AnswerRoute> {
    RELAY.with(|slot| {
        let mut slot = slot.borrow_mut();
        if let Some(relay) = slot.as_ref().filter(|relay| !relay.is_closed()) {
            return Some(AnswerRoute(relay.clone()));
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (relay, answers) = mpsc::unbounded_channel();
        runtime.spawn(relay_answers(Relay { answers }));
        *slot = Some(relay.clone());
        Some(AnswerRoute(relay))
    })
}

/// The sending end of one runtime's relay.
#[derive(Clone)]
pub struct AnswerRoute(mpsc::UnboundedSender<Answer>);

/// Completes `answer` for the handler on `waiter`. Called on a tokio runtime's thread (a
/// lease read answered where it was asked), it completes the oneshot at once, which wakes the
/// handler locally; called from any other thread it goes through `route`.
pub fn deliver(
    route: Option<&AnswerRoute>,
    waiter: oneshot::Sender<CmdResponse>,
    answer: CmdResponse,
) {
    let on_runtime = tokio::runtime::Handle::try_current().is_ok();
    match route {
        Some(AnswerRoute(relay)) if !on_runtime => {
            if let Err(mpsc::error::SendError((waiter, answer))) = relay.send((waiter, answer)) {
                let _ = waiter.send(answer);
            }
        }
        _ => {
            // The handler may have given up (timed out); nothing waits for the answer then.
            let _ = waiter.send(answer);
        }
    }
}

/// The receiving end, which hands over whatever is queued when it is dropped.
struct Relay {
    answers: mpsc::UnboundedReceiver<Answer>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Later sends fail and complete their oneshots themselves; queued ones are done here.
        self.answers.close();
        while let Ok((waiter, answer)) = self.answers.try_recv() {
            let _ = waiter.send(answer);
        }
    }
}

async fn relay_answers(mut relay: Relay) {
    let mut batch = Vec::with_capacity(RELAY_BATCH);
    while relay.answers.recv_many(&mut batch, RELAY_BATCH).await > 0 {
        for (waiter, answer) in batch.drain(..) {
            let _ = waiter.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::raft_cmdpb::RaftCmdResponse;

    fn answer(term: u64) -> CmdResponse {
        let mut response = RaftCmdResponse::default();
        response
            .header
            .get_or_insert_with(Default::default)
            .current_term = term;
        CmdResponse::new(response)
    }

    fn term(resp: &CmdResponse) -> u64 {
        resp.response.header.as_ref().map_or(0, |h| h.current_term)
    }

    #[tokio::test]
    async fn every_answer_from_another_thread_reaches_its_handler() {
        let route = for_this_runtime().expect("inside a runtime");
        let (waiters, receivers): (Vec<_>, Vec<_>) = (0..1000).map(|_| oneshot::channel()).unzip();
        let answering = std::thread::spawn(move || {
            for (i, waiter) in waiters.into_iter().enumerate() {
                deliver(Some(&route), waiter, answer(i as u64));
            }
        });
        for (i, receiver) in receivers.into_iter().enumerate() {
            assert_eq!(term(&receiver.await.expect("answered")), i as u64);
        }
        answering.join().expect("the answering thread ran");
    }

    #[tokio::test]
    async fn one_relay_serves_a_runtime_thread() {
        let first = for_this_runtime().expect("inside a runtime");
        let second = for_this_runtime().expect("inside a runtime");
        assert!(first.0.same_channel(&second.0));
    }

    #[test]
    fn off_a_runtime_there_is_no_relay_and_answers_go_straight() {
        assert!(for_this_runtime().is_none());
        let (waiter, receiver) = oneshot::channel();
        deliver(None, waiter, answer(7));
        assert_eq!(term(&receiver.blocking_recv().expect("answered")), 7);
    }

    #[test]
    fn answers_queued_when_the_runtime_stops_are_still_delivered() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let route = runtime.block_on(async { for_this_runtime().expect("inside a runtime") });
        // The relay task has not run yet: these stay queued until the runtime drops it.
        let receivers: Vec<_> = (0..3)
            .map(|i| {
                let (waiter, receiver) = oneshot::channel();
                deliver(Some(&route), waiter, answer(i));
                receiver
            })
            .collect();
        drop(runtime);
        for (i, receiver) in receivers.into_iter().enumerate() {
            assert_eq!(term(&receiver.blocking_recv().expect("answered")), i as u64);
        }
        // With the relay gone, a late answer goes straight to its handler.
        let (waiter, receiver) = oneshot::channel();
        deliver(Some(&route), waiter, answer(9));
        assert_eq!(term(&receiver.blocking_recv().expect("answered")), 9);
    }
}
