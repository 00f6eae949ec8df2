//! A store or PD that cannot start exits with status 1 and says why on stderr once: one error
//! line naming the cause, each cause in the chain said once.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shoal_fleet_tests::binaries::{pd_binary, server_binary};
use shoal_fleet_tests::ports::free_addr;
use shoal_fleet_tests::process::run_to_exit;

/// How long a process that cannot start may take to give up.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The stderr lines that name `needle`: the process must have said why exactly once, and
/// not repeated a cause within that line.
fn assert_said_once(stderr: &str, needle: &str, cause: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "not one line naming {needle}:\n{stderr}");
    assert_eq!(
        lines[0].matches(cause).count(),
        1,
        "the cause is repeated:\n{stderr}"
    );
}

/// A data directory path that is a regular file: neither process can create its databases.
fn file_in_the_way(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("data-is-a-file");
    std::fs::write(&path, b"not a directory\n").unwrap();
    path
}

#[test]
fn a_store_that_cannot_start_says_why_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = file_in_the_way(dir.path());
    let mut store = Command::new(server_binary().unwrap());
    // No PD listens there: the store fails on its data directory before it looks for one.
    store
        .args(["--pd", &free_addr().unwrap(), "--addr", "127.0.0.1:0"])
        .args(["--status-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    let (status, stderr) = run_to_exit(store, EXIT_TIMEOUT).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_said_once(&stderr, "data-is-a-file", "os error 17");
}

#[test]
fn a_pd_that_cannot_start_says_why_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = file_in_the_way(dir.path());
    let mut pd = Command::new(pd_binary().unwrap());
    pd.arg("--data-dir").arg(&data).args([
        "--client-urls",
        "http://127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    let (status, stderr) = run_to_exit(pd, EXIT_TIMEOUT).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_said_once(&stderr, "data-is-a-file", "os error 17");
}
