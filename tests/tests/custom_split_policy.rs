//! A store program of its own: `components/server/examples/custom_split_policy.rs` embeds the
//! store through the server library with a split policy that gives every section of the
//! keyspace (a key `#name`, followed by its entries `#name/...`) a region of its own. Run as
//! every store of a real fleet, it makes PD's region table split exactly at the section heads.

use std::time::Duration;

use shoal_fleet_tests::binaries::profile_dir;
use shoal_fleet_tests::fleet::SETTLE_TIMEOUT;
use shoal_fleet_tests::keyspace::pd_key;
use shoal_fleet_tests::{region_json, wait_ok, Fleet, FleetOptions};

const SECTIONS: [&str; 3] = ["alpha", "beta", "gamma"];
const ENTRIES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_its_own_split_policy_splits_regions_at_section_heads() {
    let example = profile_dir().unwrap().join("examples/custom_split_policy");
    assert!(
        example.is_file(),
        "{} is missing: build it with `cargo build --example custom_split_policy` (cargo test \
         --workspace and make test build it)",
        example.display()
    );
    let fleet = Fleet::start(FleetOptions {
        store_binary: Some(example),
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    fleet.wait_settled(3, SETTLE_TIMEOUT).await.unwrap();
    let client = fleet.raw_client().await.unwrap();
    let mut written = Vec::new();
    for section in SECTIONS {
        written.push(format!("#{section}"));
        for i in 0..ENTRIES {
            written.push(format!("#{section}/{i:03}"));
        }
    }
    // Keys that are no section: they stay where they are.
    for i in 0..ENTRIES {
        written.push(format!("plain/{i:03}"));
    }
    for key in &written {
        client
            .put(key.clone(), key.as_bytes().to_vec())
            .await
            .unwrap();
    }

    let heads: Vec<Vec<u8>> = SECTIONS
        .iter()
        .map(|s| pd_key(format!("#{s}").as_bytes()))
        .collect();
    let (first_section, after_sections) = (pd_key(b"#"), pd_key(b"$"));
    wait_ok(
        Duration::from_secs(60),
        "regions split at the section heads",
        || {
            let regions = fleet.regions().map_err(|e| format!("{e:#}"))?;
            let starts: Vec<Vec<u8>> = regions.iter().map(region_json::start_key).collect();
            for head in &heads {
                if !starts.contains(head) {
                    return Err(format!("no region starts at {}", hex::encode(head)));
                }
            }
            // Among the section keys, regions start only at section heads.
            for start in &starts {
                let in_sections = start >= &first_section && start < &after_sections;
                if in_sections && !heads.contains(start) {
                    return Err(format!("a region starts at {}", hex::encode(start)));
                }
            }
            Ok(())
        },
    )
    .await;

    for key in &written {
        let got = client.get(key.clone()).await.unwrap();
        assert_eq!(got.as_deref(), Some(key.as_bytes()), "{key}");
    }
}
