//! Operators an administrator asks for through the HTTP API, checked against the region and
//! stores before they start.

use proto::metapb::PeerRole;
use serde::Deserialize;

use super::operator::{Now, OpKind, OpStep, Operator};
use super::IdSource;
use crate::cluster::{role, ClusterState, RegionInfo, StoreStatus};
use crate::config::ScheduleConfig;
use crate::error::{Error, Result};
use crate::state::MAX_SPLIT_COUNT;

/// The JSON body of `POST /operators`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum AdminRequest {
    TransferLeader {
        region_id: u64,
        to_store_id: u64,
    },
    AddPeer {
        region_id: u64,
        store_id: u64,
    },
    RemovePeer {
        region_id: u64,
        store_id: u64,
    },
    /// Keys are hex of encoded keys.
    SplitRegion {
        region_id: u64,
        keys: Vec<String>,
    },
}

impl AdminRequest {
    pub fn region_id(&self) -> u64 {
        match self {
            AdminRequest::TransferLeader { region_id, .. }
            | AdminRequest::AddPeer { region_id, .. }
            | AdminRequest::RemovePeer { region_id, .. }
            | AdminRequest::SplitRegion { region_id, .. } => *region_id,
        }
    }
}

fn refuse(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

fn store_status(
    state: &ClusterState,
    id: u64,
    cfg: &ScheduleConfig,
    now: Now,
) -> Result<StoreStatus> {
    state
        .store(id)
        .map(|s| s.status(now.unix_ms, cfg))
        .ok_or(Error::StoreNotFound(id))
}

/// Builds the operator `req` asks for, or says why it cannot run.
pub fn build(
    req: &AdminRequest,
    region: &RegionInfo,
    state: &ClusterState,
    cfg: &ScheduleConfig,
    now: Now,
    ids: &mut IdSource<'_>,
) -> Result<Operator> {
    let rid = region.id();
    let (desc, steps) = match req {
        AdminRequest::TransferLeader { to_store_id, .. } => {
            let leader = region
                .leader
                .ok_or_else(|| refuse(format!("region {rid} has no known leader")))?;
            if leader.store_id == *to_store_id {
                return Err(refuse(format!(
                    "store {to_store_id} already leads region {rid}"
                )));
            }
            let status = store_status(state, *to_store_id, cfg, now)?;
            if status != StoreStatus::Up {
                return Err(refuse(format!("store {to_store_id} is {}", status.name())));
            }
            match region.peer_on_store(*to_store_id) {
                Some(p) if role(p) == PeerRole::Voter => {}
                _ => {
                    return Err(refuse(format!(
                        "store {to_store_id} holds no voter of region {rid}"
                    )))
                }
            }
            (
                format!("transfer leader of region {rid} to store {to_store_id}"),
                vec![OpStep::TransferLeader {
                    from_store: leader.store_id,
                    to_store: *to_store_id,
                }],
            )
        }
        AdminRequest::AddPeer { store_id, .. } => {
            let status = store_status(state, *store_id, cfg, now)?;
            if status != StoreStatus::Up {
                return Err(refuse(format!("store {store_id} is {}", status.name())));
            }
            if let Some(p) = region.peer_on_store(*store_id) {
                return Err(refuse(format!(
                    "store {store_id} already holds peer {} of region {rid}",
                    p.id
                )));
            }
            let peer_id = ids()?;
            (
                format!("add a peer of region {rid} on store {store_id}"),
                vec![
                    OpStep::AddLearner {
                        store_id: *store_id,
                        peer_id,
                    },
                    OpStep::PromoteLearner {
                        store_id: *store_id,
                        peer_id,
                    },
                ],
            )
        }
        AdminRequest::RemovePeer { store_id, .. } => {
            let peer = *region
                .peer_on_store(*store_id)
                .ok_or_else(|| refuse(format!("store {store_id} holds no peer of region {rid}")))?;
            let is_voter = role(&peer) == PeerRole::Voter;
            if is_voter && region.voters().count() <= 1 {
                return Err(refuse(format!(
                    "peer {} is the only voter of region {rid}",
                    peer.id
                )));
            }
            let mut steps = Vec::new();
            if region.is_leader(peer.id) {
                let to = region
                    .voters()
                    .filter(|v| v.id != peer.id && !region.is_pending(v.id))
                    .filter(|v| {
                        matches!(
                            store_status(state, v.store_id, cfg, now),
                            Ok(StoreStatus::Up)
                        )
                    })
                    .map(|v| v.store_id)
                    .min()
                    .ok_or_else(|| {
                        refuse(format!(
                            "no healthy voter of region {rid} can take over leadership"
                        ))
                    })?;
                steps.push(OpStep::TransferLeader {
                    from_store: *store_id,
                    to_store: to,
                });
            }
            steps.push(OpStep::RemovePeer {
                store_id: *store_id,
                peer_id: peer.id,
            });
            (
                format!("remove the peer of region {rid} on store {store_id}"),
                steps,
            )
        }
        AdminRequest::SplitRegion { keys, .. } => {
            let mut decoded = Vec::with_capacity(keys.len());
            for k in keys {
                let key = crate::hex::decode(k)
                    .ok_or_else(|| refuse(format!("split key {k:?} is not hex")))?;
                if !region.strictly_contains(&key) {
                    return Err(refuse(format!("split key {k} is not inside region {rid}")));
                }
                // In API V2 every region boundary is one whole memcomparable-encoded key;
                // clients decode the boundaries they are given, and one that does not decode
                // would leave the keys around it unreachable through them.
                if state.api_version != 1 && !is_one_encoded_key(&key) {
                    return Err(refuse(format!(
                        "split key {k} is not a memcomparable-encoded key, as API V2 region \
                         boundaries are"
                    )));
                }
                decoded.push(key);
            }
            decoded.sort();
            decoded.dedup();
            if decoded.is_empty() {
                return Err(refuse("a split needs at least one key".into()));
            }
            if decoded.len() > MAX_SPLIT_COUNT as usize {
                return Err(refuse(format!(
                    "a split takes at most {MAX_SPLIT_COUNT} keys, not {}",
                    decoded.len()
                )));
            }
            (
                format!("split region {rid} at {} keys", decoded.len()),
                vec![OpStep::Split { keys: decoded }],
            )
        }
    };
    Ok(Operator::new(region, OpKind::Admin, desc, steps, cfg, now))
}

/// Whether `key` is exactly one memcomparable-encoded key, nothing missing or after it.
fn is_one_encoded_key(key: &[u8]) -> bool {
    matches!(keys::decode_bytes(key), Ok((_, used)) if used == key.len())
}

#[cfg(test)]
mod tests {
    use proto::metapb::PeerRole::{Learner, Voter};
    use proto::metapb::StoreState;

    use super::*;
    use crate::schedule::testkit::{counter, Fixture};

    /// A V1 cluster (raw region boundaries) with region 1 over `[b, d)`.
    fn fixture() -> Fixture {
        let mut f = Fixture::new(&[1, 2, 3, 4]);
        f.state.api_version = 1;
        f.add_region(
            1,
            b"b",
            b"d",
            &[(11, 1, Voter), (12, 2, Voter), (13, 3, Learner)],
            11,
        );
        f
    }

    fn run(f: &Fixture, json: &str) -> Result<Operator> {
        let req: AdminRequest = serde_json::from_str(json).unwrap();
        let region = f.state.regions.get(req.region_id()).unwrap();
        build(&req, region, &f.state, &f.cfg, f.now, &mut counter(100))
    }

    #[test]
    fn requests_parse_from_json() {
        let req: AdminRequest =
            serde_json::from_str(r#"{"name":"transfer-leader","region_id":1,"to_store_id":2}"#)
                .unwrap();
        assert_eq!(
            req,
            AdminRequest::TransferLeader {
                region_id: 1,
                to_store_id: 2
            }
        );
        assert!(
            serde_json::from_str::<AdminRequest>(r#"{"name":"explode","region_id":1}"#).is_err()
        );
    }

    #[test]
    fn valid_requests_become_operators() {
        let f = fixture();
        let op = run(
            &f,
            r#"{"name":"transfer-leader","region_id":1,"to_store_id":2}"#,
        )
        .unwrap();
        assert_eq!(op.kind, OpKind::Admin);
        let op = run(&f, r#"{"name":"add-peer","region_id":1,"store_id":4}"#).unwrap();
        assert_eq!(
            op.steps[0],
            OpStep::AddLearner {
                store_id: 4,
                peer_id: 100
            }
        );
        let op = run(&f, r#"{"name":"remove-peer","region_id":1,"store_id":1}"#).unwrap();
        assert_eq!(
            op.steps,
            vec![
                OpStep::TransferLeader {
                    from_store: 1,
                    to_store: 2
                },
                OpStep::RemovePeer {
                    store_id: 1,
                    peer_id: 11
                }
            ]
        );
        let op = run(
            &f,
            r#"{"name":"split-region","region_id":1,"keys":["63","6301","63"]}"#,
        )
        .unwrap();
        assert_eq!(
            op.steps,
            vec![OpStep::Split {
                keys: vec![b"c".to_vec(), b"c\x01".to_vec()]
            }]
        );
    }

    #[test]
    fn invalid_requests_are_refused_with_a_reason() {
        let mut f = fixture();
        f.set_store_state(4, StoreState::Tombstone);
        for bad in [
            r#"{"name":"transfer-leader","region_id":1,"to_store_id":1}"#,
            r#"{"name":"transfer-leader","region_id":1,"to_store_id":3}"#,
            r#"{"name":"transfer-leader","region_id":1,"to_store_id":9}"#,
            r#"{"name":"add-peer","region_id":1,"store_id":2}"#,
            r#"{"name":"add-peer","region_id":1,"store_id":4}"#,
            r#"{"name":"remove-peer","region_id":1,"store_id":4}"#,
            r#"{"name":"split-region","region_id":1,"keys":["61"]}"#,
            r#"{"name":"split-region","region_id":1,"keys":["zz"]}"#,
            r#"{"name":"split-region","region_id":1,"keys":[]}"#,
        ] {
            assert!(run(&f, bad).is_err(), "{bad}");
        }
    }

    /// In API V2 a split key must decode as one whole encoded key, as the client decodes
    /// every boundary it is given, and a split takes at most as many keys as PD hands out
    /// region ids for in one request.
    #[test]
    fn v2_split_keys_must_be_whole_encoded_keys_and_few_enough() {
        let mut f = Fixture::new(&[1, 2, 3]);
        f.state.api_version = 2;
        let start = keys::encode_bytes(b"r\0\0\0");
        let end = keys::encode_bytes(b"r\0\0\x01");
        f.add_region(
            1,
            &start,
            &end,
            &[(11, 1, Voter), (12, 2, Voter), (13, 3, Voter)],
            11,
        );
        let hex = |k: &[u8]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let split = |keys: &[Vec<u8>]| {
            let keys: Vec<String> = keys.iter().map(|k| format!("\"{}\"", hex(k))).collect();
            format!(
                r#"{{"name":"split-region","region_id":1,"keys":[{}]}}"#,
                keys.join(",")
            )
        };
        let hello = keys::encode_bytes(b"r\0\0\0hello");
        let op = run(&f, &split(std::slice::from_ref(&hello))).unwrap();
        assert_eq!(
            op.steps,
            vec![OpStep::Split {
                keys: vec![hello.clone()]
            }]
        );

        // Cut inside an encoded group: inside the region, but no key decodes from it.
        let torn = hello[..hello.len() - 3].to_vec();
        assert!(region_of(&f).strictly_contains(&torn));
        let err = run(&f, &split(&[torn])).unwrap_err().to_string();
        assert!(err.contains("memcomparable"), "{err}");
        // A whole key with bytes after it.
        let mut trailing = hello.clone();
        trailing.push(7);
        assert!(run(&f, &split(&[trailing])).is_err());

        let many: Vec<Vec<u8>> = (0..=MAX_SPLIT_COUNT)
            .map(|i| keys::encode_bytes(format!("r\0\0\0k{i:05}").as_bytes()))
            .collect();
        let err = run(&f, &split(&many)).unwrap_err().to_string();
        assert!(err.contains("at most 1024 keys"), "{err}");
        run(&f, &split(&many[..MAX_SPLIT_COUNT as usize])).unwrap();
    }

    fn region_of(f: &Fixture) -> &RegionInfo {
        f.state.regions.get(1).unwrap()
    }
}
