//! The command line and the configuration file (`--config`), merged into
//! a [`Config`]: an option given on the command line wins over the file,
//! and the file over the defaults. A repeatable path option
//! (`--channel`, `--relay`, `--relay-always`, `--publish-path`,
//! `--camera`) given on the command line replaces the file's paths of its
//! kind.
//!
//! Pure: the file's text comes in, and what a path on disk is comes from a
//! probe the caller passes ([`PathKind`]), so every error is found here,
//! with the file's line and key ([`SettingsError`]).

pub mod file;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, FromArgMatches, Parser};

use crate::config::{
    AccessRule, AuthConfig, CameraConfig, ChannelConfig, Config, Limit, MediaPathConfig,
    MulticastConfig, PathAccess, RelayConfig, RelayPull, TlsConfig, UserCredential,
    DEFAULT_API_ADDR, DEFAULT_MAX_PER_ADDRESS, DEFAULT_MAX_SESSIONS, DEFAULT_REALM,
    DEFAULT_RTSPS_PORT,
};
use crate::rtsp::handler::PORTS_PER_GROUP;
use crate::rtsp::url::normalize_mount;
use crate::source::camera::{parse_frame_size, CameraCodec, CameraFormat};
use file::{key_name, AccessEntry, Document, FileOptions, PathEntry, Segment};

/// Largest RTP packet accepted, in bytes (`--mtu`, `mtu`).
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 256..=9000;

/// Seconds a request may wait for a publisher (`--publisher-wait`).
pub const PUBLISHER_WAIT_RANGE: std::ops::RangeInclusive<u64> = 0..=300;

/// Frame rates a camera may be asked for (`--camera-fps`).
pub const CAMERA_FPS_RANGE: std::ops::RangeInclusive<u32> = 1..=240;

/// Serve MP4 files (H.264 + AAC) over RTSP/RTP to VLC, ffplay, GStreamer
/// and any RTSP client. With no MEDIA, serves the bundled sample clip at
/// rtsp://HOST:5544/ and rtsp://HOST:5544/sample.
#[derive(Debug, Parser)]
#[command(name = "rtpcast", version)]
pub struct Args {
    /// A TOML configuration file (see rtpcast.example.toml); options given
    /// here win over it. SIGHUP reads it again.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An .mp4 file (served at / and /NAME) or a folder (every .mp4 under
    /// it, at its relative path).
    pub media: Option<PathBuf>,
    /// RTSP TCP port.
    #[arg(long, default_value_t = 5544)]
    pub rtsp_port: u16,
    /// Server RTP UDP port; RTCP uses the next port. All sessions share
    /// this pair.
    #[arg(long, default_value_t = 5005)]
    pub rtp_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Largest RTP packet in bytes, RTP header included.
    #[arg(long, default_value_t = 1400, value_parser = clap::value_parser!(u16).range(256..=9000))]
    pub mtu: u16,
    /// Start again from the beginning at the end of the file.
    #[arg(long = "loop")]
    pub loop_playback: bool,
    /// Play an .mp4 file as a live channel at a URL path, looping: every
    /// viewer shares one timeline and starts at the latest keyframe. Give
    /// it as PATH=FILE (`--channel /tv=clip.mp4`); repeat for more.
    #[arg(long = "channel", value_name = "PATH=FILE", value_parser = parse_channel)]
    pub channels: Vec<ChannelConfig>,
    /// A URL path that takes publishers (RTSP ANNOUNCE + RECORD, as
    /// `ffmpeg -f rtsp` sends), with everything below it; repeat for more.
    #[arg(long = "publish-path", value_name = "PATH", default_value = "/live")]
    pub publish_paths: Vec<String>,
    /// A publisher to a path that already has one replaces it (its
    /// viewers get BYE); without this it is answered 455.
    #[arg(long)]
    pub publish_takeover: bool,
    /// Seconds a viewer's DESCRIBE or SETUP of a publish path with no
    /// publisher waits for one to start before it is answered 404 (0:
    /// answered at once).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub publisher_wait: u64,
    /// Multicast groups for live paths, one per path, as an IPv4 range
    /// ADDRESS/PREFIX (e.g. 239.255.42.0/24); `off` refuses multicast.
    #[arg(long, default_value = "239.255.42.0/24", value_name = "RANGE|off")]
    pub multicast_range: String,
    /// RTP port of the first group's first track; each group uses 16
    /// ports from its own first (track N on first + 2N).
    #[arg(long, default_value_t = 30_000)]
    pub multicast_port: u16,
    /// Time to live (router hops) of multicast packets.
    #[arg(long, default_value_t = 1)]
    pub multicast_ttl: u8,
    /// Serve a path pulled from another RTSP server (an origin feeding
    /// this edge): PATH=URL (`--relay /edge=rtsp://origin:5544/tv`;
    /// credentials as rtsp://user:pass@host/...). It is pulled over TCP on
    /// the first viewer's request, and stops about 10 s after its last
    /// viewer leaves. A request waits for the upstream to play (10 s at
    /// most) and is answered 404 Not Found if it does not. A lost upstream
    /// ends its viewers' sessions (RTCP BYE) and is retried, 1 s apart
    /// doubling to 30 s. Repeat for more.
    #[arg(long = "relay", value_name = "PATH=URL", value_parser = parse_on_demand_relay)]
    pub relays: Vec<RelayConfig>,
    /// Like --relay, but pulled from start-up and kept pulling (retried
    /// the same way) whether anyone watches or not: joiners start at once.
    #[arg(long = "relay-always", value_name = "PATH=URL", value_parser = parse_always_relay)]
    pub always_relays: Vec<RelayConfig>,
    /// Stream a V4L2 camera giving Motion-JPEG or H.264 (`/dev/video0`)
    /// at --path, without re-encoding; needs a build with `--features
    /// v4l`. An unplugged camera ends its viewers' sessions (RTCP BYE)
    /// and is opened again every 3 s.
    #[arg(long, value_name = "DEVICE")]
    pub camera: Option<PathBuf>,
    /// URL path of the --camera.
    #[arg(long = "path", value_name = "PATH", default_value = "/live/webcam")]
    pub camera_path: String,
    /// What the camera is asked to encode: mjpeg or h264.
    #[arg(long, default_value = "mjpeg", value_name = "mjpeg|h264")]
    pub camera_format: CameraCodec,
    /// Picture size asked of the camera, WIDTHxHEIGHT (it may give
    /// another; the log says which).
    #[arg(long, default_value = "1280x720", value_name = "WxH", value_parser = parse_frame_size)]
    pub camera_size: (u32, u32),
    /// Frame rate asked of the camera.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub camera_fps: u32,
    /// Sessions the server holds at most; SETUP beyond is answered 453
    /// Not Enough Bandwidth. 0: no limit.
    #[arg(long, default_value_t = DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Sessions one client address holds at most, across its connections;
    /// SETUP beyond is answered 453. 0: no limit.
    #[arg(long, default_value_t = DEFAULT_MAX_PER_ADDRESS)]
    pub max_sessions_per_address: usize,
    /// RTSP connections one client address holds open at once; more are
    /// answered 503 Service Unavailable and closed. 0: no limit.
    #[arg(long, default_value_t = DEFAULT_MAX_PER_ADDRESS)]
    pub max_connections_per_address: usize,
    /// Serve RTSPS (RTSP over TLS) on --rtsps-port with this PEM
    /// certificate chain (server certificate first); needs --tls-key.
    /// Media goes interleaved in the TLS connection: UDP SETUPs there are
    /// answered 461.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// RTSPS TCP port (322 is registered for rtsps; binding a port below
    /// 1024 needs root or CAP_NET_BIND_SERVICE).
    #[arg(long, default_value_t = DEFAULT_RTSPS_PORT)]
    pub rtsps_port: u16,
    /// Serve the HTTP API, Prometheus metrics (/metrics) and the live
    /// status page (/) on ADDR:PORT; `--api-addr` alone listens on
    /// 127.0.0.1:9997. Off when not given. Anyone who can reach it can
    /// end sessions: keep it on localhost or a private network, or give
    /// it an `[api_access]` rule in the configuration file.
    #[arg(long, value_name = "ADDR:PORT", num_args = 0..=1, default_missing_value = DEFAULT_API_ADDR)]
    pub api_addr: Option<std::net::SocketAddr>,
    /// Serve the HTTP API over HTTPS (TLS) with the RTSPS certificate and
    /// key (--tls-cert, --tls-key), instead of plain HTTP.
    #[arg(long)]
    pub api_tls: bool,
    /// Print the access-rule entry of user USER with a password read from
    /// standard input (its first line), hashed for Digest and Basic, and
    /// exit.
    #[arg(long, value_name = "USER")]
    pub hash_password: Option<String>,
    /// The realm --hash-password hashes for: the server's (`auth_realm`
    /// in the configuration file).
    #[arg(long, default_value = DEFAULT_REALM, requires = "hash_password")]
    pub realm: String,
    /// Log filter: error, warn, info, debug, trace, or a tracing
    /// directive such as `rtpcast=debug`.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log lines as readable text, or as JSON objects, one per line, for
    /// log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written (`--log-format`, `log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event, coloured at a terminal.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON formatter).
    Json,
}

/// `PATH=FILE` of `--channel`: a URL path (a leading `/` optional) and a
/// file.
fn parse_channel(value: &str) -> Result<ChannelConfig, String> {
    let (path, file) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not PATH=FILE, e.g. /tv=clip.mp4"))?;
    let mount = normalize_mount(path);
    if mount == "/" || file.is_empty() {
        return Err(format!(
            "{value:?} needs a path other than / and a file, e.g. /tv=clip.mp4"
        ));
    }
    Ok(ChannelConfig {
        mount,
        file: PathBuf::from(file),
    })
}

fn parse_on_demand_relay(value: &str) -> Result<RelayConfig, String> {
    parse_relay(value, RelayPull::OnDemand)
}

fn parse_always_relay(value: &str) -> Result<RelayConfig, String> {
    parse_relay(value, RelayPull::Always)
}

/// `PATH=URL` of `--relay` and `--relay-always`: a URL path (a leading `/`
/// optional) and an rtsp:// URL.
fn parse_relay(value: &str, pull: RelayPull) -> Result<RelayConfig, String> {
    let (path, upstream) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not PATH=URL, e.g. /edge=rtsp://origin:5544/tv"))?;
    let mount = normalize_mount(path);
    if mount == "/" {
        return Err(format!(
            "{value:?} needs a path other than /, e.g. /edge=rtsp://origin:5544/tv"
        ));
    }
    let (upstream, credentials) = crate::config::relay_upstream(upstream)?;
    Ok(RelayConfig {
        mount,
        upstream,
        credentials,
        pull,
    })
}

/// The configuration file as read: its name for messages, the folder its
/// relative paths are relative to, and its text.
#[derive(Debug, Clone, Copy)]
pub struct ConfigText<'a> {
    /// The file's name as the user gave it (`rtpcast.toml`).
    pub name: &'a str,
    /// The folder holding it: relative paths in it start there.
    pub folder: &'a Path,
    /// Its contents.
    pub text: &'a str,
}

/// What a path on disk is, as the caller's probe found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A file (or a link to one).
    File,
    /// A folder.
    Folder,
    /// Nothing, or nothing readable.
    Missing,
}

/// A setting refused: where it was given, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The configuration file's name, or `None` for the command line.
    pub file: Option<String>,
    /// The 1-based line in the file, when known.
    pub line: Option<usize>,
    /// The key (`path[1].channel`) or command-line option (`--mtu`).
    pub key: String,
    /// What is wrong, as a sentence.
    pub message: String,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, _) => f.write_str("command line: ")?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for SettingsError {}

/// Everything the command line and the file say: the server's
/// configuration and how to log.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's configuration.
    pub config: Config,
    /// The `tracing` filter directive, checked.
    pub log_level: String,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// The file being merged: its text's key tree, to locate errors.
struct Source<'a> {
    text: ConfigText<'a>,
    document: Document<'a>,
}

impl Source<'_> {
    fn error(&self, path: &[Segment], message: impl Into<String>) -> SettingsError {
        SettingsError {
            file: Some(self.text.name.to_string()),
            line: self.document.line_of_key(path),
            key: key_name(path),
            message: message.into(),
        }
    }

    /// A path in the file, relative to the file's folder.
    fn resolve(&self, path: &Path) -> PathBuf {
        self.text.folder.join(path)
    }
}

fn key(name: &str) -> Segment {
    Segment::Key(name.to_string())
}

fn cli_error(option: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        file: None,
        line: None,
        key: option.to_string(),
        message: message.into(),
    }
}

/// Reads the file's text against its schema: unknown keys, wrong types
/// and TOML syntax errors come back with their line and key.
pub fn parse_file(text: ConfigText<'_>) -> Result<FileOptions, SettingsError> {
    toml::from_str(text.text).map_err(|error| {
        let document = Document::new(text.text);
        let offset = error.span().map(|span| span.start);
        SettingsError {
            file: Some(text.name.to_string()),
            line: offset.map(|offset| document.line_of(offset)),
            key: offset.map_or_else(String::new, |offset| key_name(&document.key_at(offset))),
            message: error.message().trim().to_string(),
        }
    })
}

/// Merges the command line (`matches`, from [`Args`]'s command) with the
/// file, if any, over the defaults, and checks every value: ranges, URL
/// paths, upstream URLs, networks, and (through `probe`) that the files
/// and folders named exist and are of the right kind.
///
/// Errors: the first setting refused, with its file, line and key.
pub fn merge(
    matches: &ArgMatches,
    text: Option<ConfigText<'_>>,
    probe: &dyn Fn(&Path) -> PathKind,
) -> Result<Settings, SettingsError> {
    let args = Args::from_arg_matches(matches).map_err(|e| cli_error("", e.to_string()))?;
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let (options, source) = match text {
        Some(text) => (
            parse_file(text)?,
            Some(Source {
                text,
                document: Document::new(text.text),
            }),
        ),
        None => (FileOptions::default(), None),
    };
    let from_file = |name: &str| source.as_ref().is_some_and(|_| !given(name));
    // Values the file gives that serde's types do not bound.
    if let Some(source) = &source {
        check_file_values(&options, source)?;
    }
    let mtu = pick(given("mtu"), args.mtu, options.mtu);
    let publisher_wait = pick(
        given("publisher_wait"),
        args.publisher_wait,
        options.publisher_wait,
    );
    let log_level = pick(
        given("log_level"),
        args.log_level.clone(),
        options.log_level.clone(),
    );
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&log_level) {
        let message = format!("{log_level:?} is not a log filter: {error}");
        return Err(match &source {
            Some(source) if from_file("log_level") && options.log_level.is_some() => {
                source.error(&[key("log_level")], message)
            }
            _ => cli_error("--log-level", message),
        });
    }
    let log_format = pick(given("log_format"), args.log_format, options.log_format);
    let tls = tls_config(&args, &given, &options, source.as_ref())?;
    let auth = auth_config(&options, source.as_ref())?;
    let api_addr = if given("api_addr") {
        args.api_addr
    } else {
        options.api_addr.or(args.api_addr)
    };
    let api_access = match (&source, &options.api_access) {
        (Some(source), Some(entry)) => {
            access_rule(entry, source, &[key("api_access")], &auth.realm)?
        }
        _ => AccessRule::default(),
    };
    let api_tls = pick(given("api_tls"), args.api_tls, options.api_tls);
    if api_tls && tls.is_none() {
        let message = "HTTPS for the API needs the RTSPS certificate and key \
             (tls_cert and tls_key, or --tls-cert and --tls-key)";
        return Err(match &source {
            Some(source) if !given("api_tls") => source.error(&[key("api_tls")], message),
            _ => cli_error("--api-tls", message),
        });
    }
    let api = api_addr.map(|addr| crate::config::ApiConfig {
        addr,
        access: api_access,
        tls: api_tls,
    });
    let multicast_range = pick(
        given("multicast_range"),
        args.multicast_range.clone(),
        options.multicast_range.clone(),
    );
    let multicast_port = pick(
        given("multicast_port"),
        args.multicast_port,
        options.multicast_port,
    );
    let multicast_ttl = pick(
        given("multicast_ttl"),
        args.multicast_ttl,
        options.multicast_ttl,
    );
    let multicast = multicast_config(&multicast_range, multicast_port, multicast_ttl).map_err(
        |(option, message)| match &source {
            Some(source) if file_gave(&options, option) && !given(option) => {
                source.error(&[key(option)], message)
            }
            _ => cli_error(&format!("--{}", option.replace('_', "-")), message),
        },
    )?;

    let paths = file_paths(&options, source.as_ref(), &args, &given, &auth.realm)?;
    let media = if given("media") {
        args.media.clone()
    } else {
        match (&source, &options.media) {
            (Some(source), Some(media)) => Some(source.resolve(media)),
            _ => args.media.clone(),
        }
    };
    let channels = if given("channels") {
        args.channels.clone()
    } else {
        paths.channels
    };
    let on_demand = if given("relays") {
        args.relays.clone()
    } else {
        paths.on_demand_relays
    };
    let always = if given("always_relays") {
        args.always_relays.clone()
    } else {
        paths.always_relays
    };
    let publish_paths = if given("publish_paths") || paths.publish_paths.is_empty() {
        args.publish_paths
            .iter()
            .map(|p| normalize_mount(p))
            .collect()
    } else {
        paths.publish_paths
    };
    let cameras = if given("camera") {
        command_line_camera(&args)?.into_iter().collect()
    } else {
        paths.cameras
    };
    let config = Config {
        bind: pick(given("bind"), args.bind, options.bind),
        rtsp_port: pick(given("rtsp_port"), args.rtsp_port, options.rtsp_port),
        rtp_port: pick(given("rtp_port"), args.rtp_port, options.rtp_port),
        mtu: usize::from(mtu),
        loop_playback: pick(
            given("loop_playback"),
            args.loop_playback,
            options.loop_playback,
        ),
        media,
        media_paths: paths.media_paths,
        channels,
        publish_paths,
        publish_takeover: pick(
            given("publish_takeover"),
            args.publish_takeover,
            options.publish_takeover,
        ),
        publisher_wait: std::time::Duration::from_secs(publisher_wait),
        multicast,
        relays: on_demand.into_iter().chain(always).collect(),
        cameras,
        max_sessions: Limit::at_most(pick(
            given("max_sessions"),
            args.max_sessions,
            options.max_sessions,
        )),
        max_sessions_per_address: Limit::at_most(pick(
            given("max_sessions_per_address"),
            args.max_sessions_per_address,
            options.max_sessions_per_address,
        )),
        max_connections_per_address: Limit::at_most(pick(
            given("max_connections_per_address"),
            args.max_connections_per_address,
            options.max_connections_per_address,
        )),
        access: paths.access,
        tls,
        api,
        auth,
        ..Config::default()
    };
    check_mounts(&config)?;
    check_ports(&config).map_err(|(id, message)| match &source {
        Some(source) if file_gave(&options, id) && !given(id) => source.error(&[key(id)], message),
        _ => cli_error(&format!("--{}", id.replace('_', "-")), message),
    })?;
    // What the file's keys could not say alone: users with no scheme to
    // authenticate them.
    crate::rtsp::access::check(&config.access, &config.auth).map_err(|why| match &source {
        Some(source) => source.error(&[key("auth_schemes")], why),
        None => cli_error("", why),
    })?;
    check_files_exist(&config, &args, &given, source.as_ref(), &options, probe)?;
    Ok(Settings {
        config,
        log_level,
        log_format,
    })
}

/// The realm and schemes of authentication, from the file or the
/// defaults.
///
/// Errors: a realm the password hashes cannot name.
fn auth_config(
    options: &FileOptions,
    source: Option<&Source<'_>>,
) -> Result<AuthConfig, SettingsError> {
    let mut auth = AuthConfig::default();
    let Some(source) = source else {
        return Ok(auth);
    };
    if let Some(realm) = &options.auth_realm {
        crate::rtsp::auth::password::check_realm(realm)
            .map_err(|why| source.error(&[key("auth_realm")], why))?;
        auth.realm = realm.clone();
    }
    if let Some(schemes) = &options.auth_schemes {
        auth.schemes = schemes.clone();
    }
    Ok(auth)
}

/// RTSPS: the certificate and key from the command line when it gives
/// them (clap requires both), else from the file (both or neither), the
/// port picked like any option.
///
/// Errors: the file names one of `tls_cert` and `tls_key` without the
/// other.
fn tls_config(
    args: &Args,
    given: &dyn Fn(&str) -> bool,
    options: &FileOptions,
    source: Option<&Source<'_>>,
) -> Result<Option<TlsConfig>, SettingsError> {
    let rtsps_port = pick(given("rtsps_port"), args.rtsps_port, options.rtsps_port);
    if let (Some(certificate), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return Ok(Some(TlsConfig {
            certificate: certificate.clone(),
            key: key.clone(),
            rtsps_port,
        }));
    }
    let Some(source) = source else {
        return Ok(None);
    };
    match (&options.tls_cert, &options.tls_key) {
        (Some(certificate), Some(tls_key)) => Ok(Some(TlsConfig {
            certificate: source.resolve(certificate),
            key: source.resolve(tls_key),
            rtsps_port,
        })),
        (Some(_), None) => Err(source.error(&[key("tls_cert")], "needs tls_key beside it")),
        (None, Some(_)) => Err(source.error(&[key("tls_key")], "needs tls_cert beside it")),
        (None, None) => Ok(None),
    }
}

/// The command line's value when it was given there, else the file's,
/// else the command line's default.
fn pick<T>(given: bool, cli: T, file: Option<T>) -> T {
    if given {
        cli
    } else {
        file.unwrap_or(cli)
    }
}

/// Whether the file gave the option `id` (a multicast one).
fn file_gave(options: &FileOptions, id: &str) -> bool {
    match id {
        "multicast_range" => options.multicast_range.is_some(),
        "multicast_port" => options.multicast_port.is_some(),
        "multicast_ttl" => options.multicast_ttl.is_some(),
        "rtp_port" => options.rtp_port.is_some(),
        "api_addr" => options.api_addr.is_some(),
        _ => false,
    }
}

/// Ports that cannot all be bound: an RTP port with no RTCP port after
/// it, or the API on the port of RTSP or RTSPS.
///
/// Errors: the option's key (`rtp_port`, `api_addr`) and why.
fn check_ports(config: &Config) -> Result<(), (&'static str, String)> {
    if config.rtp_port == u16::MAX {
        return Err((
            "rtp_port",
            "65535 leaves no port for RTCP, which takes the next one".to_string(),
        ));
    }
    let Some(api) = &config.api else {
        return Ok(());
    };
    let shares_address = |ip: std::net::IpAddr| {
        ip == config.bind || ip.is_unspecified() || config.bind.is_unspecified()
    };
    let rtsps_port = config.tls.as_ref().map(|tls| tls.rtsps_port);
    let taken = [Some(config.rtsp_port), rtsps_port]
        .into_iter()
        .flatten()
        .any(|port| port != 0 && port == api.addr.port());
    if taken && shares_address(api.addr.ip()) {
        return Err((
            "api_addr",
            format!(
                "{} is the port of RTSP or RTSPS: give the API a port of its own",
                api.addr
            ),
        ));
    }
    Ok(())
}

/// Ranges the file's scalar values must be in (the command line checks
/// its own with clap).
fn check_file_values(options: &FileOptions, source: &Source<'_>) -> Result<(), SettingsError> {
    if let Some(mtu) = options.mtu.filter(|mtu| !MTU_RANGE.contains(mtu)) {
        return Err(source.error(
            &[key("mtu")],
            format!(
                "{mtu} is out of range: an MTU is {} to {} bytes",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            ),
        ));
    }
    if let Some(wait) = options
        .publisher_wait
        .filter(|wait| !PUBLISHER_WAIT_RANGE.contains(wait))
    {
        return Err(source.error(
            &[key("publisher_wait")],
            format!(
                "{wait} is out of range: give {} to {} seconds",
                PUBLISHER_WAIT_RANGE.start(),
                PUBLISHER_WAIT_RANGE.end()
            ),
        ));
    }
    Ok(())
}

/// `multicast_range` and the port and TTL as a configuration; an error
/// names the option at fault.
fn multicast_config(
    range: &str,
    port: u16,
    ttl: u8,
) -> Result<Option<MulticastConfig>, (&'static str, String)> {
    if range.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad_range = |why: &str| ("multicast_range", format!("{range:?} {why}"));
    let (address, prefix) = range
        .split_once('/')
        .ok_or_else(|| bad_range("is not ADDRESS/PREFIX (or off)"))?;
    let address: std::net::Ipv4Addr = address
        .parse()
        .map_err(|_| bad_range("does not start with an IPv4 address"))?;
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| (4..=32).contains(p))
        .ok_or_else(|| bad_range("has a prefix outside 4 to 32"))?;
    if !address.is_multicast() {
        return Err(bad_range("is not in 224.0.0.0/4"));
    }
    let groups = 1u32 << (32 - prefix).min(31);
    // Each group needs its ports below 65536.
    let fit = u32::from(u16::MAX - port) / u32::from(PORTS_PER_GROUP);
    if fit == 0 {
        return Err((
            "multicast_port",
            format!("{port} leaves no room for a group's {PORTS_PER_GROUP} ports"),
        ));
    }
    Ok(Some(MulticastConfig {
        first_group: address,
        groups: groups.min(fit),
        port,
        ttl,
    }))
}

/// `--camera` and its options as a camera.
fn command_line_camera(args: &Args) -> Result<Option<CameraConfig>, SettingsError> {
    let Some(device) = &args.camera else {
        return Ok(None);
    };
    let mount = normalize_mount(&args.camera_path);
    if mount == "/" {
        return Err(cli_error("--path", "a camera needs a path other than /"));
    }
    let (width, height) = args.camera_size;
    Ok(Some(CameraConfig {
        mount,
        device: device.clone(),
        requested: CameraFormat {
            codec: args.camera_format,
            width,
            height,
            fps: args.camera_fps,
        },
    }))
}

/// What the file's `[[path]]` entries configure.
#[derive(Default)]
struct FilePaths {
    media_paths: Vec<MediaPathConfig>,
    channels: Vec<ChannelConfig>,
    on_demand_relays: Vec<RelayConfig>,
    always_relays: Vec<RelayConfig>,
    publish_paths: Vec<String>,
    cameras: Vec<CameraConfig>,
    access: Vec<PathAccess>,
}

/// Checks each `[[path]]` and sorts it by source.
fn file_paths(
    options: &FileOptions,
    source: Option<&Source<'_>>,
    args: &Args,
    given: &dyn Fn(&str) -> bool,
    realm: &str,
) -> Result<FilePaths, SettingsError> {
    let mut paths = FilePaths::default();
    let Some(source) = source else {
        return Ok(paths);
    };
    let mut names = HashSet::new();
    for (index, entry) in options.paths.iter().enumerate() {
        let at = |name: &str| [key("path"), Segment::Index(index), key(name)];
        let mount = normalize_mount(&entry.name);
        if !entry.name.starts_with('/') {
            return Err(source.error(&at("name"), format!("{:?} must start with /", entry.name)));
        }
        if !names.insert(mount.clone()) {
            return Err(source.error(&at("name"), format!("{mount} is given twice")));
        }
        let sources: Vec<&str> = [
            ("file", entry.file.is_some()),
            ("folder", entry.folder.is_some()),
            ("channel", entry.channel.is_some()),
            ("relay", entry.relay.is_some()),
            ("relay_always", entry.relay_always.is_some()),
            ("camera", entry.camera.is_some()),
            ("publishers", entry.publishers),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if sources.len() > 1 {
            return Err(source.error(
                &at(sources[1]),
                format!("a path has one source; this one also has {}", sources[0]),
            ));
        }
        if sources.is_empty() && entry.read.is_none() && entry.publish.is_none() {
            return Err(source.error(
                &at("name"),
                "the path has no source (file, folder, channel, relay, relay_always, camera, \
                 publishers) and no access rule (read, publish)",
            ));
        }
        if mount == "/" && sources.iter().any(|s| *s != "publishers") {
            return Err(source.error(
                &at(sources[0]),
                "this source needs a path other than / (`media` serves /)",
            ));
        }
        let camera_keys = [
            ("camera_format", entry.camera_format.is_some()),
            ("camera_size", entry.camera_size.is_some()),
            ("camera_fps", entry.camera_fps.is_some()),
        ];
        if let Some((name, _)) = camera_keys
            .iter()
            .find(|(_, set)| *set && entry.camera.is_none())
        {
            return Err(source.error(&at(name), "only a camera path takes this"));
        }
        if let Some(file) = &entry.file {
            paths.media_paths.push(MediaPathConfig {
                mount: mount.clone(),
                path: source.resolve(file),
            });
        }
        if let Some(folder) = &entry.folder {
            paths.media_paths.push(MediaPathConfig {
                mount: mount.clone(),
                path: source.resolve(folder),
            });
        }
        if let Some(file) = &entry.channel {
            paths.channels.push(ChannelConfig {
                mount: mount.clone(),
                file: source.resolve(file),
            });
        }
        for (name, url, pull) in [
            ("relay", &entry.relay, RelayPull::OnDemand),
            ("relay_always", &entry.relay_always, RelayPull::Always),
        ] {
            let Some(url) = url else { continue };
            let (upstream, credentials) =
                crate::config::relay_upstream(url).map_err(|e| source.error(&at(name), e))?;
            let relay = RelayConfig {
                mount: mount.clone(),
                upstream,
                credentials,
                pull,
            };
            match pull {
                RelayPull::OnDemand => paths.on_demand_relays.push(relay),
                RelayPull::Always => paths.always_relays.push(relay),
            }
        }
        if let Some(device) = &entry.camera {
            let at_key = |name: &str| at(name).to_vec();
            paths.cameras.push(file_camera(
                entry,
                device,
                mount.clone(),
                args,
                given,
                &|name, message| source.error(&at_key(name), message),
            )?);
        }
        if entry.publishers {
            paths.publish_paths.push(mount.clone());
        }
        if entry.read.is_some() || entry.publish.is_some() {
            let rule = |name: &str, entry: &Option<AccessEntry>| match entry {
                Some(entry) => access_rule(
                    entry,
                    source,
                    &[key("path"), Segment::Index(index), key(name)],
                    realm,
                ),
                None => Ok(AccessRule::default()),
            };
            paths.access.push(PathAccess {
                path: mount.clone(),
                read: rule("read", &entry.read)?,
                publish: rule("publish", &entry.publish)?,
            });
        }
    }
    Ok(paths)
}

/// A `[[path]]` camera: its own format, size and rate unless the command
/// line gives them.
fn file_camera(
    entry: &PathEntry,
    device: &Path,
    mount: String,
    args: &Args,
    given: &dyn Fn(&str) -> bool,
    source_error: &dyn Fn(&str, String) -> SettingsError,
) -> Result<CameraConfig, SettingsError> {
    let codec = match (&entry.camera_format, given("camera_format")) {
        (Some(format), false) => format
            .parse()
            .map_err(|e| source_error("camera_format", e))?,
        _ => args.camera_format,
    };
    let (width, height) = match (&entry.camera_size, given("camera_size")) {
        (Some(size), false) => {
            parse_frame_size(size).map_err(|e| source_error("camera_size", e))?
        }
        _ => args.camera_size,
    };
    let fps = match (entry.camera_fps, given("camera_fps")) {
        (Some(fps), false) if !CAMERA_FPS_RANGE.contains(&fps) => {
            return Err(source_error(
                "camera_fps",
                format!("{fps} is out of range: give 1 to 240"),
            ))
        }
        (Some(fps), false) => fps,
        _ => args.camera_fps,
    };
    Ok(CameraConfig {
        mount,
        device: device.to_path_buf(),
        requested: CameraFormat {
            codec,
            width,
            height,
            fps,
        },
    })
}

/// One `read` or `publish` table as a rule, each user's hash checked
/// against `realm`.
fn access_rule(
    entry: &AccessEntry,
    source: &Source<'_>,
    at: &[Segment],
    realm: &str,
) -> Result<AccessRule, SettingsError> {
    let within = |tail: &[Segment]| [at, tail].concat();
    let mut rule = AccessRule::default();
    for (index, user) in entry.users.iter().enumerate() {
        let user_at = |name: &str| within(&[key("users"), Segment::Index(index), key(name)]);
        if user.name.is_empty() {
            return Err(source.error(&user_at("name"), "a user needs a name"));
        }
        if user.password_hash.is_empty() {
            return Err(source.error(&user_at("password_hash"), "a user needs a password hash"));
        }
        crate::rtsp::auth::password::check_user(&user.name, &user.password_hash, realm)
            .map_err(|why| source.error(&user_at("password_hash"), why))?;
        rule.users.push(UserCredential {
            name: user.name.clone(),
            password_hash: user.password_hash.clone(),
        });
    }
    for (index, network) in entry.networks.iter().enumerate() {
        let parsed = network.parse::<ipnet::IpNet>().map_err(|_| {
            source.error(
                &within(&[key("networks"), Segment::Index(index)]),
                format!("{network:?} is not a network: give ADDRESS/PREFIX, e.g. 10.0.0.0/8"),
            )
        })?;
        rule.networks.push(parsed);
    }
    Ok(rule)
}

/// No mount fed by two sources.
fn check_mounts(config: &Config) -> Result<(), SettingsError> {
    let mut mounts = HashSet::new();
    let all = config
        .media_paths
        .iter()
        .map(|p| &p.mount)
        .chain(config.channels.iter().map(|c| &c.mount))
        .chain(config.relays.iter().map(|r| &r.mount))
        .chain(config.cameras.iter().map(|c| &c.mount));
    for mount in all {
        if !mounts.insert(mount) {
            return Err(cli_error(
                "",
                format!(
                    "{mount} is given twice (as a file, a folder, a channel, a relay or a camera)"
                ),
            ));
        }
    }
    Ok(())
}

/// The media, files, folders and channels named exist, each of its kind.
fn check_files_exist(
    config: &Config,
    args: &Args,
    given: &dyn Fn(&str) -> bool,
    source: Option<&Source<'_>>,
    options: &FileOptions,
    probe: &dyn Fn(&Path) -> PathKind,
) -> Result<(), SettingsError> {
    let describe = |path: &Path, wanted: &[PathKind]| -> Result<(), String> {
        let found = probe(path);
        if wanted.contains(&found) {
            return Ok(());
        }
        Err(match found {
            PathKind::Missing => format!("{} does not exist", path.display()),
            PathKind::File => format!("{} is a file, not a folder", path.display()),
            PathKind::Folder => format!("{} is a folder, not a file", path.display()),
        })
    };
    let either = [PathKind::File, PathKind::Folder];
    if let Some(media) = &config.media {
        describe(media, &either).map_err(|message| match source {
            Some(source) if !given("media") => source.error(&[key("media")], message),
            _ => cli_error("MEDIA", message),
        })?;
    }
    if let Some(tls) = &config.tls {
        for (option, path) in [("tls_cert", &tls.certificate), ("tls_key", &tls.key)] {
            describe(path, &[PathKind::File]).map_err(|message| match source {
                Some(source) if !given(option) => source.error(&[key(option)], message),
                _ => cli_error(&format!("--{}", option.replace('_', "-")), message),
            })?;
        }
    }
    if given("channels") {
        for channel in &args.channels {
            describe(&channel.file, &[PathKind::File])
                .map_err(|message| cli_error("--channel", message))?;
        }
    }
    let Some(source) = source else {
        return Ok(());
    };
    for (index, entry) in options.paths.iter().enumerate() {
        let checks = [
            ("file", &entry.file, &[PathKind::File][..]),
            ("folder", &entry.folder, &[PathKind::Folder][..]),
            ("channel", &entry.channel, &[PathKind::File][..]),
        ];
        for (name, path, wanted) in checks {
            if name == "channel" && given("channels") {
                continue;
            }
            if let Some(path) = path {
                describe(&source.resolve(path), wanted).map_err(|message| {
                    source.error(&[key("path"), Segment::Index(index), key(name)], message)
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
