//! Reading the configuration file again (SIGHUP, or the HTTP API) and
//! applying it to the running server: paths added start, paths removed
//! end their sessions with BYE, access rules apply to new requests.
//! Settings that only a restart can change are reported, not applied.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::ArgMatches;

use super::catalog::Catalog;
use super::{lock, media_mounts, open_channels, session_task, RunningServer};
use crate::config::{Config, RelayConfig};
use crate::settings::{self, ConfigText, PathKind, Settings, SettingsError};

/// Where the settings come from: the command line as given, and the
/// configuration file it names, read again on every [`load`](Self::load).
#[derive(Debug, Clone)]
pub struct ConfigSource {
    matches: ArgMatches,
    file: Option<PathBuf>,
}

impl ConfigSource {
    /// The settings of `matches`, parsed from [`settings::Args`]'s
    /// command, with the file its `--config` names.
    pub fn new(matches: ArgMatches) -> Self {
        let file = matches.get_one::<PathBuf>("config").cloned();
        ConfigSource { matches, file }
    }

    /// The configuration file, if there is one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the file (if any) and merges it with the command line.
    ///
    /// Errors: a file that cannot be read, or any setting refused (see
    /// [`settings::merge`]), with file, line and key.
    pub fn load(&self) -> Result<Settings, SettingsError> {
        let Some(file) = &self.file else {
            return settings::merge(&self.matches, None, &probe);
        };
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|error| SettingsError {
            file: Some(name.clone()),
            line: None,
            key: String::new(),
            message: format!("cannot read it: {error}"),
        })?;
        let folder = file.parent().unwrap_or(Path::new(""));
        settings::merge(
            &self.matches,
            Some(ConfigText {
                name: &name,
                folder,
                text: &text,
            }),
            &probe,
        )
    }
}

/// What is on disk at `path`, following links.
fn probe(path: &Path) -> PathKind {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => PathKind::Folder,
        Ok(meta) if meta.is_file() => PathKind::File,
        _ => PathKind::Missing,
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Paths added (or whose source changed), by mount.
    pub added: Vec<String>,
    /// Paths removed (or whose source changed): their sessions ended.
    pub removed: Vec<String>,
    /// The root media (`media`) now serves something else.
    pub media_changed: bool,
    /// The access rules changed; they apply to new requests.
    pub access_changed: bool,
    /// Settings that changed in the file but apply only after a restart
    /// (their file keys); the old values stay in force.
    pub restart_needed: Vec<&'static str>,
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "added {:?}, removed {:?}, media {}, access rules {}",
            self.added,
            self.removed,
            if self.media_changed {
                "changed"
            } else {
                "unchanged"
            },
            if self.access_changed {
                "changed"
            } else {
                "unchanged"
            },
        )?;
        if !self.restart_needed.is_empty() {
            write!(f, "; needing a restart: {}", self.restart_needed.join(", "))?;
        }
        Ok(())
    }
}

/// Why a reload was refused; the running configuration stays. A
/// [`SettingsError`] converts, so `server.reload(source.load()?.config)`
/// reads in a function returning it.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file or the command line has a setting refused.
    #[error("{0}")]
    Settings(#[from] SettingsError),
    /// A file, folder or channel of the new configuration cannot be
    /// opened (a broken `.mp4`).
    #[error("{0:#}")]
    Media(anyhow::Error),
    /// The server was started without `--config`: there is no file to
    /// read again.
    #[error("no --config file to reload")]
    NoFile,
}

/// What feeds a path, to tell added, removed and changed paths apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathSource {
    Media(PathBuf),
    Channel(PathBuf),
    Relay(RelayConfig),
    Publishers,
}

fn sources(config: &Config) -> BTreeMap<String, PathSource> {
    let mut sources = BTreeMap::new();
    for path in &config.media_paths {
        sources.insert(path.mount.clone(), PathSource::Media(path.path.clone()));
    }
    for channel in &config.channels {
        sources.insert(
            channel.mount.clone(),
            PathSource::Channel(channel.file.clone()),
        );
    }
    for relay in &config.relays {
        sources.insert(relay.mount.clone(), PathSource::Relay(relay.clone()));
    }
    for path in &config.publish_paths {
        sources.insert(path.clone(), PathSource::Publishers);
    }
    sources
}

/// The file keys of settings that differ between `running` and `new` and
/// cannot change while the server runs.
fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 15] = [
        ("bind", running.bind != new.bind),
        ("rtsp_port", running.rtsp_port != new.rtsp_port),
        ("rtp_port", running.rtp_port != new.rtp_port),
        ("mtu", running.mtu != new.mtu),
        ("loop", running.loop_playback != new.loop_playback),
        (
            "publish_takeover",
            running.publish_takeover != new.publish_takeover,
        ),
        (
            "publisher_wait",
            running.publisher_wait != new.publisher_wait,
        ),
        (
            "multicast_range, multicast_port, multicast_ttl",
            running.multicast != new.multicast,
        ),
        ("max_sessions", running.max_sessions != new.max_sessions),
        (
            "max_sessions_per_address",
            running.max_sessions_per_address != new.max_sessions_per_address,
        ),
        (
            "max_connections_per_address",
            running.max_connections_per_address != new.max_connections_per_address,
        ),
        ("path.camera", running.cameras != new.cameras),
        ("tls_cert, tls_key, rtsps_port", running.tls != new.tls),
        (
            "api_addr",
            running.api.as_ref().map(|api| api.addr) != new.api.as_ref().map(|api| api.addr),
        ),
        (
            "api_tls",
            running.api.as_ref().is_some_and(|api| api.tls)
                != new.api.as_ref().is_some_and(|api| api.tls),
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

/// `new` as it can run now: what needs a restart kept as running.
fn applicable(running: &Config, new: Config) -> Config {
    Config {
        media: new.media,
        media_paths: new.media_paths,
        channels: new.channels,
        publish_paths: new.publish_paths,
        relays: new.relays,
        access: new.access,
        auth: new.auth,
        // The API keeps its address and TLS until a restart; its rule
        // applies now.
        api: match (running.api.clone(), new.api) {
            (Some(mut api), Some(new_api)) => {
                api.access = new_api.access;
                Some(api)
            }
            (api, _) => api,
        },
        ..running.clone()
    }
}

impl RunningServer {
    /// Applies `new` (from [`ConfigSource::load`] on SIGHUP or an API
    /// call) to the running server: paths added start serving
    /// (files, folders, channels, relays, publish paths); paths removed,
    /// or whose source changed, end their sessions with RTCP BYE (their
    /// publishers' connections closed) before the new source starts; the
    /// access rules apply to requests from now on; a changed `media`
    /// serves new requests. Settings only a restart can change are
    /// listed in the summary and stay as they are.
    ///
    /// Errors: a new file, folder or channel that cannot be opened;
    /// nothing is changed then.
    pub fn reload(&self, new: Config) -> Result<ReloadSummary, ReloadError> {
        apply(&self.shared, new)
    }

    /// Reads the configuration file of `source` again and applies it, as
    /// SIGHUP does; `log_level` is the filter in force, which only a
    /// restart changes.
    ///
    /// Errors: no `--config` file, or those of [`ConfigSource::load`]
    /// and [`RunningServer::reload`].
    pub fn reload_file(
        &self,
        source: &ConfigSource,
        log_level: &str,
    ) -> Result<ReloadSummary, ReloadError> {
        reload_file(&self.shared, source, log_level)
    }

    /// Lets the HTTP API's `POST /api/v1/reload` do what SIGHUP does:
    /// [`RunningServer::reload_file`], logged the same way.
    pub fn enable_api_reload(&self, source: ConfigSource, log_level: String) {
        let shared = Arc::downgrade(&self.shared);
        self.set_reload(Arc::new(move || {
            let shared = shared
                .upgrade()
                .ok_or_else(|| "the server is stopping".to_string())?;
            let outcome = reload_file(&shared, &source, &log_level);
            log_reload(source.file(), &outcome);
            outcome
                .map(|summary| summary.to_string())
                .map_err(|error| error.to_string())
        }));
    }
}

/// Logs what a reload did, or why it was refused.
pub fn log_reload(file: Option<&Path>, outcome: &Result<ReloadSummary, ReloadError>) {
    let file = file.map_or_else(String::new, |f| f.display().to_string());
    match outcome {
        Ok(summary) => {
            tracing::info!(%file, "configuration reloaded: {summary}");
            if !summary.restart_needed.is_empty() {
                tracing::warn!(
                    "changed settings need a restart and stay as they were: {}",
                    summary.restart_needed.join(", ")
                );
            }
        }
        Err(error) => tracing::error!(
            %file,
            "configuration not reloaded, the running one stays: {error}"
        ),
    }
}

fn reload_file(
    shared: &Arc<super::Shared>,
    source: &ConfigSource,
    log_level: &str,
) -> Result<ReloadSummary, ReloadError> {
    if source.file().is_none() {
        return Err(ReloadError::NoFile);
    }
    let settings = source.load()?;
    let mut summary = apply(shared, settings.config)?;
    if settings.log_level != log_level {
        summary.restart_needed.push("log_level");
    }
    Ok(summary)
}

/// [`RunningServer::reload`]: the configuration lock is held throughout,
/// so two reloads (SIGHUP and the API) apply one after the other.
fn apply(shared: &Arc<super::Shared>, new: Config) -> Result<ReloadSummary, ReloadError> {
    let mut current = lock(&shared.config);
    let running = current.clone();
    let mut summary = ReloadSummary {
        restart_needed: restart_needed(&running, &new),
        ..ReloadSummary::default()
    };
    let new = applicable(&running, new);
    let (before, after) = (sources(&running), sources(&new));
    summary.removed = before
        .iter()
        .filter(|(mount, source)| after.get(*mount) != Some(source))
        .map(|(mount, _)| mount.clone())
        .collect();
    summary.added = after
        .iter()
        .filter(|(mount, source)| before.get(*mount) != Some(source))
        .map(|(mount, _)| mount.clone())
        .collect();
    summary.media_changed = running.media != new.media;
    summary.access_changed = running.access != new.access
        || running.auth != new.auth
        || running.api.as_ref().map(|api| &api.access) != new.api.as_ref().map(|api| &api.access);
    // Everything that can fail is opened before anything changes.
    let added_channels: Vec<_> = new
        .channels
        .iter()
        .filter(|c| summary.added.contains(&c.mount))
        .cloned()
        .collect();
    let channels = open_channels(&added_channels).map_err(ReloadError::Media)?;
    let root = match &new.media {
        Some(path) => Catalog::from_path(path)
            .map_err(|e| ReloadError::Media(anyhow::anyhow!("opening {}: {e}", path.display())))?,
        None => Catalog::bundled_sample()
            .map_err(|e| ReloadError::Media(anyhow::anyhow!("the bundled sample: {e}")))?,
    };
    let media = media_mounts(root, &new.media_paths).map_err(ReloadError::Media)?;

    let routes = super::Routes::of(&new, &shared.camera_mounts);
    let removed = summary.removed.clone();
    let actions = shared.with_handler(|handler, viewers| {
        handler.set_access(new.access.clone());
        handler.set_auth(new.auth.clone());
        handler.set_paths(routes.publish_paths.clone(), routes.source_paths.clone());
        handler.end_sessions_under(&removed, viewers)
    });
    session_task::run_actions(shared, actions, None);
    for mount in &summary.removed {
        if matches!(
            before.get(mount),
            Some(PathSource::Channel(_) | PathSource::Relay(_))
        ) {
            super::stop_source(shared, mount);
        }
    }
    *lock(&shared.routes) = routes;
    *lock(&shared.media) = Arc::new(media);
    for (mount, media) in channels {
        super::start_channel(shared, mount, media);
    }
    for relay in new
        .relays
        .iter()
        .filter(|r| summary.added.contains(&r.mount))
    {
        super::start_relay(shared, relay);
    }
    *current = new;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AccessRule, ApiConfig, ChannelConfig, Limit};

    #[test]
    fn settings_needing_a_restart_are_listed_and_kept() {
        let running = Config::default();
        let mut new = Config {
            rtsp_port: 8554,
            multicast: None,
            max_sessions: Limit::at_most(5),
            tls: Some(crate::config::TlsConfig {
                certificate: "cert.pem".into(),
                key: "key.pem".into(),
                rtsps_port: 322,
            }),
            ..Config::default()
        };
        new.channels.push(ChannelConfig {
            mount: "/tv".into(),
            file: "tv.mp4".into(),
        });
        assert_eq!(
            restart_needed(&running, &new),
            [
                "rtsp_port",
                "multicast_range, multicast_port, multicast_ttl",
                "max_sessions",
                "tls_cert, tls_key, rtsps_port"
            ]
        );
        let applied = applicable(&running, new);
        assert_eq!(applied.rtsp_port, running.rtsp_port);
        assert_eq!(applied.multicast, running.multicast);
        assert_eq!(applied.max_sessions, running.max_sessions);
        assert_eq!(applied.tls, None);
        assert_eq!(applied.channels.len(), 1, "paths apply");
        assert!(restart_needed(&running, &applied).is_empty());
    }

    #[test]
    fn the_apis_tls_needs_a_restart_and_its_rule_applies_now() {
        let api = ApiConfig {
            addr: "127.0.0.1:9997".parse().unwrap(),
            access: AccessRule::default(),
            tls: false,
        };
        let running = Config {
            api: Some(api.clone()),
            ..Config::default()
        };
        let lan: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let new = Config {
            api: Some(ApiConfig {
                tls: true,
                access: AccessRule {
                    networks: vec![lan],
                    ..AccessRule::default()
                },
                ..api
            }),
            ..Config::default()
        };
        assert_eq!(restart_needed(&running, &new), ["api_tls"]);
        let applied = applicable(&running, new).api.unwrap();
        assert!(!applied.tls, "kept as running");
        assert_eq!(applied.access.networks, [lan]);
    }

    #[test]
    fn a_path_whose_source_changes_is_removed_and_added() {
        let mut before = Config::default();
        before.channels.push(ChannelConfig {
            mount: "/tv".into(),
            file: "a.mp4".into(),
        });
        let mut after = before.clone();
        after.channels[0].file = "b.mp4".into();
        let (before, after) = (sources(&before), sources(&after));
        assert_ne!(before.get("/tv"), after.get("/tv"));
        assert_eq!(before.get("/live"), Some(&PathSource::Publishers));
        assert_eq!(before.get("/live"), after.get("/live"));
    }
}
