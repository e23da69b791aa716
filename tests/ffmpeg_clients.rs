//! Interop with FFmpeg's RTSP client: ffprobe reads the stream parameters,
//! ffmpeg decodes the whole sample.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;

/// Serves the sample and runs `program` on it over `transport` with
/// [`run_ffmpeg`], the URL between `before` and `after`; panics if it
/// printed anything: at `-v error` every line is an error (decode errors,
/// concealment, lost packets). `None` if `program` is not installed.
async fn run_on_sample(
    program: &str,
    transport: &str,
    before: &[&str],
    after: &[&str],
) -> Option<ToolRun> {
    if !require_tool(program) {
        return None;
    }
    let server = start_server().await;
    let url = url(&server, "sample");
    let args: Vec<&str> = [before, &[url.as_str()], after].concat();
    let run = run_ffmpeg(program, transport, &args).await;
    assert!(
        run.stderr.trim().is_empty(),
        "{program} {transport} reported errors:\n{}",
        run.stderr
    );
    Some(run)
}

async fn probe(transport: &str) {
    let Some(run) =
        run_on_sample("ffprobe", transport, &["-show_streams", "-of", "flat"], &[]).await
    else {
        return;
    };
    let fields = flat_map(&run.stdout);
    let field = |stream: usize, name: &str| {
        fields
            .get(&format!("streams.stream.{stream}.{name}"))
            .map(String::as_str)
            .unwrap_or("<missing>")
            .to_string()
    };
    let kinds: Vec<String> = (0..2).map(|i| field(i, "codec_type")).collect();
    let video = kinds.iter().position(|k| k == "video").expect(&run.stdout);
    let audio = kinds.iter().position(|k| k == "audio").expect(&run.stdout);
    assert_eq!(
        field(2, "codec_type"),
        "<missing>",
        "more than two streams:\n{}",
        run.stdout
    );
    assert_eq!(field(video, "codec_name"), "h264");
    assert_eq!(field(video, "profile"), "High");
    assert_eq!(field(video, "width"), "1280");
    assert_eq!(field(video, "height"), "720");
    assert_eq!(field(video, "pix_fmt"), "yuv420p");
    assert_eq!(field(audio, "codec_name"), "aac");
    assert_eq!(field(audio, "profile"), "LC");
    assert_eq!(field(audio, "channels"), "2");
    assert_eq!(field(audio, "sample_rate"), "48000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_reads_streams_over_udp() {
    probe("udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_reads_streams_over_tcp() {
    probe("tcp").await;
}

/// Decodes the whole sample with ffmpeg into per-frame CRCs of the raw
/// pictures and samples; the pictures must be those of decoding the file.
async fn decode(transport: &str) {
    if !require_tool("ffmpeg") {
        return;
    }
    let reference = reference_video_framecrcs().await;
    let mut after = vec!["-map", "0:v", "-map", "0:a"];
    after.extend(FRAMECRC_EVERY_PICTURE);
    after.push("-");
    let Some(run) = run_on_sample("ffmpeg", transport, &["-nostdin", "-i"], &after).await else {
        return;
    };

    let frames = framecrcs(&run.stdout);
    let video: Vec<FrameCrc> = frames.iter().filter(|f| f.stream == 0).cloned().collect();
    let audio_bytes: usize = frames
        .iter()
        .filter(|f| f.stream == 1)
        .map(|f| f.size)
        .sum();
    assert!(
        frames.iter().all(|f| f.stream <= 1),
        "{transport}: unexpected stream in {frames:?}"
    );
    assert!(
        video.iter().all(|f| f.size == YUV420_FRAME_BYTES),
        "{transport}: decoded picture sizes"
    );
    assert_same_pictures(&video, &reference, transport);
    let samples = assert_whole_sample_audio(audio_bytes, transport);
    assert_real_time(run.elapsed, transport);
    eprintln!(
        "ffmpeg {transport}: {} pictures identical to the file's, {samples} samples in {:?}",
        video.len(),
        run.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_whole_sample_over_tcp() {
    decode("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_whole_sample_over_udp() {
    decode("udp").await;
}

/// Seeks with ffmpeg's own `-ss` before `-i`: its RTSP client then sends
/// PLAY with `Range: npt=…` (after a first PLAY from 0 and a PAUSE). The
/// sample has keyframes at whole seconds, so a seek to 5.5 s must start
/// at the keyframe at 5.0 s: the pictures from 5.0 s to the end, each
/// identical to the file's. `-noaccurate_seek` keeps ffmpeg from dropping
/// the decoded pictures before 5.5 s itself.
async fn seek(transport: &str) {
    if !require_tool("ffmpeg") {
        return;
    }
    let reference = reference_video_framecrcs().await;
    let mut after = vec!["-map", "0:v"];
    after.extend(FRAMECRC_EVERY_PICTURE);
    after.push("-");
    let Some(run) = run_on_sample(
        "ffmpeg",
        transport,
        &["-nostdin", "-ss", "5.5", "-noaccurate_seek", "-i"],
        &after,
    )
    .await
    else {
        return;
    };
    let video = framecrcs(&run.stdout);
    let keyframe_at_5s = 5 * 30;
    assert_same_pictures(
        &video,
        &reference[keyframe_at_5s..],
        &format!("{transport} seek to 5.5 s"),
    );
    eprintln!(
        "ffmpeg {transport} seek: {} pictures identical to the file's from 5.0 s in {:?}",
        video.len(),
        run.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_seek_between_keyframes_over_tcp() {
    seek("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_seek_between_keyframes_over_udp() {
    seek("udp").await;
}
