//! Small checks shared by the propose, apply and read paths.

use proto::metapb::{Region, RegionEpoch};
use proto::raft_cmdpb::{AdminCmdType, CmdType, RaftCmdRequest};

use crate::errors::{Error, Result};

/// Whether `key` (user key space) lies in the region.
pub fn check_key_in_region(key: &[u8], region: &Region) -> Result<()> {
    let after_start = key >= region.start_key.as_slice();
    let before_end = region.end_key.is_empty() || key < region.end_key.as_slice();
    if after_start && before_end {
        Ok(())
    } else {
        Err(Error::KeyNotInRegion {
            key: key.to_vec(),
            region_id: region.id,
            start_key: region.start_key.clone(),
            end_key: region.end_key.clone(),
        })
    }
}

/// Which parts of the epoch a command depends on: (version, conf_ver).
fn epoch_checks(req: &RaftCmdRequest) -> (bool, bool) {
    match req.admin_request.as_ref().map(|a| a.cmd_type()) {
        None => (true, false),
        Some(AdminCmdType::ChangePeer) | Some(AdminCmdType::ChangePeerV2) => (false, true),
        Some(AdminCmdType::Split)
        | Some(AdminCmdType::BatchSplit)
        | Some(AdminCmdType::PrepareMerge)
        | Some(AdminCmdType::CommitMerge)
        | Some(AdminCmdType::RollbackMerge) => (true, true),
        Some(_) => (false, false),
    }
}

/// Refuses a command whose epoch is older than the region's (`EpochNotMatch` with the
/// current region so the client can refresh its cache).
pub fn check_region_epoch(req: &RaftCmdRequest, region: &Region) -> Result<()> {
    let (check_ver, check_conf_ver) = epoch_checks(req);
    if !check_ver && !check_conf_ver {
        return Ok(());
    }
    let Some(from) = req.header.as_ref().and_then(|h| h.region_epoch.as_ref()) else {
        return Err(Error::InvalidRequest("missing region epoch".into()));
    };
    let current = region.region_epoch.unwrap_or_default();
    let stale = (check_ver && from.version != current.version)
        || (check_conf_ver && from.conf_ver != current.conf_ver);
    if stale {
        return Err(Error::EpochNotMatch {
            message: format!(
                "region {} epoch {:?} does not match request epoch {:?}",
                region.id, current, from
            ),
            regions: vec![region.clone()],
        });
    }
    Ok(())
}

/// True if `epoch` is older than `current` in either dimension.
pub fn is_epoch_stale(epoch: &RegionEpoch, current: &RegionEpoch) -> bool {
    epoch.version < current.version || epoch.conf_ver < current.conf_ver
}

/// Commands made only of reads go through the read path, never the log.
pub fn is_read_only(req: &RaftCmdRequest) -> bool {
    req.admin_request.is_none()
        && !req.requests.is_empty()
        && req
            .requests
            .iter()
            .all(|r| matches!(r.cmd_type(), CmdType::Get | CmdType::Snap))
}

/// Every key a command touches must be inside the region.
pub fn check_keys_in_region(req: &RaftCmdRequest, region: &Region) -> Result<()> {
    for r in &req.requests {
        match r.cmd_type() {
            CmdType::Get => {
                if let Some(g) = &r.get {
                    check_key_in_region(&g.key, region)?;
                }
            }
            CmdType::Put => {
                if let Some(p) = &r.put {
                    check_key_in_region(&p.key, region)?;
                }
            }
            CmdType::Delete => {
                if let Some(d) = &r.delete {
                    check_key_in_region(&d.key, region)?;
                }
            }
            CmdType::DeleteRange => {
                if let Some(d) = &r.delete_range {
                    check_key_in_region(&d.start_key, region)?;
                    if d.end_key.is_empty() {
                        if !region.end_key.is_empty() {
                            return Err(Error::InvalidRequest(
                                "delete range reaches past the region end".into(),
                            ));
                        }
                    } else if !region.end_key.is_empty() && d.end_key > region.end_key {
                        return Err(Error::InvalidRequest(
                            "delete range reaches past the region end".into(),
                        ));
                    }
                }
            }
            CmdType::Snap => {}
            CmdType::Invalid => return Err(Error::InvalidRequest("invalid command type".into())),
        }
    }
    Ok(())
}

/// Column family named by a request (empty = default), validated.
pub fn cf_or_default(cf: &str) -> Result<&str> {
    match cf {
        "" => Ok(engine::CF_DEFAULT),
        engine::CF_DEFAULT | engine::CF_LOCK | engine::CF_WRITE => Ok(cf),
        other => Err(Error::InvalidRequest(format!(
            "unknown column family {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::raft_cmdpb::{RaftRequestHeader, Request};

    fn region() -> Region {
        Region {
            id: 1,
            start_key: b"b".to_vec(),
            end_key: b"d".to_vec(),
            region_epoch: Some(RegionEpoch {
                conf_ver: 2,
                version: 3,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn keys_in_region() {
        let r = region();
        assert!(check_key_in_region(b"b", &r).is_ok());
        assert!(check_key_in_region(b"c", &r).is_ok());
        assert!(matches!(
            check_key_in_region(b"d", &r),
            Err(Error::KeyNotInRegion { .. })
        ));
        assert!(check_key_in_region(b"a", &r).is_err());
    }

    #[test]
    fn stale_version_is_refused_for_writes() {
        let r = region();
        let mut req = RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_epoch: Some(RegionEpoch {
                    conf_ver: 2,
                    version: 2,
                }),
                ..Default::default()
            }),
            requests: vec![Request {
                cmd_type: CmdType::Put as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(
            check_region_epoch(&req, &r),
            Err(Error::EpochNotMatch { regions, .. }) if regions[0].id == 1
        ));
        req.header.as_mut().unwrap().region_epoch = r.region_epoch;
        assert!(check_region_epoch(&req, &r).is_ok());
    }

    #[test]
    fn unknown_cf_is_refused() {
        assert_eq!(cf_or_default("").unwrap(), "default");
        assert!(cf_or_default("raft").is_err());
    }
}
