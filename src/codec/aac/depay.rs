//! AAC RTP depacketizer (RFC 3640, mpeg4-generic): AU-headers (§3.2.1),
//! several access units per packet (§3.2.2) and one access unit fragmented
//! over several packets (§3.2.3), with the AU-header layout of AAC-hbr
//! (§3.3.6), AAC-lbr (§3.3.5) or any other given by the SDP `fmtp`
//! (§4.1). Interleaving (non-zero AU-index-delta) is refused.

use std::cmp::Ordering;
use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::codec::depay::{
    DepacketizedUnit, DepayError, ReceivedPacket, SequenceTracker, MAX_UNIT_SIZE,
};

/// Samples per AAC frame unless the config or fmtp says otherwise.
const DEFAULT_FRAME_LENGTH: u32 = 1024;
/// AU-headers-length field (§3.2.1).
const HEADERS_LENGTH_LEN: usize = 2;
/// Widest header field this reader takes, in bits.
const MAX_FIELD_BITS: u32 = 32;

/// How the AU-header section of each packet is laid out (RFC 3640 §3.2.1,
/// §4.1), and how many RTP clock ticks one access unit lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacPayloadParams {
    size_length: u32,
    index_length: u32,
    index_delta_length: u32,
    cts_delta_length: u32,
    dts_delta_length: u32,
    random_access_indication: bool,
    stream_state_indication: u32,
    auxiliary_data_size_length: u32,
    frame_length: u32,
}

impl AacPayloadParams {
    /// AAC-hbr (§3.3.6: sizeLength=13, indexLength=3, indexDeltaLength=3),
    /// as rtpcast's own packetizer sends it, with the frame length read
    /// from the AudioSpecificConfig `config`.
    pub fn hbr(config: &[u8]) -> Self {
        Self::with_lengths(13, 3, 3, frame_length(config))
    }

    fn with_lengths(size: u32, index: u32, index_delta: u32, frame_length: u32) -> Self {
        Self {
            size_length: size,
            index_length: index,
            index_delta_length: index_delta,
            cts_delta_length: 0,
            dts_delta_length: 0,
            random_access_indication: false,
            stream_state_indication: 0,
            auxiliary_data_size_length: 0,
            frame_length,
        }
    }

    /// The layout given by an SDP `a=fmtp` value (without payload type),
    /// parameter names compared case-insensitively (§4.1). `sizeLength`
    /// and the index lengths default to those of `mode` (AAC-hbr or
    /// AAC-lbr) when absent. The frame length is `constantDuration` if
    /// given, else read from the fmtp's `config` or, without one, from
    /// `config` (the AudioSpecificConfig known otherwise), else 1024.
    ///
    /// Errors with [`DepayError::Fmtp`] for a value that is not a number,
    /// a field wider than 32 bits, or no `sizeLength` (AU sizes are needed
    /// to find the access units).
    pub fn from_fmtp(fmtp: &str, config: &[u8]) -> Result<Self, DepayError> {
        let mut lengths = [None; 8];
        let mut mode_defaults = None;
        let mut fmtp_config = None;
        let mut constant_duration = None;
        const NAMES: [&str; 8] = [
            "sizelength",
            "indexlength",
            "indexdeltalength",
            "ctsdeltalength",
            "dtsdeltalength",
            "randomaccessindication",
            "streamstateindication",
            "auxiliarydatasizelength",
        ];
        for parameter in fmtp.split(';') {
            let Some((name, value)) = parameter.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            let number = || -> Result<u32, DepayError> {
                value
                    .parse()
                    .map_err(|_| DepayError::Fmtp(format!("{name}={value} is not a number")))
            };
            if let Some(i) = NAMES.iter().position(|&n| n == name) {
                let bits = number()?;
                if bits > MAX_FIELD_BITS {
                    return Err(DepayError::Fmtp(format!("{name}={bits} is too wide")));
                }
                lengths[i] = Some(bits);
                continue;
            }
            match name.as_str() {
                "mode" if value.eq_ignore_ascii_case("aac-hbr") => mode_defaults = Some((13, 3)),
                "mode" if value.eq_ignore_ascii_case("aac-lbr") => mode_defaults = Some((6, 2)),
                "config" => fmtp_config = Some(hex_decode(value)?),
                "constantduration" => constant_duration = Some(number()?).filter(|&d| d > 0),
                _ => {}
            }
        }
        let [size, index, index_delta, cts, dts, rai, stream_state, aux] = lengths;
        let size = size
            .or(mode_defaults.map(|(size, _)| size))
            .filter(|&size| size > 0)
            .ok_or_else(|| DepayError::Fmtp("no sizeLength".into()))?;
        let index_default = mode_defaults.map_or(0, |(_, index)| index);
        let frame_length = constant_duration
            .unwrap_or_else(|| frame_length(fmtp_config.as_deref().unwrap_or(config)));
        Ok(Self {
            cts_delta_length: cts.unwrap_or(0),
            dts_delta_length: dts.unwrap_or(0),
            random_access_indication: rai.unwrap_or(0) != 0,
            stream_state_indication: stream_state.unwrap_or(0),
            auxiliary_data_size_length: aux.unwrap_or(0),
            ..Self::with_lengths(
                size,
                index.unwrap_or(index_default),
                index_delta.unwrap_or(index_default),
                frame_length,
            )
        })
    }
}

/// Samples per frame from an AudioSpecificConfig (ISO/IEC 14496-3
/// §1.6.2.1, §4.4.1 GASpecificConfig frameLengthFlag): 1024 or 960 for
/// AAC, 512 or 480 for AAC-LD and AAC-ELD, doubled by explicit SBR/PS signalling (the
/// RTP clock then runs at the SBR output rate); 1024 when unreadable.
fn frame_length(config: &[u8]) -> u32 {
    let mut r = BitReader::new(config);
    let read_object_type = |r: &mut BitReader<'_>| match r.read(5)? {
        31 => Some(32 + r.read(6)?),
        object_type => Some(object_type),
    };
    let skip_rate = |r: &mut BitReader<'_>| match r.read(4)? {
        0xf => r.read(24),
        index => Some(index),
    };
    let parsed = (|| {
        let mut object_type = read_object_type(&mut r)?;
        skip_rate(&mut r)?;
        r.read(4)?; // channelConfiguration
        let mut factor = 1;
        if object_type == 5 || object_type == 29 {
            skip_rate(&mut r)?;
            object_type = read_object_type(&mut r)?;
            factor = 2;
        }
        let short = r.read(1)? == 1;
        let frame = match object_type {
            23 | 39 if short => 480,
            23 | 39 => 512,
            1..=4 | 6 | 7 | 17 | 19..=22 if short => 960,
            _ => DEFAULT_FRAME_LENGTH,
        };
        Some(frame * factor)
    })();
    parsed.unwrap_or(DEFAULT_FRAME_LENGTH)
}

/// The bytes of an fmtp `config` value (RFC 3640 §4.1: hexadecimal, two
/// digits a byte, either case).
pub(crate) fn hex_decode(hex: &str) -> Result<Vec<u8>, DepayError> {
    let invalid = || DepayError::Fmtp(format!("config={hex} is not hexadecimal"));
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return Err(invalid());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| invalid()))
        .collect()
}

/// Rebuilds raw AAC access units from RTP payloads (RFC 3640).
#[derive(Debug)]
pub struct AacDepacketizer {
    params: AacPayloadParams,
    sequence: SequenceTracker,
    fragment: Option<Fragment>,
    /// Since the start or a sequence gap, until the next marked packet: a
    /// fragment then may be the tail of an AU whose head never came, and
    /// is dropped quietly instead of reported as truncated.
    resyncing: bool,
    ready: VecDeque<DepacketizedUnit>,
}

/// An access unit under reassembly from fragments (§3.2.3).
#[derive(Debug)]
struct Fragment {
    timestamp: u32,
    size: usize,
    data: BytesMut,
}

impl AacDepacketizer {
    /// A depacketizer for packets laid out as `params` says.
    pub fn new(params: AacPayloadParams) -> Self {
        Self {
            params,
            sequence: SequenceTracker::default(),
            fragment: None,
            resyncing: true,
            ready: VecDeque::new(),
        }
    }

    /// Takes one packet, in sequence-number order. The n-th access unit of
    /// a packet (from 0) is stamped with the packet's timestamp plus n
    /// frame lengths (§3.2.1). Units are delivered whole, never damaged: a
    /// lost fragment drops its access unit.
    ///
    /// Errors: [`DepayError::OutOfOrder`] for a late or repeated packet;
    /// [`DepayError::Truncated`] or [`DepayError::Invalid`] when headers
    /// and data disagree, [`DepayError::Unsupported`] for interleaving and
    /// [`DepayError::TooLarge`] for a fragmented AU above
    /// [`MAX_UNIT_SIZE`]: the packet is dropped, with any AU it continued.
    pub fn push(&mut self, packet: ReceivedPacket) -> Result<(), DepayError> {
        if self.sequence.advance(packet.sequence_number)? > 0 {
            self.fragment = None;
            self.resyncing = true;
        }
        let result = self.take_payload(&packet);
        if result.is_err() {
            self.fragment = None;
        }
        if packet.marker {
            self.resyncing = false;
        }
        result
    }

    /// The next finished access unit, oldest first.
    pub fn pull(&mut self) -> Option<DepacketizedUnit> {
        self.ready.pop_front()
    }

    fn take_payload(&mut self, packet: &ReceivedPacket) -> Result<(), DepayError> {
        let payload = &packet.payload;
        let (sizes, data_start) = self.au_sizes(payload)?;
        let data_len = payload.len() - data_start;
        let continues = match (&self.fragment, &sizes[..]) {
            (Some(f), &[size]) => f.timestamp == packet.timestamp && f.size == size,
            _ => false,
        };
        if continues {
            return self.continue_fragment(packet, data_start);
        }
        self.fragment = None;
        if let &[size] = &sizes[..] {
            if size > data_len {
                if packet.marker {
                    return self.short_last_fragment();
                }
                if size > MAX_UNIT_SIZE {
                    return Err(DepayError::TooLarge);
                }
                // Grown as fragments arrive, not reserved from AU-size: a
                // small packet must not make us allocate up to the cap.
                self.fragment = Some(Fragment {
                    timestamp: packet.timestamp,
                    size,
                    data: BytesMut::from(&payload[data_start..]),
                });
                return Ok(());
            }
        }
        let total = sizes
            .iter()
            .try_fold(0usize, |sum, &size| sum.checked_add(size));
        match total.map(|total| total.cmp(&data_len)) {
            Some(Ordering::Equal) => {}
            Some(Ordering::Less) => {
                return Err(DepayError::Invalid("AU data longer than AU-sizes"))
            }
            // A sum past usize::MAX is more than any payload holds too.
            Some(Ordering::Greater) | None => {
                return Err(DepayError::Truncated("AU data shorter than AU-sizes"))
            }
        }
        let mut start = data_start;
        let mut timestamp = packet.timestamp;
        for size in sizes {
            self.ready.push_back(DepacketizedUnit {
                rtp_timestamp: timestamp,
                keyframe: true,
                damaged: false,
                data: payload.slice(start..start + size),
            });
            start += size;
            timestamp = timestamp.wrapping_add(self.params.frame_length);
        }
        Ok(())
    }

    fn continue_fragment(
        &mut self,
        packet: &ReceivedPacket,
        data_start: usize,
    ) -> Result<(), DepayError> {
        let Some(fragment) = &mut self.fragment else {
            return Ok(());
        };
        let piece = &packet.payload[data_start..];
        if fragment.data.len() + piece.len() > fragment.size {
            return Err(DepayError::Invalid("fragments exceed AU-size"));
        }
        fragment.data.extend_from_slice(piece);
        let complete = fragment.data.len() == fragment.size;
        if complete && !packet.marker {
            return Err(DepayError::Invalid(
                "AU complete before the marked fragment",
            ));
        }
        if packet.marker && !complete {
            self.fragment = None;
            return self.short_last_fragment();
        }
        if complete {
            let data = std::mem::take(&mut fragment.data).freeze();
            self.ready.push_back(DepacketizedUnit {
                rtp_timestamp: fragment.timestamp,
                keyframe: true,
                damaged: false,
                data,
            });
            self.fragment = None;
        }
        Ok(())
    }

    /// The verdict on a marked fragment that does not complete its AU: the
    /// end of one whose head was lost while resyncing, else an error.
    fn short_last_fragment(&self) -> Result<(), DepayError> {
        if self.resyncing {
            return Ok(());
        }
        Err(DepayError::Truncated("last fragment ends short of AU-size"))
    }

    /// The AU-sizes of the AU-header section (§3.2.1) and where the AU data
    /// starts, after any auxiliary section (§3.2.1.2).
    fn au_sizes(&self, payload: &Bytes) -> Result<(Vec<usize>, usize), DepayError> {
        let p = &self.params;
        let Some((&header_bits, rest)) = payload.split_first_chunk::<HEADERS_LENGTH_LEN>() else {
            return Err(DepayError::Truncated("AU-headers-length"));
        };
        let header_bits = u32::from(u16::from_be_bytes(header_bits));
        let header_bytes = header_bits.div_ceil(8) as usize;
        let headers = rest
            .get(..header_bytes)
            .ok_or(DepayError::Truncated("AU-header section"))?;
        let mut r = BitReader::new(headers);
        let truncated = || DepayError::Truncated("AU-header");
        let mut sizes = Vec::new();
        while r.pos < header_bits as usize {
            let size = r.read(p.size_length).ok_or_else(truncated)?;
            let first = sizes.is_empty();
            let index_length = if first {
                p.index_length
            } else {
                p.index_delta_length
            };
            let index = r.read(index_length).ok_or_else(truncated)?;
            if !first && index != 0 {
                return Err(DepayError::Unsupported("interleaved AAC access units"));
            }
            if !first && p.cts_delta_length > 0 && r.read(1).ok_or_else(truncated)? == 1 {
                r.read(p.cts_delta_length).ok_or_else(truncated)?;
            }
            if p.dts_delta_length > 0 && r.read(1).ok_or_else(truncated)? == 1 {
                r.read(p.dts_delta_length).ok_or_else(truncated)?;
            }
            r.read(u32::from(p.random_access_indication))
                .ok_or_else(truncated)?;
            r.read(p.stream_state_indication).ok_or_else(truncated)?;
            sizes.push(size as usize);
        }
        if r.pos > header_bits as usize {
            return Err(truncated());
        }
        if sizes.is_empty() {
            return Err(DepayError::Invalid("no AU-header"));
        }
        // The auxiliary section (absent when its size field has 0 bits).
        let aux_start = HEADERS_LENGTH_LEN + header_bytes;
        let aux = &payload[aux_start..];
        let aux_bits = BitReader::new(aux)
            .read(p.auxiliary_data_size_length)
            .ok_or(DepayError::Truncated("auxiliary data size"))?;
        let aux_bytes =
            (u64::from(p.auxiliary_data_size_length) + u64::from(aux_bits)).div_ceil(8) as usize;
        if aux_bytes > aux.len() {
            return Err(DepayError::Truncated("auxiliary data"));
        }
        Ok((sizes, aux_start + aux_bytes))
    }
}

/// MSB-first bit reader over AU-headers; `None` when the data runs out.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// The next `bits` (at most 32) bits.
    fn read(&mut self, bits: u32) -> Option<u32> {
        let mut value = 0u64;
        for _ in 0..bits {
            let byte = self.data.get(self.pos / 8)?;
            value = value * 2 + u64::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        u32::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests;
