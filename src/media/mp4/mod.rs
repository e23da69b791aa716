//! MP4 (ISO/IEC 14496-12 ISO base media file format, ISO/IEC 14496-14 MP4)
//! demuxer built on mp4-atom.
//!
//! Only the Movie Box (`moov`, §8.2.1) is parsed when a file is opened; the
//! Media Data Box (`mdat`, §8.1.1) is skipped and each sample is read by
//! offset when a reader reaches it, so many sessions can share one file
//! handle and a multi-gigabyte file costs only its sample tables in memory.

pub(crate) mod codec;
mod sample_table;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use mp4_atom::{Atom, Codec, Encode, FourCC, Moov};

use super::{AccessUnit, CodecParams, SampleRef, TrackInfo};
use sample_table::Sample;

/// Largest Movie Box we read into memory: far above what 10 million samples
/// need, small enough that a forged box size cannot exhaust memory.
const MAX_MOOV_SIZE: u64 = 512 << 20;

/// Errors opening or reading an MP4 file.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file could not be read.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// mp4-atom rejected a box (ISO/IEC 14496-12 syntax error).
    #[error("MP4 parse error: {0}")]
    Parse(String),
    /// The file is valid but uses something this server cannot stream
    /// (fragmented MP4, no H.264/AAC track, ...).
    #[error("unsupported MP4: {0}")]
    Unsupported(String),
    /// The file's structure is inconsistent (sample tables that disagree,
    /// offsets outside the file, overflowing times, ...).
    #[error("invalid MP4: {0}")]
    Invalid(String),
    /// A sample's byte range is not inside the file (which may have been
    /// truncated after it was opened).
    #[error("sample at {offset}+{size} is outside the {len}-byte file")]
    SampleOutOfRange {
        /// Byte offset of the sample.
        offset: u64,
        /// Size of the sample in bytes.
        size: u32,
        /// Length of the byte source.
        len: u64,
    },
}

impl From<mp4_atom::Error> for MediaError {
    fn from(e: mp4_atom::Error) -> Self {
        MediaError::Parse(e.to_string())
    }
}

/// The bytes of a media file, read by offset: the I/O layer's file, or
/// bytes compiled into the binary. Implementations read positionally, so
/// many readers share one without a shared seek position.
pub trait ByteSource: Send + Sync + fmt::Debug {
    /// Length in bytes.
    ///
    /// Errors: [`MediaError::Io`] when it cannot be found out.
    fn byte_len(&self) -> Result<u64, MediaError>;

    /// Exactly `size` bytes at `offset`.
    ///
    /// Errors: [`MediaError::SampleOutOfRange`] past the end,
    /// [`MediaError::Io`] on a read failure.
    fn read_at(&self, offset: u64, size: u32) -> Result<Bytes, MediaError>;
}

/// Bytes that live as long as the program (the bundled sample).
#[derive(Clone, Copy)]
pub struct StaticBytes(pub &'static [u8]);

impl fmt::Debug for StaticBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticBytes({} bytes)", self.0.len())
    }
}

impl ByteSource for StaticBytes {
    fn byte_len(&self) -> Result<u64, MediaError> {
        Ok(self.0.len() as u64)
    }

    fn read_at(&self, offset: u64, size: u32) -> Result<Bytes, MediaError> {
        let len = self.0.len() as u64;
        let out_of_range = || MediaError::SampleOutOfRange { offset, size, len };
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start.checked_add(size as usize).ok_or_else(out_of_range)?;
        self.0
            .get(start..end)
            .map(Bytes::from_static)
            .ok_or_else(out_of_range)
    }
}

/// An opened MP4 file: its supported tracks and their sample tables (from
/// the `moov` box), shared by all sessions streaming it.
pub struct Mp4Media {
    source: Arc<dyn ByteSource>,
    tracks: Vec<TrackInfo>,
    /// Per track, in the same order as `tracks`, samples in decode order.
    samples: Vec<Vec<Sample>>,
}

impl fmt::Debug for Mp4Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sample tables can hold millions of entries; show their sizes only.
        let counts: Vec<usize> = self.samples.iter().map(Vec::len).collect();
        f.debug_struct("Mp4Media")
            .field("source", &self.source)
            .field("tracks", &self.tracks)
            .field("sample_counts", &counts)
            .finish()
    }
}

impl Mp4Media {
    /// Parses an MP4 file held in memory for the whole program run (the
    /// bundled sample, embedded with `include_bytes!`).
    pub fn from_static(bytes: &'static [u8]) -> Result<Arc<Self>, MediaError> {
        Self::parse(Arc::new(StaticBytes(bytes)))
    }

    /// The streamable tracks (H.264 video, AAC audio), in file order.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// Presentation duration in seconds of the longest track.
    pub fn duration_secs(&self) -> f64 {
        self.tracks
            .iter()
            .map(|t| t.duration as f64 / f64::from(t.timescale))
            .fold(0.0, f64::max)
    }

    /// Reads the bytes of `sample` (one positional read, or a slice of the
    /// bundled bytes) into an access unit.
    ///
    /// Errors: [`MediaError::SampleOutOfRange`] when the file is shorter
    /// than the sample table says, [`MediaError::Io`] on a read failure.
    pub fn read_sample(&self, sample: &SampleRef) -> Result<AccessUnit, MediaError> {
        let data = self.source.read_at(sample.offset, sample.size)?;
        Ok(AccessUnit {
            track: sample.track,
            dts: sample.dts,
            pts: sample.pts,
            duration: sample.duration,
            keyframe: sample.keyframe,
            data,
        })
    }

    /// A reader of all tracks' access units in decode order, starting near
    /// `start_secs` of presentation time (see [`Mp4Reader::start_secs`]).
    pub fn reader(self: &Arc<Self>, start_secs: f64) -> Mp4Reader {
        Mp4Reader::new(Arc::clone(self), start_secs)
    }

    /// Parses the `moov` box of the MP4 file in `source` (ISO/IEC
    /// 14496-12 §8.2.1); samples are read later, by offset, with
    /// [`read_sample`](Self::read_sample). This reads from `source`: the
    /// I/O layer calls it on a blocking thread for files.
    ///
    /// Errors: unreadable, malformed, fragmented or codec-less files.
    pub fn parse(source: Arc<dyn ByteSource>) -> Result<Arc<Self>, MediaError> {
        let len = source.byte_len()?;
        let moov = read_moov(source.as_ref(), len)?;
        if moov.mvex.is_some() {
            return Err(MediaError::Unsupported("fragmented MP4 (mvex)".into()));
        }
        let mut tracks = Vec::new();
        let mut samples = Vec::new();
        for trak in &moov.trak {
            let Some(codec) = track_codec(trak)? else {
                continue;
            };
            let mdia = &trak.mdia;
            let timescale = mdia.mdhd.timescale;
            if timescale == 0 {
                return Err(MediaError::Invalid(format!(
                    "track {} has timescale 0",
                    trak.tkhd.track_id
                )));
            }
            let table = sample_table::build(
                &mdia.minf.stbl,
                trak.edts.as_ref().and_then(|e| e.elst.as_ref()),
                moov.mvhd.timescale,
                timescale,
                len,
            )?;
            if table.is_empty() {
                tracing::warn!(
                    track_id = trak.tkhd.track_id,
                    "skipping track without samples"
                );
                continue;
            }
            let end = table
                .iter()
                .filter_map(|s| s.pts.checked_add(i64::from(s.duration)))
                .max()
                .unwrap_or(0);
            tracks.push(TrackInfo {
                index: tracks.len(),
                codec,
                timescale,
                duration: u64::try_from(end).unwrap_or(0),
            });
            samples.push(table);
        }
        if tracks.is_empty() {
            return Err(MediaError::Unsupported(
                "no H.264 or AAC track with samples".into(),
            ));
        }
        Ok(Arc::new(Mp4Media {
            source,
            tracks,
            samples,
        }))
    }
}

/// Scans the top-level boxes by their headers only and decodes the single
/// `moov`; `mdat` and anything else is stepped over without being read.
fn read_moov(source: &dyn ByteSource, len: u64) -> Result<Moov, MediaError> {
    const MOOF: FourCC = FourCC::new(b"moof");
    let mut pos = 0u64;
    let mut moov = None;
    while pos < len {
        let (kind, header_len, box_len) = read_box_header(source, pos, len)?;
        if kind == MOOF {
            return Err(MediaError::Unsupported("fragmented MP4 (moof)".into()));
        }
        if kind == Moov::KIND {
            if moov.is_some() {
                return Err(MediaError::Invalid("more than one moov box".into()));
            }
            if box_len > MAX_MOOV_SIZE {
                return Err(MediaError::Unsupported(format!(
                    "moov box of {box_len} bytes"
                )));
            }
            let size = u32::try_from(box_len - header_len)
                .map_err(|_| MediaError::Invalid("moov size".into()))?;
            let body = source.read_at(pos + header_len, size)?;
            moov = Some(decode_moov(&body)?);
        }
        pos += box_len;
    }
    moov.ok_or_else(|| MediaError::Invalid("no moov box".into()))
}

/// Decodes a box header (§4.2) at `pos`: returns its type, header length and
/// total length, which must fit in the file.
fn read_box_header(
    source: &dyn ByteSource,
    pos: u64,
    len: u64,
) -> Result<(FourCC, u64, u64), MediaError> {
    let remaining = len - pos;
    if remaining < 8 {
        return Err(MediaError::Invalid(format!(
            "{remaining} trailing bytes at {pos} are not a box"
        )));
    }
    let head = source.read_at(pos, 16.min(remaining) as u32)?;
    let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let kind = FourCC::from(word(4));
    let (header_len, box_len) = match word(0) {
        // Size 0: the box extends to the end of the file.
        0 => (8, remaining),
        1 => {
            if head.len() < 16 {
                return Err(MediaError::Invalid(format!("truncated {kind} box header")));
            }
            (16, (u64::from(word(8)) << 32) | u64::from(word(12)))
        }
        size => (8, u64::from(size)),
    };
    if box_len < header_len || box_len > remaining {
        return Err(MediaError::Invalid(format!(
            "{kind} box at {pos} has size {box_len}, {remaining} bytes left in the file"
        )));
    }
    Ok((kind, header_len, box_len))
}

fn decode_moov(body: &[u8]) -> Result<Moov, MediaError> {
    let mut buf = body;
    let moov = Moov::decode_body(&mut buf)?;
    if !buf.is_empty() {
        return Err(MediaError::Parse(format!(
            "{} undecoded bytes at the end of moov",
            buf.len()
        )));
    }
    Ok(moov)
}

/// The codec of a Track Box (`trak`, §8.3.1) if it is one we can stream;
/// other handlers (`hdlr`, §8.4.3) and sample entries are skipped with a
/// warning rather than failing the whole file.
fn track_codec(trak: &mp4_atom::Trak) -> Result<Option<CodecParams>, MediaError> {
    let id = trak.tkhd.track_id;
    let handler = trak.mdia.hdlr.handler;
    let stsd = &trak.mdia.minf.stbl.stsd;
    let Some(entry) = stsd.codecs.first() else {
        return Err(MediaError::Invalid(format!("track {id} has an empty stsd")));
    };
    let codec = match (handler.as_ref(), entry) {
        (b"vide", Codec::Avc1(avc1)) => codec::h264(&avc1.avcc, &avc1.visual, false)?,
        (b"vide", Codec::Avc3(avc3)) => codec::h264(&avc3.avcc, &avc3.visual, true)?,
        (b"soun", Codec::Mp4a(mp4a)) => match codec::aac(mp4a) {
            Ok(codec) => codec,
            Err(reason) => {
                tracing::warn!(track_id = id, %reason, "skipping audio track");
                return Ok(None);
            }
        },
        (b"vide" | b"soun", other) => {
            tracing::warn!(track_id = id, codec = ?codec_name(other), "skipping track with unsupported codec");
            return Ok(None);
        }
        _ => {
            tracing::warn!(track_id = id, %handler, "skipping track that is neither video nor audio");
            return Ok(None);
        }
    };
    Ok(Some(codec))
}

/// The sample entry's four-character code, for logs.
fn codec_name(codec: &Codec) -> String {
    if let Codec::Unknown(kind, _) = codec {
        return kind.to_string();
    }
    // mp4-atom has no accessor for the code; re-encoding yields the header.
    let mut encoded = Vec::new();
    match codec.encode(&mut encoded) {
        Ok(()) if encoded.len() >= 8 => String::from_utf8_lossy(&encoded[4..8]).into_owned(),
        _ => "unknown".into(),
    }
}

/// Reads the access units of all tracks of an [`Mp4Media`], merged in
/// decode-time order, fetching each sample's bytes when it is reached.
#[derive(Debug)]
pub struct Mp4Reader {
    media: Arc<Mp4Media>,
    /// Per track, the index of the next sample to return.
    next: Vec<usize>,
    start_secs: f64,
}

impl Mp4Reader {
    fn new(media: Arc<Mp4Media>, start_secs: f64) -> Self {
        let (next, start_secs) = start_positions(&media, start_secs);
        Mp4Reader {
            media,
            next,
            start_secs,
        }
    }

    /// Presentation time in seconds at which playback starts: the keyframe
    /// at or before the requested time for files with video, the start of
    /// the audio frame containing it otherwise.
    pub fn start_secs(&self) -> f64 {
        self.start_secs
    }

    /// Leaves out the tracks for which `keep` is false: their samples are
    /// neither read from the file nor returned.
    pub fn only_tracks(mut self, keep: impl Fn(usize) -> bool) -> Self {
        for (track, next) in self.next.iter_mut().enumerate() {
            if !keep(track) {
                *next = self.media.samples[track].len();
            }
        }
        self
    }

    /// The next sample in decode order over all tracks, `None` at the end:
    /// where its bytes are and its times, nothing read yet.
    pub fn next_sample(&mut self) -> Option<SampleRef> {
        let media = &self.media;
        let mut best: Option<(usize, &Sample)> = None;
        for (track, &i) in self.next.iter().enumerate() {
            let Some(sample) = media.samples[track].get(i) else {
                continue;
            };
            let earlier = match best {
                None => true,
                Some((bt, bs)) => {
                    compare_times(
                        sample.dts,
                        media.tracks[track].timescale,
                        bs.dts,
                        media.tracks[bt].timescale,
                    ) == Ordering::Less
                }
            };
            if earlier {
                best = Some((track, sample));
            }
        }
        let (track, sample) = best?;
        let sample = *sample;
        self.next[track] += 1;
        Some(SampleRef {
            track,
            dts: sample.dts,
            pts: sample.pts,
            duration: sample.duration,
            keyframe: sample.sync,
            offset: sample.offset,
            size: sample.size,
        })
    }

    /// The next access unit in decode order over all tracks, its bytes
    /// read; `None` at the end. An error concerns one sample (e.g. the
    /// file was truncated since it was opened); reading continues with
    /// the next one.
    pub fn next_access_unit(&mut self) -> Option<Result<AccessUnit, MediaError>> {
        let sample = self.next_sample()?;
        Some(self.media.read_sample(&sample))
    }
}

/// Orders `a` ticks at `a_scale` Hz and `b` ticks at `b_scale` Hz exactly
/// (cross-multiplied in i128, so no rounding or overflow).
fn compare_times(a: i64, a_scale: u32, b: i64, b_scale: u32) -> Ordering {
    (i128::from(a) * i128::from(b_scale)).cmp(&(i128::from(b) * i128::from(a_scale)))
}

/// Chooses each track's first sample for a start at `start_secs` and returns
/// them with the actual start time.
fn start_positions(media: &Mp4Media, start_secs: f64) -> (Vec<usize>, f64) {
    let duration = media.duration_secs();
    let at_end = || -> (Vec<usize>, f64) {
        let ends = media.samples.iter().map(Vec::len).collect();
        (ends, duration)
    };
    // NaN, negative and infinite requests are clamped rather than rejected:
    // they come straight from a client's Range header.
    let start_secs = if start_secs.is_nan() || start_secs < 0.0 {
        0.0
    } else {
        start_secs
    };
    if start_secs >= duration {
        return at_end();
    }

    // The anchor track decides where playback starts: the first video track
    // (it can only start at a sync sample), else the first track.
    let anchor = media
        .tracks
        .iter()
        .position(|t| t.codec.is_video())
        .unwrap_or(0);
    let anchor_scale = media.tracks[anchor].timescale;
    // Saturating float-to-int conversion; start < duration keeps it in range.
    let start_ticks = (start_secs * f64::from(anchor_scale)).floor() as i64;
    let anchor_samples = &media.samples[anchor];
    let anchor_index = if media.tracks[anchor].codec.is_video() {
        anchor_samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sync && s.pts <= start_ticks)
            .max_by_key(|(_, s)| s.pts)
            .map_or(0, |(i, _)| i)
    } else {
        first_overlapping(anchor_samples, anchor_scale, start_ticks, anchor_scale)
    };
    let Some(anchor_sample) = anchor_samples.get(anchor_index) else {
        return at_end();
    };
    let start_pts = anchor_sample.pts;

    let next = media
        .samples
        .iter()
        .zip(&media.tracks)
        .enumerate()
        .map(|(track, (samples, info))| {
            if track == anchor {
                anchor_index
            } else {
                first_overlapping(samples, info.timescale, start_pts, anchor_scale)
            }
        })
        .collect();
    (next, start_pts as f64 / f64::from(anchor_scale))
}

/// Index of the first sample (in decode order) still being presented at
/// `time` ticks of a `time_scale` clock, i.e. whose pts + duration is later;
/// the sample count if there is none.
fn first_overlapping(samples: &[Sample], scale: u32, time: i64, time_scale: u32) -> usize {
    samples
        .iter()
        .position(|s| {
            let end = s.pts.saturating_add(i64::from(s.duration));
            compare_times(end, scale, time, time_scale) == Ordering::Greater
        })
        .unwrap_or(samples.len())
}
