//! Flattening of a track's Sample Table Box (`stbl`, ISO/IEC 14496-12 §8.5)
//! and Edit List Box (`elst`, §8.6.6) into one timed entry per sample.

use mp4_atom::{Elst, Stbl, StszSamples};

use super::MediaError;

/// Upper bound on samples per track: ten hours of 240 fps video. Larger
/// counts only come from corrupt or hostile files and would make us allocate
/// gigabytes before noticing.
const MAX_SAMPLES: u64 = 10_000_000;

/// One sample (access unit) of a track, with times already shifted by the
/// edit list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Absolute byte offset of the sample data in the file.
    pub offset: u64,
    /// Size of the sample data in bytes.
    pub size: u32,
    /// Decode time in track timescale ticks.
    pub dts: i64,
    /// Presentation time in track timescale ticks.
    pub pts: i64,
    /// Duration (`stts` delta) in track timescale ticks.
    pub duration: u32,
    /// Whether the sample is listed in `stss` (or `stss` is absent).
    pub sync: bool,
}

fn invalid(msg: impl Into<String>) -> MediaError {
    MediaError::Invalid(msg.into())
}

fn overflow(what: &str) -> MediaError {
    invalid(format!("arithmetic overflow computing {what}"))
}

/// Builds the per-sample table of one track.
///
/// `movie_timescale` is the `mvhd` timescale (edit segment durations are in
/// it), `track_timescale` the `mdhd` one, `file_len` the size of the whole
/// file: every sample must lie inside it.
pub(crate) fn build(
    stbl: &Stbl,
    elst: Option<&Elst>,
    movie_timescale: u32,
    track_timescale: u32,
    file_len: u64,
) -> Result<Vec<Sample>, MediaError> {
    let sizes = SampleSizes::new(&stbl.stsz.samples)?;
    let count = sizes.count();
    // Every sample needs at least one stsz/stts entry's worth of real data,
    // so a count beyond the file size is a lie; checking before allocating
    // keeps a tiny hostile moov from reserving gigabytes.
    if count > MAX_SAMPLES || count > file_len {
        return Err(invalid(format!("implausible sample count {count}")));
    }
    let count_usize = usize::try_from(count).map_err(|_| overflow("sample count"))?;

    let offsets = chunk_offsets(stbl);
    let mut samples = Vec::with_capacity(count_usize);
    fill_offsets(stbl, &offsets, &sizes, count_usize, file_len, &mut samples)?;
    fill_decode_times(stbl, &mut samples)?;
    fill_composition_offsets(stbl, &mut samples)?;
    fill_sync(stbl, &mut samples)?;

    let shift = edit_shift(elst, movie_timescale, track_timescale)?;
    for s in &mut samples {
        s.dts = s.dts.checked_add(shift).ok_or_else(|| overflow("dts"))?;
        s.pts = s.pts.checked_add(shift).ok_or_else(|| overflow("pts"))?;
    }
    Ok(samples)
}

/// Sample sizes from `stsz` (§8.7.3), which has a compact form for tracks
/// whose samples all have the same size.
enum SampleSizes<'a> {
    Identical { count: u32, size: u32 },
    Different(&'a [u32]),
}

impl<'a> SampleSizes<'a> {
    fn new(stsz: &'a StszSamples) -> Result<Self, MediaError> {
        Ok(match stsz {
            StszSamples::Identical { count, size } => Self::Identical {
                count: *count,
                size: *size,
            },
            StszSamples::Different { sizes } => {
                if u32::try_from(sizes.len()).is_err() {
                    return Err(invalid("stsz has more than 2^32 entries"));
                }
                Self::Different(sizes)
            }
        })
    }

    fn count(&self) -> u64 {
        match self {
            Self::Identical { count, .. } => u64::from(*count),
            Self::Different(sizes) => sizes.len() as u64,
        }
    }

    fn get(&self, index: usize) -> Option<u32> {
        match self {
            Self::Identical { size, .. } => Some(*size),
            Self::Different(sizes) => sizes.get(index).copied(),
        }
    }
}

/// Chunk offsets from `stco` or, for files over 4 GiB, `co64` (§8.7.5).
fn chunk_offsets(stbl: &Stbl) -> Vec<u64> {
    match (&stbl.co64, &stbl.stco) {
        (Some(co64), _) => co64.entries.clone(),
        (None, Some(stco)) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, None) => Vec::new(),
    }
}

/// Maps samples to chunks with `stsc` (§8.7.4): samples of a chunk are stored
/// back to back starting at the chunk offset.
fn fill_offsets(
    stbl: &Stbl,
    chunk_offsets: &[u64],
    sizes: &SampleSizes<'_>,
    count: usize,
    file_len: u64,
    samples: &mut Vec<Sample>,
) -> Result<(), MediaError> {
    if count > 0 && chunk_offsets.is_empty() {
        return Err(invalid("samples but no stco/co64 chunk offsets"));
    }
    let entries = &stbl.stsc.entries;
    if count > 0 && entries.first().map(|e| e.first_chunk) != Some(1) {
        return Err(invalid("stsc does not start at chunk 1"));
    }
    for (i, entry) in entries.iter().enumerate() {
        if entry.sample_description_index != 1 {
            return Err(MediaError::Unsupported(
                "tracks switching sample descriptions".into(),
            ));
        }
        // Chunks are numbered from 1; the entry applies up to the next
        // entry's first chunk, the last one up to the final chunk.
        let first = entry.first_chunk as usize;
        if first == 0 {
            return Err(invalid("stsc chunk numbers start at 1"));
        }
        let end = match entries.get(i + 1) {
            Some(next) if next.first_chunk as usize > first => next.first_chunk as usize,
            Some(_) => return Err(invalid("stsc first_chunk not increasing")),
            None => chunk_offsets.len() + 1,
        };
        if end > chunk_offsets.len() + 1 {
            return Err(invalid("stsc refers to a chunk beyond stco/co64"));
        }
        for chunk in first..end {
            let mut offset = chunk_offsets[chunk - 1]; // 1 <= chunk <= len, checked above
            for _ in 0..entry.samples_per_chunk {
                if samples.len() == count {
                    return Err(invalid("stsc describes more samples than stsz"));
                }
                let size = sizes
                    .get(samples.len())
                    .ok_or_else(|| invalid("stsz too short"))?;
                let end = offset
                    .checked_add(u64::from(size))
                    .ok_or_else(|| overflow("sample end offset"))?;
                if end > file_len {
                    return Err(invalid(format!(
                        "sample {} at {offset}+{size} lies beyond the end of the file ({file_len} bytes)",
                        samples.len()
                    )));
                }
                samples.push(Sample {
                    offset,
                    size,
                    dts: 0,
                    pts: 0,
                    duration: 0,
                    sync: true,
                });
                offset = end;
            }
        }
    }
    if samples.len() != count {
        return Err(invalid(format!(
            "stsc describes {} samples, stsz {count}",
            samples.len()
        )));
    }
    Ok(())
}

/// Decode times from the run-length coded deltas of `stts` (§8.6.1.2).
fn fill_decode_times(stbl: &Stbl, samples: &mut [Sample]) -> Result<(), MediaError> {
    let mut iter = samples.iter_mut();
    let mut dts: i64 = 0;
    for entry in &stbl.stts.entries {
        for _ in 0..entry.sample_count {
            let s = iter
                .next()
                .ok_or_else(|| invalid("stts describes more samples than stsz"))?;
            s.dts = dts;
            s.pts = dts;
            s.duration = entry.sample_delta;
            dts = dts
                .checked_add(i64::from(entry.sample_delta))
                .ok_or_else(|| overflow("dts"))?;
        }
    }
    if iter.next().is_some() {
        return Err(invalid("stts describes fewer samples than stsz"));
    }
    Ok(())
}

/// Presentation times from `ctts` (§8.6.1.3); the crate decodes version 0
/// offsets as unsigned and version 1 as signed, so both arrive as `i64`.
fn fill_composition_offsets(stbl: &Stbl, samples: &mut [Sample]) -> Result<(), MediaError> {
    let Some(ctts) = &stbl.ctts else {
        return Ok(());
    };
    let mut iter = samples.iter_mut();
    for entry in &ctts.entries {
        for _ in 0..entry.sample_count {
            let s = iter
                .next()
                .ok_or_else(|| invalid("ctts describes more samples than stsz"))?;
            s.pts = s
                .dts
                .checked_add(entry.sample_offset)
                .ok_or_else(|| overflow("pts"))?;
        }
    }
    if iter.next().is_some() {
        return Err(invalid("ctts describes fewer samples than stsz"));
    }
    Ok(())
}

/// Sync samples from `stss` (§8.6.2); without the box every sample is one.
fn fill_sync(stbl: &Stbl, samples: &mut [Sample]) -> Result<(), MediaError> {
    let Some(stss) = &stbl.stss else {
        return Ok(());
    };
    for s in samples.iter_mut() {
        s.sync = false;
    }
    for &number in &stss.entries {
        // Sample numbers are 1-based.
        let s = (number as usize)
            .checked_sub(1)
            .and_then(|i| samples.get_mut(i))
            .ok_or_else(|| invalid(format!("stss names nonexistent sample {number}")))?;
        s.sync = true;
    }
    Ok(())
}

/// The offset to add to media times so that they become presentation times,
/// as players apply the edit list: leading empty edits delay the track, the
/// first real edit's `media_time` is the media time shown at that point.
/// Later edits (rare outside editing tools) are ignored.
fn edit_shift(
    elst: Option<&Elst>,
    movie_timescale: u32,
    track_timescale: u32,
) -> Result<i64, MediaError> {
    let Some(elst) = elst else {
        return Ok(0);
    };
    let mut delay: i64 = 0;
    for entry in &elst.entries {
        match entry.media_time {
            None => {
                if movie_timescale == 0 {
                    return Err(invalid("empty edit with a zero movie timescale"));
                }
                // Widened so a hostile duration cannot overflow before the
                // range check.
                let ticks = i128::from(entry.segment_duration) * i128::from(track_timescale)
                    / i128::from(movie_timescale);
                let ticks = i64::try_from(ticks).map_err(|_| overflow("edit delay"))?;
                delay = delay
                    .checked_add(ticks)
                    .ok_or_else(|| overflow("edit delay"))?;
            }
            Some(media_time) => {
                let media_time =
                    i64::try_from(media_time).map_err(|_| overflow("edit media_time"))?;
                return delay
                    .checked_sub(media_time)
                    .ok_or_else(|| overflow("edit shift"));
            }
        }
    }
    Ok(delay)
}
