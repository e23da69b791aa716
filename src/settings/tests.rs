use super::*;
use clap::CommandFactory;

/// A `--hash-password` entry's hash (realm `rtpcast`).
const ALICE_HASH: &str = "$digest$r=rtpcast$b332264f57cd3949578889881f622813$6de21219f228b2f2013608f8e8a14bb3b8f4fa9250b72909ee594a97787b8e57";

const EXAMPLE: &str = include_str!("../../rtpcast.example.toml");

fn matches(args: &[&str]) -> ArgMatches {
    Args::command()
        .try_get_matches_from(std::iter::once("rtpcast").chain(args.iter().copied()))
        .expect("arguments parse")
}

/// A disk where `.mp4` names are files, names without a dot folders, and
/// anything under `missing` nothing.
fn disk(path: &Path) -> PathKind {
    let text = path.to_string_lossy();
    if text.contains("missing") {
        PathKind::Missing
    } else if text.ends_with(".mp4") || text.ends_with(".pem") {
        PathKind::File
    } else {
        PathKind::Folder
    }
}

fn load(args: &[&str], text: &str) -> Result<Settings, SettingsError> {
    merge(
        &matches(args),
        Some(ConfigText {
            name: "test.toml",
            folder: Path::new("/etc/rtpcast"),
            text,
        }),
        &disk,
    )
}

fn refused(text: &str) -> SettingsError {
    load(&[], text).expect_err("refused")
}

#[test]
fn without_a_file_the_defaults_hold() {
    let settings = merge(&matches(&[]), None, &disk).unwrap();
    let defaults = Config::default();
    assert_eq!(settings.config.mtu, defaults.mtu);
    assert_eq!(settings.config.rtsp_port, defaults.rtsp_port);
    assert_eq!(settings.config.publish_paths, ["/live"]);
    assert_eq!(settings.config.multicast, defaults.multicast);
    assert_eq!(settings.config.max_sessions, defaults.max_sessions);
    assert_eq!(settings.log_level, "info");
}

#[test]
fn the_command_line_wins_over_the_file_over_the_defaults() {
    let text = "mtu = 1200\nrtsp_port = 8554\nloop = true\n";
    let from_file = load(&[], text).unwrap().config;
    assert_eq!(
        (from_file.mtu, from_file.rtsp_port, from_file.loop_playback),
        (1200, 8554, true)
    );
    assert_eq!(from_file.rtp_port, 5005, "a key left out keeps its default");
    let overridden = load(&["--mtu", "1300", "--rtsp-port", "9000"], text)
        .unwrap()
        .config;
    assert_eq!((overridden.mtu, overridden.rtsp_port), (1300, 9000));
    assert!(overridden.loop_playback);
    // Given on the command line with the default's value still wins.
    let explicit_default = load(&["--mtu", "1400"], text).unwrap().config;
    assert_eq!(explicit_default.mtu, 1400);
}

#[test]
fn a_repeatable_option_replaces_the_files_paths_of_its_kind() {
    let text = "[[path]]\nname = \"/tv\"\nchannel = \"tv.mp4\"\n\n\
                [[path]]\nname = \"/cams\"\npublishers = true\n\n\
                [[path]]\nname = \"/edge\"\nrelay = \"rtsp://origin/tv\"\n";
    let file_only = load(&[], text).unwrap().config;
    assert_eq!(file_only.channels[0].mount, "/tv");
    assert_eq!(
        file_only.channels[0].file,
        Path::new("/etc/rtpcast/tv.mp4"),
        "relative to the file's folder"
    );
    assert_eq!(file_only.publish_paths, ["/cams"]);
    assert_eq!(file_only.relays[0].pull, RelayPull::OnDemand);
    let replaced = load(
        &["--channel", "/other=o.mp4", "--publish-path", "/pub"],
        text,
    )
    .unwrap()
    .config;
    let channels: Vec<_> = replaced.channels.iter().map(|c| c.mount.as_str()).collect();
    assert_eq!(channels, ["/other"]);
    assert_eq!(replaced.channels[0].file, Path::new("o.mp4"));
    assert_eq!(replaced.publish_paths, ["/pub"]);
    assert_eq!(replaced.relays.len(), 1, "relays were not given");
}

#[test]
fn paths_fill_sources_and_access_rules() {
    let text = r#"
[[path]]
name = "movies/"
folder = "/srv/movies"
[path.read]
users = [{ name = "alice", password_hash = "$digest$r=rtpcast$b332264f57cd3949578889881f622813$6de21219f228b2f2013608f8e8a14bb3b8f4fa9250b72909ee594a97787b8e57" }]
networks = ["10.0.0.0/8", "2001:db8::/32"]

[[path]]
name = "/edge"
relay_always = "rtsp://u:p@origin:8554/tv"
[path.publish]
networks = ["192.168.1.0/24"]
"#;
    let error = load(&[], text).unwrap_err();
    assert_eq!(error.key, "path[0].name", "{error}");
    let text = text.replace("movies/", "/movies/");
    let config = load(&[], &text).unwrap().config;
    assert_eq!(
        config.media_paths,
        [MediaPathConfig {
            mount: "/movies".into(),
            path: "/srv/movies".into()
        }]
    );
    let relay = &config.relays[0];
    assert_eq!(
        (relay.mount.as_str(), relay.pull),
        ("/edge", RelayPull::Always)
    );
    assert_eq!(relay.upstream.as_str(), "rtsp://origin:8554/tv");
    assert_eq!(relay.credentials.as_ref().unwrap().password, "p");
    assert_eq!(config.access.len(), 2);
    let movies = &config.access[0];
    assert_eq!(movies.path, "/movies");
    assert_eq!(movies.read.users[0].name, "alice");
    assert_eq!(
        movies.read.users[0].password_hash, ALICE_HASH,
        "kept verbatim"
    );
    assert_eq!(movies.read.networks.len(), 2);
    assert!(movies.publish.is_open());
    assert_eq!(
        config.access[1].publish.networks,
        ["192.168.1.0/24".parse::<ipnet::IpNet>().unwrap()]
    );
    assert!(config.access[1].read.is_open());
}

#[test]
fn errors_name_the_file_line_and_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("mtu = 1400\nmtus = 3\n", 2, "mtus", "unknown field"),
        ("\nrtsp_port = 70000\n", 2, "rtsp_port", "u16"),
        ("rtsp_port = \"x\"\n", 1, "rtsp_port", "invalid type"),
        ("# comment\n\nmtu = 100\n", 3, "mtu", "256 to 9000"),
        ("publisher_wait = 301\n", 1, "publisher_wait", "0 to 300"),
        ("bind = \"localhost\"\n", 1, "bind", "address"),
        ("multicast_range = \"10.0.0.0/8\"\n", 1, "multicast_range", "224.0.0.0/4"),
        ("multicast_port = 65530\n", 1, "multicast_port", "no room"),
        ("log_level = \"=\"\n", 1, "log_level", "log filter"),
        ("media = \"missing.mp4\"\n", 1, "media", "does not exist"),
        (
            "[[path]]\nname = \"/a\"\nchanel = \"a.mp4\"\n",
            3,
            "path[0].chanel",
            "unknown field",
        ),
        (
            "[[path]]\nname = \"/a\"\npublishers = true\n\n[[path]]\nname = \"/b\"\nchannel = \"missing/b.mp4\"\n",
            7,
            "path[1].channel",
            "does not exist",
        ),
        (
            "[[path]]\nname = \"/a\"\nfile = \"dir\"\n",
            3,
            "path[0].file",
            "a folder, not a file",
        ),
        (
            "[[path]]\nname = \"/a\"\nfolder = \"a.mp4\"\n",
            3,
            "path[0].folder",
            "a file, not a folder",
        ),
        (
            "[[path]]\nname = \"/a\"\n[path.read]\nnetworks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
            4,
            "path[0].read.networks[1]",
            "not a network",
        ),
        (
            "[[path]]\nname = \"/a\"\nchannel = \"a.mp4\"\nrelay = \"rtsp://o/a\"\n",
            4,
            "path[0].relay",
            "one source",
        ),
        (
            "[[path]]\nname = \"/a\"\nrelay = \"http://o/a\"\n",
            3,
            "path[0].relay",
            "scheme",
        ),
        (
            "[[path]]\nname = \"/a\"\npublishers = true\n[[path]]\nname = \"/a/\"\nchannel = \"a.mp4\"\n",
            5,
            "path[1].name",
            "given twice",
        ),
        ("[[path]]\nname = \"/a\"\n", 2, "path[0].name", "no source"),
        (
            "[[path]]\nname = \"/\"\nchannel = \"a.mp4\"\n",
            3,
            "path[0].channel",
            "other than /",
        ),
        (
            "[[path]]\nname = \"/a\"\nfile = \"a.mp4\"\ncamera_fps = 5\n",
            4,
            "path[0].camera_fps",
            "only a camera",
        ),
        (
            "[[path]]\nname = \"/c\"\ncamera = \"/dev/video0\"\ncamera_fps = 500\n",
            4,
            "path[0].camera_fps",
            "1 to 240",
        ),
        (
            "[[path]]\nname = \"/c\"\ncamera = \"/dev/video0\"\ncamera_format = \"raw\"\n",
            4,
            "path[0].camera_format",
            "mjpeg or h264",
        ),
        (
            "[[path]]\nname = \"/a\"\n[path.read]\nusers = [{ name = \"bob\", password_hash = \"\" }]\n",
            4,
            "path[0].read.users[0].password_hash",
            "password hash",
        ),
    ];
    for &(text, line, key, says) in cases {
        let error = refused(text);
        assert_eq!(error.file.as_deref(), Some("test.toml"), "{text}");
        assert_eq!(
            (error.line, error.key.as_str()),
            (Some(line), key),
            "{text}: {error}"
        );
        assert!(error.message.contains(says), "{text}: {error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("test.toml:{line}: {key}: ")),
            "{error}"
        );
    }
}

#[test]
fn a_toml_syntax_error_has_its_line() {
    let error = refused("mtu = 1400\nrtsp_port = = 3\n");
    assert_eq!(error.line, Some(2), "{error}");
}

#[test]
fn command_line_errors_name_the_option() {
    let error = merge(&matches(&["--multicast-range", "1.2.3.4/8"]), None, &disk).unwrap_err();
    assert_eq!(
        (error.file.as_deref(), error.key.as_str()),
        (None, "--multicast-range")
    );
    assert!(error
        .to_string()
        .starts_with("command line: --multicast-range: "));
    let error = merge(&matches(&["missing.mp4"]), None, &disk).unwrap_err();
    assert_eq!(error.key, "MEDIA");
    // The command line's value is the one checked when it overrides.
    let error = load(&["--log-level", "="], "log_level = \"debug\"\n").unwrap_err();
    assert_eq!(error.key, "--log-level");
}

#[test]
fn two_sources_at_one_path_are_refused() {
    let error = load(
        &["--channel", "/tv=a.mp4"],
        "[[path]]\nname = \"/tv\"\nfile = \"b.mp4\"\n",
    )
    .unwrap_err();
    assert!(error.message.contains("/tv is given twice"), "{error}");
}

#[test]
fn file_cameras_take_the_command_lines_camera_options() {
    let text = "[[path]]\nname = \"/cam\"\ncamera = \"/dev/video2\"\ncamera_fps = 15\ncamera_size = \"640x480\"\n";
    let camera = load(&[], text).unwrap().config.cameras[0].clone();
    assert_eq!(camera.mount, "/cam");
    assert_eq!(
        (
            camera.requested.fps,
            camera.requested.width,
            camera.requested.codec
        ),
        (15, 640, CameraCodec::Mjpeg)
    );
    let overridden = load(&["--camera-fps", "10"], text).unwrap().config.cameras[0].clone();
    assert_eq!(overridden.requested.fps, 10);
    assert_eq!(overridden.requested.height, 480);
    let replaced = load(&["--camera", "/dev/video0"], text)
        .unwrap()
        .config
        .cameras;
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0].mount, "/live/webcam");
}

/// The shipped example loads, and names every key of the schema (the
/// camera's commented out, as most builds have no camera support, and the
/// relays, whose origin is an example: they load too once uncommented).
#[test]
fn the_example_file_loads_and_covers_every_key() {
    let settings = load(&[], EXAMPLE).expect("the example loads");
    let config = settings.config;
    assert_eq!(
        config.media,
        Some(PathBuf::from("/etc/rtpcast/media/sample.mp4"))
    );
    assert_eq!(config.media_paths.len(), 2);
    assert_eq!(config.channels.len(), 1);
    assert!(config.relays.is_empty(), "commented out");
    assert_eq!(config.publish_paths, ["/live"]);
    assert_eq!(config.access.len(), 2);
    let uncommented: String = EXAMPLE
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with("[[path]]") || rest.contains(" = ") => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    // Comment lines that happen to read as keys are not keys of the schema.
    let with_camera = load(&[], &uncommented).expect("the example with its camera loads");
    assert_eq!(with_camera.config.cameras.len(), 1);
    assert_eq!(with_camera.config.relays.len(), 2);
    let tls = with_camera
        .config
        .tls
        .expect("the example's TLS lines load");
    assert_eq!(tls.certificate, PathBuf::from("/etc/rtpcast/tls/cert.pem"));
    assert_eq!(tls.rtsps_port, 322);
    assert_eq!(config.tls, None, "commented out");
    let table: toml::Table = toml::from_str(&uncommented).unwrap();
    let mut keys: HashSet<String> = table.keys().cloned().collect();
    for key in table["api_access"].as_table().unwrap().keys() {
        keys.insert(format!("api_access.{key}"));
    }
    for path in table["path"].as_array().unwrap() {
        for (key, value) in path.as_table().unwrap() {
            keys.insert(format!("path.{key}"));
            if let Some(rule) = value.as_table() {
                for key in rule.keys() {
                    keys.insert(format!("path.access.{key}"));
                }
            }
        }
    }
    for key in [
        "media",
        "rtsp_port",
        "rtp_port",
        "bind",
        "mtu",
        "loop",
        "publish_takeover",
        "publisher_wait",
        "multicast_range",
        "multicast_port",
        "multicast_ttl",
        "max_sessions",
        "max_sessions_per_address",
        "max_connections_per_address",
        "log_level",
        "log_format",
        "tls_cert",
        "tls_key",
        "rtsps_port",
        "api_addr",
        "api_tls",
        "auth_realm",
        "auth_schemes",
        "api_access",
        "api_access.users",
        "api_access.networks",
        "path",
        "path.name",
        "path.file",
        "path.folder",
        "path.channel",
        "path.relay",
        "path.relay_always",
        "path.camera",
        "path.camera_format",
        "path.camera_size",
        "path.camera_fps",
        "path.publishers",
        "path.read",
        "path.publish",
        "path.access.users",
        "path.access.networks",
    ] {
        assert!(keys.remove(key), "the example lacks {key}");
    }
    assert!(keys.is_empty(), "keys not listed here: {keys:?}");
}

/// Every option of the command line has its key in the file.
#[test]
fn every_option_has_a_key() {
    let keys = [
        "media",
        "rtsp_port",
        "rtp_port",
        "bind",
        "mtu",
        "loop",
        "channel",
        "publish_path",
        "publish_takeover",
        "publisher_wait",
        "multicast_range",
        "multicast_port",
        "multicast_ttl",
        "relay",
        "relay_always",
        "camera",
        "path",
        "camera_format",
        "camera_size",
        "camera_fps",
        "max_sessions",
        "max_sessions_per_address",
        "max_connections_per_address",
        "log_level",
        "log_format",
        "tls_cert",
        "tls_key",
        "rtsps_port",
        "api_addr",
        "api_tls",
        "config",
        // One-shot commands, not settings: `--realm` goes with
        // `--hash-password` (the server's realm is `auth_realm`).
        "hash_password",
        "realm",
    ];
    for argument in Args::command().get_arguments() {
        let name = argument.get_long().map_or_else(
            || argument.get_id().as_str().to_string(),
            |l| l.replace('-', "_"),
        );
        if name == "help" || name == "version" {
            continue;
        }
        assert!(keys.contains(&name.as_str()), "--{name} has no key listed");
    }
}

#[test]
fn tls_comes_from_the_command_line_or_the_file_as_a_pair() {
    let from_file = load(
        &[],
        "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nrtsps_port = 8322\nlog_format = \"json\"\n",
    )
    .unwrap();
    let tls = from_file.config.tls.unwrap();
    assert_eq!(tls.certificate, PathBuf::from("/etc/rtpcast/c.pem"));
    assert_eq!(tls.key, PathBuf::from("/etc/rtpcast/k.pem"));
    assert_eq!(tls.rtsps_port, 8322);
    assert_eq!(from_file.log_format, LogFormat::Json);

    let overridden = load(
        &[
            "--tls-cert",
            "a.pem",
            "--tls-key",
            "b.pem",
            "--log-format",
            "text",
        ],
        "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let tls = overridden.config.tls.unwrap();
    assert_eq!(tls.certificate, PathBuf::from("a.pem"));
    assert_eq!(tls.rtsps_port, DEFAULT_RTSPS_PORT);
    assert_eq!(overridden.log_format, LogFormat::Text);

    let alone = refused("\n\ntls_key = \"k.pem\"\n");
    assert_eq!((alone.line, alone.key.as_str()), (Some(3), "tls_key"));
    assert!(alone.message.contains("tls_cert"), "{alone}");
    let missing = refused("tls_cert = \"missing.pem\"\ntls_key = \"k.pem\"\n");
    assert_eq!((missing.line, missing.key.as_str()), (Some(1), "tls_cert"));
    let format = refused("log_format = \"xml\"\n");
    assert_eq!(format.key, "log_format");
    assert!(load(&[], "").unwrap().config.tls.is_none());
}

#[test]
fn the_api_takes_its_address_and_access_rule() {
    let settings = load(
        &[],
        "api_addr = \"0.0.0.0:9997\"\n[api_access]\nnetworks = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let api = settings.config.api.unwrap();
    assert_eq!(api.addr, "0.0.0.0:9997".parse().unwrap());
    assert_eq!(api.access.networks, ["10.0.0.0/8".parse().unwrap()]);

    let bare = load(&["--api-addr"], "").unwrap().config.api.unwrap();
    assert_eq!(bare.addr, DEFAULT_API_ADDR.parse().unwrap());
    let overridden = load(
        &["--api-addr", "127.0.0.1:1"],
        "api_addr = \"0.0.0.0:9997\"\n",
    )
    .unwrap()
    .config
    .api
    .unwrap();
    assert_eq!(overridden.addr.port(), 1);
    assert!(
        load(&[], "").unwrap().config.api.is_none(),
        "off by default"
    );

    let bad = refused("\n[api_access]\nnetworks = [\"nowhere\"]\n");
    assert_eq!(
        (bad.line, bad.key.as_str()),
        (Some(3), "api_access.networks[0]")
    );
}

#[test]
fn the_api_serves_https_with_the_rtsps_certificate_only() {
    let pair = "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n";
    let from_file = load(
        &[],
        &format!("{pair}api_addr = \"0.0.0.0:9997\"\napi_tls = true\n"),
    )
    .unwrap()
    .config;
    assert!(from_file.api.unwrap().tls);
    let plain = load(&["--api-addr"], pair).unwrap().config;
    assert!(!plain.api.unwrap().tls, "plain HTTP by default");
    // The command line's flag over the file's `false`.
    let from_cli = load(
        &["--api-addr", "--api-tls"],
        &format!("{pair}api_tls = false\n"),
    )
    .unwrap()
    .config;
    assert!(from_cli.api.unwrap().tls);

    let no_certificate = refused("api_addr = \"127.0.0.1:9997\"\n\napi_tls = true\n");
    assert_eq!(
        (no_certificate.line, no_certificate.key.as_str()),
        (Some(3), "api_tls")
    );
    assert!(
        no_certificate.message.contains("tls_cert"),
        "{no_certificate}"
    );
    let on_the_command_line = load(&["--api-addr", "--api-tls"], "").expect_err("refused");
    assert_eq!(
        (on_the_command_line.line, on_the_command_line.key.as_str()),
        (None, "--api-tls")
    );
}

#[test]
fn password_hashes_and_the_realm_are_checked_with_their_line() {
    let hashed = format!(
        "auth_realm = \"rtpcast\"\nauth_schemes = [\"digest-md5\"]\n[[path]]\nname = \"/a\"\n[path.read]\nusers = [{{ name = \"alice\", password_hash = \"{ALICE_HASH}\" }}]\n"
    );
    let settings = load(&[], &hashed).unwrap();
    assert_eq!(
        settings.config.auth.schemes,
        [crate::config::AuthScheme::DigestMd5]
    );
    assert_eq!(settings.config.auth.realm, "rtpcast");

    let plain = refused("[[path]]\nname = \"/a\"\n[path.read]\nusers = [{ name = \"alice\", password_hash = \"secret\" }]\n");
    assert_eq!(
        (plain.line, plain.key.as_str()),
        (Some(4), "path[0].read.users[0].password_hash")
    );
    assert!(!plain.to_string().contains("secret\""), "{plain}");
    // The hash names its realm: another realm cannot check it.
    let other_realm = refused(&hashed.replace("auth_realm = \"rtpcast\"", "auth_realm = \"cams\""));
    assert_eq!(other_realm.key, "path[0].read.users[0].password_hash");
    let no_scheme = refused(&hashed.replace("[\"digest-md5\"]", "[]"));
    assert_eq!(no_scheme.key, "auth_schemes");
    let bad_scheme = refused("auth_schemes = [\"ntlm\"]\n");
    assert_eq!(
        (bad_scheme.line, bad_scheme.key.as_str()),
        (Some(1), "auth_schemes[0]")
    );
    let bad_realm = refused("\nauth_realm = \"a\\\"b\"\n");
    assert_eq!(
        (bad_realm.line, bad_realm.key.as_str()),
        (Some(2), "auth_realm")
    );
}

#[test]
fn ports_that_cannot_all_be_bound_are_refused() {
    let rtp = refused("\nrtp_port = 65535\n");
    assert_eq!((rtp.line, rtp.key.as_str()), (Some(2), "rtp_port"));
    assert!(load(&[], "rtp_port = 65534\n").is_ok());
    let from_cli = load(&["--rtp-port", "65535"], "").unwrap_err();
    assert_eq!((from_cli.file, from_cli.key.as_str()), (None, "--rtp-port"));

    let api = refused("rtsp_port = 8554\napi_addr = \"127.0.0.1:8554\"\n");
    assert_eq!((api.line, api.key.as_str()), (Some(2), "api_addr"));
    let on_rtsps = load(
        &["--api-addr", "0.0.0.0:322"],
        "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
    )
    .unwrap_err();
    assert_eq!(on_rtsps.key, "--api-addr");
    assert!(
        load(&["--api-addr", "127.0.0.1:9997"], "rtsp_port = 8554\n").is_ok(),
        "another port"
    );
    assert!(
        load(&["--bind", "10.0.0.1", "--api-addr", "127.0.0.1:5544"], "").is_ok(),
        "the same port on another address"
    );
    assert!(
        load(&["--rtsp-port", "0", "--api-addr", "127.0.0.1:0"], "").is_ok(),
        "both on any free port"
    );
}
