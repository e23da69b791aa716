//! JPEG RTP depacketizer (RFC 2435): rebuilds each frame as a whole JPEG
//! image (JFIF, SOI..EOI) from the main header (§3.1), the restart marker
//! header (§3.1.7) and the quantization tables, in-band (§3.1.8) or
//! scaled from the Q factor (Appendix A), with the headers of Appendix B
//! and the standard Huffman tables.
//!
//! A frame is complete when its fragments arrived in order from offset 0
//! up to the marker bit. One with any fragment missing is dropped whole,
//! since its entropy-coded data cannot be decoded past the hole; the next
//! frame delivered is flagged damaged. Types 0, 1, 64 and 65 are
//! handled; interlaced fields and the dynamic types 128–255 (whose layout
//! is agreed out of band) are refused.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};

use super::tables;
use super::{
    DHT, DQT, DRI, EOI, MAIN_HEADER_LEN, QUANT_HEADER_LEN, RESTART_HEADER_LEN, RESTART_TYPE_FLAG,
    SOF0, SOF1, SOI, SOS, TABLE_LEN,
};
use crate::codec::depay::{
    DepacketizedUnit, DepayError, ReceivedPacket, SequenceTracker, MAX_UNIT_SIZE,
};

/// Q values 1–99 scale the standard tables (Appendix A); 128–255 come
/// with tables in-band.
const Q_SCALED_MAX: u8 = 99;
const Q_IN_BAND_MIN: u8 = 128;
/// Tables with this Q may change on every frame: never cached (§3.1.8).
const Q_DYNAMIC_TABLES: u8 = 255;
/// A 16-bit quantization table (precision bit set, §3.1.8).
const WIDE_TABLE_LEN: usize = 2 * TABLE_LEN;

/// Rebuilds JPEG images from RFC 2435 payloads (see
/// [`DepacketizedUnit::data`]).
#[derive(Debug)]
pub struct JpegDepacketizer {
    sequence: SequenceTracker,
    /// The frame whose fragments so far all arrived, if one is being
    /// assembled; without one, fragments other than a first one are
    /// skipped.
    frame: Option<Frame>,
    /// A frame was dropped, or data lost, since the last delivered frame.
    damaged: bool,
    /// In-band tables of Q 128–254, for later frames that send only the
    /// Q (§3.1.8): at most one per Q value.
    cached_tables: Vec<(u8, QuantTables)>,
    ready: VecDeque<DepacketizedUnit>,
}

/// A frame under reassembly.
#[derive(Debug)]
struct Frame {
    timestamp: u32,
    /// Type, Q, width and height from its first packet: each fragment
    /// must repeat them.
    layout: [u8; 4],
    /// The rebuilt headers, then the scan data received so far.
    data: BytesMut,
    /// Length of the rebuilt headers in `data`.
    headers_len: usize,
}

impl Frame {
    /// Scan bytes received so far: the offset the next fragment must have.
    fn received(&self) -> usize {
        self.data.len() - self.headers_len
    }
}

/// Quantization tables as sent: a precision bit per table (§3.1.8) and
/// the tables back to back, zig-zag order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QuantTables {
    precision: u8,
    bytes: Vec<u8>,
}

impl QuantTables {
    /// Each table with its 16-bit flag.
    fn tables(&self) -> impl Iterator<Item = (bool, &[u8])> {
        let mut rest = &self.bytes[..];
        (0..2).map_while(move |i| {
            let wide = self.precision >> i & 1 == 1;
            let len = if wide { WIDE_TABLE_LEN } else { TABLE_LEN };
            let (table, tail) = rest.split_at_checked(len)?;
            rest = tail;
            Some((wide, table))
        })
    }
}

/// The fields of one RFC 2435 packet.
#[derive(Debug)]
struct Packet<'a> {
    offset: usize,
    /// Type, Q, width and height (8-pixel blocks).
    layout: [u8; 4],
    restart_interval: u16,
    /// The quantization table header's tables: `Some` with an empty table
    /// list when it announced none (length 0).
    tables: Option<QuantTables>,
    data: &'a [u8],
}

impl Packet<'_> {
    fn q(&self) -> u8 {
        self.layout[1]
    }
}

/// Parses the headers of an RFC 2435 payload.
fn parse_packet(payload: &[u8]) -> Result<Packet<'_>, DepayError> {
    let (main, rest) = payload
        .split_first_chunk::<MAIN_HEADER_LEN>()
        .ok_or(DepayError::Truncated("JPEG main header"))?;
    let [type_specific, o2, o1, o0, rtp_type, q, width, height] = *main;
    if type_specific != 0 {
        return Err(DepayError::Unsupported(
            "interlaced JPEG (type-specific not 0)",
        ));
    }
    if rtp_type >= 128 {
        return Err(DepayError::Unsupported("dynamic JPEG types 128-255"));
    }
    if rtp_type & !RESTART_TYPE_FLAG > 1 {
        return Err(DepayError::Unsupported(
            "JPEG types other than 0, 1, 64 and 65",
        ));
    }
    if q == 0 || (Q_SCALED_MAX < q && q < Q_IN_BAND_MIN) {
        return Err(DepayError::Invalid("reserved JPEG Q value 0 or 100-127"));
    }
    if width == 0 || height == 0 {
        return Err(DepayError::Invalid("JPEG width or height of 0 blocks"));
    }
    let offset = u32::from_be_bytes([0, o2, o1, o0]) as usize;
    let (restart_interval, rest) = if rtp_type & RESTART_TYPE_FLAG != 0 {
        let (header, rest) = rest
            .split_first_chunk::<RESTART_HEADER_LEN>()
            .ok_or(DepayError::Truncated("JPEG restart marker header"))?;
        (u16::from_be_bytes([header[0], header[1]]), rest)
    } else {
        (0, rest)
    };
    let (tables, data) = if offset == 0 && q >= Q_IN_BAND_MIN {
        let (header, rest) = rest
            .split_first_chunk::<QUANT_HEADER_LEN>()
            .ok_or(DepayError::Truncated("JPEG quantization table header"))?;
        let [_mbz, precision, len_high, len_low] = *header;
        let len = usize::from(u16::from_be_bytes([len_high, len_low]));
        let (bytes, data) = rest
            .split_at_checked(len)
            .ok_or(DepayError::Truncated("JPEG quantization tables"))?;
        let tables = QuantTables {
            precision,
            bytes: bytes.to_vec(),
        };
        let whole: usize = tables.tables().map(|(_, table)| table.len()).sum();
        if whole != len {
            return Err(DepayError::Invalid(
                "JPEG quantization table length is not that of one or two tables",
            ));
        }
        (Some(tables), data)
    } else {
        (None, rest)
    };
    Ok(Packet {
        offset,
        layout: [rtp_type, q, width, height],
        restart_interval,
        tables,
        data,
    })
}

impl Default for JpegDepacketizer {
    fn default() -> Self {
        Self::new()
    }
}

impl JpegDepacketizer {
    /// A depacketizer; RFC 2435 needs no parameters from the SDP.
    pub fn new() -> Self {
        Self {
            sequence: SequenceTracker::default(),
            frame: None,
            damaged: false,
            cached_tables: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    /// Takes one packet, in sequence-number order.
    ///
    /// Errors: [`DepayError::OutOfOrder`] for a late or repeated packet
    /// (ignored); [`DepayError::Truncated`] for headers cut short,
    /// [`DepayError::Invalid`] for reserved values, quantization tables of
    /// a length matching no table layout, tables missing, or a fragment
    /// offset that does not continue the frame, [`DepayError::Unsupported`]
    /// for types other than 0, 1, 64 and 65 or interlaced fields, and
    /// [`DepayError::TooLarge`] past [`MAX_UNIT_SIZE`]: the packet and the
    /// rest of its frame are dropped.
    pub fn push(&mut self, packet: ReceivedPacket) -> Result<(), DepayError> {
        if self.sequence.advance(packet.sequence_number)? > 0 {
            self.damaged = true;
            self.abandon();
        }
        if self
            .frame
            .as_ref()
            .is_some_and(|frame| frame.timestamp != packet.timestamp)
        {
            // Its last packet, with the marker, was lost.
            self.abandon();
        }
        let result = self.take(&packet);
        if result.is_err() {
            self.abandon();
        }
        if packet.marker {
            if let Some(frame) = self.frame.take() {
                self.deliver(frame);
            }
        }
        result
    }

    /// The next finished image, oldest first.
    pub fn pull(&mut self) -> Option<DepacketizedUnit> {
        self.ready.pop_front()
    }

    /// Gives up the frame being built: the rest of its packets are skipped.
    fn abandon(&mut self) {
        if self.frame.take().is_some() {
            self.damaged = true;
        }
    }

    fn take(&mut self, packet: &ReceivedPacket) -> Result<(), DepayError> {
        let fields = parse_packet(&packet.payload)?;
        if fields.offset == 0 {
            self.abandon();
            let tables = self.tables_for(&fields)?;
            let mut data = BytesMut::new();
            write_headers(&mut data, &fields, &tables);
            let headers_len = data.len();
            self.frame = Some(Frame {
                timestamp: packet.timestamp,
                layout: fields.layout,
                data,
                headers_len,
            });
        }
        match &mut self.frame {
            Some(frame) => {
                if frame.layout != fields.layout {
                    return Err(DepayError::Invalid(
                        "JPEG type, Q or size changed within a frame",
                    ));
                }
                if fields.offset != frame.received() {
                    return Err(DepayError::Invalid(
                        "JPEG fragment offset does not continue the frame",
                    ));
                }
                // Room for the EOI that may have to be added.
                if frame.data.len() + fields.data.len() + 2 > MAX_UNIT_SIZE {
                    return Err(DepayError::TooLarge);
                }
                frame.data.extend_from_slice(fields.data);
            }
            // Its first fragment was lost, or we joined mid-frame, or the
            // frame was given up already.
            None => self.damaged = true,
        }
        Ok(())
    }

    /// The quantization tables of a frame's first packet: scaled from Q
    /// 1–99, else in-band, or for Q 128–254 without tables those last
    /// sent with that Q.
    fn tables_for(&mut self, fields: &Packet<'_>) -> Result<QuantTables, DepayError> {
        let q = fields.q();
        match &fields.tables {
            None => {
                let [luma, chroma] = tables::scaled_tables(q);
                Ok(QuantTables {
                    precision: 0,
                    bytes: [luma, chroma].concat(),
                })
            }
            Some(tables) if !tables.bytes.is_empty() => {
                if q != Q_DYNAMIC_TABLES {
                    self.cached_tables.retain(|(cached, _)| *cached != q);
                    self.cached_tables.push((q, tables.clone()));
                }
                Ok(tables.clone())
            }
            Some(_) => self
                .cached_tables
                .iter()
                .find(|(cached, _)| *cached == q)
                .map(|(_, tables)| tables.clone())
                .ok_or(DepayError::Invalid(
                    "JPEG quantization tables neither sent nor known for this Q",
                )),
        }
    }

    /// Queues `frame` as a whole image, ending it with EOI unless its
    /// scan data already does.
    fn deliver(&mut self, mut frame: Frame) {
        if !frame.data.ends_with(&[0xff, EOI]) {
            frame.data.put_slice(&[0xff, EOI]);
        }
        self.ready.push_back(DepacketizedUnit {
            rtp_timestamp: frame.timestamp,
            keyframe: true,
            damaged: std::mem::take(&mut self.damaged),
            data: frame.data.freeze(),
        });
    }
}

/// Writes a marker segment: the marker, its length, then `parts`.
fn put_segment(out: &mut BytesMut, marker: u8, parts: &[&[u8]]) {
    let len: usize = 2 + parts.iter().map(|part| part.len()).sum::<usize>();
    out.put_slice(&[0xff, marker]);
    // At most 2 + 4 * (1 + 178), or 2 + 1 + 128 bytes.
    out.put_u16(len as u16);
    for part in parts {
        out.put_slice(part);
    }
}

/// The JPEG headers RFC 2435 Appendix B rebuilds: SOI, one DQT per table,
/// DRI for types 64–127, a frame header of three components (Y sampled
/// 2x1 for type 0 or 2x2 for type 1, Cb and Cr 1x1), the standard Huffman
/// tables, and the scan header. With one table only, all three components
/// use it.
fn write_headers(out: &mut BytesMut, fields: &Packet<'_>, tables: &QuantTables) {
    let [rtp_type, _, width, height] = fields.layout;
    out.put_slice(&[0xff, SOI]);
    let mut count = 0;
    let mut wide = false;
    for (id, (wide_table, table)) in (0u8..).zip(tables.tables()) {
        put_segment(out, DQT, &[&[(u8::from(wide_table) << 4) + id], table]);
        count += 1;
        wide |= wide_table;
    }
    if rtp_type & RESTART_TYPE_FLAG != 0 {
        put_segment(out, DRI, &[&fields.restart_interval.to_be_bytes()]);
    }
    let luma_sampling = if rtp_type & 1 == 0 { 0x21 } else { 0x22 };
    let chroma_table = if count > 1 { 1 } else { 0 };
    let [h1, h0] = (u16::from(height) * 8).to_be_bytes();
    let [w1, w0] = (u16::from(width) * 8).to_be_bytes();
    // Baseline (SOF0) allows 8-bit tables only (ITU-T T.81 §B.2.4.1).
    let sof = if wide { SOF1 } else { SOF0 };
    put_segment(
        out,
        sof,
        &[&[
            8,
            h1,
            h0,
            w1,
            w0,
            3,
            0,
            luma_sampling,
            0,
            1,
            0x11,
            chroma_table,
            2,
            0x11,
            chroma_table,
        ]],
    );
    put_segment(
        out,
        DHT,
        &[
            &[0x00],
            &tables::LUMA_DC,
            &[0x10],
            &tables::LUMA_AC,
            &[0x01],
            &tables::CHROMA_DC,
            &[0x11],
            &tables::CHROMA_AC,
        ],
    );
    put_segment(out, SOS, &[&[3, 0, 0x00, 1, 0x11, 2, 0x11, 0, 63, 0]]);
}

#[cfg(test)]
mod tests;
