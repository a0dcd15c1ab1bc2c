"""What changes between one drone flight and the next, as a training augmentation.

A model that learnt one street on one clear afternoon meets, in a bureau's flights, motion blur
from a gusty hover, haze over a river district, rain, evening light and a video link's JPEG
blocks. Ultralytics only adds blur or grey at a 1 % rate (and only with albumentations, which
this project does not ship), so ``Weather`` is appended to the training pipeline: with
probability ``p`` an image gets one or two of these effects. It changes pixels only, never boxes,
so it runs after mosaic and the affine warp.
"""
from __future__ import annotations

import cv2
import numpy as np


def _motion_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.integers(3, 10))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    angle = float(rng.uniform(0, 180))
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))


def _defocus(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.8, 2.2)))


def _haze(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    veil = float(rng.uniform(0.15, 0.5))
    light = float(rng.uniform(170, 235))
    return cv2.addWeighted(image, 1 - veil, np.full_like(image, light), veil, 0)


def _rain(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    streaks = np.zeros((height, width), np.uint8)
    slant = int(rng.integers(-4, 5))
    for _ in range(int(height * width / 900)):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        length = int(rng.integers(6, 16))
        cv2.line(streaks, (x, y), (x + slant, y + length), 200, 1)
    streaks = cv2.GaussianBlur(streaks, (3, 3), 0)
    dim = (image * 0.8).astype(np.uint8)
    return cv2.add(dim, cv2.merge([streaks] * 3) // 3)


def _dusk(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gamma = float(rng.uniform(1.4, 2.4))
    table = (255 * (np.arange(256) / 255) ** gamma).astype(np.uint8)
    dark = cv2.LUT(image, table)
    warm = np.array([0.85, 0.95, 1.1], np.float32)  # BGR: evening light is warmer
    return np.clip(dark * warm, 0, 255).astype(np.uint8)


def _compression(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 45))])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else image


def _noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = float(rng.uniform(4, 14))
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


EFFECTS = (_motion_blur, _defocus, _haze, _rain, _dusk, _compression, _noise)


class Weather:
    """An Ultralytics transform: ``labels['img']`` (BGR uint8) gets one or two effects with probability ``p``."""

    def __init__(self, p: float) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"weather probability must be within 0..1, got {p}")
        self.p = p

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return image
        picks = rng.choice(len(EFFECTS), size=int(rng.integers(1, 3)), replace=False)
        for index in picks:
            image = EFFECTS[index](image, rng)
        return np.ascontiguousarray(image)

    def __call__(self, labels: dict) -> dict:
        # Drawn from NumPy's global state, which Ultralytics seeds per data-loader worker: runs repeat, workers differ.
        labels["img"] = self.apply(labels["img"], np.random.default_rng(np.random.randint(0, 2**31)))
        return labels
