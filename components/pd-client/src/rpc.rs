//! The PD requests, one method each.

use proto::metapb;
use proto::pdpb::{self, ErrorType};

use crate::client::PdClient;
use crate::errors::{Error, Result};
use crate::header::request_header;
use crate::heartbeat::{self, RegionHeartbeatSender};

type RegionAndLeader = (metapb::Region, Option<metapb::Peer>);

impl PdClient {
    fn header(&self) -> Option<pdpb::RequestHeader> {
        request_header(self.cluster_id())
    }

    pub async fn is_bootstrapped(&self) -> Result<bool> {
        let req = pdpb::IsBootstrappedRequest {
            header: self.header(),
        };
        let resp = self
            .call("IsBootstrapped", |mut c| async move {
                c.is_bootstrapped(req).await
            })
            .await?;
        Ok(resp.bootstrapped)
    }

    /// Bootstraps the cluster with its first store and region; `api_version` (1 or 2, the
    /// store's `storage.api-version`) becomes the cluster's. `Err(AlreadyBootstrapped)` when
    /// another store got there first.
    pub async fn bootstrap(
        &self,
        store: metapb::Store,
        region: metapb::Region,
        api_version: u32,
    ) -> Result<()> {
        let req = pdpb::BootstrapRequest {
            header: self.header(),
            store: Some(store),
            region: Some(region),
            api_version,
        };
        self.call("Bootstrap", |mut c| {
            let req = req.clone();
            async move { c.bootstrap(req).await }
        })
        .await?;
        Ok(())
    }

    /// A cluster-unique id.
    pub async fn alloc_id(&self) -> Result<u64> {
        let req = pdpb::AllocIdRequest {
            header: self.header(),
        };
        let resp = self
            .call("AllocID", |mut c| async move { c.alloc_id(req).await })
            .await?;
        if resp.id == 0 {
            return Err(Error::MissingField {
                method: "AllocID",
                field: "id",
            });
        }
        Ok(resp.id)
    }

    /// Registers or updates a store.
    /// Registers the store or updates its address and labels. PD refuses (`Err(Pd {
    /// kind: IncompatibleVersion, .. })`) a store whose `api_version` (1 or 2; 0 = not
    /// checked) is not the cluster's.
    pub async fn put_store(&self, store: metapb::Store, api_version: u32) -> Result<()> {
        let req = pdpb::PutStoreRequest {
            header: self.header(),
            store: Some(store),
            api_version,
        };
        self.call("PutStore", |mut c| {
            let req = req.clone();
            async move { c.put_store(req).await }
        })
        .await?;
        Ok(())
    }

    pub async fn get_store(&self, store_id: u64) -> Result<metapb::Store> {
        let req = pdpb::GetStoreRequest {
            header: self.header(),
            store_id,
        };
        let resp = self
            .call("GetStore", |mut c| async move { c.get_store(req).await })
            .await?;
        resp.store.ok_or(Error::StoreNotFound(store_id))
    }

    pub async fn get_all_stores(&self, exclude_tombstone: bool) -> Result<Vec<metapb::Store>> {
        let req = pdpb::GetAllStoresRequest {
            header: self.header(),
            exclude_tombstone_stores: exclude_tombstone,
        };
        let resp = self
            .call("GetAllStores", |mut c| async move {
                c.get_all_stores(req).await
            })
            .await?;
        Ok(resp.stores)
    }

    pub async fn store_heartbeat(&self, stats: pdpb::StoreStats) -> Result<()> {
        let req = pdpb::StoreHeartbeatRequest {
            header: self.header(),
            stats: Some(stats),
        };
        self.call("StoreHeartbeat", |mut c| async move {
            c.store_heartbeat(req).await
        })
        .await?;
        Ok(())
    }

    /// The region holding `key` and its leader, if PD knows one.
    pub async fn get_region(&self, key: &[u8]) -> Result<RegionAndLeader> {
        let req = pdpb::GetRegionRequest {
            header: self.header(),
            region_key: key.to_vec(),
            need_buckets: false,
        };
        let resp = self
            .call("GetRegion", |mut c| {
                let req = req.clone();
                async move { c.get_region(req).await }
            })
            .await?;
        let region = resp
            .region
            .ok_or_else(|| Error::RegionNotFound(key.to_vec()))?;
        Ok((region, resp.leader))
    }

    /// The region with this id and its leader; `None` when PD does not know it.
    pub async fn get_region_by_id(&self, region_id: u64) -> Result<Option<RegionAndLeader>> {
        let req = pdpb::GetRegionByIdRequest {
            header: self.header(),
            region_id,
            need_buckets: false,
        };
        let resp = self
            .call("GetRegionByID", |mut c| async move {
                c.get_region_by_id(req).await
            })
            .await;
        match resp {
            Ok(resp) => Ok(resp.region.map(|r| (r, resp.leader))),
            Err(Error::Pd {
                kind: ErrorType::RegionNotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Regions from `start` (inclusive) to `end` (exclusive, empty = unbounded), at most
    /// `limit` (0 = all).
    pub async fn scan_regions(
        &self,
        start: &[u8],
        end: &[u8],
        limit: i32,
    ) -> Result<Vec<pdpb::Region>> {
        let req = pdpb::ScanRegionsRequest {
            header: self.header(),
            start_key: start.to_vec(),
            limit,
            end_key: end.to_vec(),
            need_buckets: false,
        };
        let resp = self
            .call("ScanRegions", |mut c| {
                let req = req.clone();
                async move { c.scan_regions(req).await }
            })
            .await?;
        if !resp.regions.is_empty() {
            return Ok(resp.regions);
        }
        // Older servers fill only the parallel lists of metas and leaders.
        let mut leaders = resp.leaders.into_iter();
        Ok(resp
            .region_metas
            .into_iter()
            .map(|region| pdpb::Region {
                region: Some(region),
                leader: leaders.next().filter(|l| l.id != 0),
                ..Default::default()
            })
            .collect())
    }

    /// New region and peer ids for splitting `region` into `count + 1` pieces.
    pub async fn ask_batch_split(
        &self,
        region: &metapb::Region,
        count: u32,
    ) -> Result<Vec<pdpb::SplitId>> {
        let req = pdpb::AskBatchSplitRequest {
            header: self.header(),
            region: Some(region.clone()),
            split_count: count,
        };
        let resp = self
            .call("AskBatchSplit", |mut c| {
                let req = req.clone();
                async move { c.ask_batch_split(req).await }
            })
            .await?;
        if resp.ids.len() != count as usize {
            return Err(Error::Pd {
                kind: ErrorType::Unknown,
                message: format!("asked for {count} split ids, got {}", resp.ids.len()),
            });
        }
        Ok(resp.ids)
    }

    pub async fn report_batch_split(&self, regions: Vec<metapb::Region>) -> Result<()> {
        let req = pdpb::ReportBatchSplitRequest {
            header: self.header(),
            regions,
        };
        self.call("ReportBatchSplit", |mut c| {
            let req = req.clone();
            async move { c.report_batch_split(req).await }
        })
        .await?;
        Ok(())
    }

    /// The GC safe point PD holds.
    pub async fn get_gc_safe_point(&self) -> Result<u64> {
        let req = pdpb::GetGcSafePointRequest {
            header: self.header(),
        };
        let resp = self
            .call("GetGCSafePoint", |mut c| async move {
                c.get_gc_safe_point(req).await
            })
            .await?;
        Ok(resp.safe_point)
    }

    /// One timestamp from PD's oracle, over a short-lived `Tso` stream.
    pub async fn get_timestamp(&self) -> Result<pdpb::Timestamp> {
        let req = pdpb::TsoRequest {
            header: self.header(),
            count: 1,
            dc_location: String::new(),
        };
        let resp = self
            .call("Tso", |mut c| {
                let req = req.clone();
                async move {
                    let mut answers = c.tso(tokio_stream::once(req)).await?.into_inner();
                    match answers.message().await? {
                        Some(r) => Ok(tonic::Response::new(r)),
                        None => Err(tonic::Status::unavailable("tso stream ended early")),
                    }
                }
            })
            .await?;
        if resp.count != 1 {
            return Err(Error::Pd {
                kind: ErrorType::Unknown,
                message: format!("asked for 1 timestamp, got {}", resp.count),
            });
        }
        resp.timestamp.ok_or(Error::MissingField {
            method: "Tso",
            field: "timestamp",
        })
    }

    /// Starts the region heartbeat stream. Heartbeats go out on one long-lived stream that
    /// reconnects by itself (with backoff) when PD restarts; operator steps PD sends back
    /// arrive on the returned receiver. Sending never blocks.
    pub fn region_heartbeats(
        &self,
    ) -> (
        RegionHeartbeatSender,
        tokio::sync::mpsc::UnboundedReceiver<pdpb::RegionHeartbeatResponse>,
    ) {
        heartbeat::start(self.clone())
    }
}
