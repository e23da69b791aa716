//! Interop with GStreamer's rtspsrc: the pictures decoded from the stream
//! must be bit-identical to those decoded from the sample file.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::Duration;

use common::*;

async fn play(protocol: &str) {
    if !require_tool("gst-launch-1.0") {
        return;
    }
    let reference = gstreamer_file_checksums().await;
    let server = start_server().await;
    let location = format!("location={}", url(&server, "sample"));
    let protocols = format!("protocols={protocol}");
    // rtspsrc's default settings (buffer-mode=slave, lip-sync by RTCP SR):
    // rtpbin delays the video by its B-frame reorder time; every picture
    // must still come out.
    let audio_dir = tempfile::tempdir().unwrap();
    let audio_file = audio_dir.path().join("audio.s16");
    let audio_location = format!("location={}", audio_file.display());
    // The capsfilters after the decoders fail negotiation (an error) unless
    // the decoded pictures are 1280x720 I420 and the audio 48 kHz stereo.
    let run = run_tool(
        "gst-launch-1.0",
        &[
            "rtspsrc",
            &location,
            &protocols,
            "name=src",
            "src.",
            "!",
            "application/x-rtp,media=video",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "video/x-raw,format=I420,width=1280,height=720",
            "!",
            "checksumsink",
            "hash=md5",
            "src.",
            "!",
            "application/x-rtp,media=audio",
            "!",
            "rtpmp4gdepay",
            "!",
            "aacparse",
            "!",
            "avdec_aac",
            "!",
            "audio/x-raw,rate=48000,channels=2",
            "!",
            "audioconvert",
            "!",
            "audio/x-raw,format=S16LE,layout=interleaved",
            "!",
            "filesink",
            &audio_location,
        ],
        Duration::from_secs(30),
    )
    .await;
    let output = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        run.status.success(),
        "gst-launch {protocol} failed: {}\n{output}",
        run.status
    );
    assert!(
        !output.contains("ERROR") && !output.contains("WARNING"),
        "gst-launch {protocol} reported problems:\n{output}"
    );
    assert!(
        output.contains("Got EOS from element \"pipeline0\""),
        "{protocol}: pipeline did not reach EOS:\n{output}"
    );
    let received = gstreamer_checksums(&run.stdout);
    assert_eq!(
        received.len(),
        SAMPLE_VIDEO_FRAMES,
        "{protocol}: pictures decoded from the stream"
    );
    for (index, (got, want)) in received.iter().zip(&reference).enumerate() {
        assert_eq!(
            got, want,
            "{protocol}: picture {index} differs from the file's"
        );
    }
    let audio_bytes = std::fs::metadata(&audio_file)
        .expect("decoded audio file")
        .len();
    let samples = assert_whole_sample_audio(audio_bytes as usize, protocol);
    assert_real_time(run.elapsed, protocol);
    eprintln!(
        "gstreamer {protocol}: {} pictures, {samples} samples in {:?}",
        received.len(),
        run.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_decodes_identical_pictures_over_tcp() {
    play("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_decodes_identical_pictures_over_udp() {
    play("udp").await;
}
