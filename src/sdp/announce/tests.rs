use super::*;

/// The ANNOUNCE body of `ffmpeg -re -i clip.mp4 -c copy -f rtsp rtsp://…`
/// (FFmpeg 5.1, 320x240 H.264 High and 44.1 kHz stereo AAC-LC), captured
/// from the wire.
const FFMPEG_ANNOUNCE: &str = "v=0\r\n\
o=- 0 0 IN IP4 127.0.0.1\r\n\
s=No Name\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
a=tool:libavformat LIBAVFORMAT_VERSION\r\n\
m=video 0 RTP/AVP 96\r\n\
b=AS:287\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwMg8UKZYA==,aOvjyyLA; profile-level-id=64000D\r\n\
a=control:streamid=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
b=AS:127\r\n\
a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=121056E500\r\n\
a=control:streamid=1\r\n";

const FFMPEG_SPS: [u8; 25] = [
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
];
const FFMPEG_PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// What GStreamer's rtspclientsink announces (its SDP layout, with
/// parameter sets of a real 640x480 Constrained Baseline stream): an
/// absolute session control, `npt=now-`, and RFC 7273 clock lines.
const GSTREAMER_ANNOUNCE: &str = "v=0\r\n\
o=- 1188340656180883 1 IN IP4 127.0.0.1\r\n\
s=Session streamed with GStreamer\r\n\
i=rtsp-server\r\n\
t=0 0\r\n\
a=tool:GStreamer\r\n\
a=type:broadcast\r\n\
a=range:npt=now-\r\n\
a=control:rtsp://127.0.0.1:8554/live\r\n\
m=video 0 RTP/AVP 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtpmap:96 H264/90000\r\n\
a=framerate:30\r\n\
a=fmtp:96 packetization-mode=1;profile-level-id=42c01e;sprop-parameter-sets=Z0LAHtkAoD2wEQAAAwABAAADADwPFi5I,aMuDyyA=;level-asymmetry-allowed=1\r\n\
a=ts-refclk:local\r\n\
a=mediaclk:sender\r\n\
a=control:stream=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1190;sizelength=13;indexlength=3;indexdeltalength=3\r\n\
a=ts-refclk:local\r\n\
a=mediaclk:sender\r\n\
a=control:stream=1\r\n";

const GST_SPS: [u8; 24] = [
    0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x3d, 0xb0, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00,
    0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48,
];
const GST_PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];

/// A session with the given media sections (each `m=` line and its
/// attributes, CRLF-terminated).
fn sdp(medias: &str) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n{medias}")
}

/// An H.264 section with payload type 96 and the given fmtp parameters.
fn h264(fmtp: &str) -> String {
    format!("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 {fmtp}\r\n")
}

/// An AAC section with payload type 97, the given rtpmap encoding and
/// fmtp parameters.
fn aac(rtpmap: &str, fmtp: &str) -> String {
    format!("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 {rtpmap}\r\na=fmtp:97 {fmtp}\r\n")
}

const HBR: &str = "mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3";

fn parse(text: &str) -> Result<Announcement, AnnounceError> {
    parse_announcement(text.as_bytes())
}

fn codec_of(text: &str) -> CodecParams {
    let announcement = parse(text).expect("announcement parses");
    assert_eq!(announcement.tracks.len(), 1, "{announcement:?}");
    announcement.tracks[0].info.codec.clone()
}

fn skip_reason(text: &str) -> SkipReason {
    match parse(text) {
        Err(AnnounceError::NoPlayableTrack(skipped)) => {
            assert_eq!(skipped.len(), 1);
            assert_eq!(skipped[0].media_index, 0);
            skipped[0].reason.clone()
        }
        other => panic!("expected one skipped section, got {other:?}"),
    }
}

fn track_error(text: &str) -> TrackError {
    match parse(text) {
        Err(AnnounceError::InvalidTrack {
            media_index: 0,
            error,
        }) => error,
        other => panic!("expected an invalid first section, got {other:?}"),
    }
}

#[test]
fn ffmpeg_announce() {
    let announcement = parse(FFMPEG_ANNOUNCE).expect("ffmpeg SDP parses");
    assert_eq!(announcement.control, None);
    assert_eq!(announcement.range, None);
    assert!(announcement.skipped.is_empty());
    assert_eq!(
        announcement.tracks,
        [
            AnnouncedTrack {
                media_index: 0,
                control: Some("streamid=0".into()),
                payload_type: 96,
                info: TrackInfo {
                    index: 0,
                    codec: CodecParams::H264 {
                        sps: vec![Bytes::from_static(&FFMPEG_SPS)],
                        pps: vec![Bytes::from_static(&FFMPEG_PPS)],
                        nal_length_size: 4,
                        width: 320,
                        height: 240,
                    },
                    timescale: 90_000,
                    duration: 0,
                },
                fmtp: Some(
                    "packetization-mode=1; sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwMg8UKZYA==,\
                     aOvjyyLA; profile-level-id=64000D"
                        .into()
                ),
            },
            AnnouncedTrack {
                media_index: 1,
                control: Some("streamid=1".into()),
                payload_type: 97,
                info: TrackInfo {
                    index: 1,
                    codec: CodecParams::Aac {
                        config: Bytes::from_static(&[0x12, 0x10, 0x56, 0xe5, 0x00]),
                        sample_rate: 44_100,
                        channels: 2,
                    },
                    timescale: 44_100,
                    duration: 0,
                },
                fmtp: Some(
                    "profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;\
                     indexdeltalength=3; config=121056E500"
                        .into()
                ),
            },
        ]
    );
}

#[test]
fn ffmpeg_fmtp_builds_depacketizers() {
    let announcement = parse(FFMPEG_ANNOUNCE).expect("ffmpeg SDP parses");
    for track in &announcement.tracks {
        crate::codec::depay::Depacketizer::new(&track.info.codec, track.fmtp.as_deref())
            .expect("depacketizer for an announced track");
    }
}

#[test]
fn gstreamer_announce() {
    let announcement = parse(GSTREAMER_ANNOUNCE).expect("GStreamer SDP parses");
    assert_eq!(
        announcement.control.as_deref(),
        Some("rtsp://127.0.0.1:8554/live")
    );
    assert_eq!(
        announcement.range,
        Some(NptRange {
            start: None,
            end: None
        })
    );
    let [video, audio] = &announcement.tracks[..] else {
        panic!("two tracks: {announcement:?}");
    };
    assert_eq!(video.control.as_deref(), Some("stream=0"));
    assert_eq!(
        video.info.codec,
        CodecParams::H264 {
            sps: vec![Bytes::from_static(&GST_SPS)],
            pps: vec![Bytes::from_static(&GST_PPS)],
            nal_length_size: 4,
            width: 640,
            height: 480,
        }
    );
    assert_eq!(audio.control.as_deref(), Some("stream=1"));
    assert_eq!((audio.payload_type, audio.info.index), (97, 1));
    assert_eq!(
        audio.info.codec,
        CodecParams::Aac {
            config: Bytes::from_static(&[0x11, 0x90]),
            sample_rate: 48_000,
            channels: 2,
        }
    );
    assert_eq!(audio.info.timescale, 48_000);
}

#[test]
fn session_range_with_end_and_non_npt() {
    let with_range = |range: &str| {
        let text = sdp(&h264("packetization-mode=1")).replace(
            "t=0 0\r\n",
            &format!("t=0 0\r\na=range:{range}\r\na=control:*\r\n"),
        );
        parse(&text).expect("parses")
    };
    let announcement = with_range("npt=0-12.5");
    assert_eq!(
        announcement.range,
        Some(NptRange {
            start: Some(0.0),
            end: Some(12.5)
        })
    );
    assert_eq!(announcement.control.as_deref(), Some("*"));
    assert_eq!(with_range("clock=19961108T143720.25Z-").range, None);
}

/// Our own DESCRIBE of the bundled file, announced back, gives the same
/// codecs: what a relay would re-publish survives the round trip.
#[test]
fn describe_round_trips() {
    let media =
        crate::media::mp4::Mp4Media::from_static(include_bytes!("../../../media/sample.mp4"))
            .expect("bundled sample parses");
    let ip = "192.0.2.1".parse().expect("literal");
    let text = crate::sdp::describe(media.tracks(), media.duration_secs(), ip, 7);
    let announcement = parse(&text).expect("our SDP parses");
    assert!(announcement.skipped.is_empty());
    assert_eq!(announcement.control.as_deref(), Some("*"));
    assert_eq!(announcement.tracks.len(), media.tracks().len());
    for (announced, file) in announcement.tracks.iter().zip(media.tracks()) {
        assert_eq!(announced.info.codec, file.codec);
        assert_eq!(announced.info.index, file.index);
        assert_eq!(announced.payload_type, crate::sdp::payload_type(file));
        assert_eq!(
            announced.control,
            Some(crate::sdp::track_control(file.index))
        );
        assert_eq!(
            announced.fmtp.as_deref(),
            Some(crate::codec::fmtp(&file.codec).as_str())
        );
    }
}

#[test]
fn encoding_names_and_modes_are_case_insensitive() {
    let text = sdp(&format!(
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 h264/90000\r\n{}",
        aac(
            "mpeg4-generic/16000/1",
            "MODE=aac-lbr;CONFIG=1408;SizeLength=6;indexLength=2;IndexDeltaLength=2"
        )
    ));
    let announcement = parse(&text).expect("parses");
    assert_eq!(announcement.tracks.len(), 2);
    assert_eq!(
        announcement.tracks[1].info.codec,
        CodecParams::Aac {
            config: Bytes::from_static(&[0x14, 0x08]),
            sample_rate: 16_000,
            channels: 1,
        }
    );
}

#[test]
fn h264_without_fmtp_or_parameter_sets() {
    let bare = CodecParams::H264 {
        sps: Vec::new(),
        pps: Vec::new(),
        nal_length_size: 4,
        width: 0,
        height: 0,
    };
    let text = sdp("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    let announcement = parse(&text).expect("parses");
    assert_eq!(announcement.tracks[0].info.codec, bare);
    assert_eq!(announcement.tracks[0].fmtp, None);
    assert_eq!(announcement.tracks[0].control, None);
    assert_eq!(codec_of(&sdp(&h264("packetization-mode=0"))), bare);
    // An empty list and stray commas hold no sets.
    assert_eq!(codec_of(&sdp(&h264("sprop-parameter-sets=, ,"))), bare);
}

#[test]
fn h264_dimensions_apply_cropping() {
    // 1920x1080 High from x264: 1088 coded lines, 8 cropped.
    let codec = codec_of(&sdp(&h264(
        "sprop-parameter-sets=Z2QAKKzZQHgCJ+XARAAAAwAEAAADAPA8YMZY,aOvjyyLA",
    )));
    let CodecParams::H264 { width, height, .. } = codec else {
        panic!("H.264: {codec:?}");
    };
    assert_eq!((width, height), (1920, 1080));
}

#[test]
fn h264_parameter_sets_sorted_by_type_and_unpadded_base64_taken() {
    // PPS first, an SEI (type 6) that is left out, the SPS without padding.
    let codec = codec_of(&sdp(&h264(
        " Sprop-Parameter-Sets = aMuDyyA=,BgUB,Z0LAHtkAoD2wEQAAAwABAAADADwPFi5I",
    )));
    let CodecParams::H264 { sps, pps, .. } = codec else {
        panic!("H.264: {codec:?}");
    };
    assert_eq!(sps, [Bytes::from_static(&GST_SPS)]);
    assert_eq!(pps, [Bytes::from_static(&GST_PPS)]);
    let codec = codec_of(&sdp(&h264("sprop-parameter-sets=aMuDyyA")));
    let CodecParams::H264 { pps, .. } = codec else {
        panic!("H.264: {codec:?}");
    };
    assert_eq!(pps, [Bytes::from_static(&GST_PPS)]);
}

#[test]
fn h264_parameter_set_errors() {
    let error = |sets: &str| track_error(&sdp(&h264(&format!("sprop-parameter-sets={sets}"))));
    assert_eq!(error("Z0LA,!!!!"), TrackError::Base64(1));
    assert_eq!(error("aMuDyyA=,aM@u"), TrackError::Base64(1));
    // 0xe8: forbidden_zero_bit set on a PPS header.
    assert_eq!(error("6MuD"), TrackError::InvalidNal(0));
    // A truncated SPS.
    assert!(matches!(error("Z0LAHtkA"), TrackError::Sps(_)));
}

#[test]
fn h264_parameter_set_size_bound() {
    let pps_of = |len: usize| {
        let mut nal = vec![0x68; len];
        nal[1..].fill(0xaa);
        SPROP_BASE64.encode(nal)
    };
    let codec = codec_of(&sdp(&h264(&format!(
        "sprop-parameter-sets={}",
        pps_of(MAX_PARAMETER_SET_LEN)
    ))));
    let CodecParams::H264 { pps, .. } = codec else {
        panic!("H.264: {codec:?}");
    };
    assert_eq!(pps[0].len(), MAX_PARAMETER_SET_LEN);
    let too_large = format!(
        "sprop-parameter-sets=aMuDyyA=,{}",
        pps_of(MAX_PARAMETER_SET_LEN + 1)
    );
    assert_eq!(
        track_error(&sdp(&h264(&too_large))),
        TrackError::ParameterSetTooLarge {
            index: 1,
            len: MAX_PARAMETER_SET_LEN + 1
        }
    );
}

#[test]
fn h264_parameter_set_count_bound() {
    let sets = |sps: usize, pps: usize| {
        let list: Vec<&str> = std::iter::repeat_n("Z0LAHtkAoD2wEQAAAwABAAADADwPFi5I", sps)
            .chain(std::iter::repeat_n("aMuDyyA=", pps))
            .collect();
        sdp(&h264(&format!("sprop-parameter-sets={}", list.join(","))))
    };
    let codec = codec_of(&sets(MAX_SPS, MAX_PPS));
    let CodecParams::H264 { sps, pps, .. } = codec else {
        panic!("H.264: {codec:?}");
    };
    assert_eq!((sps.len(), pps.len()), (MAX_SPS, MAX_PPS));
    assert_eq!(
        track_error(&sets(MAX_SPS + 1, 1)),
        TrackError::TooManyParameterSets
    );
    assert_eq!(
        track_error(&sets(1, MAX_PPS + 1)),
        TrackError::TooManyParameterSets
    );
}

#[test]
fn h264_packetization_modes() {
    assert_eq!(
        skip_reason(&sdp(&h264("packetization-mode=2"))),
        SkipReason::PacketizationMode("2".into())
    );
    assert_eq!(
        skip_reason(&sdp(&h264("packetization-mode=one"))),
        SkipReason::PacketizationMode("one".into())
    );
    assert!(parse(&sdp(&h264("packetization-mode=1"))).is_ok());
}

#[test]
fn aac_channels() {
    let channels = |rtpmap: &str, config: &str| match codec_of(&sdp(&aac(
        rtpmap,
        &format!("{HBR};config={config}"),
    ))) {
        CodecParams::Aac { channels, .. } => channels,
        other => panic!("AAC: {other:?}"),
    };
    assert_eq!(channels("MPEG4-GENERIC/48000/6", "1190"), 6);
    // Without rtpmap channels: the config's channelConfiguration (2, then
    // 7 meaning 8), else one channel (RFC 4566 §6).
    assert_eq!(channels("MPEG4-GENERIC/48000", "1190"), 2);
    assert_eq!(channels("MPEG4-GENERIC/48000", "11b8"), 8);
    assert_eq!(channels("MPEG4-GENERIC/48000", "1180"), 1);
    assert_eq!(channels("MPEG4-GENERIC/48000", "11"), 1);
    for bad in ["0", "x", "256"] {
        assert_eq!(
            track_error(&sdp(&aac(
                &format!("MPEG4-GENERIC/48000/{bad}"),
                &format!("{HBR};config=1190")
            ))),
            TrackError::Channels(bad.into())
        );
    }
}

#[test]
fn aac_clock_rate_bounds() {
    let with_rate = |rate: u32| {
        sdp(&aac(
            &format!("MPEG4-GENERIC/{rate}/2"),
            &format!("{HBR};config=1190"),
        ))
    };
    assert!(parse(&with_rate(MAX_AAC_CLOCK_RATE)).is_ok());
    assert!(parse(&with_rate(1)).is_ok());
    for rate in [0, MAX_AAC_CLOCK_RATE + 1] {
        assert_eq!(track_error(&with_rate(rate)), TrackError::ClockRate(rate));
    }
}

#[test]
fn aac_modes_and_fmtp_errors() {
    let rtpmap = "MPEG4-GENERIC/48000/2";
    assert_eq!(
        skip_reason(&sdp(&aac(rtpmap, "config=1190;sizelength=13"))),
        SkipReason::AacMode(None)
    );
    assert_eq!(
        skip_reason(&sdp(&format!(
            "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 {rtpmap}\r\n"
        ))),
        SkipReason::AacMode(None)
    );
    assert_eq!(
        skip_reason(&sdp(&aac(rtpmap, "mode=generic;config=1190"))),
        SkipReason::AacMode(Some("generic".into()))
    );
    assert_eq!(
        track_error(&sdp(&aac(rtpmap, HBR))),
        TrackError::NoAacConfig
    );
    assert_eq!(
        track_error(&sdp(&aac(rtpmap, &format!("{HBR};config=")))),
        TrackError::NoAacConfig
    );
    assert!(matches!(
        track_error(&sdp(&aac(rtpmap, &format!("{HBR};config=11x0")))),
        TrackError::AacFmtp(DepayError::Fmtp(_))
    ));
    assert!(matches!(
        track_error(&sdp(&aac(
            rtpmap,
            "mode=AAC-hbr;config=1190;sizelength=big"
        ))),
        TrackError::AacFmtp(DepayError::Fmtp(_))
    ));
}

#[test]
fn payload_types_static_and_dynamic() {
    // PCMU (static 0) needs no rtpmap, and is not carried.
    assert_eq!(
        skip_reason(&sdp("m=audio 0 RTP/AVP 0\r\n")),
        SkipReason::StaticPayloadType(0)
    );
    assert_eq!(
        skip_reason(&sdp("m=video 0 RTP/AVP 95\r\n")),
        SkipReason::StaticPayloadType(95)
    );
    assert_eq!(
        skip_reason(&sdp(
            "m=video 0 RTP/AVP 96\r\na=fmtp:96 packetization-mode=1\r\n"
        )),
        SkipReason::NoRtpmap(96)
    );
    // An rtpmap of another payload type does not count.
    assert_eq!(
        skip_reason(&sdp("m=video 0 RTP/AVP 97\r\na=rtpmap:96 H264/90000\r\n")),
        SkipReason::NoRtpmap(97)
    );
    for format in ["128", "x"] {
        assert_eq!(
            skip_reason(&sdp(&format!("m=video 0 RTP/AVP {format}\r\n"))),
            SkipReason::Format(format.into())
        );
    }
    assert_eq!(
        codec_of(&sdp("m=video 0 RTP/AVP 127\r\na=rtpmap:127 H264/90000\r\n")).clock_rate(),
        90_000
    );
}

#[test]
fn first_format_chosen_with_its_own_rtpmap_and_fmtp() {
    let text = sdp("m=video 0 RTP/AVP 97 96\r\n\
         a=rtpmap:96 H265/90000\r\n\
         a=fmtp:96 packetization-mode=2\r\n\
         a=rtpmap:97 H264/90000\r\n\
         a=fmtp:97 packetization-mode=1\r\n");
    let announcement = parse(&text).expect("parses");
    assert_eq!(announcement.tracks[0].payload_type, 97);
    assert_eq!(
        announcement.tracks[0].fmtp.as_deref(),
        Some("packetization-mode=1")
    );
}

#[test]
fn unsupported_codecs_and_transports_are_skipped() {
    let reasons = [
        (
            "m=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n",
            SkipReason::Codec {
                encoding: "opus".into(),
                clock_rate: 48_000,
            },
        ),
        (
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/8000\r\n",
            SkipReason::Codec {
                encoding: "H264".into(),
                clock_rate: 8_000,
            },
        ),
        (
            "m=video 0 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\n",
            SkipReason::Transport("RTP/SAVP".into()),
        ),
    ];
    for (media, reason) in reasons {
        let error = parse(&sdp(media)).expect_err("nothing playable");
        assert_eq!(error.status(), StatusCode::UnsupportedMediaType);
        assert_eq!(
            error,
            AnnounceError::NoPlayableTrack(vec![SkippedMedia {
                media_index: 0,
                control: None,
                reason
            }])
        );
    }
    let avpf = sdp("m=video 0 RTP/AVPF 96\r\na=rtpmap:96 H264/90000\r\n");
    assert!(parse(&avpf).is_ok());
}

#[test]
fn indices_count_accepted_tracks_and_skipped_are_listed() {
    let text = sdp(&format!(
        "m=audio 0 RTP/AVP 0\r\n{}m=application 0 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\n\
         a=control:text\r\n{}",
        h264("packetization-mode=1"),
        aac("MPEG4-GENERIC/48000/2", &format!("{HBR};config=1190")),
    ));
    let announcement = parse(&text).expect("parses");
    let placed: Vec<(usize, usize)> = announcement
        .tracks
        .iter()
        .map(|t| (t.info.index, t.media_index))
        .collect();
    assert_eq!(placed, [(0, 1), (1, 3)]);
    let skipped: Vec<(usize, Option<&str>)> = announcement
        .skipped
        .iter()
        .map(|s| (s.media_index, s.control.as_deref()))
        .collect();
    assert_eq!(skipped, [(0, None), (2, Some("text"))]);
}

#[test]
fn invalid_track_names_its_section() {
    let text = sdp(&format!(
        "{}{}",
        h264("packetization-mode=1"),
        h264("sprop-parameter-sets=***")
    ));
    let error = parse(&text).expect_err("bad base64");
    assert_eq!(
        error,
        AnnounceError::InvalidTrack {
            media_index: 1,
            error: TrackError::Base64(0)
        }
    );
    assert_eq!(error.status(), StatusCode::BadRequest);
}

#[test]
fn empty_control_is_none() {
    let text = sdp(&format!("{}a=control: \r\n", h264("packetization-mode=1")));
    assert_eq!(parse(&text).expect("parses").tracks[0].control, None);
}

#[test]
fn body_size_bound() {
    let base = sdp(&h264("packetization-mode=1"));
    // Padded to the limit with a session information line.
    let pad = MAX_BODY_LEN - base.len() - "i=\r\n".len();
    let at_limit = base.replace("s=-\r\n", &format!("s=-\r\ni={}\r\n", "x".repeat(pad)));
    assert_eq!(at_limit.len(), MAX_BODY_LEN);
    assert!(parse(&at_limit).is_ok());
    let over = at_limit.replace("i=x", "i=xx");
    let error = parse(&over).expect_err("too large");
    assert_eq!(error, AnnounceError::TooLarge(MAX_BODY_LEN + 1));
    assert_eq!(error.status(), StatusCode::RequestMessageBodyTooLarge);
}

#[test]
fn media_count_bound() {
    let sections = |count: usize| sdp(&h264("packetization-mode=1").repeat(count));
    let announcement = parse(&sections(MAX_MEDIA_SECTIONS)).expect("parses");
    assert_eq!(announcement.tracks.len(), MAX_MEDIA_SECTIONS);
    let error = parse(&sections(MAX_MEDIA_SECTIONS + 1)).expect_err("too many");
    assert_eq!(error, AnnounceError::TooManyMedia(MAX_MEDIA_SECTIONS + 1));
    assert_eq!(error.status(), StatusCode::BadRequest);
}

#[test]
fn attribute_length_bound() {
    // "fmtp" plus its value; the value holds "96 " and the parameters.
    let fmtp_of_len = |len: usize| {
        let filler = "x".repeat(len - "fmtp".len() - "96 a=".len());
        h264(&format!("a={filler}"))
    };
    assert!(parse(&sdp(&fmtp_of_len(MAX_ATTRIBUTE_LEN))).is_ok());
    let error = parse(&sdp(&format!(
        "{}{}",
        h264("packetization-mode=1"),
        fmtp_of_len(MAX_ATTRIBUTE_LEN + 1)
    )))
    .expect_err("too long");
    assert_eq!(
        error,
        AnnounceError::AttributeTooLong {
            media_index: Some(1),
            len: MAX_ATTRIBUTE_LEN + 1
        }
    );
    assert_eq!(error.status(), StatusCode::BadRequest);
    // At session level, a name alone counts too.
    let long_name = "n".repeat(MAX_ATTRIBUTE_LEN + 1);
    let text = sdp(&h264("packetization-mode=1"))
        .replace("t=0 0\r\n", &format!("t=0 0\r\na={long_name}\r\n"));
    assert_eq!(
        parse(&text),
        Err(AnnounceError::AttributeTooLong {
            media_index: None,
            len: MAX_ATTRIBUTE_LEN + 1
        })
    );
}

#[test]
fn malformed_sdp() {
    for body in [
        &b""[..],
        b"RTSP/1.0 200 OK\r\n",
        b"v=1\r\n",
        b"v=0\r\nm=video\r\n",
    ] {
        let error = parse_announcement(body).expect_err("not SDP");
        assert!(matches!(error, AnnounceError::Malformed(_)), "{error}");
        assert_eq!(error.status(), StatusCode::BadRequest);
    }
}

/// Every cut of the real announcements is answered, never a panic.
#[test]
fn truncations_never_panic() {
    for text in [FFMPEG_ANNOUNCE, GSTREAMER_ANNOUNCE] {
        for end in 0..text.len() {
            let _ = parse_announcement(&text.as_bytes()[..end]);
        }
    }
}
