//! Multicast viewing of live paths (RFC 2326 §12.39 `multicast`): every
//! viewer of a path that asks for multicast joins one group, fed by one
//! sender (a [`Viewer`] of its own, not owned by any session) that sends
//! each packet once for all of them. The group, its ports and TTL are the
//! server's (`--multicast-*`); the sender starts with the first PLAY and
//! says BYE when the last of its sessions ends.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Instant;

use rand::Rng;
use rtsp_types::{headers, Response};

use super::{ok, Action, RequestContext, RtspHandler, SessionKind, Viewers};
use crate::rtp::Delivery;
use crate::rtsp::refusal::Refusal;
use crate::rtsp::session::Session;
use crate::rtsp::transport::MulticastOffer;
use crate::sdp;
use crate::source::Presentation;
use crate::stats::SessionEnd;
use crate::viewer::{PlayStart, StreamStart, TrackSender, Viewer, DEFAULT_LIVE_QUEUE_BYTES};

/// Ports one group's tracks use from its first: room for 8 tracks' RTP
/// and RTCP pairs, so the groups of two paths never share a port (a socket
/// bound to a port receives every group joined on the host).
pub const PORTS_PER_GROUP: u16 = 16;

/// A live path's multicast group.
#[derive(Debug)]
pub(super) struct MulticastGroup {
    group: Ipv4Addr,
    /// First RTP port of the group's tracks.
    port: u16,
    /// The id its sender is driven under, like a session's.
    sender_id: String,
    /// Sessions watching through it.
    sessions: BTreeSet<String>,
    /// Whether its sender was started (the first PLAY).
    playing: bool,
}

/// A SETUP that negotiated multicast.
pub(super) struct MulticastSetup {
    pub(super) mount: String,
    pub(super) media: Presentation,
    pub(super) track: usize,
    pub(super) existing: Option<String>,
    pub(super) reply: String,
}

impl RtspHandler {
    /// What `mount`'s group offers for `track`, if multicast is on, the
    /// presentation is live and a group is (or can be) had.
    pub(super) fn multicast_offer(
        &self,
        mount: &str,
        media: &Presentation,
        track: usize,
    ) -> Option<MulticastOffer> {
        let settings = self.settings.multicast?;
        if !media.is_live() || track >= usize::from(PORTS_PER_GROUP / 2) {
            return None;
        }
        let (group, port) = match self.multicast_groups.get(mount) {
            Some(existing) => (existing.group, existing.port),
            None => self.free_group()?,
        };
        Some(MulticastOffer {
            group,
            port: port.checked_add(2 * track as u16)?,
            ttl: settings.ttl,
        })
    }

    /// The first group of the range no path holds, and its first port.
    fn free_group(&self) -> Option<(Ipv4Addr, u16)> {
        let settings = self.settings.multicast?;
        let first = u32::from(settings.first_group);
        (0..settings.groups).find_map(|index| {
            let group = Ipv4Addr::from(first.checked_add(index)?);
            if self.multicast_groups.values().any(|g| g.group == group) {
                return None;
            }
            let offset = u16::try_from(index).ok()?.checked_mul(PORTS_PER_GROUP)?;
            Some((group, settings.port.checked_add(offset)?))
        })
    }

    pub(super) fn setup_multicast(
        &mut self,
        ctx: &RequestContext,
        cseq: &str,
        setup: MulticastSetup,
        viewers: &mut impl Viewers,
        actions: &mut Vec<Action>,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        let MulticastSetup {
            mount,
            media,
            track,
            existing,
            reply,
        } = setup;
        if existing
            .as_ref()
            .is_some_and(|id| !self.sessions[id].multicast)
        {
            return Err(Refusal::UnsupportedTransport(
                "multicast and unicast in one session".into(),
            ));
        }
        if !self.multicast_groups.contains_key(&mount) {
            let (group, port) = self
                .free_group()
                .ok_or_else(|| Refusal::UnsupportedTransport("no free multicast group".into()))?;
            let sender_id = format!("multicast:{mount}");
            self.start_sender(&sender_id, &mount, &media, group, port, ctx, viewers);
            actions.push(Action::Spawn {
                session_id: sender_id.clone(),
                client: std::net::SocketAddr::from((group, port)),
                mount: mount.clone(),
                transport: format!("multicast {group}:{port}"),
            });
            tracing::info!(%mount, %group, port, "multicast group allocated");
            self.multicast_groups.insert(
                mount.clone(),
                MulticastGroup {
                    group,
                    port,
                    sender_id,
                    sessions: BTreeSet::new(),
                    playing: false,
                },
            );
        }
        let group = &self.multicast_groups[&mount];
        let delivery = Delivery::Udp {
            rtp: (group.group, group.port + 2 * track as u16).into(),
            rtcp: (group.group, group.port + 2 * track as u16 + 1).into(),
        };
        let id = match existing {
            Some(id) => id,
            None => self.open_session(ctx, mount.clone(), media, SessionKind::Multicast)?,
        };
        if let Some(group) = self.multicast_groups.get_mut(&mount) {
            group.sessions.insert(id.clone());
        }
        let session = self.sessions.get_mut(&id).ok_or(Refusal::SessionNotFound)?;
        session.last_activity = ctx.received;
        session.set_delivery(track, delivery);
        Ok(ok(cseq)
            .header(headers::TRANSPORT, reply)
            .header(headers::SESSION, self.session_header(&id))
            .build(Vec::new()))
    }

    /// Creates the group's sender: a live viewer of every track of the
    /// path, to the group's ports.
    #[allow(clippy::too_many_arguments)]
    fn start_sender(
        &mut self,
        sender_id: &str,
        mount: &str,
        media: &Presentation,
        group: Ipv4Addr,
        port: u16,
        ctx: &RequestContext,
        viewers: &mut impl Viewers,
    ) {
        let cname = format!("rtpcast@{}", ctx.local.ip());
        let mut sender = Viewer::live(mount.to_string(), cname, DEFAULT_LIVE_QUEUE_BYTES);
        for info in media.tracks().iter().take(usize::from(PORTS_PER_GROUP / 2)) {
            let track_port = port + 2 * info.index as u16;
            let start = StreamStart {
                ssrc: self.rng.gen(),
                first_seq: self.rng.gen(),
                timestamp_base: 0,
            };
            sender.set_up_track(TrackSender::new(
                info.clone(),
                Delivery::Udp {
                    rtp: (group, track_port).into(),
                    rtcp: (group, track_port + 1).into(),
                },
                sdp::payload_type(info),
                self.settings.mtu,
                start,
            ));
        }
        viewers.insert(sender_id, sender);
    }

    /// PLAY of a multicast session: starts the group's sender on the first
    /// one; says where the group's stream is.
    pub(super) fn play_multicast(
        &mut self,
        id: &str,
        now: Instant,
        viewers: &mut impl Viewers,
        actions: &mut Vec<Action>,
    ) -> Result<PlayStart, Refusal> {
        let mount = self.sessions[id].mount.clone();
        let group = self
            .multicast_groups
            .get_mut(&mount)
            .ok_or_else(|| Refusal::NotFound(mount.clone()))?;
        let sender_id = group.sender_id.clone();
        if !group.playing {
            if !viewers.join_live(&sender_id) {
                return Err(Refusal::NotFound(mount));
            }
            group.playing = true;
            actions.push(Action::Wake {
                session_id: sender_id.clone(),
            });
            return viewers
                .with(&sender_id, |sender| sender.play(now, None, None))
                .ok_or(Refusal::NotFound(mount));
        }
        viewers
            .with(&sender_id, |sender| sender.position())
            .ok_or(Refusal::NotFound(mount))
    }

    /// A multicast session ended: the last one of its group stops the
    /// sender (BYE to the group).
    pub(super) fn leave_multicast(
        &mut self,
        session: &Session,
        viewers: &mut impl Viewers,
    ) -> Option<Action> {
        let group = self.multicast_groups.get_mut(&session.mount)?;
        group.sessions.remove(&session.id);
        if !group.sessions.is_empty() {
            return None;
        }
        let group = self.multicast_groups.remove(&session.mount)?;
        tracing::info!(mount = %session.mount, group = %group.group, "multicast group released");
        viewers.with(&group.sender_id, |sender| {
            sender.close(SessionEnd::LastViewerLeft);
        });
        Some(Action::Wake {
            session_id: group.sender_id,
        })
    }
}
