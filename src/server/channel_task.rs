//! Drives a [`Channel`]: reads the samples it asks for and publishes its
//! units into the channel's live path at their decode times, for as long
//! as the server runs.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::live_hub::LiveHub;
use crate::live::gop_cache::DEFAULT_GOP_CACHE_BYTES;
use crate::live::stream::LiveStream;
use crate::media::mp4::Mp4Media;
use crate::source::channel::Channel;

/// Plays `media` as the live path `mount` of `hub`, packets of at most
/// `mtu` bytes; never returns (the server aborts it at shutdown).
pub(super) async fn run(hub: Arc<LiveHub>, mount: String, media: Arc<Mp4Media>, mtu: usize) {
    let bases = media.tracks().iter().map(|_| rand::random()).collect();
    let mut channel = Channel::new(media.clone(), bases);
    let stream = LiveStream::new(channel.tracks().to_vec(), mtu, DEFAULT_GOP_CACHE_BYTES);
    let path = hub.insert(mount, stream);
    let mappings = channel.start(Instant::now(), SystemTime::now());
    for (track, mapping) in mappings.into_iter().enumerate() {
        path.set_clock(track, mapping);
    }
    tracing::info!(mount = %path.mount(), "channel started");
    loop {
        // Positional reads of the page cache, as session tasks do them.
        let reads: Vec<_> = channel.missing_reads().collect();
        for (id, sample) in reads {
            channel.deliver(id, media.read_sample(&sample).map(|au| au.data));
        }
        let now = Instant::now();
        let wall = SystemTime::now();
        while let Some(unit) = channel.poll_unit(now) {
            path.publish(unit, now, wall);
        }
        match channel.poll_timeout() {
            Some(due) => tokio::time::sleep_until(due.into()).await,
            None if channel.missing_reads().next().is_some() => {}
            None => {
                tracing::warn!(mount = %path.mount(), "channel has nothing to play; stopping");
                hub.remove(&path);
                return;
            }
        }
    }
}
