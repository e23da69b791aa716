//! The H.264 stream the bench publishes: a short `testsrc2` clip that
//! ffmpeg encodes at start-up (x264, zero-latency tuning, one IDR a GOP,
//! access unit delimiters to split it at), cut into RTP payloads once by
//! the crate's own packetizer and looped on a timestamp that keeps rising.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::process::{Command, Stdio};

use bytes::Bytes;
use rtpcast::codec::{self, Packetizer, PayloadWriter};
use rtpcast::media::{AccessUnit, CodecParams};

/// Picture size of the clip.
const WIDTH: u16 = 1280;
/// Picture height of the clip.
const HEIGHT: u16 = 720;
/// GOPs in the clip before it loops.
const GOPS: u32 = 2;
/// The RTP clock of H.264 (RFC 6184 §8.2.1).
pub(crate) const CLOCK_RATE: u32 = 90_000;
/// Payload type announced for the track.
pub(crate) const PAYLOAD_TYPE: u8 = 96;
/// Largest RTP packet, header included: the bench packetizes with the
/// size it passes the server as `--mtu`, so that the server's packets of
/// a unit carry the same payloads as the publisher's.
pub(crate) const MTU: usize = 1400;
/// RTP header length (RFC 3550 §5.1, no CSRC, no extension).
pub(crate) const RTP_HEADER_LEN: usize = 12;

/// H.264 NAL unit types (ITU-T H.264 Table 7-1).
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// One access unit, cut into RTP payloads.
pub(crate) struct Unit {
    /// An IDR picture (with SPS and PPS in front).
    pub(crate) keyframe: bool,
    /// Its payloads in order, the marker set on the last.
    pub(crate) payloads: Vec<Bytes>,
}

/// The clip, ready to send.
pub(crate) struct Stream {
    /// Its codec parameters (SPS, PPS) for the SDP.
    pub(crate) codec: CodecParams,
    /// Frames a second.
    pub(crate) fps: u32,
    /// Its access units in decoding (= presentation: no B-frames) order.
    pub(crate) units: Vec<Unit>,
}

impl Stream {
    /// Encodes `GOPS` GOPs of one second at `fps` frames a second.
    pub(crate) fn encode(fps: u32) -> anyhow::Result<Stream> {
        let source = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={fps}");
        let output = Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i", &source])
            .args(["-frames:v", &(fps * GOPS).to_string()])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
            ])
            .args(["-crf", "30", "-g", &fps.to_string()])
            .args(["-x264-params", "aud=1:scenecut=0"])
            .args(["-bsf:v", "h264_mp4toannexb", "-f", "h264", "-"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| anyhow::anyhow!("running ffmpeg: {e}"))?;
        if !output.status.success() {
            anyhow::bail!(
                "ffmpeg failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let access_units = split_access_units(&output.stdout);
        let first = access_units
            .first()
            .ok_or_else(|| anyhow::anyhow!("ffmpeg produced no access unit"))?;
        let sets = |kind| -> Vec<Bytes> {
            first
                .iter()
                .filter(|nal| nal_type(nal) == kind)
                .map(|nal| Bytes::copy_from_slice(nal))
                .collect()
        };
        let codec = CodecParams::H264 {
            sps: sets(NAL_SPS),
            pps: sets(NAL_PPS),
            nal_length_size: 4,
            width: WIDTH,
            height: HEIGHT,
        };
        let mut packetizer = Packetizer::new(&codec, MTU);
        let mut writer = PayloadWriter::new();
        let mut units = Vec::with_capacity(access_units.len());
        for (index, nals) in access_units.iter().enumerate() {
            let keyframe = nals.iter().any(|nal| nal_type(nal) == NAL_IDR);
            let mut data = Vec::new();
            for nal in nals.iter().filter(|nal| nal_type(nal) != NAL_AUD) {
                data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                data.extend_from_slice(nal);
            }
            let unit = AccessUnit {
                track: 0,
                dts: index as i64,
                pts: index as i64,
                duration: 1,
                keyframe,
                data: data.into(),
            };
            let payloads = packetizer.packetize(&unit, &mut writer)?;
            units.push(Unit {
                keyframe,
                payloads: payloads.iter().map(|p| p.bytes).collect(),
            });
        }
        if !units.first().is_some_and(|u| u.keyframe) {
            anyhow::bail!("the encoded clip does not start with an IDR picture");
        }
        Ok(Stream { codec, fps, units })
    }

    /// RTP clock ticks from one frame to the next.
    pub(crate) fn frame_ticks(&self) -> u32 {
        CLOCK_RATE / self.fps
    }

    /// The ANNOUNCE body: one H.264 track, control `streamid=0`.
    pub(crate) fn sdp(&self) -> String {
        format!(
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=rtpcast live bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=video 0 RTP/AVP {PAYLOAD_TYPE}\r\na=rtpmap:{PAYLOAD_TYPE} {}\r\n\
             a=fmtp:{PAYLOAD_TYPE} {}\r\na=control:streamid=0\r\n",
            codec::rtpmap(&self.codec),
            codec::fmtp(&self.codec)
        )
    }

    /// Payload bytes per second, RTP headers left out.
    pub(crate) fn bitrate(&self) -> f64 {
        let bytes: usize = self
            .units
            .iter()
            .flat_map(|u| &u.payloads)
            .map(Bytes::len)
            .sum();
        bytes as f64 * 8.0 * f64::from(self.fps) / self.units.len() as f64
    }

    /// RTP packets per second.
    pub(crate) fn packet_rate(&self) -> f64 {
        let packets: usize = self.units.iter().map(|u| u.payloads.len()).sum();
        packets as f64 * f64::from(self.fps) / self.units.len() as f64
    }

    /// Payload bytes of the first keyframe.
    pub(crate) fn keyframe_bytes(&self) -> usize {
        self.units[0].payloads.iter().map(Bytes::len).sum()
    }
}

/// The nal_unit_type of a NAL unit (its first byte's low five bits).
pub(crate) fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |header| header & 0x1f)
}

/// The NAL units of an Annex B byte stream (ITU-T H.264 Annex B), grouped
/// into access units at each access unit delimiter.
fn split_access_units(stream: &[u8]) -> Vec<Vec<&[u8]>> {
    let starts: Vec<usize> = (0..stream.len().saturating_sub(2))
        .filter(|&i| stream[i..i + 3] == [0, 0, 1])
        .map(|i| i + 3)
        .collect();
    let mut units: Vec<Vec<&[u8]>> = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(stream.len(), |next| next - 3);
        // The zero byte of a following four-byte start code (and any
        // trailing_zero_8bits) is not part of the NAL unit.
        let nal = &stream[start..end];
        let nal = &nal[..nal.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1)];
        if nal.is_empty() {
            continue;
        }
        match units.last_mut() {
            Some(unit) if nal_type(nal) != NAL_AUD => unit.push(nal),
            _ => units.push(vec![nal]),
        }
    }
    units
}

/// An RTP packet as the bench matches it between publisher and viewer:
/// its timestamp and a hash of its payload. The server rewrites sequence
/// numbers and SSRC per viewer, but keeps the publisher's timestamps
/// and, packetizing with the same MTU, the same payloads.
pub(crate) type PacketKey = (u32, u64);

/// The parts of a received RTP packet the bench reads (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RtpView<'a> {
    /// Sequence number.
    pub(crate) sequence: u16,
    /// RTP timestamp.
    pub(crate) timestamp: u32,
    /// Marker bit: the last packet of an access unit (RFC 6184 §5.1).
    pub(crate) marker: bool,
    /// The payload.
    pub(crate) payload: &'a [u8],
}

impl<'a> RtpView<'a> {
    /// Parses `packet`; `None` if it is not RTP version 2 or is truncated.
    pub(crate) fn parse(packet: &'a [u8]) -> Option<RtpView<'a>> {
        if packet.len() < RTP_HEADER_LEN || packet[0] >> 6 != 2 {
            return None;
        }
        let csrc = usize::from(packet[0] & 0x0f) * 4;
        let mut start = RTP_HEADER_LEN + csrc;
        if packet[0] & 0x10 != 0 {
            let words = packet.get(start + 2..start + 4)?;
            start += 4 + usize::from(u16::from_be_bytes([words[0], words[1]])) * 4;
        }
        let mut end = packet.len();
        if packet[0] & 0x20 != 0 {
            end = end.checked_sub(usize::from(*packet.last()?))?;
        }
        Some(RtpView {
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            marker: packet[1] & 0x80 != 0,
            payload: packet.get(start..end)?,
        })
    }

    /// The key it is matched by.
    pub(crate) fn key(&self) -> PacketKey {
        (self.timestamp, payload_hash(self.payload))
    }

    /// Whether the payload holds (the start of) an IDR slice: a single
    /// NAL unit packet of type 5 or an FU-A of one (RFC 6184 §5.6, §5.8).
    pub(crate) fn carries_idr(&self) -> bool {
        match nal_type(self.payload) {
            NAL_IDR => true,
            28 => self.payload.get(1).is_some_and(|fu| fu & 0x1f == NAL_IDR),
            _ => false,
        }
    }

    /// Whether it continues an FU-A NAL unit begun in an earlier packet,
    /// so that a unit cannot start with it.
    pub(crate) fn continues_fragment(&self) -> bool {
        nal_type(self.payload) == 28 && self.payload.get(1).is_some_and(|fu| fu & 0x80 == 0)
    }
}

/// A hash of payload bytes; the same in publisher and viewer.
pub(crate) fn payload_hash(payload: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}
