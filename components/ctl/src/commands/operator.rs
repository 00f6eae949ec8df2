//! `operator ...`: PD's operator API.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::cli::OperatorCommand;
use crate::keyfmt::{pd_hex_for_user_key, unescape};
use crate::model::OperatorsPage;
use crate::pd_http::PdHttp;
use crate::views;

/// Runs one operator subcommand and returns what to print.
pub fn run(pd: &PdHttp, command: &OperatorCommand) -> Result<String> {
    match command {
        OperatorCommand::Show => {
            let page: OperatorsPage = pd.get("operators").context("listing operators")?;
            Ok(views::operators_table(&page.operators))
        }
        OperatorCommand::Cancel { region } => {
            pd.delete(&format!("operators/{region}"))
                .with_context(|| format!("cancelling the operator of region {region}"))?;
            Ok(format!("cancelled the operator of region {region}\n"))
        }
        create => {
            let body = create_body(create)?;
            pd.post("operators", &body)
                .with_context(|| format!("creating operator {body}"))?;
            Ok(format!("PD accepted {body}\n"))
        }
    }
}

/// The JSON body PD expects for an operator-creating subcommand.
pub fn create_body(command: &OperatorCommand) -> Result<Value> {
    Ok(match command {
        OperatorCommand::TransferLeader { region, store } => {
            json!({"name": "transfer-leader", "region_id": region, "to_store_id": store})
        }
        OperatorCommand::AddPeer { region, store } => {
            json!({"name": "add-peer", "region_id": region, "store_id": store})
        }
        OperatorCommand::RemovePeer { region, store } => {
            json!({"name": "remove-peer", "region_id": region, "store_id": store})
        }
        OperatorCommand::Split { region, key } => {
            let raw = unescape(key).context("key")?;
            json!({"name": "split-region", "region_id": region, "keys": [pd_hex_for_user_key(&raw)]})
        }
        OperatorCommand::Show | OperatorCommand::Cancel { .. } => {
            anyhow::bail!("this operator subcommand creates nothing")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_the_pd_operator_api() {
        let body = create_body(&OperatorCommand::TransferLeader {
            region: 4,
            store: 2,
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"name":"transfer-leader","region_id":4,"to_store_id":2})
        );
        let body = create_body(&OperatorCommand::AddPeer {
            region: 4,
            store: 3,
        })
        .unwrap();
        assert_eq!(body, json!({"name":"add-peer","region_id":4,"store_id":3}));
        let body = create_body(&OperatorCommand::RemovePeer {
            region: 4,
            store: 3,
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"name":"remove-peer","region_id":4,"store_id":3})
        );
    }

    #[test]
    fn split_keys_are_user_keys_sent_as_encoded_hex() {
        let body = create_body(&OperatorCommand::Split {
            region: 9,
            key: "m".into(),
        })
        .unwrap();
        assert_eq!(body["keys"][0], json!(pd_hex_for_user_key(b"m")));
        assert_eq!(body["name"], "split-region");
        assert!(create_body(&OperatorCommand::Split {
            region: 9,
            key: "\\x".into(),
        })
        .is_err());
    }
}
