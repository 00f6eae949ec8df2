//! Finding the address of a store by id.

use futures::future::BoxFuture;
use pd_client::PdClient;
use proto::metapb::StoreState;

/// Why a store's address is unknown.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("store {0} is unknown")]
    Unknown(u64),
    #[error("store {0} is a tombstone")]
    Tombstone(u64),
    #[error("store {0} has no address")]
    NoAddress(u64),
    #[error("pd: {0}")]
    Pd(#[from] pd_client::Error),
}

/// Looks up a store's `host:port`.
pub trait StoreResolver: Send + Sync + 'static {
    fn resolve(&self, store_id: u64) -> BoxFuture<'static, Result<String, ResolveError>>;
}

/// Asks PD for the store's advertised address.
pub struct PdStoreResolver {
    pd: PdClient,
}

impl PdStoreResolver {
    pub fn new(pd: PdClient) -> PdStoreResolver {
        PdStoreResolver { pd }
    }
}

impl StoreResolver for PdStoreResolver {
    fn resolve(&self, store_id: u64) -> BoxFuture<'static, Result<String, ResolveError>> {
        let pd = self.pd.clone();
        Box::pin(async move {
            let store = match pd.get_store(store_id).await {
                Ok(s) => s,
                Err(pd_client::Error::StoreNotFound(id)) => return Err(ResolveError::Unknown(id)),
                Err(e) => return Err(e.into()),
            };
            if store.state == StoreState::Tombstone as i32 {
                return Err(ResolveError::Tombstone(store_id));
            }
            if store.address.is_empty() {
                return Err(ResolveError::NoAddress(store_id));
            }
            Ok(store.address)
        })
    }
}
