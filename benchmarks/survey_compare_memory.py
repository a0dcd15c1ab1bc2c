"""Peak memory and time of comparing two district-sized orthomosaics (40 000 x 40 000 pixels at 5 cm).

Decoded whole, each mosaic would be 4.8 GB. The satellite change pairs (0.5 m a pixel) are
upsampled tenfold onto the 5 cm grid of two sparse tiled GeoTIFFs: the previous survey holds the
pairs' "before" tiles, the new one the "after" tile of the first pair and the "before" tiles of
the rest. ``nonsite survey NEW --previous OLD`` runs in a child process whose own high-water mark
(VmHWM) is printed, with the time, the changes found and where they lie.

    .venv/bin/python benchmarks/survey_compare_memory.py [--side 40000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

UTM_51N, GSD, UPSAMPLE = "EPSG:32651", 0.05, 10
PAIRS = [("LEVIR", "test_2_0000_0000.png"), ("DSIFN", "0_2.png"), ("LEVIR", "test_55_0256_0000.png")]


def _write(path: Path, side: int, tiles: list[tuple[np.ndarray, int, int]], date: str) -> None:
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8", "crs": UTM_51N,
               "transform": from_origin(355_000.0, 3_457_000.0, GSD, GSD), "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "sparse_ok": True, "photometric": "RGB", "nodata": 0}
    with rasterio.open(path, "w", **profile) as out:
        for image, x, y in tiles:
            big = cv2.resize(image, None, fx=UPSAMPLE, fy=UPSAMPLE, interpolation=cv2.INTER_CUBIC)
            out.write(np.maximum(big, 1)[:, :, ::-1].transpose(2, 0, 1), window=Window(x, y, big.shape[1], big.shape[0]))
        out.update_tags(TIFFTAG_DATETIME=date)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=40_000)
    args = parser.parse_args()
    datasets = Path(os.environ.get("NONSITE_DATASETS_DIR", "../shared/datasets")) / "change_pairs"
    places = [(args.side // 4, args.side // 4), (args.side // 2 + 1000, args.side // 3), (3 * args.side // 4, 3 * args.side // 4)]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        before = [cv2.imread(str(datasets / s / "before" / n)) for s, n in PAIRS]
        after = [cv2.imread(str(datasets / PAIRS[0][0] / "after" / PAIRS[0][1]))] + before[1:]
        _write(root / "previous.tif", args.side, [(img, x, y) for img, (x, y) in zip(before, places)], "2026:06:15 10:00:00")
        _write(root / "new.tif", args.side, [(img, x, y) for img, (x, y) in zip(after, places)], "2026:11:20 10:00:00")
        lon_lat = [[121.0, 31.0], [122.0, 31.0], [122.0, 32.0], [121.0, 32.0], [121.0, 31.0]]
        (root / "parcels.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"id": "district", "use": "farmland"}, "geometry": {"type": "Polygon", "coordinates": [lon_lat]}}]}))
        (root / "survey.yaml").write_text("zones: parcels.geojson\nmin_structure_m2: 40\nrules:\n  - {id: any, kind: suspected_new_structure, "
                                          "zones: [district], min_confidence: 0.01, classes: [new_structure, rooftop_addition, "
                                          "coloured_steel_roof, bare_soil, vehicles_machinery, other_change]}\n")
        script = ("import re, sys; from nonsite.cli import main; code = main(sys.argv[1:]); "
                  "print('VMHWM_KB', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); sys.exit(code)")
        env = {**os.environ, "NONSITE_DATA_DIR": str(root / "var"), "NONSITE_KEYS_DIR": str(root / "keys")}
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-c", script, "survey", str(root / "new.tif"), "--previous", str(root / "previous.tif"),
                              "--config", str(root / "survey.yaml")], env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        print(run.stdout.strip() or run.stderr[-2000:])
        if run.returncode != 0:
            return run.returncode
        peak_mib = int(run.stdout.split("VMHWM_KB")[1].split()[0]) / 1024
        changes = json.loads(next((root / "var" / "surveys").glob("*.changes.geojson")).read_text())["features"]
        decoded_gib = args.side ** 2 * 3 / 2 ** 30
        print(f"{args.side} x {args.side} at {GSD} m: {elapsed:.0f} s, peak RSS {peak_mib:.0f} MiB (one mosaic decoded whole: "
              f"{decoded_gib:.1f} GiB); {len(changes)} changes, {sum(f['properties']['area_m2'] for f in changes):.0f} m2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
