//! The results table: what a run produced, summed over the viewers and
//! formatted as one row per quantity.

use std::time::Instant;

use crate::control::{ControlLatency, CONTROL_IP, PROBE_INTERVAL};
use crate::counters::{Resources, Snapshot};
use crate::distribution::{distribution, Table};
use crate::viewer::{Tracks, ViewerStats, RECV_BUFFER, VIEWERS_PER_IP};
use crate::{Args, SETUP_CONCURRENCY, WARMUP};

/// Nominal video frame interval of the bundled sample (30 fps).
const VIDEO_FRAME_MS: f64 = 1000.0 / 30.0;

/// What a run produced, before formatting.
pub(crate) struct Outcome {
    /// Viewers that got to PLAY.
    pub(crate) playing: usize,
    /// The first SETUP/PLAY failure and how many viewers failed.
    pub(crate) failures: (usize, Option<String>),
    /// Counters at the start of the window.
    pub(crate) before: Snapshot,
    /// Counters at the end of the window.
    pub(crate) after: Snapshot,
    /// Server RSS at the end of the window, KiB.
    pub(crate) server_rss_kib: u64,
    /// Descriptor and socket counts at the end of the window.
    pub(crate) resources: Resources,
    /// Per viewer statistics.
    pub(crate) viewers: Vec<ViewerStats>,
    /// The receive buffer the kernel granted an RTP socket (UDP only).
    pub(crate) granted_rcvbuf: Option<usize>,
    /// Control-plane round trips in the window.
    pub(crate) control: ControlLatency,
    /// The server's command line.
    pub(crate) server_command: String,
    /// Whether the server has `--max-sessions` (and so was given it).
    pub(crate) server_has_max_sessions: bool,
    /// The bench's soft limit on open files, after raising it.
    pub(crate) open_files_limit: u64,
}

/// Milliseconds from `from` to `to`.
fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e3
}

/// Formats the min and max of `values` as speed factors.
fn range(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        "n/a".into()
    } else {
        format!("min {min:.4}x, max {max:.4}x (n={})", values.len())
    }
}

impl Outcome {
    /// The results table.
    pub(crate) fn report(&self, args: &Args, cores: usize) -> String {
        let window = (self.after.at - self.before.at).as_secs_f64();
        let tracks = || self.viewers.iter().map(|v| &v.tracks);
        let sum = |f: &dyn Fn(&Tracks) -> u64| tracks().map(f).sum::<u64>();
        let video_packets = sum(&|t| t.video.packets);
        let audio_packets = sum(&|t| t.audio.packets);
        let packets = video_packets + audio_packets;
        let bytes = sum(&|t| t.video.bytes + t.audio.bytes);
        let lost = sum(&|t| t.video.lost + t.audio.lost);
        let out_of_order = sum(&|t| t.video.out_of_order + t.audio.out_of_order);
        let malformed = sum(&|t| t.video.malformed + t.audio.malformed);
        let silent = tracks()
            .filter(|t| t.video.packets == 0 || t.audio.packets == 0)
            .count();
        let video_jumps = sum(&|t| t.video.timestamp_jumps);
        let audio_jumps = sum(&|t| t.audio.timestamp_jumps);
        let jumpy_viewers = tracks()
            .filter(|t| t.video.timestamp_jumps + t.audio.timestamp_jumps > 0)
            .count();
        let lossy_viewers = tracks().filter(|t| t.video.lost + t.audio.lost > 0).count();
        let mbits = bytes as f64 * 8.0 / window / 1e6;
        let server_cpu = (self.after.server_cpu - self.before.server_cpu).as_secs_f64();
        let rcvbuf_errors = self.after.udp_errors.0 - self.before.udp_errors.0;
        let sndbuf_errors = self.after.udp_errors.1 - self.before.udp_errors.1;
        let first_rtp: Vec<f64> = self
            .viewers
            .iter()
            .filter_map(ViewerStats::play_to_first_rtp)
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        let play_round_trips: Vec<f64> = self
            .viewers
            .iter()
            .map(|v| ms(v.play.sent, v.play.answered))
            .collect();
        let first_connect = self.viewers.iter().map(|v| v.connect_started).min();
        let last_play = self.viewers.iter().map(|v| v.play.answered).max();
        let video_rates: Vec<f64> = tracks().filter_map(|t| t.video.media_rate()).collect();
        let audio_rates: Vec<f64> = tracks().filter_map(|t| t.audio.media_rate()).collect();
        let gaps: Vec<f64> = tracks()
            .filter(|t| t.video.packets > 1)
            .map(|t| t.video.max_gap.as_secs_f64() * 1e3)
            .collect();
        let torn_down = self.viewers.iter().filter(|v| v.torn_down).count();
        let ips = (args.viewers - 1) / VIEWERS_PER_IP + 1;

        let mut table = Table::new(
            "rtpcast fan-out benchmark",
            args.command(),
            self.server_command.clone(),
            "server in a child process, viewers in the bench process",
        );
        let mut row = |name: &str, value: String| table.row(name, value);
        row(
            "viewers playing",
            format!(
                "{} / {} over {} ({ips} loopback source address{}, up to {VIEWERS_PER_IP} viewers each)",
                self.playing,
                args.viewers,
                args.transport.name(),
                if ips == 1 { "" } else { "es" },
            ),
        );
        row(
            "session limit",
            if self.server_has_max_sessions {
                "the server lists --max-sessions in --help: the bench passes it (see server)".into()
            } else {
                "the server has no --max-sessions option: its built-in limits apply".into()
            },
        );
        if self.failures.0 > 0 {
            row(
                "failed to play",
                format!(
                    "{} (first: {})",
                    self.failures.0,
                    self.failures.1.as_deref().unwrap_or("?")
                ),
            );
        }
        if let Some((first, last)) = first_connect.zip(last_play) {
            row(
                "setup, all sessions",
                format!(
                    "{:.2} s from the first viewer's TCP connect to the last PLAY response ({} viewers in SETUP/PLAY at a time)",
                    ms(first, last) / 1e3,
                    SETUP_CONCURRENCY
                ),
            );
        }
        row(
            "PLAY round trip",
            format!(
                "{}, PLAY sent to 200 OK parsed",
                distribution(play_round_trips, "ms")
            ),
        );
        row(
            "PLAY -> first RTP",
            format!(
                "{}, PLAY sent to the viewer reading its first RTP packet of either track",
                distribution(first_rtp, "ms")
            ),
        );
        let control = &self.control;
        let every = PROBE_INTERVAL.as_millis();
        row(
            "OPTIONS in the window",
            format!(
                "{}, from {CONTROL_IP} every {every} ms on one kept-alive connection",
                distribution(control.options_ms.clone(), "ms")
            ),
        );
        row(
            "DESCRIBE in the window",
            format!(
                "{}, from {CONTROL_IP} after each OPTIONS on a new connection, TCP connect included",
                distribution(control.describe_ms.clone(), "ms")
            ),
        );
        if control.failures > 0 {
            row(
                "control requests failed",
                format!(
                    "{} (first: {})",
                    control.failures,
                    control.first_failure.as_deref().unwrap_or("?")
                ),
            );
        }
        row(
            "window",
            format!("{window:.2} s after {:.0} s warm-up", WARMUP.as_secs_f64()),
        );
        row(
            "packets delivered",
            format!(
                "{packets} ({video_packets} video, {audio_packets} audio) = {:.0} packets/s",
                packets as f64 / window
            ),
        );
        row(
            "throughput",
            format!(
                "{mbits:.1} Mbit/s total, {:.3} Mbit/s per viewer (RTP header + payload)",
                mbits / self.viewers.len().max(1) as f64
            ),
        );
        let loss = if lost == 0 {
            "none seen".to_string()
        } else {
            format!(
                "LOSS SEEN: {lost} of {} expected ({:.3}%), at {lossy_viewers} viewers",
                packets + lost,
                lost as f64 * 100.0 / (packets + lost) as f64
            )
        };
        row("loss (seq gaps)", loss);
        if out_of_order + malformed > 0 {
            row(
                "out of order / not RTP",
                format!("{out_of_order} / {malformed}"),
            );
        }
        if silent > 0 {
            row(
                "viewers without media",
                format!("{silent} received no video or no audio in the window"),
            );
        }
        if let Some(granted) = self.granted_rcvbuf {
            row(
                "UDP buffer errors",
                format!(
                    "RcvbufErrors +{rcvbuf_errors}, SndbufErrors +{sndbuf_errors} (system-wide); RTP SO_RCVBUF {} KiB asked, kernel reports {} KiB",
                    RECV_BUFFER / 1024,
                    granted / 1024
                ),
            );
        }
        row(
            "server CPU",
            format!(
                "{:.1}% of one core, {:.2} us per delivered packet",
                server_cpu * 100.0 / window,
                server_cpu * 1e6 / packets.max(1) as f64
            ),
        );
        row(
            "server RSS",
            format!("{:.1} MiB", self.server_rss_kib as f64 / 1024.0),
        );
        let resources = &self.resources;
        row(
            "open files",
            format!(
                "bench {} of {} allowed, server {}; UDP sockets in use (system-wide) {}, their buffers {} KiB",
                resources.bench_fds,
                self.open_files_limit,
                resources.server_fds,
                resources.udp_sockets,
                resources.udp_mem_kib
            ),
        );
        row(
            "machine busy",
            self.before.machine_busy(&self.after, cores, "viewers"),
        );
        let jumps = if video_jumps + audio_jumps == 0 {
            "none".to_string()
        } else {
            format!(
                "{video_jumps} video, {audio_jumps} audio packets more than 1 s off the running maximum, at {jumpy_viewers} viewers"
            )
        };
        row("RTP timestamp jumps", jumps);
        row("media rate video", range(&video_rates));
        row("media rate audio", range(&audio_rates));
        row(
            "longest video gap",
            format!(
                "{} (nominal frame interval {VIDEO_FRAME_MS:.1} ms)",
                distribution(gaps, "ms")
            ),
        );
        row(
            "teardown",
            format!("{torn_down} / {} answered 200", self.viewers.len()),
        );
        table.finish()
    }
}
