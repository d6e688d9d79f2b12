"""Link face detections over time so that no frame of a clip leaks a face.

A detector run frame by frame misses a face now and then (motion blur, a hand in front of
it, a turned head); in anonymised video that face flashes visible for a frame. The tracker
turns detections into tracks and decides, for every frame, which boxes to mask:

* **Association.** Each track predicts its box in the new frame (constant velocity);
  detections are matched to predictions by IoU (``iou_match`` at least), best pairs first
  (scipy's optimal assignment when scipy is installed). A detection left over starts a
  track at once: masking a false positive costs a blurred patch, missing a face costs the
  anonymity.
* **Camera motion** (``camera_motion``; the idea of BoT-SORT's camera-motion compensation,
  estimated from the faces rather than the background). A track seen once has no
  velocity of its own, yet when the camera pans every face in the picture moves the same
  way. Each frame's global motion is the median displacement of the tracks matched in
  it, used only when at least two of them, and half or more, agree on it (else zero: faces
  moving each their own way are no camera motion). A track with one sighting is predicted
  to move with it, frame by frame, and so is its back-fill.
* **Smoothing.** An alpha-beta filter on centre and size (``smoothing`` is the weight of the
  prediction, so 0 follows the detector exactly). For constant-velocity motion it has no lag
  in the steady state; the box it reports grows by twice the recent prediction error, so
  when detections are noisy the mask is steady and wider rather than jittering.
* **Misses.** A track that finds no detection keeps its predicted box, growing
  ``lost_growth`` × its size per side per missed frame, for up to ``max_missed`` frames;
  then it ends. When it is found again within that time, the missed frames still waiting
  to be released are also given the box interpolated between the two sightings.
* **Lookahead.** Frames are released ``lookahead`` frames late. A track that starts at
  frame t is extrapolated backwards over the frames t-1 … t-lookahead still held: a face
  entering the picture, or missed for its first frames, is masked there too — something a
  frame-by-frame tool cannot do.

Why our own tracker rather than ``supervision`` (ByteTrack) or ``norfair``: the frontend
must keep Pillow-SIMD and the headless OpenCV, and supervision pulls in opencv-python (which
installs its own ``cv2`` over the headless one), stock Pillow and matplotlib, norfair
filterpy and scipy; more importantly neither back-fills the frames before a track's first
detection (they are online trackers: they report a frame as soon as it is seen), nor keeps
masking a lost track by default (ByteTrack reports only matched tracks) — the two things
anonymisation needs most. What is needed here is small: a box filter, greedy IoU
association and a delay line, about two hundred lines of numpy.

Boxes are (x1, y1, x2, y2) floats in any one coordinate system (the detector's frame or the
full frame); they are clipped to ``frame_size`` when one is given.
"""

from __future__ import annotations

import math

import numpy as np

try:  # optional: optimal assignment; else greedy, best IoU first (they differ only in crowds)
    from scipy.optimize import linear_sum_assignment
except ImportError:  # pragma: no cover - depends on the environment
    linear_sum_assignment = None

Released = list[tuple[int, np.ndarray]]
# Width / height of a detector's face box: what a face cut by the frame's edge is assumed
# to have when no earlier sighting tells its size.
FACE_ASPECT = 0.8
EDGE_PX = 1.0  # a box side this close to the frame's edge is taken as cut by it


def _xyxy_to_cxcywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=np.float64)


def _cxcywh_to_xyxy(state: np.ndarray, margin: float = 0.0) -> np.ndarray:
    cx, cy, w, h = state
    half_w, half_h = max(w, 0.0) / 2 + margin, max(h, 0.0) / 2 + margin
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dtype=np.float64)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4) with every box in ``b`` (M,4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])])


class _Track:
    def __init__(self, track_id: int, frame: int, box: np.ndarray, score: float):
        self.id = track_id
        self.first_frame = frame
        self.last_seen = frame
        self.state = _xyxy_to_cxcywh(box)  # smoothed centre and size at the last update
        self.measured = self.state.copy()  # the last detection's, unsmoothed
        self.velocity = np.zeros(4)  # per frame
        self.noise = np.zeros(4)  # running mean square of the prediction error
        self.hits = 1
        self.missed = 0
        self.score = score
        self.records: dict[int, np.ndarray] = {}  # frame → box to mask, until released
        # With one sighting only (no velocity of its own), the track moves with the camera:
        # ``drift`` is the camera's motion summed over the frames after the sighting, up to
        # ``drift_until``.
        self.drift = np.zeros(4)
        self.drift_until = frame

    def predicted(self, frame: int, motion: np.ndarray | None = None) -> np.ndarray:
        """The centre and size at ``frame``; ``motion`` is the camera's motion per frame
        assumed after ``drift_until`` for a track seen once."""
        if self.hits >= 2:
            return self.state + self.velocity * (frame - self.last_seen)
        ahead = 0.0 if motion is None else motion * (frame - self.drift_until)
        return self.state + self.drift + ahead

    def size(self) -> float:
        return float(max(self.state[2], self.state[3], 1.0))

    def noise_margin(self) -> float:
        return 2.0 * math.sqrt(float(self.noise.sum()) / 4.0)


class FaceTracker:
    """Detections in, per-frame boxes to mask out, ``lookahead`` frames late.

    ``push`` must be called for frames in increasing order; a frame skipped is treated as a
    frame with no detections. Every pushed frame comes out exactly once, in order, from
    ``push`` or finally ``flush``.
    """

    def __init__(self, max_missed: int = 15, iou_match: float = 0.3, smoothing: float = 0.6,
                 lookahead: int = 8, *, lost_growth: float = 0.04,
                 frame_size: tuple[int, int] | None = None, camera_motion: bool = True):
        if max_missed < 0 or lookahead < 0:
            raise ValueError("max_missed and lookahead must not be negative")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError("smoothing must be in [0, 1)")
        if not 0.0 < iou_match <= 1.0:
            raise ValueError("iou_match must be in (0, 1]")
        self.max_missed = max_missed
        self.iou_match = iou_match
        self.lookahead = lookahead
        self.lost_growth = lost_growth
        self.frame_size = frame_size
        self.camera_motion = camera_motion
        # alpha-beta gains: alpha from the smoothing weight, beta for critical damping
        self._alpha = 1.0 - smoothing
        self._beta = self._alpha ** 2 / (2.0 - self._alpha)
        self._active: list[_Track] = []
        self._ended: list[_Track] = []  # still holding unreleased frames or able to back-fill
        self._pending: list[int] = []  # frames pushed, not yet released
        self._last_frame: int | None = None
        self._motion = np.zeros(4)  # the camera's motion in the last frame (cx, cy; size 0)
        self._motions: dict[int, np.ndarray] = {}  # per held frame, for the back-fill
        self._next_id = 0
        self.tracks_started = 0
        self._confirmed_gone = 0

    # -- public -----------------------------------------------------------------------

    def push(self, frame_index: int, boxes: np.ndarray, scores: np.ndarray) -> Released:
        """Add one frame's detections; returns the frames whose masks are now final."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError("boxes and scores differ in length")
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"frame {frame_index} pushed after frame {self._last_frame}")
        released: Released = []
        if self._last_frame is not None:
            for skipped in range(self._last_frame + 1, frame_index):
                self._step(skipped, np.zeros((0, 4)), np.zeros(0))
                released += self._release(upto=skipped - self.lookahead)
        self._step(frame_index, boxes, scores)
        return released + self._release(upto=frame_index - self.lookahead)

    def flush(self) -> Released:
        """Release every frame still held (at the end of the clip)."""
        if self._last_frame is None:
            return []
        return self._release(upto=self._last_frame)

    def active(self) -> list[tuple[int, np.ndarray]]:
        """The live tracks as (track id, box at the last pushed frame), for logs and tests."""
        if self._last_frame is None:
            return []
        return [(track.id, _cxcywh_to_xyxy(track.predicted(self._last_frame)).astype(np.float32))
                for track in self._active]

    @property
    def tracks_confirmed(self) -> int:
        """Tracks seen in at least two frames (a rough count of distinct faces)."""
        return sum(1 for track in self._all_tracks() if track.hits >= 2) + self._confirmed_gone

    # -- per frame --------------------------------------------------------------------

    def _step(self, frame: int, boxes: np.ndarray, scores: np.ndarray) -> None:
        self._last_frame = frame
        self._pending.append(frame)

        tracks = self._active
        boxes = np.array([self._uncut(box, None) for box in boxes]).reshape(-1, 4)
        # Tracks seen once are first predicted with the last frame's camera motion.
        predicted = np.array([_cxcywh_to_xyxy(t.predicted(frame, self._motion), t.noise_margin())
                              for t in tracks]).reshape(-1, 4)
        pairs = self._associate(iou_matrix(predicted, boxes))
        motion = self._camera_motion_in(frame, tracks, boxes, pairs)
        if not np.array_equal(motion, self._motion):
            # This frame's motion differs (the clip's start, a pan starting): tracks seen once
            # and left over get a second chance with it.
            pairs += self._rematch_young(frame, tracks, boxes, pairs, motion)
        self._motion = self._motions[frame] = motion
        pairs += self._reacquire(frame, tracks, boxes, pairs, motion)
        matched_tracks = {ti for ti, _ in pairs}
        matched_boxes = {di for _, di in pairs}

        for ti, di in pairs:
            self._update(tracks[ti], frame, boxes[di], float(scores[di]))
        survivors = []
        for ti, track in enumerate(tracks):
            if ti in matched_tracks:
                survivors.append(track)
                continue
            track.missed += 1
            if track.missed > self.max_missed:
                self._ended.append(track)
                continue
            if track.hits == 1:  # seen once: carried along with the camera
                track.drift = track.predicted(frame, motion) - track.state
                track.drift_until = frame
            track.records[frame] = self._clip(
                _cxcywh_to_xyxy(track.predicted(frame), self._lost_margin(track, track.missed)))
            survivors.append(track)
        for di in range(len(boxes)):
            if di not in matched_boxes:
                track = _Track(self._next_id, frame, boxes[di], float(scores[di]))
                self._next_id += 1
                self.tracks_started += 1
                track.records[frame] = self._clip(boxes[di].copy())
                survivors.append(track)
        self._active = survivors

    def _associate(self, iou: np.ndarray) -> list[tuple[int, int]]:
        if iou.size == 0:
            return []
        if linear_sum_assignment is not None:
            rows, cols = linear_sum_assignment(-iou)
            return [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= self.iou_match]
        pairs, used_t, used_d = [], set(), set()
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            ti, di = np.unravel_index(flat, iou.shape)
            if iou[ti, di] < self.iou_match:
                break
            if ti in used_t or di in used_d:
                continue
            pairs.append((int(ti), int(di)))
            used_t.add(ti)
            used_d.add(di)
        return pairs

    def _camera_motion_in(self, frame: int, tracks: list[_Track], boxes: np.ndarray,
                          pairs: list[tuple[int, int]]) -> np.ndarray:
        """The camera's motion from the previous frame to ``frame``, as (dx, dy, 0, 0).

        The median displacement per frame of the tracks matched in this frame; with none
        matched (a frame where the detector found nothing), the median velocity of the
        tracks that have one, which they are predicted to keep. Zero unless at least two
        tracks, and half of them or more, lie within a quarter of their face's size (2 px at
        least) of that median: faces moving each their own way show no camera motion.
        """
        if not self.camera_motion:
            return np.zeros(4)
        if pairs:
            moves, sizes = [], []
            for ti, di in pairs:
                track = tracks[ti]
                measured = _xyxy_to_cxcywh(self._uncut(boxes[di], track.predicted(frame)[2:]))
                moves.append((measured[:2] - track.measured[:2]) / (frame - track.last_seen))
                sizes.append(track.size())
        else:
            steady = [track for track in tracks if track.hits >= 2]
            moves = [track.velocity[:2] for track in steady]
            sizes = [track.size() for track in steady]
        if len(moves) < 2:
            return np.zeros(4)
        moves_arr = np.array(moves)
        median = np.median(moves_arr, axis=0)
        agree = np.hypot(*(moves_arr - median).T) <= np.maximum(0.25 * np.array(sizes), 2.0)
        if agree.sum() < 2 or 2 * agree.sum() < len(moves):
            return np.zeros(4)
        return np.array([*np.median(moves_arr[agree], axis=0), 0.0, 0.0])

    def _rematch_young(self, frame: int, tracks: list[_Track], boxes: np.ndarray,
                       pairs: list[tuple[int, int]], motion: np.ndarray) -> list[tuple[int, int]]:
        """IoU matches, with ``motion``, between tracks seen once and detections left over."""
        taken_t, taken_d = {ti for ti, _ in pairs}, {di for _, di in pairs}
        young = [ti for ti, track in enumerate(tracks) if track.hits == 1 and ti not in taken_t]
        free = [di for di in range(len(boxes)) if di not in taken_d]
        if not young or not free:
            return []
        predicted = np.array([_cxcywh_to_xyxy(tracks[ti].predicted(frame, motion)) for ti in young])
        return [(young[a], free[b]) for a, b in self._associate(iou_matrix(predicted, boxes[free]))]

    def _reacquire(self, frame: int, tracks: list[_Track], boxes: np.ndarray,
                   pairs: list[tuple[int, int]], motion: np.ndarray) -> list[tuple[int, int]]:
        """Match lost tracks whose prediction drifted below ``iou_match``: a detection of
        similar size centred inside the track's grown (lost) box, nearest first."""
        taken_t, taken_d = {ti for ti, _ in pairs}, {di for _, di in pairs}
        candidates = []
        for ti, track in enumerate(tracks):
            if ti in taken_t or track.missed == 0:
                continue
            state = track.predicted(frame, motion)
            grown = _cxcywh_to_xyxy(state, self._lost_margin(track, track.missed + 1))
            for di, box in enumerate(boxes):
                if di in taken_d:
                    continue
                measured = _xyxy_to_cxcywh(box)
                ratio = max(measured[2], measured[3], 1.0) / track.size()
                inside = grown[0] <= measured[0] <= grown[2] and grown[1] <= measured[1] <= grown[3]
                if inside and 0.5 <= ratio <= 2.0:
                    candidates.append((float(np.hypot(*(measured[:2] - state[:2]))), ti, di))
        extra = []
        for _, ti, di in sorted(candidates):
            if ti not in taken_t and di not in taken_d:
                extra.append((ti, di))
                taken_t.add(ti)
                taken_d.add(di)
        return extra

    def _update(self, track: _Track, frame: int, box: np.ndarray, score: float) -> None:
        gap = frame - track.last_seen
        previous = track.state.copy()
        prediction = track.predicted(frame)
        measured = _xyxy_to_cxcywh(self._uncut(box, prediction[2:]))
        error = measured - prediction
        if track.hits == 1:
            # Second sighting: the velocity is the difference (a filter starting from rest
            # would lag behind a moving face for several frames).
            track.state = measured
            track.velocity = (measured - previous) / gap
        else:
            track.state = prediction + self._alpha * error
            track.velocity = track.velocity + self._beta * error / gap
            track.noise = 0.7 * track.noise + 0.3 * error ** 2
        if track.missed:
            # Found again: frames predicted while lost also get the interpolated box.
            for lost in range(track.last_seen + 1, frame):
                if lost in track.records:
                    fraction = (lost - track.last_seen) / gap
                    between = previous + (track.state - previous) * fraction
                    track.records[lost] = self._clip(_union(
                        track.records[lost], _cxcywh_to_xyxy(between, track.noise_margin())))
        track.last_seen = frame
        track.measured = measured
        track.missed = 0
        track.hits += 1
        track.score = max(track.score, score)
        track.records[frame] = self._clip(_cxcywh_to_xyxy(track.state, track.noise_margin()))

    def _uncut(self, box: np.ndarray, size: np.ndarray | None) -> np.ndarray:
        """A box cut by the frame's edge, extended past it to the face's whole size.

        A face leaving the picture shrinks to a sliver in the detector's boxes; taken at
        face value its centre and size would drag the track (and a back-filled box) the
        wrong way. The whole size is the track's (``size``, width and height) or, for a new
        face, the uncut side times the usual face aspect ratio. The boxes released are
        clipped to the frame again.
        """
        if self.frame_size is None:
            return box
        width, height = self.frame_size
        x1, y1, x2, y2 = box
        cut_x = (x1 <= EDGE_PX) != (x2 >= width - EDGE_PX)  # cut on one side only
        cut_y = (y1 <= EDGE_PX) != (y2 >= height - EDGE_PX)
        if not (cut_x or cut_y):
            return box
        if size is not None:
            whole_w, whole_h = float(size[0]), float(size[1])
        else:
            whole_w = (y2 - y1) * FACE_ASPECT if not cut_y else x2 - x1
            whole_h = (x2 - x1) / FACE_ASPECT if not cut_x else y2 - y1
        box = box.copy()
        if cut_x and x2 - x1 < whole_w:
            if x1 <= EDGE_PX:
                box[0] = x2 - whole_w
            else:
                box[2] = x1 + whole_w
        if cut_y and y2 - y1 < whole_h:
            if y1 <= EDGE_PX:
                box[1] = y2 - whole_h
            else:
                box[3] = y1 + whole_h
        return box

    def _lost_margin(self, track: _Track, frames_lost: int) -> float:
        return track.noise_margin() + self.lost_growth * track.size() * frames_lost

    def _clip(self, box: np.ndarray) -> np.ndarray:
        if self.frame_size is None:
            return box
        width, height = self.frame_size
        return np.array([min(max(box[0], 0.0), width), min(max(box[1], 0.0), height),
                         min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)])

    # -- release ----------------------------------------------------------------------

    def _all_tracks(self) -> list[_Track]:
        return self._active + self._ended

    def _release(self, upto: int) -> Released:
        released: Released = []
        while self._pending and self._pending[0] <= upto:
            frame = self._pending.pop(0)
            boxes = []
            for track in self._all_tracks():
                box = track.records.pop(frame, None)
                if box is not None:
                    boxes.append(box)
                elif frame < track.first_frame <= frame + self.lookahead:
                    boxes.append(self._backfill(track, frame))
            released.append((frame, np.array(boxes, dtype=np.float32).reshape(-1, 4)))
            self._motions.pop(frame, None)  # a back-fill needs only later frames' motion
            self._forget(frame)
        return released

    def _backfill(self, track: _Track, frame: int) -> np.ndarray:
        """The track's first box carried back to ``frame``: along its current velocity, or,
        seen once only, against the camera's motion in each frame between."""
        steps = track.first_frame - frame
        if track.hits >= 2:
            first = track.records.get(track.first_frame)
            start = _xyxy_to_cxcywh(first) if first is not None else track.state - track.velocity * (
                track.last_seen - track.first_frame)
            state = start - track.velocity * steps
        else:
            state = track.state - sum((self._motions.get(k, np.zeros(4))
                                       for k in range(frame + 1, track.first_frame + 1)), np.zeros(4))
        return self._clip(_cxcywh_to_xyxy(state, self._lost_margin(track, steps)))

    def _forget(self, released_frame: int) -> None:
        """Drop ended tracks with nothing left to release and no frame left to back-fill."""
        keep = []
        for track in self._ended:
            if track.records or track.first_frame > released_frame + 1:
                keep.append(track)
            elif track.hits >= 2:
                self._confirmed_gone += 1
        self._ended = keep
