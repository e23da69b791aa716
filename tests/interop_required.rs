//! What an interop test does when its client is not installed: plain
//! `cargo test` skips it with a notice naming the tool, `./test.sh` (which
//! sets `RTPCAST_REQUIRE_INTEROP=1`) fails it.
//!
//! Each check runs this test binary again as a child whose `PATH` holds no
//! tools at all, and looks at what [`require_tool`] did there.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::process::{Command, Output};

use common::*;

/// Asks for ffmpeg the way the interop tests do. On its own it only shows
/// whether ffmpeg is found; the tests below run it without ffmpeg.
#[test]
fn require_ffmpeg_here() {
    let found = require_tool("ffmpeg");
    println!("require_tool(ffmpeg) = {found}");
}

/// Runs [`require_ffmpeg_here`] in a child with an empty `PATH` and
/// `RTPCAST_REQUIRE_INTEROP` set to `required`, or unset.
fn without_any_tool(required: Option<&str>) -> Output {
    let empty = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(std::env::current_exe().expect("test binary path"));
    child
        .args(["--exact", "require_ffmpeg_here", "--nocapture"])
        .env("PATH", empty.path())
        .env_remove("RTPCAST_REQUIRE_INTEROP");
    if let Some(value) = required {
        child.env("RTPCAST_REQUIRE_INTEROP", value);
    }
    child.output().expect("running the test binary")
}

#[test]
fn missing_tool_is_skipped_with_a_notice_naming_it() {
    let output = without_any_tool(None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("require_tool(ffmpeg) = false"),
        "the test went on without ffmpeg:\n{stdout}"
    );
    assert!(
        stderr.contains("SKIPPED: ffmpeg not installed"),
        "no skip notice naming ffmpeg:\n{stderr}"
    );
}

#[test]
fn missing_tool_fails_when_interop_is_required() {
    let output = without_any_tool(Some("1"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "passed without ffmpeg although RTPCAST_REQUIRE_INTEROP=1:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("ffmpeg is not installed but RTPCAST_REQUIRE_INTEROP is set"),
        "the failure does not name ffmpeg:\n{stderr}"
    );
}

#[test]
fn test_script_requires_interop() {
    let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/test.sh"))
        .expect("reading test.sh");
    let export = script
        .lines()
        .position(|line| line.trim() == "export RTPCAST_REQUIRE_INTEROP=1")
        .expect("test.sh does not export RTPCAST_REQUIRE_INTEROP=1");
    let run = script
        .lines()
        .position(|line| line.trim().starts_with("exec cargo test"))
        .expect("test.sh does not run cargo test");
    assert!(
        export < run,
        "RTPCAST_REQUIRE_INTEROP is set after cargo test runs"
    );
}
