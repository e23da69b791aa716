//! `rtpcast`: serve MP4 files over RTSP/RTP.

use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use rtpcast::config::Config;
use rtpcast::server::camera::Camera;
use rtpcast::server::catalog::Catalog;
use rtpcast::server::reload::{log_reload, ConfigSource};
use rtpcast::server::RunningServer;
use rtpcast::settings::{Args, LogFormat, Settings};
use tokio::signal::unix::{signal, SignalKind};

/// The configured cameras, each with its device.
///
/// Errors: a camera in a build without the `v4l` feature.
fn cameras(config: &Config) -> anyhow::Result<Vec<Camera>> {
    config
        .cameras
        .iter()
        .map(|camera| {
            Ok(Camera {
                mount: camera.mount.clone(),
                name: camera.device.display().to_string(),
                requested: camera.requested,
                device: capture_device(&camera.device)?,
            })
        })
        .collect()
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

/// `--hash-password USER`: reads the password from standard input and
/// prints the access-rule entry to paste into the configuration file.
///
/// Errors: standard input unreadable, or a user name the format cannot
/// hold.
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

/// Exit status of a configuration refused at start-up (as for a usage
/// error).
const BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    if let Some(user) = matches.get_one::<String>("hash_password") {
        let realm = matches
            .get_one::<String>("realm")
            .map_or(rtpcast::config::DEFAULT_REALM, String::as_str);
        return match print_password_entry(user, realm) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("rtpcast: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let source = ConfigSource::new(matches);
    let settings = match source.load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("rtpcast: {error}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    // Checked while merging: the filter parses.
    let filter = tracing_subscriber::EnvFilter::new(&settings.log_level);
    match settings.log_format {
        LogFormat::Text => {
            // Colour only for a person at a terminal, not in log files or
            // journald.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(ansi)
                .init();
        }
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rtpcast: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&source, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `config` until SIGTERM or SIGINT, reloading on SIGHUP.
async fn serve(source: &ConfigSource, settings: Settings) -> anyhow::Result<()> {
    let Settings {
        config, log_level, ..
    } = settings;
    let catalog = match &config.media {
        Some(path) => {
            Catalog::from_path(path).with_context(|| format!("opening {}", path.display()))?
        }
        None => Catalog::bundled_sample().context("opening the bundled sample")?,
    };
    let server = rtpcast::server::start_with_cameras(&config, catalog, cameras(&config)?).await?;
    let host = match config.bind {
        bind if bind.is_unspecified() => "localhost".to_string(),
        // A URL writes an IPv6 host in brackets (RFC 3986 §3.2.2).
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    let mut mounts = server.media_mounts();
    mounts.extend(config.channels.iter().map(|c| c.mount.clone()));
    mounts.extend(config.relays.iter().map(|r| r.mount.clone()));
    mounts.extend(config.cameras.iter().map(|c| c.mount.clone()));
    for mount in mounts {
        // Escaped as a URL, so a name with spaces can be pasted into a client.
        let path = percent_encoding::utf8_percent_encode(&mount, rtpcast::rtsp::url::PATH_ESCAPES);
        tracing::info!("serving rtsp://{host}:{}{path}", server.rtsp_addr.port());
        if let Some(rtsps) = server.rtsps_addr {
            tracing::info!("serving rtsps://{host}:{}{path}", rtsps.port());
        }
    }
    for path in &config.publish_paths {
        let path = percent_encoding::utf8_percent_encode(path, rtpcast::rtsp::url::PATH_ESCAPES);
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
    if let Some(rtsps) = server.rtsps_addr {
        tracing::info!("RTSPS (TLS, interleaved media only) on {rtsps}");
    }
    if let Some(api) = server.api_addr {
        let scheme = if config.api.as_ref().is_some_and(|api| api.tls) {
            "https"
        } else {
            "http"
        };
        tracing::info!("HTTP API, metrics and status page on {scheme}://{api}/");
        server.enable_api_reload(source.clone(), log_level.clone());
    }
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        // Ctrl-C at a terminal, SIGTERM from `docker stop` or systemd:
        // either ends every session with BYE.
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                signal.context("waiting for Ctrl-C")?;
                break;
            }
            _ = terminate.recv() => break,
            _ = hangup.recv() => reload(&server, source, &log_level),
        }
    }
    tracing::info!(within = ?rtpcast::server::SHUTDOWN_WITHIN, "shutting down");
    if !server.shutdown().await.unwrap_or(false) {
        tracing::warn!("not every session or connection ended in time; exiting anyway");
    }
    Ok(())
}

/// SIGHUP: the file read again and applied, or refused with the running
/// configuration kept. `log_level` is the filter in force, which only a
/// restart changes.
fn reload(server: &RunningServer, source: &ConfigSource, log_level: &str) {
    if source.file().is_none() {
        tracing::warn!("SIGHUP: no --config file to reload; nothing changed");
        return;
    }
    let outcome = server.reload_file(source, log_level);
    log_reload(source.file(), &outcome);
}
