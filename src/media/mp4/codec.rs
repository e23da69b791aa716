//! Codec parameters from sample entries (`stsd`, ISO/IEC 14496-12 §8.5.2):
//! `avc1`/`avc3` with `avcC` (ISO/IEC 14496-15 §5.4) and `mp4a` with `esds`
//! (ISO/IEC 14496-14 §5.6, AudioSpecificConfig of ISO/IEC 14496-3 §1.6.2.1).

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};
use mp4_atom::{Avcc, Mp4a, Visual};

use super::MediaError;
use crate::media::CodecParams;

/// `objectTypeIndication` values (ISO/IEC 14496-1 §7.2.6.6.2, MP4RA) whose
/// streams are AAC with an AudioSpecificConfig: MPEG-4 Audio and the three
/// MPEG-2 AAC profiles.
const AAC_OBJECT_TYPES: [u8; 4] = [0x40, 0x66, 0x67, 0x68];

/// H.264 parameters from an `avcC` box; the frame size comes from the first
/// SPS when it parses, since the sample entry's width/height are only a hint
/// that some muxers get wrong.
pub(crate) fn h264(
    avcc: &Avcc,
    visual: &Visual,
    inband_allowed: bool,
) -> Result<CodecParams, MediaError> {
    let nal_length_size = avcc.length_size;
    if !matches!(nal_length_size, 1 | 2 | 4) {
        return Err(MediaError::Invalid(format!(
            "avcC NAL length size {nal_length_size}"
        )));
    }
    // avc1 promises out-of-band parameter sets; only avc3 may carry them in
    // the samples instead.
    if !inband_allowed
        && (avcc.sequence_parameter_sets.is_empty() || avcc.picture_parameter_sets.is_empty())
    {
        return Err(MediaError::Invalid("avc1 avcC without SPS or PPS".into()));
    }
    let (width, height) = avcc
        .sequence_parameter_sets
        .first()
        .and_then(|sps| sps_dimensions(sps))
        .unwrap_or((visual.width, visual.height));
    let to_bytes = |sets: &[Vec<u8>]| sets.iter().map(|s| Bytes::copy_from_slice(s)).collect();
    Ok(CodecParams::H264 {
        sps: to_bytes(&avcc.sequence_parameter_sets),
        pps: to_bytes(&avcc.picture_parameter_sets),
        nal_length_size,
        width,
        height,
    })
}

fn sps_dimensions(sps: &[u8]) -> Option<(u16, u16)> {
    let nal = RefNal::new(sps, &[], true);
    let sps = match SeqParameterSet::from_bits(nal.rbsp_bits()) {
        Ok(sps) => sps,
        Err(e) => {
            tracing::warn!(error = ?e, "unparsable SPS; using sample entry dimensions");
            return None;
        }
    };
    let (w, h) = sps.pixel_dimensions().ok()?;
    Some((u16::try_from(w).ok()?, u16::try_from(h).ok()?))
}

/// AAC parameters from an `mp4a` sample entry, or why the track cannot be
/// streamed (not AAC, or no out-of-band config): such tracks are skipped,
/// not fatal. Rate and channel count are
/// taken from the AudioSpecificConfig when it decodes, because the sample
/// entry's 16.16 rate cannot express 88.2/96 kHz and QuickTime-style entries
/// often carry placeholders.
pub(crate) fn aac(mp4a: &Mp4a) -> Result<CodecParams, String> {
    let dec = &mp4a.esds.es_desc.dec_config;
    if !AAC_OBJECT_TYPES.contains(&dec.object_type_indication) {
        return Err(format!(
            "mp4a object type 0x{:02x} is not AAC",
            dec.object_type_indication
        ));
    }
    let config = match &dec.dec_specific {
        Some(ds) if !ds.raw.is_empty() => Bytes::copy_from_slice(&ds.raw),
        _ => return Err("AAC without AudioSpecificConfig".into()),
    };
    let asc = AudioSpecificConfig::parse(&config);
    let sample_rate = asc
        .and_then(|a| a.sample_rate)
        .unwrap_or_else(|| u32::from(mp4a.audio.sample_rate.integer()));
    let channels = asc
        .and_then(|a| a.channels)
        .or_else(|| u8::try_from(mp4a.audio.channel_count).ok())
        .unwrap_or(0);
    if sample_rate == 0 || channels == 0 {
        return Err("AAC with unknown sample rate or channel count".into());
    }
    Ok(CodecParams::Aac {
        config,
        sample_rate,
        channels,
    })
}

/// The leading fields of an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AudioSpecificConfig {
    /// Output sampling rate; `None` for reserved indices.
    pub(crate) sample_rate: Option<u32>,
    /// Channel count; `None` when the config defers to a program config
    /// element (channelConfiguration 0) or uses a reserved value.
    pub(crate) channels: Option<u8>,
}

/// samplingFrequencyIndex table (ISO/IEC 14496-3 Table 1.18).
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl AudioSpecificConfig {
    /// The leading fields of `data`; `None` when it ends before them.
    pub(crate) fn parse(data: &[u8]) -> Option<Self> {
        let mut r = BitReader { data, pos: 0 };
        let mut object_type = r.read(5)?;
        if object_type == 31 {
            object_type = 32 + r.read(6)?;
        }
        let mut sample_rate = read_sample_rate(&mut r)?;
        let channel_config = r.read(4)?;
        // SBR and PS (HE-AAC v1/v2) signal the output rate after the core
        // rate explicitly; the output rate is what RTP timestamps count.
        if object_type == 5 || object_type == 29 {
            sample_rate = read_sample_rate(&mut r)?;
        }
        let channels = match channel_config {
            1..=6 => Some(channel_config as u8),
            7 => Some(8),
            _ => None,
        };
        Some(Self {
            sample_rate,
            channels,
        })
    }
}

fn read_sample_rate(r: &mut BitReader<'_>) -> Option<Option<u32>> {
    let index = r.read(4)?;
    Some(if index == 0xf {
        Some(r.read(24)?).filter(|&rate| rate > 0)
    } else {
        SAMPLE_RATES.get(index as usize).copied()
    })
}

/// MSB-first bit reader; `None` when the data runs out.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn read(&mut self, bits: u32) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..bits {
            let byte = self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            value = (value << 1) | u32::from(bit);
            self.pos += 1;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_aac_lc_48k_stereo() {
        let asc = AudioSpecificConfig::parse(&[0x11, 0x90]);
        assert_eq!(
            asc,
            Some(AudioSpecificConfig {
                sample_rate: Some(48000),
                channels: Some(2)
            })
        );
    }

    #[test]
    fn asc_he_aac_uses_extension_rate() {
        // AOT 5 (SBR), core 24 kHz (index 6), stereo, extension 48 kHz (3).
        let asc = AudioSpecificConfig::parse(&[0x2b, 0x11, 0x88]);
        assert_eq!(asc.and_then(|a| a.sample_rate), Some(48000));
        assert_eq!(asc.and_then(|a| a.channels), Some(2));
    }

    #[test]
    fn asc_explicit_rate_and_truncation() {
        // AOT 2, index 15, rate 0x00bb80 = 48000, channel config 1.
        let asc = AudioSpecificConfig::parse(&[0x17, 0x80, 0x5d, 0xc0, 0x08]);
        assert_eq!(asc.and_then(|a| a.sample_rate), Some(48000));
        assert_eq!(asc.and_then(|a| a.channels), Some(1));
        assert_eq!(AudioSpecificConfig::parse(&[0x17, 0x80]), None);
        assert_eq!(AudioSpecificConfig::parse(&[]), None);
    }
}
