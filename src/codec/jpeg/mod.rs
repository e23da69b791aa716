//! JPEG RTP payload format (RFC 2435), for Motion-JPEG: one baseline JPEG
//! image (JFIF, SOI..EOI) per access unit.
//!
//! RFC 2435 does not carry JPEG headers: the receiver rebuilds them from
//! an 8-byte main header (§3.1) that names one of a few fixed layouts
//! (type 0: 4:2:2, type 1: 4:2:0, plus 64 for restart markers), the size
//! in 8-pixel blocks, and the quantization tables, which this packetizer
//! always sends in-band (Q = 255, §3.1.8). Huffman tables are never sent:
//! every receiver uses those of ITU-T T.81 Annex K.3, so an image coded
//! with others cannot be carried. What does not fit is refused with a
//! reason naming the limit ([`check_frame`]), never cut to fit.

pub mod depay;
mod tables;

use super::{CodecError, PayloadWriter};
use crate::rtp::RTP_HEADER_LEN;

/// Main JPEG header (§3.1): type-specific, fragment offset, type, Q,
/// width, height.
const MAIN_HEADER_LEN: usize = 8;
/// Restart marker header (§3.1.7), present for types 64–127.
const RESTART_HEADER_LEN: usize = 4;
/// Quantization table header (§3.1.8): MBZ, precision, length.
const QUANT_HEADER_LEN: usize = 4;
/// One 8-bit quantization table.
const TABLE_LEN: usize = 64;
/// Luminance and chrominance tables, as types 0 and 1 use (§4.1).
const TABLES_LEN: usize = 2 * TABLE_LEN;
/// Q value announcing in-band tables that may change on every frame
/// (§3.1.8).
const Q_DYNAMIC_TABLES: u8 = 255;
/// Added to the type when the image has restart markers (§3.1.7).
const RESTART_TYPE_FLAG: u8 = 64;
/// Largest width or height the 8-bit block counts can describe (§3.1.5).
const MAX_DIMENSION: u16 = 2040;
/// Scan data beyond this cannot be addressed by the 24-bit fragment offset
/// (§3.1.2).
const MAX_SCAN_LEN: usize = 1 << 24;
/// Smallest MTU that fits the first packet of a frame with one byte of
/// scan data.
const MIN_MTU: usize =
    RTP_HEADER_LEN + MAIN_HEADER_LEN + RESTART_HEADER_LEN + QUANT_HEADER_LEN + TABLES_LEN + 1;

const SOI: u8 = 0xd8;
const EOI: u8 = 0xd9;
const SOF0: u8 = 0xc0;
const SOF1: u8 = 0xc1;
const SOF2: u8 = 0xc2;
const DHT: u8 = 0xc4;
const DAC: u8 = 0xcc;
const DQT: u8 = 0xdb;
const DNL: u8 = 0xdc;
const DRI: u8 = 0xdd;
const SOS: u8 = 0xda;
const TEM: u8 = 0x01;
const RST0: u8 = 0xd0;
const RST7: u8 = 0xd7;

/// The RFC 2435 type of a layout (§4.1): luma sampled 2x1 (4:2:2) is
/// type 0, 2x2 (4:2:0) type 1; chroma is 1x1 in both.
fn layout_type(luma_sampling: (u8, u8)) -> Option<u8> {
    match luma_sampling {
        (2, 1) => Some(0),
        (2, 2) => Some(1),
        _ => None,
    }
}

/// What RFC 2435 sends of one JPEG image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame<'a> {
    /// Width and height in pixels.
    width: u16,
    height: u16,
    /// 0 or 1 (§4.1), before the restart flag.
    layout: u8,
    /// Restart interval in MCUs from DRI; 0 without restart markers.
    restart_interval: u16,
    /// The luminance then the chrominance quantization table, zig-zag.
    tables: [&'a [u8; TABLE_LEN]; 2],
    /// The entropy-coded data of the scan, restart markers included, up to
    /// (without) EOI.
    scan: &'a [u8],
}

impl Frame<'_> {
    fn rtp_type(&self) -> u8 {
        if self.restart_interval == 0 {
            self.layout
        } else {
            self.layout + RESTART_TYPE_FLAG
        }
    }
}

/// A component of the frame header (ITU-T T.81 §B.2.2).
#[derive(Debug, Clone, Copy)]
struct Component {
    id: u8,
    sampling: (u8, u8),
    table: u8,
}

fn unsupported(reason: impl Into<String>) -> CodecError {
    CodecError::UnsupportedJpeg(reason.into())
}

/// The width and height in pixels of `jpeg`, one whole JPEG image (SOI to
/// EOI), if RFC 2435 can carry it; a source calls this on a stream's first
/// image to refuse, at DESCRIBE, a stream no viewer could receive.
///
/// Errors: [`CodecError::MalformedJpeg`] for bytes that are not a JPEG
/// image, [`CodecError::UnsupportedJpeg`] with the limit it exceeds for
/// an image RFC 2435 cannot describe: not baseline sequential (SOF0/SOF1,
/// 8-bit samples; progressive SOF2 and the others are refused), not 3
/// components sampled as type 0 (Y 2x1, 4:2:2) or type 1 (Y 2x2, 4:2:0)
/// with Cb and Cr 1x1 (§4.1; greyscale has no type), larger than 2040
/// pixels either way (§3.1.5), 16-bit quantization tables, Cb and Cr
/// quantized by different tables, Huffman tables other than the standard
/// ones of Annex K.3 (the receiver rebuilds those, §3.1), more than one
/// scan, or over 16 MiB of scan data (the 24-bit fragment offset, §3.1.2).
pub fn check_frame(jpeg: &[u8]) -> Result<(u16, u16), CodecError> {
    parse(jpeg).map(|frame| (frame.width, frame.height))
}

/// Reads the marker segments of `jpeg` up to its scan, checking each
/// against what RFC 2435 can carry.
fn parse(jpeg: &[u8]) -> Result<Frame<'_>, CodecError> {
    let mut rest = jpeg
        .strip_prefix(&[0xff, SOI])
        .ok_or(CodecError::MalformedJpeg("no SOI marker at the start"))?;
    let mut quant_tables: [Option<&[u8; TABLE_LEN]>; 4] = [None; 4];
    // DC tables 0-3, then AC tables 0-3: code-length counts and symbols.
    let mut huffman_tables: [Option<&[u8]>; 8] = [None; 8];
    let mut components: Option<[Component; 3]> = None;
    let mut size = (0, 0);
    let mut layout = 0;
    let mut restart_interval = 0;
    loop {
        let (marker, after) = next_marker(rest)?;
        match marker {
            SOI | EOI | TEM | RST0..=RST7 => {
                return Err(CodecError::MalformedJpeg(
                    "SOI, EOI, TEM or RST marker before the scan",
                ))
            }
            _ => {}
        }
        let (&[len_high, len_low], after) = after
            .split_first_chunk::<2>()
            .ok_or(CodecError::MalformedJpeg("truncated marker segment length"))?;
        let len = usize::from(u16::from_be_bytes([len_high, len_low]));
        let segment = len
            .checked_sub(2)
            .and_then(|body| after.get(..body))
            .ok_or(CodecError::MalformedJpeg(
                "marker segment overruns the image",
            ))?;
        rest = &after[segment.len()..];
        match marker {
            SOF0 | SOF1 => {
                let (width, height, sof_layout, sof_components) = parse_sof(segment)?;
                size = (width, height);
                layout = sof_layout;
                components = Some(sof_components);
            }
            SOF2 => {
                return Err(unsupported(
                    "progressive JPEG (SOF2); RFC 2435 carries baseline sequential (SOF0) only",
                ))
            }
            0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf => {
                return Err(unsupported(format!(
                    "JPEG process SOF{} (lossless, hierarchical or arithmetic); \
                     RFC 2435 carries baseline sequential (SOF0) only",
                    marker - SOF0
                )))
            }
            DAC => {
                return Err(unsupported(
                    "arithmetic coding (DAC); RFC 2435 carries Huffman coding only",
                ))
            }
            DHT => parse_dht(segment, &mut huffman_tables)?,
            DQT => parse_dqt(segment, &mut quant_tables)?,
            DRI => {
                let &[high, low] = segment else {
                    return Err(CodecError::MalformedJpeg("DRI segment is not 2 bytes"));
                };
                restart_interval = u16::from_be_bytes([high, low]);
            }
            DNL => {
                return Err(unsupported(
                    "DNL marker; RFC 2435 needs the height up front",
                ))
            }
            SOS => {
                let components =
                    components.ok_or(CodecError::MalformedJpeg("SOS before the frame header"))?;
                check_scan_header(segment, &components, &huffman_tables)?;
                let scan = scan_data(rest)?;
                let luma = quant_table(&quant_tables, components[0].table)?;
                let chroma = quant_table(&quant_tables, components[1].table)?;
                if quant_table(&quant_tables, components[2].table)? != chroma {
                    return Err(unsupported(
                        "Cb and Cr use different quantization tables; \
                         RFC 2435 sends one chrominance table",
                    ));
                }
                return Ok(Frame {
                    width: size.0,
                    height: size.1,
                    layout,
                    restart_interval,
                    tables: [luma, chroma],
                    scan,
                });
            }
            // APPn, COM and the like say nothing the receiver needs.
            _ => {}
        }
    }
}

/// The next marker code and what follows it, skipping the fill bytes
/// (0xFF) that may precede a marker (ITU-T T.81 §B.1.1.2).
fn next_marker(data: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    let rest = match data.split_first() {
        Some((0xff, rest)) => rest,
        Some(_) => {
            return Err(CodecError::MalformedJpeg(
                "marker segments are not followed by a marker",
            ))
        }
        None => return Err(CodecError::MalformedJpeg("image ends before its scan")),
    };
    let fill = rest.iter().take_while(|&&byte| byte == 0xff).count();
    match rest[fill..].split_first() {
        Some((&0, _)) => Err(CodecError::MalformedJpeg(
            "stuffed zero byte outside the scan",
        )),
        Some((&marker, after)) => Ok((marker, after)),
        None => Err(CodecError::MalformedJpeg("image ends before its scan")),
    }
}

/// Width, height, layout type and components of a frame header
/// (SOF0/SOF1, ITU-T T.81 §B.2.2), checked against RFC 2435's limits.
fn parse_sof(segment: &[u8]) -> Result<(u16, u16, u8, [Component; 3]), CodecError> {
    let [precision, h1, h0, w1, w0, count, specs @ ..] = segment else {
        return Err(CodecError::MalformedJpeg("truncated frame header"));
    };
    let (height, width) = (
        u16::from_be_bytes([*h1, *h0]),
        u16::from_be_bytes([*w1, *w0]),
    );
    if specs.len() != 3 * usize::from(*count) {
        return Err(CodecError::MalformedJpeg(
            "frame header length disagrees with its component count",
        ));
    }
    if *precision != 8 {
        return Err(unsupported(format!(
            "{precision}-bit samples; RFC 2435 carries 8-bit samples only"
        )));
    }
    if *count != 3 {
        return Err(unsupported(format!(
            "{count} colour components; RFC 2435 types 0 and 1 carry 3 (Y, Cb, Cr)"
        )));
    }
    if width == 0 {
        return Err(CodecError::MalformedJpeg("width 0"));
    }
    if height == 0 {
        return Err(unsupported(
            "height 0 (set later by DNL); RFC 2435 needs it up front",
        ));
    }
    for (name, value) in [("width", width), ("height", height)] {
        if value > MAX_DIMENSION {
            return Err(unsupported(format!(
                "JPEG {name} {value} exceeds RFC 2435's {MAX_DIMENSION}-pixel limit"
            )));
        }
    }
    let component = |i: usize| Component {
        id: specs[3 * i],
        sampling: (specs[3 * i + 1] >> 4, specs[3 * i + 1] & 0x0f),
        table: specs[3 * i + 2],
    };
    let components = [component(0), component(1), component(2)];
    let layout = layout_type(components[0].sampling);
    let chroma_full = components[1].sampling == (1, 1) && components[2].sampling == (1, 1);
    let (Some(layout), true) = (layout, chroma_full) else {
        let [y, cb, cr] = components.map(|c| c.sampling);
        return Err(unsupported(format!(
            "sampling factors Y {}x{}, Cb {}x{}, Cr {}x{}; RFC 2435 carries Y 2x1 (4:2:2) \
             or 2x2 (4:2:0) with Cb and Cr 1x1",
            y.0, y.1, cb.0, cb.1, cr.0, cr.1
        )));
    };
    Ok((width, height, layout, components))
}

/// Records the quantization tables of a DQT segment (ITU-T T.81
/// §B.2.4.1); 16-bit tables are refused.
fn parse_dqt<'a>(
    mut segment: &'a [u8],
    tables: &mut [Option<&'a [u8; TABLE_LEN]>; 4],
) -> Result<(), CodecError> {
    while let Some((&precision_and_id, rest)) = segment.split_first() {
        let (precision, id) = (precision_and_id >> 4, usize::from(precision_and_id & 0x0f));
        if precision == 1 {
            return Err(unsupported(
                "16-bit quantization table; RFC 2435 senders here send 8-bit tables only",
            ));
        }
        if precision != 0 || id >= tables.len() {
            return Err(CodecError::MalformedJpeg(
                "quantization table precision above 1 or number above 3",
            ));
        }
        let (table, rest) = rest
            .split_first_chunk::<TABLE_LEN>()
            .ok_or(CodecError::MalformedJpeg("truncated quantization table"))?;
        tables[id] = Some(table);
        segment = rest;
    }
    Ok(())
}

/// Records the Huffman tables of a DHT segment (ITU-T T.81 §B.2.4.2).
fn parse_dht<'a>(
    mut segment: &'a [u8],
    tables: &mut [Option<&'a [u8]>; 8],
) -> Result<(), CodecError> {
    while let Some((&class_and_id, rest)) = segment.split_first() {
        let (class, id) = (class_and_id >> 4, class_and_id & 0x0f);
        if class > 1 || id > 3 {
            return Err(CodecError::MalformedJpeg(
                "Huffman table class above 1 or number above 3",
            ));
        }
        let counts = rest
            .get(..16)
            .ok_or(CodecError::MalformedJpeg("truncated Huffman table"))?;
        let len = 16 + counts.iter().map(|&n| usize::from(n)).sum::<usize>();
        let table = rest
            .get(..len)
            .ok_or(CodecError::MalformedJpeg("truncated Huffman table"))?;
        tables[usize::from(class * 4 + id)] = Some(table);
        segment = &rest[len..];
    }
    Ok(())
}

/// Checks a scan header (ITU-T T.81 §B.2.3) against the layout RFC 2435
/// rebuilds: one scan of the three components in frame order, coded with
/// the standard Huffman tables (Y with the luminance ones, Cb and Cr with
/// the chrominance ones). A table the image never defined is taken as the
/// standard one, as Motion-JPEG cameras leave them out for that reason.
fn check_scan_header(
    segment: &[u8],
    components: &[Component; 3],
    huffman_tables: &[Option<&[u8]>; 8],
) -> Result<(), CodecError> {
    let [count, specs @ .., start, end, approximation] = segment else {
        return Err(CodecError::MalformedJpeg("truncated scan header"));
    };
    if specs.len() != 2 * usize::from(*count) {
        return Err(CodecError::MalformedJpeg(
            "scan header length disagrees with its component count",
        ));
    }
    if *count != 3 {
        return Err(unsupported(format!(
            "a scan of {count} components; RFC 2435 carries one scan of all 3"
        )));
    }
    if (*start, *end, *approximation) != (0, 63, 0) {
        return Err(CodecError::MalformedJpeg(
            "spectral selection or approximation in a sequential scan",
        ));
    }
    for (i, (spec, component)) in specs.chunks_exact(2).zip(components).enumerate() {
        if spec[0] != component.id {
            return Err(unsupported(
                "scan components not in frame order; RFC 2435 rebuilds them in frame order",
            ));
        }
        let (dc, ac) = (usize::from(spec[1] >> 4), usize::from(spec[1] & 0x0f));
        if dc > 3 || ac > 3 {
            return Err(CodecError::MalformedJpeg(
                "scan uses a Huffman table number above 3",
            ));
        }
        let (standard_dc, standard_ac): (&[u8], &[u8]) = if i == 0 {
            (&tables::LUMA_DC, &tables::LUMA_AC)
        } else {
            (&tables::CHROMA_DC, &tables::CHROMA_AC)
        };
        let is_standard =
            |index: usize, standard: &[u8]| huffman_tables[index].is_none_or(|t| t == standard);
        if !is_standard(dc, standard_dc) || !is_standard(4 + ac, standard_ac) {
            return Err(unsupported(
                "Huffman tables other than the standard ones (ITU-T T.81 Annex K.3); \
                 RFC 2435 receivers rebuild only those",
            ));
        }
    }
    Ok(())
}

/// The quantization table numbered `id`, which the image must define.
fn quant_table<'a>(
    tables: &[Option<&'a [u8; TABLE_LEN]>; 4],
    id: u8,
) -> Result<&'a [u8; TABLE_LEN], CodecError> {
    tables
        .get(usize::from(id))
        .copied()
        .flatten()
        .ok_or(CodecError::MalformedJpeg(
            "a component uses an undefined quantization table",
        ))
}

/// The entropy-coded data at the start of `data`, up to the EOI that must
/// end the image: RST markers and stuffed zeros belong to the data, any
/// other marker would start another scan.
fn scan_data(data: &[u8]) -> Result<&[u8], CodecError> {
    let end = data
        .windows(2)
        .position(|pair| pair[0] == 0xff && !matches!(pair[1], 0 | RST0..=RST7))
        .ok_or(CodecError::MalformedJpeg("no EOI marker after the scan"))?;
    let (marker, _) = next_marker(&data[end..])?;
    if marker != EOI {
        return Err(unsupported(format!(
            "marker 0xFF{marker:02X} after the scan (several scans or DNL); \
             RFC 2435 carries one scan"
        )));
    }
    let scan = &data[..end];
    if scan.is_empty() {
        return Err(CodecError::MalformedJpeg("empty scan"));
    }
    if scan.len() > MAX_SCAN_LEN {
        return Err(unsupported(format!(
            "{} bytes of scan data exceed RFC 2435's 24-bit fragment offset",
            scan.len()
        )));
    }
    Ok(scan)
}

/// Cuts JPEG images into RFC 2435 packets: the scan data in fragments as
/// large as the MTU allows, each behind the main header (§3.1) and, for images
/// with restart markers, the restart marker header (§3.1.7); the first
/// fragment also carries both quantization tables (Q = 255, §3.1.8).
#[derive(Debug)]
pub struct JpegPacketizer {
    mtu: usize,
}

impl JpegPacketizer {
    /// A packetizer producing RTP packets of at most `mtu` bytes (header
    /// included). An `mtu` too small for the first packet of a frame with
    /// one byte of scan data (157 bytes) is raised to that minimum.
    pub fn new(mtu: usize) -> Self {
        Self {
            mtu: mtu.max(MIN_MTU),
        }
    }

    /// Appends to `out` the RTP payloads of `jpeg`, one whole JPEG image,
    /// with the marker bit on the last one only (§3.1). Errors as
    /// [`check_frame`], and then nothing is written.
    pub fn packetize(&mut self, jpeg: &[u8], out: &mut PayloadWriter) -> Result<(), CodecError> {
        let frame = parse(jpeg)?;
        let rtp_type = frame.rtp_type();
        // At most 2040 / 8 = 255 blocks: checked by parse.
        let blocks = |pixels: u16| pixels.div_ceil(8) as u8;
        let (width, height) = (blocks(frame.width), blocks(frame.height));
        let restart_header = (frame.restart_interval != 0).then(|| {
            let [high, low] = frame.restart_interval.to_be_bytes();
            // F and L set, count 0x3FFF: packets are not cut at restart
            // intervals, so the receiver must reassemble the whole frame
            // (§3.1.7).
            [high, low, 0xff, 0xff]
        });
        let headers_len = MAIN_HEADER_LEN + restart_header.map_or(0, |h| h.len());
        let mut offset = 0;
        while offset < frame.scan.len() {
            let first = offset == 0;
            let mut room = self.mtu - RTP_HEADER_LEN - headers_len;
            if first {
                room -= QUANT_HEADER_LEN + TABLES_LEN;
            }
            let fragment = &frame.scan[offset..frame.scan.len().min(offset + room)];
            let last = offset + fragment.len() == frame.scan.len();
            // Below 2^24: checked by parse.
            let [_, o2, o1, o0] = (offset as u32).to_be_bytes();
            out.push_with(last, 0, |buf| {
                buf.extend_from_slice(&[0, o2, o1, o0, rtp_type, Q_DYNAMIC_TABLES, width, height]);
                if let Some(header) = restart_header {
                    buf.extend_from_slice(&header);
                }
                if first {
                    // MBZ, precision 0 (both tables 8-bit), length 128.
                    buf.extend_from_slice(&[0, 0, 0, TABLES_LEN as u8]);
                    buf.extend_from_slice(frame.tables[0]);
                    buf.extend_from_slice(frame.tables[1]);
                }
                buf.extend_from_slice(fragment);
            });
            offset += fragment.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
