"""The detect_yunet_2023mar pipeline, called on Triton directly, equals OpenCV's FaceDetectorYN.

tests/reference/yunet_reference.py runs OpenCV's own C++ YuNet decoder on the
same letterboxed 640×640 BGR canvas, sharing no code with the service, then
the NMS every detector pipeline promises (InsightFace's, on photo pixels).
Same faces, boxes and landmarks within 1 px, scores within 1e-3, on every
photo (samples/ and tests/photos/ where present) and on transformed copies
that exercise other letterbox shapes. Against OpenCV's own NMS (integer
canvas boxes) the faces differ only where that truncation matters: small,
unsure crowd faces (numbers below). The pipeline is a drop-in twin of
detect_scrfd_500m: the same client code (batch-1 tensors in, result[0] out)
calls either, and the landmarks come in SCRFD's order.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from tests.integration.stack import ROOT, start_stack
from tests.reference.scrfd_reference import ReferenceSCRFD
from tests.reference.yunet_reference import ReferenceYuNet, decode_image

PIPELINE = "detect_yunet_2023mar"
OUTPUTS = ("NUM_FACES", "SCORES", "BOXES", "LANDMARKS", "SCALE", "CANDIDATES",
           "PREPROCESS_MS", "BLOB_MS", "DECODE_MS", "NMS_MS")
PHOTOS = sorted(p for folder in (ROOT / "samples", ROOT / "tests" / "photos") if folder.is_dir()
                for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
# What YuNet finds at the API's defaults (confidence 0.5, NMS 0.4).
YUNET_FACES = {"yaoming.jpg": 1, "gdp.jpg": 8, "players.jpg": 62}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # Only Triton is called here: no API keys needed. The default detector is SCRFD, so the
    # YuNet pipeline is loaded by name.
    running = start_stack(tmp_path_factory.mktemp("yunet"), env={"FACE_API_API_KEY_ENABLED": "false",
                                                                "FACE_API_TRITON_LOAD": PIPELINE})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def triton(stack):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{stack.triton_grpc}")
    assert client.is_model_ready(PIPELINE), stack.log()[-3000:]
    yield client
    client.close()


@pytest.fixture(scope="module")
def reference() -> ReferenceYuNet:
    return ReferenceYuNet(ROOT / "model_repository/yunet_2023mar/1/model.onnx")


def _tensor(name, array, datatype):
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def detect(triton, rgb, confidence=0.5, nms_threshold=0.4, max_faces=0, pipeline=PIPELINE) -> dict:
    """One photo as the frontend sends it: batch-1 tensors in, row 0 of each output back."""
    inputs = [
        _tensor("IMAGE", rgb[None], "UINT8"),
        _tensor("CONFIDENCE", np.float32([[confidence]]), "FP32"),
        _tensor("NMS_THRESHOLD", np.float32([[nms_threshold]]), "FP32"),
        _tensor("MAX_FACES", np.int32([[max_faces]]), "INT32"),
    ]
    result = triton.infer(pipeline, inputs, outputs=[grpcclient.InferRequestedOutput(n) for n in OUTPUTS])
    out = {name: result.as_numpy(name)[0] for name in OUTPUTS}
    count = int(out["NUM_FACES"][0])
    for name in ("SCORES", "BOXES", "LANDMARKS"):
        out[name] = out[name][:count]
    return out


def variants() -> list[tuple[str, np.ndarray]]:
    cases = []
    for path in PHOTOS:
        rgb = decode_image(path)
        cases.append((path.name, rgb))
        cases.append((f"{path.name}:mirrored", np.ascontiguousarray(rgb[:, ::-1])))
        small = Image.fromarray(rgb).resize((rgb.shape[1] * 2 // 3, rgb.shape[0] * 2 // 3))
        cases.append((f"{path.name}:downscaled", np.asarray(small)))
        portrait = np.ascontiguousarray(rgb[:, : max(1, rgb.shape[0] * 3 // 5)])
        cases.append((f"{path.name}:portrait-crop", portrait))
    return cases


CASES = variants()


@pytest.mark.parametrize("params", [{}, {"confidence": 0.3, "nms_threshold": 0.5}, {"max_faces": 3},
                                    {"confidence": 0.9, "nms_threshold": 0.3}])
@pytest.mark.parametrize("label, rgb", CASES, ids=[label for label, _ in CASES])
def test_pipeline_matches_opencv(triton, reference, label, rgb, params):
    got = detect(triton, rgb, **params)
    expected = reference.detect(rgb, params.get("confidence", 0.5), params.get("nms_threshold", 0.4),
                                params.get("max_faces", 0))
    assert len(got["SCORES"]) == len(expected.scores), label
    np.testing.assert_allclose(got["SCORES"], expected.scores, atol=1e-3)
    np.testing.assert_allclose(got["BOXES"], expected.boxes, atol=1.0)
    np.testing.assert_allclose(got["LANDMARKS"], expected.landmarks, atol=1.0)
    # The scale is the letterbox's: detector pixels per photo pixel, x and y.
    height, width = rgb.shape[:2]
    assert max(got["SCALE"][0] * width, got["SCALE"][1] * height) == pytest.approx(640, abs=1e-3)
    assert got["CANDIDATES"].tolist() == [expected.candidates_before_nms, expected.candidates_after_nms]
    assert all(got[name][0] >= 0 for name in ("PREPROCESS_MS", "BLOB_MS", "DECODE_MS", "NMS_MS"))


def _unmatched(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Indices of ``boxes`` with no box of ``others`` within 1 px on every coordinate."""
    if len(others) == 0:
        return np.arange(len(boxes))
    close = (np.abs(boxes[:, None, :] - others[None, :, :]) <= 1.0).all(axis=2)
    return np.nonzero(~close.any(axis=1))[0]


# OpenCV's own NMS truncates boxes to whole canvas pixels, which moves the IoU of
# small boxes by a few hundredths. Measured on these cases, the faces it keeps and the
# service drops (or the reverse) are all under 21 canvas px wide and score under 0.75
# (players.jpg, 0.3/0.5: OpenCV 195 faces, the service 182; 0.5/0.4: 64 and 62); on
# yaoming.jpg and gdp.jpg the two agree exactly.
SMALL_CANVAS_PX = 24  # three stride-8 cells
UNSURE_SCORE = 0.8


@pytest.mark.parametrize("params", [{}, {"confidence": 0.3, "nms_threshold": 0.5}])
@pytest.mark.parametrize("label, rgb", CASES, ids=[label for label, _ in CASES])
def test_against_opencvs_own_nms_only_small_unsure_faces_differ(triton, reference, label, rgb, params):
    got = detect(triton, rgb, **params)
    opencv = reference.detect(rgb, params.get("confidence", 0.5), params.get("nms_threshold", 0.4),
                              nms_flavour="opencv")
    ours_only = _unmatched(got["BOXES"], opencv.boxes)
    opencv_only = _unmatched(opencv.boxes, got["BOXES"])
    if not label.startswith("players.jpg"):
        assert len(ours_only) == len(opencv_only) == 0, label
    scale = got["SCALE"]
    widths = np.concatenate([(got["BOXES"][ours_only, 2] - got["BOXES"][ours_only, 0]) * scale[0],
                             opencv.canvas_boxes[opencv_only, 2] - opencv.canvas_boxes[opencv_only, 0]])
    scores = np.concatenate([got["SCORES"][ours_only], opencv.scores[opencv_only]])
    assert (widths < SMALL_CANVAS_PX).all(), (label, widths)
    assert (scores < UNSURE_SCORE).all(), (label, scores)


@pytest.mark.parametrize("name", sorted(YUNET_FACES))
def test_faces_found_on_the_samples(triton, name):
    got = detect(triton, decode_image(ROOT / "samples" / name))
    assert len(got["SCORES"]) == YUNET_FACES[name]
    assert (np.diff(got["SCORES"]) <= 0).all()  # best first
    assert got["SCORES"].min() >= 0.5


@pytest.mark.parametrize("name", ["yaoming.jpg", "gdp.jpg", "players.jpg"])
def test_every_scrfd_face_is_found_with_landmarks_in_scrfds_order(triton, name):
    """YuNet's landmarks land on SCRFD's, point for point: image-left eye, image-right
    eye, nose, image-left and image-right mouth corner. A swapped pair would sit one
    eye (or mouth) width away, about 40 % of the face's width; the two detectors'
    points differ by 3 % (yaoming.jpg) to 21 % (a face cut by gdp.jpg's edge)."""
    rgb = decode_image(ROOT / "samples" / name)
    scrfd = ReferenceSCRFD(ROOT / "model_repository/scrfd_500m/1/model.onnx").detect(rgb)
    got = detect(triton, rgb, confidence=0.3)
    centres = (got["BOXES"][:, :2] + got["BOXES"][:, 2:]) / 2
    matched = 0
    for box, points in zip(scrfd.boxes, scrfd.landmarks):
        width = box[2] - box[0]
        distance = np.linalg.norm(centres - (box[:2] + box[2:]) / 2, axis=1)
        nearest = int(np.argmin(distance))
        if name != "players.jpg":  # every face of the small photos must be found
            assert distance[nearest] < 0.2 * width, box
        if distance[nearest] < 0.2 * width and width >= 24:
            error = np.linalg.norm(got["LANDMARKS"][nearest] - points, axis=1).max()
            assert error < 0.25 * width, (box, got["LANDMARKS"][nearest], points)
            matched += 1
    assert matched >= {"yaoming.jpg": 1, "gdp.jpg": 4, "players.jpg": 16}[name]  # faces >= 24 px wide
    # And geometrically, on the confident frontal faces: eyes above the nose above the mouth.
    for points in got["LANDMARKS"][got["SCORES"] >= 0.9]:
        left_eye, right_eye, nose, left_mouth, right_mouth = points
        assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])


def test_outputs_have_scrfds_shapes_and_types(triton):
    rgb = decode_image(ROOT / "samples" / "gdp.jpg")
    yunet, scrfd = (detect(triton, rgb, pipeline=p) for p in (PIPELINE, "detect_scrfd_500m"))
    for name in OUTPUTS:
        assert yunet[name].dtype == scrfd[name].dtype, name
        assert yunet[name].shape[1:] == scrfd[name].shape[1:], name


async def test_the_frontends_client_calls_it_unchanged(stack, reference):
    from frontend.inference.triton import TritonClient

    client = TritonClient(f"127.0.0.1:{stack.triton_grpc}", timeout_s=30)
    try:
        rgb = decode_image(ROOT / "samples" / "yaoming.jpg")
        faces = await client.detect(PIPELINE, rgb, 0.5, 0.4, 0)
    finally:
        await client.close()
    expected = reference.detect(rgb)
    assert len(faces.scores) == 1
    np.testing.assert_allclose(faces.boxes, expected.boxes, atol=1.0)
    np.testing.assert_allclose(faces.landmarks, expected.landmarks, atol=1.0)


@pytest.mark.parametrize(("confidence", "nms_threshold", "max_faces"), [(1.5, 0.4, 0), (0.5, -1, 0),
                                                                         (0.5, 0.4, -2)])
def test_out_of_range_parameters_are_refused(triton, confidence, nms_threshold, max_faces):
    rgb = decode_image(ROOT / "samples" / "yaoming.jpg")
    with pytest.raises(InferenceServerException, match="CONFIDENCE and NMS_THRESHOLD"):
        detect(triton, rgb, confidence, nms_threshold, max_faces)


def test_a_batch_of_two_is_refused(triton):
    rgb = decode_image(ROOT / "samples" / "yaoming.jpg")
    inputs = [
        _tensor("IMAGE", np.stack([rgb, rgb]), "UINT8"),
        _tensor("CONFIDENCE", np.float32([[0.5]]), "FP32"),
        _tensor("NMS_THRESHOLD", np.float32([[0.4]]), "FP32"),
        _tensor("MAX_FACES", np.int32([[0]]), "INT32"),
    ]
    with pytest.raises(InferenceServerException, match="IMAGE"):
        triton.infer(PIPELINE, inputs)
