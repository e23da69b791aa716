//! Transport header negotiation (RFC 2326 §12.39).
//!
//! The header is read by a small hand parser rather than
//! `rtsp_types::headers::Transports`: that parser (written for RTSP 2.0,
//! RFC 7826 §18.54) matches parameter names case-sensitively and folds
//! `client_port`, `server_port` and `port` into one field, so it rejects or
//! misreads headers that real RTSP 1.0 clients send.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

pub use crate::rtp::Delivery;

/// Result of negotiation: the delivery and the Transport header value of
/// the SETUP response (RFC 2326 §12.39).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The chosen delivery.
    pub delivery: Delivery,
    /// Whether the client will play or record (publish).
    pub mode: TransportMode,
    /// True for a multicast transport: `delivery` is the group's port
    /// pair, shared with every other viewer of the group.
    pub multicast: bool,
    /// The Transport header value to answer with.
    pub reply: String,
}

/// Where the server sends a presentation's multicast stream, when it
/// offers one (RFC 2326 §12.39 `destination`, `port`, `ttl`): chosen by
/// the server, whatever the client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastOffer {
    /// The group address.
    pub group: Ipv4Addr,
    /// The RTP port; RTCP is the next.
    pub port: u16,
    /// Time to live of the packets.
    pub ttl: u8,
}

/// Which way media flows on a transport (RFC 2326 §12.39 `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportMode {
    /// The server sends (the default).
    Play,
    /// The client sends: it publishes (ANNOUNCE, RECORD).
    Record,
}

/// Why no transport could be agreed (RFC 2326 §7.1.1 status codes).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// 461 Unsupported Transport (RFC 2326 §11.3.11): no alternative is one
    /// we serve.
    #[error("unsupported transport: {0}")]
    Unsupported(String),
    /// 400 Bad Request (RFC 2326 §7.1.1): the header cannot be understood.
    #[error("malformed Transport header: {0}")]
    Malformed(String),
}

/// Picks the first alternative of a client's Transport header (RFC 2326
/// §12.39, comma-separated in order of preference) that we serve: unicast
/// `RTP/AVP[/UDP]` with `client_port`, `RTP/AVP/TCP` interleaved, or
/// `RTP/AVP;multicast` where `multicast` offers a group (live paths): the
/// group, ports and TTL are the server's, the client's are ignored.
///
/// UDP packets always go to `client_ip`: a `destination` parameter is
/// ignored, because honouring it would let anyone aim a stream at a third
/// party (RFC 2326 §12.39 and §16 warn of this). `server_rtp_port` is the RTP port
/// of the server's RTP/RTCP pair (RTCP on the next); `free_channel` is the first of two unused
/// interleaved channels, used when an `RTP/AVP/TCP` offer names none.
///
/// Malformed alternatives are skipped like unsupported ones; the header is
/// only reported malformed (400) if no alternative is usable and at least
/// one was malformed, else unsupported (461).
///
/// # Errors
///
/// [`TransportError::Malformed`] or [`TransportError::Unsupported`] as
/// described above.
pub fn negotiate(
    header: &str,
    client_ip: IpAddr,
    server_rtp_port: u16,
    free_channel: u8,
    multicast: Option<MulticastOffer>,
) -> Result<Negotiated, TransportError> {
    let mut malformed = None;
    let mut unsupported = None;
    for alternative in split_outside_quotes(header, ',') {
        if alternative.trim().is_empty() {
            continue;
        }
        match negotiate_one(
            alternative,
            client_ip,
            server_rtp_port,
            free_channel,
            multicast,
        ) {
            Ok(n) => return Ok(n),
            Err(e @ TransportError::Malformed(_)) => {
                malformed.get_or_insert(e);
            }
            Err(e @ TransportError::Unsupported(_)) => {
                unsupported.get_or_insert(e);
            }
        }
    }
    Err(malformed
        .or(unsupported)
        .unwrap_or_else(|| TransportError::Malformed("no transport offered".into())))
}

/// The lower transports of RTP/AVP (RFC 2326 §12.39) we serve.
enum Lower {
    Udp,
    Tcp,
}

fn negotiate_one(
    spec: &str,
    client_ip: IpAddr,
    server_rtp_port: u16,
    free_channel: u8,
    multicast: Option<MulticastOffer>,
) -> Result<Negotiated, TransportError> {
    let mut params = split_outside_quotes(spec, ';').map(str::trim);
    let protocol = params.next().unwrap_or_default();
    let lower = if protocol.eq_ignore_ascii_case("RTP/AVP")
        || protocol.eq_ignore_ascii_case("RTP/AVP/UDP")
    {
        Lower::Udp
    } else if protocol.eq_ignore_ascii_case("RTP/AVP/TCP") {
        Lower::Tcp
    } else {
        return Err(TransportError::Unsupported(format!(
            "protocol {protocol:?}"
        )));
    };

    let mut client_port = None;
    let mut interleaved = None;
    let mut mode = TransportMode::Play;
    let mut wants_multicast = false;
    for param in params.filter(|p| !p.is_empty()) {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (param, None),
        };
        let key = key.to_ascii_lowercase();
        match (key.as_str(), value) {
            ("multicast", _) => wants_multicast = true,
            ("mode", Some(modes)) => mode = parse_mode(modes)?,
            ("client_port", Some(v)) => client_port = Some(pair::<u16>(v, "client_port", 1)?),
            ("interleaved", Some(v)) => interleaved = Some(pair::<u8>(v, "interleaved", 0)?),
            // `unicast` is the default; `destination` is deliberately
            // ignored (see `negotiate`); the rest (ssrc, ttl, layers,
            // server_port, source) does not change what we send.
            _ => {}
        }
    }

    let mode_suffix = match mode {
        TransportMode::Play => "",
        TransportMode::Record => ";mode=record",
    };
    if wants_multicast {
        let offer = match (&lower, mode, multicast) {
            (Lower::Udp, TransportMode::Play, Some(offer)) => offer,
            _ => return Err(TransportError::Unsupported("multicast".into())),
        };
        let rtcp_port = offer
            .port
            .checked_add(1)
            .ok_or_else(|| TransportError::Unsupported("multicast port".into()))?;
        return Ok(Negotiated {
            delivery: Delivery::Udp {
                rtp: SocketAddrV4::new(offer.group, offer.port).into(),
                rtcp: SocketAddrV4::new(offer.group, rtcp_port).into(),
            },
            mode,
            multicast: true,
            reply: format!(
                "RTP/AVP;multicast;destination={};port={}-{rtcp_port};ttl={}",
                offer.group, offer.port, offer.ttl
            ),
        });
    }
    match lower {
        Lower::Udp => {
            let (rtp, rtcp) = client_port
                .ok_or_else(|| TransportError::Unsupported("UDP without client_port".into()))?;
            Ok(Negotiated {
                delivery: Delivery::Udp {
                    rtp: SocketAddr::new(client_ip, rtp),
                    rtcp: SocketAddr::new(client_ip, rtcp),
                },
                mode,
                multicast: false,
                // u32 so 65535 cannot overflow here; binding refuses an RTP
                // port without a next port for RTCP anyway.
                reply: format!(
                    "RTP/AVP;unicast;client_port={rtp}-{rtcp};server_port={server_rtp_port}-{}{mode_suffix}",
                    u32::from(server_rtp_port) + 1
                ),
            })
        }
        Lower::Tcp => {
            let (rtp_channel, rtcp_channel) = match interleaved {
                Some(channels) => channels,
                None => (
                    free_channel,
                    free_channel.checked_add(1).ok_or_else(|| {
                        TransportError::Unsupported("no free interleaved channel".into())
                    })?,
                ),
            };
            Ok(Negotiated {
                delivery: Delivery::Interleaved {
                    rtp_channel,
                    rtcp_channel,
                },
                mode,
                multicast: false,
                reply: format!(
                    "RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel}{mode_suffix}"
                ),
            })
        }
    }
}

/// The `mode` of a transport (RFC 2326 §12.39): PLAY or RECORD, not both
/// at once (a transport carries media one way here).
fn parse_mode(modes: &str) -> Result<TransportMode, TransportError> {
    let modes = modes.trim_matches('"');
    let mut found = None;
    for mode in modes.split(',').map(str::trim) {
        let this = if mode.eq_ignore_ascii_case("PLAY") {
            TransportMode::Play
        } else if mode.eq_ignore_ascii_case("RECORD") {
            TransportMode::Record
        } else {
            return Err(TransportError::Unsupported(format!("mode {mode:?}")));
        };
        if found.is_some_and(|earlier| earlier != this) {
            return Err(TransportError::Unsupported(format!("mode {modes:?}")));
        }
        found = Some(this);
    }
    Ok(found.unwrap_or(TransportMode::Play))
}

/// A port or channel pair `a-b`, or `a` meaning `a-(a+1)` (RFC 2326 §12.39),
/// each half at least `min` and fitting `T`. Equal halves are rejected:
/// RTP and RTCP sharing one port (RFC 5761 muxing) is not part of RTSP 1.0.
fn pair<T: TryFrom<u32>>(value: &str, what: &str, min: u32) -> Result<(T, T), TransportError> {
    let malformed = || TransportError::Malformed(format!("{what}={value}"));
    let number = |s: &str| -> Result<u32, TransportError> {
        let s = s.trim();
        // Digits only: `str::parse` would also take a leading `+`.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        s.parse::<u32>().map_err(|_| malformed())
    };
    let (first, second) = match value.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let a = number(value)?;
            (a, a.saturating_add(1))
        }
    };
    if first == second || first < min || second < min {
        return Err(malformed());
    }
    let narrow = |n: u32| T::try_from(n).map_err(|_| malformed());
    Ok((narrow(first)?, narrow(second)?))
}

/// The alternatives of a Transport header (RFC 2326 §12.39) that carry
/// media on the RTSP connection itself (`RTP/AVP/TCP`), in the client's
/// order; empty when it offers none. An RTSPS connection serves only
/// these: anything else would send the media outside the TLS session.
pub fn interleaved_only(header: &str) -> String {
    split_outside_quotes(header, ',')
        .filter(|alternative| {
            let protocol = alternative.split(';').next().unwrap_or_default().trim();
            protocol.eq_ignore_ascii_case("RTP/AVP/TCP")
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits on `sep` except inside double quotes, where RFC 2326 §12.39
/// allows a comma-separated `mode` list.
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut in_quotes = false;
    s.split(move |c: char| {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        c == sep && !in_quotes
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    fn udp(rtp: u16, rtcp: u16) -> Delivery {
        Delivery::Udp {
            rtp: SocketAddr::new(CLIENT, rtp),
            rtcp: SocketAddr::new(CLIENT, rtcp),
        }
    }

    fn ok(header: &str) -> Negotiated {
        match negotiate(header, CLIENT, 6970, 4, None) {
            Ok(n) => n,
            Err(e) => panic!("{header:?}: {e}"),
        }
    }

    fn err(header: &str) -> TransportError {
        match negotiate(header, CLIENT, 6970, 4, None) {
            Ok(n) => panic!("{header:?} accepted: {n:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn only_interleaved_alternatives_are_kept_for_rtsps() {
        assert_eq!(
            interleaved_only(
                "RTP/AVP;unicast;client_port=5000-5001, rtp/avp/tcp;interleaved=0-1,\
                 RTP/AVP/UDP;multicast,RTP/AVP/TCP;unicast;mode=\"PLAY,RECORD\""
            ),
            "rtp/avp/tcp;interleaved=0-1,RTP/AVP/TCP;unicast;mode=\"PLAY,RECORD\""
        );
        assert_eq!(
            interleaved_only("RTP/AVP;unicast;client_port=5000-5001"),
            ""
        );
        assert_eq!(interleaved_only("RTP/AVP/TCPX;interleaved=0-1"), "");
        assert_eq!(interleaved_only(""), "");
    }

    #[test]
    fn vlc_udp_without_lower_transport() {
        let n = ok("RTP/AVP;unicast;client_port=5000-5001");
        assert_eq!(n.delivery, udp(5000, 5001));
        assert_eq!(
            n.reply,
            "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971"
        );
    }

    #[test]
    fn live555_udp_with_mode_play() {
        let n = ok("RTP/AVP;unicast;client_port=5000-5001;mode=play");
        assert_eq!(n.delivery, udp(5000, 5001));
        assert_eq!(
            ok(r#"RTP/AVP;unicast;client_port=5000-5001;mode="PLAY""#),
            n
        );
    }

    #[test]
    fn retina_udp_with_lower_transport() {
        let n = ok("RTP/AVP/UDP;unicast;client_port=39420-39421");
        assert_eq!(n.delivery, udp(39420, 39421));
        assert_eq!(
            n.reply,
            "RTP/AVP;unicast;client_port=39420-39421;server_port=6970-6971"
        );
    }

    #[test]
    fn udp_single_port_and_default_unicast() {
        assert_eq!(ok("RTP/AVP;client_port=7000").delivery, udp(7000, 7001));
    }

    #[test]
    fn mixed_case_keys_and_spaces() {
        let n = ok(" rtp/avp/udp ; UNICAST ; Client_Port = 5002-5003 ; Mode=Play ");
        assert_eq!(n.delivery, udp(5002, 5003));
    }

    /// Keywords of the Transport header (RFC 2326 §12.39) compare
    /// case-insensitively, like the rest of RTSP's tokens.
    #[test]
    fn keywords_of_every_kind_are_case_insensitive() {
        let n = ok("rtp/avp/tcp;Unicast;INTERLEAVED=2-3;MODE=play");
        assert_eq!(n.reply, "RTP/AVP/TCP;unicast;interleaved=2-3");
        assert_eq!(
            ok("Rtp/Avp;CLIENT_PORT=5000-5001;Mode=\"Play\"").delivery,
            udp(5000, 5001)
        );
        assert_eq!(
            ok("RTP/AVP;unicast;client_port=5000-5001;MODE=Record").mode,
            TransportMode::Record
        );
        for h in [
            "RTP/AVP;MULTICAST;client_port=5000-5001",
            "RTP/AVP;Multicast",
            "RTP/AVP;unicast;client_port=5000-5001;MODE=SEND",
        ] {
            assert!(matches!(err(h), TransportError::Unsupported(_)), "{h}");
        }
    }

    #[test]
    fn destination_is_ignored() {
        let n = ok("RTP/AVP;unicast;destination=203.0.113.9;client_port=5000-5001");
        assert_eq!(n.delivery, udp(5000, 5001));
    }

    #[test]
    fn tcp_interleaved() {
        let n = ok("RTP/AVP/TCP;unicast;interleaved=0-1");
        assert_eq!(
            n.delivery,
            Delivery::Interleaved {
                rtp_channel: 0,
                rtcp_channel: 1
            }
        );
        assert_eq!(n.reply, "RTP/AVP/TCP;unicast;interleaved=0-1");
        assert_eq!(
            ok("RTP/AVP/TCP;interleaved=2").reply,
            "RTP/AVP/TCP;unicast;interleaved=2-3"
        );
    }

    #[test]
    fn tcp_without_channels_uses_free_channel() {
        let n = ok("RTP/AVP/TCP;unicast");
        assert_eq!(n.reply, "RTP/AVP/TCP;unicast;interleaved=4-5");
        assert!(matches!(
            negotiate("RTP/AVP/TCP", CLIENT, 6970, 255, None),
            Err(TransportError::Unsupported(_))
        ));
    }

    #[test]
    fn multicast_gets_the_servers_group_ports_and_ttl() {
        let offer = MulticastOffer {
            group: Ipv4Addr::new(239, 255, 0, 3),
            port: 6002,
            ttl: 4,
        };
        // As ffmpeg (udp_multicast) and GStreamer (udp-mcast) ask.
        for header in [
            "RTP/AVP;multicast",
            "RTP/AVP;multicast;destination=224.1.1.1;port=4000-4001;ttl=127",
            "RTP/AVP/TCP;interleaved=0-1,RTP/AVP;multicast",
        ] {
            let n = negotiate(header, CLIENT, 6970, 0, Some(offer));
            let n = n.unwrap_or_else(|e| panic!("{header}: {e}"));
            if header.starts_with("RTP/AVP/TCP") {
                assert!(!n.multicast, "the first usable alternative wins");
                continue;
            }
            assert!(n.multicast);
            assert_eq!(
                n.delivery,
                Delivery::Udp {
                    rtp: "239.255.0.3:6002".parse().unwrap(),
                    rtcp: "239.255.0.3:6003".parse().unwrap(),
                }
            );
            assert_eq!(
                n.reply,
                "RTP/AVP;multicast;destination=239.255.0.3;port=6002-6003;ttl=4"
            );
        }
        // Not offered (a file), over TCP, or to record: unsupported.
        for (header, offered) in [
            ("RTP/AVP;multicast", None),
            ("RTP/AVP/TCP;multicast", Some(offer)),
            ("RTP/AVP;multicast;mode=record", Some(offer)),
        ] {
            let error = negotiate(header, CLIENT, 6970, 0, offered).unwrap_err();
            assert!(matches!(error, TransportError::Unsupported(_)), "{header}");
        }
        let top = MulticastOffer {
            port: 65535,
            ..offer
        };
        assert!(negotiate("RTP/AVP;multicast", CLIENT, 6970, 0, Some(top)).is_err());
    }

    #[test]
    fn record_mode_is_echoed_for_publishers() {
        // As ffmpeg and GStreamer's rtspclientsink send them.
        let n = ok("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record");
        assert_eq!(n.mode, TransportMode::Record);
        assert_eq!(n.reply, "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record");
        let n = ok(r#"RTP/AVP/UDP;unicast;client_port=5000-5001;mode="RECORD""#);
        assert_eq!(n.mode, TransportMode::Record);
        assert_eq!(n.delivery, udp(5000, 5001));
        assert_eq!(
            n.reply,
            "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;mode=record"
        );
        assert_eq!(
            ok("RTP/AVP;unicast;client_port=5000-5001").mode,
            TransportMode::Play
        );
        assert_eq!(
            ok(r#"RTP/AVP;unicast;client_port=5000-5001;mode="play,PLAY""#).mode,
            TransportMode::Play
        );
    }

    #[test]
    fn gstreamer_alternatives_pick_first() {
        let n = ok("RTP/AVP;unicast;client_port=40000-40001, RTP/AVP/TCP;unicast;interleaved=0-1");
        assert_eq!(n.delivery, udp(40000, 40001));
    }

    #[test]
    fn unsupported_alternatives_are_skipped() {
        let n = ok(
            "RTP/SAVP;unicast;client_port=1-2,RTP/AVP;multicast;port=3456-3457,\
             RAW/RAW/UDP;unicast;client_port=9-10,RTP/AVP/TCP;mode=\"PLAY,RECORD\";interleaved=0-1,\
             RTP/AVP/TCP;unicast;interleaved=6-7",
        );
        assert_eq!(n.reply, "RTP/AVP/TCP;unicast;interleaved=6-7");
    }

    #[test]
    fn rejects_unsupported() {
        for h in [
            "RTP/AVP;multicast;port=3456-3457",
            "RTP/SAVP;unicast;client_port=5000-5001",
            "RTP/AVP;unicast;client_port=5000-5001;mode=teardown",
            "RTP/AVP/TCP;interleaved=0-1;mode=\"PLAY,RECORD\"",
            "RAW/RAW/UDP;unicast;client_port=5000-5001",
            "RTP/AVP;unicast",
        ] {
            assert!(matches!(err(h), TransportError::Unsupported(_)), "{h}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for h in [
            "RTP/AVP;unicast;client_port=0-1",
            "RTP/AVP;unicast;client_port=a-b",
            "RTP/AVP;unicast;client_port=5000-",
            "RTP/AVP;unicast;client_port=65535",
            "RTP/AVP;unicast;client_port=70000-70001",
            "RTP/AVP;unicast;client_port=5000-5000",
            "RTP/AVP/TCP;interleaved=256-257",
            "RTP/AVP/TCP;interleaved=255",
            "RTP/AVP/TCP;interleaved=-1",
            "",
            " , ",
        ] {
            assert!(matches!(err(h), TransportError::Malformed(_)), "{h:?}");
        }
    }

    #[test]
    fn malformed_alternative_loses_to_a_usable_one() {
        let n = ok("RTP/AVP;unicast;client_port=x-y,RTP/AVP/TCP;interleaved=0-1");
        assert_eq!(n.reply, "RTP/AVP/TCP;unicast;interleaved=0-1");
    }

    #[test]
    fn ipv6_client() {
        let ip: IpAddr = "2001:db8::1".parse().expect("literal");
        let n = negotiate("RTP/AVP;unicast;client_port=5000-5001", ip, 6970, 0, None);
        assert_eq!(
            n.map(|n| n.delivery),
            Ok(Delivery::Udp {
                rtp: SocketAddr::new(ip, 5000),
                rtcp: SocketAddr::new(ip, 5001),
            })
        );
    }
}

/// Edges of the unicast and port checks, kept apart from `tests` so that
/// changes to keyword matching and these checks merge cleanly.
#[cfg(test)]
mod edge_tests {
    use super::*;
    use std::net::Ipv4Addr;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 4));

    fn negotiate_from_client(header: &str) -> Result<Negotiated, TransportError> {
        negotiate(header, CLIENT, 6970, 0, None)
    }

    #[test]
    fn multicast_with_client_port_is_not_unicast() {
        // A client_port is enough for a UDP delivery, so only the
        // `multicast` keyword itself stops these from becoming unicast.
        for header in [
            "RTP/AVP;multicast;client_port=5000-5001",
            "RTP/AVP/UDP;client_port=5000-5001;multicast",
            "RTP/AVP;unicast;multicast;client_port=5000-5001",
            "RTP/AVP/TCP;multicast;interleaved=0-1",
        ] {
            assert_eq!(
                negotiate_from_client(header),
                Err(TransportError::Unsupported("multicast".into())),
                "{header}"
            );
        }
        // With a unicast alternative after it, that one is chosen.
        let n = negotiate_from_client(
            "RTP/AVP;multicast;client_port=5000-5001,RTP/AVP;unicast;client_port=6000-6001",
        )
        .expect("the unicast alternative");
        assert_eq!(
            n.delivery,
            Delivery::Udp {
                rtp: SocketAddr::new(CLIENT, 6000),
                rtcp: SocketAddr::new(CLIENT, 6001),
            }
        );
    }

    #[test]
    fn signed_and_zero_ports_are_refused() {
        for header in [
            "RTP/AVP;unicast;client_port=+5000",
            "RTP/AVP;unicast;client_port=+5000-5001",
            "RTP/AVP;unicast;client_port=5000-+5001",
            "RTP/AVP;unicast;client_port=5000-0",
            "RTP/AVP;unicast;client_port=0",
            "RTP/AVP;unicast;client_port=-5000",
            "RTP/AVP/TCP;interleaved=+2",
        ] {
            assert!(
                matches!(
                    negotiate_from_client(header),
                    Err(TransportError::Malformed(_))
                ),
                "{header}: {:?}",
                negotiate_from_client(header)
            );
        }
    }
}
