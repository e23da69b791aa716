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

/// A file or a folder served on demand at a URL path: a file at the path
/// itself, a folder's `.mp4` files below it at their relative paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPathConfig {
    /// The URL path, normalised (`/movies`).
    pub mount: String,
    /// The file or folder.
    pub path: PathBuf,
}

/// A V4L2 camera streamed at a URL path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraConfig {
    /// The URL path, normalised (`/live/webcam`).
    pub mount: String,
    /// The device (`/dev/video0`).
    pub device: PathBuf,
    /// What the camera is asked to encode.
    pub requested: crate::source::camera::CameraFormat,
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

/// When a relay pulls its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayPull {
    /// On the first viewer's DESCRIBE or SETUP; it stops once the path has
    /// had no viewer for a while, and starts again on the next request.
    OnDemand,
    /// From start-up, for as long as the server runs.
    Always,
}

/// User name and password for a relay's upstream (RTSP Basic or Digest
/// authentication, RFC 2326 §D.1), taken out of its URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayCredentials {
    /// User name, percent-decoded.
    pub username: String,
    /// Password, percent-decoded.
    pub password: String,
}

impl fmt::Debug for RelayCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayCredentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// A path pulled from another RTSP server and fanned out to this
/// server's viewers like a published stream: how an origin feeds edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The URL path here, normalised (`/edge`).
    pub mount: String,
    /// The upstream presentation, without credentials: safe to log.
    pub upstream: url::Url,
    /// Credentials the upstream URL carried (`rtsp://user:pass@host/…`).
    pub credentials: Option<RelayCredentials>,
    /// When it pulls.
    pub pull: RelayPull,
}

/// Checks an upstream URL for a relay and splits its credentials off.
///
/// Errors (a sentence for the command line): not a URL, a scheme other
/// than `rtsp` (the client pulls RTSP over TCP; `rtsps` is not supported),
/// or no host.
pub fn relay_upstream(text: &str) -> Result<(url::Url, Option<RelayCredentials>), String> {
    let mut url =
        url::Url::parse(text).map_err(|error| format!("{text:?} is not a URL: {error}"))?;
    if url.scheme() != "rtsp" {
        return Err(format!(
            "upstream scheme {:?} is not supported: give an rtsp:// URL",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the upstream URL has no host".into());
    }
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials =
        (!url.username().is_empty() || url.password().is_some()).then(|| RelayCredentials {
            username: decode(url.username()),
            password: decode(url.password().unwrap_or_default()),
        });
    // An rtsp:// URL with a host always takes these.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    Ok((url, credentials))
}

/// One user an [`AccessRule`] admits.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCredential {
    /// User name, as the client sends it.
    pub name: String,
    /// The stored, hashed form of the password, as the configuration file
    /// holds it; the format and what it allows (Basic, Digest) is the
    /// authentication module's to define and check at start-up. Never
    /// the password itself, and never logged.
    pub password_hash: String,
}

impl fmt::Debug for UserCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCredential")
            .field("name", &self.name)
            .field("password_hash", &"<hidden>")
            .finish()
    }
}

/// Who may do one thing (read, or publish) on a path: a client must come
/// from one of `networks` when that list is not empty, and authenticate
/// as one of `users` when that list is not empty. Both empty: open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRule {
    /// Users admitted, each with its password hash.
    pub users: Vec<UserCredential>,
    /// Networks clients must come from (CIDR).
    pub networks: Vec<ipnet::IpNet>,
}

impl AccessRule {
    /// Whether the rule admits everybody.
    pub fn is_open(&self) -> bool {
        self.users.is_empty() && self.networks.is_empty()
    }

    /// Whether a client at `ip` passes the network part of the rule: no
    /// networks listed, or `ip` in one of them (an IPv4 address seen as
    /// IPv4-mapped IPv6 on a dual-stack socket counts as IPv4). The users
    /// part is checked separately, by authentication.
    pub fn admits_network(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.is_empty() || self.networks.iter().any(|net| net.contains(&ip))
    }
}

/// The access rules of a URL path and everything below it: the rules of
/// the longest configured path that is a prefix (by whole segments) of
/// the request's path apply; a path under none is open for reading, and
/// publishing stays limited by [`Config::publish_paths`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathAccess {
    /// The URL path, normalised (`/live`, `/` for everything).
    pub path: String,
    /// Who may DESCRIBE, SETUP (play) and PLAY.
    pub read: AccessRule,
    /// Who may ANNOUNCE, SETUP (record) and RECORD.
    pub publish: AccessRule,
}

/// The HTTP server of the operations API, the Prometheus metrics and the
/// status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Where it listens ([`DEFAULT_API_ADDR`] as usual; port 0 takes any
    /// free port).
    pub addr: std::net::SocketAddr,
    /// Who may use it: networks, and users authenticated with the
    /// server's realm and schemes ([`Config::auth`]).
    pub access: AccessRule,
    /// Serve HTTPS instead of plain HTTP, with the RTSPS certificate and
    /// key ([`Config::tls`], which must then be set).
    pub tls: bool,
}

/// The address the API usually listens on: localhost only.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:9997";

/// A way RTSP clients may prove who they are (RFC 2326 §D.1, RFC 7235);
/// named `digest-sha256`, `digest-md5` and `basic` in the configuration
/// file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthScheme {
    /// Digest with SHA-256 (RFC 7616).
    DigestSha256,
    /// Digest with MD5 (RFC 7616, RFC 2617; RFC 2069 without `qop`).
    DigestMd5,
    /// Basic (RFC 7617): the password itself travels, only base64-encoded.
    Basic,
}

/// How paths with users ask for and check credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The realm of the challenges (RFC 7616 §3.3); Digest password hashes
    /// are made for one realm and name it.
    pub realm: String,
    /// The schemes offered, one `WWW-Authenticate` challenge each in this
    /// order (most preferred first), and the only ones accepted.
    pub schemes: Vec<AuthScheme>,
}

/// Default of [`AuthConfig::realm`].
pub const DEFAULT_REALM: &str = "rtpcast";

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            realm: DEFAULT_REALM.to_string(),
            schemes: vec![
                AuthScheme::DigestSha256,
                AuthScheme::DigestMd5,
                AuthScheme::Basic,
            ],
        }
    }
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
    /// Files and folders served on demand below URL paths other than `/`.
    pub media_paths: Vec<MediaPathConfig>,
    /// Files played as live channels.
    pub channels: Vec<ChannelConfig>,
    /// URL paths that take publishers (RTSP ANNOUNCE/RECORD), each with
    /// everything below it.
    pub publish_paths: Vec<String>,
    /// A second publisher to a path in use replaces the first, instead of
    /// being answered 455.
    pub publish_takeover: bool,
    /// How long a DESCRIBE or SETUP of a publish path with no publisher
    /// waits for one before it is answered 404.
    pub publisher_wait: std::time::Duration,
    /// Multicast of live paths; `None` refuses multicast transports.
    pub multicast: Option<MulticastConfig>,
    /// Paths pulled from upstream RTSP servers.
    pub relays: Vec<RelayConfig>,
    /// Cameras streamed as live paths.
    pub cameras: Vec<CameraConfig>,
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
    /// Per-path access rules for reading and publishing.
    pub access: Vec<PathAccess>,
    /// RTSPS (RTSP over TLS) on a port of its own; `None`: plain RTSP only.
    pub tls: Option<TlsConfig>,
    /// The HTTP API server; `None`: off.
    pub api: Option<ApiConfig>,
    /// Realm and schemes of the paths whose rules name users.
    pub auth: AuthConfig,
}

/// The port registered for `rtsps` (RFC 7826 §19.2 and §22.14): the
/// default of [`TlsConfig::rtsps_port`].
pub const DEFAULT_RTSPS_PORT: u16 = 322;

/// RTSPS: RTSP over TLS (RFC 7826 §19.2) on its own port, beside plain
/// RTSP. Media goes interleaved on the TLS connection (RFC 2326 §10.12):
/// a UDP SETUP on it is answered 461, as those packets would travel
/// unencrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's certificate
    /// first.
    pub certificate: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or
    /// SEC1).
    pub key: PathBuf,
    /// TCP port of RTSPS (0: any free port).
    pub rtsps_port: u16,
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
            media_paths: Vec::new(),
            channels: Vec::new(),
            publish_paths: vec!["/live".to_string()],
            publish_takeover: false,
            publisher_wait: std::time::Duration::ZERO,
            multicast: Some(MulticastConfig {
                first_group: std::net::Ipv4Addr::new(239, 255, 42, 0),
                groups: 256,
                port: 30_000,
                ttl: 1,
            }),
            relays: Vec::new(),
            cameras: Vec::new(),
            session_timeout_secs: 60,
            max_sessions: Limit::at_most(DEFAULT_MAX_SESSIONS),
            max_sessions_per_connection: Limit::at_most(16),
            max_sessions_per_address: Limit::at_most(DEFAULT_MAX_PER_ADDRESS),
            max_connections_per_address: Limit::at_most(DEFAULT_MAX_PER_ADDRESS),
            access: Vec::new(),
            tls: None,
            api: None,
            auth: AuthConfig::default(),
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
    fn an_upstream_url_gives_up_its_credentials() {
        let (url, credentials) =
            relay_upstream("rtsp://cam%40home:p%3Ass@origin.example:8554/tv?x=1#frag").unwrap();
        assert_eq!(url.as_str(), "rtsp://origin.example:8554/tv?x=1");
        let credentials = credentials.unwrap();
        assert_eq!(credentials.username, "cam@home");
        assert_eq!(credentials.password, "p:ss");
        assert!(!format!("{credentials:?}").contains("p:ss"));
        let (url, credentials) = relay_upstream("rtsp://10.0.0.1/live").unwrap();
        assert_eq!(url.as_str(), "rtsp://10.0.0.1/live");
        assert_eq!(credentials, None);
    }

    #[test]
    fn an_upstream_url_must_be_rtsp_with_a_host() {
        for (text, says) in [
            ("http://origin/tv", "scheme"),
            ("rtsps://origin/tv", "scheme"),
            ("origin/tv", "not a URL"),
            ("rtsp:///tv", "no host"),
        ] {
            let error = relay_upstream(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_rule_is_open_only_without_users_and_networks() {
        let mut rule = AccessRule::default();
        assert!(rule.is_open());
        rule.networks.push("10.0.0.0/8".parse().unwrap());
        assert!(!rule.is_open());
        let users_only = AccessRule {
            users: vec![UserCredential {
                name: "alice".into(),
                password_hash: "secret-hash".into(),
            }],
            networks: Vec::new(),
        };
        assert!(!users_only.is_open());
        assert!(!format!("{users_only:?}").contains("secret-hash"));
    }

    #[test]
    fn the_network_part_of_a_rule_admits_its_networks_only() {
        let open = AccessRule::default();
        assert!(open.admits_network("203.0.113.9".parse().unwrap()));
        let rule = AccessRule {
            users: Vec::new(),
            networks: vec![
                "127.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
        };
        for (ip, admitted) in [
            ("127.0.0.1", true),
            ("127.255.0.3", true),
            ("::ffff:127.0.0.1", true),
            ("128.0.0.1", false),
            ("10.0.0.1", false),
            ("2001:db8::7", true),
            ("2001:db9::7", false),
            ("::1", false),
        ] {
            assert_eq!(rule.admits_network(ip.parse().unwrap()), admitted, "{ip}");
        }
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
