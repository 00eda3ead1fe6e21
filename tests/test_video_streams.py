"""A phone video keeps its display rotation and every audio track through `apply` (real PyAV files)."""

from __future__ import annotations

import json

import av
import numpy as np
import torch
from typer.testing import CliRunner

from spectralstyle.cli.app import app
from spectralstyle.media.video import probe_video
from spectralstyle.method.stylenet import StyleNet
from spectralstyle.runs.outputs import save_stylenet
from videos import make_video


def _tracks(path):
    with av.open(str(path)) as container:
        return [(s.type, s.codec_context.name) for s in container.streams]


def _first_frame(path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24"), int(frame.rotation)


def test_phone_video_keeps_rotation_and_both_audio_tracks(tmp_path):
    """Acceptance (issue 20): a video with display rotation 90 and two audio tracks through `apply` keeps its
    orientation (the same display matrix, landscape frames as stored) and both tracks."""
    torch.manual_seed(0)
    model = tmp_path / "m_pop-art_c2.stylenet.pt"
    save_stylenet(StyleNet(ngf=4), model, {"text": "pop art", "band": "c2", "config": {}})
    phone = make_video(tmp_path / "phone.mp4", frames=6, width=64, height=32, rotation=90, audio_tracks=2)
    info = probe_video(phone)
    assert (info.rotation, info.audio_streams) == (90, 2)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["apply", str(model), str(phone), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (video,) = out.glob("*.mp4")
    pixels, rotation = _first_frame(video)
    assert rotation == 90 and pixels.shape[:2] == (32, 64)  # stored as the input is, displayed rotated as it is
    assert probe_video(video).rotation == 90
    assert [t for t in _tracks(video) if t[0] == "audio"] == [("audio", "aac"), ("audio", "aac")]
    record = json.loads(video.with_suffix(".json").read_text())
    assert record["video"]["rotation"] == 90 and record["video"]["audio"] == "2 tracks: copied, copied"


def test_a_stream_mp4_cannot_hold_is_named_in_a_note(tmp_path):
    from spectralstyle.apply.frames import stylize_video

    src = tmp_path / "two_videos.mkv"
    with av.open(str(src), mode="w") as out:  # a second video stream (another angle): not stylised
        streams = [out.add_stream("mpeg4", rate=10) for _ in range(2)]
        for stream in streams:
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(4):
            for stream in streams:
                frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
        for stream in streams:
            out.mux(stream.encode(None))
    notes = []
    result = stylize_video(src, tmp_path / "o.mp4", lambda x: x, on_note=notes.append)
    assert result.frames == 4 and len(notes) == 1 and "video stream 1" in notes[0] and "dropped" in notes[0]
    assert result.notes == [notes[0].split(": ", 1)[1]]
