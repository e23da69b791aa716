//! The server child: this binary re-executed with
//! `RTPCAST_BENCH_ROLE=server` ([`ROLE_ENV`]), so that its CPU time and
//! memory are measured apart from the viewers.

use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

/// Environment variable that makes this binary run the server instead.
pub(crate) const ROLE_ENV: &str = "RTPCAST_BENCH_ROLE";

/// The child role: starts the server on ephemeral loopback ports, prints
/// `READY <rtsp port> <rtp port>` and serves until stdin closes.
pub(crate) fn serve() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = rtpcast::config::Config {
            bind: Ipv4Addr::LOCALHOST.into(),
            rtsp_port: 0,
            rtp_port: 0,
            loop_playback: true,
            ..Default::default()
        };
        let catalog = rtpcast::server::catalog::Catalog::bundled_sample()?;
        let server = rtpcast::server::start(&config, catalog).await?;
        println!("READY {} {}", server.rtsp_addr.port(), server.rtp_port);
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await?;
        server.shutdown();
        Ok(())
    })
}

/// The server child process; killed when dropped.
pub(crate) struct ServerProcess {
    /// The child.
    child: Child,
    /// Its RTSP port on 127.0.0.1.
    pub(crate) rtsp_port: u16,
}

impl ServerProcess {
    /// Re-executes this binary as the server and waits for its READY line.
    pub(crate) fn spawn() -> anyhow::Result<ServerProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE_ENV, "server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let mut server = ServerProcess {
            child,
            rtsp_port: 0,
        };
        let mut words = line.split_whitespace();
        server.rtsp_port = match (words.next(), words.next().map(str::parse::<u16>)) {
            (Some("READY"), Some(Ok(port))) => port,
            _ => anyhow::bail!("server child did not start: {line:?}"),
        };
        Ok(server)
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
