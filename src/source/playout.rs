//! One viewer's timeline over a file: which access units play, in which
//! order, at which stream time; seek, Range end and loop (RFC 2326 §10.5,
//! §12.29). It plans reads but does none: the I/O layer reads the samples
//! [`missing_reads`](FilePlayout::missing_reads) lists and hands their
//! bytes back with [`deliver`](FilePlayout::deliver).
//!
//! *Stream time* is seconds of media played in this session; it never goes
//! backwards, across seeks and loops: each pass over the file is placed
//! after everything read before it.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::media::mp4::MediaError;
use crate::media::mp4::{Mp4Media, Mp4Reader};
use crate::media::{AccessUnit, SampleRef};

/// How far ahead of the next send the file is read, in stream seconds:
/// more than any B-frame reorder delay, little enough to be cheap.
const READ_AHEAD_SECS: f64 = 0.25;

/// The mapping from a pass over the file to stream time.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Stream time of `npt_start`.
    offset: f64,
    /// File presentation time where the pass starts.
    npt_start: f64,
}

/// An access unit placed on the stream clock when it was read from the
/// sample table, so a later seek or loop cannot move it.
#[derive(Debug, Clone)]
pub struct ScheduledUnit {
    /// Which read this is, for [`FilePlayout::deliver`].
    pub read_id: u64,
    /// Where its bytes are, and its file times.
    pub sample: SampleRef,
    /// Its bytes, once read.
    pub data: Option<Bytes>,
    /// Stream time it is sent at (its decode time), in seconds.
    pub decode_at: f64,
    /// Stream time its RTP timestamp carries (its presentation time), in
    /// seconds.
    pub present_at: f64,
    /// File presentation time in seconds, for the Range of a resumed PLAY.
    pub file_pts: f64,
}

impl ScheduledUnit {
    /// The access unit, if its bytes have been read.
    pub fn access_unit(&self) -> Option<AccessUnit> {
        let data = self.data.clone()?;
        Some(AccessUnit {
            track: self.sample.track,
            dts: self.sample.dts,
            pts: self.sample.pts,
            duration: self.sample.duration,
            keyframe: self.sample.keyframe,
            data,
        })
    }
}

/// A file played on one viewer's own timeline.
#[derive(Debug)]
pub struct FilePlayout {
    media: Arc<Mp4Media>,
    /// Indices of the tracks that play; the others are never read.
    tracks: Vec<usize>,
    loop_playback: bool,
    reader: Option<Mp4Reader>,
    /// Units read ahead, in decode order. Normally one or two; at a loop
    /// the next pass's first units (whose decode times precede the
    /// presentation start) merge in before the old pass's last ones.
    queue: VecDeque<ScheduledUnit>,
    /// Decode time of the last unit read in this pass, if any.
    last_read: Option<f64>,
    /// File time at which reading stops (a Range end).
    play_end: Option<f64>,
    segment: Segment,
    /// Highest stream time reached by the end of any unit read so far.
    high_water: f64,
    next_read_id: u64,
}

impl FilePlayout {
    /// A playout of `media` with no track chosen yet; `loop_playback`
    /// starts again at the beginning at the end of the file.
    pub fn new(media: Arc<Mp4Media>, loop_playback: bool) -> Self {
        FilePlayout {
            media,
            tracks: Vec::new(),
            loop_playback,
            reader: None,
            queue: VecDeque::new(),
            last_read: None,
            play_end: None,
            segment: Segment {
                offset: 0.0,
                npt_start: 0.0,
            },
            high_water: 0.0,
            next_read_id: 0,
        }
    }

    /// The media played.
    pub fn media(&self) -> &Arc<Mp4Media> {
        &self.media
    }

    /// Adds `track` to the tracks played. What was read ahead is dropped:
    /// the next [`seek`](Self::seek) reads the new set.
    pub fn add_track(&mut self, track: usize) {
        if !self.tracks.contains(&track) {
            self.tracks.push(track);
            self.reader = None;
            self.queue.clear();
        }
    }

    /// True while units are queued or the file is still being read: false
    /// before the first seek and after the end (or the Range end).
    pub fn has_more(&self) -> bool {
        !self.queue.is_empty() || self.reader.is_some()
    }

    /// Drops what was read ahead and plays from the keyframe at or before
    /// `npt` seconds, placed after everything read so far. Returns the npt
    /// where playback really starts.
    pub fn seek(&mut self, npt: f64) -> f64 {
        self.queue.clear();
        self.open_pass(npt);
        self.fill();
        self.segment.npt_start
    }

    /// Stops before the first unit decoded at or after `end` npt seconds
    /// (RFC 2326 §12.29); `None` plays to the end.
    pub fn set_end(&mut self, end: Option<f64>) {
        self.play_end = end;
    }

    /// Stream time and npt where the current pass started.
    pub fn pass_start(&self) -> (f64, f64) {
        (self.segment.offset, self.segment.npt_start)
    }

    /// The highest stream time any unit read so far reaches, its duration
    /// included: where a new pass or the end of stream is placed.
    pub fn high_water(&self) -> f64 {
        self.high_water
    }

    /// The npt of stream time `stream_secs` in the current pass.
    pub fn npt_at(&self, stream_secs: f64) -> f64 {
        self.segment.npt_start + (stream_secs - self.segment.offset)
    }

    /// The next unit to send, if any is queued.
    pub fn front(&self) -> Option<&ScheduledUnit> {
        self.queue.front()
    }

    /// Takes the next unit, reading ahead in the sample table as needed.
    pub fn pop(&mut self) -> Option<ScheduledUnit> {
        let unit = self.queue.pop_front()?;
        self.fill();
        Some(unit)
    }

    /// Drops everything still to play (end of stream).
    pub fn stop(&mut self) {
        self.reader = None;
        self.queue.clear();
    }

    /// The queued units whose bytes are still to be read, as (read id,
    /// where).
    pub fn missing_reads(&self) -> impl Iterator<Item = (u64, SampleRef)> + '_ {
        self.queue
            .iter()
            .filter(|unit| unit.data.is_none())
            .map(|unit| (unit.read_id, unit.sample))
    }

    /// Hands in the bytes of read `read_id`. A failed read drops that one
    /// unit (and logs why): one unreadable sample costs one frame, not the
    /// session. A read for a unit no longer queued (a seek came first) is
    /// ignored.
    pub fn deliver(&mut self, read_id: u64, result: Result<Bytes, MediaError>) {
        let Some(pos) = self.queue.iter().position(|u| u.read_id == read_id) else {
            return;
        };
        match result {
            Ok(data) => self.queue[pos].data = Some(data),
            Err(error) => {
                tracing::warn!(%error, track = self.queue[pos].sample.track, "media read failed; skipping the sample");
                self.queue.remove(pos);
                self.fill();
            }
        }
    }

    fn open_pass(&mut self, npt: f64) {
        let tracks = &self.tracks;
        let reader = self
            .media
            .reader(npt)
            .only_tracks(|index| tracks.contains(&index));
        self.segment = Segment {
            offset: self.high_water,
            npt_start: reader.start_secs(),
        };
        self.reader = Some(reader);
        self.last_read = None;
    }

    /// Reads the sample table ahead until the last unit read is due
    /// [`READ_AHEAD_SECS`] after the queue's head. Within a pass the file
    /// is in decode order; the margin lets the next pass of a loop, whose
    /// first decode times precede its presentation start by the B-frame
    /// delay, be read before those are due. At end of file it loops (each
    /// pass placed after the last) or stops reading.
    fn fill(&mut self) {
        let mut looped = false;
        loop {
            let head = self.queue.front().map(|s| s.decode_at);
            if matches!((head, self.last_read), (Some(head), Some(last)) if last > head + READ_AHEAD_SECS)
            {
                return;
            }
            let Some(reader) = self.reader.as_mut() else {
                return;
            };
            match reader.next_sample() {
                Some(sample) => {
                    let decode = sample.dts as f64 / self.timescale(sample.track);
                    if self.play_end.is_some_and(|end| decode >= end) {
                        self.reader = None;
                    } else {
                        let scheduled = self.schedule(sample);
                        self.last_read = Some(scheduled.decode_at);
                        let at = self
                            .queue
                            .partition_point(|s| s.decode_at <= scheduled.decode_at);
                        self.queue.insert(at, scheduled);
                    }
                }
                None if self.loop_playback && !looped => {
                    looped = true;
                    self.open_pass(0.0);
                }
                None => self.reader = None,
            }
        }
    }

    /// Places `sample` on the stream clock of the current pass.
    fn schedule(&mut self, sample: SampleRef) -> ScheduledUnit {
        let timescale = self.timescale(sample.track);
        let to_stream =
            |ticks: i64| self.segment.offset + (ticks as f64 / timescale - self.segment.npt_start);
        let present_at = to_stream(sample.pts);
        let decode_at = to_stream(sample.dts);
        self.high_water = self
            .high_water
            .max(present_at + f64::from(sample.duration) / timescale);
        let read_id = self.next_read_id;
        self.next_read_id += 1;
        ScheduledUnit {
            read_id,
            file_pts: sample.pts as f64 / timescale,
            sample,
            data: None,
            decode_at,
            present_at,
        }
    }

    /// Ticks per second of a track's file times.
    fn timescale(&self, track: usize) -> f64 {
        let ticks = self
            .media
            .tracks()
            .get(track)
            .map(|t| t.timescale)
            .filter(|&ts| ts > 0)
            .unwrap_or(1);
        f64::from(ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled sample: 10 s, H.264 at 30 fps with a keyframe every
    /// whole second and B-frames (track 0), AAC (track 1).
    fn sample() -> Arc<Mp4Media> {
        Mp4Media::from_static(include_bytes!("../../media/sample.mp4")).expect("sample parses")
    }

    fn playout_of(tracks: &[usize], loop_playback: bool) -> FilePlayout {
        let mut playout = FilePlayout::new(sample(), loop_playback);
        for &track in tracks {
            playout.add_track(track);
        }
        playout
    }

    /// Takes every unit up to the end of the pass, or `limit` of them.
    fn take(playout: &mut FilePlayout, limit: usize) -> Vec<ScheduledUnit> {
        std::iter::from_fn(|| playout.pop()).take(limit).collect()
    }

    fn secs(playout: &FilePlayout, track: usize, ticks: i64) -> f64 {
        ticks as f64 / f64::from(playout.media().tracks()[track].timescale)
    }

    #[test]
    fn seek_between_keyframes_starts_at_the_keyframe_before() {
        let mut playout = playout_of(&[0, 1], false);
        assert!(!playout.has_more(), "nothing plays before the first seek");
        assert_eq!(playout.seek(5.5), 5.0, "keyframe at or before 5.5 s");
        assert_eq!(playout.pass_start(), (0.0, 5.0));
        assert!(playout.has_more());
        let units = take(&mut playout, usize::MAX);
        assert!(!playout.has_more());

        let first_video = units.iter().find(|u| u.sample.track == 0).expect("video");
        assert!(first_video.sample.keyframe);
        assert_eq!(first_video.file_pts, 5.0);
        assert_eq!(first_video.present_at, 0.0, "npt 5.0 is stream time 0");
        assert_eq!(
            units.iter().filter(|u| u.sample.track == 0).count(),
            150,
            "5 s of video at 30 fps"
        );
        assert!(
            units.windows(2).all(|w| w[0].decode_at <= w[1].decode_at),
            "decode order"
        );
        for unit in &units {
            let track = unit.sample.track;
            let pts = secs(&playout, track, unit.sample.pts);
            let dts = secs(&playout, track, unit.sample.dts);
            assert!((unit.present_at - (pts - 5.0)).abs() < 1e-9);
            assert!((unit.decode_at - (dts - 5.0)).abs() < 1e-9);
            assert_eq!(unit.file_pts, pts);
        }
        let end = units
            .iter()
            .map(|u| u.present_at + secs(&playout, u.sample.track, i64::from(u.sample.duration)))
            .fold(0.0, f64::max);
        assert_eq!(playout.high_water(), end, "end of the last unit presented");
        let duration = playout.media().duration_secs();
        assert!((end - (duration - 5.0)).abs() < 0.05, "{end} of {duration}");
        assert!((playout.npt_at(end) - duration).abs() < 0.05);
    }

    #[test]
    fn a_later_pass_is_placed_after_everything_read() {
        let mut playout = playout_of(&[0, 1], false);
        playout.seek(0.0);
        take(&mut playout, 200);
        let high_water = playout.high_water();
        assert!(high_water > 2.5, "{high_water}");
        assert_eq!(playout.seek(2.0), 2.0);
        assert_eq!(playout.pass_start(), (high_water, 2.0));
        assert_eq!(playout.npt_at(high_water + 0.5), 2.5);
        let keyframe = playout.front().expect("queued");
        assert_eq!(keyframe.sample.track, 0);
        assert_eq!(keyframe.present_at, high_water);
        assert!(keyframe.decode_at <= high_water);
    }

    #[test]
    fn looping_places_each_pass_after_the_last_and_never_ends() {
        let mut playout = playout_of(&[0, 1], true);
        playout.seek(0.0);
        let video_frames =
            sample().tracks()[0].duration as f64 / f64::from(sample().tracks()[0].timescale) * 30.0;
        let units = take(&mut playout, 2000);
        assert_eq!(units.len(), 2000, "a looping playout has no end");
        assert!(playout.has_more());
        let mut video: Vec<&ScheduledUnit> = units.iter().filter(|u| u.sample.track == 0).collect();
        assert!(video.len() as f64 > video_frames + 30.0, "{}", video.len());
        video.sort_by(|a, b| a.present_at.total_cmp(&b.present_at));
        assert!(
            video
                .windows(2)
                .all(|w| w[1].present_at - w[0].present_at > 0.03),
            "no two frames at one stream time across the loop"
        );
        let restart = video
            .windows(2)
            .find(|w| w[1].file_pts < w[0].file_pts)
            .expect("the file starts again");
        assert_eq!(restart[1].file_pts, 0.0);
        assert!(restart[1].present_at >= restart[0].present_at + 1.0 / 30.0 - 1e-9);
    }

    #[test]
    fn a_playout_without_tracks_ends_at_once_even_looping() {
        for loop_playback in [false, true] {
            let mut playout = playout_of(&[], loop_playback);
            playout.seek(0.0);
            assert!(!playout.has_more(), "loop {loop_playback}");
            assert!(playout.pop().is_none());
        }
    }

    #[test]
    fn without_loop_the_file_plays_once() {
        let mut playout = playout_of(&[0], false);
        playout.seek(0.0);
        let units = take(&mut playout, usize::MAX);
        assert_eq!(units.len(), 300, "10 s of video at 30 fps, once");
    }

    #[test]
    fn range_end_stops_before_the_first_unit_decoded_at_it() {
        let mut playout = playout_of(&[0, 1], false);
        playout.set_end(Some(3.5));
        playout.seek(2.0);
        let units = take(&mut playout, usize::MAX);
        let last_decode = units
            .iter()
            .map(|u| secs(&playout, u.sample.track, u.sample.dts))
            .fold(0.0, f64::max);
        assert!(
            last_decode < 3.5 && last_decode > 3.4,
            "last unit decoded at {last_decode}"
        );
        assert!(!playout.has_more());
    }

    #[test]
    fn stop_drops_everything_still_to_play() {
        let mut playout = playout_of(&[0, 1], false);
        playout.seek(0.0);
        playout.stop();
        assert!(!playout.has_more());
        assert!(playout.front().is_none());
        assert_eq!(playout.missing_reads().count(), 0);
    }

    #[test]
    fn adding_a_track_drops_the_read_ahead_and_adding_it_again_does_not() {
        let mut playout = playout_of(&[1], false);
        playout.seek(0.0);
        assert!(take(&mut playout, 20).iter().all(|u| u.sample.track == 1));
        playout.add_track(1);
        assert!(playout.has_more(), "the same track again changes nothing");
        playout.add_track(0);
        assert!(!playout.has_more(), "read again at the next seek");
        playout.seek(0.0);
        let units = take(&mut playout, usize::MAX);
        assert_eq!(units.iter().filter(|u| u.sample.track == 0).count(), 300);
    }

    #[test]
    fn reads_are_handed_back_by_id_and_a_failed_one_costs_one_unit() {
        let mut playout = playout_of(&[0, 1], false);
        playout.seek(0.0);
        let reads: Vec<(u64, SampleRef)> = playout.missing_reads().collect();
        assert!(reads.len() >= 3, "{} reads", reads.len());
        let ids: Vec<u64> = playout.queue.iter().map(|u| u.read_id).collect();
        assert_eq!(reads.iter().map(|r| r.0).collect::<Vec<_>>(), ids);
        assert!(ids.windows(2).all(|w| w[0] != w[1]), "one id per read");
        assert!(playout
            .front()
            .and_then(ScheduledUnit::access_unit)
            .is_none());

        let (failed, failed_sample) = reads[0];
        playout.deliver(
            failed,
            Err(MediaError::SampleOutOfRange {
                offset: failed_sample.offset,
                size: failed_sample.size,
                len: 0,
            }),
        );
        assert_eq!(playout.front().map(|u| u.read_id), Some(reads[1].0));
        assert!(playout.missing_reads().all(|(id, _)| id != failed));

        let (read, sample) = reads[1];
        playout.deliver(read, Ok(Bytes::from_static(b"unit")));
        let au = playout
            .front()
            .and_then(ScheduledUnit::access_unit)
            .expect("read");
        assert_eq!(
            (au.track, au.dts, au.pts, au.duration, au.keyframe),
            (
                sample.track,
                sample.dts,
                sample.pts,
                sample.duration,
                sample.keyframe
            )
        );
        assert_eq!(au.data, Bytes::from_static(b"unit"));
        assert!(playout.missing_reads().all(|(id, _)| id != read));

        playout.seek(3.0);
        let queued: Vec<u64> = playout.missing_reads().map(|r| r.0).collect();
        playout.deliver(reads[2].0, Ok(Bytes::from_static(b"late")));
        assert_eq!(
            playout.missing_reads().map(|r| r.0).collect::<Vec<_>>(),
            queued,
            "a read for a unit dropped by a seek is ignored"
        );
    }
}
