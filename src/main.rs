//! `rtpcast`: serve MP4 files over RTSP/RTP.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rtpcast::config::{
    ChannelConfig, Config, Limit, MulticastConfig, RelayConfig, RelayPull, DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_MAX_SESSIONS,
};
use rtpcast::rtsp::handler::PORTS_PER_GROUP;
use rtpcast::server::camera::Camera;
use rtpcast::server::catalog::Catalog;
use rtpcast::source::camera::{parse_frame_size, CameraCodec, CameraFormat};

/// Serve MP4 files (H.264 + AAC) over RTSP/RTP to VLC, ffplay, GStreamer
/// and any RTSP client. With no MEDIA, serves the bundled sample clip at
/// rtsp://HOST:5544/ and rtsp://HOST:5544/sample.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// An .mp4 file (served at / and /NAME) or a folder (every .mp4 under
    /// it, at its relative path).
    media: Option<PathBuf>,
    /// RTSP TCP port.
    #[arg(long, default_value_t = 5544)]
    rtsp_port: u16,
    /// Server RTP UDP port; RTCP uses the next port. All sessions share
    /// this pair.
    #[arg(long, default_value_t = 5005)]
    rtp_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Largest RTP packet in bytes, RTP header included.
    #[arg(long, default_value_t = 1400, value_parser = clap::value_parser!(u16).range(256..=9000))]
    mtu: u16,
    /// Start again from the beginning at the end of the file.
    #[arg(long = "loop")]
    loop_playback: bool,
    /// Play an .mp4 file as a live channel at a URL path, looping: every
    /// viewer shares one timeline and starts at the latest keyframe. Give
    /// it as PATH=FILE (`--channel /tv=clip.mp4`); repeat for more.
    #[arg(long = "channel", value_name = "PATH=FILE", value_parser = parse_channel)]
    channels: Vec<ChannelConfig>,
    /// A URL path that takes publishers (RTSP ANNOUNCE + RECORD, as
    /// `ffmpeg -f rtsp` sends), with everything below it; repeat for more.
    #[arg(long = "publish-path", value_name = "PATH", default_value = "/live")]
    publish_paths: Vec<String>,
    /// A publisher to a path that already has one replaces it (its
    /// viewers get BYE); without this it is answered 455.
    #[arg(long)]
    publish_takeover: bool,
    /// Seconds a viewer's DESCRIBE or SETUP of a publish path with no
    /// publisher waits for one to start before it is answered 404 (0:
    /// answered at once).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    publisher_wait: u64,
    /// Multicast groups for live paths, one per path, as an IPv4 range
    /// ADDRESS/PREFIX (e.g. 239.255.42.0/24); `off` refuses multicast.
    #[arg(long, default_value = "239.255.42.0/24", value_name = "RANGE|off")]
    multicast_range: String,
    /// RTP port of the first group's first track; each group uses 16
    /// ports from its own first (track N on first + 2N).
    #[arg(long, default_value_t = 30_000)]
    multicast_port: u16,
    /// Time to live (router hops) of multicast packets.
    #[arg(long, default_value_t = 1)]
    multicast_ttl: u8,
    /// Serve a path pulled from another RTSP server (an origin feeding
    /// this edge): PATH=URL (`--relay /edge=rtsp://origin:5544/tv`;
    /// credentials as rtsp://user:pass@host/...). It is pulled over TCP on
    /// the first viewer's request, and stops about 10 s after its last
    /// viewer leaves. A request waits for the upstream to play (10 s at
    /// most) and is answered 404 Not Found if it does not. A lost upstream
    /// ends its viewers' sessions (RTCP BYE) and is retried, 1 s apart
    /// doubling to 30 s. Repeat for more.
    #[arg(long = "relay", value_name = "PATH=URL", value_parser = parse_on_demand_relay)]
    relays: Vec<RelayConfig>,
    /// Like --relay, but pulled from start-up and kept pulling (retried
    /// the same way) whether anyone watches or not: joiners start at once.
    #[arg(long = "relay-always", value_name = "PATH=URL", value_parser = parse_always_relay)]
    always_relays: Vec<RelayConfig>,
    /// Stream a V4L2 camera giving Motion-JPEG or H.264 (`/dev/video0`)
    /// at --path, without re-encoding; needs a build with `--features
    /// v4l`. An unplugged camera ends its viewers' sessions (RTCP BYE)
    /// and is opened again every 3 s.
    #[arg(long, value_name = "DEVICE")]
    camera: Option<PathBuf>,
    /// URL path of the --camera.
    #[arg(long = "path", value_name = "PATH", default_value = "/live/webcam")]
    camera_path: String,
    /// What the camera is asked to encode: mjpeg or h264.
    #[arg(long, default_value = "mjpeg", value_name = "mjpeg|h264")]
    camera_format: CameraCodec,
    /// Picture size asked of the camera, WIDTHxHEIGHT (it may give
    /// another; the log says which).
    #[arg(long, default_value = "1280x720", value_name = "WxH", value_parser = parse_frame_size)]
    camera_size: (u32, u32),
    /// Frame rate asked of the camera.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    camera_fps: u32,
    /// Sessions the server holds at most; SETUP beyond is answered 453
    /// Not Enough Bandwidth. 0: no limit.
    #[arg(long, default_value_t = DEFAULT_MAX_SESSIONS)]
    max_sessions: usize,
    /// Sessions one client address holds at most, across its connections;
    /// SETUP beyond is answered 453. 0: no limit.
    #[arg(long, default_value_t = DEFAULT_MAX_PER_ADDRESS)]
    max_sessions_per_address: usize,
    /// RTSP connections one client address holds open at once; more are
    /// answered 503 Service Unavailable and closed. 0: no limit.
    #[arg(long, default_value_t = DEFAULT_MAX_PER_ADDRESS)]
    max_connections_per_address: usize,
    /// Print the access-rule entry of user USER with a password read from
    /// standard input (its first line), hashed for Digest and Basic, and
    /// exit.
    #[arg(long, value_name = "USER")]
    hash_password: Option<String>,
    /// The realm --hash-password hashes for: the server's.
    #[arg(long, default_value = rtpcast::config::DEFAULT_REALM, requires = "hash_password")]
    realm: String,
    /// Log filter: error, warn, info, debug, trace, or a tracing
    /// directive such as `rtpcast=debug`.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// `--multicast-range` and the port and TTL options as a configuration.
fn multicast_config(range: &str, port: u16, ttl: u8) -> anyhow::Result<Option<MulticastConfig>> {
    if range.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (address, prefix) = range
        .split_once('/')
        .with_context(|| format!("--multicast-range {range:?} is not ADDRESS/PREFIX"))?;
    let address: std::net::Ipv4Addr = address
        .parse()
        .with_context(|| format!("--multicast-range {range:?}: not an IPv4 address"))?;
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| (4..=32).contains(p))
        .with_context(|| format!("--multicast-range {range:?}: prefix must be 4 to 32"))?;
    anyhow::ensure!(
        address.is_multicast(),
        "--multicast-range {range:?} is not in 224.0.0.0/4"
    );
    let groups = 1u32 << (32 - prefix).min(31);
    // Each group needs its ports below 65536.
    let fit = u32::from(u16::MAX - port) / u32::from(PORTS_PER_GROUP);
    anyhow::ensure!(
        fit > 0,
        "--multicast-port {port} leaves no room for a group's {PORTS_PER_GROUP} ports"
    );
    Ok(Some(MulticastConfig {
        first_group: address,
        groups: groups.min(fit),
        port,
        ttl,
    }))
}

/// `PATH=FILE` of `--channel`: a URL path (a leading `/` optional) and a
/// file.
fn parse_channel(value: &str) -> Result<ChannelConfig, String> {
    let (path, file) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not PATH=FILE, e.g. /tv=clip.mp4"))?;
    let mount = rtpcast::rtsp::url::normalize_mount(path);
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
    let mount = rtpcast::rtsp::url::normalize_mount(path);
    if mount == "/" {
        return Err(format!(
            "{value:?} needs a path other than /, e.g. /edge=rtsp://origin:5544/tv"
        ));
    }
    let (upstream, credentials) = rtpcast::config::relay_upstream(upstream)?;
    Ok(RelayConfig {
        mount,
        upstream,
        credentials,
        pull,
    })
}

/// The `--camera` to stream, if one is given.
///
/// Errors: a camera in a build without the `v4l` feature, or `--path /`.
fn camera(args: &Args) -> anyhow::Result<Option<Camera>> {
    let Some(device) = &args.camera else {
        return Ok(None);
    };
    let mount = rtpcast::rtsp::url::normalize_mount(&args.camera_path);
    anyhow::ensure!(
        mount != "/",
        "--path {:?}: a camera needs a path other than /",
        args.camera_path
    );
    let (width, height) = args.camera_size;
    Ok(Some(Camera {
        mount,
        name: device.display().to_string(),
        requested: CameraFormat {
            codec: args.camera_format,
            width,
            height,
            fps: args.camera_fps,
        },
        device: capture_device(device)?,
    }))
}

#[cfg(feature = "v4l")]
fn capture_device(
    device: &std::path::Path,
) -> anyhow::Result<Box<dyn rtpcast::server::camera::CaptureDevice>> {
    Ok(Box::new(rtpcast::server::v4l2::V4l2Camera::new(device)))
}

#[cfg(not(feature = "v4l"))]
fn capture_device(
    device: &std::path::Path,
) -> anyhow::Result<Box<dyn rtpcast::server::camera::CaptureDevice>> {
    anyhow::bail!(
        "--camera {}: this rtpcast was built without camera support; build it with \
         `cargo build --release --features v4l` (needs libclang-dev)",
        device.display()
    )
}

/// Characters escaped in a URL path when printing a mount (RFC 3986 §3.3
/// allows the rest, `/` included).
const URL_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// `--hash-password USER`: the password from standard input's first line
/// (without its line ending), the entry on standard output.
fn print_password_entry(user: &str, realm: &str) -> anyhow::Result<()> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("Password for {user} (shown as typed): ");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let entry = rtpcast::rtsp::auth::password::config_entry(user, realm, password)
        .map_err(|why| anyhow::anyhow!("--hash-password: {why}"))?;
    println!("{entry}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(user) = &args.hash_password {
        return print_password_entry(user, &args.realm);
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level {:?}", args.log_level))?;
    // Colour only for a person at a terminal, not in log files or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
    let camera = camera(&args)?;
    let config = Config {
        bind: args.bind,
        rtsp_port: args.rtsp_port,
        rtp_port: args.rtp_port,
        mtu: usize::from(args.mtu),
        loop_playback: args.loop_playback,
        media: args.media,
        channels: args.channels,
        publish_paths: args
            .publish_paths
            .iter()
            .map(|path| rtpcast::rtsp::url::normalize_mount(path))
            .collect(),
        publish_takeover: args.publish_takeover,
        publisher_wait: std::time::Duration::from_secs(args.publisher_wait),
        multicast: multicast_config(
            &args.multicast_range,
            args.multicast_port,
            args.multicast_ttl,
        )?,
        relays: args.relays.into_iter().chain(args.always_relays).collect(),
        max_sessions: Limit::at_most(args.max_sessions),
        max_sessions_per_address: Limit::at_most(args.max_sessions_per_address),
        max_connections_per_address: Limit::at_most(args.max_connections_per_address),
        ..Config::default()
    };
    let catalog = match &config.media {
        Some(path) => {
            Catalog::from_path(path).with_context(|| format!("opening {}", path.display()))?
        }
        None => Catalog::bundled_sample().context("opening the bundled sample")?,
    };
    let mut mounts = catalog.describe_mounts();
    mounts.extend(config.channels.iter().map(|c| c.mount.clone()));
    mounts.extend(config.relays.iter().map(|r| r.mount.clone()));
    mounts.extend(camera.iter().map(|c| c.mount.clone()));
    let server =
        rtpcast::server::start_with_cameras(&config, catalog, camera.into_iter().collect()).await?;
    let host = if config.bind.is_unspecified() {
        "localhost".to_string()
    } else {
        config.bind.to_string()
    };
    for mount in mounts {
        // Escaped as a URL, so a name with spaces can be pasted into a client.
        let path = percent_encoding::utf8_percent_encode(&mount, URL_PATH);
        tracing::info!("serving rtsp://{host}:{}{path}", server.rtsp_addr.port());
    }
    for path in &config.publish_paths {
        let path = percent_encoding::utf8_percent_encode(path, URL_PATH);
        tracing::info!(
            "publishers take rtsp://{host}:{}{path}/…",
            server.rtsp_addr.port()
        );
    }
    tracing::info!(
        "RTSP on {}, RTP/RTCP on UDP {}-{}",
        server.rtsp_addr,
        server.rtp_port,
        server.rtp_port + 1
    );
    // Ctrl-C at a terminal, SIGTERM from `docker stop` or systemd: either
    // ends every session with BYE.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    server.shutdown();
    Ok(())
}
