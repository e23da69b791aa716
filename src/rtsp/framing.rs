//! Splits the bytes of an RTSP connection into requests and interleaved
//! binary data (RFC 2326 §10.12), with size caps.

/// Stub: one message read from a connection.
#[derive(Debug)]
pub enum Incoming {
    /// A request.
    Request(rtsp_types::Request<Vec<u8>>),
    /// An interleaved `$` frame.
    Interleaved { channel: u8, payload: Vec<u8> },
    /// A response from the client (ignored).
    Response,
}

/// Stub: unrecoverable framing errors; answer and close.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// 413.
    #[error("request too large")]
    TooLarge,
    /// 400.
    #[error("malformed request")]
    Malformed,
}

/// Stub.
#[derive(Debug, Default)]
pub struct RtspFramer {}

impl RtspFramer {
    /// Stub.
    pub fn new() -> Self { Self {} }
    /// Stub.
    pub fn push(&mut self, _data: &[u8]) { todo!() }
    /// Stub.
    pub fn next_message(&mut self) -> Result<Option<Incoming>, FramingError> { todo!() }
}
