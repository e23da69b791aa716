//! The output of every packetizer: the RTP payloads of one access unit
//! (RFC 3550 §5.1), cut once into one shared buffer. Nothing here knows a
//! viewer: SSRC, sequence numbers and the timestamp base are written by
//! each viewer's sender in a 12-byte header of its own, in front of these
//! same bytes, so one cut serves every viewer of a stream.

use bytes::{Bytes, BytesMut};

/// Where one payload sits in the unit's buffer, and what its header says
/// beyond the viewer's own fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    len: usize,
    marker: bool,
    ts_offset: u32,
}

/// One RTP payload of an access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The payload bytes (a view into the unit's shared buffer).
    pub bytes: Bytes,
    /// The RTP marker bit (RFC 3550 §5.1; its meaning is the payload
    /// format's, e.g. last packet of a picture in RFC 6184 §5.1).
    pub marker: bool,
    /// Added to the access unit's RTP timestamp for this packet, in the
    /// track's clock ticks: 0 except where a format packs later frames in
    /// later packets (several AAC frames, RFC 3640 §3.2.1).
    pub ts_offset: u32,
}

/// The RTP payloads of one access unit, in sending order. Cloning shares
/// the bytes (a reference count), never copies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payloads {
    data: Bytes,
    spans: Vec<Span>,
}

impl Payloads {
    /// Number of payloads, i.e. of RTP packets the unit becomes.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when the unit produced no payload.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Payload bytes in all, without RTP headers.
    pub fn total_bytes(&self) -> usize {
        self.data.len()
    }

    /// The payloads in sending order; each shares the unit's buffer.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Payload> + '_ {
        self.spans.iter().map(|span| Payload {
            bytes: self.data.slice(span.start..span.start + span.len),
            marker: span.marker,
            ts_offset: span.ts_offset,
        })
    }
}

/// Collects the payloads a packetizer cuts from one access unit. The
/// buffer is reused from unit to unit; [`finish`](Self::finish) hands the
/// bytes out as shared [`Payloads`] without copying them again.
#[derive(Debug, Default)]
pub struct PayloadWriter {
    buf: BytesMut,
    spans: Vec<Span>,
}

impl PayloadWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one payload made of `parts` concatenated, with its marker
    /// bit and timestamp offset (see [`Payload`]).
    pub fn push(&mut self, marker: bool, ts_offset: u32, parts: &[&[u8]]) {
        self.push_with(marker, ts_offset, |buf| {
            for part in parts {
                buf.extend_from_slice(part);
            }
        });
    }

    /// Appends one payload that `write` builds from the bytes it appends
    /// (for payloads of many parts, such as several AAC frames).
    pub fn push_with(&mut self, marker: bool, ts_offset: u32, write: impl FnOnce(&mut BytesMut)) {
        let start = self.buf.len();
        write(&mut self.buf);
        self.spans.push(Span {
            start,
            len: self.buf.len() - start,
            marker,
            ts_offset,
        });
    }

    /// Number of payloads written since the last finish.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when nothing was written since the last finish.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Drops what was written since the last finish (a unit that failed
    /// half way must not leak into the next).
    pub fn discard(&mut self) {
        self.buf.clear();
        self.spans.clear();
    }

    /// The payloads written since the last finish; the writer is empty
    /// again afterwards.
    pub fn finish(&mut self) -> Payloads {
        Payloads {
            data: self.buf.split().freeze(),
            spans: std::mem::take(&mut self.spans),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_keep_order_markers_offsets_and_bytes() {
        let mut writer = PayloadWriter::new();
        writer.push(false, 0, &[b"ab", b"c"]);
        writer.push(true, 1024, &[b"d"]);
        assert_eq!(writer.len(), 2);
        let payloads = writer.finish();
        assert!(writer.is_empty());
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads.total_bytes(), 4);
        let got: Vec<Payload> = payloads.iter().collect();
        assert_eq!(&got[0].bytes[..], b"abc");
        assert!(!got[0].marker);
        assert_eq!(got[0].ts_offset, 0);
        assert_eq!(&got[1].bytes[..], b"d");
        assert!(got[1].marker);
        assert_eq!(got[1].ts_offset, 1024);
    }

    #[test]
    fn finished_units_do_not_see_later_writes() {
        let mut writer = PayloadWriter::new();
        writer.push(true, 0, &[b"first"]);
        let first = writer.finish();
        writer.push(true, 0, &[b"second"]);
        writer.discard();
        writer.push(true, 0, &[b"third"]);
        let third = writer.finish();
        assert_eq!(&first.iter().next().unwrap().bytes[..], b"first");
        assert_eq!(third.len(), 1);
        assert_eq!(&third.iter().next().unwrap().bytes[..], b"third");
    }

    #[test]
    fn emptiness_counts_payloads_not_bytes() {
        let mut writer = PayloadWriter::new();
        assert!(writer.is_empty());
        assert!(writer.finish().is_empty(), "a unit that made no payload");
        writer.push(true, 0, &[]);
        assert!(!writer.is_empty(), "an empty payload is still a packet");
        let payloads = writer.finish();
        assert!(!payloads.is_empty());
        assert_eq!((payloads.len(), payloads.total_bytes()), (1, 0));
        assert!(writer.is_empty(), "finish empties the writer");
    }

    #[test]
    fn clones_share_the_buffer() {
        let mut writer = PayloadWriter::new();
        writer.push(true, 0, &[&[7; 100]]);
        let payloads = writer.finish();
        let copy = payloads.clone();
        let a = payloads.iter().next().unwrap().bytes;
        let b = copy.iter().next().unwrap().bytes;
        assert_eq!(a.as_ptr(), b.as_ptr());
    }
}
