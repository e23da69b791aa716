//! Server configuration.
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// An upper bound on how many of something the server holds at once
/// (sessions, connections); built from a number where 0 means no bound, as
/// the command line takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(Option<usize>);

impl Limit {
    /// No bound at all.
    pub const UNLIMITED: Limit = Limit(None);

    /// At most `count`, or [`Limit::UNLIMITED`] when `count` is 0.
    pub const fn at_most(count: usize) -> Limit {
        if count == 0 {
            Limit::UNLIMITED
        } else {
            Limit(Some(count))
        }
    }

    /// Whether one more may be added to the `held` already there.
    pub fn admits_one_more(self, held: usize) -> bool {
        self.0.is_none_or(|max| held < max)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(max) => write!(f, "{max}"),
            None => f.write_str("unlimited"),
        }
    }
}

/// A file played as a live channel: one looping timeline every viewer of
/// `mount` shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The URL path, normalised (`/tv`).
    pub mount: String,
    /// The MP4 file.
    pub file: PathBuf,
}

/// Where live paths are multicast (RFC 2326 §12.39): one group per path
/// from a range, its tracks on consecutive port pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastConfig {
    /// The first group address of the range.
    pub first_group: std::net::Ipv4Addr,
    /// How many groups the range holds.
    pub groups: u32,
    /// The RTP port of the first group's first track.
    pub port: u16,
    /// Time to live of multicast packets (hops).
    pub ttl: u8,
}

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
    /// Files played as live channels.
    pub channels: Vec<ChannelConfig>,
    /// URL paths that take publishers (RTSP ANNOUNCE/RECORD), each with
    /// everything below it.
    pub publish_paths: Vec<String>,
    /// A second publisher to a path in use replaces the first, instead of
    /// being answered 455.
    pub publish_takeover: bool,
    /// Multicast of live paths; `None` refuses multicast transports.
    pub multicast: Option<MulticastConfig>,
    /// Session timeout in seconds announced in the Session header.
    pub session_timeout_secs: u64,
    /// Sessions the whole server holds at most; SETUP beyond answers 453.
    pub max_sessions: Limit,
    /// Sessions one RTSP connection holds at most; SETUP beyond answers 453.
    pub max_sessions_per_connection: Limit,
    /// Sessions one client address holds at most, across its connections;
    /// SETUP beyond answers 453.
    pub max_sessions_per_address: Limit,
    /// RTSP connections one client address holds open at once; further
    /// connections are answered 503 and closed.
    pub max_connections_per_address: Limit,
}

/// Default of [`Config::max_sessions`].
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// Default of [`Config::max_sessions_per_address`] and
/// [`Config::max_connections_per_address`]: room for one load-generating
/// host (or an office behind one NAT) with a few thousand viewers, each
/// on its own connection, while one address still cannot take every
/// session of the server.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 4096;

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([0, 0, 0, 0]),
            rtsp_port: 5544,
            rtp_port: 5005,
            mtu: 1400,
            loop_playback: false,
            media: None,
            channels: Vec::new(),
            publish_paths: vec!["/live".to_string()],
            publish_takeover: false,
            multicast: Some(MulticastConfig {
                first_group: std::net::Ipv4Addr::new(239, 255, 42, 0),
                groups: 256,
                port: 30_000,
                ttl: 1,
            }),
            session_timeout_secs: 60,
            max_sessions: Limit::at_most(DEFAULT_MAX_SESSIONS),
            max_sessions_per_connection: Limit::at_most(16),
            max_sessions_per_address: Limit::at_most(DEFAULT_MAX_PER_ADDRESS),
            max_connections_per_address: Limit::at_most(DEFAULT_MAX_PER_ADDRESS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_admits_up_to_its_count() {
        let three = Limit::at_most(3);
        assert!(three.admits_one_more(0));
        assert!(three.admits_one_more(2));
        assert!(!three.admits_one_more(3));
        assert!(!three.admits_one_more(4));
        assert_eq!(three.to_string(), "3");
    }

    #[test]
    fn zero_means_unlimited() {
        let none = Limit::at_most(0);
        assert_eq!(none, Limit::UNLIMITED);
        assert!(none.admits_one_more(0));
        assert!(none.admits_one_more(usize::MAX - 1));
        assert_eq!(none.to_string(), "unlimited");
    }
}
