//! The server's one RTP/RTCP UDP port pair, shared by every session, and
//! batched sends.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockAddr;
use tokio::net::UdpSocket;

/// Most packets handed to one `sendmmsg(2)` call; larger batches loop.
const MAX_BATCH: usize = 32;

/// The RTP socket and the RTCP socket on the next port (RFC 3550 §11:
/// RTCP on RTP port + 1), shared by all UDP sessions so firewalls and
/// Docker need only these two ports.
#[derive(Debug)]
pub struct UdpPair {
    /// Sends RTP; receives (and drops) clients' NAT-opening packets.
    pub rtp: UdpSocket,
    /// Sends sender reports and BYE; receives receiver reports.
    pub rtcp: UdpSocket,
}

impl UdpPair {
    /// Binds `port` and `port + 1` on `ip`. Port 0 picks a free even pair.
    pub async fn bind(ip: IpAddr, port: u16) -> io::Result<UdpPair> {
        if port != 0 {
            let rtcp_port = port.checked_add(1).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "RTP port 65535 has no RTCP port",
                )
            })?;
            let rtp = UdpSocket::bind((ip, port)).await?;
            let rtcp = UdpSocket::bind((ip, rtcp_port)).await?;
            return Ok(UdpPair { rtp, rtcp });
        }
        let mut last_error = None;
        for _ in 0..64 {
            let candidate = 20_000 + 2 * (rand::random::<u16>() % 20_000);
            match (
                UdpSocket::bind((ip, candidate)).await,
                UdpSocket::bind((ip, candidate + 1)).await,
            ) {
                (Ok(rtp), Ok(rtcp)) => return Ok(UdpPair { rtp, rtcp }),
                (Err(e), _) | (_, Err(e)) => last_error = Some(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free UDP port pair")))
    }

    /// The RTP port.
    pub fn rtp_port(&self) -> io::Result<u16> {
        Ok(self.rtp.local_addr()?.port())
    }
}

/// Sends the RTP packets (RFC 3550 §5) of one access unit to `dest` with
/// as few `sendmmsg(2)` calls as possible, each packet gathered from two
/// pieces (the viewer's header, the shared payload) so no payload is
/// copied; without blocking: packets the kernel cannot take now are
/// dropped, so a viewer whose socket buffer is full never delays another.
/// Returns how many packets went out.
pub fn send_batch<'a>(
    socket: &UdpSocket,
    dest: SocketAddr,
    packets: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
) -> io::Result<usize> {
    let addr = SockAddr::from(dest);
    let fd = socket.as_raw_fd();
    let mut sent = 0;
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iovecs: [[libc::iovec; 2]; MAX_BATCH] = [[empty; 2]; MAX_BATCH];
    // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
    let mut headers: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    let mut packets = packets.peekable();
    while packets.peek().is_some() {
        let mut count = 0;
        for (header, payload) in packets.by_ref().take(MAX_BATCH) {
            iovecs[count] = [header, payload].map(|piece| libc::iovec {
                iov_base: piece.as_ptr() as *mut libc::c_void,
                iov_len: piece.len(),
            });
            count += 1;
        }
        for (header, iovec) in headers.iter_mut().zip(iovecs.iter_mut()).take(count) {
            header.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            header.msg_hdr.msg_namelen = addr.len();
            header.msg_hdr.msg_iov = iovec.as_mut_ptr();
            header.msg_hdr.msg_iovlen = 2;
            header.msg_len = 0;
        }
        let mut offset = 0;
        while offset < count {
            // SAFETY: the headers point at iovecs and an address that live
            // until the call returns; count - offset entries are initialised.
            let result = unsafe {
                libc::sendmmsg(
                    fd,
                    headers[offset..].as_mut_ptr(),
                    (count - offset) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if result < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::WouldBlock {
                    return Ok(sent);
                }
                return Err(error);
            }
            if result == 0 {
                return Ok(sent);
            }
            offset += result as usize;
            sent += result as usize;
        }
    }
    Ok(sent)
}

/// Sends one datagram without blocking; a full buffer drops it.
pub fn send_one(socket: &UdpSocket, dest: SocketAddr, packet: &[u8]) -> io::Result<()> {
    match socket.try_send_to(packet, dest) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batch_arrives_as_separate_datagrams_in_order() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dest = receiver.local_addr().unwrap();
        let headers: Vec<Vec<u8>> = (0..40u8).map(|i| vec![0x80, i]).collect();
        let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let packets = headers.iter().zip(&payloads).map(|(h, p)| (&h[..], &p[..]));
        let sent = send_batch(&sender, dest, packets).unwrap();
        assert_eq!(sent, 40);
        let mut buf = [0u8; 100];
        for (header, payload) in headers.iter().zip(&payloads) {
            let (n, _) = receiver.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &[&header[..], &payload[..]].concat()[..]);
        }
    }

    #[tokio::test]
    async fn ephemeral_pair_is_consecutive() {
        let pair = UdpPair::bind([127, 0, 0, 1].into(), 0).await.unwrap();
        let rtp = pair.rtp.local_addr().unwrap().port();
        let rtcp = pair.rtcp.local_addr().unwrap().port();
        assert_eq!(rtcp, rtp + 1);
        assert_eq!(rtp % 2, 0);
    }
}
