"""Orthomosaics of any size (GeoTIFF, Cloud-Optimized or not), read window by window and never whole.

A district's survey mosaic is 20 000 to 60 000 pixels a side: decoded whole it needs gigabytes
per copy, which is why ``decoding.MAX_PIXELS`` refuses it. Here only one window (a few thousand
pixels a side) is in memory at a time, and GDAL's block cache is capped, so the memory used does
not grow with the mosaic. The cap on pixels does not apply; instead the file's declared size,
bands, sample type and block layout are checked when it is opened, and what cannot be read by
windows is refused with the reason: a block is GDAL's unit of decoding, so a file stored as one
huge strip would be decoded whole by the first window that touches it.

Pixels reach the detectors as 8-bit BGR. 8-bit bands are taken as they are; 16-bit bands are
stretched linearly per band from their 2nd to 98th percentile, measured once over a fixed grid of
small sample windows spread over the mosaic (nodata excluded), so every window of a mosaic is
scaled by the same rule. Nodata, an alpha band or an internal mask (GDAL's dataset mask) mark
pixels outside the survey: they are black in the window, and a window with no valid pixel at all
is not read further. A file that marks none (plain RGB) has its pixels that are 0 in every band taken
as outside the survey, as mosaicking tools fill them, and is read onto another grid with an alpha
band, so the area beyond the file is never taken for black ground.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_SIDE = 200_000  # pixels a side: far beyond any district survey (60 000 at 2 cm); more is a forged header
MAX_BLOCK_BYTES = 64 << 20  # one block is decoded whole by GDAL: larger ones (a file stored as one strip) are refused
GDAL_CACHE_BYTES = 64 << 20  # GDAL's block cache (rasterio takes bytes), which would otherwise grow to 5% of the machine's memory
SAMPLE_GRID, SAMPLE_SIDE = 8, 256  # 64 windows of 256 x 256 pixels for the 16-bit stretch
STRETCH_PERCENTILES = (2.0, 98.0)
_DTYPES = ("uint8", "uint16")


class MosaicRefused(ValueError):
    """A file that cannot be read window by window as a georeferenced colour mosaic; the message says why."""


@dataclass(frozen=True)
class MosaicWindow:
    """One window of the grid: ``core`` (x0, y0, x1, y1) are the pixels it owns, ``read`` the core widened by
    the margin that objects on its border need. Cores tile the mosaic without overlap, so every pixel (and
    every detection's centre) belongs to exactly one window."""

    index: int
    core: tuple[int, int, int, int]
    read: tuple[int, int, int, int]

    def owns(self, x: float, y: float) -> bool:
        x0, y0, x1, y1 = self.core
        return x0 <= x < x1 and y0 <= y < y1


@dataclass(frozen=True)
class WindowPixels:
    """A window's pixels as 8-bit BGR (nodata black), which of them are valid (inside the survey), and the
    affine transform (rasterio ``Affine``) of the window's own pixel grid in the mosaic's CRS."""

    window: MosaicWindow
    image: np.ndarray
    valid: np.ndarray
    transform: object

    @property
    def valid_share(self) -> float:
        return float(self.valid.mean())


def window_grid(width: int, height: int, core: int, margin: int) -> list[MosaicWindow]:
    """Windows in row-major order whose cores of ``core`` pixels tile the mosaic; each is read ``margin`` wider."""
    windows = []
    for y0 in range(0, height, core):
        for x0 in range(0, width, core):
            x1, y1 = min(x0 + core, width), min(y0 + core, height)
            read = (max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin))
            windows.append(MosaicWindow(len(windows), (x0, y0, x1, y1), read))
    return windows


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (a mosaic is gigabytes)."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True)
class Grid:
    """A pixel grid on the ground: CRS, affine transform and size. Two surveys are compared on one grid."""

    crs: object
    transform: object
    width: int
    height: int

    def coarser(self, factor: float) -> Grid:
        """The same extent in pixels ``factor`` times larger (fewer of them)."""
        from rasterio.transform import Affine

        return Grid(self.crs, self.transform @ Affine.scale(factor), max(1, round(self.width / factor)), max(1, round(self.height / factor)))


class Mosaic:
    """An open, checked GeoTIFF; use as a context manager. Reads windows, never the whole raster.

    With ``grid``, the file is seen through GDAL's warper on that grid (another CRS, another pixel size,
    another extent): windows are windows of the grid, resampled on the fly from the file's own blocks, so
    an earlier survey is read pixel for pixel over a later one without feature matching and without
    ever holding either whole."""

    def __init__(self, path: Path | str, grid: Grid | None = None, stretch: list[tuple[float, float]] | None = None):
        import rasterio
        from rasterio.enums import MaskFlags

        self.path = Path(path)
        self._env = rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)
        self._env.__enter__()
        try:
            self.dataset = self.source = rasterio.open(self.path)
        except rasterio.errors.RasterioIOError as exc:
            self._env.__exit__(None, None, None)
            raise MosaicRefused(f"{self.path.name}: not a readable GeoTIFF ({exc})") from exc
        try:
            self._check()
        except MosaicRefused:
            self.close()
            raise
        # the file marks no pixel as outside the survey (no nodata, alpha band or internal mask): the warper must then
        # add an alpha band, or the grid's area beyond the file would read as valid black
        self._unmasked = all(MaskFlags.all_valid in flags for flags in self.source.mask_flag_enums)
        if grid is not None:
            from rasterio.enums import Resampling
            from rasterio.vrt import WarpedVRT

            self.dataset = WarpedVRT(self.source, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                                     resampling=Resampling.average, add_alpha=self._unmasked)
        self.bands = self._colour_bands()
        self._stretch = stretch  # a 16-bit mosaic's stretch as measured before (a map tile should not sample the file again)

    def __enter__(self) -> Mosaic:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        if self.dataset is not self.source:
            self.dataset.close()
        self.source.close()
        self._env.__exit__(None, None, None)

    @property
    def width(self) -> int:
        return self.dataset.width

    @property
    def height(self) -> int:
        return self.dataset.height

    @property
    def crs(self) -> str:
        return self.dataset.crs.to_string()

    @property
    def grid(self) -> Grid:
        return Grid(self.dataset.crs, self.dataset.transform, self.width, self.height)

    def capture_date(self) -> str | None:
        """The survey's date as the file states it (TIFF DateTime, ``YYYY:MM:DD HH:MM:SS``), as ISO ``YYYY-MM-DD``."""
        stamp = self.source.tags().get("TIFFTAG_DATETIME", "")
        date = stamp[:10].replace(":", "-")
        return date if len(date) == 10 and date[4] == "-" and date[:4].isdigit() else None

    def _check(self) -> None:
        data, name = self.dataset, self.path.name
        if data.crs is None or data.transform.is_identity:
            raise MosaicRefused(f"{name}: no georeference (CRS and geotransform); export the mosaic as a GeoTIFF")
        if not all(np.isfinite(tuple(data.transform)[:6])) or data.transform.determinant == 0:
            raise MosaicRefused(f"{name}: degenerate geotransform {tuple(data.transform)[:6]}")
        self._check_on_earth()
        if not (0 < data.width <= MAX_SIDE and 0 < data.height <= MAX_SIDE):
            raise MosaicRefused(f"{name}: declared size {data.width} x {data.height} is over {MAX_SIDE} pixels a side")
        if data.count < 3:
            raise MosaicRefused(f"{name}: {data.count} band(s); a colour mosaic (RGB or RGBA) is needed")
        if set(data.dtypes) - set(_DTYPES):
            raise MosaicRefused(f"{name}: sample type {sorted(set(data.dtypes))}; only 8-bit and 16-bit unsigned mosaics are read")
        block_h, block_w = data.block_shapes[0]
        block_bytes = block_h * block_w * data.count * np.dtype(data.dtypes[0]).itemsize
        if block_bytes > MAX_BLOCK_BYTES:
            raise MosaicRefused(f"{name}: stored in blocks of {block_w} x {block_h} pixels ({block_bytes >> 20} MiB each, over "
                                f"{MAX_BLOCK_BYTES >> 20} MiB), which cannot be read by windows; re-tile it "
                                "(gdal_translate -of COG, or -co TILED=YES)")

    def _check_on_earth(self) -> None:
        """The corners must map to longitudes and latitudes: an engineering CRS, or pixels degrees wide, are refused."""
        from rasterio._err import CPLE_BaseError
        from rasterio.errors import CRSError
        from rasterio.warp import transform as reproject

        data = self.source
        corners = [data.transform @ corner for corner in ((0, 0), (data.width, 0), (0, data.height), (data.width, data.height))]
        try:
            lons, lats = reproject(data.crs, "EPSG:4326", [c[0] for c in corners], [c[1] for c in corners])
        except (CRSError, CPLE_BaseError, ValueError) as exc:  # GDAL's errors for a CRS it cannot relate to WGS-84
            raise MosaicRefused(f"{self.path.name}: its CRS ({data.crs}) cannot be related to longitude and latitude ({exc})") from exc
        if not all(np.isfinite(lons + lats)) or max(map(abs, lons)) > 180 or max(map(abs, lats)) > 90:
            raise MosaicRefused(f"{self.path.name}: its corners do not fall on the Earth (longitudes {min(lons):.1f} to {max(lons):.1f}, "
                                f"latitudes {min(lats):.1f} to {max(lats):.1f}); check the geotransform")

    def _colour_bands(self) -> list[int]:
        """Band numbers of red, green and blue from the colour interpretation; else the first three."""
        from rasterio.enums import ColorInterp

        interp = self.dataset.colorinterp
        named = [interp.index(colour) + 1 for colour in (ColorInterp.red, ColorInterp.green, ColorInterp.blue) if colour in interp]
        return named if len(named) == 3 else [1, 2, 3]

    def _window(self, box: tuple[int, int, int, int]):
        from rasterio.windows import Window

        x0, y0, x1, y1 = box
        return Window(x0, y0, x1 - x0, y1 - y0)

    def stretch(self) -> list[tuple[float, float]] | None:
        """Per colour band (low, high) mapped to 0 and 255, for 16-bit mosaics; None for 8-bit ones."""
        if self.dataset.dtypes[self.bands[0] - 1] == "uint8":
            return None
        if self._stretch is None:
            samples, masks = [], []
            width, height = self.source.width, self.source.height  # the file's own pixels: one stretch whatever the grid
            side = min(SAMPLE_SIDE, width, height)
            for gy in range(SAMPLE_GRID):
                for gx in range(SAMPLE_GRID):
                    x0, y0 = (width - side) * gx // max(1, SAMPLE_GRID - 1), (height - side) * gy // max(1, SAMPLE_GRID - 1)
                    window = self._window((x0, y0, x0 + side, y0 + side))
                    masks.append(self.source.dataset_mask(window=window).ravel() > 0)
                    samples.append(self.source.read(self.bands, window=window).reshape(3, -1))
            valid = np.concatenate(masks)
            values = np.concatenate(samples, axis=1)[:, valid]
            if values.shape[1] == 0:  # the sample fell on nodata only: the full 16-bit range
                self._stretch = [(0.0, 65535.0)] * 3
            else:
                self._stretch = [tuple(float(v) for v in np.percentile(band, STRETCH_PERCENTILES)) for band in values]
        return self._stretch

    def read(self, window: MosaicWindow) -> WindowPixels | None:
        """The window's pixels, or None when none of them is valid (outside the survey)."""
        return self._pixels(self.dataset, window)

    def read_on(self, grid: Grid) -> WindowPixels | None:
        """All of a small grid (a changed region's crop, a map tile) resampled from the file, stretched as
        every other window of it is."""
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        with WarpedVRT(self.source, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                       resampling=Resampling.bilinear, add_alpha=self._unmasked) as warped:
            whole = (0, 0, grid.width, grid.height)
            return self._pixels(warped, MosaicWindow(0, whole, whole))

    def _pixels(self, dataset, window: MosaicWindow) -> WindowPixels | None:
        box = self._window(window.read)
        mask = dataset.dataset_mask(window=box) > 0
        if not mask.any():
            return None
        bands = dataset.read(self.bands, window=box)
        if self._unmasked:  # mosaicking tools fill the area outside the survey with 0 even where they declare no nodata
            mask &= bands.any(axis=0)
            if not mask.any():
                return None
        stretch = self.stretch()
        if stretch is not None:
            bands = np.stack([np.clip((band.astype(np.float32) - low) * (255.0 / max(high - low, 1.0)), 0, 255)
                              for band, (low, high) in zip(bands, stretch)]).astype(np.uint8)
        image = np.ascontiguousarray(bands[::-1].transpose(1, 2, 0))  # RGB planes to BGR pixels
        image[~mask] = 0
        return WindowPixels(window, image, mask, dataset.window_transform(box))

    def to_crs(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        """Mosaic pixel positions (x, y) in the mosaic's CRS."""
        transform = self.dataset.transform
        return [tuple(transform @ (x, y)) for x, y in points]

    def to_source_pixels(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        """Positions on the grid as pixels of the file itself (the same when no other grid is given)."""
        inverse = ~self.source.transform
        return [tuple(inverse @ point) for point in self.to_crs(points)]

    def crs_to_lonlat(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        """Positions in the grid's CRS as WGS-84 (lon, lat)."""
        return _lonlat(self.dataset.crs, points)

    def to_lonlat(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        """Mosaic pixel positions (x, y) as WGS-84 (lon, lat)."""
        return self.crs_to_lonlat(self.to_crs(points))

    def metres_per_pixel(self) -> float:
        """The ground sampling distance of the grid read (the file's own, without ``grid``) at its centre, in
        metres: how far one pixel's step east goes."""
        return self._step_m([(self.width / 2, self.height / 2), (self.width / 2 + 1, self.height / 2)])

    def native_metres_per_pixel(self) -> float:
        """The file's own ground sampling distance, whatever grid it is read on."""
        width, height, transform = self.source.width, self.source.height, self.source.transform
        return _metres_between(*_lonlat(self.source.crs, [transform @ (width / 2, height / 2), transform @ (width / 2 + 1, height / 2)]))

    def _step_m(self, points: list[tuple[float, float]]) -> float:
        return _metres_between(*self.to_lonlat(points))


def _lonlat(crs, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Positions in ``crs`` as WGS-84 (lon, lat)."""
    from rasterio.warp import transform as reproject

    if not points:
        return []
    if crs.to_epsg() == 4326:
        return [tuple(p) for p in points]
    xs, ys = zip(*points)
    lons, lats = reproject(crs, "EPSG:4326", list(xs), list(ys))
    return list(zip(lons, lats))


def _metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    from .geo import displacement

    return float(np.hypot(*displacement(*a, *b)))
