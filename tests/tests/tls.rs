//! TLS and mutual TLS on every link of a real fleet: PD and three stores talk TLS among
//! themselves, the official clients connect with certificates, and clients without an
//! acceptable certificate are refused on gRPC and HTTP alike.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use security::generate::{generate_fleet_certs, FleetCerts};
use serde_json::json;
use shoal_fleet_tests::fleet::FleetTls;
use shoal_fleet_tests::tls::{
    client_tls, client_tls_without_cert, extra_client_cert, CLIENT_CN, SERVER_CN,
};
use shoal_fleet_tests::txn_split::split_at_each;
use shoal_fleet_tests::{binaries, region_json, wait_until_async, Fleet, FleetOptions, PdApi};
use tikv_client::{Config, RawClient, TransactionClient};

/// A CN the fleet's CA signs but `cert-allowed-cn` does not list.
const INTRUDER_CN: &str = "intruder";
/// How long a refused client may keep trying before the test stops waiting for it.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(60);

fn tls_options() -> FleetOptions {
    FleetOptions {
        tls: Some(FleetTls {
            cert_allowed_cn: vec![SERVER_CN.into(), CLIENT_CN.into()],
            extra_client_cns: vec![INTRUDER_CN.into()],
        }),
        ..FleetOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_fleet_serves_certified_clients_and_refuses_others() {
    // Settling proves store->PD (registration, heartbeats) and store->store (replication).
    let fleet = Fleet::start(tls_options()).await.unwrap();
    let certs = fleet.certs().unwrap().clone();

    let raw = fleet.raw_client().await.unwrap();
    raw.put("tls-raw".to_owned(), "one".to_owned())
        .await
        .unwrap();
    assert_eq!(
        raw.get("tls-raw".to_owned()).await.unwrap(),
        Some(b"one".to_vec())
    );
    let txn_client = fleet.txn_client().await.unwrap();
    let mut txn = txn_client.begin_optimistic().await.unwrap();
    txn.put("tls-txn-a".to_owned(), "a".to_owned())
        .await
        .unwrap();
    txn.put("tls-txn-z".to_owned(), "z".to_owned())
        .await
        .unwrap();
    txn.commit().await.unwrap();

    // A split (store->PD asks for ids, reports it) and a leader transfer (store->store).
    split_at_each(&fleet, &[b"tls-txn-m".to_vec()], Duration::from_secs(60))
        .await
        .unwrap();
    transfer_a_leader(&fleet).await;
    let mut snapshot = txn_client.begin_optimistic().await.unwrap();
    assert_eq!(
        snapshot.get("tls-txn-a".to_owned()).await.unwrap(),
        Some(b"a".to_vec())
    );
    assert_eq!(
        snapshot.get("tls-txn-z".to_owned()).await.unwrap(),
        Some(b"z".to_vec())
    );
    snapshot.rollback().await.unwrap();
    assert_eq!(
        raw.get("tls-raw".to_owned()).await.unwrap(),
        Some(b"one".to_vec())
    );

    // shoal-ctl with the client certificate: `mvcc` reads from the leader store directly
    // (it once dialled plaintext there and failed with an h2 protocol error).
    let ctl_with = |certificates: Option<&FleetCerts>, args: &[&str]| {
        let mut command = Command::new(binaries::ctl_binary().unwrap());
        command.args(["--pd", &fleet.pd_grpc, "--pd-http", &fleet.pd_http]);
        if let Some(certs) = certificates {
            command
                .arg("--ca-path")
                .arg(&certs.ca)
                .arg("--cert-path")
                .arg(&certs.client_cert)
                .arg("--key-path")
                .arg(&certs.client_key);
        }
        command.args(args).output().unwrap()
    };
    let ctl = |args: &[&str]| ctl_with(Some(&certs), args);
    for args in [
        &["txn", "get", "tls-txn-a"][..],
        &["mvcc", "--key", "tls-txn-a"][..],
    ] {
        let out = ctl(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "shoal-ctl {args:?} over TLS failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains('a'), "shoal-ctl {args:?}: {stdout}");
    }
    let report = String::from_utf8(ctl(&["mvcc", "--key", "tls-txn-a"]).stdout).unwrap();
    assert!(report.contains("type=Put value=a"), "{report}");

    // Without the certificates, shoal-ctl fails, and says the fleet wants them (the transport
    // errors alone do not: "PD cluster failed to respond", a TLS alert shown as bytes).
    for args in [&["get", "tls-txn-a"][..], &["store", "list"][..]] {
        let out = ctl_with(None, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "shoal-ctl {args:?} without certificates"
        );
        assert!(
            stderr.contains("serves TLS: pass --ca-path, --cert-path and --key-path"),
            "shoal-ctl {args:?}: {stderr}"
        );
    }

    // With certificates of another authority, shoal-ctl fails and says what TLS refused.
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = generate_fleet_certs(foreign_dir.path(), SERVER_CN, CLIENT_CN, 1).unwrap();
    for args in [&["get", "tls-txn-a"][..], &["store", "list"][..]] {
        let out = ctl_with(Some(&foreign), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "shoal-ctl {args:?} with foreign certificates"
        );
        assert!(
            stderr.contains("hint: TLS with PD at") && stderr.contains("certificate authority"),
            "shoal-ctl {args:?}: {stderr}"
        );
    }

    // PD's HTTP API over https: with the client certificate on both of PD's ports.
    let with_cert = client_tls(&certs.ca, &certs.client_cert, &certs.client_key).unwrap();
    let api = PdApi::with_tls(&fleet.pd_http, with_cert.clone());
    assert_eq!(api.stores().unwrap().len(), 3);
    let on_grpc_port = PdApi::with_tls(&fleet.pd_grpc, with_cert.clone());
    assert_eq!(on_grpc_port.stores().unwrap().len(), 3);
    // The store's status port too.
    let status = format!("https://{}/metrics", fleet.store(0).status_addr);
    let metrics = shoal_fleet_tests::pd_api::agent(Some(with_cert))
        .get(&status)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(metrics.contains("shoal_"), "{metrics}");

    // Refused over HTTP: no certificate, and plaintext.
    let no_cert = client_tls_without_cert(&certs.ca).unwrap();
    for addr in [&fleet.pd_http, &fleet.pd_grpc] {
        let refused = PdApi::with_tls(addr, no_cert.clone()).stores();
        assert!(refused.is_err(), "https without a certificate: {refused:?}");
        let plain = PdApi::new(addr).stores();
        assert!(plain.is_err(), "plaintext to a TLS port: {plain:?}");
    }
    let refused = shoal_fleet_tests::pd_api::agent(Some(no_cert))
        .get(&status)
        .call();
    assert!(refused.is_err(), "status without a certificate was served");

    // Refused over gRPC: a plaintext client, a certificate of another CA, a CN not allowed.
    let foreign = tempfile::tempdir().unwrap();
    let other_ca = security::generate::CertAuthority::new("another CA").unwrap();
    let (foreign_cert, foreign_key) = other_ca
        .issue(CLIENT_CN, 30)
        .unwrap()
        .write(foreign.path(), "foreign")
        .unwrap();
    let (intruder_cert, intruder_key) = extra_client_cert(&certs, INTRUDER_CN);
    let cases = [
        ("no certificate", Config::default()),
        (
            "a certificate of another CA",
            Config::default().with_security(&certs.ca, &foreign_cert, &foreign_key),
        ),
        (
            "a CN not in cert-allowed-cn",
            Config::default().with_security(&certs.ca, &intruder_cert, &intruder_key),
        ),
    ];
    for (what, config) in cases {
        assert_refused(&fleet, what, config).await;
    }
    // The intruder's certificate is otherwise fine: PD refuses it on HTTP too, and says why.
    let intruder = client_tls(&certs.ca, &intruder_cert, &intruder_key).unwrap();
    assert!(PdApi::with_tls(&fleet.pd_http, intruder).stores().is_err());
    let pd_log = std::fs::read_to_string(fleet.dir().join("pd.stderr.log")).unwrap();
    assert!(
        pd_log.contains("CN is not in cert-allowed-cn") && pd_log.contains(INTRUDER_CN),
        "PD's log does not name the refused CN"
    );

    // The fleet still serves the certified client after all that.
    assert_eq!(
        raw.get("tls-raw".to_owned()).await.unwrap(),
        Some(b"one".to_vec())
    );
}

/// Moves the leader of the region holding the first key to another store and waits for PD
/// to see it there.
async fn transfer_a_leader(fleet: &Fleet) {
    let key = shoal_fleet_tests::keyspace::txn_pd_key(b"tls-txn-a");
    let path = format!("region/key/{}", hex::encode(&key));
    // PD learns a region made by a split from the split's report, and its leader from the
    // leader's first heartbeat after it.
    let with_leader = std::sync::Mutex::new(None);
    wait_until_async(
        Duration::from_secs(60),
        "PD to know the leader of the region after the split",
        || async {
            let region = fleet
                .pd_get(&path)
                .ok()
                .filter(|r| region_json::leader_store(r).is_some());
            let known = region.is_some();
            *with_leader.lock().unwrap() = region;
            known
        },
    )
    .await;
    let region = with_leader.into_inner().unwrap().expect("waited for it");
    let from = region_json::leader_store(&region).expect("waited for it");
    let to = region_json::voter_stores(&region)
        .into_iter()
        .find(|s| *s != from)
        .unwrap();
    let region_id = region_json::id(&region);
    wait_until_async(
        Duration::from_secs(60),
        "the leader to move over TLS",
        || async {
            let body =
                json!({"name": "transfer-leader", "region_id": region_id, "to_store_id": to});
            let _ = fleet.pd_post("operators", &body);
            fleet
                .pd_get(&path)
                .is_ok_and(|r| region_json::leader_store(&r) == Some(to))
        },
    )
    .await;
}

/// A client built with `config` cannot use the fleet: connecting fails, or its first write
/// does. A client still retrying at the deadline counts as refused too.
async fn assert_refused(fleet: &Fleet, what: &str, config: Config) {
    let attempt = async {
        let raw = RawClient::new_with_config(vec![fleet.pd_grpc.clone()], config.clone())
            .await
            .map_err(|e| e.to_string())?;
        raw.put("tls-intruder".to_owned(), "x".to_owned())
            .await
            .map_err(|e| e.to_string())?;
        let _ = TransactionClient::new_with_config(vec![fleet.pd_grpc.clone()], config)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    match tokio::time::timeout(REFUSAL_DEADLINE, attempt).await {
        Ok(Ok(())) => panic!("a client with {what} was served"),
        Ok(Err(e)) => eprintln!("refused as expected ({what}): {e}"),
        Err(_) => eprintln!("still refused at the deadline ({what})"),
    }
}

/// Writes a store config whose `[security]` names `cert` as the certificate.
fn store_config_with(dir: &Path, ca: &Path, cert: &Path, key: &Path) -> std::path::PathBuf {
    let path = dir.join("store.toml");
    std::fs::write(
        &path,
        format!(
            "[pd]\nendpoints = [\"127.0.0.1:1\"]\n\n[security]\nca-path = {:?}\ncert-path = {:?}\nkey-path = {:?}\n",
            ca.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    path
}

#[test]
fn tls_bad_certificate_stops_the_binaries_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs =
        security::generate::generate_fleet_certs(dir.path(), SERVER_CN, CLIENT_CN, 30).unwrap();
    let junk = dir.path().join("not-a-cert.pem");
    std::fs::write(&junk, "garbage\n").unwrap();

    let config = store_config_with(dir.path(), &certs.ca, &junk, &certs.server_key);
    let out = Command::new(binaries::server_binary().unwrap())
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--addr")
        .arg("127.0.0.1:0")
        .arg("--status-addr")
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the store started: {stderr}");
    assert!(stderr.contains("not-a-cert.pem"), "{stderr}");

    // PD with a key that does not match its certificate.
    let out = Command::new(binaries::pd_binary().unwrap())
        .arg("--data-dir")
        .arg(dir.path().join("pd"))
        .arg("--client-urls")
        .arg("https://127.0.0.1:0")
        .arg("--http-addr")
        .arg("127.0.0.1:0")
        .arg("--cacert")
        .arg(&certs.ca)
        .arg("--cert")
        .arg(&certs.server_cert)
        .arg("--key")
        .arg(&certs.client_key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "PD started: {stderr}");
    assert!(stderr.contains("client-key.pem"), "{stderr}");
}
