"""Frames from a live camera (RTSP/HTTP): always the newest one, at the sample rate, with a state.

A reader thread pulls the stream continuously (a camera's server drops a client that stops
reading, and only a drained stream gives the newest picture), but decoding costs what the sample
rate needs, not the camera's frame rate: when the camera sends a key frame at least as often as
a frame is due (a 1 fps sample from a camera with a 1 s GOP, the usual CCTV setting), FFmpeg's
decoder is told to skip every other frame (``skip_frame = NONKEY``) and only key frames are
decoded, each drained from the decoder at once and handed on with its bytes as sent (the clip
ring keeps those instead of encoding the picture again); otherwise every frame is decoded and
only the sampled ones are converted to pictures. A camera's main stream, when the model watches its
sub-stream, is not decoded while its key frames suffice: each sampled key frame is handed on as sent
(``EncodedPicture``), and decoded only where its pixels are needed (a pack, the cameras page's
snapshot); the clip ring keeps it as sent.
A picture the reader decodes that FFmpeg had to fill in (a frame damaged or cut short on the way
decodes, without an error, to a picture partly grey or green, flagged corrupt) is counted as a
decode error and not handed on, nor is any picture decoded from it until the next intact key frame
(FFmpeg flags only the first): the model would analyse, and a pack seal, pixels the camera never
sent. A key frame handed on as sent is found out where it is decoded (``Frame.stand_in``).
The key-frame interval is measured from the stream itself and followed when the camera changes
it. The consumer takes the latest picture, so a slow detector never builds a backlog: latency
stays one frame and stale pictures are dropped (counted).

The reader says where it stands (``state``: starting, live, reconnecting since T, failed: reason)
and why. When a live connection drops it asks the camera every ``_PROBE_S`` (an RTSP DESCRIBE or
an HTTP GET read to its headers) and reconnects as soon as it answers, so a camera that returns
is read again within seconds instead of after the full backoff. When opening fails,
``probe.diagnose`` names the cause: a camera that is down (refused, timed out) is retried with
backoff; a misconfigured one (404, password refused, unknown host, not a video) is reported as
failed and tried again only every ``_MISCONFIGURED_RETRY_S``.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import av
import numpy as np

from .config import SourceSpec
from .frame import Frame, GeoPoint
from .h264 import START_CODES, EncodedPicture, parameter_sets
from .health import CameraState
from .probe import Diagnosis, diagnose, without_credentials

log = logging.getLogger(__name__)

READER_THREAD = "camera-"  # + the camera's id: its reading thread's name, by which the service accounts its CPU

_OPEN_TIMEOUT_S = 5.0
_READ_TIMEOUT_S = 5.0
_PROBE_S = 1.0  # while a dropped camera is away: how often to knock
_MISCONFIGURED_RETRY_S = 60.0  # a wrong address is looked at again this often (someone may fix the camera)
_UNDECODABLE_OPENS = 3  # the server answers but FFmpeg cannot open its stream this often in a row: not a video
_DAMAGE_LOG_S = 60.0  # pictures that arrive damaged are logged at most this often per camera (loss comes in bursts)
_KEY_SLACK = 1.05  # key frames this much further apart than a sample period still serve the sample rate


class Picture(NamedTuple):
    """A sampled picture (decoded, or the key frame still as sent), when it was read, and the key frame it
    is decoded from as the camera sent it (or None)."""

    image: np.ndarray | EncodedPicture
    read_at: datetime
    as_sent: bytes | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Reader:
    """One address of a camera, read on a thread of its own: the newest picture due at the sample rate.

    The counters and the state are read by the service's health page from other threads; each
    is a single value written by the reader thread alone."""

    def __init__(self, spec: SourceSpec, uri: str, first_backoff_s: float, decode_key_frames: bool = True):
        """``decode_key_frames`` False: while only key frames are needed, hand them on undecoded (a main stream
        whose pictures only evidence uses)."""
        self.spec = spec
        self.uri = uri
        self.decode_key_frames = decode_key_frames
        self._sized: tuple[bytes, tuple[int, int]] | None = None  # the parameter sets of the last key frame decoded, its size
        self.first_backoff_s = first_backoff_s
        self.address = without_credentials(uri)
        self.state = CameraState.starting
        self.since = _now()
        self.reason: str | None = None
        self.misconfigured = False
        self.frames_read = 0  # pictures taken off the stream at the sample rate
        self.decode_errors = 0
        self._damage_logged_at = -_DAMAGE_LOG_S  # monotonic time of the last line about damaged pictures
        self.reconnects = 0
        self.dropped = 0  # sampled pictures replaced by a newer one before the consumer took them
        self.last_frame_at: datetime | None = None
        self._was_live = False
        self._open_error: Exception | None = None  # why the last open failed, as FFmpeg said it
        self.frames_received = 0  # video frames taken off the wire, decoded or not
        self.frames_decoded = 0  # frames the decoder turned into pictures (only key frames when they suffice)
        self.key_frames_only = False  # whether the decoder now skips all but key frames
        self._latest: Picture | None = None  # the newest sampled picture
        self._shown: Picture | None = None  # the last picture handed out
        self._fresh = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_forever, name=f"{READER_THREAD}{spec.id}", daemon=True)

    # -- state -------------------------------------------------------------------------------
    def _enter(self, state: CameraState, reason: str | None = None, misconfigured: bool = False) -> None:
        if (state, reason) == (self.state, self.reason):
            return
        self.state, self.reason, self.misconfigured, self.since = state, reason, misconfigured, _now()
        if state == CameraState.live:
            log.info("camera %s: connected to %s", self.spec.id, self.address)
        elif state == CameraState.failed:
            log.error("camera %s: misconfigured, %s (%s)", self.spec.id, reason, self.address)
        elif state == CameraState.reconnecting:
            log.warning("camera %s: lost %s (%s); reconnecting", self.spec.id, self.address, reason)

    # -- the reader thread -------------------------------------------------------------------
    def _open(self) -> av.container.InputContainer | None:
        options = {"rtsp_transport": self.spec.rtsp_transport} if self.uri.lower().startswith("rtsp") else {}
        try:
            return av.open(self.uri, options=options, timeout=(_OPEN_TIMEOUT_S, _READ_TIMEOUT_S))
        except (av.FFmpegError, OSError) as exc:
            log.debug("camera %s: opening failed: %s", self.spec.id, exc)
            self._open_error = exc
            return None

    def _refused_transport(self) -> Diagnosis | None:
        """An RTSP camera that describes its stream but refuses the transport asked for (461 Unsupported
        transport, which FFmpeg reports as 'Protocol not supported'): the config must name the other one."""
        if self.uri.lower().startswith("rtsp") and getattr(self._open_error, "errno", None) == errno.EPROTONOSUPPORT:
            other = "udp" if self.spec.rtsp_transport == "tcp" else "tcp"
            return Diagnosis(False, f"the camera refuses RTSP over {self.spec.rtsp_transport.upper()} (461 Unsupported transport): "
                                    f"set source.rtsp_transport to {other}", True)
        return None

    def _wait_after_failure(self, backoff: float, failed_opens: int) -> None:
        """Classify why opening failed, enter the matching state and wait before the next try:
        ask the camera every ``_PROBE_S`` while it is merely away (reopening as soon as it answers,
        at most ``backoff`` later), or wait the long retry period when the address itself is wrong.
        An address that worked earlier in this run is never called wrong: a relay answers 404 for
        a camera that is off, and that camera will be back."""
        found = diagnose(self.uri)
        if found.ok and (refused := self._refused_transport()) is not None:
            found = refused
        elif found.ok and failed_opens >= _UNDECODABLE_OPENS and not self._was_live:
            found = Diagnosis(False, "not a video: the address answers but sends no stream FFmpeg can decode", True)
        elif found.ok:
            found = Diagnosis(False, "the camera answers but its stream did not open")
        if found.misconfigured and not self._was_live:
            self._enter(CameraState.failed, found.reason, True)
            self._stop.wait(_MISCONFIGURED_RETRY_S)
            return
        self._enter(CameraState.reconnecting, found.reason)
        deadline = time.monotonic() + backoff
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._stop.wait(min(_PROBE_S, max(0.0, deadline - time.monotonic()))):
                return
            if diagnose(self.uri, timeout_s=_PROBE_S).ok:
                return

    def _read_forever(self) -> None:
        backoff, failed_opens = self.first_backoff_s, 0
        while not self._stop.is_set():
            capture = self._open()
            if capture is None:
                failed_opens += 1
                self._wait_after_failure(backoff, failed_opens)
                backoff = min(backoff * 2, self.spec.reconnect_max_s)
                continue
            backoff, failed_opens, self._was_live = self.first_backoff_s, 0, True
            self._enter(CameraState.live)
            try:
                self._read_until_lost(capture)
            finally:
                capture.close()
            if not self._stop.is_set():
                self.reconnects += 1
                self._enter(CameraState.reconnecting, "the stream ended or stopped sending")
        self._enter(CameraState.stopped)

    def _read_until_lost(self, container: av.container.InputContainer) -> None:
        """Demux every packet; decode what the sample rate needs; convert only the frames that are due."""
        if not container.streams.video:
            self._enter(CameraState.reconnecting, "the address sends no video stream")
            return
        video = container.streams.video[0]
        # One decoding thread per camera: at a sample rate of a frame or two a second a thread keeps up,
        # and FFmpeg's default (a thread per core, each with its frames in flight) costs memory per camera.
        video.codec_context.thread_count = 1
        period = 1.0 / self.spec.sample_fps
        next_due = time.monotonic()
        last_key: float | None = None  # stream time of the last key frame
        damaged = False  # whether the pictures now decoded carry a filled-in picture's damage
        try:
            for packet in container.demux(video):
                if self._stop.is_set():
                    return
                if packet.size == 0:
                    continue
                self.frames_received += 1
                if packet.is_keyframe and packet.pts is not None:
                    at = float(packet.pts * packet.time_base)
                    if last_key is not None and at > last_key:
                        self._choose_decoding(video, at - last_key, period)
                    last_key = at
                if self.key_frames_only and not self.decode_key_frames:
                    if not packet.is_keyframe or time.monotonic() < next_due:
                        continue  # the decoder would skip it, or nothing is due: each key frame decodes alone
                    if (undecoded := self._undecoded(video, packet)) is not None:
                        next_due = max(next_due + period, time.monotonic())
                        self._publish(undecoded, undecoded.data)
                        continue
                try:
                    pictures = self._decode(video, packet)
                except av.error.InvalidDataError:
                    self.decode_errors += 1
                    continue
                for picture in pictures:
                    self.frames_decoded += 1
                    if picture.is_corrupt:  # parts were lost on the way and the decoder filled them in: not the camera's picture
                        damaged = True
                        self._log_damage()
                    elif picture.key_frame:  # decoded from nothing before it
                        damaged = False
                    if damaged:  # filled in, or decoded from one that was (FFmpeg flags only the first)
                        self.decode_errors += 1
                        continue
                    if time.monotonic() < next_due:
                        continue
                    next_due = max(next_due + period, time.monotonic())
                    as_sent = self._as_sent(video, packet) if self.key_frames_only and packet.is_keyframe and picture.pts == packet.pts else None
                    if as_sent is not None and not self.decode_key_frames:
                        self._sized = parameter_sets(as_sent), (picture.width, picture.height)
                    self._publish(picture.to_ndarray(format="bgr24"), as_sent)
        except (av.FFmpegError, OSError) as exc:  # a timeout, a reset connection, the end of the stream
            log.debug("camera %s: reading stopped: %s", self.spec.id, exc)

    def _log_damage(self) -> None:
        if time.monotonic() - self._damage_logged_at >= _DAMAGE_LOG_S:
            self._damage_logged_at = time.monotonic()
            log.warning("camera %s: a picture arrived damaged, parts of it lost on the way; it and those decoded from it are not "
                        "analysed until the next intact key frame (%d decode errors before it)", self.spec.id, self.decode_errors)

    def _decode(self, video, packet: av.Packet) -> list[av.VideoFrame]:
        """The pictures the packet completes. Decoding key frames only, the decoder is drained after each
        one: it otherwise holds pictures back for the B-frames it skips (the stream's reordering depth),
        which on a 1 s GOP handed out every picture two key frames, 2 s, late (measured)."""
        pictures = packet.decode()
        if self.key_frames_only and packet.is_keyframe:
            pictures += video.codec_context.decode(None)
            video.codec_context.flush_buffers()  # decode again from the next key frame, which needs no earlier one
        return pictures

    def _undecoded(self, video, packet: av.Packet) -> EncodedPicture | None:
        """The key frame as sent, not decoded, when its size is known (the last key frame decoded had the same
        parameter sets) and nothing says it is damaged; None when it must be decoded (and then tells the size
        of those that follow)."""
        as_sent = None if packet.is_corrupt else self._as_sent(video, packet)
        if as_sent is None or self._sized is None or parameter_sets(as_sent) != self._sized[0]:
            return None
        return EncodedPicture(as_sent, self._sized[1])

    def _as_sent(self, video, packet: av.Packet) -> bytes | None:
        """The key frame as the camera sent it, for the clip ring: H.264 in Annex B (what RTSP and MPEG-TS carry)
        with the stream's parameter sets in front, so it decodes alone; None for other codecs and framings, and
        when the key frame was sent some other way."""
        data = bytes(packet)
        context = video.codec_context
        if context.name != "h264" or not data.startswith(START_CODES):
            return None
        extradata = context.extradata or b""
        return (extradata + data) if extradata.startswith(START_CODES) else data

    def _choose_decoding(self, video, key_interval_s: float, period_s: float) -> None:
        """Decode key frames only while they come at least as often as frames are due."""
        key_only = key_interval_s <= period_s * _KEY_SLACK
        if key_only != self.key_frames_only:
            video.codec_context.skip_frame = "NONKEY" if key_only else "DEFAULT"
            self.key_frames_only = key_only
            log.info("camera %s: key frames every %.2f s, sample every %.2f s: decoding %s", self.spec.id, key_interval_s,
                     period_s, "key frames only" if key_only else "every frame")

    def _publish(self, image: np.ndarray, as_sent: bytes | None) -> None:
        self.frames_read += 1
        self.last_frame_at = _now()
        with self._fresh:
            if self._latest is not None:
                self.dropped += 1
            self._latest = Picture(image, self.last_frame_at, as_sent)
            self._fresh.notify_all()

    # -- what the consumer sees ------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def take(self, timeout: float) -> Picture | None:
        """The newest picture not taken yet, waiting up to ``timeout`` for one."""
        with self._fresh:
            self._fresh.wait_for(lambda: self._latest is not None or self._stop.is_set(), timeout=timeout)
            latest, self._latest = self._latest, None
        if latest is not None:
            self._shown = latest
        return latest

    def newest(self) -> Picture | None:
        """The newest picture, taken or not (the main stream's, paired with a detection picture)."""
        with self._fresh:
            if self._latest is not None:
                self._shown = self._latest
        return self._shown

    def close(self) -> None:
        self._stop.set()
        with self._fresh:
            self._fresh.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=_READ_TIMEOUT_S + 1)


_WORSE = [CameraState.live, CameraState.stopped, CameraState.starting, CameraState.reconnecting, CameraState.failed]


class LiveStream:
    """Iterate to get the newest frame at ``sample_fps``; ``close()`` ends the iteration.

    With ``detect_uri`` (the camera's low-resolution sub-stream, as Frigate's detect role), each
    frame pairs the sub-stream's picture (``Frame.detect_image``: what the model and the motion
    gate look at, cheap to decode at any rate) with the main stream's newest picture (``image``:
    what key frames and clips are made of, decoded at key frames only when they suffice). Zones
    and boxes are in the main picture's pixels. The camera's state is the worse of the two."""

    def __init__(self, spec: SourceSpec, first_backoff_s: float = 0.5):
        self.spec = spec
        self.main = _Reader(spec, spec.uri, first_backoff_s, decode_key_frames=spec.detect_uri is None)
        self.sub = _Reader(spec, spec.detect_uri, first_backoff_s) if spec.detect_uri else None
        self.address = self.main.address
        self._stop = threading.Event()

    @property
    def _readers(self) -> list[_Reader]:
        return [self.main] + ([self.sub] if self.sub else [])

    @property
    def _worst(self) -> _Reader:
        return max(self._readers, key=lambda reader: _WORSE.index(reader.state))

    # The camera's health: the worse reader's state, the paced reader's sampling, every reader's faults.
    state = property(lambda self: self._worst.state)
    since = property(lambda self: self._worst.since)
    reason = property(lambda self: self._worst.reason)
    misconfigured = property(lambda self: any(r.misconfigured for r in self._readers))
    frames_read = property(lambda self: self._paced.frames_read)
    last_frame_at = property(lambda self: self._paced.last_frame_at)
    dropped = property(lambda self: self._paced.dropped)
    frames_received = property(lambda self: sum(r.frames_received for r in self._readers))
    frames_decoded = property(lambda self: sum(r.frames_decoded for r in self._readers))
    key_frames_only = property(lambda self: self.main.key_frames_only)
    decode_errors = property(lambda self: sum(r.decode_errors for r in self._readers))
    reconnects = property(lambda self: sum(r.reconnects for r in self._readers))

    @property
    def _paced(self) -> _Reader:
        """The reader whose pictures set the pace: the sub-stream when there is one."""
        return self.sub or self.main

    def __iter__(self) -> Iterator[Frame]:
        for reader in self._readers:
            reader.start()
        geo = GeoPoint(self.spec.lat, self.spec.lon) if self.spec.lat is not None else None
        zone = ZoneInfo(self.spec.timezone)
        seq = 0
        while not self._stop.is_set():
            latest = self._paced.take(timeout=1.0)
            if latest is None:
                continue
            picture, detect_image = latest, None
            if self.sub is not None:
                main = self.main.newest()
                if main is None:  # no main-stream picture yet: nothing to keep as evidence
                    continue
                picture, detect_image = main, latest.image
            yield Frame(self.spec.id, seq, latest.read_at.astimezone(zone), picture.image, geo, self.spec.camera, self.address,
                        time_source="stream_clock", detect_image=detect_image, key_frame_h264=picture.as_sent)
            seq += 1

    def close(self) -> None:
        self._stop.set()
        for reader in self._readers:
            reader.close()
