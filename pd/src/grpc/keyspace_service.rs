//! The `keyspacepb.Keyspace` service: clients in keyspace mode load their keyspace's id here.

use std::sync::Arc;

use proto::keyspacepb::keyspace_server::Keyspace;
use proto::keyspacepb::{LoadKeyspaceRequest, LoadKeyspaceResponse};
use tonic::{Request, Response, Status};

use super::header::{error_header, ok_header};
use crate::state::PdState;

pub struct KeyspaceService {
    state: Arc<PdState>,
}

impl KeyspaceService {
    pub fn new(state: Arc<PdState>) -> KeyspaceService {
        KeyspaceService { state }
    }
}

#[tonic::async_trait]
impl Keyspace for KeyspaceService {
    async fn load_keyspace(
        &self,
        request: Request<LoadKeyspaceRequest>,
    ) -> Result<Response<LoadKeyspaceResponse>, Status> {
        let req = request.into_inner();
        let state = &self.state;
        state
            .metrics
            .grpc_requests
            .with_label_values(&["LoadKeyspace"])
            .inc();
        let result = state
            .check_header(req.header.as_ref())
            .and_then(|()| state.load_keyspace(&req.name));
        let resp = match result {
            Ok(meta) => LoadKeyspaceResponse {
                header: ok_header(state.cluster_id),
                keyspace: Some(meta),
            },
            Err(err) => {
                state
                    .metrics
                    .grpc_errors
                    .with_label_values(&["LoadKeyspace", err.label()])
                    .inc();
                LoadKeyspaceResponse {
                    header: error_header(state.cluster_id, &err),
                    keyspace: None,
                }
            }
        };
        Ok(Response::new(resp))
    }
}
