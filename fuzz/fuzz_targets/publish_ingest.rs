//! A publisher's whole receiving path (RTSP RECORD): arbitrary RTP and
//! RTCP datagrams of an announced H.264 + AAC stream, arriving at
//! arbitrary times, go through the reorder buffers, depacketizers and the
//! live stream's packetizers without a panic, and what the path keeps for
//! joiners stays within its byte limit.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtpcast::live::publisher::Publisher;
use rtpcast::live::stream::LiveStream;
use rtpcast::sdp::announce::parse_announcement;

/// As `ffmpeg -f rtsp` announces an H.264 + AAC stream.
const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fuzz\r\nt=0 0\r\n\
    m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
    a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAHtkBQXsBEAAAAwAQAAADAyDxYuSA,aMuMsg==\r\n\
    a=control:streamid=0\r\n\
    m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
    a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n\
    a=control:streamid=1\r\n";

const GOP_CACHE_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let announcement = parse_announcement(SDP.as_bytes()).expect("the fixed SDP parses");
    let mut publisher = Publisher::new(&announcement.tracks, 1, "fuzz".into()).expect("receivable");
    let tracks = announcement.tracks.iter().map(|t| t.info.clone()).collect();
    let mut stream = LiveStream::new(tracks, 1400, GOP_CACHE_BYTES);
    let start = Instant::now();
    let mut now = start;
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // Each datagram: a control byte (track, RTP or RTCP, milliseconds
    // passed), a length byte, then that many bytes.
    let mut rest = data;
    while let [control, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (datagram, tail) = tail.split_at(len);
        rest = tail;
        now += Duration::from_millis(u64::from(control >> 2));
        let track = usize::from(control & 1);
        let at = wall + (now - start);
        if control & 2 == 0 {
            publisher.handle_rtp(track, &Bytes::copy_from_slice(datagram), now);
        } else if let Some(mapping) = publisher.handle_rtcp(track, datagram, now, at) {
            stream.set_clock(track, mapping);
        }
        while let Some(unit) = publisher.poll_unit(now) {
            let _ = stream.publish(unit, now, at);
        }
        while publisher.poll_report(now).is_some() {}
        assert!(stream.stats().gop_cache_bytes <= GOP_CACHE_BYTES);
    }
});
