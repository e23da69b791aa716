use bytes::Bytes;

use super::*;
use crate::codec::depay::ReceivedPacket;

/// Distinct recognisable quantization tables (zig-zag order).
pub(super) fn table(first: u8) -> [u8; 64] {
    std::array::from_fn(|i| first.wrapping_add(i as u8))
}

/// Entropy-coded data exercising what the scan may hold: stuffed zeros
/// after 0xFF and restart markers.
pub(super) fn scan(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| match i % 97 {
            10 => 0xff,
            11 => 0x00,
            50 => 0xff,
            51 => RST0 + (i / 97 % 8) as u8,
            _ => (i % 251) as u8,
        })
        .collect()
}

/// A JPEG image laid out as RFC 2435 Appendix B rebuilds it, so that a
/// round trip gives back the same bytes; each field can be changed to
/// make images RFC 2435 cannot carry.
#[derive(Clone)]
pub(super) struct TestJpeg {
    pub sof: u8,
    pub precision: u8,
    pub width: u16,
    pub height: u16,
    /// (id, sampling HV, quantization table) per component.
    pub components: Vec<(u8, u8, u8)>,
    /// DQT segments: (Pq/Tq byte, table bytes).
    pub dqt: Vec<(u8, Vec<u8>)>,
    /// DHT segment bodies; the standard tables in one segment by default.
    pub dht: Vec<Vec<u8>>,
    pub restart_interval: Option<u16>,
    /// (component id, DC/AC tables) in the scan header.
    pub scan_components: Vec<(u8, u8)>,
    pub scan: Vec<u8>,
    /// What follows the scan: EOI by default.
    pub tail: Vec<u8>,
}

pub(super) fn standard_dht() -> Vec<u8> {
    [
        &[0x00][..],
        &tables::LUMA_DC,
        &[0x10],
        &tables::LUMA_AC,
        &[0x01],
        &tables::CHROMA_DC,
        &[0x11],
        &tables::CHROMA_AC,
    ]
    .concat()
}

impl TestJpeg {
    /// 4:2:0 (type 1), 320x240, two tables, the standard Huffman tables.
    pub fn new(scan_len: usize) -> Self {
        Self {
            sof: SOF0,
            precision: 8,
            width: 320,
            height: 240,
            components: vec![(0, 0x22, 0), (1, 0x11, 1), (2, 0x11, 1)],
            dqt: vec![(0, table(1).to_vec()), (1, table(101).to_vec())],
            dht: vec![standard_dht()],
            restart_interval: None,
            scan_components: vec![(0, 0x00), (1, 0x11), (2, 0x11)],
            scan: scan(scan_len),
            tail: vec![0xff, EOI],
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
            out.extend_from_slice(&[0xff, marker]);
            out.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
            out.extend_from_slice(body);
        }
        let mut out = vec![0xff, SOI];
        for (id, values) in &self.dqt {
            segment(&mut out, DQT, &[&[*id][..], values].concat());
        }
        if let Some(interval) = self.restart_interval {
            segment(&mut out, DRI, &interval.to_be_bytes());
        }
        let mut sof = vec![self.precision];
        sof.extend_from_slice(&self.height.to_be_bytes());
        sof.extend_from_slice(&self.width.to_be_bytes());
        sof.push(self.components.len() as u8);
        for &(id, sampling, table) in &self.components {
            sof.extend_from_slice(&[id, sampling, table]);
        }
        segment(&mut out, self.sof, &sof);
        for dht in &self.dht {
            segment(&mut out, DHT, dht);
        }
        let mut sos = vec![self.scan_components.len() as u8];
        for &(id, selectors) in &self.scan_components {
            sos.extend_from_slice(&[id, selectors]);
        }
        sos.extend_from_slice(&[0, 63, 0]);
        segment(&mut out, SOS, &sos);
        out.extend_from_slice(&self.scan);
        out.extend_from_slice(&self.tail);
        out
    }
}

fn packetize(jpeg: &[u8], mtu: usize) -> Result<Vec<Vec<u8>>, CodecError> {
    let mut writer = PayloadWriter::new();
    let result = JpegPacketizer::new(mtu).packetize(jpeg, &mut writer);
    let payloads = writer.finish();
    result.map(|()| {
        payloads
            .iter()
            .map(|p| {
                assert_eq!(p.ts_offset, 0);
                let mut bytes = vec![u8::from(p.marker)];
                bytes.extend_from_slice(&p.bytes);
                bytes
            })
            .collect()
    })
}

/// Payloads of `jpeg` with the marker bit as their first byte.
fn packets(jpeg: &TestJpeg, mtu: usize) -> Vec<Vec<u8>> {
    packetize(&jpeg.bytes(), mtu).expect("carriable image")
}

fn refusal(jpeg: &TestJpeg) -> String {
    let bytes = jpeg.bytes();
    let mut writer = PayloadWriter::new();
    let error = JpegPacketizer::new(1400)
        .packetize(&bytes, &mut writer)
        .expect_err("refused");
    assert!(writer.is_empty(), "a refused image writes nothing");
    assert_eq!(
        check_frame(&bytes)
            .expect_err("refused up front too")
            .to_string(),
        error.to_string()
    );
    error.to_string()
}

#[test]
fn main_and_quantization_table_headers_exact_bytes() {
    let jpeg = TestJpeg::new(300);
    let packets = packets(&jpeg, 1500);
    assert_eq!(packets.len(), 1);
    let mut expected = vec![1];
    // Type-specific 0, offset 0, type 1, Q 255, 320/8 = 40, 240/8 = 30.
    expected.extend_from_slice(&[0, 0, 0, 0, 1, 255, 40, 30]);
    // MBZ, precision 0 (8-bit), length 128, luma then chroma.
    expected.extend_from_slice(&[0, 0, 0, 128]);
    expected.extend_from_slice(&table(1));
    expected.extend_from_slice(&table(101));
    expected.extend_from_slice(&jpeg.scan);
    assert_eq!(packets[0], expected);
    assert_eq!(check_frame(&jpeg.bytes()).expect("carriable"), (320, 240));
}

#[test]
fn type_0_and_restart_marker_header() {
    let mut jpeg = TestJpeg::new(2000);
    jpeg.components[0].1 = 0x21;
    jpeg.restart_interval = Some(0x0123);
    let packets = packets(&jpeg, 600);
    assert!(packets.len() > 2);
    for (i, packet) in packets.iter().enumerate() {
        // Type 0 + 64, then restart interval, F = L = 1, count 0x3FFF.
        assert_eq!(packet[5..9], [64, 255, 40, 30]);
        assert_eq!(packet[9..13], [0x01, 0x23, 0xff, 0xff], "packet {i}");
    }
    assert_eq!(packets[0][13..17], [0, 0, 0, 128]);
    assert_eq!(packets[0][17..81], table(1));
    assert_eq!(packets[1][13..20], jpeg.scan[600 - 12 - 12 - 132..][..7]);

    jpeg.restart_interval = Some(0);
    let packets = self::packets(&jpeg, 600);
    assert_eq!(packets[0][5], 0, "DRI 0: no restart markers");
    assert_eq!(packets[0][9..13], [0, 0, 0, 128]);
}

#[test]
fn fragments_fill_the_mtu_with_contiguous_offsets() {
    let jpeg = TestJpeg::new(5000);
    for mtu in [0, MIN_MTU, 200, 576, 1400, 5152, 5153] {
        let limit = mtu.max(MIN_MTU);
        let packets = packets(&jpeg, mtu);
        let mut scan = Vec::new();
        for (i, packet) in packets.iter().enumerate() {
            let last = i + 1 == packets.len();
            let payload = &packet[1..];
            assert_eq!(packet[0], u8::from(last), "marker on the last only");
            assert!(RTP_HEADER_LEN + payload.len() <= limit, "mtu {mtu}");
            if !last {
                assert_eq!(RTP_HEADER_LEN + payload.len(), limit, "full packets");
            }
            let offset = u32::from_be_bytes([0, payload[1], payload[2], payload[3]]);
            assert_eq!(offset as usize, scan.len(), "mtu {mtu} packet {i}");
            let data_start = if i == 0 { 8 + 4 + 128 } else { 8 };
            scan.extend_from_slice(&payload[data_start..]);
        }
        assert_eq!(scan, jpeg.scan, "mtu {mtu}");
    }
    assert_eq!(packets(&jpeg, 5152).len(), 1, "exactly fills");
    assert_eq!(packets(&jpeg, 5151).len(), 2);
}

#[test]
fn smallest_mtu_fits_the_first_packet_with_one_byte_of_scan() {
    let mut jpeg = TestJpeg::new(2);
    jpeg.restart_interval = Some(1);
    let sizes: Vec<usize> = packets(&jpeg, 0)
        .iter()
        .map(|p| RTP_HEADER_LEN + p.len() - 1)
        .collect();
    // RTP, main, restart and quantization table headers, two tables, one
    // byte; then the second byte behind the first two headers.
    assert_eq!(sizes, [12 + 8 + 4 + 4 + 128 + 1, 12 + 8 + 4 + 1]);
}

#[test]
fn offsets_use_all_24_bits() {
    let jpeg = TestJpeg::new(0x03_0000);
    let packets = packets(&jpeg, 65_000);
    let offsets: Vec<u32> = packets
        .iter()
        .map(|p| u32::from_be_bytes([0, p[2], p[3], p[4]]))
        .collect();
    let room = 65_000 - 12 - 8;
    let first = room - 132;
    assert_eq!(
        offsets,
        [0, first, first + room, first + 2 * room].map(|o| o as u32)
    );
    assert!(offsets[2] > 0xffff, "the offset's high byte is used");
    assert_eq!(packets[0][1], 0, "type-specific");
}

#[test]
fn sizes_are_rounded_up_to_blocks() {
    let mut jpeg = TestJpeg::new(10);
    for (width, height, blocks) in [(321, 9, [41, 2]), (2040, 2040, [255, 255]), (8, 1, [1, 1])] {
        jpeg.width = width;
        jpeg.height = height;
        assert_eq!(packets(&jpeg, 1400)[0][7..9], blocks, "{width}x{height}");
        assert_eq!(
            check_frame(&jpeg.bytes()).expect("carriable"),
            (width, height)
        );
    }
}

#[test]
fn one_table_for_all_components_is_sent_twice() {
    // As ffmpeg's MJPEG encoder writes by default.
    let mut jpeg = TestJpeg::new(10);
    jpeg.dqt = vec![(0, table(7).to_vec())];
    jpeg.components = vec![(1, 0x22, 0), (2, 0x11, 0), (3, 0x11, 0)];
    jpeg.scan_components = vec![(1, 0x00), (2, 0x11), (3, 0x11)];
    let packet = &packets(&jpeg, 1400)[0];
    assert_eq!(packet[13..77], table(7));
    assert_eq!(packet[77..141], table(7));
}

#[test]
fn tables_are_those_in_force_at_the_scan() {
    let mut jpeg = TestJpeg::new(10);
    // Table 1 defined twice: the later one counts; table 3 never used.
    jpeg.dqt.push((1, table(201).to_vec()));
    jpeg.dqt.push((3, table(9).to_vec()));
    let packet = &packets(&jpeg, 1400)[0];
    assert_eq!(packet[13..77], table(1));
    assert_eq!(packet[77..141], table(201));
    // Several tables in one DQT segment.
    jpeg.dqt = vec![(0, [&table(3)[..], &[1], &table(4)].concat())];
    let packet = &packets(&jpeg, 1400)[0];
    assert_eq!((packet[13], packet[77]), (3, 4));
}

#[test]
fn missing_or_split_standard_huffman_tables_are_accepted() {
    let mut jpeg = TestJpeg::new(10);
    jpeg.dht = vec![];
    assert_eq!(packets(&jpeg, 1400).len(), 1, "MJPEG without DHT");
    let standard = standard_dht();
    jpeg.dht = vec![standard[..29].to_vec(), standard[29..].to_vec()];
    assert_eq!(packets(&jpeg, 1400).len(), 1, "one DHT per table");
    // The chrominance tables under number 3, the highest there is.
    let mut numbered_3 = standard.clone();
    numbered_3[208] = 0x03;
    numbered_3[237] = 0x13;
    jpeg.dht = vec![numbered_3];
    jpeg.scan_components[1].1 = 0x33;
    jpeg.scan_components[2].1 = 0x33;
    assert_eq!(packets(&jpeg, 1400).len(), 1, "tables numbered 3");
    // Chroma using the luma tables' numbers swapped in: not standard.
    jpeg.scan_components[1].1 = 0x00;
    assert!(refusal(&jpeg).contains("Annex K.3"));
}

#[test]
fn non_standard_huffman_tables_are_refused() {
    let standard = standard_dht();
    // Where each table (class/number byte, counts, symbols) starts.
    for (at, len) in [(0, 28), (29, 178), (208, 28), (237, 178)] {
        let mut other = standard[at..at + 1 + len].to_vec();
        // Two symbols swapped: a valid table, not the standard one.
        other.swap(17, 18);
        let mut jpeg = TestJpeg::new(10);
        // A later definition replaces the standard one.
        jpeg.dht = vec![standard.clone(), other.clone()];
        let reason = refusal(&jpeg);
        assert!(
            reason.contains("Huffman tables other than the standard"),
            "{at}: {reason}"
        );
        // Under a number no component uses, it does not matter.
        other[0] = other[0] & 0xf0 | 2;
        jpeg.dht = vec![standard.clone(), other];
        assert_eq!(packets(&jpeg, 1400).len(), 1, "{at}");
    }
}

#[test]
fn refusals_name_the_limit() {
    let base = TestJpeg::new(10);
    type Change = Box<dyn Fn(&mut TestJpeg)>;
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|j| j.sof = SOF2), "progressive JPEG (SOF2)"),
        (Box::new(|j| j.sof = 0xc9), "JPEG process SOF9"),
        (Box::new(|j| j.sof = 0xc3), "JPEG process SOF3"),
        (
            Box::new(|j| j.width = 2048),
            "JPEG width 2048 exceeds RFC 2435's 2040-pixel limit",
        ),
        (
            Box::new(|j| j.height = 2041),
            "JPEG height 2041 exceeds RFC 2435's 2040-pixel limit",
        ),
        (Box::new(|j| j.precision = 12), "12-bit samples"),
        (Box::new(|j| j.height = 0), "height 0"),
        (
            Box::new(|j| j.components = vec![(0, 0x11, 0), (1, 0x11, 1), (2, 0x11, 1)]),
            "sampling factors Y 1x1, Cb 1x1, Cr 1x1",
        ),
        (
            // ffmpeg's yuvj422p: 4:2:2 in a 2x2 MCU, not type 0's layout.
            Box::new(|j| j.components = vec![(0, 0x22, 0), (1, 0x12, 1), (2, 0x12, 1)]),
            "sampling factors Y 2x2, Cb 1x2, Cr 1x2",
        ),
        (
            Box::new(|j| j.components = vec![(0, 0x21, 0), (1, 0x11, 1), (2, 0x21, 1)]),
            "Cr 2x1",
        ),
        (
            Box::new(|j| j.components.truncate(1)),
            "1 colour components",
        ),
        (
            Box::new(|j| j.components.push((3, 0x11, 1))),
            "4 colour components",
        ),
        (Box::new(|j| j.dqt[0].0 = 0x10), "16-bit quantization table"),
        (
            Box::new(|j| {
                j.dqt.push((2, table(50).to_vec()));
                j.components[2].2 = 2;
            }),
            "Cb and Cr use different quantization tables",
        ),
        (
            Box::new(|j| j.scan_components.truncate(1)),
            "a scan of 1 components",
        ),
        (
            Box::new(|j| j.scan_components.swap(1, 2)),
            "scan components not in frame order",
        ),
        (
            Box::new(|j| j.tail = vec![0xff, SOS, 0, 2, 0xff, EOI]),
            "marker 0xFFDA after the scan",
        ),
        (
            Box::new(|j| {
                j.tail = [&[0xff, DNL, 0, 4, 0, 8][..], &[0xff, EOI]].concat();
            }),
            "marker 0xFFDC after the scan",
        ),
    ];
    for (change, reason) in cases {
        let mut jpeg = base.clone();
        change(&mut jpeg);
        let error = refusal(&jpeg);
        assert!(error.contains(reason), "{error} lacks {reason}");
        assert!(
            error.starts_with("JPEG image not carried by RFC 2435: "),
            "{error}"
        );
    }
}

#[test]
fn header_segments_rfc_2435_cannot_use_are_refused() {
    let base = TestJpeg::new(10).bytes();
    // After SOI: a DNL, a DAC segment.
    for (marker, reason) in [(DNL, "DNL marker"), (DAC, "arithmetic coding (DAC)")] {
        let jpeg = [&base[..2], &[0xff, marker, 0, 4, 0, 8], &base[2..]].concat();
        let error = check_frame(&jpeg).expect_err("refused").to_string();
        assert!(error.contains(reason), "{error}");
    }
}

#[test]
fn malformed_images_are_errors() {
    let good = TestJpeg::new(10);
    let bytes = good.bytes();
    let sof_at = bytes
        .windows(2)
        .position(|w| w == [0xff, SOF0])
        .expect("SOF0");
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "no SOI"),
        (bytes[1..].to_vec(), "no SOI"),
        (bytes[..2].to_vec(), "image ends before its scan"),
        (bytes[..3].to_vec(), "image ends before its scan"),
        (
            [&bytes[..2], &[0xff, 0xff]].concat(),
            "image ends before its scan",
        ),
        (
            [&bytes[..2], &[0xff, DQT, 0]].concat(),
            "truncated marker segment length",
        ),
        ([&bytes[..2], &[0xff, DQT, 0, 1]].concat(), "overruns"),
        ([&bytes[..2], &[0xff, DQT, 0, 9, 0]].concat(), "overruns"),
        ([&bytes[..2], &[0x12]].concat(), "not followed by a marker"),
        ([&bytes[..2], &[0xff, 0]].concat(), "stuffed zero"),
        ([&bytes[..2], &[0xff, SOI]].concat(), "before the scan"),
        ([&bytes[..2], &[0xff, EOI]].concat(), "before the scan"),
        ([&bytes[..2], &[0xff, RST7]].concat(), "before the scan"),
        ([&bytes[..2], &[0xff, TEM]].concat(), "before the scan"),
        ([&bytes[..2], &[0xff, DRI, 0, 3, 1]].concat(), "DRI segment"),
        (
            [&bytes[..2], &[0xff, DQT, 0, 4, 0, 1]].concat(),
            "truncated quantization table",
        ),
        (
            [&bytes[..2], &[0xff, DQT, 0, 3, 0x04]].concat(),
            "number above 3",
        ),
        (
            [&bytes[..2], &[0xff, DQT, 0, 3, 0x20]].concat(),
            "precision above 1",
        ),
        (
            [&bytes[..2], &[0xff, DHT, 0, 3, 0x20]].concat(),
            "class above 1",
        ),
        (
            [&bytes[..2], &[0xff, DHT, 0, 3, 0x04]].concat(),
            "number above 3",
        ),
        (
            [&bytes[..2], &[0xff, DHT, 0, 4, 0x00, 1]].concat(),
            "truncated Huffman",
        ),
        (
            [&bytes[..2], &[0xff, DHT, 0, 19, 0x00, 0, 2], &[0; 14]].concat(),
            "truncated Huffman",
        ),
        (bytes[..bytes.len() - 2].to_vec(), "no EOI"),
        ([&bytes[..bytes.len() - 2], &[0xff]].concat(), "no EOI"),
        (
            [
                &bytes[..sof_at],
                &[0xff, SOS, 0, 12, 3, 0, 0, 1, 0x11, 2, 0x11, 0, 63, 0],
            ]
            .concat(),
            "SOS before the frame header",
        ),
    ];
    let mut jpeg = good.clone();
    jpeg.scan.clear();
    cases.push((jpeg.bytes(), "empty scan"));
    let mut jpeg = good.clone();
    jpeg.width = 0;
    cases.push((jpeg.bytes(), "width 0"));
    let mut jpeg = good.clone();
    jpeg.components[1].2 = 3;
    cases.push((jpeg.bytes(), "undefined quantization table"));
    let mut jpeg = good.clone();
    jpeg.components[0].2 = 9;
    cases.push((jpeg.bytes(), "undefined quantization table"));
    let mut jpeg = good.clone();
    jpeg.scan_components[0].1 = 0x04;
    cases.push((jpeg.bytes(), "Huffman table number above 3"));
    let mut jpeg = good.clone();
    jpeg.scan_components[2].1 = 0x41;
    cases.push((jpeg.bytes(), "Huffman table number above 3"));
    let mut with_count = good.bytes();
    with_count[sof_at + 9] = 2;
    cases.push((with_count, "disagrees with its component count"));
    let mut with_count = good.bytes();
    let sos_at = with_count
        .windows(2)
        .position(|w| w == [0xff, SOS])
        .expect("SOS");
    with_count[sos_at + 4] = 2;
    cases.push((with_count.clone(), "disagrees with its component count"));
    with_count[sos_at + 4] = 3;
    with_count[sos_at + 12] = 62;
    cases.push((with_count.clone(), "spectral selection"));
    with_count[sos_at + 12] = 63;
    with_count[sos_at + 13] = 1;
    cases.push((with_count, "spectral selection"));
    cases.push((
        [&bytes[..sof_at], &[0xff, SOF0, 0, 7, 8, 0, 8, 0, 8]].concat(),
        "truncated frame header",
    ));
    cases.push((
        [&bytes[..sos_at], &[0xff, SOS, 0, 5, 3, 0, 63]].concat(),
        "truncated scan header",
    ));
    for (jpeg, reason) in cases {
        let error = check_frame(&jpeg).expect_err(reason);
        assert!(
            matches!(error, CodecError::MalformedJpeg(_)),
            "{reason}: {error}"
        );
        assert!(error.to_string().contains(reason), "{error} lacks {reason}");
    }
}

#[test]
fn scan_ends_at_eoi_after_fill_bytes_and_keeps_markers_within() {
    let mut jpeg = TestJpeg::new(500);
    jpeg.tail = vec![0xff, 0xff, 0xff, EOI, 0x12, 0x34];
    let packet = &packets(&jpeg, 1400)[0];
    assert_eq!(
        packet[141..],
        jpeg.scan,
        "fill bytes and trailing junk dropped"
    );
    assert!(jpeg.scan.windows(2).any(|w| w == [0xff, 0]));
    assert!(jpeg.scan.windows(2).any(|w| w == [0xff, RST0 + 1]));
}

#[test]
fn app_and_comment_segments_are_skipped() {
    let bytes = TestJpeg::new(10).bytes();
    let app0 = [0xff, 0xe0, 0, 6, b'J', b'F', b'I', b'F'];
    let com = [0xff, 0xfe, 0, 4, 0xff, 0xd9];
    let jpeg = [&bytes[..2], &app0, &com, &bytes[2..]].concat();
    assert_eq!(
        packetize(&jpeg, 1400).expect("carriable"),
        packetize(&bytes, 1400).expect("carriable")
    );
}

#[test]
fn scan_longer_than_the_fragment_offset_is_refused() {
    let mut jpeg = TestJpeg::new(0);
    jpeg.scan = vec![0x55; MAX_SCAN_LEN];
    assert_eq!(check_frame(&jpeg.bytes()).expect("fits"), (320, 240));
    jpeg.scan.push(0x55);
    let error = refusal(&jpeg);
    assert!(
        error.contains("16777217 bytes of scan data exceed RFC 2435's 24-bit"),
        "{error}"
    );
}

#[test]
fn dispatch_and_rtpmap() {
    let codec = crate::media::CodecParams::Jpeg {
        width: 320,
        height: 240,
    };
    assert_eq!(crate::codec::rtpmap(&codec), "JPEG/90000");
    assert_eq!(crate::codec::fmtp(&codec), "");
    assert_eq!(codec.clock_rate(), 90_000);
    assert!(codec.is_video());
    let mut packetizer = crate::codec::Packetizer::new(&codec, 300);
    let jpeg = TestJpeg::new(1000);
    let au = crate::media::AccessUnit {
        track: 0,
        dts: 0,
        pts: 0,
        duration: 3000,
        keyframe: true,
        data: Bytes::from(jpeg.bytes()),
    };
    let mut writer = PayloadWriter::new();
    let payloads = packetizer.packetize(&au, &mut writer).expect("carriable");
    assert_eq!(payloads.len(), 1000usize.div_ceil(300 - 20) + 1);
    let bad = crate::media::AccessUnit {
        data: Bytes::from_static(&[0xff, 0xd8, 0xff]),
        ..au
    };
    assert!(packetizer.packetize(&bad, &mut writer).is_err());
    assert!(writer.is_empty());
}

/// Packetizes `jpeg` and depacketizes the packets again.
fn round_trip(jpeg: &[u8], mtu: usize) -> Vec<u8> {
    let mut writer = PayloadWriter::new();
    JpegPacketizer::new(mtu)
        .packetize(jpeg, &mut writer)
        .expect("carriable");
    let mut depacketizer = depay::JpegDepacketizer::new();
    for (seq, payload) in writer.finish().iter().enumerate() {
        depacketizer
            .push(ReceivedPacket {
                sequence_number: seq as u16,
                timestamp: 3000,
                marker: payload.marker,
                payload: payload.bytes,
            })
            .expect("valid packet");
    }
    let unit = depacketizer.pull().expect("one image");
    assert!(depacketizer.pull().is_none());
    assert!(unit.keyframe && !unit.damaged);
    assert_eq!(unit.rtp_timestamp, 3000);
    unit.data.to_vec()
}

#[test]
fn round_trip_gives_back_appendix_b_layout_images() {
    let mut jpeg = TestJpeg::new(20_000);
    for mtu in [MIN_MTU, 300, 1400] {
        assert_eq!(round_trip(&jpeg.bytes(), mtu), jpeg.bytes(), "mtu {mtu}");
    }
    jpeg.components[0].1 = 0x21;
    jpeg.restart_interval = Some(20);
    jpeg.width = 2040;
    jpeg.height = 16;
    assert_eq!(round_trip(&jpeg.bytes(), 500), jpeg.bytes());
}

#[test]
fn round_trip_of_other_layouts_keeps_size_tables_and_scan() {
    let mut jpeg = TestJpeg::new(3000);
    jpeg.dqt = vec![(0, table(7).to_vec())];
    jpeg.components = vec![(1, 0x22, 0), (2, 0x11, 0), (3, 0x11, 0)];
    jpeg.scan_components = vec![(1, 0x00), (2, 0x11), (3, 0x11)];
    jpeg.dht.clear();
    let rebuilt = round_trip(&jpeg.bytes(), 700);
    let mut expected = TestJpeg::new(3000);
    expected.dqt = vec![(0, table(7).to_vec()), (1, table(7).to_vec())];
    assert_eq!(rebuilt, expected.bytes());
}
