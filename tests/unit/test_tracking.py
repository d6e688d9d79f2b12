"""The face tracker: misses filled, smooth masks, tracks ending, crossing faces, back-fill."""

from __future__ import annotations

import numpy as np
import pytest

from frontend.video.tracking import FaceTracker, iou_matrix

SIZE = 60.0


def face(t: float, start=(100.0, 100.0), velocity=(3.0, 1.0), size=SIZE) -> np.ndarray:
    x, y = start[0] + velocity[0] * t, start[1] + velocity[1] * t
    return np.array([x, y, x + size, y + size])


def covers(masks: np.ndarray, box: np.ndarray, tolerance: float = 1.0) -> bool:
    """Some mask contains ``box`` (within ``tolerance`` pixels on each side)."""
    return any(m[0] <= box[0] + tolerance and m[1] <= box[1] + tolerance
               and m[2] >= box[2] - tolerance and m[3] >= box[3] - tolerance for m in masks)


def run(tracker: FaceTracker, detections: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Push every frame's detections; the released masks by frame (each frame exactly once)."""
    out: list[tuple[int, np.ndarray]] = []
    for index, boxes in enumerate(detections):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out += tracker.push(index, boxes, np.full(len(boxes), 0.9))
    out += tracker.flush()
    frames = [index for index, _ in out]
    assert frames == list(range(len(detections)))
    return dict(out)


@pytest.mark.parametrize("missed", [1, 3, 8, 15])
def test_a_missed_face_keeps_a_mask_over_its_true_position(missed):
    n, gap = 60, 20
    truth = [face(t) for t in range(n)]
    detections = [[] if gap <= t < gap + missed else [truth[t]] for t in range(n)]
    masks = run(FaceTracker(max_missed=15), detections)
    for t in range(n):
        assert covers(masks[t], truth[t]), (t, masks[t], truth[t])
    assert all(len(masks[t]) == 1 for t in range(n))  # one track throughout, no duplicate


def test_misses_are_filled_without_lookahead_too():
    truth = [face(t, velocity=(4.0, -2.0)) for t in range(40)]
    detections = [[] if t in (10, 11, 12, 25) else [truth[t]] for t in range(40)]
    masks = run(FaceTracker(max_missed=5, lookahead=0), detections)
    assert all(covers(masks[t], truth[t]) for t in range(40))


def test_masks_move_more_smoothly_than_noisy_detections():
    rng = np.random.default_rng(7)
    n = 120
    truth = np.array([face(t, velocity=(2.0, 0.5), size=80.0) for t in range(n)])
    noisy = truth + rng.normal(0.0, 3.0, truth.shape)
    masks = run(FaceTracker(), [[box] for box in noisy])
    boxes = np.array([masks[t][0] for t in range(n)])

    def jitter(series: np.ndarray) -> float:  # spread of the frame-to-frame acceleration of the centre
        centres = (series[:, :2] + series[:, 2:]) / 2
        return float(np.std(np.diff(centres, n=2, axis=0)))

    assert jitter(boxes[10:]) < 0.4 * jitter(noisy[10:])
    # the mask widens with the detector's noise, so it still holds the whole face
    covered = sum(covers(masks[t], truth[t], tolerance=0.0) for t in range(10, n))
    assert covered >= 0.95 * (n - 10)


def test_a_track_ends_after_max_missed_frames():
    max_missed = 6
    detections = [[face(t)] if t < 10 else [] for t in range(40)]
    masks = run(FaceTracker(max_missed=max_missed, lookahead=3), detections)
    masked = [t for t in range(40) if len(masks[t])]
    assert masked == list(range(10 + max_missed))


def two_faces(left: list[np.ndarray], right: list[np.ndarray]):
    """Two faces, both detected on every frame, through a default tracker: (the tracker, the
    boxes released per frame, each track's x1 on the first frame, and on the last)."""
    tracker = FaceTracker()
    released: dict[int, np.ndarray] = {}
    for t in range(len(left)):
        for index, boxes in tracker.push(t, np.array([left[t], right[t]]), np.array([0.9, 0.8])):
            released[index] = boxes
        if t == 0:
            start_ids = {track_id: box[0] for track_id, box in tracker.active()}
    ids_now = {track_id: box[0] for track_id, box in tracker.active()}
    released.update(dict(tracker.flush()))
    return tracker, released, start_ids, ids_now


def test_crossing_faces_keep_separate_tracks():
    n = 60
    left = [face(t, start=(0.0, 100.0), velocity=(6.0, 0.0)) for t in range(n)]
    right = [face(t, start=(354.0, 130.0), velocity=(-6.0, 0.0)) for t in range(n)]
    tracker, released, start_ids, ids_now = two_faces(left, right)
    assert tracker.tracks_started == 2
    assert set(ids_now) == set(start_ids)
    for track_id, x0 in start_ids.items():
        # the track that started on the left ends on the right, and the other way round
        assert np.sign(ids_now[track_id] - x0) == (1 if x0 < 100 else -1)
    assert all(covers(released[t], left[t]) and covers(released[t], right[t]) for t in range(n))


def test_lookahead_masks_a_face_before_its_first_detection():
    n, first_detected, lookahead = 40, 15, 8
    truth = [face(t, start=(-60.0, 50.0), velocity=(5.0, 0.0)) for t in range(n)]
    # present (entering) from frame 10, missed by the detector for its first five frames
    detections = [[truth[t]] if t >= first_detected else [] for t in range(n)]
    masks = run(FaceTracker(lookahead=lookahead), detections)
    for t in range(10, n):
        assert covers(masks[t], truth[t]), (t, masks[t], truth[t])
    assert all(len(masks[t]) == 0 for t in range(first_detected - lookahead))
    assert all(len(masks[t]) == 1 for t in range(first_detected - lookahead, n))


def test_back_fill_stops_at_the_first_frame():
    masks = run(FaceTracker(lookahead=8), [[face(t)] if t >= 3 else [] for t in range(10)])
    assert sorted(masks) == list(range(10))
    assert all(len(masks[t]) == 1 for t in range(10))


def test_every_frame_comes_out_once_in_order_and_flush_empties():
    rng = np.random.default_rng(3)
    tracker = FaceTracker(lookahead=5)
    out = []
    for t in range(50):
        count = rng.integers(0, 4)
        xy = rng.uniform(0, 500, (count, 2))
        boxes = np.hstack([xy, xy + rng.uniform(20, 80, (count, 1))])
        released = tracker.push(t, boxes, rng.uniform(0.5, 1.0, count))
        assert all(index <= t - 5 for index, _ in released)
        out += released
    out += tracker.flush()
    assert [index for index, _ in out] == list(range(50))
    assert all(boxes.dtype == np.float32 and boxes.shape[1:] == (4,) for _, boxes in out)
    assert tracker.flush() == []


def test_skipped_frames_come_out_and_order_is_enforced():
    tracker = FaceTracker(lookahead=0)
    out = tracker.push(0, [face(0)], [0.9]) + tracker.push(3, [face(3)], [0.9])
    assert [index for index, _ in out] == [0, 1, 2, 3]
    assert all(len(boxes) == 1 for _, boxes in out)  # the skipped frames keep the predicted mask
    with pytest.raises(ValueError):
        tracker.push(3, [], [])


def test_boxes_are_clipped_to_the_frame():
    tracker = FaceTracker(lookahead=0, frame_size=(200, 100))
    (_, boxes), = tracker.push(0, [[-10.0, -5.0, 250.0, 120.0]], [0.9])
    assert boxes.tolist() == [[0.0, 0.0, 200.0, 100.0]]


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], dtype=float)
    iou = iou_matrix(a, a)
    assert np.allclose(np.diag(iou), 1.0)
    assert iou[0, 1] == pytest.approx(25 / 175)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)


def covered_fraction(masks: np.ndarray, box: np.ndarray) -> float:
    """The share of ``box``'s pixels inside the union of ``masks``."""
    x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
    x2, y2 = max(int(np.ceil(box[2])), x1 + 1), max(int(np.ceil(box[3])), y1 + 1)
    inside = np.zeros((y2 - y1, x2 - x1), dtype=bool)
    for mx1, my1, mx2, my2 in masks:
        inside[max(0, int(np.floor(my1)) - y1):max(0, int(np.ceil(my2)) - y1),
               max(0, int(np.floor(mx1)) - x1):max(0, int(np.ceil(mx2)) - x1)] = True
    return float(inside.mean())


@pytest.mark.parametrize("kind", ["pan", "enter_leave"])
def test_tracking_masks_the_frames_the_detector_misses_in_a_real_clip(tmp_path, kind):
    from frontend.video.io import read_frames
    from tests.reference.scrfd_reference import ReferenceSCRFD
    from tests.support.videos import DETECTOR, SAMPLES, make_video

    if not DETECTOR.exists() or not (SAMPLES / "players.jpg").exists():
        pytest.skip("the weights and sample photos are not fetched (./face-api weights)")
    misses = {8, 9, 10, 11, 20}
    path, known = make_video(tmp_path / "clip.mp4", kind, size=(480, 270), frames=30, misses=misses,
                             min_size=16)
    detector = ReferenceSCRFD(DETECTOR, threads=1)
    tracker = FaceTracker(frame_size=(480, 270))
    released = []
    for index, frame in enumerate(read_frames(path)):
        found = detector.detect(frame)
        if index in misses:
            assert len(found.boxes) == 0
        released += tracker.push(index, found.boxes, found.scores)
    masks = dict(released + tracker.flush())
    assert sorted(masks) == list(range(30))
    missed_faces = [(index, box) for index in misses for box in known[index]]
    assert missed_faces
    # every known face, on the missed frames too, is (nearly) inside a mask before any padding
    for index in range(30):
        for box in known[index]:
            assert covered_fraction(masks[index], box) >= 0.85, (index, box, masks[index])


# -- camera motion: faces seen once move with the others -----------------------------------

PAN = np.array([-37.0, -13.0])  # px per frame: every face of a panned picture moves by this
BIG, SMALL = 120.0, 30.0  # players a detector finds on every frame; spectators it finds rarely


def panned(start, t, size, pan_from=0):
    """A face standing still in a picture that pans by PAN a frame from frame ``pan_from``."""
    x, y = np.array(start) + PAN * max(0, t - pan_from)
    return np.array([x, y, x + size, y + size])


def pan_scene(n, pan_from=0):
    """Per frame: four players and two spectators (detected on every frame), panning."""
    starts = [((1500.0, 700.0), BIG), ((1100.0, 760.0), BIG), ((700.0, 680.0), BIG),
              ((300.0, 720.0), BIG), ((1300.0, 400.0), SMALL), ((900.0, 380.0), SMALL)]
    return [[panned(start, t, size, pan_from) for start, size in starts] for t in range(n)]


@pytest.mark.parametrize("camera_motion", [True, False])
def test_a_face_seen_once_then_missed_follows_the_pan(camera_motion):
    n, max_missed = 24, 15
    scene = pan_scene(n)
    spectator = [panned((1200.0, 500.0), t, SMALL) for t in range(n)]
    # found on frame 0 alone (by a tile, say), never again: nothing later to back-fill from
    detections = [scene[t] + ([spectator[t]] if t == 0 else []) for t in range(n)]
    tracker = FaceTracker(max_missed=max_missed, camera_motion=camera_motion)
    masks = run(tracker, detections)
    if not camera_motion:  # predicted standing still: it leaks from frame 1 on
        assert not covers(masks[1], spectator[1])
        return
    for t in range(n):
        assert all(covers(masks[t], box) for box in scene[t]), t
        if t <= max_missed:  # carried along with the pan for as long as it is kept
            assert covers(masks[t], spectator[t]), (t, masks[t], spectator[t])
        # one mask a face: the spectators found on every frame are linked from frame 1 on,
        # not started again (their 30 px boxes move further than their size a frame)
        assert len(masks[t]) == (7 if t <= max_missed else 6), t
    assert tracker.tracks_started == 7


def test_a_face_seen_once_is_back_filled_along_the_pan_frame_by_frame():
    # the camera stands still up to frame 5, then pans; a spectator in the picture from frame
    # 0 is found on frame 9 alone: its back-fill follows the pan back to frame 5, then stays
    n, seen, lookahead = 20, 9, 8
    scene = pan_scene(n, pan_from=5)
    spectator = [panned((1200.0, 500.0), t, SMALL, pan_from=5) for t in range(n)]
    detections = [scene[t] + ([spectator[t]] if t == seen else []) for t in range(n)]
    tracker = FaceTracker(lookahead=lookahead)
    masks = run(tracker, detections)
    for t in range(seen - lookahead, n):  # back-filled, found, then lost and carried along
        assert covers(masks[t], spectator[t]), (t, masks[t], spectator[t])
    assert not covers(masks[0], spectator[0])  # beyond the lookahead: nothing to carry back


def test_a_face_seen_once_follows_the_pan_through_frames_without_detections():
    n = 16
    scene = pan_scene(n)
    spectator = [panned((1200.0, 500.0), t, SMALL) for t in range(n)]
    blank = {5, 6}  # frames where the detector finds nothing at all
    detections = [[] if t in blank else scene[t] + ([spectator[t]] if t in (4, 8) else [])
                  for t in range(n)]
    tracker = FaceTracker()
    masks = run(tracker, detections)
    for t in range(4, n):
        assert covers(masks[t], spectator[t], tolerance=2.0), (t, masks[t], spectator[t])
    assert tracker.tracks_started == 7


def test_faces_moving_each_their_own_way_give_no_camera_motion():
    n = 20
    walkers = [[face(t, start=(200.0, 200.0), velocity=(24.0, 0.0)) for t in range(n)],
               [face(t, start=(900.0, 300.0), velocity=(-20.0, 6.0)) for t in range(n)],
               [face(t, start=(500.0, 800.0), velocity=(0.0, -22.0)) for t in range(n)]]
    bystander = np.array([600.0, 100.0, 630.0, 130.0])  # stands still, found on frame 2 only
    detections = [[w[t] for w in walkers] + ([bystander] if t == 2 else []) for t in range(n)]
    masks = run(FaceTracker(), detections)
    for t in range(n):
        assert all(covers(masks[t], w[t]) for w in walkers), t
    for t in range(2, 2 + 15):  # kept over it for max_missed frames, not carried off
        assert covers(masks[t], bystander), (t, masks[t])
    # exactly what the tracker gives without camera motion
    plain = run(FaceTracker(camera_motion=False), detections)
    assert all(np.array_equal(masks[t], plain[t]) for t in range(n))


# -- fast motion: faces that move further than IoU can link -------------------------------

FAST_PAN = np.array([-37.0, -13.0])  # a 20-frame pan at 1280×720: more than half a face a frame
FACE_W, FACE_H = 65.0, 80.0


def crowd(t, pan=FAST_PAN, pan_from=0, pan_until=None, spacing=100.0):
    """Ten faces of 65×80 px in two rows of five, ``spacing`` px apart, standing still in a
    picture that pans by ``pan`` a frame from frame ``pan_from`` (to ``pan_until``)."""
    x, y = np.array(pan) * max(0, min(t, pan_until or t) - pan_from)
    return [np.array([x0 + x, y0 + y, x0 + x + FACE_W, y0 + y + FACE_H])
            for y0 in (500.0, 500.0 + 1.5 * FACE_H) for x0 in 600.0 + spacing * np.arange(5)]


@pytest.mark.parametrize("pan_from, pan_until, misses", [
    (0, None, ()), (0, None, (5, 6)),  # panning from the first frame
    (8, None, ()), (8, None, (12, 13)),  # a still shot, then the pan
    (0, 10, ()),  # the pan stops
])
def test_a_fast_pan_links_every_face_to_one_track(pan_from, pan_until, misses):
    # IoU between a face's boxes on consecutive frames is ~0.2 here, below iou_match: with IoU
    # alone every face started a track on every frame, each kept and back-filled (~200)
    n = 20
    truth = [crowd(t, pan_from=pan_from, pan_until=pan_until) for t in range(n)]
    detections = [[] if t in misses else truth[t] for t in range(n)]
    tracker = FaceTracker()
    masks = run(tracker, detections)
    assert tracker.tracks_started == 10
    for t in range(n):
        assert all(covers(masks[t], box) for box in truth[t]), t
        assert len(masks[t]) <= 12, (t, len(masks[t]))  # at most ~1.2 masks a face


@pytest.mark.parametrize("pan_from, pan_until", [(0, None), (6, None), (0, 8)])
def test_a_fast_pan_over_a_tight_crowd_finds_the_right_shift(pan_from, pan_until):
    # faces 70 px apart moving 40 px a frame: each one's nearest detection on the next frame,
    # and the one it overlaps most, is its neighbour's; the shift that aligns most faces is
    # the pan's (at the clip's start, as the pan starts, and as it stops)
    n = 16
    truth = [crowd(t, pan=(40.0, 0.0), pan_from=pan_from, pan_until=pan_until, spacing=70.0)
             for t in range(n)]
    tracker = FaceTracker()
    masks = run(tracker, truth)
    assert tracker.tracks_started == 10
    assert all(len(masks[t]) == 10 and all(covers(masks[t], box) for box in truth[t])
               for t in range(n))


@pytest.mark.parametrize("velocity", [(48.0, 0.0), (0.0, -48.0), (34.0, 34.0)])
def test_a_single_face_moving_most_of_its_width_a_frame_stays_one_track(velocity):
    n = 20  # 0.8 × its 60 px a frame; no other face, so no camera motion to help
    truth = [face(t, start=(100.0, 1000.0), velocity=velocity) for t in range(n)]
    detections = [[] if t in (9, 10) else [truth[t]] for t in range(n)]
    tracker = FaceTracker()
    masks = run(tracker, detections)
    assert tracker.tracks_started == 1
    assert all(len(masks[t]) == 1 and covers(masks[t], truth[t]) for t in range(n))


def test_a_face_moving_much_more_than_its_size_is_not_linked():
    # 2.5 × its size a frame: beyond distance_match, so a new track each frame (the limit)
    truth = [face(t, velocity=(150.0, 0.0)) for t in range(6)]
    tracker = FaceTracker(lookahead=0, max_missed=0)
    run(tracker, [[box] for box in truth])
    assert tracker.tracks_started == 6


@pytest.mark.parametrize("apart", [True, False])
def test_close_faces_moving_fast_in_opposite_directions_keep_their_tracks(apart):
    # side by side 10 px apart moving away from each other, or passing each other 30 px
    # lower, at 45 px a frame (0.75 × their size): they must not be swapped or restarted
    n = 14
    if apart:
        left = [face(t, start=(600.0, 300.0), velocity=(-45.0, 0.0)) for t in range(n)]
        right = [face(t, start=(670.0, 300.0), velocity=(45.0, 0.0)) for t in range(n)]
    else:
        left = [face(t, start=(0.0, 300.0), velocity=(45.0, 0.0)) for t in range(n)]
        right = [face(t, start=(600.0, 330.0), velocity=(-45.0, 0.0)) for t in range(n)]
    tracker, released, start_ids, ids_now = two_faces(left, right)
    assert tracker.tracks_started == 2
    assert set(ids_now) == set(start_ids)
    for track_id, x0 in start_ids.items():  # each track still follows its own face
        own = left if abs(x0 - left[0][0]) < 1 else right
        assert abs(ids_now[track_id] - own[-1][0]) < 10
    assert all(len(released[t]) == 2 and covers(released[t], left[t]) and covers(released[t], right[t])
               for t in range(n))


def test_distance_match_zero_is_iou_alone():
    truth = [face(t, velocity=(48.0, 0.0)) for t in range(5)]
    tracker = FaceTracker(distance_match=0.0, lookahead=0, max_missed=0)
    run(tracker, [[box] for box in truth])
    assert tracker.tracks_started == 5
    with pytest.raises(ValueError):
        FaceTracker(distance_match=-1.0)


def test_a_face_found_next_to_one_the_detector_lost_does_not_take_its_track():
    # three faces of 20 px in a row, 19 and 18 px apart: the middle one is found on frames
    # 0–9 only, the right one (in the picture from frame 5) from frame 10 on. Linking the
    # middle one's track to the right one, 0.9 × its size away, would unmask both: the middle
    # one while it is lost, the right one on the frames before its first detection (no
    # back-fill for a track it took over). The left one is nearly as near: too ambiguous.
    n = 30
    left, middle, right = (face(0, start=(x, 200.0), velocity=(0.0, 0.0), size=20.0)
                           for x in (300.0, 319.0, 337.0))
    detections = [[left] + ([middle] if t < 10 else []) + ([right] if t >= 10 else [])
                  for t in range(n)]
    tracker = FaceTracker()
    masks = run(tracker, detections)
    assert tracker.tracks_started == 3
    for t in range(n):
        present = ([left] + ([middle] if t < 10 + tracker.max_missed else [])  # then it ends
                   + ([right] if t >= 5 else []))
        assert all(covers(masks[t], box) for box in present), (t, masks[t])
