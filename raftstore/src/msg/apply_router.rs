//! Routes committed entries and control messages to apply FSMs (the apply pool).

use crate::errors::{Error, Result};
use crate::fsm::apply::{ApplyControlFsm, ApplyFsm};
use crate::msg::apply::ApplyMsg;

/// Routes apply work to regions' apply FSMs.
#[derive(Clone)]
pub struct ApplyRouter {
    pub inner: batch_system::Router<ApplyFsm, ApplyControlFsm>,
}

impl ApplyRouter {
    pub fn send(&self, region_id: u64, msg: ApplyMsg) -> Result<()> {
        self.inner
            .force_send(region_id, msg)
            .map_err(|_| Error::RegionNotFound(region_id))
    }
}
