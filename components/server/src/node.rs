//! The steps before a store can serve: its directories, its engines, PD, its identity.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::{KvEngine, KvEngineOptions, RaftLogEngine, RaftLogOptions};
use pd_client::{Backoff, PdClient};
use tracing::{info, warn};

use crate::config::PdSection;
use crate::errors::ServerError;

/// The layout of a data directory.
#[derive(Clone, Debug)]
pub struct DataDirs {
    pub root: PathBuf,
    /// RocksDB: the state machine and region metadata.
    pub db: PathBuf,
    /// raft-engine: every region's raft log.
    pub raft: PathBuf,
    /// Snapshot files being generated, sent, received, applied.
    pub snap: PathBuf,
}

impl DataDirs {
    pub fn new(root: &Path) -> DataDirs {
        DataDirs {
            root: root.to_path_buf(),
            db: root.join("db"),
            raft: root.join("raft"),
            snap: root.join("snap"),
        }
    }

    /// Creates every directory that is missing.
    pub fn create(&self) -> Result<(), ServerError> {
        for dir in [&self.root, &self.db, &self.raft, &self.snap] {
            std::fs::create_dir_all(dir).map_err(|source| ServerError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Opens both engines, RocksDB tuned by `kv_options` and the raft log by
    /// `raft_options`; a damaged file fails here with its name.
    pub fn open_engines(
        &self,
        kv_options: &KvEngineOptions,
        raft_options: &RaftLogOptions,
    ) -> Result<(KvEngine, RaftLogEngine), ServerError> {
        let kv = KvEngine::open_with(&self.db, kv_options)?;
        let raft = RaftLogEngine::open_with(&self.raft, raft_options)?;
        Ok((kv, raft))
    }
}

/// Connects to PD, retrying until it answers or `start_timeout` passes (PD may be starting
/// at the same time as the stores).
pub async fn connect_pd(
    cfg: &PdSection,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> Result<PdClient, ServerError> {
    let pd_cfg = pd_client::Config {
        endpoints: cfg.endpoints.clone(),
        connect_timeout: Duration::from_secs(3).min(cfg.request_timeout),
        request_timeout: cfg.request_timeout,
        retry_limit: 10,
        tls,
    };
    let deadline = Instant::now() + cfg.start_timeout;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        match PdClient::connect(pd_cfg.clone()).await {
            Ok(pd) => {
                info!(cluster_id = pd.cluster_id(), leader = %pd.leader_url(), "pd connected");
                return Ok(pd);
            }
            Err(e @ (pd_client::Error::InvalidEndpoint(_) | pd_client::Error::NoEndpoints)) => {
                return Err(e.into())
            }
            Err(e) => {
                let wait = backoff.next_delay();
                if Instant::now() + wait >= deadline {
                    return Err(ServerError::PdUnreachable {
                        timeout: cfg.start_timeout,
                        last_error: e.to_string(),
                    });
                }
                warn!(error = %e, "pd not reachable yet, retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}
