// Tests may read the clock: times here only need to be real instants.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use super::*;
use crate::media::mp4::Mp4Media;

/// The bundled sample's first video samples (AVCC, 4-byte lengths) and
/// its SPS and PPS.
fn sample_video(count: usize) -> (Vec<(Bytes, bool)>, Bytes, Bytes) {
    let media = Mp4Media::from_static(include_bytes!("../../../media/sample.mp4")).unwrap();
    let CodecParams::H264 {
        sps,
        pps,
        nal_length_size: 4,
        ..
    } = &media.tracks()[0].codec
    else {
        panic!("the sample's first track is H.264 with 4-byte lengths");
    };
    let (sps, pps) = (sps[0].clone(), pps[0].clone());
    let mut reader = media.reader(0.0).only_tracks(|track| track == 0);
    let samples = (0..count)
        .map(|_| {
            let unit = reader.next_access_unit().unwrap().unwrap();
            (unit.data, unit.keyframe)
        })
        .collect();
    (samples, sps, pps)
}

/// The NAL units of an AVCC sample with 4-byte lengths.
fn avcc_nal_units(sample: &[u8]) -> Vec<&[u8]> {
    let mut rest = sample;
    let mut nals = Vec::new();
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let (nal, tail) = tail.split_at(u32::from_be_bytes(*length) as usize);
        nals.push(nal);
        rest = tail;
    }
    nals
}

/// `nals` as a camera sends them: an access unit delimiter, then each
/// NAL unit behind a 4-byte start code, or a 3-byte one when `short`.
fn annex_b(nals: &[&[u8]], short: bool) -> Vec<u8> {
    let start: &[u8] = if short { &[0, 0, 1] } else { &[0, 0, 0, 1] };
    let mut stream = [&[0, 0, 0, 1][..], &[0x09, 0xf0]].concat();
    for nal in nals {
        stream.extend_from_slice(start);
        stream.extend_from_slice(nal);
    }
    stream
}

/// A baseline 4:2:0 JPEG image RFC 2435 can carry (type 1; the
/// standard Huffman tables are implied when none is given).
fn baseline_jpeg(width: u16, height: u16, sof: u8) -> Vec<u8> {
    let mut jpeg = vec![0xff, 0xd8];
    for table in 0..2u8 {
        jpeg.extend_from_slice(&[0xff, 0xdb, 0x00, 67, table]);
        jpeg.extend((1..=64).map(|v: u8| v + table));
    }
    jpeg.extend_from_slice(&[0xff, sof, 0x00, 17, 8]);
    jpeg.extend_from_slice(&height.to_be_bytes());
    jpeg.extend_from_slice(&width.to_be_bytes());
    jpeg.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    jpeg.extend_from_slice(&[0xff, 0xda, 0x00, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
    jpeg.extend((0..200u8).map(|v| v & 0x7f));
    jpeg.extend_from_slice(&[0xff, 0xd9]);
    jpeg
}

fn format(codec: CameraCodec) -> CameraFormat {
    CameraFormat {
        codec,
        width: 1280,
        height: 720,
        fps: 30,
    }
}

#[test]
fn annex_b_splits_at_three_and_four_byte_start_codes() {
    // ITU-T H.264 §B.2: leading zeros, a 4-byte then a 3-byte start code,
    // and trailing zero bytes after the last NAL unit.
    let stream = [
        &[0, 0, 0, 0, 1][..],
        &[0x67, 0x42, 0x00, 0x1e],
        &[0, 0, 1],
        &[0x68, 0xce],
        &[0, 0, 0, 1],
        &[0x65, 0x88, 0x00, 0x03, 0x01],
        &[0, 0],
    ]
    .concat();
    let nals: Vec<&[u8]> = annex_b_nal_units(&stream).collect();
    assert_eq!(
        nals,
        [
            &[0x67, 0x42, 0x00, 0x1e][..],
            &[0x68, 0xce],
            &[0x65, 0x88, 0x00, 0x03, 0x01]
        ]
    );
    assert_eq!(annex_b_nal_units(&[0x65, 1, 2]).count(), 0, "no start code");
    assert_eq!(annex_b_nal_units(&[0, 0, 1, 0, 0, 1]).count(), 0);
}

#[test]
fn annex_b_access_units_become_the_files_own_samples() {
    let (samples, sps, pps) = sample_video(40);
    assert!(samples[0].1, "the sample starts with an IDR");
    for (index, (sample, keyframe)) in samples.iter().enumerate() {
        let nals = avcc_nal_units(sample);
        // A camera repeats the parameter sets before each IDR.
        let mut stream_nals: Vec<&[u8]> = Vec::new();
        if *keyframe {
            stream_nals.extend([&sps[..], &pps[..]]);
        }
        stream_nals.extend(&nals);
        let unit = annex_b_to_avcc(&annex_b(&stream_nals, index % 2 == 1));
        assert_eq!(unit.idr, *keyframe, "sample {index}");
        let expected: Vec<&[u8]> = stream_nals.clone();
        assert_eq!(avcc_nal_units(&unit.data), expected, "sample {index}");
        if *keyframe {
            assert_eq!(unit.sps.as_deref(), Some(&sps[..]));
            assert_eq!(unit.pps.as_deref(), Some(&pps[..]));
            assert_eq!(unit.data.len(), sample.len() + 8 + sps.len() + pps.len());
        } else {
            assert_eq!(
                unit.data, sample,
                "sample {index}: same bytes, AUD left out"
            );
            assert_eq!((unit.sps, unit.pps), (None, None));
        }
    }
}

#[test]
fn frame_clock_counts_90khz_from_the_first_capture_and_never_goes_back() {
    let start = Instant::now();
    let mut clock = FrameClock::new(start, u32::MAX - 1000);
    assert_eq!(clock.timestamp(start), u32::MAX - 1000);
    // 33.3 ms later, past the 32-bit wrap.
    let next = clock.timestamp(start + Duration::from_micros(33_333));
    assert_eq!(next, (u32::MAX - 1000).wrapping_add(3000));
    // A device reporting the same time again, or an earlier one.
    assert_eq!(
        clock.timestamp(start + Duration::from_micros(33_333)),
        next.wrapping_add(1)
    );
    assert_eq!(clock.timestamp(start), next.wrapping_add(2));
    assert_eq!(
        clock.timestamp(start + Duration::from_secs(1)),
        (u32::MAX - 1000).wrapping_add(90_000)
    );
}

#[test]
fn mjpeg_frames_are_keyframes_described_by_the_first_image() {
    let mut source = CameraSource::new(format(CameraCodec::Mjpeg), 7_000);
    let start = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let jpeg = baseline_jpeg(640, 480, 0xc0);
    // A first frame cut short is skipped, not refused.
    let cut = source.push(&jpeg[..40], start, start, wall).expect("waits");
    assert_eq!(cut, CameraOutput::Waiting);
    // Handed in 10 ms after its capture.
    let handed_in = start + Duration::from_millis(10);
    let CameraOutput::Start { track, clock, unit } =
        source.push(&jpeg, start, handed_in, wall).unwrap()
    else {
        panic!("the first whole image starts the path");
    };
    assert_eq!(
        track.codec,
        CodecParams::Jpeg {
            width: 640,
            height: 480
        },
        "the image's size, not the size asked for"
    );
    assert_eq!((track.index, track.timescale), (0, 90_000));
    assert_eq!(
        clock,
        ClockMapping {
            wall: wall - Duration::from_millis(10),
            rtp_timestamp: 7_000
        }
    );
    assert_eq!((unit.rtp_timestamp, unit.keyframe), (7_000, true));
    assert_eq!(unit.data, jpeg);
    let later = start + Duration::from_millis(100);
    let next = source.push(&jpeg, later, later, wall).unwrap();
    assert_eq!(
        next,
        CameraOutput::Unit(SourceUnit {
            track: 0,
            rtp_timestamp: 16_000,
            keyframe: true,
            data: Bytes::from(jpeg),
        })
    );
}

#[test]
fn an_uncarriable_jpeg_camera_is_refused_with_the_reason() {
    let mut source = CameraSource::new(format(CameraCodec::Mjpeg), 0);
    let now = Instant::now();
    let progressive = baseline_jpeg(640, 480, 0xc2);
    let error = source
        .push(&progressive, now, now, SystemTime::UNIX_EPOCH)
        .unwrap_err();
    assert!(error.to_string().contains("RFC 2435"), "{error}");
    let too_wide = baseline_jpeg(2048, 480, 0xc0);
    let error = source
        .push(&too_wide, now, now, SystemTime::UNIX_EPOCH)
        .unwrap_err();
    assert!(error.to_string().contains("2040"), "{error}");
}

#[test]
fn h264_waits_for_parameter_sets_and_restarts_when_they_change() {
    let (samples, sps, pps) = sample_video(31);
    let mut source = CameraSource::new(format(CameraCodec::H264), 0);
    let start = Instant::now();
    let wall = SystemTime::UNIX_EPOCH;
    let at = |frame: u64| start + Duration::from_micros(frame * 33_333);
    // Joined mid-group: delta pictures without parameter sets wait.
    let delta = avcc_nal_units(&samples[1].0);
    let waiting = source.push(&annex_b(&delta, false), at(0), at(0), wall);
    assert_eq!(waiting.unwrap(), CameraOutput::Waiting);
    assert_eq!(
        source
            .push(&[0, 0, 0, 1, 0x09, 0xf0], at(0), at(0), wall)
            .unwrap(),
        CameraOutput::Waiting,
        "a lone delimiter"
    );
    let idr: Vec<&[u8]> = [&sps[..], &pps[..]]
        .into_iter()
        .chain(avcc_nal_units(&samples[0].0))
        .collect();
    let CameraOutput::Start { track, unit, .. } = source
        .push(&annex_b(&idr, false), at(1), at(1), wall)
        .unwrap()
    else {
        panic!("parameter sets start the path");
    };
    assert_eq!(
        track.codec,
        CodecParams::H264 {
            sps: vec![sps.clone()],
            pps: vec![pps.clone()],
            nal_length_size: 4,
            width: 1280,
            height: 720,
        }
    );
    assert!(unit.keyframe);
    assert_eq!(unit.rtp_timestamp, 0);
    let next = source
        .push(&annex_b(&delta, false), at(2), at(2), wall)
        .unwrap();
    let CameraOutput::Unit(next) = next else {
        panic!("{next:?}");
    };
    assert!(!next.keyframe);
    assert_eq!(next.rtp_timestamp, 3_000);
    assert_eq!(next.data, samples[1].0);
    // The same parameter sets again at the next IDR: the path goes on.
    let again = source
        .push(&annex_b(&idr, false), at(3), at(3), wall)
        .unwrap();
    assert!(matches!(
        again,
        CameraOutput::Unit(SourceUnit { keyframe: true, .. })
    ));
    // Another PPS: the path is described afresh.
    let other_pps = [&pps[..], &[0x80]].concat();
    let changed: Vec<&[u8]> = [&sps[..], &other_pps[..]]
        .into_iter()
        .chain(avcc_nal_units(&samples[0].0))
        .collect();
    let restarted = source
        .push(&annex_b(&changed, false), at(4), at(4), wall)
        .unwrap();
    let CameraOutput::Start { track, unit, .. } = restarted else {
        panic!("{restarted:?}");
    };
    assert!(matches!(&track.codec, CodecParams::H264 { pps, .. } if pps[0] == other_pps));
    assert_eq!(unit.rtp_timestamp, 9_000, "the timeline goes on");
}

#[test]
fn sizes_and_formats_parse_as_the_command_line_gives_them() {
    assert_eq!(parse_frame_size("1280x720"), Ok((1280, 720)));
    assert_eq!(parse_frame_size("640X480"), Ok((640, 480)));
    for bad in ["1280", "0x720", "x", "1280x-1", "wide x tall"] {
        let error = parse_frame_size(bad).unwrap_err();
        assert!(error.contains("WIDTHxHEIGHT"), "{bad}: {error}");
    }
    assert_eq!("MJPEG".parse(), Ok(CameraCodec::Mjpeg));
    assert_eq!("h264".parse(), Ok(CameraCodec::H264));
    let error = "yuyv".parse::<CameraCodec>().unwrap_err();
    assert!(error.contains("mjpeg or h264"), "{error}");
    assert_eq!(
        format(CameraCodec::H264).to_string(),
        "h264 1280x720 at 30 fps"
    );
}
