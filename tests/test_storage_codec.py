"""PNG codec roundtrips: RGB, 16-bit, depth in millimetres, segmentation ids."""

import cv2
import numpy as np
import pytest

from myriad_storage.codec import (
    decode_png,
    depth_to_png,
    encode_png,
    png_to_depth,
    png_to_seg,
    seg_to_png,
)


def test_rgb_roundtrip_and_channel_order():
    rgb = np.random.default_rng(0).integers(0, 256, (47, 61, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)  # pure red
    data = encode_png(rgb)
    assert np.array_equal(decode_png(data), rgb)
    # stored RGB-correct: any PNG reader (cv2 reads BGR) sees red in the red channel
    assert tuple(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[0, 0]) == (0, 0, 255)


def test_uint16_roundtrip():
    a = np.random.default_rng(1).integers(0, 65536, (20, 30), dtype=np.uint16)
    out = decode_png(encode_png(a))
    assert out.dtype == np.uint16 and np.array_equal(out, a)


def test_depth_millimetre_precision_and_invalid_values():
    depth = np.random.default_rng(2).uniform(0.05, 3.0, (32, 48)).astype(np.float32)
    depth[0, :4] = [np.nan, np.inf, -1.0, 70.0]
    out = png_to_depth(depth_to_png(depth))
    assert out.dtype == np.float32 and out.shape == depth.shape
    assert np.abs(out[1:] - depth[1:]).max() <= 0.0005 + 1e-6
    assert out[0, 0] == 0 and out[0, 1] == 0 and out[0, 2] == 0
    assert out[0, 3] == pytest.approx(65.535)


def test_segmentation_roundtrip_full_range():
    seg = np.arange(-1, 65535, dtype=np.int32)[: 256 * 256].reshape(256, 256)
    assert np.array_equal(png_to_seg(seg_to_png(seg)), seg)
    assert decode_png(seg_to_png(seg))[0, 0] == 0  # background -1 is stored as 0


def test_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="uint8 or uint16"):
        encode_png(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="-1..65534"):
        seg_to_png(np.array([[70000]], np.int32))
    with pytest.raises(ValueError, match="not a decodable PNG"):
        decode_png(b"not a png")
