//! The configuration file's schema (TOML, read with serde) and where its
//! keys are, so an error names the line and the key. Pure: it takes the
//! file's text; reading it is the caller's.

use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

/// The whole file: the scalar command-line options under their long names
/// (`-` written `_`), and the paths.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    /// `MEDIA`: a file or a folder served at `/`.
    pub media: Option<PathBuf>,
    /// `--rtsp-port`.
    pub rtsp_port: Option<u16>,
    /// `--rtp-port`.
    pub rtp_port: Option<u16>,
    /// `--bind`.
    pub bind: Option<IpAddr>,
    /// `--mtu`.
    pub mtu: Option<u16>,
    /// `--loop`.
    #[serde(rename = "loop")]
    pub loop_playback: Option<bool>,
    /// `--publish-takeover`.
    pub publish_takeover: Option<bool>,
    /// `--publisher-wait`, seconds.
    pub publisher_wait: Option<u64>,
    /// `--multicast-range`.
    pub multicast_range: Option<String>,
    /// `--multicast-port`.
    pub multicast_port: Option<u16>,
    /// `--multicast-ttl`.
    pub multicast_ttl: Option<u8>,
    /// `--max-sessions`.
    pub max_sessions: Option<usize>,
    /// `--max-sessions-per-address`.
    pub max_sessions_per_address: Option<usize>,
    /// `--max-connections-per-address`.
    pub max_connections_per_address: Option<usize>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--log-format`.
    pub log_format: Option<crate::settings::LogFormat>,
    /// `--tls-cert`, relative to the file's folder.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`, relative to the file's folder.
    pub tls_key: Option<PathBuf>,
    /// `--rtsps-port`.
    pub rtsps_port: Option<u16>,
    /// `--api-addr`.
    pub api_addr: Option<std::net::SocketAddr>,
    /// `--api-tls`.
    pub api_tls: Option<bool>,
    /// The realm of authentication challenges and password hashes.
    pub auth_realm: Option<String>,
    /// The authentication schemes offered, most preferred first:
    /// `digest-sha256`, `digest-md5`, `basic`.
    pub auth_schemes: Option<Vec<crate::config::AuthScheme>>,
    /// Who may use the HTTP API (`users`, `networks`), like a path's
    /// `read`.
    pub api_access: Option<AccessEntry>,
    /// `[[path]]` entries.
    #[serde(default, rename = "path")]
    pub paths: Vec<PathEntry>,
}

/// One `[[path]]`: a URL path with at most one source and its access
/// rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathEntry {
    /// The URL path (`/tv`).
    pub name: String,
    /// An `.mp4` file served at the path.
    pub file: Option<PathBuf>,
    /// A folder whose `.mp4` files are served below the path.
    pub folder: Option<PathBuf>,
    /// An `.mp4` file played as a live channel (`--channel`).
    pub channel: Option<PathBuf>,
    /// An upstream pulled on demand (`--relay`).
    pub relay: Option<String>,
    /// An upstream pulled from start-up (`--relay-always`).
    pub relay_always: Option<String>,
    /// A V4L2 device (`--camera`).
    pub camera: Option<PathBuf>,
    /// `--camera-format`.
    pub camera_format: Option<String>,
    /// `--camera-size`.
    pub camera_size: Option<String>,
    /// `--camera-fps`.
    pub camera_fps: Option<u32>,
    /// The path takes publishers (`--publish-path`).
    #[serde(default)]
    pub publishers: bool,
    /// Who may read.
    pub read: Option<AccessEntry>,
    /// Who may publish.
    pub publish: Option<AccessEntry>,
}

/// `read` or `publish` of a path.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessEntry {
    /// Users admitted.
    #[serde(default)]
    pub users: Vec<UserEntry>,
    /// Networks admitted, CIDR.
    #[serde(default)]
    pub networks: Vec<String>,
}

/// A user of an [`AccessEntry`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// The user name.
    pub name: String,
    /// The password hash, kept verbatim.
    pub password_hash: String,
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A key of a table.
    Key(String),
    /// A position in an array (from 0).
    Index(usize),
}

/// Where a key is, for error messages: `path[1].channel`.
pub fn key_name(path: &[Segment]) -> String {
    let mut name = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) if name.is_empty() => name.push_str(key),
            Segment::Key(key) => {
                name.push('.');
                name.push_str(key);
            }
            Segment::Index(index) => name.push_str(&format!("[{index}]")),
        }
    }
    name
}

/// The file's text with its key tree, to turn byte offsets into lines and
/// keys and keys into lines.
pub struct Document<'a> {
    text: &'a str,
    root: Option<DeTable<'a>>,
}

impl<'a> Document<'a> {
    /// Reads the key tree of `text`; a file that is not TOML at all has
    /// none (its error comes from deserializing, with its span).
    pub fn new(text: &'a str) -> Self {
        Document {
            text,
            root: DeTable::parse(text).ok().map(|table| table.into_inner()),
        }
    }

    /// The 1-based line of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The line of the key `path` (of its value when the key itself has
    /// no span, as an array element).
    pub fn line_of_key(&self, path: &[Segment]) -> Option<usize> {
        let mut table = self.root.as_ref()?;
        let mut span: Option<Range<usize>> = None;
        let mut value: Option<&DeValue<'_>> = None;
        for segment in path {
            match segment {
                Segment::Key(key) => {
                    if let Some(DeValue::Table(inner)) = value {
                        table = inner;
                    } else if value.is_some() {
                        return None;
                    }
                    let (found_key, found) = table.iter().find(|(k, _)| k.get_ref() == key)?;
                    span = Some(found_key.span());
                    value = Some(found.get_ref());
                }
                Segment::Index(index) => {
                    let Some(DeValue::Array(array)) = value else {
                        return None;
                    };
                    let element = array.get(*index)?;
                    // Each `[[path]]` header's table has no span of its own
                    // worth showing; its first key's line follows.
                    if !element.span().is_empty() {
                        span = Some(element.span());
                    }
                    value = Some(element.get_ref());
                }
            }
        }
        span.map(|span| self.line_of(span.start))
    }

    /// The innermost key whose key or value holds byte `offset`: what a
    /// deserialization error at that offset is about.
    pub fn key_at(&self, offset: usize) -> Vec<Segment> {
        let mut path = Vec::new();
        if let Some(root) = &self.root {
            find_in_table(root, offset, &mut path);
        }
        path
    }
}

fn find_in_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<Segment>) -> bool {
    for (key, value) in table.iter() {
        if key.span().contains(&offset) {
            path.push(Segment::Key(key.get_ref().to_string()));
            return true;
        }
        path.push(Segment::Key(key.get_ref().to_string()));
        if find_in_value(value.get_ref(), value.span(), offset, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(
    value: &DeValue<'_>,
    span: Range<usize>,
    offset: usize,
    path: &mut Vec<Segment>,
) -> bool {
    match value {
        DeValue::Table(table) => find_in_table(table, offset, path) || span.contains(&offset),
        DeValue::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                path.push(Segment::Index(index));
                if find_in_value(element.get_ref(), element.span(), offset, path) {
                    return true;
                }
                path.pop();
            }
            span.contains(&offset)
        }
        _ => span.contains(&offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "mtu = 1400\n\n[[path]]\nname = \"/a\"\n\n[[path]]\nname = \"/b\"\nchannel = \"x.mp4\"\n[path.read]\nnetworks = [\"10.0.0.0/8\", \"bad\"]\n";

    #[test]
    fn keys_are_found_by_offset_and_lines_by_key() {
        let document = Document::new(TEXT);
        let offset = TEXT.find("\"bad\"").unwrap() + 1;
        let path = document.key_at(offset);
        assert_eq!(key_name(&path), "path[1].read.networks[1]");
        assert_eq!(document.line_of(offset), 10);
        assert_eq!(document.line_of_key(&path), Some(10));
        let channel = [
            Segment::Key("path".into()),
            Segment::Index(1),
            Segment::Key("channel".into()),
        ];
        assert_eq!(document.line_of_key(&channel), Some(8));
        assert_eq!(document.line_of_key(&[Segment::Key("mtu".into())]), Some(1));
        assert_eq!(document.line_of_key(&[Segment::Key("bind".into())]), None);
    }

    #[test]
    fn the_schema_refuses_unknown_keys_and_wrong_types() {
        let unknown = toml::from_str::<FileOptions>("mtu = 1400\nmtus = 3\n").unwrap_err();
        assert!(unknown.message().contains("mtus"), "{unknown}");
        let wrong = toml::from_str::<FileOptions>("rtsp_port = \"x\"\n").unwrap_err();
        assert!(wrong.span().is_some());
        let nested = toml::from_str::<FileOptions>("[[path]]\nname = \"/a\"\nchanel = \"a.mp4\"\n")
            .unwrap_err();
        assert!(nested.message().contains("chanel"), "{nested}");
    }
}
