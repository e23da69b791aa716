//! The control-plane probe: a client apart from the viewers, on its own
//! loopback address and its own thread and runtime, timing OPTIONS and
//! DESCRIBE round trips while the viewers play.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::rtsp_client::{connect, describe, request};
use crate::viewer::{DONE, MEASURING};

/// The probe's source address, outside the viewers' `127.0.x.y`.
pub(crate) const CONTROL_IP: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);
/// Time between the starts of two OPTIONS + DESCRIBE pairs.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Round trips the probe measured in the window, in milliseconds.
#[derive(Debug, Default)]
pub(crate) struct ControlLatency {
    /// OPTIONS on one kept-alive connection: request written to response
    /// parsed.
    pub(crate) options_ms: Vec<f64>,
    /// DESCRIBE on a new connection each time: connect started to SDP
    /// received.
    pub(crate) describe_ms: Vec<f64>,
    /// Requests that failed (refused, timed out, connection lost).
    pub(crate) failures: usize,
    /// The first failure.
    pub(crate) first_failure: Option<String>,
}

impl ControlLatency {
    /// Counts one failed request.
    fn fail(&mut self, error: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(error);
    }
}

/// Starts the probe on its own thread: it connects at once, then every
/// [`PROBE_INTERVAL`] sends OPTIONS on that connection and DESCRIBE on a
/// new one, one after the other, keeping the pairs that start while
/// `phase` is [`MEASURING`] and returning once it is [`DONE`].
pub(crate) fn start(server: SocketAddr, phase: Arc<AtomicU8>) -> JoinHandle<ControlLatency> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => runtime.block_on(probe(server, &phase)),
            Err(error) => {
                let mut latency = ControlLatency::default();
                latency.fail(format!("probe runtime: {error}"));
                latency
            }
        }
    })
}

/// The probe loop.
async fn probe(server: SocketAddr, phase: &AtomicU8) -> ControlLatency {
    let mut latency = ControlLatency::default();
    let mut ignore = |_: u8, _: &[u8]| {};
    let (mut out, mut inbound) = match connect(CONTROL_IP, server).await {
        Ok(connection) => connection,
        Err(error) => {
            latency.fail(format!("OPTIONS connection: {error}"));
            return latency;
        }
    };
    let url = out.presentation_url().to_string();
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    // A slow pair delays the next rather than causing a burst of them.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let measuring = match phase.load(Ordering::Relaxed) {
            DONE => return latency,
            current => current == MEASURING,
        };
        let sent = Instant::now();
        match request(&mut out, &mut inbound, "OPTIONS", &url, "", &mut ignore).await {
            Ok(_) if measuring => latency.options_ms.push(ms_since(sent)),
            Ok(_) => {}
            Err(error) => {
                latency.fail(format!("OPTIONS: {error}"));
                return latency;
            }
        }
        let started = Instant::now();
        let described = async {
            let (mut out, mut inbound) = connect(CONTROL_IP, server).await?;
            describe(&mut out, &mut inbound).await
        };
        match described.await {
            Ok(_) if measuring => latency.describe_ms.push(ms_since(started)),
            Ok(_) => {}
            Err(error) if measuring => latency.fail(format!("DESCRIBE: {error}")),
            Err(_) => {}
        }
    }
}

/// Milliseconds since `start`.
fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}
