//! Transaction heartbeats against a 3-store fleet: KvTxnHeartBeat by hand (the TTL of a live
//! primary only grows, a finished or unknown transaction is `txn_not_found` and nothing is
//! written), the status check that rolls back a primary whose TTL ran out, and the official
//! client's heartbeats keeping optimistic and pessimistic transactions alive well past their
//! first TTL while transactions without heartbeats are resolved away. Also the refusal of a
//! pessimistic lock below its start_ts.
//!
//! No step waits for time to pass as such: each waits for a condition (a lock seen, a raised
//! TTL, PD's clock past a lock's TTL).

use std::time::{Duration, Instant};

use proto::kvrpcpb::{Action, MvccInfo, Op, TxnHeartBeatResponse};
use shoal_fleet_tests::keyspace::txn_store_key;
use shoal_fleet_tests::txn_by_hand::{
    check_txn_status, commit_keys, mvcc_of, pessimistic_lock_keys, prewrite_puts, rollback_keys,
    txn_heart_beat, wait_until_physical_past, wait_until_physical_past_within,
};
use shoal_fleet_tests::txn_split::{regions_holding, split_at_each};
use shoal_fleet_tests::{wait_for, wait_until_async, Fleet, FleetOptions};
use tikv_client::transaction::HeartbeatOption;
use tikv_client::{
    Backoff, CheckLevel, Error, ProtoLockInfo, RetryOptions, TimestampExt, Transaction,
    TransactionClient, TransactionOptions,
};

/// Client 0.4's prewrite TTL before the milliseconds since `begin` are added.
const DEFAULT_LOCK_TTL: u64 = 3_000;
/// Client 0.4's pessimistic lock TTL; its heartbeats advise ms-since-begin plus this.
const MAX_TTL: u64 = 20_000;
/// The TTL of locks that must stay alive for the whole test.
const LIVE_TTL: u64 = 600_000;

async fn now(client: &TransactionClient) -> u64 {
    client.current_timestamp().await.unwrap().version()
}

fn assert_no_error(resp: &TxnHeartBeatResponse) {
    assert!(
        resp.region_error.is_none() && resp.error.is_none(),
        "{resp:?}"
    );
}

/// Asserts a heartbeat answer is `txn_not_found` for (`start_ts`, `key`) and nothing else.
fn assert_txn_not_found(resp: &TxnHeartBeatResponse, start_ts: u64, key: &[u8]) {
    assert!(resp.region_error.is_none(), "{resp:?}");
    let error = resp.error.as_ref().expect("a key error");
    let not_found = error.txn_not_found.as_ref().expect("txn_not_found");
    assert_eq!(not_found.start_ts, start_ts, "{resp:?}");
    assert_eq!(not_found.primary_key, txn_store_key(key), "{resp:?}");
    assert!(
        error.locked.is_none() && error.abort.is_empty() && error.retryable.is_empty(),
        "{resp:?}"
    );
    assert_eq!(resp.lock_ttl, 0, "{resp:?}");
}

fn lock_ttl(info: &MvccInfo) -> Option<u64> {
    info.lock.as_ref().map(|l| l.ttl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_by_hand_raise_a_live_lock_and_find_finished_transactions_gone() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();

    // A live primary: its TTL becomes max(current, advise) and the answer says so.
    let start = now(&client).await;
    let resp = prewrite_puts(&fleet, &[b"h-p", b"h-s"], b"v", start, 3_000).await;
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let resp = txn_heart_beat(&fleet, b"h-p", start, 10_000).await;
    assert_no_error(&resp);
    assert_eq!(resp.lock_ttl, 10_000);
    assert_eq!(lock_ttl(&mvcc_of(&fleet, b"h-p").await), Some(10_000));
    // A lower advice never lowers it.
    for advise in [5_000, 0] {
        let resp = txn_heart_beat(&fleet, b"h-p", start, advise).await;
        assert_no_error(&resp);
        assert_eq!(resp.lock_ttl, 10_000);
    }
    assert_eq!(lock_ttl(&mvcc_of(&fleet, b"h-p").await), Some(10_000));

    // A secondary holding the transaction's lock: raised like the primary, as TiKV does
    // (it checks the start_ts only); the primary is left alone.
    let resp = txn_heart_beat(&fleet, b"h-s", start, 30_000).await;
    assert_no_error(&resp);
    assert_eq!(resp.lock_ttl, 30_000);
    assert_eq!(lock_ttl(&mvcc_of(&fleet, b"h-s").await), Some(30_000));
    assert_eq!(lock_ttl(&mvcc_of(&fleet, b"h-p").await), Some(10_000));

    // Another start_ts on the same key, and a key never written: not found, nothing written.
    let before = mvcc_of(&fleet, b"h-p").await;
    let resp = txn_heart_beat(&fleet, b"h-p", start + 1, 50_000).await;
    assert_txn_not_found(&resp, start + 1, b"h-p");
    assert_eq!(mvcc_of(&fleet, b"h-p").await, before);
    let resp = txn_heart_beat(&fleet, b"h-never", start, 50_000).await;
    assert_txn_not_found(&resp, start, b"h-never");
    assert_eq!(mvcc_of(&fleet, b"h-never").await, MvccInfo::default());

    // Committed: not found, and the commit records stay as they were.
    let commit_ts = now(&client).await;
    let resp = commit_keys(&fleet, &[b"h-p", b"h-s"], start, commit_ts).await;
    assert!(
        resp.error.is_none() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let before = mvcc_of(&fleet, b"h-p").await;
    assert!(
        before.lock.is_none() && before.writes.len() == 1,
        "{before:?}"
    );
    let resp = txn_heart_beat(&fleet, b"h-p", start, 50_000).await;
    assert_txn_not_found(&resp, start, b"h-p");
    assert_eq!(mvcc_of(&fleet, b"h-p").await, before);

    // Rolled back: the same.
    let start = now(&client).await;
    let resp = prewrite_puts(&fleet, &[b"h-r"], b"v", start, 3_000).await;
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let resp = rollback_keys(&fleet, &[b"h-r"], start).await;
    assert!(
        resp.error.is_none() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let before = mvcc_of(&fleet, b"h-r").await;
    assert!(
        before.lock.is_none()
            && matches!(&before.writes[..], [w] if w.r#type == Op::Rollback as i32),
        "{before:?}"
    );
    let resp = txn_heart_beat(&fleet, b"h-r", start, 50_000).await;
    assert_txn_not_found(&resp, start, b"h-r");
    assert_eq!(mvcc_of(&fleet, b"h-r").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_check_rolls_back_an_expired_primary_but_not_a_heartbeaten_one() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();

    // Two transactions prewritten with a 1 ms TTL; only one gets a heartbeat.
    let dead = now(&client).await;
    let resp = prewrite_puts(&fleet, &[b"e-dead"], b"v", dead, 1).await;
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let live = now(&client).await;
    let resp = prewrite_puts(&fleet, &[b"e-live"], b"v", live, 1).await;
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let resp = txn_heart_beat(&fleet, b"e-live", live, LIVE_TTL).await;
    assert_no_error(&resp);
    assert_eq!(resp.lock_ttl, LIVE_TTL);
    wait_until_physical_past(&client, live, 1).await;

    // The next status check finds the first expired and rolls it back...
    let reader = now(&client).await;
    let status = check_txn_status(&fleet, b"e-dead", dead, reader).await;
    assert!(
        status.error.is_none() && status.region_error.is_none(),
        "{status:?}"
    );
    assert_eq!(status.action, Action::TtlExpireRollback as i32);
    assert_eq!(
        (
            status.commit_version,
            status.lock_ttl,
            status.lock_info.is_none()
        ),
        (0, 0, true)
    );
    let info = mvcc_of(&fleet, b"e-dead").await;
    assert!(
        info.lock.is_none()
            && matches!(&info.writes[..], [w] if w.r#type == Op::Rollback as i32 && w.start_ts == dead),
        "{info:?}"
    );
    // ...after which its heartbeat finds nothing, and a second check reports it rolled back.
    assert_txn_not_found(
        &txn_heart_beat(&fleet, b"e-dead", dead, LIVE_TTL).await,
        dead,
        b"e-dead",
    );
    let again = check_txn_status(&fleet, b"e-dead", dead, now(&client).await).await;
    assert!(again.error.is_none(), "{again:?}");
    assert_eq!(again.action, Action::NoAction as i32);
    assert_eq!(
        (
            again.commit_version,
            again.lock_ttl,
            again.lock_info.is_none()
        ),
        (0, 0, true)
    );

    // ...while the heartbeaten one is reported alive with its raised TTL and keeps its lock.
    let status = check_txn_status(&fleet, b"e-live", live, reader).await;
    assert!(
        status.error.is_none() && status.region_error.is_none(),
        "{status:?}"
    );
    assert_eq!(status.lock_ttl, LIVE_TTL, "{status:?}");
    assert_eq!(status.commit_version, 0);
    assert_eq!(
        status.lock_info.as_ref().map(|l| l.lock_version),
        Some(live)
    );
    assert_eq!(lock_ttl(&mvcc_of(&fleet, b"e-live").await), Some(LIVE_TTL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pessimistic_lock_below_its_start_ts_is_refused_and_locks_nothing() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();

    let start = now(&client).await;
    for for_update_ts in [start - 1, 0] {
        let resp =
            pessimistic_lock_keys(&fleet, &[b"b-p", b"b-s"], start, for_update_ts, MAX_TTL).await;
        assert!(resp.region_error.is_none(), "{resp:?}");
        assert!(
            matches!(&resp.errors[..], [e] if e.abort.contains("for_update_ts")
                && e.locked.is_none() && e.conflict.is_none()),
            "for_update_ts {for_update_ts}: {resp:?}"
        );
        assert!(resp.values.is_empty() && resp.not_founds.is_empty());
        for key in [&b"b-p"[..], b"b-s"] {
            assert_eq!(mvcc_of(&fleet, key).await, MvccInfo::default(), "{key:?}");
        }
    }
    let now_ts = client.current_timestamp().await.unwrap();
    assert!(client
        .scan_locks(&now_ts, .., 100)
        .await
        .unwrap()
        .is_empty());

    // The same request at for_update_ts = start_ts is served.
    let resp = pessimistic_lock_keys(&fleet, &[b"b-p", b"b-s"], start, start, MAX_TTL).await;
    assert!(
        resp.region_error.is_none() && resp.errors.is_empty(),
        "{resp:?}"
    );
    assert_eq!(
        mvcc_of(&fleet, b"b-s").await.lock.map(|l| l.r#type),
        Some(Op::PessimisticLock as i32)
    );
}

async fn begin(
    client: &TransactionClient,
    options: TransactionOptions,
    heartbeat: HeartbeatOption,
) -> Transaction {
    client
        .begin_with_options(
            options
                .heartbeat_option(heartbeat)
                .drop_check(CheckLevel::Warn),
        )
        .await
        .unwrap()
}

/// The lock of the transaction at `start_ts` on `key`, as a lock scan sees it.
async fn lock_of(client: &TransactionClient, key: &str, start_ts: u64) -> Option<ProtoLockInfo> {
    let now_ts = client.current_timestamp().await.unwrap();
    client
        .scan_locks(&now_ts, .., 100)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.key == key.as_bytes() && l.lock_version == start_ts)
}

async fn read(client: &TransactionClient, key: &str) -> Option<Vec<u8>> {
    let ts = client.current_timestamp().await.unwrap();
    let mut snapshot = client.snapshot(ts, TransactionOptions::new_optimistic().read_only());
    snapshot.get(key.to_owned()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_heartbeats_keep_a_stalled_commit_alive_past_its_ttl() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();
    // Primaries and secondaries in different regions: a prewrite locks the primary's region
    // while the secondaries' region waits behind another transaction's lock.
    split_at_each(&fleet, &[b"m".to_vec()], Duration::from_secs(30))
        .await
        .unwrap();
    for (primary, secondary) in [("a-kept", "z-kept"), ("a-lapsed", "z-lapsed")] {
        let keys = [primary.as_bytes().to_vec(), secondary.as_bytes().to_vec()];
        assert_eq!(regions_holding(&fleet, &keys), 2, "{keys:?}");
    }
    let blocker = now(&client).await;
    let resp = prewrite_puts(
        &fleet,
        &[b"z-kept", b"z-lapsed"],
        b"blocker",
        blocker,
        LIVE_TTL,
    )
    .await;
    assert!(
        resp.errors.is_empty() && resp.region_error.is_none(),
        "{resp:?}"
    );

    // Two commits that keep retrying the blocked secondary (a long lock backoff); only the
    // first sends heartbeats.
    let patient = TransactionOptions::new_optimistic().retry_options(RetryOptions {
        lock_backoff: Backoff::no_jitter_backoff(10, 200, 10_000),
        ..RetryOptions::default_optimistic()
    });
    let began = Instant::now();
    let mut kept = begin(
        &client,
        patient.clone(),
        HeartbeatOption::FixedTime(Duration::from_millis(200)),
    )
    .await;
    let mut lapsed = begin(&client, patient, HeartbeatOption::NoHeartbeat).await;
    let (kept_ts, lapsed_ts) = (
        kept.start_timestamp().version(),
        lapsed.start_timestamp().version(),
    );
    kept.put("a-kept".to_owned(), "kept".to_owned())
        .await
        .unwrap();
    kept.put("z-kept".to_owned(), "kept".to_owned())
        .await
        .unwrap();
    lapsed
        .put("a-lapsed".to_owned(), "lapsed".to_owned())
        .await
        .unwrap();
    lapsed
        .put("z-lapsed".to_owned(), "lapsed".to_owned())
        .await
        .unwrap();
    let kept_commit = tokio::spawn(async move { kept.commit().await });
    let lapsed_commit = tokio::spawn(async move { lapsed.commit().await });

    // Both primaries are locked; the heartbeats raise the first one's TTL.
    let lapsed_lock = wait_for(Duration::from_secs(30), "the lapsed primary lock", || {
        lock_of(&client, "a-lapsed", lapsed_ts)
    })
    .await;
    wait_until_async(
        Duration::from_secs(30),
        "a heartbeat on the kept primary",
        || async {
            lock_of(&client, "a-kept", kept_ts)
                .await
                .is_some_and(|l| l.lock_ttl >= MAX_TTL)
        },
    )
    .await;
    // Each prewrite TTL is DEFAULT_LOCK_TTL plus the ms since its begin (client 0.4), so at
    // most this; wait until both primaries are past it.
    let prewrite_ttl = DEFAULT_LOCK_TTL + began.elapsed().as_millis() as u64;
    assert!(lapsed_lock.lock_ttl <= prewrite_ttl, "{lapsed_lock:?}");
    for ts in [kept_ts, lapsed_ts] {
        wait_until_physical_past(&client, ts, prewrite_ttl as i64).await;
    }

    // A reader meets both: the lapsed primary has expired and is rolled back; the kept one is
    // alive, so the reader gives up on it and it stays.
    assert_eq!(read(&client, "a-lapsed").await, None);
    assert!(lock_of(&client, "a-lapsed", lapsed_ts).await.is_none());
    let reader_ts = client.current_timestamp().await.unwrap();
    let mut reader = client.snapshot(reader_ts, TransactionOptions::new_optimistic().read_only());
    let met = reader.get("a-kept".to_owned()).await;
    assert!(
        matches!(met, Err(Error::ResolveLockError(ref live)) if live.iter().any(|l| l.lock_version == kept_ts)),
        "{met:?}"
    );
    assert!(lock_of(&client, "a-kept", kept_ts).await.is_some());

    // Once the blocker goes, the kept transaction commits and the lapsed one cannot.
    let resp = rollback_keys(&fleet, &[b"z-kept", b"z-lapsed"], blocker).await;
    assert!(
        resp.error.is_none() && resp.region_error.is_none(),
        "{resp:?}"
    );
    let kept_result = tokio::time::timeout(Duration::from_secs(60), kept_commit)
        .await
        .expect("the kept commit ends")
        .unwrap();
    assert!(
        matches!(kept_result, Ok(Some(_))),
        "the kept transaction did not commit: {kept_result:?}"
    );
    let lapsed_result = tokio::time::timeout(Duration::from_secs(60), lapsed_commit)
        .await
        .expect("the lapsed commit ends")
        .unwrap();
    assert!(
        lapsed_result.is_err(),
        "a rolled-back transaction committed: {lapsed_result:?}"
    );
    assert_eq!(read(&client, "a-kept").await, Some(b"kept".to_vec()));
    assert_eq!(read(&client, "z-kept").await, Some(b"kept".to_vec()));
    assert_eq!(read(&client, "a-lapsed").await, None);
    assert_eq!(read(&client, "z-lapsed").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pessimistic_heartbeats_keep_locks_alive_past_their_ttl() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let client = fleet.txn_client().await.unwrap();

    // Both lock a key (TTL MAX_TTL) and then sit idle; only the first sends heartbeats.
    let mut kept = begin(
        &client,
        TransactionOptions::new_pessimistic(),
        HeartbeatOption::FixedTime(Duration::from_millis(200)),
    )
    .await;
    let mut lapsed = begin(
        &client,
        TransactionOptions::new_pessimistic(),
        HeartbeatOption::NoHeartbeat,
    )
    .await;
    let (kept_ts, lapsed_ts) = (
        kept.start_timestamp().version(),
        lapsed.start_timestamp().version(),
    );
    kept.put("hp".to_owned(), "kept".to_owned()).await.unwrap();
    lapsed
        .put("np".to_owned(), "lapsed".to_owned())
        .await
        .unwrap();
    let lapsed_lock = lock_of(&client, "np", lapsed_ts).await.expect("a lock");
    assert_eq!(lapsed_lock.lock_ttl, MAX_TTL);
    // A heartbeat advises ms-since-begin + MAX_TTL, above the lock's first TTL.
    wait_until_async(
        Duration::from_secs(30),
        "a heartbeat on the kept lock",
        || async {
            lock_of(&client, "hp", kept_ts)
                .await
                .is_some_and(|l| l.lock_ttl > MAX_TTL)
        },
    )
    .await;
    for ts in [kept_ts, lapsed_ts] {
        wait_until_physical_past_within(&client, ts, MAX_TTL as i64, Duration::from_secs(60)).await;
    }

    // Locking reads of other transactions: the lapsed lock has expired and is resolved away;
    // the kept one is alive, so the locker gives up on it.
    let mut other = begin(
        &client,
        TransactionOptions::new_pessimistic(),
        HeartbeatOption::NoHeartbeat,
    )
    .await;
    assert_eq!(other.get_for_update("np".to_owned()).await.unwrap(), None);
    other
        .put("np".to_owned(), "other".to_owned())
        .await
        .unwrap();
    other.commit().await.unwrap();
    let brief = TransactionOptions::new_pessimistic().retry_options(RetryOptions {
        lock_backoff: Backoff::no_jitter_backoff(10, 10, 1),
        ..RetryOptions::default_pessimistic()
    });
    let mut blocked = begin(&client, brief, HeartbeatOption::NoHeartbeat).await;
    let met = blocked.get_for_update("hp".to_owned()).await;
    assert!(
        met.is_err(),
        "a live pessimistic lock was taken over: {met:?}"
    );
    blocked.rollback().await.unwrap();
    assert!(lock_of(&client, "hp", kept_ts).await.is_some());

    // The client's own heartbeat call answers the TTL it left on the primary.
    assert!(kept.send_heart_beat().await.unwrap() > MAX_TTL);

    // The kept transaction commits; the lapsed one, whose lock is gone, cannot.
    kept.commit().await.unwrap();
    let lapsed_result = lapsed.commit().await;
    assert!(
        lapsed_result.is_err(),
        "a transaction whose lock was resolved committed: {lapsed_result:?}"
    );
    assert_eq!(read(&client, "hp").await, Some(b"kept".to_vec()));
    assert_eq!(read(&client, "np").await, Some(b"other".to_vec()));
}
