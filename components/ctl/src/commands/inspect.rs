//! `cluster` and `region`: read-only views of PD's state.

use anyhow::{Context, Result};

use crate::cli::ClusterArgs;
use crate::human::now_unix_secs;
use crate::keyfmt::{escape, pd_hex_for_user_key, shown, unescape, user_key_for_pd_hex};
use crate::model::{RegionInfo, RegionsPage, RegionsSummary, StoresPage};
use crate::pd_http::PdHttp;
use crate::views;

/// Stores, one page of regions (at most `--limit`, from the region holding `--from`) and
/// totals over every region. PD answers each part without listing all regions, so this stays
/// fast with hundreds of thousands of them.
pub fn cluster(pd: &PdHttp, args: &ClusterArgs) -> Result<String> {
    let stores: StoresPage = pd.get("stores").context("listing stores")?;
    let summary: RegionsSummary = pd.get("regions/summary").context("summing up regions")?;
    let from = match &args.from {
        Some(key) => pd_hex_for_user_key(&unescape(key).context("key")?),
        None => String::new(),
    };
    let page: RegionsPage = pd
        .get(&format!("regions/key?key={from}&limit={}", args.limit))
        .context("listing regions")?;
    let shown = page.regions.len() as u64;
    let next = page
        .regions
        .last()
        .and_then(|r| user_key_for_pd_hex(&r.end_key));
    let more = if shown < summary.count {
        match next {
            Some(key) => format!(
                "({shown} of {} regions shown; the next page: --from '{}')\n",
                summary.count,
                escape(&key)
            ),
            None => format!("({shown} of {} regions shown)\n", summary.count),
        }
    } else {
        String::new()
    };
    Ok(format!(
        "STORES\n{}\nREGIONS\n{}{more}\n{}",
        views::stores_table(&stores.stores, now_unix_secs()),
        views::regions_table(&page.regions),
        views::totals(&stores.stores, &summary)
    ))
}

/// Details of the region with `id`, or of the region holding user key `key`.
pub fn region(pd: &PdHttp, id: Option<u64>, key: Option<&str>) -> Result<String> {
    let region: RegionInfo = match (id, key) {
        (Some(id), _) => pd
            .get(&format!("region/id/{id}"))
            .with_context(|| format!("looking up region {id}"))?,
        (None, Some(key)) => {
            let raw = unescape(key).context("key")?;
            pd.get(&format!("region/key/{}", pd_hex_for_user_key(&raw)))
                .with_context(|| format!("looking up the region of key {}", shown(key)))?
        }
        (None, None) => anyhow::bail!("give a region id or --key"),
    };
    // Guards against an answer without a region in it, which would print as "region 0".
    if region.id == 0 {
        anyhow::bail!("PD returned no region");
    }
    Ok(views::region_details(&region))
}
