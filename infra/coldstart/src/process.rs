//! A function process: spawned with a given environment, its output kept in an unnamed
//! temporary file, its exit watched without reaping it (so its pid stays ours until the harness
//! has read its memory and killed it), then reaped with `wait4` for its resource usage.
//!
//! Peak memory: `VmHWM` of `/proc/<pid>/status`, read just before the kill, is the high-water mark
//! of the resident set of the process image the function runs in. `ru_maxrss` from `wait4` is
//! kept as a cross-check only: Linux carries the resident peak of the address space a process
//! replaces at `exec` into `ru_maxrss` (`exec_mmap`), and a spawned child's address space before
//! `exec` is the harness's (shared with `posix_spawn`, copied with `fork`), so `ru_maxrss` is at
//! least the harness's own resident size, whatever the function uses.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How a reaped process ended.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// The raw wait status.
    pub status: i32,
    /// `ru_maxrss` (KiB).
    pub ru_maxrss_kib: u64,
}

impl Exit {
    /// `exit 1`, `signal 9`, …
    pub fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("status {:#x}", self.status)
        }
    }
}

/// A running (or exited, not yet reaped) child process.
pub struct Process {
    pid: libc::pid_t,
    exited: Option<oneshot::Receiver<()>>,
    reaped: bool,
    log: File,
}

impl Process {
    /// Spawns `program` with `args` and exactly `env` (nothing inherited), stdin closed,
    /// stdout and stderr into one temporary file. Returns the instant taken just before the
    /// spawn.
    pub fn spawn(
        program: &Path,
        args: &[OsString],
        env: &[(String, OsString)],
    ) -> io::Result<(Self, Instant)> {
        let log = tempfile::tempfile()?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?);
        let start = Instant::now();
        let child = command.spawn()?;
        let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
        // From here on the pid is managed here: `Child` neither kills nor reaps when dropped.
        drop(child);
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("watch-{pid}"))
            .spawn(move || {
                wait_exited(pid);
                let _ = tx.send(());
            })?;
        Ok((
            Self {
                pid,
                exited: Some(rx),
                reaped: false,
                log,
            },
            start,
        ))
    }

    /// Resolves once the process has exited (it is not reaped: its pid stays reserved).
    pub async fn exited(&mut self) {
        match self.exited.as_mut() {
            Some(rx) => {
                let _ = rx.await;
                self.exited = None;
            }
            None => std::future::pending().await,
        }
    }

    /// `VmHWM` (KiB): the peak resident set so far; `None` once the process has exited.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Kills the process (if it still runs), waits up to `wait` for it to exit, and reaps it.
    pub async fn kill_and_reap(&mut self, wait: Duration) -> io::Result<Exit> {
        // SAFETY: plain syscall. The pid is ours and not reaped yet (only `reap` reaps it), so it
        // cannot name another process.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        if let Some(rx) = self.exited.take()
            && tokio::time::timeout(wait, rx).await.is_err()
        {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "process {} did not exit within {wait:?} of SIGKILL",
                    self.pid
                ),
            ));
        }
        self.reap()
    }

    /// The end of the process's output: its last `lines` lines.
    pub fn log_tail(&mut self, lines: usize) -> String {
        let mut out = String::new();
        if self.log.seek(SeekFrom::Start(0)).is_ok() {
            let mut bytes = Vec::new();
            let _ = self.log.read_to_end(&mut bytes);
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            for line in &all[all.len().saturating_sub(lines)..] {
                out.push_str("    | ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    fn reap(&mut self) -> io::Result<Exit> {
        let mut status = 0;
        // SAFETY: all-zero is a valid `rusage`.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: valid pointers to locals; the pid is our unreaped child.
            let r = unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
            if r == self.pid {
                self.reaped = true;
                return Ok(Exit {
                    status,
                    ru_maxrss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
                });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: as in `kill_and_reap`.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.reap();
        }
    }
}

/// Blocks until `pid` has exited, leaving it unreaped (`WNOWAIT`).
fn wait_exited(pid: libc::pid_t) {
    loop {
        // SAFETY: all-zero is a valid `siginfo_t`.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a local; `WNOWAIT` leaves the child to be reaped later.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}
