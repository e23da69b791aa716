//! The server child: the `rtpcast` binary that `cargo bench` builds next to
//! this bench, started on loopback so that its CPU time and memory are
//! measured apart from the viewers.
//!
//! Shared by the fan-out and live benches (`#[path]`), each of which uses
//! part of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary, built by cargo for benches and integration tests.
const SERVER_BIN: &str = env!("CARGO_BIN_EXE_rtpcast");
/// Longest wait for the server to accept RTSP connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Sessions the bench asks the server to admit, when it has the option.
const MAX_SESSIONS: &str = "10000";

/// The server child process; killed when dropped.
pub(crate) struct ServerProcess {
    /// The child.
    child: Child,
    /// Its RTSP address on 127.0.0.1.
    pub(crate) rtsp_addr: SocketAddr,
    /// The server binary run.
    binary: PathBuf,
    /// The server's arguments after the binary, as run.
    pub(crate) args: Vec<String>,
    /// Whether the server's `--help` lists `--max-sessions`.
    pub(crate) has_max_sessions: bool,
}

/// Whether `help` (a `--help` output) lists the option `name` itself, not
/// merely a longer option that starts with it.
fn lists_option(help: &str, name: &str) -> bool {
    help.split(|c: char| c.is_whitespace() || c == ',')
        .any(|word| word == name || word.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}

/// Whether `args` already set option `name` (as `name value` or `name=value`).
fn sets_option(args: &[String], name: &str) -> bool {
    args.iter()
        .any(|a| a == name || a.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}

/// A loopback TCP port free right now. The server binds it moments later;
/// another process taking it in between makes the start fail, not hang.
fn free_tcp_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl ServerProcess {
    /// Starts the server with `--loop` on a free loopback port, with
    /// `--max-sessions 10000` if its `--help` lists that option, then
    /// `extra` (from `--server-args`; an option set there replaces the
    /// bench's default for it), and waits until it accepts connections.
    /// `binary` replaces the `rtpcast` cargo built (to measure another
    /// build side by side).
    pub(crate) fn spawn(binary: Option<&Path>, extra: &[String]) -> anyhow::Result<ServerProcess> {
        let binary = binary.unwrap_or(Path::new(SERVER_BIN)).to_path_buf();
        let help = Command::new(&binary).arg("--help").output()?;
        let help = String::from_utf8_lossy(&help.stdout);
        let has_max_sessions = lists_option(&help, "--max-sessions");
        let rtsp_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()?));
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--rtsp-port",
            &rtsp_addr.port().to_string(),
            "--rtp-port",
            "0",
            "--loop",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut defaults = vec![("--log-level", "warn")];
        if has_max_sessions {
            defaults.push(("--max-sessions", MAX_SESSIONS));
        }
        for (name, value) in defaults {
            if !sets_option(extra, name) {
                args.extend([name.to_string(), value.to_string()]);
            }
        }
        args.extend_from_slice(extra);
        let child = Command::new(&binary)
            .args(&args)
            .stdin(Stdio::null())
            // The server logs to stdout: keep it off the results table.
            .stdout(Stdio::from(std::io::stderr()))
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut server = ServerProcess {
            child,
            binary,
            rtsp_addr,
            args,
            has_max_sessions,
        };
        server.wait_until_accepting()?;
        Ok(server)
    }

    /// Polls the RTSP port until a connection succeeds.
    fn wait_until_accepting(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the server exited at start ({status}): {}", self.command());
            }
            if TcpStream::connect_timeout(&self.rtsp_addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                anyhow::bail!("the server accepted no connection in {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's command line, binary path relative to the target
    /// folder where possible.
    pub(crate) fn command(&self) -> String {
        let binary = &self.binary;
        let shown = binary
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "target"))
            .and_then(|target| target.parent())
            .and_then(|root| binary.strip_prefix(root).ok())
            .unwrap_or(binary);
        format!("{} {}", shown.display(), self.args.join(" "))
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the server (`pid`) and ends this process with status 3 if it is
/// still running after `limit`: a bench that hangs must not hold the
/// machine.
pub(crate) fn watchdog(pid: u32, limit: Duration, bench: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("{bench} bench: no result after {limit:?}; giving up");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        std::process::exit(3);
    });
}
