//! What a request URL names (RFC 2326 §3.2, §C.1.1): the presentation
//! (its mount path in the catalog) and, for SETUP, a track of it; and the
//! presentation URL the server answers with.
//!
//! Clients build track URLs in more than one way: the presentation URL
//! joined with the SDP's `a=control` (`/clip.mp4/trackID=1`), or the URL
//! they were given, query and all, with `/trackID=1` appended after the
//! query (`/clip.mp4?token=x/trackID=1`). Both name track 1 of
//! `/clip.mp4`; the query itself never takes part in finding the media.

use rtsp_types::Url;

use crate::sdp;

/// The presentation and track a request URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The presentation's path, normalised by [`normalize_mount`].
    pub mount: String,
    /// The track index from a `trackID=N` control (RFC 2326 §C.1.1), if the
    /// URL names a track rather than the whole presentation.
    pub track: Option<usize>,
}

/// Characters escaped in a URL path when writing a mount as a URL (RFC
/// 3986 §3.3 allows the rest, `/` included): in the start-up log and the
/// HTTP API's path list, so a name with spaces reads as clients send it.
pub const PATH_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
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

/// The presentation and track `url` names: a track control is the last
/// segment of the path, or else the last `/`-separated part of the query.
pub fn target(url: &Url) -> Target {
    let path = normalize_mount(url.path());
    if let Some((head, last)) = path.rsplit_once('/') {
        if let Some(track) = sdp::parse_track_control(last) {
            return Target {
                mount: if head.is_empty() { "/" } else { head }.to_string(),
                track: Some(track),
            };
        }
    }
    let track = url
        .query()
        .and_then(|query| query.rsplit('/').next())
        .and_then(sdp::parse_track_control);
    Target { mount: path, track }
}

/// A URL path as a mount: repeated slashes collapsed and no trailing slash,
/// so `//clip.mp4/` and `/clip.mp4` are the same presentation; `/` for the
/// root.
pub fn normalize_mount(path: &str) -> String {
    let mut mount = String::with_capacity(path.len() + 1);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        mount.push('/');
        mount.push_str(segment);
    }
    if mount.is_empty() {
        mount.push('/');
    }
    mount
}

/// Content-Base for DESCRIBE (RFC 2326 §12.11): the presentation URL
/// with a trailing slash so relative `a=control` values join under it.
/// `secure`: asked over RTSPS (see [`presentation_url`]).
pub fn content_base(url: &Url, mount: &str, secure: bool) -> String {
    format!("{}/", presentation_url(url, mount, secure))
}

/// The URL of the presentation at `mount` as the client addressed the
/// server, without credentials, query, fragment or trailing slash. The
/// query is dropped because relative `a=control` values resolve against
/// the path (RFC 3986 §5.2), and a query left in a base would make them
/// replace the presentation's last segment. Asked over RTSPS (`secure`),
/// the scheme is `rtsps` whatever the client wrote, so the URLs it
/// builds from ours stay on TLS (RFC 7826 §19.2).
pub fn presentation_url(url: &Url, mount: &str, secure: bool) -> String {
    let mut base = url.clone();
    if secure {
        // Fails only for special schemes (http…), which no RTSP client
        // sends: the URL is then answered as it came.
        let _ = base.set_scheme("rtsps");
    }
    base.set_query(None);
    base.set_fragment(None);
    // Fails only for URLs that cannot carry credentials: nothing to strip.
    let _ = base.set_username("");
    let _ = base.set_password(None);
    base.set_path(mount);
    base.as_str().trim_end_matches('/').to_string()
}

/// `url` as text without its user name and password, for logs.
pub fn without_credentials(url: &Url) -> String {
    let mut url = url.clone();
    // Fails only for URLs that cannot carry credentials: nothing to strip.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_of(url: &str) -> (String, Option<usize>) {
        let Target { mount, track } = target(&Url::parse(url).expect("test URL"));
        (mount, track)
    }

    fn mount(path: &str, track: Option<usize>) -> (String, Option<usize>) {
        (path.to_string(), track)
    }

    #[test]
    fn track_controls_split_from_mounts() {
        assert_eq!(
            target_of("rtsp://h/sample/trackID=1"),
            mount("/sample", Some(1))
        );
        assert_eq!(target_of("rtsp://h/trackID=0"), mount("/", Some(0)));
        assert_eq!(target_of("rtsp://h/sample/"), mount("/sample", None));
        assert_eq!(target_of("rtsp://h/"), mount("/", None));
        assert_eq!(target_of("rtsp://h"), mount("/", None));
        assert_eq!(
            target_of("rtsp://h/sub/clip.mp4/trackID=0"),
            mount("/sub/clip.mp4", Some(0))
        );
        assert_eq!(
            target_of("rtsp://h/clip.mp4/streamid=1/"),
            mount("/clip.mp4", Some(1))
        );
    }

    #[test]
    fn a_track_control_after_the_query_names_the_track() {
        assert_eq!(
            target_of("rtsp://h/clip.mp4?token=x/trackID=1"),
            mount("/clip.mp4", Some(1))
        );
        assert_eq!(
            target_of("rtsp://h/sub/clip.mp4/?a=1&b=2/trackID=0"),
            mount("/sub/clip.mp4", Some(0))
        );
        assert_eq!(
            target_of("rtsp://h/clip.mp4?trackID=1"),
            mount("/clip.mp4", Some(1))
        );
    }

    #[test]
    fn queries_never_reach_the_mount() {
        assert_eq!(
            target_of("rtsp://h/clip.mp4?token=x"),
            mount("/clip.mp4", None)
        );
        assert_eq!(
            target_of("rtsp://h/clip.mp4?token=x/other"),
            mount("/clip.mp4", None)
        );
        assert_eq!(
            target_of("rtsp://h/clip.mp4/trackID=1?token=x/trackID=0"),
            mount("/clip.mp4", Some(1)),
            "the path's control wins"
        );
        assert_eq!(
            target_of("rtsp://h/clip.mp4#trackID=1"),
            mount("/clip.mp4", None)
        );
    }

    #[test]
    fn mounts_are_normalised() {
        assert_eq!(normalize_mount("//clip.mp4"), "/clip.mp4");
        assert_eq!(normalize_mount("/sub//clip.mp4//"), "/sub/clip.mp4");
        assert_eq!(normalize_mount(""), "/");
        assert_eq!(normalize_mount("///"), "/");
        assert_eq!(
            target_of("rtsp://h//clip.mp4//trackID=1"),
            mount("/clip.mp4", Some(1))
        );
        assert_eq!(
            target_of("rtsp://h//trackID=1"),
            mount("/", Some(1)),
            "root presentation"
        );
    }

    #[test]
    fn presentation_urls_drop_query_credentials_and_trailing_slash() {
        let url =
            Url::parse("rtsp://user:pw@h:8554//clip.mp4/trackID=1?token=x#f").expect("test URL");
        assert_eq!(
            presentation_url(&url, "/clip.mp4", false),
            "rtsp://h:8554/clip.mp4"
        );
        assert_eq!(
            content_base(&url, "/clip.mp4", false),
            "rtsp://h:8554/clip.mp4/"
        );
        let root = Url::parse("rtsp://h/?token=x").expect("test URL");
        assert_eq!(presentation_url(&root, "/", false), "rtsp://h");
        assert_eq!(content_base(&root, "/", false), "rtsp://h/");
    }

    #[test]
    fn urls_answered_over_rtsps_say_rtsps() {
        let asked = Url::parse("rtsps://u:p@h:322/clip.mp4?t=1").expect("test URL");
        assert_eq!(
            content_base(&asked, "/clip.mp4", true),
            "rtsps://h:322/clip.mp4/"
        );
        // A client that wrote rtsp:// on the TLS port still gets rtsps://.
        let plain = Url::parse("rtsp://h:322/").expect("test URL");
        assert_eq!(presentation_url(&plain, "/", true), "rtsps://h:322");
    }
}
