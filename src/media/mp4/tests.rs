use std::path::{Path, PathBuf};

use super::*;
use crate::server::media_file::open_mp4;
use std::os::unix::fs::FileExt;

static SAMPLE: &[u8] = include_bytes!("../../../media/sample.mp4");

fn sample() -> Arc<Mp4Media> {
    Mp4Media::from_static(SAMPLE).expect("bundled sample parses")
}

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("media/sample.mp4")
}

fn read_all(reader: &mut Mp4Reader) -> Vec<AccessUnit> {
    std::iter::from_fn(|| reader.next_access_unit())
        .map(|au| au.expect("sample reads"))
        .collect()
}

fn secs(ticks: i64, media: &Mp4Media, track: usize) -> f64 {
    ticks as f64 / f64::from(media.tracks()[track].timescale)
}

fn check_tracks(media: &Mp4Media) {
    let tracks = media.tracks();
    assert_eq!(tracks.len(), 2);
    match &tracks[0].codec {
        CodecParams::H264 {
            sps,
            pps,
            nal_length_size,
            width,
            height,
        } => {
            assert_eq!((*width, *height), (1280, 720));
            assert_eq!(*nal_length_size, 4);
            assert!(!sps.is_empty() && sps.iter().all(|s| !s.is_empty()));
            assert!(!pps.is_empty() && pps.iter().all(|p| !p.is_empty()));
        }
        other => panic!("track 0 is {other:?}"),
    }
    match &tracks[1].codec {
        CodecParams::Aac {
            config,
            sample_rate,
            channels,
        } => {
            // ffmpeg appends an explicit "no SBR" sync extension after the
            // two-byte AAC-LC config; it is passed through untouched.
            assert_eq!(config[..2], [0x11, 0x90]);
            assert_eq!((*sample_rate, *channels), (48000, 2));
        }
        other => panic!("track 1 is {other:?}"),
    }
    assert_eq!(tracks[1].timescale, 48000);
    assert!((media.duration_secs() - 10.0).abs() < 0.05);
}

#[test]
fn static_sample_tracks() {
    check_tracks(&sample());
}

#[test]
fn file_sample_tracks_and_data_match_static() {
    let file = open_mp4(&sample_path()).expect("sample file parses");
    check_tracks(&file);
    let from_file = read_all(&mut file.reader(0.0));
    let from_static = read_all(&mut sample().reader(0.0));
    assert_eq!(from_file, from_static);
}

#[test]
fn video_timing_after_edit_list() {
    let media = sample();
    let aus = read_all(&mut media.reader(0.0));
    let video: Vec<&AccessUnit> = aus.iter().filter(|au| au.track == 0).collect();
    assert_eq!(video.len(), 300);
    assert!(video[0].keyframe);
    assert_eq!(video[0].pts, 0);
    assert!(video.iter().any(|au| au.pts != au.dts), "B-frames reorder");
    assert!(video.iter().all(|au| au.data.len() > 4));

    let mut pts: Vec<f64> = video.iter().map(|au| secs(au.pts, &media, 0)).collect();
    pts.sort_by(f64::total_cmp);
    for pair in pts.windows(2) {
        assert!((pair[1] - pair[0] - 1.0 / 30.0).abs() < 1e-6, "{pair:?}");
    }
}

#[test]
fn merged_output_in_decode_order() {
    let media = sample();
    let aus = read_all(&mut media.reader(0.0));
    let dts: Vec<f64> = aus
        .iter()
        .map(|au| secs(au.dts, &media, au.track))
        .collect();
    assert!(dts.windows(2).all(|w| w[0] <= w[1]));

    let audio = aus.iter().filter(|au| au.track == 1).count() as f64;
    let expected = 10.0 * 48000.0 / 1024.0;
    assert!((audio - expected).abs() <= 2.0, "{audio} audio AUs");
    let audio: Vec<&AccessUnit> = aus.iter().filter(|au| au.track == 1).collect();
    assert!(audio.iter().all(|au| au.keyframe));
    // The final AAC frame is trimmed to the end of the input.
    assert!(audio[..audio.len() - 1]
        .iter()
        .all(|au| au.duration == 1024));
}

#[test]
fn seek_starts_at_keyframe() {
    let media = sample();
    let mut reader = media.reader(5.0);
    assert!(reader.start_secs() <= 5.0 && reader.start_secs() > 4.0);
    let aus = read_all(&mut reader);
    let first_video = aus.iter().find(|au| au.track == 0).expect("video left");
    assert!(first_video.keyframe);
    assert!((secs(first_video.pts, &media, 0) - reader.start_secs()).abs() < 1e-9);
    let first_audio = aus.iter().find(|au| au.track == 1).expect("audio left");
    let audio_end = secs(first_audio.pts + i64::from(first_audio.duration), &media, 1);
    assert!(audio_end > reader.start_secs());
    assert!(secs(first_audio.pts, &media, 1) <= reader.start_secs() + 0.05);
}

/// The sample has a keyframe at every whole second (`-g 30` at 30 fps), so
/// only a request between two of them shows whether the keyframe is chosen.
#[test]
fn seek_between_keyframes_starts_at_the_one_before() {
    let media = sample();
    for (requested, keyframe) in [(5.5, 5.0), (5.999, 5.0), (0.5, 0.0), (9.5, 9.0)] {
        let mut reader = media.reader(requested);
        assert_eq!(reader.start_secs(), keyframe, "seek to {requested}");
        let aus = read_all(&mut reader);
        let video: Vec<&AccessUnit> = aus.iter().filter(|au| au.track == 0).collect();
        assert!(video[0].keyframe, "seek to {requested}: first video unit");
        assert_eq!(secs(video[0].pts, &media, 0), keyframe);
        // Every frame from the keyframe to the end, none skipped.
        let expected = ((10.0 - keyframe) * 30.0) as usize;
        assert_eq!(video.len(), expected, "seek to {requested}: video units");
    }
}

#[test]
fn seek_beyond_end_yields_nothing() {
    let media = sample();
    for start in [100.0, f64::INFINITY] {
        let mut reader = media.reader(start);
        assert!(reader.next_access_unit().is_none());
    }
    // Nonsense requests start at the beginning.
    assert_eq!(media.reader(f64::NAN).start_secs(), 0.0);
    assert_eq!(media.reader(-3.0).start_secs(), 0.0);
}

fn temp_file(name: &str, bytes: &[u8]) -> tempfile::TempPath {
    let mut file = tempfile::Builder::new()
        .prefix(name)
        .suffix(".mp4")
        .tempfile()
        .expect("temp file");
    std::io::Write::write_all(&mut file, bytes).expect("write temp file");
    file.into_temp_path()
}

/// Byte range of the top-level moov box.
fn moov_range() -> std::ops::Range<usize> {
    let mut pos = 0;
    while pos + 8 <= SAMPLE.len() {
        let size = u32::from_be_bytes(SAMPLE[pos..pos + 4].try_into().unwrap()) as usize;
        if &SAMPLE[pos + 4..pos + 8] == b"moov" {
            return pos..pos + size;
        }
        pos += size;
    }
    panic!("sample has no moov");
}

#[test]
fn truncated_files_are_errors() {
    let moov = moov_range();
    let cuts = [
        0,
        4,
        8,
        moov.start,
        moov.start + 9,
        moov.start + 200,
        moov.end - 1,
        moov.end + 100,
        SAMPLE.len() / 2,
        SAMPLE.len() - 1,
    ];
    for cut in cuts {
        let path = temp_file("truncated", &SAMPLE[..cut]);
        assert!(open_mp4(&path).is_err(), "cut at {cut} accepted");
    }
}

#[test]
fn corrupted_moov_never_panics() {
    let moov = moov_range();
    let path = temp_file("corrupt", SAMPLE);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("reopen temp file");
    // Deterministic xorshift so failures are reproducible.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut rejected = 0;
    for _ in 0..300 {
        // Only moov is rewritten each round; mdat stays intact.
        let mut corrupted = SAMPLE[moov.clone()].to_vec();
        for _ in 0..1 + next() % 8 {
            let at = (next() as usize) % corrupted.len();
            corrupted[at] = next() as u8;
        }
        file.write_all_at(&corrupted, moov.start as u64)
            .expect("write temp file");
        match open_mp4(&path) {
            Ok(media) => {
                // Whatever survived validation must read without panicking.
                let mut reader = media.reader(0.0);
                while let Some(au) = reader.next_access_unit() {
                    au.expect("validated sample reads");
                }
            }
            Err(_) => rejected += 1,
        }
    }
    assert!(rejected > 0);

    // A first trak box claiming to be larger than the moov holding it.
    let trak = moov.start
        + SAMPLE[moov.clone()]
            .windows(4)
            .position(|w| w == b"trak")
            .expect("trak");
    let mut bytes = SAMPLE.to_vec();
    bytes[trak - 4..trak].fill(0xff);
    let path = temp_file("corrupt", &bytes);
    assert!(open_mp4(&path).is_err());
}

#[test]
fn sample_tables_are_validated() {
    // Grow the first stsz entry so it runs past the end of the file.
    let moov = moov_range();
    let stsz = moov.start
        + SAMPLE[moov.clone()]
            .windows(4)
            .position(|w| w == b"stsz")
            .expect("stsz");
    let mut bytes = SAMPLE.to_vec();
    // stsz: type, version/flags, sample_size, sample_count, first entry.
    bytes[stsz + 16..stsz + 20].copy_from_slice(&u32::MAX.to_be_bytes());
    let path = temp_file("bigsample", &bytes);
    let err = open_mp4(&path).unwrap_err();
    assert!(matches!(err, MediaError::Invalid(_)), "{err}");
}

#[test]
fn not_mp4_is_an_error() {
    assert!(Mp4Media::from_static(b"").is_err());
    assert!(Mp4Media::from_static(b"\0\0\0\x10ftypisom\0\0\0\0").is_err());
    assert!(open_mp4(Path::new("/nonexistent/clip.mp4")).is_err());
}
