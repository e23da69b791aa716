//! Server configuration.
use std::net::IpAddr;
use std::path::PathBuf;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind the RTSP listener and the RTP/RTCP sockets to.
    pub bind: IpAddr,
    /// RTSP TCP port (0: ephemeral).
    pub rtsp_port: u16,
    /// Server RTP UDP port; RTCP uses the next one (0: any free pair).
    pub rtp_port: u16,
    /// Largest RTP packet, header included, in bytes.
    pub mtu: usize,
    /// Restart from the beginning at end of file instead of ending.
    pub loop_playback: bool,
    /// A file or a folder to serve; `None` serves the bundled sample.
    pub media: Option<PathBuf>,
    /// Session timeout in seconds announced in the Session header.
    pub session_timeout_secs: u64,
    /// Sessions the whole server holds at most; SETUP beyond answers 453.
    pub max_sessions: usize,
    /// Sessions one RTSP connection holds at most.
    pub max_sessions_per_connection: usize,
    /// Sessions one client address holds at most, across its connections.
    pub max_sessions_per_address: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([0, 0, 0, 0]),
            rtsp_port: 5544,
            rtp_port: 5005,
            mtu: 1400,
            loop_playback: false,
            media: None,
            session_timeout_secs: 60,
            max_sessions: 1024,
            max_sessions_per_connection: 16,
            max_sessions_per_address: 64,
        }
    }
}
