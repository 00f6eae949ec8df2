//! A minimal PD gRPC client for what the official client does not expose: raw timestamps and
//! id allocation.

use anyhow::{bail, Context, Result};
use proto::pdpb::{self, pd_client::PdClient};
use tonic::transport::Channel;

/// One connection to PD's gRPC service, with the cluster id learnt from GetMembers.
pub struct PdGrpc {
    client: PdClient<Channel>,
    cluster_id: u64,
}

impl PdGrpc {
    /// Connects to `addr` (`host:port`) and asks for the cluster id.
    pub async fn connect(addr: &str) -> Result<PdGrpc> {
        let mut client = PdClient::connect(format!("http://{addr}"))
            .await
            .with_context(|| format!("connect to PD {addr}"))?;
        let members = client
            .get_members(pdpb::GetMembersRequest { header: None })
            .await
            .context("GetMembers")?
            .into_inner();
        let header = members
            .header
            .context("GetMembers answered without header")?;
        check(&header)?;
        Ok(PdGrpc {
            client,
            cluster_id: header.cluster_id,
        })
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    fn header(&self) -> Option<pdpb::RequestHeader> {
        Some(pdpb::RequestHeader {
            cluster_id: self.cluster_id,
            sender_id: 0,
        })
    }

    /// One timestamp, as the client composes it: `physical_ms << 18 | logical`.
    pub async fn tso(&mut self) -> Result<u64> {
        let request = pdpb::TsoRequest {
            header: self.header(),
            count: 1,
            dc_location: String::new(),
        };
        let mut responses = self
            .client
            .tso(stream_of_one(request))
            .await
            .context("Tso")?
            .into_inner();
        let response = responses
            .message()
            .await
            .context("Tso stream")?
            .context("Tso stream ended without an answer")?;
        if let Some(header) = &response.header {
            check(header)?;
        }
        if response.count != 1 {
            bail!("Tso answered count {} for a request of 1", response.count);
        }
        let ts = response.timestamp.context("Tso answer without timestamp")?;
        let physical = u64::try_from(ts.physical).context("negative physical time")?;
        let logical = u64::try_from(ts.logical).context("negative logical time")?;
        Ok((physical << 18) + logical)
    }

    /// A fresh id from PD's allocator.
    pub async fn alloc_id(&mut self) -> Result<u64> {
        let response = self
            .client
            .alloc_id(pdpb::AllocIdRequest {
                header: self.header(),
            })
            .await
            .context("AllocID")?
            .into_inner();
        check(&response.header.context("AllocID answered without header")?)?;
        Ok(response.id)
    }
}

fn check(header: &pdpb::ResponseHeader) -> Result<()> {
    match &header.error {
        Some(e) if e.r#type != pdpb::ErrorType::Ok as i32 => {
            bail!("PD error {}: {}", e.r#type, e.message)
        }
        _ => Ok(()),
    }
}

/// A request stream holding one message and then staying open until the answer is read, so
/// the server does not see the stream end before it replies.
fn stream_of_one<T: Send + 'static>(item: T) -> impl futures::Stream<Item = T> + Send {
    use futures::StreamExt;
    futures::stream::once(async move { item }).chain(futures::stream::pending())
}
