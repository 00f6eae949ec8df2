//! `scripts/run-fleet.sh` and `scripts/stop-fleet.sh`, what `make run` and `make stop` run,
//! with this build's binaries on a data directory and ports of their own: a fleet started
//! into a pipe its reader closes keeps running, the stop hint names the data directory, and
//! a store that exits right after its READY line fails the start at once, naming the store.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use shoal_fleet_tests::binaries::{ctl_binary, profile_dir};

/// The repository root (the scripts live under it).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// The fleet's ports for `offset`, as `scripts/fleet-env.sh` computes them.
fn fleet_ports(offset: u32) -> Vec<u32> {
    let mut ports = vec![2379 + offset, 2380 + offset];
    for i in 1..=3 {
        ports.push(20159 + offset + i);
        ports.push(20179 + offset + i);
    }
    ports
}

/// Offsets already handed out in this process, so two tests never share a fleet's ports.
static NEXT_TRY: AtomicU32 = AtomicU32::new(0);

/// A `SHOAL_PORT_OFFSET` whose ports are all free now and not handed out before. The ports
/// stay below Linux's ephemeral range (32768 and up), where the other tests' ports come from.
fn free_port_offset() -> u32 {
    let first = (std::process::id() % 97) * 50;
    (0..200)
        .map(|_| NEXT_TRY.fetch_add(1, Ordering::Relaxed))
        .map(|i| 1_000 + (first + i * 53) % 11_000)
        .find(|&offset| {
            fleet_ports(offset)
                .into_iter()
                .all(|p| TcpListener::bind(("127.0.0.1", p as u16)).is_ok())
        })
        .expect("a free port offset for a fleet")
}

/// Runs `script` (a bash command line run from the repository root) with the fleet settings.
fn run_bash(script: &str, bin: &Path, data: &Path, offset: u32) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(repo_root())
        .env("SHOAL_BIN", bin)
        .env("SHOAL_DATA", data)
        .env("SHOAL_PORT_OFFSET", offset.to_string())
        .output()
        .expect("bash runs")
}

/// Stops the fleet of `data` when dropped, so a failed assertion leaves nothing running.
struct StopOnDrop<'a> {
    bin: &'a Path,
    data: &'a Path,
    offset: u32,
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        run_bash(
            "bash scripts/stop-fleet.sh",
            self.bin,
            self.data,
            self.offset,
        );
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_fleet_started_into_a_closed_pipe_keeps_serving_and_says_how_to_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = profile_dir().unwrap();
    let offset = free_port_offset();
    let _stop = StopOnDrop {
        bin: &bin,
        data: &data,
        offset,
    };

    // `head` reads the first line and exits; the script's later prints hit a closed pipe.
    let out = run_bash(
        "set -o pipefail; bash scripts/run-fleet.sh | head -n 1",
        &bin,
        &data,
        offset,
    );
    assert!(
        text(&out.stdout).starts_with("pd started"),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("stopped what this run had started"),
        "the start stopped its own fleet:\n{}",
        text(&out.stderr)
    );

    // Run again: it finds the fleet running and serving, and the stop hint carries the data
    // directory (without it, `make stop` would look in ./data).
    let again = run_bash("bash scripts/run-fleet.sh", &bin, &data, offset);
    let stdout = text(&again.stdout);
    assert!(again.status.success(), "{stdout}\n{}", text(&again.stderr));
    assert!(stdout.contains("the fleet is already running"), "{stdout}");
    let hint = format!("SHOAL_DATA={} make stop", data.display());
    assert!(stdout.contains(&hint), "no {hint:?} in:\n{stdout}");
    for name in ["pd", "store1", "store2", "store3"] {
        assert!(
            stdout.contains(&format!("{name} already running")),
            "{name} is not running:\n{stdout}"
        );
    }
    let pd = format!("127.0.0.1:{}", 2379 + offset);
    let put = Command::new(ctl_binary().unwrap())
        .args(["--pd", &pd, "put", "piped", "still-serving"])
        .output()
        .unwrap();
    assert!(put.status.success(), "{}", text(&put.stderr));
    let get = Command::new(ctl_binary().unwrap())
        .args(["--pd", &pd, "get", "piped"])
        .output()
        .unwrap();
    assert_eq!(text(&get.stdout), "piped=still-serving\n");
}

#[test]
fn a_store_that_exits_after_its_ready_line_fails_the_start_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let real = profile_dir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["shoal-pd", "shoal-ctl"] {
        std::os::unix::fs::symlink(real.join(name), bin.join(name)).unwrap();
    }
    // A store that reports ready and exits soon after, as one that aborts after start-up
    // (the pause lets the script see the READY line while the process still runs).
    let fake = bin.join("shoal-server");
    std::fs::write(
        &fake,
        "#!/usr/bin/env bash\necho STORE_READY id=0\nsleep 2\n\
         echo 'fatal: gone after start-up' >&2\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let offset = free_port_offset();
    let _stop = StopOnDrop {
        bin: &bin,
        data: &data,
        offset,
    };

    let out = run_bash("bash scripts/run-fleet.sh", &bin, &data, offset);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        stderr.contains("error: store1 exited after start-up"),
        "{stderr}"
    );
    assert!(stderr.contains("fatal: gone after start-up"), "{stderr}");
    // What this run started is stopped again: PD no longer answers.
    assert!(
        stderr.contains("stopped what this run had started"),
        "{stderr}"
    );
    let pd_pid = std::fs::read_to_string(data.join("pids/pd.pid")).unwrap_or_default();
    assert!(pd_pid.is_empty(), "PD's pid file is left: {pd_pid}");
}
