//! One child process of the fleet: started with its stdout watched for a READY line, logs kept
//! in files, stopped by signal.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::spawn::spawn_tied;

/// How a process is (re)started.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// Short name used in messages and log file names (`pd`, `store1`, ...).
    pub name: String,
    pub binary: PathBuf,
    pub args: Vec<String>,
    /// First word of the stdout line that says the process is serving.
    pub ready_word: &'static str,
    /// Where `<name>.stdout.log` and `<name>.stderr.log` go.
    pub log_dir: PathBuf,
}

/// The `key=value` fields of a READY line.
pub type ReadyFields = HashMap<String, String>;

/// A running (or stopped) child process.
pub struct ManagedProcess {
    spec: ProcessSpec,
    /// Environment added at the next (re)start, such as a fake clock.
    extra_env: Vec<(String, String)>,
    child: Option<Child>,
    ready: Arc<Mutex<Option<ReadyFields>>>,
}

impl ManagedProcess {
    /// Starts the process; returns at once (see [`ManagedProcess::wait_ready`]).
    pub fn start(spec: ProcessSpec) -> Result<ManagedProcess> {
        let mut process = ManagedProcess {
            spec,
            extra_env: Vec::new(),
            child: None,
            ready: Arc::new(Mutex::new(None)),
        };
        process.spawn()?;
        Ok(process)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Environment variables for every later (re)start; an empty list clears them.
    pub fn set_env(&mut self, env: Vec<(String, String)>) {
        self.extra_env = env;
    }

    pub fn stdout_log(&self) -> PathBuf {
        self.spec
            .log_dir
            .join(format!("{}.stdout.log", self.spec.name))
    }

    pub fn stderr_log(&self) -> PathBuf {
        self.spec
            .log_dir
            .join(format!("{}.stderr.log", self.spec.name))
    }

    fn spawn(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("{} is already running", self.spec.name);
        }
        let mut stdout_log = append(&self.stdout_log())?;
        let mut stderr_log = append(&self.stderr_log())?;
        let banner = format!(
            "===== starting {} {:?} {:?}\n",
            self.spec.name, self.spec.args, self.extra_env
        );
        stdout_log.write_all(banner.as_bytes())?;
        stderr_log.write_all(banner.as_bytes())?;

        let mut command = Command::new(&self.spec.binary);
        command
            .args(&self.spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_log))
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        let mut child = spawn_tied(command)
            .with_context(|| format!("cannot start {}", self.spec.binary.display()))?;
        let stdout = child.stdout.take().context("child stdout was not piped")?;

        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let ready = Arc::clone(&self.ready);
        let ready_word = self.spec.ready_word;
        std::thread::Builder::new()
            .name(format!("{}-stdout", self.spec.name))
            .spawn(move || forward_stdout(stdout, stdout_log, ready_word, ready))
            .context("cannot start the stdout reader thread")?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts the process again with the same arguments (same ports, same data).
    pub fn restart(&mut self) -> Result<()> {
        self.spawn()
    }

    /// Waits until the READY line shows up; fails if the process exits first or `timeout`
    /// passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<ReadyFields> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(fields) = self.ready.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Ok(fields);
            }
            if let Some(status) = self.try_exit_status()? {
                bail!(
                    "{} exited with {status} before it was ready\n{}",
                    self.spec.name,
                    self.log_tail(30)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} printed no {} line within {timeout:?}\n{}",
                    self.spec.name,
                    self.spec.ready_word,
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn try_exit_status(&mut self) -> Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => bail!("{} is not started", self.spec.name),
        }
    }

    /// Whether the process was started and has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            if child.try_wait()?.is_none() {
                child
                    .kill()
                    .with_context(|| format!("SIGKILL {}", self.spec.name))?;
            }
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM and wait up to `timeout` for a clean exit; a process that does not exit in
    /// time is killed and reported as an error, as is an unclean exit.
    pub async fn stop(&mut self, timeout: Duration) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if child.try_wait()?.is_none() {
            let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
            // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
            if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
                bail!(
                    "SIGTERM {}: {}",
                    self.spec.name,
                    std::io::Error::last_os_error()
                );
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status()? {
                self.child = None;
                if !status.success() {
                    bail!("{} exited with {status} after SIGTERM", self.spec.name);
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill()?;
                bail!(
                    "{} did not exit within {timeout:?} of SIGTERM; killed it",
                    self.spec.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `lines` lines of both logs, labelled.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for path in [self.stdout_log(), self.stderr_log()] {
            out.push_str(&format!("----- {} (last {lines} lines)\n", path.display()));
            out.push_str(&tail(&path, lines));
        }
        out
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("could not kill {}: {e:#}", self.spec.name);
        }
    }
}

fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log {}", path.display()))
}

/// Copies the child's stdout to its log and records the READY line's fields.
fn forward_stdout(
    stdout: std::process::ChildStdout,
    mut log: File,
    ready_word: &str,
    ready: Arc<Mutex<Option<ReadyFields>>>,
) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "{line}");
        if let Some(fields) = parse_ready_line(&line, ready_word) {
            *ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(fields);
        }
    }
}

/// `WORD k=v k=v` -> `{k: v}` when the line starts with `ready_word`.
pub fn parse_ready_line(line: &str, ready_word: &str) -> Option<ReadyFields> {
    let mut words = line.split_whitespace();
    if words.next()? != ready_word {
        return None;
    }
    Some(
        words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Runs `command` (a process expected to stop on its own, such as one refused at start) to
/// its exit with stdout discarded; returns its exit status and what it wrote to stderr (read
/// while it runs, so a chatty process cannot block on a full pipe). Errors: it could not be
/// started, or it still ran after `timeout` (it is killed then).
pub fn run_to_exit(
    mut command: Command,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, String)> {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = spawn_tied(command).context("cannot start the process")?;
    let mut stderr = child.stderr.take().context("stderr was not piped")?;
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for the process")? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = reader.join().unwrap_or_default();
            bail!("still running after {timeout:?}; its stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The pipe closes when the process exits (it starts no children of its own).
    let stderr = reader.join().unwrap_or_default();
    Ok((status, stderr))
}

/// The last `lines` lines of a file (lossy UTF-8), or a note when it cannot be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            let mut out = all[start..].join("\n");
            out.push('\n');
            out
        }
        Err(e) => format!("(cannot read: {e})\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_are_split_into_fields() {
        let fields = parse_ready_line(
            "STORE_READY store_id=4 addr=127.0.0.1:1 status=127.0.0.1:2",
            "STORE_READY",
        )
        .unwrap();
        assert_eq!(fields["store_id"], "4");
        assert_eq!(fields["addr"], "127.0.0.1:1");
        assert!(parse_ready_line("PD_READY grpc=a", "STORE_READY").is_none());
        assert!(parse_ready_line("", "STORE_READY").is_none());
    }

    #[tokio::test]
    async fn a_process_is_seen_ready_and_stopped_by_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ManagedProcess::start(ProcessSpec {
            name: "sh".into(),
            binary: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "echo hello; echo READY a=1; exec sleep 30".into(),
            ],
            ready_word: "READY",
            log_dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let fields = p.wait_ready(Duration::from_secs(10)).await.unwrap();
        assert_eq!(fields["a"], "1");
        assert!(p.is_running());
        // sleep dies of SIGTERM, which is not a clean exit.
        assert!(p.stop(Duration::from_secs(10)).await.is_err());
        assert!(!p.is_running());
        assert!(p.log_tail(5).contains("hello"));
    }

    #[tokio::test]
    async fn an_early_exit_is_reported_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ManagedProcess::start(ProcessSpec {
            name: "sh".into(),
            binary: "/bin/sh".into(),
            args: vec!["-c".into(), "echo broken config >&2; exit 3".into()],
            ready_word: "READY",
            log_dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let err = p.wait_ready(Duration::from_secs(10)).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("before it was ready"), "{text}");
        assert!(text.contains("broken config"), "{text}");
    }
}
