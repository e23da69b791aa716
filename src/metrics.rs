//! Prometheus text exposition (format 0.0.4) of the server's snapshots:
//! a pure function of [`crate::stats`] values, so a scrape costs one copy
//! of the snapshots and this formatting, nothing on the send path.
//!
//! Labels are the URL path and the transport only (no session id), so the
//! number of series follows the paths served, not the viewers. Counters
//! over sessions add the ended sessions' totals
//! ([`StatsSnapshot::ended`]), so they never go back when a session ends.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::stats::{
    EndedTotals, LivePathStats, PublisherStats, RequestCount, StatsSnapshot, TransportKind,
};

/// Everything one scrape shows.
#[derive(Debug, Clone, Copy)]
pub struct MetricsInput<'a> {
    /// Sessions, running and ended.
    pub sessions: &'a StatsSnapshot,
    /// RTSP requests answered.
    pub requests: &'a [RequestCount],
    /// Live paths.
    pub live: &'a [LivePathStats],
    /// Publishers.
    pub publishers: &'a [PublisherStats],
}

/// Per path and transport: the running sessions' gauges and everyone's
/// counters.
#[derive(Debug, Default)]
struct Group {
    sessions: u64,
    totals: EndedTotals,
    /// Sum and count of the latest fraction lost (0–1) of each track with
    /// a receiver report.
    fraction_lost: (f64, u32),
    /// Sum and count of jitter in seconds, likewise.
    jitter_seconds: (f64, u32),
    /// Sum and count of round-trip times in seconds, of tracks whose
    /// reports allowed one.
    round_trip_seconds: (f64, u32),
}

/// Escapes a label value (backslash, double quote and line feed, as the
/// text format requires).
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// One metric family: its help and type lines, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn path_transport(path: &str, transport: TransportKind) -> String {
    format!(
        "path=\"{}\",transport=\"{}\"",
        escape(path),
        transport.as_str()
    )
}

/// The mean of a (sum, count) pair, as a sample value; `None` without any.
fn mean((sum, count): (f64, u32)) -> Option<String> {
    (count > 0).then(|| format!("{}", sum / f64::from(count)))
}

/// The text a scrape of `/metrics` returns.
pub fn render(input: &MetricsInput<'_>) -> String {
    let mut groups: BTreeMap<(String, TransportKind), Group> = BTreeMap::new();
    for ((path, transport), totals) in &input.sessions.ended {
        let group = groups.entry((path.clone(), *transport)).or_default();
        group.totals.packets_sent += totals.packets_sent;
        group.totals.bytes_sent += totals.bytes_sent;
        group.totals.units_skipped += totals.units_skipped;
    }
    for session in &input.sessions.running {
        let group = groups
            .entry((session.path.clone(), session.transport))
            .or_default();
        group.sessions += 1;
        group.totals.add(session);
        for (_, track) in &session.tracks {
            if track.reports == 0 {
                continue;
            }
            group.fraction_lost.0 += f64::from(track.fraction_lost);
            group.fraction_lost.1 += 1;
            group.jitter_seconds.0 += track.jitter_ms / 1000.0;
            group.jitter_seconds.1 += 1;
            if let Some(rtt) = track.round_trip {
                group.round_trip_seconds.0 += rtt.as_secs_f64();
                group.round_trip_seconds.1 += 1;
            }
        }
    }
    let per_group = |value: &dyn Fn(&Group) -> Option<String>| -> Vec<(String, String)> {
        groups
            .iter()
            .filter_map(|((path, transport), group)| {
                Some((path_transport(path, *transport), value(group)?))
            })
            .collect()
    };
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "rtpcast_sessions",
        "gauge",
        "Viewer sessions now (a multicast group's sender counts once).",
        &per_group(&|g| Some(g.sessions.to_string())),
    );
    family(
        &mut out,
        "rtpcast_rtp_packets_sent_total",
        "counter",
        "RTP packets sent to viewers.",
        &per_group(&|g| Some(g.totals.packets_sent.to_string())),
    );
    family(
        &mut out,
        "rtpcast_rtp_bytes_sent_total",
        "counter",
        "RTP payload bytes sent to viewers (headers not counted).",
        &per_group(&|g| Some(g.totals.bytes_sent.to_string())),
    );
    family(
        &mut out,
        "rtpcast_units_skipped_total",
        "counter",
        "Access units skipped because a viewer could not keep up.",
        &per_group(&|g| Some(g.totals.units_skipped.to_string())),
    );
    family(
        &mut out,
        "rtpcast_rtcp_fraction_lost",
        "gauge",
        "Mean over reporting tracks of the latest RTCP fraction lost (0-1, RFC 3550 6.4.1).",
        &per_group(&|g| mean(g.fraction_lost)),
    );
    family(
        &mut out,
        "rtpcast_rtcp_jitter_seconds",
        "gauge",
        "Mean over reporting tracks of the latest RTCP interarrival jitter.",
        &per_group(&|g| mean(g.jitter_seconds)),
    );
    family(
        &mut out,
        "rtpcast_rtcp_round_trip_seconds",
        "gauge",
        "Mean over reporting tracks of the round-trip time from RTCP LSR/DLSR.",
        &per_group(&|g| mean(g.round_trip_seconds)),
    );
    let requests: Vec<_> = input
        .requests
        .iter()
        .map(|r| {
            (
                format!("method=\"{}\",status=\"{}\"", r.method, r.status),
                r.count.to_string(),
            )
        })
        .collect();
    family(
        &mut out,
        "rtpcast_rtsp_requests_total",
        "counter",
        "RTSP requests answered, by method (unknown ones as other) and status.",
        &requests,
    );
    let viewers: Vec<_> = input
        .live
        .iter()
        .map(|p| {
            (
                format!("path=\"{}\"", escape(&p.mount)),
                p.viewers.to_string(),
            )
        })
        .collect();
    family(
        &mut out,
        "rtpcast_live_path_viewers",
        "gauge",
        "Viewers subscribed to a live path.",
        &viewers,
    );
    let publishers: Vec<_> = input
        .live
        .iter()
        .map(|p| {
            let count = input
                .publishers
                .iter()
                .filter(|publisher| publisher.mount == p.mount)
                .count();
            (format!("path=\"{}\"", escape(&p.mount)), count.to_string())
        })
        .collect();
    family(
        &mut out,
        "rtpcast_live_path_publishers",
        "gauge",
        "RTSP publishers feeding a live path (0 for channels, relays and cameras).",
        &publishers,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::stream::LiveStreamStats;
    use crate::stats::{PlayState, SessionStats, TrackStats};
    use std::time::Duration;

    fn session(
        id: &str,
        path: &str,
        transport: TransportKind,
        tracks: &[TrackStats],
    ) -> SessionStats {
        SessionStats {
            session_id: id.into(),
            path: path.into(),
            client: "127.0.0.1:7000".parse().unwrap(),
            transport,
            state: PlayState::Playing,
            tracks: tracks.iter().copied().enumerate().collect(),
            codecs: vec!["H264"; tracks.len()],
        }
    }

    fn sent(packets: u64, bytes: u64) -> TrackStats {
        TrackStats {
            packets_sent: packets,
            bytes_sent: bytes,
            ..TrackStats::default()
        }
    }

    /// The samples of `name` in `text`, as (labels, value).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let labels = series.strip_prefix(name)?.strip_prefix('{')?;
                Some((labels.strip_suffix('}')?, value))
            })
            .collect()
    }

    #[test]
    fn sessions_are_summed_per_path_and_transport_with_the_ended_ones() {
        let snapshot = StatsSnapshot {
            running: vec![
                session(
                    "A",
                    "/tv",
                    TransportKind::Udp,
                    &[sent(10, 1000), sent(5, 50)],
                ),
                session("B", "/tv", TransportKind::Udp, &[sent(1, 100)]),
                session("C", "/tv", TransportKind::Tcp, &[sent(7, 700)]),
            ],
            ended: vec![(
                ("/tv".into(), TransportKind::Udp),
                EndedTotals {
                    packets_sent: 100,
                    bytes_sent: 9000,
                    units_skipped: 3,
                },
            )],
        };
        let text = render(&MetricsInput {
            sessions: &snapshot,
            requests: &[],
            live: &[],
            publishers: &[],
        });
        assert_eq!(
            samples(&text, "rtpcast_sessions"),
            [
                ("path=\"/tv\",transport=\"udp\"", "2"),
                ("path=\"/tv\",transport=\"tcp\"", "1")
            ]
        );
        assert_eq!(
            samples(&text, "rtpcast_rtp_packets_sent_total"),
            [
                ("path=\"/tv\",transport=\"udp\"", "116"),
                ("path=\"/tv\",transport=\"tcp\"", "7")
            ]
        );
        assert_eq!(
            samples(&text, "rtpcast_rtp_bytes_sent_total")[0],
            ("path=\"/tv\",transport=\"udp\"", "10150")
        );
        assert_eq!(
            samples(&text, "rtpcast_units_skipped_total")[0].1,
            "3",
            "the ended sessions' skips stay counted"
        );
        assert!(
            samples(&text, "rtpcast_rtcp_fraction_lost").is_empty(),
            "no receiver report, no loss figure"
        );
        assert!(text.contains("# TYPE rtpcast_rtp_packets_sent_total counter\n"));
        assert!(text.contains("# TYPE rtpcast_sessions gauge\n"));
    }

    #[test]
    fn an_ended_session_leaves_its_counts_and_zero_sessions() {
        let ended = StatsSnapshot {
            running: Vec::new(),
            ended: vec![(
                ("/a".into(), TransportKind::Multicast),
                EndedTotals {
                    packets_sent: 4,
                    bytes_sent: 40,
                    units_skipped: 0,
                },
            )],
        };
        let text = render(&MetricsInput {
            sessions: &ended,
            requests: &[],
            live: &[],
            publishers: &[],
        });
        assert_eq!(
            samples(&text, "rtpcast_sessions"),
            [("path=\"/a\",transport=\"multicast\"", "0")]
        );
        assert_eq!(
            samples(&text, "rtpcast_rtp_bytes_sent_total"),
            [("path=\"/a\",transport=\"multicast\"", "40")]
        );
    }

    #[test]
    fn reception_reports_give_mean_loss_jitter_and_round_trip() {
        let reported = |fraction_lost, jitter_ms, rtt_ms: Option<u64>| TrackStats {
            reports: 1,
            fraction_lost,
            jitter_ms,
            round_trip: rtt_ms.map(Duration::from_millis),
            ..TrackStats::default()
        };
        let snapshot = StatsSnapshot {
            running: vec![
                session(
                    "A",
                    "/x",
                    TransportKind::Udp,
                    &[reported(0.25, 10.0, Some(20)), TrackStats::default()],
                ),
                session("B", "/x", TransportKind::Udp, &[reported(0.75, 30.0, None)]),
            ],
            ended: Vec::new(),
        };
        let text = render(&MetricsInput {
            sessions: &snapshot,
            requests: &[],
            live: &[],
            publishers: &[],
        });
        let labels = "path=\"/x\",transport=\"udp\"";
        assert_eq!(
            samples(&text, "rtpcast_rtcp_fraction_lost"),
            [(labels, "0.5")]
        );
        assert_eq!(
            samples(&text, "rtpcast_rtcp_jitter_seconds"),
            [(labels, "0.02")]
        );
        assert_eq!(
            samples(&text, "rtpcast_rtcp_round_trip_seconds"),
            [(labels, "0.02")]
        );
    }

    #[test]
    fn requests_live_paths_and_escaped_labels() {
        let live = [LivePathStats {
            mount: "/we\"ird\\path\nx".into(),
            viewers: 3,
            codecs: vec!["H264"],
            stream: LiveStreamStats::default(),
        }];
        let publishers = [PublisherStats {
            session_id: "P".into(),
            mount: live[0].mount.clone(),
            client: "127.0.0.1:9".parse().unwrap(),
            tracks: Vec::new(),
        }];
        let requests = [
            RequestCount {
                method: "DESCRIBE",
                status: 200,
                count: 4,
            },
            RequestCount {
                method: "other",
                status: 400,
                count: 1,
            },
        ];
        let text = render(&MetricsInput {
            sessions: &StatsSnapshot::default(),
            requests: &requests,
            live: &live,
            publishers: &publishers,
        });
        assert_eq!(
            samples(&text, "rtpcast_rtsp_requests_total"),
            [
                ("method=\"DESCRIBE\",status=\"200\"", "4"),
                ("method=\"other\",status=\"400\"", "1")
            ]
        );
        let escaped = "path=\"/we\\\"ird\\\\path\\nx\"";
        assert_eq!(
            samples(&text, "rtpcast_live_path_viewers"),
            [(escaped, "3")]
        );
        assert_eq!(
            samples(&text, "rtpcast_live_path_publishers"),
            [(escaped, "1")]
        );
        assert!(
            text.lines()
                .all(|line| line.starts_with("# ") || line.starts_with("rtpcast_")),
            "one sample per line, the newline in the label escaped:\n{text}"
        );
    }
}
