//! The `shoal-pd` binary: ready line on stdout, address file, config validation, clean exit on
//! SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(20);

fn pd_command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal-pd"));
    cmd.arg("--name")
        .arg("pd-test")
        .arg("--data-dir")
        .arg(dir)
        .arg("--client-urls")
        .arg("http://127.0.0.1:0")
        .arg("--http-addr")
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// Kills the process if a test fails before it exits.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for the child to exit, with a deadline.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "shoal-pd did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM and waits for a successful exit.
fn stop_cleanly(child: &mut Child) {
    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_exit(child);
    assert!(status.success(), "{status:?}");
}

fn parse_ready(line: &str) -> (SocketAddr, SocketAddr) {
    let rest = line
        .trim()
        .strip_prefix("PD_READY grpc=")
        .expect("ready line");
    let (grpc, http) = rest.split_once(" http=").unwrap();
    (grpc.parse().unwrap(), http.parse().unwrap())
}

#[test]
fn ready_line_address_file_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Guard(pd_command(dir.path()).spawn().unwrap());
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let (grpc, http_addr) = parse_ready(&line);
    assert_ne!(grpc.port(), 0);
    assert_ne!(http_addr.port(), 0);
    let file = std::fs::read_to_string(dir.path().join("pd.addr")).unwrap();
    assert_eq!(file.trim(), line.trim());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (status, body) = http_json(http_addr, "GET", "/pd/api/v1/health", None).await;
        assert_eq!(status, 200);
        assert_eq!(body["health"], true);
        let mut c = proto::pdpb::pd_client::PdClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let members = c
            .get_members(proto::pdpb::GetMembersRequest { header: None })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            members.leader.unwrap().client_urls,
            vec![format!("http://{grpc}")]
        );
        assert_eq!(members.members[0].name, "pd-test");
    });

    // A closed client connection lets the server's graceful stop finish at once.
    drop(runtime);
    stop_cleanly(&mut child.0);
}

#[test]
fn an_invalid_config_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("pd.toml");
    std::fs::write(&cfg_path, "[schedule]\nmax-replicas = 0\n").unwrap();
    let out = pd_command(dir.path())
        .arg("--config")
        .arg(&cfg_path)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max-replicas"), "{err}");

    std::fs::write(&cfg_path, "bogus-key = 1\n").unwrap();
    let out = pd_command(dir.path())
        .arg("--config")
        .arg(&cfg_path)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus-key"));
}

/// `--log-format json`: every line PD logs on stderr is one JSON object.
#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pd_command(dir.path());
    cmd.arg("--log-format").arg("json").stderr(Stdio::piped());
    let mut child = Guard(cmd.spawn().unwrap());
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    parse_ready(&ready);
    stop_cleanly(&mut child.0);
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let lines: Vec<String> = stderr.lines().map(Result::unwrap).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("PD serving")));
}
