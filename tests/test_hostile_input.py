"""Hostile and broken input: what is sealed is what was analysed, bombs cost no memory, and every
refused picture is named with its reason."""
from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import yaml

from nonsite.cli import main
from nonsite.evidence import LocalStore, read_manifest
from nonsite.evidence.hashing import sha256_hex
from nonsite.ingest.flight import Skipped, read_flight

from .flightkit import write_drone_jpeg
from .test_batch import LAT, LON, START, _config, _flight, _zones_over_right_half

BOMB_SIDE = 30_000  # 900 megapixels: 2.7 GB once decoded, under 1 MB as a PNG


def _png_bomb(path: Path, side: int = BOMB_SIDE) -> Path:
    """A valid greyscale PNG of side x side black pixels, written row by row (the test never holds it decoded)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)))
        body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
        out.write(chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def _zip_bomb(path: Path, gigabytes: float = 1.0) -> Path:
    """One member of zeros that inflates to ``gigabytes`` from about a megabyte."""
    block = b"\x00" * (1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("DJI_0001.JPG", "w", force_zip64=True) as member:
        for _ in range(int(gigabytes * 1024)):
            member.write(block)
    return path


def _peak_rss_mb(code: str) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; its peak resident memory (MB) and what it printed.

    VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec on Linux."""
    probe = code + ("\nhwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))"
                    "\nprint('PEAK', int(hwm.split()[1]) / 1024)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True).stdout
    return float(out.rsplit("PEAK", 1)[1]), out


def test_decompression_bombs_are_refused_by_their_headers_with_little_memory(tmp_path):
    (tmp_path / "flight").mkdir()
    _png_bomb(tmp_path / "flight" / "DJI_0009.png")
    _zip_bomb(tmp_path / "bomb.zip")
    assert (tmp_path / "flight" / "DJI_0009.png").stat().st_size < 1_000_000 and (tmp_path / "bomb.zip").stat().st_size < 5_000_000
    baseline, _ = _peak_rss_mb("import nonsite.ingest.flight")
    for flight in (tmp_path / "flight", tmp_path / "bomb.zip"):
        peak, out = _peak_rss_mb(f"from nonsite.ingest.flight import read_flight\nprint(list(read_flight({str(flight)!r})))")
        print(f"\n{flight.name}: peak RSS {peak:.0f} MB (interpreter with nonsite.ingest: {baseline:.0f} MB)")
        assert peak - baseline < 200, out
        assert "Skipped(" in out and ("30000 x 30000 pixels (900 MP) is over the 160 MP limit" in out or "refused unread" in out), out


def test_a_camera_folder_skips_a_bomb_and_a_truncated_picture_by_name(tmp_path, parking_frames, caplog):
    from nonsite.ingest import SourceSpec, open_source

    (tmp_path / "a-1.jpg").write_bytes(parking_frames[0].read_bytes())
    _png_bomb(tmp_path / "a-2.png")
    (tmp_path / "a-3.jpg").write_bytes(parking_frames[1].read_bytes()[: len(parking_frames[1].read_bytes()) * 2 // 3])
    frames = list(open_source(SourceSpec(id="cam", kind="folder", uri=str(tmp_path), frame_interval_s=10)))
    assert [Path(f.origin).name for f in frames] == ["a-1.jpg"]
    assert frames[0].encoded == parking_frames[0].read_bytes() and frames[0].time_source == "interval"
    assert "a-2.png skipped: 30000 x 30000 pixels" in caplog.text
    assert "a-3.jpg skipped: truncated or corrupt picture" in caplog.text


def test_unsafe_member_names_never_reach_a_manifest(tmp_path, datasets):
    source = sorted((datasets / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[0]
    picture = write_drone_jpeg(source, tmp_path / "p.jpg", LAT, LON, 52.0, 40.0, 0.0, -90.0, START).read_bytes()
    with zipfile.ZipFile(tmp_path / "flight.zip", "w") as archive:
        for name in ("/etc/DJI_0001.JPG", "../DJI_0002.JPG", "a\\DJI_0003.JPG", "C:/DJI_0004.JPG", "ok/DJI_0005.JPG"):
            archive.writestr(name, picture)
    items = list(read_flight(str(tmp_path / "flight.zip")))
    assert [i.name for i in items if not isinstance(i, Skipped)] == ["ok/DJI_0005.JPG"]
    refused = [i for i in items if isinstance(i, Skipped)]
    assert len(refused) == 4 and all("unsafe file name" in i.reason for i in refused)


def test_images_with_bad_metadata_are_skipped_and_named(tmp_path, datasets):
    source = sorted((datasets / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[0]
    write_drone_jpeg(source, tmp_path / "DJI_0001.JPG", LAT, LON, 52.0, 40.0, 0.0, -90.0, START)
    write_drone_jpeg(source, tmp_path / "DJI_0002.JPG", LAT, LON, 52.0, 4000.0, 0.0, -90.0, START)  # 4 km above ground
    write_drone_jpeg(source, tmp_path / "DJI_0003.JPG", LAT, LON, 52.0, 40.0, 0.0, -170.0, START)  # pitch past straight down
    data = (tmp_path / "DJI_0001.JPG").read_bytes()
    (tmp_path / "DJI_0004.JPG").write_bytes(data[: len(data) // 2])  # truncated mid-picture
    reasons = {i.name: i.reason for i in read_flight(str(tmp_path)) if isinstance(i, Skipped)}
    assert set(reasons) == {"DJI_0002.JPG", "DJI_0003.JPG", "DJI_0004.JPG"}
    assert "implausible relative altitude m 4000.0" in reasons["DJI_0002.JPG"]
    assert "implausible gimbal pitch -170.0" in reasons["DJI_0003.JPG"]
    assert reasons["DJI_0004.JPG"].startswith("truncated or corrupt picture")


def test_the_sealed_original_is_the_analysed_file_whatever_the_working_folder_holds(tmp_path, datasets, settings, monkeypatch, capsys):
    frames = sorted((datasets / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[-2:]
    flight = _flight(tmp_path / "flight-1", frames)
    _zones_over_right_half(tmp_path / "zones.geojson", 640, 640)
    config = _config(tmp_path)
    decoy = tmp_path / "elsewhere"
    decoy.mkdir()
    for name in ("DJI_0000.JPG", "DJI_0001.JPG"):  # same names as the flight's pictures, other content
        (decoy / name).write_bytes(sorted((datasets / "excavators" / "images").glob("*.jpg"))[0].read_bytes())
    monkeypatch.chdir(decoy)
    assert main(["batch", str(flight), "--config", str(config)]) == 0
    store = LocalStore(settings.data_dir / "evidence")
    assert store.pack_ids()
    for pack_id in store.pack_ids():
        manifest = read_manifest(store, pack_id)
        key = manifest.key_frames["threshold"]
        sealed = store.read(pack_id, key.original)
        assert key.original_kind == "received_bytes" and key.time_source == "exif"
        assert sha256_hex(sealed) == manifest.drone.image_sha256
        assert sealed == (flight / manifest.drone.image).read_bytes()  # EXIF and XMP included, byte for byte


def test_a_picture_without_capture_time_is_skipped_unless_the_operator_states_the_flight_time(tmp_path, datasets, settings, capsys):
    import piexif

    frames = sorted((datasets / "drone_cars_cats" / "images").glob("Drone2_*.jpg"))[-1:]
    flight = _flight(tmp_path / "flight-2", frames)
    picture = flight / "DJI_0000.JPG"
    exif = piexif.load(str(picture))
    del exif["Exif"][piexif.ExifIFD.DateTimeOriginal]
    piexif.insert(piexif.dump(exif), str(picture))
    _zones_over_right_half(tmp_path / "zones.geojson", 640, 640)
    config = _config(tmp_path)
    assert main(["batch", str(flight), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "skipped DJI_0000.JPG: no capture time" in out and "0 new packs" in out

    stated = yaml.safe_load(config.read_text())
    stated["flight_time"] = "2026-11-23T10:00:00"
    config.write_text(yaml.safe_dump(stated))
    assert main(["batch", str(flight), "--config", str(config), "--flight-id", "flight-2b"]) == 0
    store = LocalStore(settings.data_dir / "evidence")
    manifests = [read_manifest(store, p) for p in store.pack_ids()]
    assert manifests and all(m.key_frames["threshold"].time_source == "operator" for m in manifests)
    assert {m.times.threshold.isoformat() for m in manifests} == {"2026-11-23T10:00:00+08:00"}
