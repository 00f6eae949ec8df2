//! The KV engine on a real directory.

use engine::{Error, KvEngine, KvRead, CF_DEFAULT, CF_LOCK, CF_RAFT, CF_WRITE};
use proto::raft_serverpb::RaftApplyState;

fn collect(engine: &KvEngine, cf: &str, start: &[u8], end: &[u8], reverse: bool) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let f = |k: &[u8], _: &[u8]| {
        keys.push(k.to_vec());
        Ok(true)
    };
    if reverse {
        engine.reverse_scan_cf(cf, start, end, f).unwrap();
    } else {
        engine.scan_cf(cf, start, end, f).unwrap();
    }
    keys
}

#[test]
fn batches_cover_every_column_family_and_delete_range() {
    let dir = tempfile::tempdir().unwrap();
    let kv = KvEngine::open(dir.path()).unwrap();
    let mut wb = kv.write_batch();
    for cf in [CF_DEFAULT, CF_LOCK, CF_WRITE, CF_RAFT] {
        for k in [b"a", b"b", b"c", b"d"] {
            wb.put_cf(cf, k, cf.as_bytes()).unwrap();
        }
    }
    kv.write(&wb, true).unwrap();
    let mut wb = kv.write_batch();
    wb.delete_cf(CF_LOCK, b"a").unwrap();
    wb.delete_range_cf(CF_WRITE, b"b", b"d").unwrap();
    kv.write(&wb, false).unwrap();
    assert_eq!(
        kv.get_value_cf(CF_DEFAULT, b"a").unwrap(),
        Some(b"default".to_vec())
    );
    assert_eq!(kv.get_value_cf(CF_LOCK, b"a").unwrap(), None);
    assert_eq!(
        collect(&kv, CF_WRITE, b"", b"", false),
        vec![b"a".to_vec(), b"d".to_vec()]
    );
    assert!(matches!(
        kv.get_value_cf("nope", b"a"),
        Err(Error::UnknownCf(_))
    ));
    let mut wb = kv.write_batch();
    assert!(matches!(
        wb.put_cf("nope", b"a", b"b"),
        Err(Error::UnknownCf(_))
    ));
}

#[test]
fn snapshots_are_isolated_and_scans_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let kv = KvEngine::open(dir.path()).unwrap();
    let mut wb = kv.write_batch();
    for k in [b"k1", b"k2", b"k3", b"k4"] {
        wb.put_cf(CF_DEFAULT, k, b"old").unwrap();
    }
    kv.write(&wb, false).unwrap();
    let snap = kv.snapshot();
    let mut wb = kv.write_batch();
    wb.put_cf(CF_DEFAULT, b"k2", b"new").unwrap();
    wb.put_cf(CF_DEFAULT, b"k5", b"new").unwrap();
    kv.write(&wb, false).unwrap();
    assert_eq!(
        snap.get_value_cf(CF_DEFAULT, b"k2").unwrap(),
        Some(b"old".to_vec())
    );
    assert_eq!(snap.get_value_cf(CF_DEFAULT, b"k5").unwrap(), None);
    assert_eq!(
        kv.get_value_cf(CF_DEFAULT, b"k2").unwrap(),
        Some(b"new".to_vec())
    );
    // The snapshot outlives the engine handle it came from.
    let moved = std::thread::spawn(move || {
        let mut n = 0;
        snap.scan_cf(CF_DEFAULT, b"k2", b"k4", |_, _| {
            n += 1;
            Ok(true)
        })
        .unwrap();
        n
    })
    .join()
    .unwrap();
    assert_eq!(moved, 2);
    assert_eq!(
        collect(&kv, CF_DEFAULT, b"k2", b"k5", true),
        vec![b"k4".to_vec(), b"k3".to_vec(), b"k2".to_vec()]
    );
    // Stopping early.
    let mut first = None;
    kv.scan_cf(CF_DEFAULT, b"", b"", |k, _| {
        first = Some(k.to_vec());
        Ok(false)
    })
    .unwrap();
    assert_eq!(first, Some(b"k1".to_vec()));
}

#[test]
fn save_points_undo_only_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let kv = KvEngine::open(dir.path()).unwrap();
    let mut wb = kv.write_batch();
    wb.put_cf(CF_DEFAULT, b"keep", b"1").unwrap();
    wb.set_save_point();
    wb.put_cf(CF_DEFAULT, b"undo", b"2").unwrap();
    wb.rollback_to_save_point().unwrap();
    wb.set_save_point();
    wb.put_cf(CF_DEFAULT, b"also", b"3").unwrap();
    wb.pop_save_point().unwrap();
    assert!(wb.rollback_to_save_point().is_err());
    assert_eq!(wb.count(), 2);
    kv.write(&wb, true).unwrap();
    assert_eq!(
        kv.get_value_cf(CF_DEFAULT, b"keep").unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(kv.get_value_cf(CF_DEFAULT, b"undo").unwrap(), None);
    assert_eq!(
        kv.get_value_cf(CF_DEFAULT, b"also").unwrap(),
        Some(b"3".to_vec())
    );
}

#[test]
fn reopen_keeps_data_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    {
        let kv = KvEngine::open(dir.path()).unwrap();
        let mut wb = kv.write_batch();
        wb.put_msg_cf(
            CF_RAFT,
            b"apply",
            &RaftApplyState {
                applied_index: 42,
                ..Default::default()
            },
        )
        .unwrap();
        wb.put_cf(CF_DEFAULT, b"x", b"y").unwrap();
        kv.write(&wb, true).unwrap();
        kv.flush().unwrap();
        let mut wb = kv.write_batch();
        wb.put_cf(CF_DEFAULT, b"after-flush", b"z").unwrap();
        kv.write(&wb, false).unwrap();
    }
    let kv = KvEngine::open(dir.path()).unwrap();
    let state: RaftApplyState = kv.get_msg_cf(CF_RAFT, b"apply").unwrap().unwrap();
    assert_eq!(state.applied_index, 42);
    assert_eq!(
        kv.get_value_cf(CF_DEFAULT, b"x").unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(
        kv.get_value_cf(CF_DEFAULT, b"after-flush").unwrap(),
        Some(b"z".to_vec())
    );
    // A value that is not the message is a decode error, not a panic.
    assert!(matches!(
        kv.get_msg_cf::<RaftApplyState>(CF_DEFAULT, b"x"),
        Err(Error::Codec(_))
    ));
}

#[test]
fn truncated_table_file_refuses_to_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let kv = KvEngine::open(dir.path()).unwrap();
        let mut wb = kv.write_batch();
        for i in 0..1000u32 {
            wb.put_cf(CF_DEFAULT, &i.to_be_bytes(), &[7u8; 100])
                .unwrap();
        }
        kv.write(&wb, true).unwrap();
        kv.flush().unwrap();
    }
    let sst = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .expect("a table file after flush");
    let len = std::fs::metadata(&sst).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&sst).unwrap();
    f.set_len(len / 2).unwrap();
    let err = KvEngine::open(dir.path()).expect_err("a truncated table must not open");
    let name = sst.file_name().unwrap().to_string_lossy().to_string();
    assert!(err.to_string().contains(&name), "{err} names {name}");
}
