//! `store list`, `store delete` and `store cancel-delete`.

use anyhow::{Context, Result};

use crate::human::now_unix_secs;
use crate::model::{StoreInfo, StoresPage};
use crate::pd_http::PdHttp;
use crate::views;

pub fn list(pd: &PdHttp) -> Result<String> {
    let stores: StoresPage = pd.get("stores").context("listing stores")?;
    Ok(views::stores_table(&stores.stores, now_unix_secs()))
}

/// Asks PD to decommission store `id` and explains what follows.
pub fn delete(pd: &PdHttp, id: u64) -> Result<String> {
    pd.delete(&format!("store/{id}"))
        .with_context(|| format!("decommissioning store {id}"))?;
    Ok(decommission_notice(id))
}

/// Asks PD to cancel store `id`'s decommission (Offline -> Up).
pub fn cancel_delete(pd: &PdHttp, id: u64) -> Result<String> {
    let store: StoreInfo = pd
        .get(&format!("store/{id}"))
        .with_context(|| format!("reading store {id}"))?;
    if let Some(notice) = nothing_to_cancel(id, &store.store.state_name) {
        return Ok(notice);
    }
    pd.post(
        &format!("store/{id}/state?state=Up"),
        &serde_json::Value::Null,
    )
    .with_context(|| format!("cancelling the decommission of store {id}"))?;
    Ok(format!(
        "store {id} is Up again: PD no longer moves its regions away (peers already moved \
         stay where they are; the balancer may bring some back).\n"
    ))
}

/// What `cancel-delete` says instead of asking PD, when the store is not being
/// decommissioned: its recorded state is Up (PD shows a silent Up store as Disconnected or
/// Down), or it is already Tombstone, which cannot be undone.
fn nothing_to_cancel(id: u64, state_name: &str) -> Option<String> {
    match state_name {
        "Offline" => None,
        "Tombstone" => Some(format!(
            "store {id} is Tombstone: its decommission has finished and cannot be undone.\n"
        )),
        other => Some(format!(
            "store {id} is not being decommissioned (it is {other}); nothing to cancel.\n"
        )),
    }
}

fn decommission_notice(id: u64) -> String {
    format!(
        "store {id} is now Offline. PD will move every region off it (adding peers on other \
         stores, then removing this store's peers); once it holds no region it becomes \
         Tombstone and the process can be shut down.\nWatch progress with: shoal-ctl store list\n\
         Undo before it is Tombstone with: shoal-ctl store cancel-delete {id}\n"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_an_offline_store_has_a_decommission_to_cancel() {
        assert_eq!(super::nothing_to_cancel(4, "Offline"), None);
        let up = super::nothing_to_cancel(4, "Up").unwrap();
        assert!(up.contains("not being decommissioned"), "{up}");
        let gone = super::nothing_to_cancel(4, "Tombstone").unwrap();
        assert!(gone.contains("cannot be undone"), "{gone}");
    }

    #[test]
    fn notice_names_the_store_and_the_end_state() {
        let text = super::decommission_notice(4);
        assert!(text.starts_with("store 4 is now Offline."));
        assert!(text.contains("Tombstone"));
    }
}
