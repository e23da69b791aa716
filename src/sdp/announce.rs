//! The session description a publisher sends with ANNOUNCE (RFC 2326
//! §10.3, Appendix C; SDP of RFC 4566), turned into the tracks the server
//! can receive: H.264 (RFC 6184 §8.1, §8.2.1) and AAC in mpeg4-generic
//! AAC-hbr or AAC-lbr mode (RFC 3640 §3.3.5, §3.3.6, §4.1).
//!
//! The body comes from the network, so its size, its number of media
//! sections, each attribute and each H.264 parameter set are bounded, and
//! nothing in it can make the parser panic. What is wrong is sorted three
//! ways:
//!
//! - a body that is not SDP or breaks a bound: [`AnnounceError`], answered
//!   400 (413 for the body size);
//! - a section of a codec we carry whose parameters are broken (bad base64,
//!   unreadable SPS, bad AAC `config`): also an error, naming the section,
//!   since accepting the rest would silently drop a stream the publisher
//!   means to send;
//! - a section we cannot carry (another codec, mode or transport): listed in
//!   [`Announcement::skipped`] for the caller to log. When every section is
//!   skipped the announcement is refused with
//!   [`AnnounceError::NoPlayableTrack`] (415).
//!
//! Attributes longer than [`MAX_ATTRIBUTE_LEN`] are an error for the whole
//! body, wherever they appear: no encoder writes one, and refusing is
//! simpler to reason about than skipping a section on length alone.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};
use rtsp_types::StatusCode;
use sdp_types::{Fmtp, Media, RtpMap, Session};

use crate::codec::aac::depay::{hex_decode, AacPayloadParams};
use crate::codec::depay::DepayError;
use crate::media::mp4::codec::AudioSpecificConfig;
use crate::media::{CodecParams, TrackInfo};
use crate::rtsp::range::{parse_npt_range, NptRange};

/// Largest ANNOUNCE body taken, in bytes.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// Most media sections (`m=` lines) taken; more is an error, not a
/// truncation.
pub const MAX_MEDIA_SECTIONS: usize = 16;
/// Longest attribute (`a=` name and value) taken, in bytes.
pub const MAX_ATTRIBUTE_LEN: usize = 8 * 1024;
/// Longest H.264 parameter set taken, in bytes: above any real SPS, even
/// with every scaling list coded.
pub const MAX_PARAMETER_SET_LEN: usize = 4096;
/// Most SPS a stream can use (seq_parameter_set_id is 0..=31, ITU-T H.264
/// §7.4.2.1.1).
const MAX_SPS: usize = 32;
/// Most PPS a stream can use (pic_parameter_set_id is 0..=255, §7.4.2.2).
const MAX_PPS: usize = 256;
/// The RTP clock rate of H.264 (RFC 6184 §8.2.1).
const H264_CLOCK_RATE: u32 = 90_000;
/// Highest AAC sampling rate (ISO/IEC 14496-3 Table 1.18), bounding the
/// RTP clock rate of an AAC section.
const MAX_AAC_CLOCK_RATE: u32 = 96_000;
/// First dynamic RTP payload type (RFC 3551 §6); lower ones are static.
const FIRST_DYNAMIC_PT: u8 = 96;
/// Last RTP payload type (RFC 3550 §5.1: 7 bits).
const LAST_PT: u8 = 127;
const NAL_FORBIDDEN_BIT: u8 = 0x80;
const NAL_TYPE_MASK: u8 = 0x1f;
const NAL_TYPE_SPS: u8 = 7;
const NAL_TYPE_PPS: u8 = 8;

/// Base64 of RFC 4648 §4 as sprop-parameter-sets uses it (RFC 6184 §8.1),
/// taken with or without its padding: some encoders leave it out.
const SPROP_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What an ANNOUNCE body describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// The session-level `a=control` (RFC 2326 §C.1.1), when given: the
    /// aggregate control URL, often `*`.
    pub control: Option<String>,
    /// The session-level `a=range` (RFC 2326 §C.1.5) when it is an npt
    /// range; live publishers send `npt=0-` or `npt=now-`.
    pub range: Option<NptRange>,
    /// The sections we can receive, in SDP order.
    pub tracks: Vec<AnnouncedTrack>,
    /// The sections we cannot, and why.
    pub skipped: Vec<SkippedMedia>,
}

/// One media section we can receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedTrack {
    /// Position of the section among all `m=` lines (0-based), as in
    /// [`SkippedMedia::media_index`].
    pub media_index: usize,
    /// The section's `a=control` (RFC 2326 §C.1.1): relative to the
    /// announced URL (`streamid=0`, `trackID=1`) or absolute. SETUP names
    /// the track by it.
    pub control: Option<String>,
    /// The RTP payload type the publisher sends: the first format of the
    /// `m=` line (RFC 4566 §5.14).
    pub payload_type: u8,
    /// The track: `index` is its position among the accepted tracks
    /// (0-based), `timescale` the RTP clock rate, `duration` 0 (live).
    pub info: TrackInfo,
    /// The `a=fmtp` parameters without the payload type, as
    /// [`crate::codec::depay::Depacketizer::new`] takes them.
    pub fmtp: Option<String>,
}

/// A media section we cannot receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedMedia {
    /// Position of the section among all `m=` lines (0-based).
    pub media_index: usize,
    /// The section's `a=control`, as in [`AnnouncedTrack::control`]:
    /// publishers set up skipped sections too.
    pub control: Option<String>,
    /// Why it is skipped.
    pub reason: SkipReason,
}

/// Why a media section is skipped: it is well formed, but not something we
/// carry (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// The transport is not RTP/AVP or RTP/AVPF (RFC 4566 §5.14), e.g. the
    /// encrypted RTP/SAVP.
    #[error("transport {0} is not RTP/AVP")]
    Transport(String),
    /// The `m=` line's first format is not an RTP payload type (0..=127).
    #[error("format {0:?} is not an RTP payload type")]
    Format(String),
    /// A static payload type (RFC 3551 §6) without `rtpmap`: none of them
    /// is H.264 or AAC.
    #[error("static payload type {0} is not a codec we carry")]
    StaticPayloadType(u8),
    /// A dynamic payload type without an `rtpmap` naming its codec
    /// (RFC 4566 §6).
    #[error("dynamic payload type {0} has no rtpmap")]
    NoRtpmap(u8),
    /// An encoding and clock rate we have no depacketizer for.
    #[error("codec {encoding}/{clock_rate} is not supported")]
    Codec {
        /// The rtpmap encoding name, as written.
        encoding: String,
        /// The rtpmap clock rate, in Hz.
        clock_rate: u32,
    },
    /// H.264 interleaved mode (packetization-mode=2, RFC 6184 §6.4) or an
    /// unknown mode.
    #[error("H.264 packetization-mode={0} is not supported")]
    PacketizationMode(String),
    /// An mpeg4-generic mode other than AAC-hbr and AAC-lbr (RFC 3640
    /// §4.1), or none.
    #[error("mpeg4-generic mode {0:?} is not AAC-hbr or AAC-lbr")]
    AacMode(Option<String>),
}

/// Why the parameters of an H.264 or AAC section are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// The AAC clock rate is 0 or above the highest AAC sampling rate.
    #[error("clock rate {0} Hz is not an AAC sampling rate")]
    ClockRate(u32),
    /// The rtpmap channel count (RFC 4566 §6 encoding parameters) is not a
    /// number from 1 to 255.
    #[error("channel count {0:?} is invalid")]
    Channels(String),
    /// An entry of sprop-parameter-sets (0-based) is not base64.
    #[error("sprop-parameter-sets entry {0} is not base64")]
    Base64(usize),
    /// An entry of sprop-parameter-sets (0-based) is not a NAL unit: its
    /// forbidden_zero_bit is set.
    #[error("sprop-parameter-sets entry {0} is not a NAL unit")]
    InvalidNal(usize),
    /// An entry of sprop-parameter-sets (0-based) is above
    /// [`MAX_PARAMETER_SET_LEN`].
    #[error("sprop-parameter-sets entry {index} of {len} bytes is too large")]
    ParameterSetTooLarge {
        /// Position of the entry.
        index: usize,
        /// Its decoded size in bytes.
        len: usize,
    },
    /// More SPS or PPS than H.264 identifiers exist for.
    #[error("sprop-parameter-sets holds more than {MAX_SPS} SPS or {MAX_PPS} PPS")]
    TooManyParameterSets,
    /// The first SPS cannot be read (ITU-T H.264 §7.3.2.1), or describes a
    /// picture wider or taller than 65535 pixels.
    #[error("SPS unreadable: {0}")]
    Sps(String),
    /// The fmtp has no AudioSpecificConfig (`config`, RFC 3640 §4.1).
    #[error("mpeg4-generic fmtp has no config")]
    NoAacConfig,
    /// The AAC fmtp cannot be read (a field that is not a number, a
    /// `config` that is not hexadecimal, no sizeLength).
    #[error(transparent)]
    AacFmtp(#[from] DepayError),
}

/// Why an ANNOUNCE body is refused as a whole.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The body is longer than [`MAX_BODY_LEN`].
    #[error("SDP of {0} bytes exceeds {MAX_BODY_LEN}")]
    TooLarge(usize),
    /// The body is not SDP.
    #[error("malformed SDP: {0}")]
    Malformed(#[from] sdp_types::ParserError),
    /// More than [`MAX_MEDIA_SECTIONS`] media sections.
    #[error("{0} media sections exceed {MAX_MEDIA_SECTIONS}")]
    TooManyMedia(usize),
    /// An attribute longer than [`MAX_ATTRIBUTE_LEN`]; `media_index` is
    /// its section, `None` at session level.
    #[error("attribute of {len} bytes (media {media_index:?}) exceeds {MAX_ATTRIBUTE_LEN}")]
    AttributeTooLong {
        /// The section, `None` for the session level.
        media_index: Option<usize>,
        /// Name and value length in bytes.
        len: usize,
    },
    /// An H.264 or AAC section whose parameters are broken.
    #[error("media {media_index}: {error}")]
    InvalidTrack {
        /// Position of the section among all `m=` lines.
        media_index: usize,
        /// What is wrong.
        error: TrackError,
    },
    /// No section can be received; says why of each.
    #[error("no playable track ({} media sections skipped)", .0.len())]
    NoPlayableTrack(Vec<SkippedMedia>),
}

impl AnnounceError {
    /// The RTSP status that answers the ANNOUNCE (RFC 2326 §7.1.1): 413 for
    /// a body too large, 415 Unsupported Media Type when nothing can be
    /// received, 400 Bad Request otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            AnnounceError::TooLarge(_) => StatusCode::RequestMessageBodyTooLarge,
            AnnounceError::NoPlayableTrack(_) => StatusCode::UnsupportedMediaType,
            AnnounceError::Malformed(_)
            | AnnounceError::TooManyMedia(_)
            | AnnounceError::AttributeTooLong { .. }
            | AnnounceError::InvalidTrack { .. } => StatusCode::BadRequest,
        }
    }
}

/// Parses an ANNOUNCE body (RFC 2326 §10.3) into the tracks we can
/// receive, in SDP order, and the sections we cannot.
///
/// Errors: [`AnnounceError::TooLarge`], [`AnnounceError::Malformed`],
/// [`AnnounceError::TooManyMedia`], [`AnnounceError::AttributeTooLong`]
/// for a body breaking a bound or not SDP;
/// [`AnnounceError::InvalidTrack`] for an H.264 or AAC section with broken
/// parameters; [`AnnounceError::NoPlayableTrack`] when every section is
/// skipped.
pub fn parse_announcement(body: &[u8]) -> Result<Announcement, AnnounceError> {
    if body.len() > MAX_BODY_LEN {
        return Err(AnnounceError::TooLarge(body.len()));
    }
    let session = Session::parse(body)?;
    if session.medias.len() > MAX_MEDIA_SECTIONS {
        return Err(AnnounceError::TooManyMedia(session.medias.len()));
    }
    check_attribute_lengths(&session)?;

    let mut tracks = Vec::new();
    let mut skipped = Vec::new();
    for (media_index, media) in session.medias.iter().enumerate() {
        match media_track(media) {
            Ok(track) => {
                let info = TrackInfo {
                    index: tracks.len(),
                    timescale: track.codec.clock_rate(),
                    codec: track.codec,
                    duration: 0,
                };
                tracks.push(AnnouncedTrack {
                    media_index,
                    control: attribute_value(&media.attributes, "control"),
                    payload_type: track.payload_type,
                    info,
                    fmtp: track.fmtp,
                });
            }
            Err(Rejection::Skip(reason)) => skipped.push(SkippedMedia {
                media_index,
                control: attribute_value(&media.attributes, "control"),
                reason,
            }),
            Err(Rejection::Invalid(error)) => {
                return Err(AnnounceError::InvalidTrack { media_index, error })
            }
        }
    }
    if tracks.is_empty() {
        return Err(AnnounceError::NoPlayableTrack(skipped));
    }
    Ok(Announcement {
        control: attribute_value(&session.attributes, "control"),
        range: attribute_value(&session.attributes, "range")
            .and_then(|range| parse_npt_range(&range)),
        tracks,
        skipped,
    })
}

/// Refuses any attribute above [`MAX_ATTRIBUTE_LEN`], session level first.
fn check_attribute_lengths(session: &Session) -> Result<(), AnnounceError> {
    let sections = std::iter::once((None, &session.attributes)).chain(
        session
            .medias
            .iter()
            .enumerate()
            .map(|(i, media)| (Some(i), &media.attributes)),
    );
    for (media_index, attributes) in sections {
        for attribute in attributes {
            let len = attribute.attribute.len() + attribute.value.as_deref().map_or(0, str::len);
            if len > MAX_ATTRIBUTE_LEN {
                return Err(AnnounceError::AttributeTooLong { media_index, len });
            }
        }
    }
    Ok(())
}

/// The first non-empty value of attribute `name` (matched
/// case-insensitively, as RFC 4566 §5.13 names are tokens).
fn attribute_value(attributes: &[sdp_types::Attribute], name: &str) -> Option<String> {
    attributes
        .iter()
        .find(|a| a.attribute.eq_ignore_ascii_case(name))
        .and_then(|a| a.value.as_deref())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(String::from)
}

/// What a media section yields when we can receive it.
struct MediaTrack {
    payload_type: u8,
    codec: CodecParams,
    fmtp: Option<String>,
}

/// Why a media section yields no track.
enum Rejection {
    Skip(SkipReason),
    Invalid(TrackError),
}

impl From<SkipReason> for Rejection {
    fn from(reason: SkipReason) -> Self {
        Rejection::Skip(reason)
    }
}

impl From<TrackError> for Rejection {
    fn from(error: TrackError) -> Self {
        Rejection::Invalid(error)
    }
}

impl From<DepayError> for Rejection {
    fn from(error: DepayError) -> Self {
        Rejection::Invalid(error.into())
    }
}

/// The track of one media section: its first format (RFC 4566 §5.14, the
/// one a publisher sends), the codec named by that format's `rtpmap` and
/// the parameters of its `fmtp`.
fn media_track(media: &Media) -> Result<MediaTrack, Rejection> {
    let proto = media.proto.as_str();
    if !(proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")) {
        return Err(SkipReason::Transport(media.proto.clone()).into());
    }
    let format = media.fmt.split_ascii_whitespace().next().unwrap_or("");
    let payload_type = format
        .parse::<u8>()
        .ok()
        .filter(|&pt| pt <= LAST_PT)
        .ok_or_else(|| SkipReason::Format(format.to_string()))?;
    let rtpmap = media
        .attributes_typed::<RtpMap>()
        .filter_map(Result::ok)
        .find(|rtpmap| rtpmap.payload_type == payload_type)
        .ok_or(if payload_type < FIRST_DYNAMIC_PT {
            SkipReason::StaticPayloadType(payload_type)
        } else {
            SkipReason::NoRtpmap(payload_type)
        })?;
    let fmtp = media
        .attributes_typed::<Fmtp>()
        .filter_map(Result::ok)
        .find(|fmtp| fmtp.fmt == payload_type);
    let encoding = rtpmap.encoding_name.as_str();
    let codec = if encoding.eq_ignore_ascii_case("H264") && rtpmap.clock_rate == H264_CLOCK_RATE {
        h264_codec(fmtp.as_ref())?
    } else if encoding.eq_ignore_ascii_case("MPEG4-GENERIC") {
        aac_codec(&rtpmap, fmtp.as_ref())?
    } else {
        return Err(SkipReason::Codec {
            encoding: rtpmap.encoding_name.clone(),
            clock_rate: rtpmap.clock_rate,
        }
        .into());
    };
    Ok(MediaTrack {
        payload_type,
        codec,
        fmtp: fmtp.map(|fmtp| raw_fmtp(&fmtp)),
    })
}

/// The fmtp parameters as written, without the payload type.
fn raw_fmtp(fmtp: &Fmtp) -> String {
    let text = fmtp.to_string();
    // `Fmtp` writes the payload type, one space, then the parameters.
    text.split_once(' ')
        .map_or(String::new(), |(_, params)| params.trim().to_string())
}

/// The value of fmtp parameter `name`, matched case-insensitively (RFC
/// 6184 §8.1 and RFC 3640 §4.1 names are case-insensitive), trimmed of
/// the spaces some encoders put after `;`.
fn fmtp_param<'a>(fmtp: Option<&'a Fmtp>, name: &str) -> Option<&'a str> {
    fmtp?
        .format_specific_params
        .iter()
        .find(|p| p.param.trim().eq_ignore_ascii_case(name))
        .and_then(|p| p.val.as_deref())
        .map(str::trim)
}

/// H.264 parameters (RFC 6184 §8.1): packetization-mode 0 or 1, and the
/// SPS and PPS of sprop-parameter-sets, the frame size read from the first
/// SPS (0×0 without one: the sets may come in-band only).
fn h264_codec(fmtp: Option<&Fmtp>) -> Result<CodecParams, Rejection> {
    match fmtp_param(fmtp, "packetization-mode") {
        None | Some("0") | Some("1") => {}
        Some(mode) => return Err(SkipReason::PacketizationMode(mode.to_string()).into()),
    }
    let mut sps = Vec::new();
    let mut pps = Vec::new();
    let entries = fmtp_param(fmtp, "sprop-parameter-sets")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    for (index, entry) in entries.enumerate() {
        let nal = SPROP_BASE64
            .decode(entry)
            .map_err(|_| TrackError::Base64(index))?;
        if nal.len() > MAX_PARAMETER_SET_LEN {
            return Err(TrackError::ParameterSetTooLarge {
                index,
                len: nal.len(),
            }
            .into());
        }
        let header = *nal.first().ok_or(TrackError::InvalidNal(index))?;
        if header & NAL_FORBIDDEN_BIT != 0 {
            return Err(TrackError::InvalidNal(index).into());
        }
        // Other NAL unit types (SPS extensions of SVC and MVC) are of no use
        // to an AVC receiver and are left out.
        match header & NAL_TYPE_MASK {
            NAL_TYPE_SPS => sps.push(Bytes::from(nal)),
            NAL_TYPE_PPS => pps.push(Bytes::from(nal)),
            _ => {}
        }
    }
    if sps.len() > MAX_SPS || pps.len() > MAX_PPS {
        return Err(TrackError::TooManyParameterSets.into());
    }
    let (width, height) = match sps.first() {
        Some(first) => sps_dimensions(first)?,
        None => (0, 0),
    };
    Ok(CodecParams::H264 {
        sps,
        pps,
        // What the H.264 depacketizer writes (codec::depay::DepacketizedUnit).
        nal_length_size: 4,
        width,
        height,
    })
}

/// The picture size of an SPS NAL unit (ITU-T H.264 §7.3.2.1.1, cropping
/// applied).
fn sps_dimensions(sps: &[u8]) -> Result<(u16, u16), TrackError> {
    let nal = RefNal::new(sps, &[], true);
    let parsed = SeqParameterSet::from_bits(nal.rbsp_bits())
        .map_err(|e| TrackError::Sps(format!("{e:?}")))?;
    let (width, height) = parsed
        .pixel_dimensions()
        .map_err(|e| TrackError::Sps(format!("{e:?}")))?;
    let too_large = || TrackError::Sps(format!("{width}x{height} pixels"));
    Ok((
        u16::try_from(width).map_err(|_| too_large())?,
        u16::try_from(height).map_err(|_| too_large())?,
    ))
}

/// AAC parameters (RFC 3640 §4.1): mode AAC-hbr or AAC-lbr, the
/// AudioSpecificConfig from `config`, the sampling rate from the rtpmap
/// clock rate, the channel count from the rtpmap encoding parameters, else
/// from the config, else 1 (RFC 4566 §6). The fmtp must also be one the
/// depacketizer can read.
fn aac_codec(rtpmap: &RtpMap, fmtp: Option<&Fmtp>) -> Result<CodecParams, Rejection> {
    let mode = fmtp_param(fmtp, "mode");
    let (Some(fmtp), Some(mode)) = (fmtp, mode) else {
        return Err(SkipReason::AacMode(None).into());
    };
    if !(mode.eq_ignore_ascii_case("AAC-hbr") || mode.eq_ignore_ascii_case("AAC-lbr")) {
        return Err(SkipReason::AacMode(Some(mode.to_string())).into());
    }
    let sample_rate = rtpmap.clock_rate;
    if sample_rate == 0 || sample_rate > MAX_AAC_CLOCK_RATE {
        return Err(TrackError::ClockRate(sample_rate).into());
    }
    let config = hex_decode(fmtp_param(Some(fmtp), "config").unwrap_or(""))?;
    if config.is_empty() {
        return Err(TrackError::NoAacConfig.into());
    }
    AacPayloadParams::from_fmtp(&raw_fmtp(fmtp), &config)?;
    let channels = match rtpmap.encoding_params.as_deref() {
        Some(text) => text
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|&channels| channels > 0)
            .ok_or_else(|| TrackError::Channels(text.to_string()))?,
        None => AudioSpecificConfig::parse(&config)
            .and_then(|asc| asc.channels)
            .unwrap_or(1),
    };
    Ok(CodecParams::Aac {
        config: Bytes::from(config),
        sample_rate,
        channels,
    })
}

#[cfg(test)]
mod tests;
