//! `cluster` and `region`: read-only views of PD's state.

use anyhow::{Context, Result};

use crate::human::now_unix_secs;
use crate::keyfmt::{pd_hex_for_user_key, unescape};
use crate::model::{RegionInfo, RegionsPage, StoresPage};
use crate::pd_http::PdHttp;
use crate::views;

/// Stores, regions and totals.
pub fn cluster(pd: &PdHttp) -> Result<String> {
    let stores: StoresPage = pd.get("stores").context("listing stores")?;
    let regions: RegionsPage = pd.get("regions").context("listing regions")?;
    Ok(format!(
        "STORES\n{}\nREGIONS\n{}\n{}",
        views::stores_table(&stores.stores, now_unix_secs()),
        views::regions_table(&regions.regions),
        views::totals(&stores.stores, &regions.regions)
    ))
}

/// Details of the region with `id`, or of the region holding user key `key`.
pub fn region(pd: &PdHttp, id: Option<u64>, key: Option<&str>) -> Result<String> {
    let region: RegionInfo = match (id, key) {
        (Some(id), _) => pd
            .get(&format!("region/id/{id}"))
            .with_context(|| format!("looking up region {id}"))?,
        (None, Some(key)) => {
            let raw = unescape(key)?;
            pd.get(&format!("region/key/{}", pd_hex_for_user_key(&raw)))
                .with_context(|| format!("looking up the region of key {key:?}"))?
        }
        (None, None) => anyhow::bail!("give a region id or --key"),
    };
    // Guards against an answer without a region in it, which would print as "region 0".
    if region.id == 0 {
        anyhow::bail!("PD returned no region");
    }
    Ok(views::region_details(&region))
}
