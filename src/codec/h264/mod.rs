//! H.264 RTP payload format (RFC 6184), packetization-mode 1
//! (non-interleaved mode, §6.3): single NAL unit packets (§5.6) and FU-A
//! fragments (§5.8). STAP-A is not used: parameter sets are sent as single
//! NAL unit packets, which every receiver supports.

pub mod depay;

use std::fmt::Write as _;

use bytes::Bytes;

use super::CodecError;
use super::PayloadWriter;
use crate::rtp::RTP_HEADER_LEN;

const NAL_TYPE_IDR: u8 = 5;
const NAL_TYPE_SPS: u8 = 7;
const NAL_TYPE_PPS: u8 = 8;
const NAL_TYPE_AUD: u8 = 9;
const NAL_TYPE_FU_A: u8 = 28;
const NAL_TYPE_MASK: u8 = 0x1f;
/// Forbidden-zero and nal_ref_idc bits, carried over into the FU indicator.
const NAL_F_NRI_MASK: u8 = 0xe0;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;
/// FU indicator plus FU header.
const FU_A_OVERHEAD: usize = 2;
/// Smallest MTU that still fits one NAL payload byte in an FU-A packet.
const MIN_MTU: usize = RTP_HEADER_LEN + FU_A_OVERHEAD + 1;

/// Cuts H.264 access units into single NAL unit packets and FU-A fragments
/// (RFC 6184 §5.6, §5.8), packetization-mode 1.
#[derive(Debug)]
pub struct H264Packetizer {
    mtu: usize,
    nal_length_size: u8,
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
}

impl H264Packetizer {
    /// A packetizer producing RTP packets of at most `mtu` bytes (header
    /// included) from AVCC samples whose NAL units are prefixed by
    /// `nal_length_size`-byte lengths (ISO/IEC 14496-15 §5.3.3.1), sending
    /// `sps` and `pps` in-band before every IDR access unit so that a
    /// receiver joining mid-stream can decode (RFC 6184 §8.4).
    ///
    /// An `mtu` too small for even one byte of FU-A payload is raised to
    /// that minimum, as no packetization could honour it.
    pub fn new(mtu: usize, nal_length_size: u8, sps: Vec<Bytes>, pps: Vec<Bytes>) -> Self {
        Self {
            mtu: mtu.max(MIN_MTU),
            nal_length_size,
            sps,
            pps,
        }
    }

    /// Appends to `out` the RTP payloads of one AVCC access unit `sample`,
    /// all for the unit's timestamp, with the marker bit on the last one only
    /// (RFC 6184 §5.1). Access unit delimiters are dropped (they carry no
    /// picture data); an IDR access unit (a type 5 NAL or `keyframe`) is
    /// preceded by the configured SPS and PPS, and then any in-band copies
    /// are dropped to avoid sending them twice.
    ///
    /// A sample whose length prefixes are inconsistent produces
    /// [`CodecError::MalformedH264`] and no packets.
    pub fn packetize(
        &mut self,
        sample: &[u8],
        keyframe: bool,
        out: &mut PayloadWriter,
    ) -> Result<(), CodecError> {
        let length_size = match self.nal_length_size {
            1 | 2 | 4 => usize::from(self.nal_length_size),
            _ => {
                return Err(CodecError::MalformedH264(
                    "NAL length size is not 1, 2 or 4",
                ))
            }
        };
        // Validate the whole sample before writing anything so a corrupt
        // sample never leaves half an access unit in the batch.
        let mut idr = keyframe;
        for nal in AvccNals::new(sample, length_size) {
            idr |= nal_type(nal?) == NAL_TYPE_IDR;
        }
        let insert_params = idr && !(self.sps.is_empty() && self.pps.is_empty());
        let params = self
            .sps
            .iter()
            .chain(&self.pps)
            .filter(|set| insert_params && !set.is_empty())
            .map(|set| &set[..]);
        let nals = AvccNals::new(sample, length_size)
            .filter_map(Result::ok)
            .filter(|nal| match nal_type(nal) {
                NAL_TYPE_AUD => false,
                NAL_TYPE_SPS | NAL_TYPE_PPS => !insert_params,
                _ => true,
            });
        // Sending lags one NAL behind so the last one is known and can carry
        // the marker bit.
        let mut pending = None;
        for nal in params.chain(nals) {
            if let Some(previous) = pending.replace(nal) {
                send_nal(self.mtu, previous, false, out);
            }
        }
        if let Some(last) = pending {
            send_nal(self.mtu, last, true, out);
        }
        Ok(())
    }
}

/// The nal_unit_type of a non-empty NAL unit.
fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |header| header & NAL_TYPE_MASK)
}

/// Sends `nal` as one single NAL unit packet (RFC 6184 §5.6) when it fits,
/// else as FU-A fragments of near-equal size (§5.8), the marker going on
/// the last fragment only.
fn send_nal(mtu: usize, nal: &[u8], marker: bool, out: &mut PayloadWriter) {
    if RTP_HEADER_LEN + nal.len() <= mtu {
        out.push(marker, 0, &[nal]);
        return;
    }
    let Some((&header, body)) = nal.split_first() else {
        return;
    };
    let indicator = (header & NAL_F_NRI_MASK) | NAL_TYPE_FU_A;
    let max_fragment = mtu - RTP_HEADER_LEN - FU_A_OVERHEAD;
    // At least two fragments, since the NAL did not fit whole: §5.8 forbids
    // an FU with both S and E set.
    let count = body.len().div_ceil(max_fragment);
    let (base, longer) = (body.len() / count, body.len() % count);
    let mut rest = body;
    for i in 0..count {
        let (fragment, tail) = rest.split_at(base + usize::from(i < longer));
        rest = tail;
        let last = i + 1 == count;
        let mut fu_header = header & NAL_TYPE_MASK;
        if i == 0 {
            fu_header |= FU_START;
        }
        if last {
            fu_header |= FU_END;
        }
        out.push(marker && last, 0, &[&[indicator, fu_header], fragment]);
    }
}

/// The NAL units of an AVCC sample, each checked against the sample's
/// bounds; iteration stops after the first error.
struct AvccNals<'a> {
    rest: &'a [u8],
    length_size: usize,
}

impl<'a> AvccNals<'a> {
    fn new(sample: &'a [u8], length_size: usize) -> Self {
        Self {
            rest: sample,
            length_size,
        }
    }
}

impl<'a> Iterator for AvccNals<'a> {
    type Item = Result<&'a [u8], CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        if rest.len() < self.length_size {
            return Some(Err(CodecError::MalformedH264(
                "truncated NAL length prefix",
            )));
        }
        let (prefix, data) = rest.split_at(self.length_size);
        let len = prefix
            .iter()
            .fold(0usize, |acc, &byte| (acc << 8) | usize::from(byte));
        if len == 0 {
            return Some(Err(CodecError::MalformedH264("zero-length NAL unit")));
        }
        if len > data.len() {
            return Some(Err(CodecError::MalformedH264(
                "NAL length overruns the sample",
            )));
        }
        let (nal, tail) = data.split_at(len);
        self.rest = tail;
        Some(Ok(nal))
    }
}

/// The `a=fmtp` parameters for packetization-mode 1 (RFC 6184 §8.1):
/// `profile-level-id` from the first SPS's profile_idc, constraint flags and
/// level_idc, and `sprop-parameter-sets` as the base64 of each SPS then each
/// PPS.
pub fn fmtp(sps: &[Bytes], pps: &[Bytes]) -> String {
    let mut fmtp = String::from("packetization-mode=1");
    if let Some(&[profile, constraints, level]) = sps.first().and_then(|s| s.get(1..4)) {
        // Writing to a String cannot fail.
        let _ = write!(
            fmtp,
            ";profile-level-id={profile:02x}{constraints:02x}{level:02x}"
        );
    }
    let mut separator = ";sprop-parameter-sets=";
    for set in sps.iter().chain(pps).filter(|set| !set.is_empty()) {
        fmtp.push_str(separator);
        base64_encode(set, &mut fmtp);
        separator = ",";
    }
    fmtp
}

/// Appends the base64 of `data` (RFC 4648 §4, padded), as RFC 6184 §8.1
/// requires for sprop-parameter-sets.
fn base64_encode(data: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let group = chunk.iter().enumerate().fold(0u32, |acc, (i, &byte)| {
            acc | u32::from(byte) << (16 - 8 * i)
        });
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (group >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: [u8; 25] = [
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xba, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc8, 0xf1, 0x83, 0x19, 0x60,
    ];
    const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    /// An AVCC sample of `nals` with 4-byte lengths.
    fn avcc(nals: &[&[u8]]) -> Vec<u8> {
        avcc_sized(nals, 4)
    }

    fn avcc_sized(nals: &[&[u8]], size: usize) -> Vec<u8> {
        let mut sample = Vec::new();
        for nal in nals {
            sample.extend_from_slice(&nal.len().to_be_bytes()[8 - size..]);
            sample.extend_from_slice(nal);
        }
        sample
    }

    fn packetizer(mtu: usize) -> H264Packetizer {
        H264Packetizer::new(
            mtu,
            4,
            vec![Bytes::from_static(&SPS)],
            vec![Bytes::from_static(&PPS)],
        )
    }

    /// A NAL of `len` bytes with header `header` and a recognisable body.
    fn nal(header: u8, len: usize) -> Vec<u8> {
        std::iter::once(header)
            .chain((1..len).map(|i| (i % 251) as u8))
            .collect()
    }

    fn run(p: &mut H264Packetizer, sample: &[u8], keyframe: bool) -> Vec<Vec<u8>> {
        let mut stream = crate::rtp::RtpStreamState::new(96, 0x1234_5678, 100);
        let mut writer = PayloadWriter::new();
        p.packetize(sample, keyframe, &mut writer)
            .expect("valid sample");
        crate::codec::wire_packets(&writer.finish(), &mut stream, 9000)
    }

    fn marker(packet: &[u8]) -> bool {
        packet[1] & 0x80 != 0
    }

    /// Reassembles the NAL units carried by single NAL and FU-A packets.
    fn depacketize(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut partial: Option<Vec<u8>> = None;
        for packet in packets {
            let payload = &packet[RTP_HEADER_LEN..];
            if payload[0] & 0x1f != NAL_TYPE_FU_A {
                assert!(partial.is_none(), "FU-A interrupted");
                nals.push(payload.to_vec());
                continue;
            }
            let (indicator, fu_header) = (payload[0], payload[1]);
            assert_eq!(fu_header & 0x20, 0, "R bit must be 0");
            if fu_header & FU_START != 0 {
                assert!(partial.is_none());
                partial = Some(vec![(indicator & 0xe0) | (fu_header & 0x1f)]);
            }
            let buf = partial.as_mut().expect("FU-A without start");
            buf.extend_from_slice(&payload[2..]);
            if fu_header & FU_END != 0 {
                nals.push(partial.take().expect("checked above"));
            }
        }
        assert!(partial.is_none(), "FU-A without end");
        nals
    }

    #[test]
    fn single_nal_unit_packet_exact_bytes() {
        let sample = avcc(&[&[0x41, 0x9a, 0x02, 0x03]]);
        let packets = run(&mut packetizer(1400), &sample, false);
        assert_eq!(
            packets,
            vec![vec![
                0x80, 0xe0, 0x00, 100, 0x00, 0x00, 0x23, 0x28, 0x12, 0x34, 0x56, 0x78, 0x41, 0x9a,
                0x02, 0x03
            ]]
        );
    }

    #[test]
    fn fu_a_bits_and_nri_preserved() {
        let big = nal(0x65, 3000);
        let packets = run(&mut packetizer(1400), &avcc(&[&big]), false);
        // SPS, PPS, then three fragments.
        assert_eq!(packets.len(), 5);
        let fus = &packets[2..];
        for (i, packet) in fus.iter().enumerate() {
            let (indicator, fu_header) = (packet[12], packet[13]);
            assert_eq!(indicator, 0x60 | 28, "F|NRI of 0x65 kept, type 28");
            assert_eq!(fu_header & 0x1f, 5);
            assert_eq!(fu_header & FU_START != 0, i == 0);
            assert_eq!(fu_header & FU_END != 0, i == fus.len() - 1);
            assert_eq!(fu_header & 0x20, 0);
        }
        // The original header is not repeated: payloads add up to body size.
        let carried: usize = fus.iter().map(|p| p.len() - 14).sum();
        assert_eq!(carried, big.len() - 1);
        assert_eq!(&fus[0][14..20], &big[1..7]);
    }

    #[test]
    fn fu_a_reassembles_and_respects_mtu() {
        let big = nal(0x25, 5000);
        let small = nal(0x01, 200);
        let sample = avcc(&[&big, &small, &big]);
        // An MTU below MIN_MTU is raised to it.
        for mtu in [0, MIN_MTU, 100, 576, 1400, 5012, 5013] {
            let packets = run(&mut packetizer(mtu), &sample, false);
            let limit = mtu.max(MIN_MTU);
            assert!(packets.iter().all(|p| p.len() <= limit), "mtu {mtu}");
            let mut expected = vec![SPS.to_vec(), PPS.to_vec()];
            expected.extend([big.clone(), small.clone(), big.clone()]);
            assert_eq!(depacketize(&packets), expected, "mtu {mtu}");
        }
    }

    #[test]
    fn nal_exactly_filling_mtu_is_not_fragmented() {
        let exact = nal(0x41, 1388);
        let packets = run(&mut packetizer(1400), &avcc(&[&exact]), false);
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].len(), 1400);
        let over = nal(0x41, 1389);
        let packets = run(&mut packetizer(1400), &avcc(&[&over]), false);
        assert_eq!(packets.len(), 2);
    }

    #[test]
    fn marker_only_on_last_packet_and_same_timestamp() {
        let sample = avcc(&[&nal(0x41, 10), &nal(0x41, 3000)]);
        let packets = run(&mut packetizer(1400), &sample, false);
        assert_eq!(
            packets.iter().map(|p| marker(p)).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        assert_eq!(packets[3][13] & FU_END, FU_END);
        assert!(packets.iter().all(|p| p[4..8] == 9000u32.to_be_bytes()));
    }

    #[test]
    fn parameter_sets_before_idr_only() {
        let mut p = packetizer(1400);
        let idr = nal(0x65, 20);
        let packets = run(&mut p, &avcc(&[&idr]), false);
        assert_eq!(depacketize(&packets), [SPS.to_vec(), PPS.to_vec(), idr]);

        let non_idr = nal(0x41, 20);
        let packets = run(&mut p, &avcc(&[&non_idr]), false);
        assert_eq!(depacketize(&packets), std::slice::from_ref(&non_idr));

        // The sample's keyframe flag alone also triggers insertion.
        let packets = run(&mut p, &avcc(&[&non_idr]), true);
        assert_eq!(depacketize(&packets), [SPS.to_vec(), PPS.to_vec(), non_idr]);
    }

    #[test]
    fn in_band_parameter_sets_and_aud_handling() {
        let aud: &[u8] = &[0x09, 0xf0];
        let inband_sps = nal(0x67, 8);
        let inband_pps = nal(0x68, 4);
        let idr = nal(0x65, 30);
        let sample = avcc(&[aud, &inband_sps, &inband_pps, &idr]);
        let packets = run(&mut packetizer(1400), &sample, true);
        assert_eq!(
            depacketize(&packets),
            [SPS.to_vec(), PPS.to_vec(), idr.clone()]
        );

        // Without configured sets, in-band ones are the only copy: keep them.
        let mut bare = H264Packetizer::new(1400, 4, Vec::new(), Vec::new());
        let packets = run(&mut bare, &sample, true);
        assert_eq!(depacketize(&packets), [inband_sps, inband_pps, idr]);
    }

    #[test]
    fn avcc_length_sizes_2_and_1() {
        let a = nal(0x41, 300);
        let b = nal(0x01, 7);
        for size in [1u8, 2] {
            let a = if size == 1 { &a[..200] } else { &a[..] };
            let sample = avcc_sized(&[a, &b], usize::from(size));
            let mut p = H264Packetizer::new(1400, size, Vec::new(), Vec::new());
            let packets = run(&mut p, &sample, false);
            assert_eq!(depacketize(&packets), [a.to_vec(), b.clone()]);
        }
    }

    #[test]
    fn malformed_samples_are_errors_without_packets() {
        let cases: [(&[u8], u8); 6] = [
            (&[0, 0, 0, 5, 0x41, 1, 2], 4),       // overruns
            (&[0, 0, 0, 0, 0x41], 4),             // zero length
            (&[0, 0, 0, 1, 0x41, 0, 0], 4),       // truncated prefix
            (&[0xff, 0xff, 0xff, 0xff, 0x41], 4), // huge length
            (&[0, 3, 0x41, 1, 2, 0], 2),          // truncated prefix (2-byte)
            (&[0, 1, 0x41], 3),                   // unsupported length size
        ];
        for (sample, size) in cases {
            let mut p = H264Packetizer::new(1400, size, vec![Bytes::from_static(&SPS)], Vec::new());
            let mut writer = PayloadWriter::new();
            let result = p.packetize(sample, true, &mut writer);
            assert!(
                matches!(result, Err(CodecError::MalformedH264(_))),
                "{sample:?}"
            );
            assert!(writer.is_empty());
        }
    }

    #[test]
    fn sequence_numbers_are_consecutive() {
        let sample = avcc(&[&nal(0x65, 6000), &nal(0x65, 10)]);
        let mut p = packetizer(500);
        let mut stream = crate::rtp::RtpStreamState::new(96, 1, 65530);
        let mut writer = PayloadWriter::new();
        p.packetize(&sample, true, &mut writer)
            .expect("valid sample");
        p.packetize(&sample, false, &mut writer)
            .expect("valid sample");
        let seqs: Vec<u16> = crate::codec::wire_packets(&writer.finish(), &mut stream, 0)
            .iter()
            .map(|p| u16::from_be_bytes([p[2], p[3]]))
            .collect();
        for pair in seqs.windows(2) {
            assert_eq!(pair[1], pair[0].wrapping_add(1));
        }
        assert_eq!(seqs[0], 65530);
        assert_eq!(stream.next_seq, 65530u16.wrapping_add(seqs.len() as u16));
    }

    #[test]
    fn fmtp_for_known_parameter_sets() {
        let fmtp = fmtp(&[Bytes::from_static(&SPS)], &[Bytes::from_static(&PPS)]);
        assert_eq!(
            fmtp,
            "packetization-mode=1;profile-level-id=64001f;\
             sprop-parameter-sets=Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==,aOvjyyLA"
        );
    }

    #[test]
    fn base64_padding() {
        let mut out = String::new();
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xfb\xff"] {
            base64_encode(input, &mut out);
            out.push('|');
        }
        assert_eq!(out, "|Zg==|Zm8=|Zm9v|Zm9vYg==|+/8=|");
    }
}
