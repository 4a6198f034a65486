"""GraspAttempt message -> attempt record + PNG images, with the generated message classes (no rclpy.init)."""

import json

import numpy as np
import pytest

msg_mod = pytest.importorskip("myriad_interfaces.msg", reason="source scripts/env.sh (built interfaces)")
from sensor_msgs.msg import Image  # noqa: E402

from myriad_sim.image_codec import ENCODINGS, cv2_to_imgmsg, imgmsg_to_cv2  # noqa: E402
from myriad_storage.codec import decode_png, png_to_depth, png_to_seg  # noqa: E402
from myriad_storage.records import EXTRA_DEFAULTS, RECORD_FIELDS, attempt_msg_to_record  # noqa: E402


def image(array, encoding, pad=0):
    a = np.ascontiguousarray(array)
    h, w = a.shape[:2]
    row = a.nbytes // h
    data = np.zeros((h, row + pad), np.uint8)
    data[:, :row] = a.view(np.uint8).reshape(h, row)
    return Image(height=h, width=w, encoding=encoding, step=row + pad, data=data.tobytes())


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_the_one_image_codec_round_trips_every_encoding(encoding):
    """The sim's encoder and the decoder the planner, CLE, Experiment and the logger share: exact round trips,
    padded rows included."""
    dtype, channels = ENCODINGS[encoding]
    shape = (5, 7, channels) if channels > 1 else (5, 7)
    rng = np.random.default_rng(len(encoding))
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    a = rng.integers(info.min, info.max, shape, dtype=dtype) if info else rng.random(shape).astype(dtype)
    assert np.array_equal(imgmsg_to_cv2(cv2_to_imgmsg(a, encoding)), a)
    assert np.array_equal(imgmsg_to_cv2(image(a, encoding, pad=3)), a)


def test_image_decoding_handles_bgr_big_endian_and_bad_input():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(imgmsg_to_cv2(image(rgb[:, :, ::-1], "bgr8"), rgb=True), rgb)
    assert np.array_equal(imgmsg_to_cv2(image(rgb[:, :, ::-1], "bgr8")), rgb[:, :, ::-1])
    big = Image(
        height=2, width=2, encoding="16UC1", is_bigendian=1, step=4, data=bytes([1, 2, 0, 0, 0, 0, 0, 3])
    )
    assert imgmsg_to_cv2(big).tolist() == [[258, 0], [0, 3]]
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422'"):
        imgmsg_to_cv2(Image(height=1, width=1, encoding="yuv422", step=2, data=bytes(2)))
    with pytest.raises(ValueError, match="rgb8 image 7x5: step 21 and 20 data bytes are too small"):
        imgmsg_to_cv2(Image(height=5, width=7, encoding="rgb8", step=21, data=bytes(20)))


def test_attempt_msg_to_record():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 1.5, (24, 32)).astype(np.float32)
    seg = rng.integers(-1, 5, (24, 32)).astype(np.int32)
    m = msg_mod.GraspAttempt(
        attempt_key="c/000004/0",
        campaign="c",
        item_id="c/000004",
        item_index=4,
        backend="myriad_b0",
        seed=44,
        params_json=json.dumps({"seed": 44, "objects": 3}),
        extra_json="",
        timings_json='{"reset": 0.1}',
        success=True,
        lifted_object="obj1",
        lift_height=0.21,
        code_version="abc123",
        pre_rgb=image(rgb, "rgb8"),
        pre_depth=image(depth, "32FC1"),
        pre_segmentation=image(seg, "32SC1"),
    )
    m.grasp.x, m.grasp.yaw = 0.5, 1.0
    m.objects = [msg_mod.EntityState(name="obj1", source="object:12", body_id=3)]
    m.objects[0].pose.position.z = 0.7
    m.objects[0].pose.orientation.w = 1.0
    m.camera_info.width, m.camera_info.height = 32, 24
    m.camera_info.k = [100.0, 0, 16, 0, 100.0, 12, 0, 0, 1]

    record, images = attempt_msg_to_record(m)
    assert record["params"] == {"seed": 44, "objects": 3} and record["extra"] == EXTRA_DEFAULTS
    assert record["timings"] == {"reset": 0.1} and record["seed"] == 44 and record["success"] is True
    assert record["grasp"] == {"x": 0.5, "y": 0.0, "z": 0.0, "yaw": 1.0}
    assert record["objects"] == [
        {
            "name": "obj1",
            "source": "object:12",
            "body_id": 3,
            "position": [0, 0, 0.7],
            "orientation": [0, 0, 0, 1],
        }
    ]
    assert record["camera"] == {"width": 32, "height": 24, "k": [100.0, 0, 16, 0, 100.0, 12, 0, 0, 1]}
    assert set(images) == {"pre_rgb", "pre_depth", "pre_segmentation"}  # empty post_rgb left out
    assert np.array_equal(decode_png(images["pre_rgb"]), rgb)
    assert np.abs(png_to_depth(images["pre_depth"]) - depth).max() <= 0.0005 + 1e-6
    assert np.array_equal(png_to_seg(images["pre_segmentation"]), seg)

    m.params_json = "[1, 2]"
    with pytest.raises(ValueError, match="params_json must be a JSON object"):
        attempt_msg_to_record(m)
    m.params_json = json.dumps({"x": 2**70})
    with pytest.raises(ValueError, match="params_json cannot be stored in MongoDB"):
        attempt_msg_to_record(m)


def test_collect_and_experiment_records_have_the_same_fields():
    """The grasp sampler's message (through the logger) and Experiment.record's GraspResult give records with the
    same fields and the same `extra` keys: both are built by myriad_storage.records.attempt_record."""
    from types import SimpleNamespace

    from myriad.recording import GraspResult, grasp_record
    from myriad.types import CameraImage, ObjectInfo
    from myriad_grasping.episode import Attempt
    from myriad_grasping.grasp_sampler_node import attempt_msg
    from myriad_grasping.sampling import Grasp, GraspParams

    rgb, depth = np.zeros((4, 6, 3), np.uint8), np.ones((4, 6), np.float32)
    seg = np.full((4, 6), -1, np.int32)
    msgs = SimpleNamespace(
        rgb=image(rgb, "rgb8"), depth=image(depth, "32FC1"), segmentation=image(seg, "32SC1"),
        camera_info=msg_mod.GraspAttempt().camera_info,
    )  # fmt: skip
    moves = {"approach": {"ok": True, "planner": "RRTConnect"}}
    attempt = Attempt(
        7, GraspParams(), Grasp(0.5, 0.0, 0.1, 0.3), "obj0", [("obj0", "object:1", (0.5, 0.0, 0.7))],
        True, True, "obj0", 0.2, "lifted", msgs, msgs, {"total": 1.0}, moves,
    )  # fmt: skip
    work = SimpleNamespace(item_id="c/000001", campaign="c", item_index=1)
    collected, _ = attempt_msg_to_record(attempt_msg(attempt, work, "b0"))

    pre = CameraImage(rgb, depth, seg, np.eye(3), None)
    obj = ObjectInfo("obj0", "object:1", 3, (0.5, 0.0, 0.7), (0.0, 0.0, 0.0, 1.0))
    result = GraspResult(
        0.5, 0.0, 0.1, 0.3, True, "obj0", 0.2, "lifted", [obj], GraspParams().to_dict(), pre, pre,
        1.5, {"total": 1.0}, moves,
    )  # fmt: skip
    keys = {k: collected[k] for k in RECORD_FIELDS[:7]} | {"code_version": "x"}
    experimented, _ = grasp_record(result, **keys)

    assert list(collected) == list(experimented) == [*RECORD_FIELDS, "grasp_executed"]
    assert set(collected["extra"]) == set(experimented["extra"]) == {*EXTRA_DEFAULTS, "grasp_executed"}
    assert collected["extra"]["source"] == "collect" and experimented["extra"]["source"] == "experiment"
    assert collected["extra"]["moves"] == experimented["extra"]["moves"] == moves
    assert collected["objects"][0].keys() == experimented["objects"][0].keys()
