//! Mounts: which RTSP URL path (RFC 2326 §3.2) serves which media file.
//! This is the file system side of the server (folder walks, opening and
//! caching files); the RTSP core gets only its answers.
//!
//! URL paths come from the network, so resolution is defensive: path
//! traversal through `..`, encoded separators, backslashes, NUL bytes and
//! symlinks has been the root of several RTSP server CVEs.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use percent_encoding::percent_decode_str;

use super::media_file;
use crate::media::mp4::{MediaError, Mp4Media};
use crate::source::ResolveError;

/// The clip compiled into the binary, served when no media path is given.
static BUNDLED_SAMPLE: &[u8] = include_bytes!("../../media/sample.mp4");

/// Mount name of the bundled sample (besides `/`).
const SAMPLE_NAME: &str = "sample";

/// Opened files kept beyond those being played, so requests for every
/// file of a large folder cannot exhaust memory or file descriptors.
const MAX_CACHED_MEDIA: usize = 64;

/// Bounds for walking a directory to list its mounts, so a huge or cyclic
/// tree cannot stall startup.
const MAX_WALK_DEPTH: usize = 8;
const MAX_WALK_ENTRIES: usize = 10_000;

/// The media served by this server, by the path of the request URL
/// (RFC 2326 §3.2).
#[derive(Debug)]
pub struct Catalog {
    mounts: Mounts,
    cache: Cache,
}

#[derive(Debug)]
enum Mounts {
    /// The embedded sample at `/` and `/sample`.
    Bundled(Arc<Mp4Media>),
    /// One file at `/` and `/<name>`.
    File { path: PathBuf, name: String },
    /// Every `.mp4` below a canonical root, at its relative path.
    Directory { root: PathBuf },
}

/// Opened media per canonical path with the modification time it was parsed
/// at, so a replaced file is reparsed but unchanged ones are shared.
type Cache = Mutex<HashMap<PathBuf, (SystemTime, Arc<Mp4Media>)>>;

impl Catalog {
    /// Serves the sample clip embedded in the binary at `/` and `/sample`.
    pub fn bundled_sample() -> Result<Self, MediaError> {
        Ok(Self::new(Mounts::Bundled(Mp4Media::from_static(
            BUNDLED_SAMPLE,
        )?)))
    }

    /// Serves a single file at `/` and `/<file name>`, or every `.mp4` file
    /// under a directory at its path relative to it (and at `/` when it is
    /// the only one). A single file is parsed
    /// now so that a broken one is reported at startup; directory entries
    /// are opened on first request.
    pub fn from_path(path: &Path) -> Result<Self, MediaError> {
        let canonical = path.canonicalize()?;
        let meta = fs::metadata(&canonical)?;
        let catalog = if meta.is_dir() {
            Self::new(Mounts::Directory { root: canonical })
        } else if meta.is_file() {
            let name = canonical
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| MediaError::Invalid(format!("unusable file name {path:?}")))?
                .to_owned();
            let catalog = Self::new(Mounts::File {
                path: canonical.clone(),
                name,
            });
            catalog.load(&canonical)?;
            catalog
        } else {
            return Err(MediaError::Invalid(format!(
                "{} is neither a file nor a directory",
                path.display()
            )));
        };
        Ok(catalog)
    }

    fn new(mounts: Mounts) -> Self {
        Catalog {
            mounts,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The media for the path component of a request URL (without any
    /// per-track suffix). Percent-encoding, duplicate and trailing slashes
    /// are tolerated; anything that could escape the media root is refused.
    pub fn resolve(&self, url_path: &str) -> Result<Arc<Mp4Media>, ResolveError> {
        let segments = split_path(url_path)?;
        match &self.mounts {
            Mounts::Bundled(media) => match segments.as_slice() {
                [] => Ok(Arc::clone(media)),
                [segment] if segment == SAMPLE_NAME => Ok(Arc::clone(media)),
                _ => Err(ResolveError::NotFound(url_path.to_owned())),
            },
            Mounts::File { path, name } => match segments.as_slice() {
                [] => Ok(self.load(path)?),
                [segment] if segment == name => Ok(self.load(path)?),
                _ => Err(ResolveError::NotFound(url_path.to_owned())),
            },
            Mounts::Directory { root } if segments.is_empty() => {
                // A folder holding a single clip (the Docker volume case)
                // serves it at `/` too, so the bare server URL plays.
                match self.describe_mounts().as_slice() {
                    [only] => self.resolve(only),
                    _ => Err(ResolveError::NotFound(url_path.to_owned())),
                }
            }
            Mounts::Directory { root } => {
                let path = self.locate(root, &segments, url_path)?;
                Ok(self.load(&path)?)
            }
        }
    }

    /// Maps URL segments to a canonical `.mp4` file path inside `root`.
    fn locate(
        &self,
        root: &Path,
        segments: &[String],
        url_path: &str,
    ) -> Result<PathBuf, ResolveError> {
        let not_found = || ResolveError::NotFound(url_path.to_owned());
        let last = segments.last().ok_or_else(not_found)?;
        if !is_mp4_name(last) {
            return Err(not_found());
        }
        let joined: PathBuf = segments.iter().fold(root.to_path_buf(), |p, s| p.join(s));
        // Canonicalizing resolves symlinks, so the prefix check below also
        // catches links that point out of the root.
        let canonical = joined.canonicalize().map_err(|_| not_found())?;
        if !canonical.starts_with(root) {
            return Err(ResolveError::Forbidden(url_path.to_owned()));
        }
        if !is_mp4_name(&canonical.to_string_lossy()) {
            return Err(not_found());
        }
        match fs::metadata(&canonical) {
            Ok(meta) if meta.is_file() => Ok(canonical),
            _ => Err(not_found()),
        }
    }

    /// Opens (or returns the cached) media at a canonical path, reparsing
    /// when the file's modification time changed.
    fn load(&self, path: &Path) -> Result<Arc<Mp4Media>, MediaError> {
        let modified = fs::metadata(path)?.modified()?;
        // A panic elsewhere while holding the lock leaves the map itself
        // consistent, so poisoning is ignored.
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .filter(|(time, _)| *time == modified)
            .map(|(_, media)| Arc::clone(media));
        if let Some(media) = cached {
            return Ok(media);
        }
        // Parsed without the lock held: other requests need not wait for it.
        let media = media_file::open_mp4(path)?;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_MEDIA {
            // Bound memory and open files: forget what no session plays.
            cache.retain(|_, (_, cached)| Arc::strong_count(cached) > 1);
        }
        cache.insert(path.to_path_buf(), (modified, Arc::clone(&media)));
        Ok(media)
    }

    /// True when it serves a folder's files, false for one file (or the
    /// bundled sample).
    pub fn is_folder(&self) -> bool {
        matches!(self.mounts, Mounts::Directory { .. })
    }

    /// The URL paths media is mounted at, for the startup log. For a
    /// directory this walks it (bounded in depth and entries), so files
    /// added later are served but not listed.
    pub fn describe_mounts(&self) -> Vec<String> {
        match &self.mounts {
            Mounts::Bundled(_) => vec!["/".into(), format!("/{SAMPLE_NAME}")],
            Mounts::File { name, .. } => vec!["/".into(), format!("/{name}")],
            Mounts::Directory { root } => {
                let mut found = Vec::new();
                let mut budget = MAX_WALK_ENTRIES;
                walk(root, root, 0, &mut budget, &mut found);
                found.sort();
                found
            }
        }
    }
}

/// The media served on demand: the root catalog at `/`, and files and
/// folders at paths of their own (`[[path]]` with `file` or `folder`),
/// the longest path that holds a request's winning.
#[derive(Debug)]
pub struct MediaMounts {
    root: Arc<Catalog>,
    /// By mount, longest first.
    paths: Vec<(String, Arc<Catalog>)>,
}

impl MediaMounts {
    /// `root` at `/` and each of `paths` at its mount.
    pub fn new(root: Catalog, paths: Vec<(String, Catalog)>) -> Self {
        let mut paths: Vec<_> = paths
            .into_iter()
            .map(|(mount, catalog)| (mount, Arc::new(catalog)))
            .collect();
        paths.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.len()));
        MediaMounts {
            root: Arc::new(root),
            paths,
        }
    }

    /// The media for a request's path: see [`Catalog::resolve`], asked of
    /// the catalog whose mount holds it with the rest of the path.
    pub fn resolve(&self, url_path: &str) -> Result<Arc<Mp4Media>, ResolveError> {
        for (mount, catalog) in &self.paths {
            if crate::rtsp::handler::is_at_or_below(url_path, mount) {
                return catalog.resolve(&url_path[mount.len()..]);
            }
        }
        self.root.resolve(url_path)
    }

    /// The URL paths served, for the log.
    pub fn describe_mounts(&self) -> Vec<String> {
        self.describe_sources()
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    }

    /// The URL paths served, each with whether a folder serves it (else
    /// a single file or the bundled sample).
    pub fn describe_sources(&self) -> Vec<(String, bool)> {
        let listed = |catalog: &Catalog| {
            let folder = catalog.is_folder();
            catalog
                .describe_mounts()
                .into_iter()
                .map(move |path| (path, folder))
        };
        let mut mounts: Vec<(String, bool)> = listed(&self.root).collect();
        for (mount, catalog) in &self.paths {
            mounts.extend(listed(catalog).map(|(path, folder)| {
                if path == "/" {
                    (mount.clone(), folder)
                } else {
                    (format!("{mount}{path}"), folder)
                }
            }));
        }
        mounts
    }
}

/// Percent-decodes a URL path once and splits it into segments, dropping
/// empty and `.` segments; rejects anything that could step outside the
/// root. Decoding only once means `%252e%252e` stays a literal file name.
fn split_path(url_path: &str) -> Result<Vec<String>, ResolveError> {
    let forbidden = || ResolveError::Forbidden(url_path.to_owned());
    let decoded = percent_decode_str(url_path)
        .decode_utf8()
        .map_err(|_| ResolveError::NotFound(url_path.to_owned()))?;
    if decoded.contains(['\\', '\0']) {
        return Err(forbidden());
    }
    let mut segments = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(forbidden()),
            s => segments.push(s.to_owned()),
        }
    }
    Ok(segments)
}

fn is_mp4_name(name: &str) -> bool {
    name.len() > 4
        && name
            .get(name.len() - 4..)
            .is_some_and(|ext| ext.eq_ignore_ascii_case(".mp4"))
}

/// Collects the mount paths of `.mp4` files under `dir`. Symlinks are
/// listed only when they resolve to a file inside the root, mirroring
/// [`Catalog::resolve`]; directories reached through symlinks are not
/// entered, which also rules out cycles.
fn walk(root: &Path, dir: &Path, depth: usize, budget: &mut usize, found: &mut Vec<String>) {
    if depth > MAX_WALK_DEPTH {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list media directory");
            return;
        }
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            tracing::warn!(
                limit = MAX_WALK_ENTRIES,
                "media directory listing truncated"
            );
            return;
        }
        *budget -= 1;
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            walk(root, &path, depth + 1, budget, found);
            continue;
        }
        let is_file = file_type.is_file()
            || (file_type.is_symlink()
                && path
                    .canonicalize()
                    .is_ok_and(|target| target.starts_with(root) && target.is_file()));
        if !is_file || !is_mp4_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        if let Ok(relative) = path.strip_prefix(root) {
            let segments: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            found.push(format!("/{}", segments.join("/")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SAMPLE: &[u8] = include_bytes!("../../media/sample.mp4");

    fn is_not_found(r: Result<Arc<Mp4Media>, ResolveError>) -> bool {
        matches!(r, Err(ResolveError::NotFound(_)))
    }

    fn is_refused(r: Result<Arc<Mp4Media>, ResolveError>) -> bool {
        matches!(
            r,
            Err(ResolveError::NotFound(_) | ResolveError::Forbidden(_))
        )
    }

    /// A media root `<tmp>/root` with `clip.mp4`, `sub/clip.mp4`, a text
    /// file, a broken `.mp4`, and outside it `<tmp>/secret.mp4`.
    fn media_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("sub")).expect("mkdir");
        fs::write(root.join("clip.mp4"), SAMPLE).expect("write");
        fs::write(root.join("sub/clip.mp4"), SAMPLE).expect("write");
        fs::write(root.join("notes.txt"), b"hello").expect("write");
        fs::write(root.join("broken.mp4"), &SAMPLE[..1000]).expect("write");
        fs::write(dir.path().join("secret.mp4"), SAMPLE).expect("write");
        dir
    }

    #[test]
    fn bundled_sample_mounts() {
        let catalog = Catalog::bundled_sample().expect("sample parses");
        for path in ["/", "", "/sample", "/sample/", "//sample"] {
            assert_eq!(catalog.resolve(path).expect(path).tracks().len(), 2);
        }
        assert!(is_not_found(catalog.resolve("/other")));
        assert_eq!(catalog.describe_mounts(), ["/", "/sample"]);
    }

    #[test]
    fn file_mode() {
        let dir = media_dir();
        let file = dir.path().join("root/clip.mp4");
        let catalog = Catalog::from_path(&file).expect("file parses");
        let root = catalog.resolve("/").expect("/");
        let named = catalog.resolve("/clip.mp4").expect("/clip.mp4");
        assert!(Arc::ptr_eq(&root, &named), "cached");
        assert!(catalog.resolve("/clip.mp4/").is_ok());
        assert!(is_not_found(catalog.resolve("/other.mp4")));
        assert!(is_refused(catalog.resolve("/../secret.mp4")));
        assert_eq!(catalog.describe_mounts(), ["/", "/clip.mp4"]);

        let broken = dir.path().join("root/broken.mp4");
        assert!(Catalog::from_path(&broken).is_err());
        assert!(Catalog::from_path(&dir.path().join("missing.mp4")).is_err());
    }

    #[test]
    fn directory_mode() {
        let dir = media_dir();
        let catalog = Catalog::from_path(&dir.path().join("root")).expect("dir");
        let nested = catalog.resolve("/sub/clip.mp4").expect("nested");
        assert_eq!(nested.tracks().len(), 2);
        for path in [
            "/sub//clip.mp4",
            "/sub/clip.mp4/",
            "/sub/./clip.mp4",
            "/sub%2Fclip.mp4",
        ] {
            assert!(Arc::ptr_eq(&catalog.resolve(path).expect(path), &nested));
        }
        assert!(catalog.resolve("/CLIP.mp4").is_err(), "case-sensitive fs");
        assert!(catalog.resolve("/clip.mp4").is_ok());
        assert!(is_not_found(catalog.resolve("/")));
        assert!(is_not_found(catalog.resolve("/missing.mp4")));
        assert!(is_not_found(catalog.resolve("/notes.txt")));
        assert!(is_not_found(catalog.resolve("/sub")));
        assert!(matches!(
            catalog.resolve("/broken.mp4"),
            Err(ResolveError::Media(_))
        ));
        assert_eq!(
            catalog.describe_mounts(),
            ["/broken.mp4", "/clip.mp4", "/sub/clip.mp4"]
        );
    }

    #[test]
    fn directory_with_one_clip_serves_it_at_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("video.mp4"), SAMPLE).expect("write");
        let catalog = Catalog::from_path(dir.path()).expect("dir");
        let at_root = catalog.resolve("/").expect("root");
        assert!(Arc::ptr_eq(
            &at_root,
            &catalog.resolve("/video.mp4").expect("named")
        ));
        fs::write(dir.path().join("other.mp4"), SAMPLE).expect("write");
        assert!(
            is_not_found(catalog.resolve("/")),
            "ambiguous with two clips"
        );
    }

    #[test]
    fn cache_forgets_media_nobody_plays() {
        let dir = tempfile::tempdir().expect("temp dir");
        let original = dir.path().join("clip0.mp4");
        fs::write(&original, SAMPLE).expect("write");
        for i in 1..MAX_CACHED_MEDIA + 8 {
            fs::hard_link(&original, dir.path().join(format!("clip{i}.mp4"))).expect("link");
        }
        let catalog = Catalog::from_path(dir.path()).expect("dir");
        let playing = catalog.resolve("/clip0.mp4").expect("clip0");
        for i in 1..MAX_CACHED_MEDIA + 8 {
            catalog.resolve(&format!("/clip{i}.mp4")).expect("clip");
        }
        let cached = catalog.cache.lock().expect("cache").len();
        assert!(cached <= MAX_CACHED_MEDIA, "{cached} cached");
        assert!(
            Arc::ptr_eq(&playing, &catalog.resolve("/clip0.mp4").expect("clip0")),
            "media in use stays cached"
        );
    }

    #[test]
    fn paths_serve_their_own_file_or_folder() {
        let dir = media_dir();
        let root = dir.path().join("root");
        let mounts = MediaMounts::new(
            Catalog::bundled_sample().expect("sample"),
            vec![
                (
                    "/intro".into(),
                    Catalog::from_path(&root.join("clip.mp4")).expect("file"),
                ),
                ("/movies".into(), Catalog::from_path(&root).expect("folder")),
                (
                    "/movies/extra".into(),
                    Catalog::from_path(&root.join("sub")).expect("sub"),
                ),
            ],
        );
        assert!(mounts.resolve("/intro").is_ok());
        assert!(mounts.resolve("/intro/clip.mp4").is_ok());
        assert!(mounts.resolve("/movies/sub/clip.mp4").is_ok());
        assert!(
            mounts.resolve("/movies/extra/clip.mp4").is_ok(),
            "longest mount wins"
        );
        assert!(is_not_found(mounts.resolve("/movies/extra/sub/clip.mp4")));
        assert!(is_not_found(mounts.resolve("/moviesx/clip.mp4")));
        assert!(is_refused(mounts.resolve("/movies/../secret.mp4")));
        assert!(
            mounts.resolve("/sample").is_ok(),
            "the root catalog serves the rest"
        );
        let listed = mounts.describe_mounts();
        assert!(listed.contains(&"/intro".to_string()), "{listed:?}");
        assert!(
            listed.contains(&"/movies/sub/clip.mp4".to_string()),
            "{listed:?}"
        );
    }

    #[test]
    fn traversal_is_refused() {
        let dir = media_dir();
        let catalog = Catalog::from_path(&dir.path().join("root")).expect("dir");
        for path in [
            "/../secret.mp4",
            "/sub/../../secret.mp4",
            "/%2e%2e/secret.mp4",
            "/%2E%2E/secret.mp4",
            "/sub%2F..%2F..%2Fsecret.mp4",
            "/%2F../secret.mp4",
            "/..%5csecret.mp4",
            "/sub\\..\\..\\secret.mp4",
            "/clip.mp4%00.mp4",
        ] {
            assert!(
                matches!(catalog.resolve(path), Err(ResolveError::Forbidden(_))),
                "{path}"
            );
        }
        for path in [
            "//etc/passwd",
            "/etc/passwd",
            "//tmp/secret.mp4",
            "/%252e%252e/secret.mp4",
        ] {
            assert!(is_refused(catalog.resolve(path)), "{path}");
        }
    }

    #[test]
    fn symlink_out_of_root_is_refused() {
        let dir = media_dir();
        let root = dir.path().join("root");
        std::os::unix::fs::symlink(dir.path().join("secret.mp4"), root.join("link.mp4"))
            .expect("symlink");
        std::os::unix::fs::symlink(dir.path(), root.join("up")).expect("symlink");
        std::os::unix::fs::symlink(root.join("clip.mp4"), root.join("inside.mp4"))
            .expect("symlink");
        let catalog = Catalog::from_path(&root).expect("dir");
        assert!(matches!(
            catalog.resolve("/link.mp4"),
            Err(ResolveError::Forbidden(_))
        ));
        assert!(matches!(
            catalog.resolve("/up/secret.mp4"),
            Err(ResolveError::Forbidden(_))
        ));
        assert!(catalog.resolve("/inside.mp4").is_ok());
        let mounts = catalog.describe_mounts();
        assert!(mounts.contains(&"/inside.mp4".to_owned()));
        assert!(!mounts
            .iter()
            .any(|m| m.contains("link") || m.contains("up/")));
    }

    #[test]
    fn changed_file_is_reopened() {
        let dir = media_dir();
        let root = dir.path().join("root");
        let catalog = Catalog::from_path(&root).expect("dir");
        let first = catalog.resolve("/clip.mp4").expect("clip");
        assert!(Arc::ptr_eq(
            &first,
            &catalog.resolve("/clip.mp4").expect("clip")
        ));
        let file = fs::File::options()
            .write(true)
            .open(root.join("clip.mp4"))
            .expect("open");
        file.set_modified(SystemTime::UNIX_EPOCH)
            .expect("set mtime");
        let second = catalog.resolve("/clip.mp4").expect("clip");
        assert!(!Arc::ptr_eq(&first, &second));
    }
}
