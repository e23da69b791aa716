//! RFC 2435 with real JPEG images: ffmpeg's and GStreamer's MJPEG encoders
//! make them, rtpcast packetizes them into many small packets and
//! depacketizes them again, and ffmpeg must decode the rebuilt image to
//! the very pixels of the original. Images RFC 2435 cannot carry are
//! refused with a reason naming the limit.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use common::*;
use rtpcast::codec::depay::{Depacketizer, ReceivedPacket};
use rtpcast::codec::jpeg::check_frame;
use rtpcast::codec::{Packetizer, PayloadWriter};
use rtpcast::media::{AccessUnit, CodecParams};

/// Runs `program args`, panicking with its stderr if it fails.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One 320x240 frame of ffmpeg's testsrc2 as a JPEG made by ffmpeg's MJPEG
/// encoder with `options`; `None` when ffmpeg is missing.
fn ffmpeg_jpeg(dir: &Path, size: &str, options: &[&str]) -> Option<Vec<u8>> {
    if !require_tool("ffmpeg") {
        return None;
    }
    let out = dir.join("ffmpeg.jpg");
    let source = format!("testsrc2=size={size}:rate=1");
    let args: Vec<&str> = [
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &source,
            "-frames:v",
            "1",
            "-c:v",
            "mjpeg",
        ],
        options,
        &["-f", "mjpeg", out.to_str().expect("UTF-8 path")],
    ]
    .concat();
    run("ffmpeg", &args);
    Some(std::fs::read(out).expect("reading ffmpeg's JPEG"))
}

/// The raw pixels ffmpeg decodes `jpeg` to.
fn decode(dir: &Path, jpeg: &[u8]) -> Vec<u8> {
    let path = dir.join("decode.jpg");
    std::fs::write(&path, jpeg).expect("writing the JPEG");
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "rawvideo", "-"])
        .output()
        .expect("running ffmpeg");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );
    assert!(!output.stdout.is_empty());
    output.stdout
}

/// Packetizes `jpeg` for `mtu`-byte packets, checks the packets, and
/// returns the image the depacketizer rebuilds with the RFC 2435 type of
/// the first packet.
fn round_trip(jpeg: &[u8], mtu: usize) -> (Vec<u8>, u8) {
    let (width, height) = check_frame(jpeg).expect("carriable image");
    let codec = CodecParams::Jpeg { width, height };
    let au = AccessUnit {
        track: 0,
        dts: 0,
        pts: 0,
        duration: 3000,
        keyframe: true,
        data: Bytes::copy_from_slice(jpeg),
    };
    let mut writer = PayloadWriter::new();
    let payloads = Packetizer::new(&codec, mtu)
        .packetize(&au, &mut writer)
        .expect("carriable image");
    assert!(payloads.len() > 20, "only {} packets", payloads.len());
    let mut depacketizer = Depacketizer::new(&codec, None).expect("JPEG needs no fmtp");
    let mut rtp_type = None;
    for (seq, payload) in payloads.iter().enumerate() {
        assert!(12 + payload.bytes.len() <= mtu);
        assert_eq!(payload.marker, seq + 1 == payloads.len());
        rtp_type.get_or_insert(payload.bytes[4]);
        depacketizer
            .push(ReceivedPacket {
                sequence_number: seq as u16,
                timestamp: 90_000,
                marker: payload.marker,
                payload: payload.bytes,
            })
            .expect("our own packets");
    }
    let unit = depacketizer.pull().expect("one image");
    assert!(unit.keyframe && !unit.damaged);
    (unit.data.to_vec(), rtp_type.expect("at least one packet"))
}

/// Round trip of `jpeg`, whose pixels must survive unchanged.
fn assert_same_pixels(dir: &Path, jpeg: &[u8], expected_type: u8) {
    let (rebuilt, rtp_type) = round_trip(jpeg, 300);
    assert_eq!(rtp_type, expected_type);
    assert_ne!(rebuilt, jpeg, "headers are rebuilt, not copied");
    let original = decode(dir, jpeg);
    assert!(decode(dir, &rebuilt) == original, "pixels differ");
}

#[test]
fn ffmpeg_420_with_standard_tables_round_trips_to_the_same_pixels() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(jpeg) = ffmpeg_jpeg(dir.path(), "320x240", &["-huffman", "default"]) else {
        return;
    };
    assert_same_pixels(dir.path(), &jpeg, 1);
}

#[test]
fn ffmpeg_slices_give_restart_markers_and_round_trip() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Slice threads make ffmpeg write DRI and RST markers.
    let options = [
        "-huffman",
        "default",
        "-threads",
        "4",
        "-thread_type",
        "slice",
    ];
    let Some(jpeg) = ffmpeg_jpeg(dir.path(), "320x240", &options) else {
        return;
    };
    assert!(jpeg.windows(2).any(|m| m == [0xff, 0xdd]), "no DRI");
    assert_same_pixels(dir.path(), &jpeg, 65);
}

#[test]
fn gstreamer_422_round_trips_as_type_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    if !require_tool("ffmpeg") || !require_tool("gst-launch-1.0") {
        return;
    }
    // libjpeg writes 4:2:2 as Y 2x1, the layout of type 0, and the
    // standard Huffman tables.
    let out = dir.path().join("gst.jpg");
    let location = format!("location={}", out.to_str().expect("UTF-8 path"));
    run(
        "gst-launch-1.0",
        &[
            "-q",
            "videotestsrc",
            "num-buffers=1",
            "!",
            "video/x-raw,format=Y42B,width=320,height=240",
            "!",
            "jpegenc",
            "!",
            "filesink",
            &location,
        ],
    );
    let jpeg = std::fs::read(out).expect("reading GStreamer's JPEG");
    assert_same_pixels(dir.path(), &jpeg, 0);
}

#[test]
fn uncarriable_ffmpeg_images_are_refused_with_the_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: [(&str, &[&str], &str); 4] = [
        // ffmpeg's default: Huffman tables optimised for the image.
        (
            "320x240",
            &[],
            "Huffman tables other than the standard ones",
        ),
        (
            "320x240",
            &["-huffman", "default", "-pix_fmt", "yuvj444p"],
            "sampling factors Y 1x2, Cb 1x2, Cr 1x2",
        ),
        // ffmpeg codes 4:2:2 in 16x16 MCUs, not type 0's 16x8.
        (
            "320x240",
            &["-huffman", "default", "-pix_fmt", "yuvj422p"],
            "sampling factors Y 2x2, Cb 1x2, Cr 1x2",
        ),
        (
            "2048x16",
            &["-huffman", "default"],
            "JPEG width 2048 exceeds RFC 2435's 2040-pixel limit",
        ),
    ];
    for (size, options, reason) in cases {
        let Some(jpeg) = ffmpeg_jpeg(dir.path(), size, options) else {
            return;
        };
        let error = check_frame(&jpeg).expect_err(reason).to_string();
        assert!(error.contains(reason), "{options:?}: {error}");
        let codec = CodecParams::Jpeg {
            width: 320,
            height: 240,
        };
        let au = AccessUnit {
            track: 0,
            dts: 0,
            pts: 0,
            duration: 3000,
            keyframe: true,
            data: Bytes::from(jpeg),
        };
        let mut writer = PayloadWriter::new();
        let refused = Packetizer::new(&codec, 1400).packetize(&au, &mut writer);
        assert_eq!(refused.expect_err(reason).to_string(), error);
    }
}
