//! What the viewers measure: the latency the server adds to each packet
//! (matched to the publisher's packet by [`PacketKey`]), and a joining
//! viewer's wait for its first complete keyframe.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::publisher::Sent;
use crate::stream::{PacketKey, RtpView};

/// A packet sent this close to the end of the window may still be on its
/// way when the viewers stop: it is not counted as lost.
const IN_FLIGHT: Duration = Duration::from_millis(500);

/// One video RTP packet as a viewer read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// Its timestamp and payload hash.
    pub(crate) key: PacketKey,
    /// When the viewer read it.
    pub(crate) at: Instant,
}

/// Keeps the `Arrival` of each RTP packet handed to it.
pub(crate) fn record(arrivals: &mut Vec<Arrival>, at: Instant, packet: &[u8]) {
    if let Some(rtp) = RtpView::parse(packet) {
        arrivals.push(Arrival { key: rtp.key(), at });
    }
}

/// The latency of the packets the viewers read in a window.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    /// Viewer read time minus publisher send time, in milliseconds, of
    /// every packet read in the window that matched a sent one.
    pub(crate) ms: Vec<f64>,
    /// Packets read in the window that matched no sent packet.
    pub(crate) unmatched: usize,
    /// Packets sent in the window (less the last [`IN_FLIGHT`]), times the
    /// viewers.
    pub(crate) expected: usize,
    /// Of those, the ones a viewer never read.
    pub(crate) lost: usize,
}

impl Latency {
    /// Matches each viewer's `arrivals` against `sent` over
    /// `from..until`.
    pub(crate) fn measure(
        sent: &[Sent],
        viewers: &[Vec<Arrival>],
        from: Instant,
        until: Instant,
    ) -> Latency {
        let sent_at: HashMap<PacketKey, Instant> = sent.iter().map(|s| (s.key, s.at)).collect();
        let last_expected = until.checked_sub(IN_FLIGHT).unwrap_or(until);
        let expected: Vec<PacketKey> = sent
            .iter()
            .filter(|s| s.at >= from && s.at < last_expected)
            .map(|s| s.key)
            .collect();
        let mut latency = Latency::default();
        for arrivals in viewers {
            for arrival in arrivals.iter().filter(|a| a.at >= from && a.at < until) {
                match sent_at.get(&arrival.key) {
                    Some(&sent) => latency
                        .ms
                        .push(arrival.at.saturating_duration_since(sent).as_secs_f64() * 1e3),
                    None => latency.unmatched += 1,
                }
            }
            let read: HashSet<PacketKey> = arrivals.iter().map(|a| a.key).collect();
            latency.expected += expected.len();
            latency.lost += expected.iter().filter(|key| !read.contains(key)).count();
        }
        latency
    }
}

/// The access unit a joining viewer is reading.
#[derive(Debug)]
struct UnitInProgress {
    timestamp: u32,
    /// The sequence number the next packet of the unit should have.
    next_sequence: u16,
    /// No packet of it missed so far.
    intact: bool,
    /// It holds an IDR slice.
    idr: bool,
}

/// Follows a joining viewer's packets to the end of its first complete
/// keyframe, when a decoder can show a picture.
#[derive(Debug, Default)]
pub(crate) struct FirstPicture {
    /// Whether the first unit read was a keyframe, once it ended.
    pub(crate) first_unit_keyframe: Option<bool>,
    /// When the last packet of the first complete keyframe was read.
    pub(crate) complete_at: Option<Instant>,
    unit: Option<UnitInProgress>,
}

impl FirstPicture {
    /// Takes the packet read at `at`; true once a complete keyframe has
    /// been read.
    pub(crate) fn on_packet(&mut self, at: Instant, packet: &[u8]) -> bool {
        let Some(rtp) = RtpView::parse(packet) else {
            return false;
        };
        match &mut self.unit {
            Some(unit) if unit.timestamp == rtp.timestamp => {
                unit.intact &= rtp.sequence == unit.next_sequence;
                unit.next_sequence = rtp.sequence.wrapping_add(1);
                unit.idr |= rtp.carries_idr();
            }
            other => {
                // A unit that ended without its marker packet.
                if let Some(unfinished) = other.take() {
                    self.first_unit_keyframe.get_or_insert(unfinished.idr);
                }
                self.unit = Some(UnitInProgress {
                    timestamp: rtp.timestamp,
                    next_sequence: rtp.sequence.wrapping_add(1),
                    intact: !rtp.continues_fragment(),
                    idr: rtp.carries_idr(),
                });
            }
        }
        if !rtp.marker {
            return false;
        }
        let Some(unit) = self.unit.take() else {
            return false;
        };
        self.first_unit_keyframe.get_or_insert(unit.idr);
        if unit.idr && unit.intact {
            self.complete_at = Some(at);
        }
        self.complete_at.is_some()
    }
}
