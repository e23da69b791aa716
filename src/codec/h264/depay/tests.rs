use super::*;
use crate::codec::depay::received_packets;
use crate::codec::h264::H264Packetizer;
use crate::media::mp4::Mp4Media;
use crate::media::CodecParams;
use crate::rtp::{PacketBatch, RtpStreamState};

static SAMPLE: &[u8] = include_bytes!("../../../../media/sample.mp4");

const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

fn packet(sequence_number: u16, timestamp: u32, marker: bool, payload: &[u8]) -> ReceivedPacket {
    ReceivedPacket {
        sequence_number,
        timestamp,
        marker,
        payload: Bytes::copy_from_slice(payload),
    }
}

/// An AVCC sample of `nals` with 4-byte lengths.
fn avcc(nals: &[&[u8]]) -> Vec<u8> {
    nals.iter()
        .flat_map(|nal| {
            (nal.len() as u32)
                .to_be_bytes()
                .into_iter()
                .chain(nal.iter().copied())
        })
        .collect()
}

fn units(d: &mut H264Depacketizer) -> Vec<DepacketizedUnit> {
    std::iter::from_fn(|| d.pull()).collect()
}

fn depacketizer() -> H264Depacketizer {
    H264Depacketizer::new(Vec::new(), Vec::new())
}

/// Feeds `packets` (sequence numbers from 1) and returns the units.
fn run(packets: &[(u32, bool, &[u8])]) -> Vec<DepacketizedUnit> {
    let mut d = depacketizer();
    for (i, &(ts, marker, payload)) in packets.iter().enumerate() {
        d.push(packet(i as u16 + 1, ts, marker, payload))
            .expect("valid packet");
    }
    units(&mut d)
}

#[test]
fn single_nal_units_end_at_the_marker() {
    let units = run(&[
        (3000, false, &[0x06, 0x05, 0x01]),
        (3000, false, &[0x41, 0x9a, 0x02]),
        (3000, true, &[0x41, 0x9b, 0x03]),
        (6000, true, &[0x01, 0x9c]),
    ]);
    assert_eq!(
        units,
        [
            DepacketizedUnit {
                rtp_timestamp: 3000,
                keyframe: false,
                damaged: false,
                data: avcc(&[
                    &[0x06, 0x05, 0x01],
                    &[0x41, 0x9a, 0x02],
                    &[0x41, 0x9b, 0x03]
                ])
                .into(),
            },
            DepacketizedUnit {
                rtp_timestamp: 6000,
                keyframe: false,
                damaged: false,
                data: avcc(&[&[0x01, 0x9c]]).into(),
            },
        ]
    );
}

#[test]
fn timestamp_change_without_marker_ends_the_unit() {
    let units = run(&[
        (1000, false, &[0x65, 0x88]),
        (1000, false, &[0x65, 0x89]),
        (4000, false, &[0x41, 0x9a]),
        (7000, true, &[0x41, 0x9b]),
    ]);
    let got: Vec<(u32, bool, Vec<u8>)> = units
        .iter()
        .map(|u| (u.rtp_timestamp, u.keyframe, u.data.to_vec()))
        .collect();
    assert_eq!(
        got,
        [
            (1000, true, avcc(&[&[0x65, 0x88], &[0x65, 0x89]])),
            (4000, false, avcc(&[&[0x41, 0x9a]])),
            (7000, false, avcc(&[&[0x41, 0x9b]])),
        ]
    );
    assert!(units.iter().all(|u| !u.damaged));
}

#[test]
fn parameter_sets_stamped_apart_join_the_next_picture() {
    // A camera sending SPS and PPS with their own timestamp and marker.
    let units = run(&[
        (0, true, SPS),
        (1, false, PPS),
        (2, false, &[0x06, 0x05]),
        (3000, true, &[0x65, 0x88]),
        (6000, true, &[0x41, 0x9a]),
    ]);
    let got: Vec<(u32, bool, Vec<u8>)> = units
        .iter()
        .map(|u| (u.rtp_timestamp, u.keyframe, u.data.to_vec()))
        .collect();
    assert_eq!(
        got,
        [
            (3000, true, avcc(&[SPS, PPS, &[0x06, 0x05], &[0x65, 0x88]])),
            (6000, false, avcc(&[&[0x41, 0x9a]])),
        ]
    );
}

#[test]
fn stap_a_per_rfc_6184_figure_7() {
    // STAP-A header (F=0, NRI=3, type 24), then size-prefixed NAL units.
    let stap = [
        0x78, 0x00, 0x04, 0x67, 0x42, 0xc0, 0x1e, 0x00, 0x04, 0x68, 0xce, 0x3c, 0x80, 0x00, 0x03,
        0x65, 0x88, 0x84,
    ];
    let mut d = H264Depacketizer::new(
        vec![Bytes::from_static(&[0x67, 0x4d])],
        vec![Bytes::from_static(PPS)],
    );
    d.push(packet(7, 90, true, &stap)).expect("valid STAP-A");
    let units = units(&mut d);
    assert_eq!(units.len(), 1);
    assert_eq!(units[0].data[..], avcc(&[SPS, PPS, &[0x65, 0x88, 0x84]]));
    assert!(units[0].keyframe);
    // The in-band SPS replaces the SDP's; the known PPS is kept.
    assert_eq!(d.sps(), [Bytes::from_static(SPS)]);
    assert_eq!(d.pps(), [Bytes::from_static(PPS)]);
}

#[test]
fn fu_a_reassembles_header_from_indicator_and_fu_header() {
    // FU indicator F|NRI = 0x60, FU header type 5 (IDR) with S, none, E.
    let units = run(&[
        (0, false, &[0x7c, 0x85, 1, 2, 3]),
        (0, false, &[0x7c, 0x05, 4, 5]),
        (0, true, &[0x7c, 0x45, 6]),
    ]);
    assert_eq!(units.len(), 1);
    assert_eq!(units[0].data[..], avcc(&[&[0x65, 1, 2, 3, 4, 5, 6]]));
    assert!(units[0].keyframe && !units[0].damaged);
}

#[test]
fn lost_fu_a_fragment_drops_that_nal_only() {
    let mut d = depacketizer();
    d.push(packet(10, 0, false, &[0x41, 0xaa])).expect("single");
    d.push(packet(11, 0, false, &[0x7c, 0x85, 1, 2]))
        .expect("start");
    // 12 is lost.
    d.push(packet(13, 0, false, &[0x7c, 0x45, 5])).expect("end");
    d.push(packet(14, 0, true, &[0x41, 0xbb])).expect("single");
    d.push(packet(15, 3000, true, &[0x41, 0xcc]))
        .expect("next unit");
    let units = units(&mut d);
    assert_eq!(units.len(), 2);
    assert_eq!(units[0].data[..], avcc(&[&[0x41, 0xaa], &[0x41, 0xbb]]));
    assert!(units[0].damaged);
    assert!(!units[0].keyframe, "the lost NAL was the IDR");
    assert!(!units[1].damaged, "damage does not leak into the next unit");
}

#[test]
fn unit_lost_whole_passes_damage_on() {
    let mut d = depacketizer();
    d.push(packet(1, 0, true, &[0x41, 1])).expect("first");
    d.push(packet(2, 3000, false, &[0x7c, 0x81, 2]))
        .expect("start");
    // Its end and marker are lost; the next unit's start closes it empty.
    d.push(packet(4, 6000, true, &[0x41, 3])).expect("third");
    let units = units(&mut d);
    let got: Vec<(u32, bool)> = units.iter().map(|u| (u.rtp_timestamp, u.damaged)).collect();
    assert_eq!(got, [(0, false), (6000, true)]);
}

#[test]
fn fu_a_interrupted_or_orphaned_is_dropped() {
    let mut d = depacketizer();
    d.push(packet(1, 0, false, &[0x7c, 0x85, 1]))
        .expect("start");
    d.push(packet(2, 0, false, &[0x41, 2]))
        .expect("interrupting NAL");
    d.push(packet(3, 0, false, &[0x7c, 0x45, 3]))
        .expect("orphan end");
    d.push(packet(4, 0, false, &[0x7c, 0x81, 4]))
        .expect("start");
    d.push(packet(5, 0, false, &[0x7c, 0x81, 5]))
        .expect("restart");
    d.push(packet(6, 0, true, &[0x7c, 0x41, 6])).expect("end");
    let units = units(&mut d);
    assert_eq!(units.len(), 1);
    assert_eq!(units[0].data[..], avcc(&[&[0x41, 2], &[0x61, 5, 6]]));
    assert!(units[0].damaged);

    // Marker on an unfinished fragment: the NAL is incomplete.
    let mut d = depacketizer();
    d.push(packet(1, 0, false, &[0x41, 2])).expect("single");
    d.push(packet(2, 0, true, &[0x7c, 0x85, 1]))
        .expect("start with marker");
    let units = self::units(&mut d);
    assert_eq!(units[0].data[..], avcc(&[&[0x41, 2]]));
    assert!(units[0].damaged && !units[0].keyframe);
}

#[test]
fn fu_a_type_change_mid_nal_is_refused() {
    let mut d = depacketizer();
    d.push(packet(1, 0, false, &[0x7c, 0x85, 1]))
        .expect("start");
    assert_eq!(
        d.push(packet(2, 0, false, &[0x7c, 0x01, 2])),
        Err(DepayError::Invalid("FU-A type changed within a NAL unit"))
    );
    d.push(packet(3, 0, true, &[0x7c, 0x45, 3]))
        .expect("orphan end");
    assert_eq!(units(&mut d), []);
    d.push(packet(4, 9, true, &[0x41, 3])).expect("next");
    assert!(d.pull().expect("unit").damaged, "damage carried");
}

#[test]
fn refused_payloads_are_errors_and_leave_the_unit_damaged() {
    let cases: &[(&[u8], DepayError)] = &[
        (&[], DepayError::Truncated("empty H.264 payload")),
        (&[0x19, 0, 0, 0, 1, 0x41], DepayError::Unsupported("STAP-B")),
        (&[0x1a, 0, 0], DepayError::Unsupported("MTAP16")),
        (&[0x1b, 0, 0], DepayError::Unsupported("MTAP24")),
        (&[0x1d, 0x85, 0, 0, 1], DepayError::Unsupported("FU-B")),
        (
            &[0x00, 1],
            DepayError::Invalid("reserved NAL unit type 0, 30 or 31"),
        ),
        (
            &[0x1e, 1],
            DepayError::Invalid("reserved NAL unit type 0, 30 or 31"),
        ),
        (
            &[0x1f, 1],
            DepayError::Invalid("reserved NAL unit type 0, 30 or 31"),
        ),
        (&[0x78], DepayError::Truncated("STAP-A without NAL units")),
        (&[0x78, 0x00], DepayError::Truncated("STAP-A NAL unit size")),
        (
            &[0x78, 0x00, 0x02, 0x41, 1, 0],
            DepayError::Truncated("STAP-A NAL unit size"),
        ),
        (
            &[0x78, 0x00, 0x03, 0x41, 1],
            DepayError::Truncated("STAP-A NAL unit"),
        ),
        (
            &[0x78, 0x00, 0x00],
            DepayError::Invalid("empty NAL unit in STAP-A"),
        ),
        (
            &[0x78, 0x00, 0x02, 0x7c, 0x85],
            DepayError::Invalid("STAP-A holds a non-NAL-unit type"),
        ),
        (
            &[0x78, 0x00, 0x01, 0x00],
            DepayError::Invalid("STAP-A holds a non-NAL-unit type"),
        ),
        (&[0x7c], DepayError::Truncated("FU-A header")),
        (&[0x7c, 0x85], DepayError::Truncated("FU-A without payload")),
        (
            &[0x7c, 0xc5, 1],
            DepayError::Invalid("FU-A with both start and end bits"),
        ),
        (
            &[0x7c, 0x9c, 1],
            DepayError::Invalid("FU-A of a non-NAL-unit type"),
        ),
        (
            &[0x7c, 0x80, 1],
            DepayError::Invalid("FU-A of a non-NAL-unit type"),
        ),
    ];
    for (payload, error) in cases {
        let mut d = depacketizer();
        d.push(packet(1, 0, false, &[0x41, 7])).expect("good NAL");
        d.push(packet(2, 0, false, &[0x7c, 0x81, 1]))
            .expect("FU-A start");
        assert_eq!(
            d.push(packet(3, 0, false, payload)).as_ref(),
            Err(error),
            "{payload:x?}"
        );
        d.push(packet(4, 0, true, &[0x7c, 0x41, 2]))
            .expect("orphan end");
        let units = units(&mut d);
        assert_eq!(units.len(), 1, "{payload:x?}");
        assert_eq!(units[0].data[..], avcc(&[&[0x41, 7]]), "{payload:x?}");
        assert!(units[0].damaged, "{payload:x?}");
    }
}

#[test]
fn bad_stap_a_adds_none_of_its_nal_units() {
    let mut d = depacketizer();
    let bad = [0x78, 0x00, 0x02, 0x41, 1, 0x00, 0x05, 0x41];
    assert!(d.push(packet(1, 0, true, &bad)).is_err());
    assert_eq!(units(&mut d), []);
}

#[test]
fn late_and_duplicate_packets_are_refused_without_damage() {
    let mut d = depacketizer();
    d.push(packet(5, 0, false, &[0x41, 1])).expect("first");
    assert_eq!(
        d.push(packet(5, 0, false, &[0x41, 9])),
        Err(DepayError::OutOfOrder(5))
    );
    assert_eq!(
        d.push(packet(4, 0, false, &[0x41, 9])),
        Err(DepayError::OutOfOrder(4))
    );
    d.push(packet(6, 0, true, &[0x41, 2])).expect("second");
    let unit = d.pull().expect("unit");
    assert_eq!(unit.data[..], avcc(&[&[0x41, 1], &[0x41, 2]]));
    assert!(!unit.damaged);
}

#[test]
fn unit_size_is_capped() {
    let mut d = depacketizer();
    let chunk = vec![0x11; 60_000];
    let mut fu = vec![0x7c, 0x81];
    fu.extend_from_slice(&chunk);
    d.push(packet(0, 0, false, &fu)).expect("start");
    fu[1] = 0x01;
    let mut seq = 1;
    let error = loop {
        match d.push(packet(seq, 0, false, &fu)) {
            Ok(()) => seq += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(error, DepayError::TooLarge);
    let fragments = usize::from(seq);
    assert_eq!(fragments, (MAX_UNIT_SIZE - 5) / chunk.len());
    // The oversized NAL is dropped; the unit continues.
    d.push(packet(seq + 1, 0, false, &[0x41, 1]))
        .expect("single");
    let mut big_single = vec![0x41];
    big_single.resize(60_000, 0);
    d.push(packet(seq + 2, 0, true, &big_single))
        .expect("fits now");
    let unit = d.pull().expect("unit");
    assert!(unit.damaged);
    assert_eq!(unit.data.len(), 4 + 2 + 4 + 60_000);

    // Whole packets are refused too once the unit is full.
    let mut d = depacketizer();
    let mut single = vec![0x41];
    single.resize(60_000, 0);
    let mut stap = vec![0x78];
    for _ in 0..2 {
        stap.extend_from_slice(&15_000u16.to_be_bytes());
        stap.push(0x41);
        stap.resize(stap.len() + 14_999, 0);
    }
    let mut seq = 0;
    while d.push(packet(seq, 0, false, &single)).is_ok() {
        seq += 1;
    }
    assert_eq!(usize::from(seq), MAX_UNIT_SIZE / 60_004);
    let room = MAX_UNIT_SIZE - usize::from(seq) * 60_004;
    assert!((2 * 15_004..4 * 15_004).contains(&room), "one STAP-A fits");
    d.push(packet(seq + 1, 0, false, &stap)).expect("fits");
    assert_eq!(
        d.push(packet(seq + 2, 0, false, &stap)),
        Err(DepayError::TooLarge)
    );
    // Exactly full is still allowed; one byte more is not.
    let room = room - 2 * 15_004;
    let mut last = vec![0x41];
    last.resize(room - 4 + 1, 0);
    assert_eq!(
        d.push(packet(seq + 3, 0, false, &last)),
        Err(DepayError::TooLarge)
    );
    last.pop();
    d.push(packet(seq + 4, 0, true, &last))
        .expect("exactly full");
    assert_eq!(d.pull().expect("unit").data.len(), MAX_UNIT_SIZE);
}

#[test]
fn fu_a_start_counts_its_length_prefix_and_header_against_the_cap() {
    let mut d = depacketizer();
    let mut single = vec![0x41];
    single.resize(60_000, 0);
    let mut seq = 0;
    while d.push(packet(seq, 0, false, &single)).is_ok() {
        seq += 1;
    }
    // Prefix (4) and reconstructed NAL header (1) come on top of the body.
    let room = MAX_UNIT_SIZE - usize::from(seq) * 60_004;
    let mut start = vec![0x7c, 0x81];
    start.resize(2 + room - 5 + 1, 0);
    assert_eq!(
        d.push(packet(seq + 1, 0, false, &start)),
        Err(DepayError::TooLarge)
    );
    start.pop();
    d.push(packet(seq + 2, 0, false, &start))
        .expect("exactly full");
    assert_eq!(
        d.push(packet(seq + 3, 0, true, &[0x7c, 0x41, 0])),
        Err(DepayError::TooLarge)
    );
    let unit = d.pull().expect("unit without the unfinished NAL");
    assert_eq!(unit.data.len(), MAX_UNIT_SIZE - room);
    assert!(unit.damaged);
}

/// Packetizes the sample's video with today's packetizer and checks the
/// depacketized units against the source, byte for byte: the packetizer
/// drops access unit delimiters and, before IDRs, replaces in-band
/// parameter sets by the configured ones.
#[test]
fn round_trip_of_the_sample_video() {
    let media = Mp4Media::from_static(SAMPLE).expect("sample parses");
    let CodecParams::H264 { sps, pps, .. } = media.tracks()[0].codec.clone() else {
        panic!("track 0 is H.264");
    };
    let mut packetizer = H264Packetizer::new(1200, 4, sps.clone(), pps.clone());
    let mut stream = RtpStreamState::new(96, 1, 65000);
    let mut batch = PacketBatch::new();
    let mut writer = crate::codec::PayloadWriter::new();
    let mut depacketizer = H264Depacketizer::new(Vec::new(), Vec::new());
    let mut reader = media.reader(0.0).only_tracks(|t| t == 0);
    let mut count = 0;
    while let Some(au) = reader.next_access_unit() {
        let au = au.expect("sample reads");
        let ts = 3000 * count;
        batch.clear();
        packetizer
            .packetize(&au.data, au.keyframe, &mut writer)
            .expect("packetizes");
        batch.push_unit(&mut stream, ts, &writer.finish());
        for packet in received_packets(&batch) {
            depacketizer.push(packet).expect("own packets are valid");
        }
        let unit = depacketizer.pull().expect("one unit per access unit");
        assert_eq!(depacketizer.pull(), None);
        let expected = expected_after_packetizer(&au.data, au.keyframe, &sps, &pps);
        assert_eq!(unit.data[..], expected[..], "access unit {count}");
        assert_eq!((unit.rtp_timestamp, unit.keyframe), (ts, au.keyframe));
        assert!(!unit.damaged);
        count += 1;
    }
    assert_eq!(count, 300);
    assert_eq!(
        (depacketizer.sps(), depacketizer.pps()),
        (&sps[..], &pps[..])
    );
}

/// What the packetizer's receiver should see of one 4-byte AVCC sample.
fn expected_after_packetizer(
    sample: &[u8],
    keyframe: bool,
    sps: &[Bytes],
    pps: &[Bytes],
) -> Vec<u8> {
    let mut nals = Vec::new();
    let mut rest = sample;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let (nal, tail) = tail.split_at(u32::from_be_bytes(*len) as usize);
        nals.push(nal);
        rest = tail;
    }
    let idr = keyframe || nals.iter().any(|nal| nal[0] & 0x1f == 5);
    let kept = nals.into_iter().filter(|nal| match nal[0] & 0x1f {
        9 => false,
        7 | 8 => !idr,
        _ => true,
    });
    let params = sps.iter().chain(pps).filter(|_| idr).map(|set| &set[..]);
    avcc(&params.chain(kept).collect::<Vec<_>>())
}

/// retina, an independent RTSP client, depacketizes the same packets to
/// the same bytes: AVCC with 4-byte lengths, parameter sets before each
/// keyframe.
#[test]
fn same_units_as_retina() {
    use std::num::NonZeroU32;

    use retina::codec::{CodecItem, FrameFormat};

    let media = Mp4Media::from_static(SAMPLE).expect("sample parses");
    let codec = media.tracks()[0].codec.clone();
    let CodecParams::H264 { sps, pps, .. } = codec.clone() else {
        panic!("track 0 is H.264");
    };
    let fmtp = crate::codec::fmtp(&codec);
    let mut theirs = retina::codec::Depacketizer::new("video", "h264", 90_000, None, Some(&fmtp))
        .expect("retina accepts our fmtp");
    theirs.set_frame_format(FrameFormat {
        parameter_set_insertion: retina::codec::ParameterSetInsertion::EachKeyFrame,
        ..FrameFormat::MP4
    });
    let mut buf = retina::testutil::DepacketizeBuf::new(1 << 20);
    let mut ours = H264Depacketizer::new(sps.clone(), pps.clone());
    // Small packets so that FU-A is exercised, and parameter sets sent
    // ahead of each keyframe as one STAP-A (the packetizer sends none).
    let mut packetizer = H264Packetizer::new(600, 4, Vec::new(), Vec::new());
    let mut stap_a = vec![0x78];
    for set in sps.iter().chain(&pps) {
        stap_a.extend_from_slice(&(set.len() as u16).to_be_bytes());
        stap_a.extend_from_slice(set);
    }
    let mut stream = RtpStreamState::new(96, 1, 0);
    let mut batch = PacketBatch::new();
    let mut writer = crate::codec::PayloadWriter::new();
    let mut reader = media.reader(0.0).only_tracks(|t| t == 0);
    let mut compared = 0;
    while let Some(au) = reader.next_access_unit() {
        let au = au.expect("sample reads");
        let ts = 3000 * compared;
        batch.clear();
        if au.keyframe {
            batch.push(&mut stream, ts, false, Bytes::from(stap_a.clone()));
        }
        packetizer
            .packetize(&au.data, au.keyframe, &mut writer)
            .expect("packetizes");
        batch.push_unit(&mut stream, ts, &writer.finish());
        for packet in received_packets(&batch) {
            let meta = retina::rtp::PacketMeta {
                ctx: retina::PacketContext::dummy(),
                stream_id: 0,
                timestamp: retina::Timestamp::new(
                    i64::from(packet.timestamp),
                    NonZeroU32::new(90_000).expect("non-zero"),
                    0,
                )
                .expect("no underflow"),
                sequence_number: packet.sequence_number,
                ssrc: 1,
                mark: packet.marker,
                loss: 0,
            };
            buf.push(&mut theirs, meta, &packet.payload)
                .expect("retina accepts our packets");
            ours.push(packet).expect("we accept our packets");
        }
        let Some(Ok(CodecItem::VideoFrame(frame))) = theirs.pull() else {
            panic!("retina yields a frame for access unit {compared}");
        };
        let unit = ours.pull().expect("one unit");
        assert_eq!(unit.data[..], frame.data()[..], "access unit {compared}");
        assert_eq!(unit.keyframe, frame.is_random_access_point());
        assert_eq!(i64::from(unit.rtp_timestamp), frame.timestamp().timestamp());
        compared += 1;
    }
    assert_eq!(compared, 300);
}
