"""PNG encoding without dependencies, for the frames the viewer embeds as data URIs.

Why its own: the HTML viewer must stay one self-contained file written by plain numpy; this
encoder (zlib + struct) is all it needs of an image library.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np


def encode_png(image: np.ndarray) -> bytes:
    """uint8 [H, W] (grey) or [H, W, 3] (RGB) -> PNG bytes (zlib + struct, filter 'Up')."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"PNG needs uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        color_type, channels = 0, 1
    elif image.ndim == 3 and image.shape[2] == 3:
        color_type, channels = 2, 3
    else:
        raise ValueError(f"PNG needs [H, W] or [H, W, 3], got {image.shape}")
    h, w = image.shape[:2]
    rows = image.reshape(h, w * channels).astype(np.int16)
    up = np.diff(rows, axis=0, prepend=0).astype(np.uint8)  # filter 2: difference to the row above
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def png_data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")
