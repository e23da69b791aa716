use super::*;
use crate::codec::aac::AacPacketizer;
use crate::codec::depay::received_packets;
use crate::media::mp4::Mp4Media;
use crate::media::CodecParams;
use crate::rtp::{PacketBatch, RtpStreamState};

static SAMPLE: &[u8] = include_bytes!("../../../../media/sample.mp4");

/// AAC-LC, 48 kHz, stereo.
const CONFIG: &[u8] = &[0x11, 0x90];

fn packet(sequence_number: u16, timestamp: u32, marker: bool, payload: &[u8]) -> ReceivedPacket {
    ReceivedPacket {
        sequence_number,
        timestamp,
        marker,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn hbr() -> AacDepacketizer {
    AacDepacketizer::new(AacPayloadParams::hbr(CONFIG))
}

/// An AAC-hbr depacketizer past its first marked packet (sequence 0), so
/// no longer resyncing.
fn synced() -> AacDepacketizer {
    let mut d = hbr();
    d.push(packet(0, 0, true, &[0x00, 0x10, 0x00, 0x08, 0xee]))
        .expect("valid");
    assert_eq!(units(&mut d), [(0, vec![0xee])]);
    d
}

fn units(d: &mut AacDepacketizer) -> Vec<(u32, Vec<u8>)> {
    std::iter::from_fn(|| d.pull())
        .map(|u| {
            assert!(u.keyframe && !u.damaged);
            (u.rtp_timestamp, u.data.to_vec())
        })
        .collect()
}

#[test]
fn several_aus_per_packet_rfc_3640_hbr() {
    // AU-headers-length 48 bits; AU-sizes 3, 1, 2 in 13 bits, indices 0.
    let payload = [
        0x00, 0x30, 0x00, 0x18, 0x00, 0x08, 0x00, 0x10, 0xa1, 0xa2, 0xa3, 0xb1, 0xc1, 0xc2,
    ];
    let mut d = hbr();
    d.push(packet(1, u32::MAX - 1023, true, &payload))
        .expect("valid");
    assert_eq!(
        units(&mut d),
        [
            (u32::MAX - 1023, vec![0xa1, 0xa2, 0xa3]),
            (0, vec![0xb1]),
            (1024, vec![0xc1, 0xc2]),
        ]
    );
}

#[test]
fn frame_length_comes_from_config_or_constant_duration() {
    let two_aus = [0x00, 0x20, 0x00, 0x08, 0x00, 0x08, 0xa1, 0xb1];
    // frameLengthFlag set: 960-sample AAC-LC frames.
    let cases: [(&str, &[u8], u32); 6] = [
        ("mode=AAC-hbr", &[0x11, 0x94], 960),
        ("mode=AAC-hbr;config=1194", CONFIG, 960),
        (
            "mode=AAC-hbr;config=1190;constantDuration=2048",
            CONFIG,
            2048,
        ),
        ("mode=AAC-hbr", &[0xb9, 0x94], 480),
        ("mode=AAC-hbr;config=zz", CONFIG, 0),
        ("mode=AAC-hbr;constantDuration=0", &[0x11, 0x94], 960),
    ];
    for (fmtp, config, frame) in cases {
        let params = AacPayloadParams::from_fmtp(fmtp, config);
        if frame == 0 {
            assert!(matches!(params, Err(DepayError::Fmtp(_))), "{fmtp}");
            continue;
        }
        let mut d = AacDepacketizer::new(params.expect("valid fmtp"));
        d.push(packet(1, 100, true, &two_aus)).expect("valid");
        assert_eq!(units(&mut d)[1].0, 100 + frame, "{fmtp}");
    }
}

#[test]
fn frame_lengths_of_audio_specific_configs() {
    let cases: [(&[u8], u32); 10] = [
        (&[0x11, 0x90], 1024),                  // AAC-LC
        (&[0x11, 0x94], 960),                   // AAC-LC, frameLengthFlag
        (&[0xb9, 0x94], 480),                   // AAC-LD (23), flag
        (&[0xb9, 0x90], 512),                   // AAC-LD
        (&[0x2b, 0x11, 0x88], 2048),            // HE-AAC: SBR over AAC-LC
        (&[0xf8, 0x06, 0x40], 1024),            // escaped object type 32
        (&[0xf8, 0xe6, 0x50], 480),             // AAC-ELD (escaped 39), flag
        (&[0xf8, 0xe6, 0x40], 512),             // AAC-ELD
        (&[0x17, 0x80, 0x5d, 0xc0, 0x14], 960), // explicit 24-bit rate, flag
        (&[0x11], 1024),                        // truncated
    ];
    for (config, frame) in cases {
        assert_eq!(frame_length(config), frame, "{config:02x?}");
    }
}

#[test]
fn aac_lbr_layout_from_fmtp() {
    let fmtp = "streamtype=5; profile-level-id=14; Mode=AAC-lbr; config=1190; \
                SizeLength=6; IndexLength=2; IndexDeltaLength=2; constantDuration=1024";
    let mut d = AacDepacketizer::new(AacPayloadParams::from_fmtp(fmtp, &[]).expect("valid"));
    // 16 bits of headers: sizes 2 and 1 in 6 bits + 2-bit index fields.
    d.push(packet(
        1,
        0,
        true,
        &[0x00, 0x10, 0x08, 0x04, 0xa1, 0xa2, 0xb1],
    ))
    .expect("valid");
    assert_eq!(units(&mut d), [(0, vec![0xa1, 0xa2]), (1024, vec![0xb1])]);

    // The mode alone implies the lengths.
    let defaults = AacPayloadParams::from_fmtp("mode=AAC-lbr", CONFIG).expect("valid");
    assert_eq!(defaults, AacPayloadParams::with_lengths(6, 2, 2, 1024));
    let defaults = AacPayloadParams::from_fmtp("MODE=aac-HBR", CONFIG).expect("valid");
    assert_eq!(defaults, AacPayloadParams::hbr(CONFIG));
}

#[test]
fn bad_fmtp_values_are_refused() {
    for fmtp in [
        "mode=generic",
        "sizelength=0",
        "sizelength=x",
        "sizelength=13;indexlength=33",
        "sizelength=13;config=119",
        "sizelength=13;config=é1",
    ] {
        assert!(
            matches!(
                AacPayloadParams::from_fmtp(fmtp, CONFIG),
                Err(DepayError::Fmtp(_))
            ),
            "{fmtp}"
        );
    }
}

#[test]
fn optional_header_fields_and_auxiliary_data_are_skipped() {
    let fmtp = "sizelength=8;indexlength=2;indexdeltalength=2;ctsdeltalength=4;\
                dtsdeltalength=3;randomaccessindication=1;streamstateindication=2;\
                auxiliarydatasizelength=5";
    let params = AacPayloadParams::from_fmtp(fmtp, CONFIG).expect("valid");
    // First header: size 8 | index 2 | DTS-flag 1 + 3 | RAP 1 | state 2 = 17
    // bits; second: size 8 | delta 2 | CTS-flag 1 + 4 | DTS-flag 0 | RAP 1 |
    // state 2 = 18 bits; 35 bits in all.
    let mut bits = String::new();
    bits += "00000010" /* size 2 */;
    bits += "00" /* index */;
    bits += "1101" /* DTS flag + delta */;
    bits += "1" /* RAP */;
    bits += "11" /* stream state */;
    bits += "00000001" /* size 1 */;
    bits += "00" /* index delta */;
    bits += "10110" /* CTS flag + delta */;
    bits += "0" /* DTS flag */;
    bits += "0" /* RAP */;
    bits += "01" /* stream state */;
    let mut payload = vec![0x00, bits.len() as u8];
    payload.extend(pack_bits(&bits));
    // Auxiliary section: 5-bit size 3, then 3 bits of data: one byte.
    payload.extend(pack_bits("00011101"));
    payload.extend([0xa1, 0xa2, 0xb1]);
    let mut d = AacDepacketizer::new(params);
    d.push(packet(1, 0, true, &payload)).expect("valid");
    assert_eq!(units(&mut d), [(0, vec![0xa1, 0xa2]), (1024, vec![0xb1])]);
}

fn pack_bits(bits: &str) -> Vec<u8> {
    bits.as_bytes()
        .chunks(8)
        .map(|chunk| {
            chunk.iter().enumerate().fold(0u8, |byte, (i, &bit)| {
                byte | (u8::from(bit == b'1') << (7 - i))
            })
        })
        .collect()
}

#[test]
fn fragmented_au_is_reassembled_and_a_lost_fragment_drops_it() {
    // AU-size 5 in every fragment (§3.2.3).
    let header = [0x00, 0x10, 0x00, 0x28];
    let frag = |data: &[u8]| [&header[..], data].concat();
    let mut d = hbr();
    // Joining mid-AU: the tail is dropped quietly.
    d.push(packet(0, 0, true, &frag(&[4, 5])))
        .expect("orphan last");
    d.push(packet(1, 0, false, &frag(&[1, 2]))).expect("first");
    d.push(packet(2, 0, false, &frag(&[3]))).expect("middle");
    assert_eq!(units(&mut d), []);
    d.push(packet(3, 0, true, &frag(&[4, 5]))).expect("last");
    assert_eq!(units(&mut d), [(0, vec![1, 2, 3, 4, 5])]);

    d.push(packet(4, 1024, false, &frag(&[1, 2])))
        .expect("first");
    // 5 is lost.
    d.push(packet(6, 1024, true, &frag(&[4, 5])))
        .expect("orphan last");
    d.push(packet(7, 2048, true, &[0x00, 0x10, 0x00, 0x08, 9]))
        .expect("whole");
    assert_eq!(units(&mut d), [(2048, vec![9])]);
    // In sync, a short last fragment is an error.
    d.push(packet(8, 3072, false, &frag(&[1, 2])))
        .expect("first");
    assert_eq!(
        d.push(packet(9, 3072, true, &frag(&[4]))),
        Err(DepayError::Truncated("last fragment ends short of AU-size"))
    );
}

#[test]
fn inconsistent_fragments_are_refused() {
    let frag = |size: u8, data: &[u8]| [&[0x00, 0x10, 0x00, size << 3][..], data].concat();
    let cases: [(&[Vec<u8>], DepayError); 3] = [
        (
            &[frag(4, &[1, 2]), frag(4, &[3, 4])],
            DepayError::Invalid("AU complete before the marked fragment"),
        ),
        (
            &[frag(5, &[1, 2]), frag(5, &[3, 4, 5, 6])],
            DepayError::Invalid("fragments exceed AU-size"),
        ),
        (
            &[frag(6, &[1, 2]), frag(6, &[3])],
            DepayError::Truncated("last fragment ends short of AU-size"),
        ),
    ];
    for (packets, error) in cases {
        let mut d = synced();
        d.push(packet(1, 0, false, &packets[0])).expect("first");
        let marker = error != DepayError::Invalid("AU complete before the marked fragment");
        assert_eq!(
            d.push(packet(2, 0, marker, &packets[1])),
            Err(error.clone())
        );
        // The broken AU is gone: a further fragment does not complete it.
        d.push(packet(3, 0, true, &frag(packets[0][3] >> 3, &[7])))
            .ok();
        assert_eq!(units(&mut d), [], "{error}");
    }
    // A fragment of another timestamp or size starts a new AU.
    let mut d = hbr();
    d.push(packet(1, 0, false, &frag(3, &[1, 2])))
        .expect("first");
    d.push(packet(2, 1024, false, &frag(3, &[4])))
        .expect("new AU");
    d.push(packet(3, 1024, false, &frag(2, &[6])))
        .expect("new AU");
    d.push(packet(4, 1024, true, &frag(2, &[7]))).expect("last");
    assert_eq!(units(&mut d), [(1024, vec![6, 7])]);
}

#[test]
fn malformed_payloads_are_refused() {
    let cases: &[(&[u8], bool, DepayError)] = &[
        (&[], true, DepayError::Truncated("AU-headers-length")),
        (&[0x00], true, DepayError::Truncated("AU-headers-length")),
        (
            &[0x00, 0x10, 0x00],
            true,
            DepayError::Truncated("AU-header section"),
        ),
        (&[0x00, 0x00, 1], true, DepayError::Invalid("no AU-header")),
        (
            &[0x00, 0x0f, 0x00, 0x08, 1],
            true,
            DepayError::Truncated("AU-header"),
        ),
        (
            &[0x00, 0x11, 0x00, 0x08, 0, 1],
            true,
            DepayError::Truncated("AU-header"),
        ),
        (
            &[0x00, 0x20, 0x00, 0x08, 0x00, 0x09, 1, 2],
            true,
            DepayError::Unsupported("interleaved AAC access units"),
        ),
        (
            &[0x00, 0x20, 0x00, 0x08, 0x00, 0x08, 1],
            true,
            DepayError::Truncated("AU data shorter than AU-sizes"),
        ),
        (
            &[0x00, 0x20, 0x00, 0x08, 0x00, 0x08, 1, 2, 3],
            true,
            DepayError::Invalid("AU data longer than AU-sizes"),
        ),
        (
            &[0x00, 0x10, 0x00, 0x08, 1, 2],
            true,
            DepayError::Invalid("AU data longer than AU-sizes"),
        ),
        (
            &[0x00, 0x10, 0x00, 0x10, 1],
            true,
            DepayError::Truncated("last fragment ends short of AU-size"),
        ),
    ];
    for (payload, marker, error) in cases {
        let mut d = synced();
        assert_eq!(
            d.push(packet(1, 0, *marker, payload)).as_ref(),
            Err(error),
            "{payload:x?}"
        );
        assert_eq!(units(&mut d), []);
    }
    let mut d = hbr();
    d.push(packet(1, 0, true, &[0x00, 0x10, 0x00, 0x08, 1]))
        .expect("valid");
    assert_eq!(
        d.push(packet(1, 0, true, &[0x00, 0x10, 0x00, 0x08, 1])),
        Err(DepayError::OutOfOrder(1))
    );
}

#[test]
fn auxiliary_section_must_fit() {
    let params = AacPayloadParams::from_fmtp("mode=AAC-hbr;auxiliarydatasizelength=16", CONFIG)
        .expect("valid");
    let mut d = AacDepacketizer::new(params);
    assert_eq!(
        d.push(packet(1, 0, true, &[0x00, 0x10, 0x00, 0x08, 0x00])),
        Err(DepayError::Truncated("auxiliary data size"))
    );
    assert_eq!(
        d.push(packet(
            2,
            0,
            true,
            &[0x00, 0x10, 0x00, 0x08, 0x00, 0x09, 0x00]
        )),
        Err(DepayError::Truncated("auxiliary data"))
    );
    // Auxiliary data up to the end of the packet: an empty AU.
    d.push(packet(
        3,
        7,
        true,
        &[0x00, 0x10, 0x00, 0x00, 0x00, 0x08, 0xff],
    ))
    .expect("aux fills the packet");
    assert_eq!(units(&mut d), [(7, vec![])]);
}

#[test]
fn fragmented_au_size_is_capped() {
    let params = AacPayloadParams::from_fmtp("sizelength=32", CONFIG).expect("valid");
    let mut d = AacDepacketizer::new(params);
    let header = |size: u32| [&[0x00, 0x20][..], &size.to_be_bytes()].concat();
    assert_eq!(
        d.push(packet(
            1,
            0,
            false,
            &[&header(MAX_UNIT_SIZE as u32 + 1)[..], &[1]].concat()
        )),
        Err(DepayError::TooLarge)
    );
    d.push(packet(
        2,
        0,
        false,
        &[&header(MAX_UNIT_SIZE as u32)[..], &[1]].concat(),
    ))
    .expect("largest allowed");
}

/// Packetizes the sample's audio with today's packetizer, at an MTU that
/// packs several AUs per packet and fragments none, then one that
/// fragments every AU, and gets the access units back byte for byte.
#[test]
fn round_trip_of_the_sample_audio() {
    let media = Mp4Media::from_static(SAMPLE).expect("sample parses");
    let CodecParams::Aac { config, .. } = &media.tracks()[1].codec else {
        panic!("track 1 is AAC");
    };
    let aus: Vec<Bytes> = {
        let mut reader = media.reader(0.0).only_tracks(|t| t == 1);
        std::iter::from_fn(|| reader.next_access_unit())
            .map(|au| au.expect("sample reads").data)
            .collect()
    };
    assert!(aus.len() > 400);
    for (mtu, per_call) in [(1400, 3), (100, 1)] {
        let packetizer = AacPacketizer::new(mtu);
        let mut stream = RtpStreamState::new(97, 1, 65500);
        let mut batch = PacketBatch::new();
        let mut writer = crate::codec::PayloadWriter::new();
        let mut depacketizer = AacDepacketizer::new(AacPayloadParams::hbr(config));
        let mut got = Vec::new();
        for (i, group) in aus.chunks(per_call).enumerate() {
            let refs: Vec<&[u8]> = group.iter().map(|au| &au[..]).collect();
            let ts = 7 + (i * per_call) as u32 * 1024;
            batch.clear();
            packetizer
                .packetize(&refs, &mut writer)
                .expect("packetizes");
            batch.push_unit(&mut stream, ts, &writer.finish());
            for packet in received_packets(&batch) {
                depacketizer.push(packet).expect("own packets are valid");
            }
            got.extend(units(&mut depacketizer));
        }
        let expected: Vec<(u32, Vec<u8>)> = aus
            .iter()
            .enumerate()
            .map(|(i, au)| (7 + i as u32 * 1024, au.to_vec()))
            .collect();
        assert_eq!(got, expected, "mtu {mtu}");
    }
}

/// retina depacketizes the same packets to the same raw frames and
/// timestamps.
#[test]
fn same_units_as_retina() {
    use std::num::{NonZeroU16, NonZeroU32};

    use retina::codec::{CodecItem, FrameFormat};

    let media = Mp4Media::from_static(SAMPLE).expect("sample parses");
    let codec = media.tracks()[1].codec.clone();
    let fmtp = crate::codec::fmtp(&codec);
    let mut theirs = retina::codec::Depacketizer::new(
        "audio",
        "mpeg4-generic",
        48_000,
        NonZeroU16::new(2),
        Some(&fmtp),
    )
    .expect("retina accepts our fmtp");
    theirs.set_frame_format(FrameFormat::MP4);
    let mut buf = retina::testutil::DepacketizeBuf::new(1 << 20);
    let mut ours = match crate::codec::depay::Depacketizer::new(&codec, Some(&fmtp)) {
        Ok(crate::codec::depay::Depacketizer::Aac(d)) => d,
        other => panic!("AAC depacketizer expected, got {other:?}"),
    };
    let packetizer = AacPacketizer::new(1400);
    let mut stream = RtpStreamState::new(97, 1, 0);
    let mut batch = PacketBatch::new();
    let mut writer = crate::codec::PayloadWriter::new();
    let mut reader = media.reader(0.0).only_tracks(|t| t == 1);
    let aus: Vec<Bytes> = std::iter::from_fn(|| reader.next_access_unit())
        .map(|au| au.expect("sample reads").data)
        .collect();
    let (mut compared, mut ts) = (0, 0u32);
    for group in aus.chunks(4) {
        let refs: Vec<&[u8]> = group.iter().map(|au| &au[..]).collect();
        batch.clear();
        packetizer
            .packetize(&refs, &mut writer)
            .expect("packetizes");
        batch.push_unit(&mut stream, ts, &writer.finish());
        ts += 4 * 1024;
        for packet in received_packets(&batch) {
            let meta = retina::rtp::PacketMeta {
                ctx: retina::PacketContext::dummy(),
                stream_id: 0,
                timestamp: retina::Timestamp::new(
                    i64::from(packet.timestamp),
                    NonZeroU32::new(48_000).expect("non-zero"),
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
            while let Some(item) = theirs.pull() {
                let Ok(CodecItem::AudioFrame(frame)) = item else {
                    panic!("retina yields audio frames, got {item:?}");
                };
                let unit = ours.pull().expect("as many units as retina");
                assert_eq!(unit.data[..], frame.data()[..], "frame {compared}");
                assert_eq!(i64::from(unit.rtp_timestamp), frame.timestamp().timestamp());
                compared += 1;
            }
            assert_eq!(ours.pull(), None);
        }
    }
    assert_eq!(compared, aus.len());
}
