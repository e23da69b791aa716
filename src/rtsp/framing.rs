//! Splits the bytes of an RTSP connection into requests and interleaved
//! binary data (RFC 2326 §10.12), with size caps.
//!
//! rtsp-types parses a message but imposes no limits and reports a message
//! announcing a huge body as merely incomplete, which is how live555's
//! CVE-2018-4013 class of bugs starts. So this framer finds the end of the
//! header block and the Content-Length itself, enforces the caps, and only
//! then hands rtsp-types a slice that holds exactly one message.

use std::borrow::Cow;

use rtsp_types::{Message, ParseError};

/// Largest accepted request line plus headers, terminating blank line
/// included (RFC 2326 §4 sets no limit; this is ours).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Largest accepted message body (RFC 2326 §12.14 Content-Length).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One message read from a connection (RFC 2326 §4, §10.12).
#[derive(Debug)]
pub enum Incoming {
    /// A request (RFC 2326 §6).
    Request(rtsp_types::Request<Vec<u8>>),
    /// An interleaved binary frame (RFC 2326 §10.12): `$`, a one-byte
    /// channel, a two-byte big-endian length, then the payload.
    Interleaved {
        /// The channel identifier negotiated by `interleaved=` (RFC 2326
        /// §12.39).
        channel: u8,
        /// The frame's payload (an RTP or RTCP packet).
        payload: Vec<u8>,
    },
    /// A response from the client (RFC 2326 §7), e.g. to a server-sent
    /// request; the server sends none, so it is ignored.
    Response,
}

/// Unrecoverable framing errors (RFC 2326 §7.1.1 status codes): answer with the status
/// code and close the connection, since the stream can no longer be framed.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    /// 413 Request Entity Too Large (RFC 2326 §7.1.1):
    /// the header block or the announced body exceeds the caps.
    #[error("request too large")]
    TooLarge,
    /// 400 Bad Request (RFC 2326 §7.1.1): the bytes are not an RTSP message.
    #[error("malformed request")]
    Malformed,
}

/// Incremental framer for one RTSP connection (RFC 2326 §4, §10.12): feed it
/// bytes with [`push`](Self::push), take messages with
/// [`next_message`](Self::next_message).
///
/// After an error the framer keeps returning that error: the caller is
/// expected to answer and close.
#[derive(Debug, Default)]
pub struct RtspFramer {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`; consumed bytes are only
    /// dropped on the next `push` so that draining many pipelined messages
    /// costs one move instead of one per message.
    pos: usize,
    /// How many bytes of the current message were already searched for the
    /// end of the header block, so that byte-by-byte delivery does not
    /// rescan the whole prefix each time.
    scanned: usize,
}

impl RtspFramer {
    /// An empty framer for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received on the connection.
    pub fn push(&mut self, data: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as messages, so the caller can
    /// stop reading from a client that pushes without letting us frame.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    ///
    /// Line ends (CR, LF) between messages are skipped: some clients send
    /// them as keep-alives or after a body (tolerated like HTTP/1.1 §4.1
    /// does).
    ///
    /// # Errors
    ///
    /// [`FramingError::TooLarge`] once more than [`MAX_HEADER_BYTES`] are
    /// buffered without a complete header block, or when Content-Length
    /// exceeds [`MAX_BODY_BYTES`]; [`FramingError::Malformed`] when the
    /// bytes cannot be an RTSP message.
    pub fn next_message(&mut self) -> Result<Option<Incoming>, FramingError> {
        let skip = self.buf[self.pos..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if skip > 0 {
            self.pos += skip;
            self.scanned = 0;
        }
        let rest = &self.buf[self.pos..];
        let Some(&first) = rest.first() else {
            return Ok(None);
        };
        if first == b'$' {
            return Ok(self.next_interleaved());
        }
        // A request starts with a method token (RFC 2326 §6.1), a response
        // with "RTSP/"; anything else can never become a message, so fail
        // now rather than buffering up to the cap.
        if !is_token_char(first) {
            return Err(FramingError::Malformed);
        }

        let Some(end) = self.find_header_end() else {
            return if self.buffered_len() > MAX_HEADER_BYTES {
                Err(FramingError::TooLarge)
            } else {
                Ok(None)
            };
        };
        if end.len > MAX_HEADER_BYTES {
            // The blank line starts inside the cap but ends past it.
            return Err(FramingError::TooLarge);
        }
        let rest = &self.buf[self.pos..];
        let header = with_crlf_line_ends(&rest[..end.len]);
        let body_len = content_length(&header)?;
        if body_len > MAX_BODY_BYTES {
            return Err(FramingError::TooLarge);
        }
        if end.may_continue_with_lf && body_len > 0 {
            // Whether the body starts here or after an LF still to come
            // is unknown; without a body, a stray LF is skipped as the
            // gap before the next message.
            return Ok(None);
        }
        let total = end.len + body_len;
        if rest.len() < total {
            return Ok(None);
        }

        // rtsp-types only reads CRLF line ends, so a header block that has
        // others goes to it rewritten, followed by the body as received.
        let parsed: Result<(Message<Vec<u8>>, usize), ParseError> = match &header {
            Cow::Borrowed(_) => Message::parse(&rest[..total]),
            Cow::Owned(rewritten) => {
                let mut message = Vec::with_capacity(rewritten.len() + body_len);
                message.extend_from_slice(rewritten);
                message.extend_from_slice(&rest[end.len..total]);
                Message::parse(&message)
            }
        };
        let message = match parsed {
            Ok((message, consumed)) if consumed == header.len() + body_len => message,
            // Given exactly one message's bytes, anything else (incomplete,
            // a different length) means rtsp-types read it differently from
            // our framing: do not guess where the next message starts.
            _ => return Err(FramingError::Malformed),
        };
        self.pos += total;
        self.scanned = 0;
        match message {
            Message::Request(request) => Ok(Some(Incoming::Request(request))),
            Message::Response(_) => Ok(Some(Incoming::Response)),
            Message::Data(_) => Err(FramingError::Malformed),
        }
    }

    /// Takes a `$` frame (RFC 2326 §10.12) if it is complete.
    fn next_interleaved(&mut self) -> Option<Incoming> {
        let rest = &self.buf[self.pos..];
        let [_, channel, hi, lo, ..] = *rest else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let payload = rest.get(4..4 + len)?.to_vec();
        self.pos += 4 + len;
        self.scanned = 0;
        Some(Incoming::Interleaved { channel, payload })
    }

    /// Where the header block ends, blank line included, searching only
    /// bytes not searched before and never beyond the cap.
    ///
    /// Lines may end in CRLF, LF or CR alone (RFC 2326 §4: receivers
    /// accept all three), so the blank line is any terminator directly
    /// followed by another.
    fn find_header_end(&mut self) -> Option<HeaderEnd> {
        let rest = &self.buf[self.pos..];
        let limit = rest.len().min(MAX_HEADER_BYTES);
        // Bytes before `scanned` were searched already. Deciding at a byte
        // looks one byte back, which is always there: the first byte starts
        // the request line.
        let from = self.scanned.max(1);
        for at in from..limit {
            let previous = rest[at - 1];
            // A terminator starts at `at` right after one that ended at
            // `at - 1`. An LF after a CR belongs to that CR's terminator.
            let blank_line = match rest[at] {
                b'\r' => matches!(previous, b'\r' | b'\n'),
                b'\n' => previous == b'\n',
                _ => false,
            };
            if !blank_line {
                continue;
            }
            if rest[at] == b'\n' {
                return Some(HeaderEnd {
                    len: at + 1,
                    may_continue_with_lf: false,
                });
            }
            return Some(match rest.get(at + 1) {
                Some(b'\n') => HeaderEnd {
                    len: at + 2,
                    may_continue_with_lf: false,
                },
                Some(_) => HeaderEnd {
                    len: at + 1,
                    may_continue_with_lf: false,
                },
                None => HeaderEnd {
                    len: at + 1,
                    may_continue_with_lf: true,
                },
            });
        }
        self.scanned = limit;
        None
    }
}

/// The end of a header block found by [`RtspFramer::find_header_end`].
#[derive(Debug, Clone, Copy)]
struct HeaderEnd {
    /// Bytes of the header block, request line and blank line included.
    len: usize,
    /// The blank line is a CR that is the last byte received, so an LF
    /// completing it as CRLF may still arrive.
    may_continue_with_lf: bool,
}

/// A header block with every line ending (CRLF, LF or CR, RFC 2326 §4)
/// written as CRLF; borrowed when it already is.
fn with_crlf_line_ends(header: &[u8]) -> Cow<'_, [u8]> {
    let crlf_only = header.iter().enumerate().all(|(at, &b)| match b {
        b'\r' => header.get(at + 1) == Some(&b'\n'),
        b'\n' => at > 0 && header[at - 1] == b'\r',
        _ => true,
    });
    if crlf_only {
        return Cow::Borrowed(header);
    }
    let mut rewritten = Vec::with_capacity(header.len() + header.len() / 8);
    let mut bytes = header.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' => {
                bytes.next_if_eq(&b'\n');
                rewritten.extend_from_slice(b"\r\n");
            }
            b'\n' => rewritten.extend_from_slice(b"\r\n"),
            other => rewritten.push(other),
        }
    }
    Cow::Owned(rewritten)
}

/// Token characters (RFC 2326 §15.1, as in HTTP/1.1 §2.2).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The Content-Length (RFC 2326 §12.14) announced by a header block, 0 if
/// absent. Several Content-Length headers are rejected rather than picking
/// one, since a disagreement about the body length is how request
/// smuggling works.
fn content_length(header: &[u8]) -> Result<usize, FramingError> {
    let mut found = None;
    // The first line is the request or status line, not a header.
    for line in header.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        if found.is_some() {
            return Err(FramingError::Malformed);
        }
        let value = std::str::from_utf8(&line[colon + 1..])
            .map_err(|_| FramingError::Malformed)?
            .trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FramingError::Malformed);
        }
        // All digits, so the only possible failure is overflow: too large.
        found = Some(value.parse::<usize>().map_err(|_| FramingError::TooLarge)?);
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_types::Method;

    fn request(framer: &mut RtspFramer) -> rtsp_types::Request<Vec<u8>> {
        match framer.next_message() {
            Ok(Some(Incoming::Request(r))) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn cseq(r: &rtsp_types::Request<Vec<u8>>) -> String {
        r.header(&rtsp_types::headers::CSEQ)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn pipelined_requests_come_out_one_by_one() {
        let mut f = RtspFramer::new();
        f.push(
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n\
              GET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nhello\
              \r\n\
              DESCRIBE rtsp://h:1/a%20b?x=1 RTSP/1.0\r\nCSeq: 3\r\n\r\n",
        );
        let r = request(&mut f);
        assert_eq!(r.method(), &Method::Options);
        assert!(r.request_uri().is_none());
        assert_eq!(cseq(&r), "1");
        let r = request(&mut f);
        assert_eq!(r.method(), &Method::GetParameter);
        assert_eq!(r.body(), b"hello");
        assert_eq!(cseq(&r), "2");
        let r = request(&mut f);
        assert_eq!(r.method(), &Method::Describe);
        let uri = r.request_uri().map(|u| u.as_str().to_string());
        assert_eq!(uri.as_deref(), Some("rtsp://h:1/a%20b?x=1"));
        assert!(matches!(f.next_message(), Ok(None)));
        assert_eq!(f.buffered_len(), 0);
    }

    #[test]
    fn split_delivery_byte_by_byte() {
        let msg: &[u8] =
            b"SETUP rtsp://h/a/trackID=0 RTSP/1.0\r\nCSeq: 7\r\nContent-Length: 3\r\n\r\nabc";
        let mut f = RtspFramer::new();
        for (i, b) in msg.iter().enumerate() {
            f.push(std::slice::from_ref(b));
            if i + 1 < msg.len() {
                assert!(matches!(f.next_message(), Ok(None)), "early at byte {i}");
            }
        }
        let r = request(&mut f);
        assert_eq!(r.method(), &Method::Setup);
        assert_eq!(r.body(), b"abc");
        assert!(matches!(f.next_message(), Ok(None)));
    }

    #[test]
    fn interleaved_frame_between_requests() {
        let mut f = RtspFramer::new();
        f.push(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n$\x01\x00\x03");
        request(&mut f);
        assert!(matches!(f.next_message(), Ok(None)));
        f.push(b"xyzPLAY rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\n\r\n");
        match f.next_message() {
            Ok(Some(Incoming::Interleaved { channel, payload })) => {
                assert_eq!(channel, 1);
                assert_eq!(payload, b"xyz");
            }
            other => panic!("expected interleaved, got {other:?}"),
        }
        assert_eq!(request(&mut f).method(), &Method::Play);
    }

    #[test]
    fn client_response_is_reported_and_skipped() {
        let mut f = RtspFramer::new();
        f.push(
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nTEARDOWN rtsp://h/a RTSP/1.0\r\nCSeq: 9\r\n\r\n",
        );
        assert!(matches!(f.next_message(), Ok(Some(Incoming::Response))));
        assert_eq!(request(&mut f).method(), &Method::Teardown);
    }

    /// RFC 2326 §4: CRLF, LF or CR alone end a line. The body, counted by
    /// Content-Length, keeps its bytes whatever they are.
    #[test]
    fn bare_lf_and_bare_cr_line_ends_are_accepted() {
        for (input, body) in [
            (&b"OPTIONS * RTSP/1.0\nCSeq: 1\n\n"[..], &b""[..]),
            (b"OPTIONS * RTSP/1.0\rCSeq: 1\r\r", b""),
            (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\n\r\n", b""),
            (b"OPTIONS * RTSP/1.0\nCSeq: 1\r\r\n", b""),
            (
                b"SET_PARAMETER * RTSP/1.0\nCSeq: 1\nContent-Length: 6\n\na\rb\nc\n",
                b"a\rb\nc\n",
            ),
            (
                b"SET_PARAMETER * RTSP/1.0\rCSeq: 1\rContent-Length: 4\r\r\n\r\nxy",
                b"\r\nxy",
            ),
        ] {
            let mut f = RtspFramer::new();
            f.push(input);
            let r = request(&mut f);
            assert_eq!(cseq(&r), "1", "{input:?}");
            assert_eq!(r.body(), body, "{input:?}");
            assert!(matches!(f.next_message(), Ok(None)), "{input:?}");
        }
    }

    #[test]
    fn bare_lf_requests_pipeline_with_interleaved_frames_byte_by_byte() {
        let stream: &[u8] =
            b"SETUP rtsp://h/a/trackID=0 RTSP/1.0\nCSeq: 2\nContent-Length: 2\n\n\n\n\
              $\x01\x00\x02\n\r\
              PLAY rtsp://h/a RTSP/1.0\rCSeq: 3\r\r";
        let mut f = RtspFramer::new();
        let mut messages = Vec::new();
        for b in stream {
            f.push(std::slice::from_ref(b));
            while let Some(message) = f.next_message().expect("frames") {
                messages.push(message);
            }
        }
        let [Incoming::Request(setup), Incoming::Interleaved { channel, payload }, Incoming::Request(play)] =
            messages.as_slice()
        else {
            panic!("{messages:?}");
        };
        assert_eq!(cseq(setup), "2");
        assert_eq!(setup.body(), b"\n\n");
        assert_eq!((*channel, payload.as_slice()), (1, &b"\n\r"[..]));
        assert_eq!(cseq(play), "3", "answered without waiting for more bytes");
    }

    #[test]
    fn a_final_bare_cr_waits_only_when_a_body_follows() {
        let mut f = RtspFramer::new();
        f.push(b"SET_PARAMETER * RTSP/1.0\rCSeq: 4\rContent-Length: 1\r\r");
        assert!(matches!(f.next_message(), Ok(None)), "CR or CRLF?");
        f.push(b"\n");
        assert!(matches!(f.next_message(), Ok(None)), "body still to come");
        f.push(b"Z");
        let r = request(&mut f);
        assert_eq!(r.body(), b"Z", "the LF completed the blank line");
        let mut f = RtspFramer::new();
        f.push(b"SET_PARAMETER * RTSP/1.0\rCSeq: 5\rContent-Length: 1\r\rZ");
        assert_eq!(
            request(&mut f).body(),
            b"Z",
            "a CR alone ended the blank line"
        );
    }

    #[test]
    fn line_ends_are_rewritten_to_crlf_only_where_needed() {
        let crlf = b"A\r\nB\r\n\r\n";
        assert!(matches!(with_crlf_line_ends(crlf), Cow::Borrowed(_)));
        assert_eq!(
            &*with_crlf_line_ends(b"A\nB\rC\r\n\n"),
            b"A\r\nB\r\nC\r\n\r\n"
        );
        assert_eq!(&*with_crlf_line_ends(b"\r\r\n\n\r"), b"\r\n\r\n\r\n\r\n");
    }

    #[test]
    fn huge_header_is_too_large() {
        let mut f = RtspFramer::new();
        f.push(b"OPTIONS * RTSP/1.0\r\nX-Junk: ");
        let chunk = [b'a'; 4096];
        let mut result = Ok(None);
        for _ in 0..20 {
            f.push(&chunk);
            result = f.next_message();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.err(), Some(FramingError::TooLarge));
    }

    #[test]
    fn huge_content_length_is_too_large() {
        let mut f = RtspFramer::new();
        f.push(b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\ncontent-length: 65537\r\n\r\n");
        assert_eq!(f.next_message().err(), Some(FramingError::TooLarge));
        let mut f = RtspFramer::new();
        f.push(b"SET_PARAMETER * RTSP/1.0\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(f.next_message().err(), Some(FramingError::TooLarge));
    }

    #[test]
    fn garbage_is_malformed() {
        for input in [
            &b"\x00\x01\x02 garbage\r\n\r\n"[..],
            b"OPTIONS * HTTP/1.1\r\nCSeq: 1\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
            b"OPTIONS * RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"OPTIONS\r\n\r\n",
        ] {
            let mut f = RtspFramer::new();
            f.push(input);
            assert_eq!(
                f.next_message().err(),
                Some(FramingError::Malformed),
                "{input:?}"
            );
        }
    }

    /// xorshift64*: deterministic, so a failure reproduces.
    fn next_rand(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn fuzz_never_panics() {
        const SEED: &[u8] = b"SETUP rtsp://h/a/trackID=1 RTSP/1.0\r\nCSeq: 3\r\n\
              Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nContent-Length: 4\r\n\r\nbody\
              $\x00\x00\x02ab\r\nRTSP/1.0 200 OK\r\n\r\n";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..4000 {
            let mut input = SEED.to_vec();
            let edits = next_rand(&mut state) % 8;
            for _ in 0..edits {
                let r = next_rand(&mut state);
                let at = (r >> 8) as usize % (input.len() + 1);
                match r % 4 {
                    0 if at < input.len() => input[at] = (r >> 32) as u8,
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    2 => input.insert(at, (r >> 40) as u8),
                    _ => input.truncate(at),
                }
            }
            let mut f = RtspFramer::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = (next_rand(&mut state) % 17 + 1) as usize;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                f.push(chunk);
                while let Ok(Some(_)) = f.next_message() {}
            }
        }
    }
}

/// Edges of the caps and of buffering, kept apart from `tests` so that
/// changes to the line-ending handling and these checks merge cleanly.
#[cfg(test)]
mod edge_tests {
    use super::*;

    /// The caps the README and the security notes promise, written out
    /// here so that shrinking or growing a constant fails a test.
    const SIXTY_FOUR_KIB: usize = 64 * 1024;

    /// A request whose header block (blank line included) is exactly
    /// `total` bytes long, padded with one `X-Pad` header.
    fn request_of_len(total: usize) -> Vec<u8> {
        let head = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Pad: ";
        let tail = b"\r\n\r\n";
        let pad = total - head.len() - tail.len();
        [&head[..], &vec![b'a'; pad], &tail[..]].concat()
    }

    #[test]
    fn header_block_up_to_64_kib_parses() {
        for total in [SIXTY_FOUR_KIB - 100, SIXTY_FOUR_KIB] {
            let mut f = RtspFramer::new();
            f.push(&request_of_len(total));
            assert!(
                matches!(f.next_message(), Ok(Some(Incoming::Request(_)))),
                "a {total}-byte header block is within the cap"
            );
            assert_eq!(f.buffered_len(), 0);
        }
    }

    #[test]
    fn header_block_over_the_cap_is_too_large() {
        // The terminator itself lies beyond the cap, so even a block that
        // completes in one push is refused.
        let mut f = RtspFramer::new();
        f.push(&request_of_len(SIXTY_FOUR_KIB + 1));
        assert_eq!(f.next_message().err(), Some(FramingError::TooLarge));

        // Unterminated: refused once one byte more than the cap is held,
        // not before.
        let mut f = RtspFramer::new();
        let unterminated = &request_of_len(SIXTY_FOUR_KIB + 100)[..SIXTY_FOUR_KIB + 1];
        f.push(&unterminated[..SIXTY_FOUR_KIB]);
        assert!(matches!(f.next_message(), Ok(None)));
        f.push(&unterminated[SIXTY_FOUR_KIB..]);
        assert_eq!(f.next_message().err(), Some(FramingError::TooLarge));
    }

    /// A SET_PARAMETER announcing and carrying `body_len` bytes of body.
    fn request_with_body(body_len: usize) -> Vec<u8> {
        let head =
            format!("SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: {body_len}\r\n\r\n");
        [head.as_bytes(), &vec![b'b'; body_len]].concat()
    }

    #[test]
    fn body_just_under_64_kib_parses() {
        for body_len in [SIXTY_FOUR_KIB - 1, SIXTY_FOUR_KIB] {
            let mut f = RtspFramer::new();
            f.push(&request_with_body(body_len));
            match f.next_message() {
                Ok(Some(Incoming::Request(r))) => assert_eq!(r.body().len(), body_len),
                other => panic!("{body_len}-byte body: {other:?}"),
            }
        }
    }

    #[test]
    fn body_over_the_cap_is_too_large() {
        let mut f = RtspFramer::new();
        f.push(&request_with_body(SIXTY_FOUR_KIB + 1));
        assert_eq!(f.next_message().err(), Some(FramingError::TooLarge));
    }

    #[test]
    fn unterminated_garbage_is_refused_at_once() {
        // Neither a token character nor `$`: no message can start here, so
        // the 400 comes on the first bytes, long before the cap.
        for garbage in [
            &b"\x16\x03\x01\x02\x00"[..],
            b" OPTIONS",
            b"\x00",
            b"\xff\xfe",
        ] {
            let mut f = RtspFramer::new();
            f.push(garbage);
            assert_eq!(
                f.next_message().err(),
                Some(FramingError::Malformed),
                "{garbage:?}"
            );
        }
        // Garbage after a complete request is refused once reached.
        let mut f = RtspFramer::new();
        f.push(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n\x16\x03\x01");
        assert!(matches!(f.next_message(), Ok(Some(Incoming::Request(_)))));
        assert_eq!(f.next_message().err(), Some(FramingError::Malformed));
    }

    #[test]
    fn long_interleaved_connection_keeps_the_buffer_bounded() {
        // Ten thousand RTCP-sized frames (1.2 MB) pushed and drained:
        // consumed bytes must be dropped rather than pile up in the buffer.
        let frame = |channel: u8| -> Vec<u8> {
            let payload = [channel; 120];
            let len = u16::try_from(payload.len()).expect("small frame");
            [&[b'$', channel][..], &len.to_be_bytes(), &payload].concat()
        };
        let pair = [frame(1), frame(3)].concat();
        let mut f = RtspFramer::new();
        let mut received = 0;
        for round in 0..5000 {
            // Cut each round at a different place, so that a partial frame
            // is often left buffered between pushes.
            let cut = round % pair.len();
            for part in [&pair[..cut], &pair[cut..]] {
                f.push(part);
                while let Ok(Some(message)) = f.next_message() {
                    assert!(matches!(message, Incoming::Interleaved { .. }));
                    received += 1;
                }
            }
            assert!(
                f.buf.len() <= 2 * pair.len() && f.buf.capacity() <= 8 * pair.len(),
                "round {round}: buffer holds {} bytes, capacity {}",
                f.buf.len(),
                f.buf.capacity()
            );
        }
        assert_eq!(received, 10_000);
        assert_eq!(f.buffered_len(), 0);
    }
}
