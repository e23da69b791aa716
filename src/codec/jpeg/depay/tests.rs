use bytes::Bytes;

use super::*;
use crate::codec::jpeg::tests::{scan, table, TestJpeg};

/// An RFC 2435 payload: main header, optional restart marker header,
/// optional quantization table header with `tables`, then `data`.
fn payload(
    offset: u32,
    layout: [u8; 4],
    restart: Option<[u8; 4]>,
    tables: Option<(u8, &[u8])>,
    data: &[u8],
) -> Bytes {
    let [_, o2, o1, o0] = offset.to_be_bytes();
    let mut out = vec![0, o2, o1, o0];
    out.extend_from_slice(&layout);
    if let Some(header) = restart {
        out.extend_from_slice(&header);
    }
    if let Some((precision, tables)) = tables {
        out.extend_from_slice(&[0, precision]);
        out.extend_from_slice(&(tables.len() as u16).to_be_bytes());
        out.extend_from_slice(tables);
    }
    out.extend_from_slice(data);
    Bytes::from(out)
}

fn packet(seq: u16, timestamp: u32, marker: bool, payload: Bytes) -> ReceivedPacket {
    ReceivedPacket {
        sequence_number: seq,
        timestamp,
        marker,
        payload,
    }
}

/// Type 1, Q 255, 320x240.
const LAYOUT: [u8; 4] = [1, 255, 40, 30];

fn two_tables() -> Vec<u8> {
    [table(1), table(101)].concat()
}

/// The packets of one frame of `data` cut in `pieces` fragments, with
/// in-band tables, sequence numbers from `seq`.
fn frame(seq: u16, timestamp: u32, data: &[u8], pieces: usize) -> Vec<ReceivedPacket> {
    let tables = two_tables();
    let chunk = data.len().div_ceil(pieces);
    data.chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let offset = (i * chunk) as u32;
            let in_band = (i == 0).then_some((0, &tables[..]));
            let last = (i + 1) * chunk >= data.len();
            packet(
                seq.wrapping_add(i as u16),
                timestamp,
                last,
                payload(offset, LAYOUT, None, in_band, part),
            )
        })
        .collect()
}

fn push_all(d: &mut JpegDepacketizer, packets: Vec<ReceivedPacket>) {
    for p in packets {
        d.push(p).expect("valid packet");
    }
}

/// The image [`TestJpeg::new`] describes with `data` as its scan.
fn expected_image(data: &[u8]) -> Vec<u8> {
    let mut jpeg = TestJpeg::new(0);
    jpeg.scan = data.to_vec();
    jpeg.bytes()
}

#[test]
fn fragments_rebuild_the_appendix_b_image() {
    let data = scan(5000);
    let mut d = JpegDepacketizer::new();
    push_all(&mut d, frame(10, 900, &data, 7));
    let unit = d.pull().expect("one image");
    assert_eq!(unit.data, expected_image(&data));
    assert_eq!(unit.rtp_timestamp, 900);
    assert!(unit.keyframe && !unit.damaged);
    assert!(d.pull().is_none());
    // And the next frame likewise, not damaged.
    push_all(&mut d, frame(17, 3900, &data, 2));
    let unit = d.pull().expect("second image");
    assert_eq!((unit.rtp_timestamp, unit.damaged), (3900, false));
}

#[test]
fn q_factor_tables_and_restart_interval() {
    let data = scan(100);
    let mut d = JpegDepacketizer::new();
    // Type 64 (type 0 with restart markers), Q 50, 16x16.
    let restart = Some([0x00, 0x07, 0xff, 0xff]);
    d.push(packet(
        1,
        0,
        true,
        payload(0, [64, 50, 2, 2], restart, None, &data),
    ))
    .expect("valid packet");
    let mut jpeg = TestJpeg::new(0);
    let [luma, chroma] = tables::scaled_tables(50);
    jpeg.dqt = vec![(0, luma.to_vec()), (1, chroma.to_vec())];
    jpeg.components[0].1 = 0x21;
    jpeg.restart_interval = Some(7);
    jpeg.width = 16;
    jpeg.height = 16;
    jpeg.scan = data;
    assert_eq!(d.pull().expect("one image").data, jpeg.bytes());
    assert_eq!(luma[0], 16, "Q 50: the Annex K table itself");
}

#[test]
fn other_q_factors_scale_the_tables() {
    for q in [1, 20, 75, 99] {
        let mut d = JpegDepacketizer::new();
        d.push(packet(
            1,
            0,
            true,
            payload(0, [1, q, 2, 2], None, None, &[1]),
        ))
        .expect("valid packet");
        let image = d.pull().expect("one image").data;
        let [luma, chroma] = tables::scaled_tables(q);
        assert_eq!(image[7..71], luma, "Q {q}");
        assert_eq!(image[76..140], chroma, "Q {q}");
    }
}

#[test]
fn one_in_band_table_serves_all_components() {
    let mut d = JpegDepacketizer::new();
    let one = table(5);
    d.push(packet(
        1,
        0,
        true,
        payload(0, LAYOUT, None, Some((0, &one)), &[9]),
    ))
    .expect("valid packet");
    let mut jpeg = TestJpeg::new(0);
    jpeg.dqt = vec![(0, one.to_vec())];
    jpeg.components = vec![(0, 0x22, 0), (1, 0x11, 0), (2, 0x11, 0)];
    jpeg.scan = vec![9];
    assert_eq!(d.pull().expect("one image").data, jpeg.bytes());
}

#[test]
fn sixteen_bit_tables_make_an_extended_sequential_image() {
    let wide: Vec<u8> = (0..128).collect();
    for (precision, tables, sof) in [
        (1, [&wide[..], &table(3)].concat(), SOF1),
        (2, [&table(3)[..], &wide].concat(), SOF1),
        (3, [&wide[..], &wide].concat(), SOF1),
    ] {
        let mut d = JpegDepacketizer::new();
        d.push(packet(
            1,
            0,
            true,
            payload(0, LAYOUT, None, Some((precision, &tables)), &[9]),
        ))
        .expect("valid packet");
        let image = d.pull().expect("one image").data;
        let mut jpeg = TestJpeg::new(0);
        let (first, second) = tables.split_at(if precision & 1 == 1 { 128 } else { 64 });
        jpeg.dqt = vec![
            ((precision & 1) << 4, first.to_vec()),
            ((precision >> 1) << 4 | 1, second.to_vec()),
        ];
        jpeg.sof = sof;
        jpeg.scan = vec![9];
        assert_eq!(image, jpeg.bytes(), "precision {precision}");
    }
}

#[test]
fn tables_of_q_128_to_254_are_cached_but_not_those_of_255() {
    let mut d = JpegDepacketizer::new();
    let tables = two_tables();
    let other = [table(30), table(40)].concat();
    d.push(packet(
        1,
        0,
        true,
        payload(0, [1, 200, 40, 30], None, Some((0, &tables)), &[7]),
    ))
    .expect("tables sent");
    d.push(packet(
        2,
        1,
        true,
        payload(0, [1, 201, 40, 30], None, Some((0, &other)), &[7]),
    ))
    .expect("tables sent");
    d.push(packet(
        3,
        2,
        true,
        payload(0, [1, 200, 40, 30], None, Some((0, &[])), &[7]),
    ))
    .expect("cached tables of Q 200");
    let images: Vec<_> = std::iter::from_fn(|| d.pull()).collect();
    assert_eq!(images.len(), 3);
    assert_eq!(images[2].data, images[0].data);
    assert_ne!(images[1].data, images[0].data);
    // New tables for Q 200 replace the old ones.
    d.push(packet(
        4,
        3,
        true,
        payload(0, [1, 200, 40, 30], None, Some((0, &other)), &[7]),
    ))
    .expect("tables sent");
    d.push(packet(
        5,
        4,
        true,
        payload(0, [1, 200, 40, 30], None, Some((0, &[])), &[7]),
    ))
    .expect("cached tables");
    let images: Vec<_> = std::iter::from_fn(|| d.pull()).collect();
    assert_eq!(images[1].data, images[0].data);
    assert!(images[1].data.windows(64).any(|w| w == table(30)));
    assert_eq!(d.cached_tables.len(), 2, "one entry per Q");

    // Q 255 tables are never reused, and unknown ones are an error.
    d.push(packet(
        6,
        5,
        true,
        payload(0, LAYOUT, None, Some((0, &tables)), &[7]),
    ))
    .expect("tables sent");
    assert!(d.pull().is_some());
    for (seq, q) in [(7, 255), (8, 202)] {
        assert_eq!(
            d.push(packet(
                seq,
                6,
                true,
                payload(0, [1, q, 40, 30], None, Some((0, &[])), &[7])
            )),
            Err(DepayError::Invalid(
                "JPEG quantization tables neither sent nor known for this Q"
            ))
        );
        assert!(d.pull().is_none());
    }
}

#[test]
fn a_lost_fragment_drops_the_frame_and_flags_the_next() {
    let data = scan(3000);
    let mut d = JpegDepacketizer::new();
    let mut packets = frame(100, 0, &data, 3);
    packets.remove(1);
    push_all(&mut d, packets);
    assert!(d.pull().is_none(), "a frame with a hole is dropped");
    push_all(&mut d, frame(103, 3000, &data, 3));
    let unit = d.pull().expect("next frame");
    assert_eq!(unit.data, expected_image(&data));
    assert!(unit.damaged, "loss since the last delivered frame");
    push_all(&mut d, frame(106, 6000, &data, 3));
    assert!(!d.pull().expect("clean frame").damaged);
}

#[test]
fn a_lost_first_fragment_or_a_mid_frame_join_delivers_nothing() {
    let data = scan(3000);
    for skip in [1, 2] {
        let mut d = JpegDepacketizer::new();
        push_all(&mut d, frame(100, 0, &data, 3).split_off(skip));
        assert!(d.pull().is_none());
        push_all(&mut d, frame(103, 3000, &data, 3));
        assert!(d.pull().expect("next frame").damaged, "skip {skip}");
    }
}

#[test]
fn a_lost_marker_packet_ends_the_frame_at_the_next_timestamp() {
    let data = scan(3000);
    let mut d = JpegDepacketizer::new();
    let mut first = frame(100, 0, &data, 3);
    first.pop();
    push_all(&mut d, first);
    // No sequence gap: the sender skipped the marker's packet.
    push_all(&mut d, frame(102, 3000, &data, 3));
    let unit = d.pull().expect("second frame only");
    assert_eq!((unit.rtp_timestamp, unit.damaged), (3000, true));
    assert!(d.pull().is_none());
}

#[test]
fn a_new_first_fragment_restarts_the_frame() {
    let data = scan(3000);
    let mut d = JpegDepacketizer::new();
    let mut first = frame(100, 0, &data, 3);
    first.truncate(2);
    push_all(&mut d, first);
    // Same timestamp, offset 0 again: the sender started over.
    push_all(&mut d, frame(102, 0, &data, 3));
    let unit = d.pull().expect("the restarted frame");
    assert_eq!(unit.data, expected_image(&data));
    assert!(unit.damaged);
}

#[test]
fn an_offset_that_skips_is_an_error_and_drops_the_frame() {
    let data = scan(3000);
    let mut d = JpegDepacketizer::new();
    let mut packets = frame(100, 0, &data, 3);
    // No sequence gap, but the offset jumps past data never sent.
    let skipping = payload(1001, LAYOUT, None, None, &data[1000..2000]);
    packets[1].payload = skipping;
    let mut results = packets.into_iter().map(|p| d.push(p));
    assert_eq!(results.next(), Some(Ok(())));
    assert_eq!(
        results.next(),
        Some(Err(DepayError::Invalid(
            "JPEG fragment offset does not continue the frame"
        )))
    );
    assert_eq!(results.next(), Some(Ok(())), "the rest is skipped quietly");
    drop(results);
    assert!(d.pull().is_none());
    push_all(&mut d, frame(103, 3000, &data, 3));
    assert!(d.pull().expect("next frame").damaged);
}

#[test]
fn a_layout_change_within_a_frame_is_an_error() {
    let data = scan(300);
    for changed in [
        [0, 255, 40, 30],
        [1, 254, 40, 30],
        [1, 255, 41, 30],
        [1, 255, 40, 31],
    ] {
        let mut d = JpegDepacketizer::new();
        let mut packets = frame(1, 0, &data, 2);
        packets[1].payload = payload(150, changed, None, None, &data[150..]);
        d.push(packets.remove(0)).expect("first fragment");
        assert_eq!(
            d.push(packets.remove(0)),
            Err(DepayError::Invalid(
                "JPEG type, Q or size changed within a frame"
            ))
        );
        assert!(d.pull().is_none(), "{changed:?}");
    }
}

#[test]
fn malformed_packets_are_errors() {
    let tables = two_tables();
    let restart = [0, 1, 0xff, 0xff];
    let cases: Vec<(Bytes, DepayError)> = vec![
        (Bytes::new(), DepayError::Truncated("JPEG main header")),
        (
            Bytes::from_static(&[0, 0, 0, 0, 1, 255, 40]),
            DepayError::Truncated("JPEG main header"),
        ),
        (
            payload(0, [65, 50, 40, 30], None, None, &[0, 1, 0xff]),
            DepayError::Truncated("JPEG restart marker header"),
        ),
        (
            payload(0, LAYOUT, None, None, &[0, 0, 0]),
            DepayError::Truncated("JPEG quantization table header"),
        ),
        (
            payload(0, [65, 255, 40, 30], Some(restart), None, &[0, 0, 0]),
            DepayError::Truncated("JPEG quantization table header"),
        ),
        (
            payload(0, LAYOUT, None, None, &[0, 0, 0, 128, 1, 2]),
            DepayError::Truncated("JPEG quantization tables"),
        ),
        (
            payload(0, LAYOUT, None, Some((0, &tables[..100])), &[1]),
            DepayError::Invalid("JPEG quantization table length is not that of one or two tables"),
        ),
        (
            payload(
                0,
                LAYOUT,
                None,
                Some((0, &[tables.clone(), tables.clone()].concat())),
                &[1],
            ),
            DepayError::Invalid("JPEG quantization table length is not that of one or two tables"),
        ),
        (
            payload(0, LAYOUT, None, Some((1, &tables[..64])), &[1]),
            DepayError::Invalid("JPEG quantization table length is not that of one or two tables"),
        ),
        (
            payload(0, LAYOUT, None, Some((0, &tables[..1])), &[1]),
            DepayError::Invalid("JPEG quantization table length is not that of one or two tables"),
        ),
        (
            payload(0, [1, 0, 40, 30], None, None, &[1]),
            DepayError::Invalid("reserved JPEG Q value 0 or 100-127"),
        ),
        (
            payload(0, [1, 100, 40, 30], None, None, &[1]),
            DepayError::Invalid("reserved JPEG Q value 0 or 100-127"),
        ),
        (
            payload(0, [1, 127, 40, 30], None, None, &[1]),
            DepayError::Invalid("reserved JPEG Q value 0 or 100-127"),
        ),
        (
            payload(0, [1, 50, 0, 30], None, None, &[1]),
            DepayError::Invalid("JPEG width or height of 0 blocks"),
        ),
        (
            payload(0, [1, 50, 40, 0], None, None, &[1]),
            DepayError::Invalid("JPEG width or height of 0 blocks"),
        ),
        (
            payload(0, [2, 50, 40, 30], None, None, &[1]),
            DepayError::Unsupported("JPEG types other than 0, 1, 64 and 65"),
        ),
        (
            payload(0, [66, 50, 40, 30], Some(restart), None, &[1]),
            DepayError::Unsupported("JPEG types other than 0, 1, 64 and 65"),
        ),
        (
            payload(0, [128, 50, 40, 30], None, None, &[1]),
            DepayError::Unsupported("dynamic JPEG types 128-255"),
        ),
        (
            payload(0, [255, 50, 40, 30], None, None, &[1]),
            DepayError::Unsupported("dynamic JPEG types 128-255"),
        ),
        (
            Bytes::from_static(&[1, 0, 0, 0, 1, 50, 40, 30, 1]),
            DepayError::Unsupported("interlaced JPEG (type-specific not 0)"),
        ),
    ];
    for (bad, error) in cases {
        let mut d = JpegDepacketizer::new();
        // A good first fragment, so the bad one also breaks a frame.
        d.push(packet(
            1,
            0,
            false,
            payload(0, [1, 50, 40, 30], None, None, &[1]),
        ))
        .expect("good fragment");
        assert_eq!(
            d.push(packet(2, 0, true, bad.clone())),
            Err(error),
            "{bad:?}"
        );
        assert!(d.pull().is_none(), "{bad:?}");
        d.push(packet(
            3,
            1,
            true,
            payload(0, [1, 50, 40, 30], None, None, &[1]),
        ))
        .expect("good frame");
        assert!(d.pull().expect("next frame").damaged, "{bad:?}");
    }
}

#[test]
fn valid_edge_values_are_accepted() {
    for (layout, restart) in [
        ([0, 1, 1, 1], None),
        ([1, 99, 255, 255], None),
        ([64, 1, 1, 1], Some([0, 0, 0, 0])),
        ([65, 128, 1, 1], Some([0xff, 0xff, 0x80, 0x01])),
    ] {
        let mut d = JpegDepacketizer::new();
        let tables = two_tables();
        let in_band = (layout[1] >= 128).then_some((0, &tables[..]));
        d.push(packet(
            1,
            0,
            true,
            payload(0, layout, restart, in_band, &[1]),
        ))
        .expect("valid packet");
        let image = d.pull().expect("one image").data;
        let [w, h] = [layout[2], layout[3]].map(|b| u16::from(b) * 8);
        let sof_at = image
            .windows(2)
            .position(|m| m == [0xff, SOF0])
            .expect("SOF0");
        assert_eq!(
            image[sof_at + 5..sof_at + 9],
            [h.to_be_bytes(), w.to_be_bytes()].concat()
        );
        let dri = image.windows(2).position(|m| m == [0xff, DRI]);
        assert_eq!(dri.is_some(), restart.is_some(), "{layout:?}");
        if let (Some(at), Some(header)) = (dri, restart) {
            assert_eq!(image[at + 2..at + 6], [0, 4, header[0], header[1]]);
        }
    }
}

#[test]
fn eoi_is_added_once() {
    let mut d = JpegDepacketizer::new();
    d.push(packet(
        1,
        0,
        true,
        payload(0, [1, 50, 1, 1], None, None, &[5, 0xff, EOI]),
    ))
    .expect("scan with EOI");
    let image = d.pull().expect("image").data;
    assert!(image.ends_with(&[5, 0xff, EOI]));
    d.push(packet(
        2,
        1,
        true,
        payload(0, [1, 50, 1, 1], None, None, &[5, 0xff]),
    ))
    .expect("scan ending in 0xFF");
    assert!(d
        .pull()
        .expect("image")
        .data
        .ends_with(&[5, 0xff, 0xff, EOI]));
    d.push(packet(
        3,
        2,
        true,
        payload(0, [1, 50, 1, 1], None, None, &[EOI]),
    ))
    .expect("scan ending in 0xD9");
    assert!(d.pull().expect("image").data.ends_with(&[EOI, 0xff, EOI]));
}

#[test]
fn late_and_duplicate_packets_are_refused_without_damage() {
    let data = scan(3000);
    let mut d = JpegDepacketizer::new();
    let packets = frame(100, 0, &data, 3);
    d.push(packets[0].clone()).expect("first");
    d.push(packets[1].clone()).expect("second");
    assert_eq!(d.push(packets[1].clone()), Err(DepayError::OutOfOrder(101)));
    d.push(packets[2].clone()).expect("third");
    let unit = d.pull().expect("image");
    assert!(!unit.damaged);
    assert_eq!(unit.data, expected_image(&data));
}

/// Pushes one frame of `scan_len` bytes of scan data in fragments of at
/// most 60,000 bytes, the last with the marker; the first error if any.
fn push_frame_of(
    d: &mut JpegDepacketizer,
    seq: &mut u16,
    timestamp: u32,
    scan_len: usize,
) -> Result<(), DepayError> {
    let chunk = vec![0x55; 60_000];
    let mut offset = 0;
    let mut first_error = Ok(());
    while offset < scan_len {
        let len = chunk.len().min(scan_len - offset);
        let fragment = payload(offset as u32, [1, 50, 255, 255], None, None, &chunk[..len]);
        let marker = offset + len == scan_len;
        let result = d.push(packet(*seq, timestamp, marker, fragment));
        if first_error.is_ok() {
            first_error = result;
        }
        offset += len;
        *seq = seq.wrapping_add(1);
    }
    first_error
}

#[test]
fn frames_beyond_the_unit_limit_are_dropped() {
    let mut d = JpegDepacketizer::new();
    let mut seq = 0;
    push_frame_of(&mut d, &mut seq, 0, 1).expect("tiny frame");
    let tiny = d.pull().expect("tiny image");
    // Rebuilt headers, one byte of scan, EOI.
    let headers = tiny.data.len() - 1 - 2;
    let largest = MAX_UNIT_SIZE - headers - 2;
    push_frame_of(&mut d, &mut seq, 1, largest).expect("largest frame");
    let image = d.pull().expect("largest image");
    assert_eq!(image.data.len(), MAX_UNIT_SIZE);
    assert!(!image.damaged);
    assert_eq!(
        push_frame_of(&mut d, &mut seq, 2, largest + 1),
        Err(DepayError::TooLarge)
    );
    assert!(d.pull().is_none(), "the rest of the frame is skipped");
    push_frame_of(&mut d, &mut seq, 3, 1).expect("next frame");
    assert!(d.pull().expect("next frame").damaged);
}
