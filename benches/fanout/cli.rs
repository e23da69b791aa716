//! Command-line pieces shared by the fan-out and live benches: options as
//! `--name value` or `--name=value` pairs, numbers within a range, and
//! the RTP transport a client asks for.

use std::ops::RangeInclusive;
use std::str::FromStr;

/// How RTP reaches a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// UDP sockets announced in `client_port`.
    Udp,
    /// Interleaved on the RTSP connection (`RTP/AVP/TCP`).
    Tcp,
}

impl Transport {
    /// The name used on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// Parses the value of option `name`: `udp` or `tcp`.
    pub(crate) fn parse(name: &str, value: &str) -> Result<Transport, String> {
        match value {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            other => Err(format!("{name} {other}: expected udp or tcp")),
        }
    }
}

/// The `(name, value)` pairs of `args`, each option given as `--name
/// value` or `--name=value`, leaving out the `--bench` flag cargo adds.
pub(crate) fn options(
    mut args: impl Iterator<Item = String>,
) -> Result<Vec<(String, String)>, String> {
    let mut options = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--bench" {
            continue;
        }
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        let value = value
            .or_else(|| args.next())
            .ok_or_else(|| format!("{name} needs a value"))?;
        options.push((name, value));
    }
    Ok(options)
}

/// Parses the `value` of option `name` as a number within `range`.
pub(crate) fn parse_in<T>(name: &str, value: &str, range: RangeInclusive<T>) -> Result<T, String>
where
    T: FromStr + PartialOrd + std::fmt::Display,
{
    value
        .parse()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "{name} {value}: expected {}..={}",
                range.start(),
                range.end()
            )
        })
}

/// The options both benches take about the server child: `--server-args
/// "..."` (appended to its command line, split at whitespace) and
/// `--server-bin PATH` (another build run in its place).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerOptions {
    /// Extra server arguments.
    pub(crate) args: Vec<String>,
    /// Another server binary to run instead of the one cargo built.
    pub(crate) bin: Option<std::path::PathBuf>,
}

impl ServerOptions {
    /// Takes option `name` if it is one of these; false otherwise.
    pub(crate) fn take(&mut self, name: &str, value: &str) -> bool {
        match name {
            "--server-args" => self
                .args
                .extend(value.split_whitespace().map(str::to_string)),
            "--server-bin" => self.bin = Some(value.into()),
            _ => return false,
        }
        true
    }

    /// These options as they go on a command line reproducing the run
    /// (empty, or starting with a space).
    pub(crate) fn command_suffix(&self) -> String {
        let mut suffix = String::new();
        if !self.args.is_empty() {
            suffix.push_str(&format!(" --server-args \"{}\"", self.args.join(" ")));
        }
        if let Some(bin) = &self.bin {
            suffix.push_str(&format!(" --server-bin {}", bin.display()));
        }
        suffix
    }
}

/// A bench's `main`: parses the command line with `parse` (on error,
/// prints it and `usage` and exits with status 2), then runs `bench` (on
/// error, prints it and exits with status 1).
pub(crate) fn main<A>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<A, String>,
    bench: impl FnOnce(&A) -> anyhow::Result<()>,
) {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            eprintln!("usage: cargo bench --bench {name} -- {usage}");
            std::process::exit(2);
        }
    };
    if let Err(error) = bench(&args) {
        eprintln!("{name} bench failed: {error:#}");
        std::process::exit(1);
    }
}
