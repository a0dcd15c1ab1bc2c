"""Typed, documented description of a frame source, validated before anything opens."""
from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# Ids name files, URLs and packs: letters (Chinese too), digits, '.', '_' and '-', never a path.
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\w[\w.\-]*$")]


def _known_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from exc
    return name


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


class SourceSpec(BaseModel):
    """Where frames come from and how often to take one."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: Identifier = Field(description="Stable source id, e.g. 'cam-jiefang-rd-03'; names every pack.")
    kind: Literal["video", "stream", "folder"] = Field(description="video file, live stream URL, or image folder")
    uri: str = Field(min_length=1, description="File path, folder path or rtsp://, http:// URL")
    sample_fps: float = Field(default=1.0, gt=0, le=60, description="Frames per second handed to detection.")
    timezone: TimeZoneName = Field(default="Asia/Shanghai", description="IANA zone for time windows and for times without one.")
    start_time: str | None = Field(
        default=None, description="ISO time of the first frame of a video or folder (default: file time)."
    )
    frame_interval_s: float | None = Field(
        default=None, gt=0, description="Folder: seconds between consecutive images when neither EXIF nor pattern gives a time."
    )
    time_pattern: str | None = Field(
        default=None,
        description="Folder: regex on the file name; group 'ts' is a timestamp (YYYYmmddHHMMSS) or group 'frame' "
        "a frame number (time = start_time + frame / video_fps).",
    )
    video_fps: float = Field(default=25.0, gt=0, description="Folder with 'frame' pattern: fps of the video the frames came from.")
    repeat: int = Field(default=1, ge=1, le=10_000, description="Folder: play the ordered images this many times (fixed-camera replays).")
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600, description="Stream: longest wait between reconnect attempts.")
    detect_uri: str | None = Field(
        default=None, min_length=1, description="Stream: the camera's low-resolution sub-stream for the model and motion "
        "gating (cheap to decode); key frames and clips still come from uri, whose pixels zones are drawn in.",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="Stream: RTSP over TCP (reliable through NAT and firewalls) or UDP (what some servers offer)."
    )
    camera: str | None = Field(default=None, description="Camera model or description recorded on every frame.")
    street: str = Field(default="", max_length=128, description="The street (街道) the camera watches; statistics and the "
                        "queue's filter group its packs by it, unless a pack's shop record names its own.")
    grid: str = Field(default="", max_length=64, description="The management grid (网格) the camera watches.")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    @model_validator(mode="after")
    def _geo_pair(self) -> "SourceSpec":
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        if self.detect_uri is not None and self.kind != "stream":
            raise ValueError("detect_uri (a camera's sub-stream) is only for kind: stream")
        return self
