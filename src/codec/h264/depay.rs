//! H.264 RTP depacketizer (RFC 6184), packetization-mode 0 and 1
//! (single NAL unit and non-interleaved modes, §6.2–6.3): single NAL unit
//! packets (§5.6), STAP-A (§5.7.1) and FU-A (§5.8).
//!
//! Access units end at the marker bit or, when a sender omits it or the
//! marked packet is lost, at the first packet with another timestamp
//! (§5.1). NAL units before the first picture of a unit (parameter sets,
//! SEI) join the next unit that has one, since some cameras stamp or mark
//! their parameter sets apart from the IDR picture they belong to. A lost fragment drops its whole NAL unit (§5.8): the rest of the
//! access unit is still delivered, flagged damaged. The interleaved mode's
//! structures (STAP-B, MTAP16/24, FU-B) are refused.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::depay::{
    DepacketizedUnit, DepayError, ReceivedPacket, SequenceTracker, MAX_UNIT_SIZE,
};

const NAL_TYPE_MASK: u8 = 0x1f;
const NAL_F_NRI_MASK: u8 = 0xe0;
const NAL_TYPE_IDR: u8 = 5;
const NAL_TYPE_SPS: u8 = 7;
const NAL_TYPE_PPS: u8 = 8;
const STAP_A: u8 = 24;
const STAP_B: u8 = 25;
const MTAP16: u8 = 26;
const MTAP24: u8 = 27;
const FU_A: u8 = 28;
const FU_B: u8 = 29;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;
/// Length prefix written before each NAL unit of an output access unit.
const LENGTH_PREFIX_LEN: usize = 4;
/// STAP-A NAL unit size field (§5.7.1).
const STAP_SIZE_LEN: usize = 2;

/// Rebuilds H.264 access units from RTP payloads, as AVCC samples with
/// 4-byte lengths (see [`DepacketizedUnit::data`]), and keeps the sequence
/// and picture parameter sets seen, for describing the stream in SDP
/// (`super::fmtp(d.sps(), d.pps())`).
#[derive(Debug)]
pub struct H264Depacketizer {
    sequence: SequenceTracker,
    /// Timestamp of the access unit being assembled, if one is.
    timestamp: Option<u32>,
    /// The access unit being assembled, in output form.
    data: BytesMut,
    /// `data` holds a coded slice (nal_unit_type 1–5): a picture.
    picture: bool,
    keyframe: bool,
    /// Data is missing from the unit being assembled, or from one that was
    /// dropped whole before it: carried until a unit is delivered.
    damaged: bool,
    /// The FU-A NAL unit being reassembled at the end of `data`.
    fragment: Option<Fragment>,
    ready: VecDeque<DepacketizedUnit>,
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
}

/// A NAL unit under FU-A reassembly.
#[derive(Debug, Clone, Copy)]
struct Fragment {
    /// Offset in `data` of its length prefix.
    start: usize,
    nal_type: u8,
}

impl H264Depacketizer {
    /// A depacketizer knowing the parameter sets `sps` and `pps` from the
    /// SDP's `sprop-parameter-sets` (RFC 6184 §8.1), possibly empty.
    pub fn new(sps: Vec<Bytes>, pps: Vec<Bytes>) -> Self {
        Self {
            sequence: SequenceTracker::default(),
            timestamp: None,
            data: BytesMut::new(),
            picture: false,
            keyframe: false,
            damaged: false,
            fragment: None,
            ready: VecDeque::new(),
            sps,
            pps,
        }
    }

    /// The sequence parameter sets: the SDP's, until a different one is
    /// seen in-band, which then replaces them.
    pub fn sps(&self) -> &[Bytes] {
        &self.sps
    }

    /// The picture parameter sets, replaced like [`Self::sps`].
    pub fn pps(&self) -> &[Bytes] {
        &self.pps
    }

    /// Takes one packet, in sequence-number order.
    ///
    /// Errors: [`DepayError::OutOfOrder`] for a late or repeated packet
    /// (ignored, nothing damaged); for a malformed payload
    /// [`DepayError::Truncated`] or [`DepayError::Invalid`], for the
    /// interleaved mode's STAP-B, MTAP and FU-B [`DepayError::Unsupported`],
    /// and [`DepayError::TooLarge`] past [`MAX_UNIT_SIZE`]: the packet (and
    /// a fragmented NAL it belonged to) is dropped and the access unit is
    /// flagged damaged. A marker bit still ends the access unit.
    pub fn push(&mut self, packet: ReceivedPacket) -> Result<(), DepayError> {
        if self.sequence.advance(packet.sequence_number)? > 0 {
            self.drop_fragment();
            self.damaged = true;
        }
        if self.timestamp.is_some_and(|ts| ts != packet.timestamp) {
            self.finish();
        }
        self.timestamp = Some(packet.timestamp);
        let result = self.take_payload(&packet.payload);
        if result.is_err() {
            // Whatever the packet held is missing, and it broke any FU-A
            // under way (§5.8: fragments are consecutive).
            self.drop_fragment();
            self.damaged = true;
        }
        if packet.marker {
            self.finish();
        }
        result
    }

    /// The next finished access unit, oldest first.
    pub fn pull(&mut self) -> Option<DepacketizedUnit> {
        self.ready.pop_front()
    }

    fn take_payload(&mut self, payload: &[u8]) -> Result<(), DepayError> {
        let &header = payload
            .first()
            .ok_or(DepayError::Truncated("empty H.264 payload"))?;
        match header & NAL_TYPE_MASK {
            1..=23 => {
                self.drop_fragment();
                self.check_room(LENGTH_PREFIX_LEN + payload.len())?;
                self.append_nal(payload);
                Ok(())
            }
            STAP_A => {
                self.drop_fragment();
                self.take_stap_a(&payload[1..])
            }
            FU_A => self.take_fu_a(payload),
            STAP_B => Err(DepayError::Unsupported("STAP-B")),
            MTAP16 => Err(DepayError::Unsupported("MTAP16")),
            MTAP24 => Err(DepayError::Unsupported("MTAP24")),
            FU_B => Err(DepayError::Unsupported("FU-B")),
            _ => Err(DepayError::Invalid("reserved NAL unit type 0, 30 or 31")),
        }
    }

    /// The NAL units of a STAP-A (§5.7.1), all checked before any is kept
    /// so a bad packet adds nothing.
    fn take_stap_a(&mut self, mut rest: &[u8]) -> Result<(), DepayError> {
        if rest.is_empty() {
            return Err(DepayError::Truncated("STAP-A without NAL units"));
        }
        let mut nals = Vec::new();
        let mut size = 0;
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<STAP_SIZE_LEN>() else {
                return Err(DepayError::Truncated("STAP-A NAL unit size"));
            };
            let len = usize::from(u16::from_be_bytes(*len));
            let Some((nal, tail)) = tail.split_at_checked(len) else {
                return Err(DepayError::Truncated("STAP-A NAL unit"));
            };
            match nal.first().map(|header| header & NAL_TYPE_MASK) {
                None => return Err(DepayError::Invalid("empty NAL unit in STAP-A")),
                Some(1..=23) => {}
                Some(_) => return Err(DepayError::Invalid("STAP-A holds a non-NAL-unit type")),
            }
            size += LENGTH_PREFIX_LEN + nal.len();
            nals.push(nal);
            rest = tail;
        }
        self.check_room(size)?;
        for nal in nals {
            self.append_nal(nal);
        }
        Ok(())
    }

    /// One FU-A (§5.8): starts, extends or completes the NAL unit under
    /// reassembly.
    fn take_fu_a(&mut self, payload: &[u8]) -> Result<(), DepayError> {
        let [indicator, fu_header, body @ ..] = payload else {
            return Err(DepayError::Truncated("FU-A header"));
        };
        let nal_type = fu_header & NAL_TYPE_MASK;
        let (start, end) = (fu_header & FU_START != 0, fu_header & FU_END != 0);
        if body.is_empty() {
            return Err(DepayError::Truncated("FU-A without payload"));
        }
        if start && end {
            return Err(DepayError::Invalid("FU-A with both start and end bits"));
        }
        if !matches!(nal_type, 1..=23) {
            return Err(DepayError::Invalid("FU-A of a non-NAL-unit type"));
        }
        if start {
            self.drop_fragment();
            self.check_room(LENGTH_PREFIX_LEN + 1 + body.len())?;
            self.fragment = Some(Fragment {
                start: self.data.len(),
                nal_type,
            });
            self.data.put_u32(0);
            self.data.put_u8((indicator & NAL_F_NRI_MASK) | nal_type);
            self.data.extend_from_slice(body);
            return Ok(());
        }
        let Some(fragment) = self.fragment else {
            // Its start was lost, or we joined mid-NAL: nothing to add to.
            self.damaged = true;
            return Ok(());
        };
        if fragment.nal_type != nal_type {
            return Err(DepayError::Invalid("FU-A type changed within a NAL unit"));
        }
        self.check_room(body.len())?;
        self.data.extend_from_slice(body);
        if end {
            self.fragment = None;
            let nal_start = fragment.start + LENGTH_PREFIX_LEN;
            let len = (self.data.len() - nal_start) as u32;
            self.data[fragment.start..nal_start].copy_from_slice(&len.to_be_bytes());
            self.note_nal(nal_start);
        }
        Ok(())
    }

    /// Refuses growing the unit by `additional` bytes past
    /// [`MAX_UNIT_SIZE`].
    fn check_room(&self, additional: usize) -> Result<(), DepayError> {
        if self.data.len() + additional > MAX_UNIT_SIZE {
            return Err(DepayError::TooLarge);
        }
        Ok(())
    }

    fn append_nal(&mut self, nal: &[u8]) {
        // Payloads are at most 64 KiB and the unit is capped well below 4 GiB.
        self.data.put_u32(nal.len() as u32);
        let start = self.data.len();
        self.data.extend_from_slice(nal);
        self.note_nal(start);
    }

    /// Records what the complete NAL unit at `data[start..]` says about the
    /// access unit and the stream.
    fn note_nal(&mut self, start: usize) {
        let nal = &self.data[start..];
        let nal_type = nal[0] & NAL_TYPE_MASK;
        self.picture |= nal_type <= NAL_TYPE_IDR;
        match nal_type {
            NAL_TYPE_IDR => self.keyframe = true,
            NAL_TYPE_SPS => remember(&mut self.sps, nal),
            NAL_TYPE_PPS => remember(&mut self.pps, nal),
            _ => {}
        }
    }

    /// Forgets an unfinished FU-A NAL unit, which leaves its access unit
    /// damaged.
    fn drop_fragment(&mut self) {
        if let Some(fragment) = self.fragment.take() {
            self.data.truncate(fragment.start);
            self.damaged = true;
        }
    }

    /// Ends the access unit being assembled, delivering it if it holds a
    /// picture; NAL units without one are kept for the next unit.
    fn finish(&mut self) {
        self.drop_fragment();
        let Some(rtp_timestamp) = self.timestamp.take() else {
            return;
        };
        if !std::mem::take(&mut self.picture) {
            return;
        }
        self.ready.push_back(DepacketizedUnit {
            rtp_timestamp,
            keyframe: std::mem::take(&mut self.keyframe),
            damaged: std::mem::take(&mut self.damaged),
            data: self.data.split().freeze(),
        });
    }
}

/// Makes `set` the only known parameter set of its kind unless it is
/// already known: a sender that changes its SPS or PPS sends the new one
/// in-band, and the SDP's become stale.
fn remember(known: &mut Vec<Bytes>, set: &[u8]) {
    if !known.iter().any(|k| k[..] == *set) {
        *known = vec![Bytes::copy_from_slice(set)];
    }
}

#[cfg(test)]
mod tests;
