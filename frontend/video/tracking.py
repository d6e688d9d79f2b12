"""Link face detections over time so that no frame of a clip leaks a face.

A detector run frame by frame misses a face now and then (motion blur, a hand in front of
it, a turned head); in anonymised video that face flashes visible for a frame. The tracker
turns detections into tracks and decides, for every frame, which boxes to mask:

* **Association.** Each track predicts its box in the new frame (constant velocity);
  detections are matched to predictions by IoU (``iou_match`` at least), best pairs first
  (scipy's optimal assignment when scipy is installed): first the tracks seen twice or
  more, then, once this frame's camera motion is known, the tracks seen once (predicted
  with it). What IoU leaves over goes to a second stage (``distance_match``): a detection
  of similar size whose centre lies within ``distance_match`` × the track's size (its box's
  larger side) of its predicted centre, when the pair is unambiguous (no other detection
  or track nearly as near, ``AMBIGUITY``). A face that moves more than about half its
  width a frame (a fast pan, a short clip, a low frame rate) no longer overlaps its
  prediction enough for IoU, yet is still linked, up to about its size a frame. A
  detection left over starts a track at once: masking a false positive costs a blurred
  patch, missing a face costs the anonymity.
* **Camera motion** (``camera_motion``; the idea of BoT-SORT's camera-motion compensation,
  estimated from the faces rather than the background). A track seen once has no
  velocity of its own, yet when the camera pans every face in the picture moves the same
  way. Each frame's global motion is the median displacement of the tracks matched in
  it, used only when at least two of them, and half or more, agree on it (else zero: faces
  moving each their own way are no camera motion). Where those tracks do not settle it or
  say it changed (the clip's start, when every track is new; a pan faster than IoU can
  follow; a pan starting or stopping), the displacement that best aligns the faces
  detected in the previous frame with this frame's (a vote among pairs of similar size,
  with the same rule of agreement) is taken when more faces agree with it. A track with
  one sighting is predicted to move with it, frame by frame, and so is its back-fill; a
  track with a velocity of its own that IoU did not link is also tried, in the distance
  stage, with the change in the camera's motion added (a pan starting or stopping).
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
anonymisation needs most. What is needed here is small: a box filter, IoU and distance
association and a delay line, a few hundred lines of numpy.

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
# Size of a detection / size of a track that the distance stage and the camera-motion vote
# take as the same face.
SIZE_RATIO = (0.6, 1.6)
# The distance stage links a track and a detection only when each is at most this fraction
# as far from the other as from its runner-up (any other detection or track's prediction).
AMBIGUITY = 0.6


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


def _near(moves: np.ndarray, motion: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Which per-face displacements ``moves`` (N, 2) lie within a quarter of their face's size
    (``sizes``; 2 px at least) of ``motion``: the faces that move with the camera."""
    return np.hypot(*(moves - motion[:2]).T) <= np.maximum(0.25 * sizes, 2.0)


def _agreed(moves: list, sizes: list) -> tuple[np.ndarray | None, int]:
    """The camera's motion (dx, dy, 0, 0) from per-face displacements ``moves`` and how many
    faces agree on it: their median, when at least two faces, and half of them or more, lie
    near it (``_near``); else None (faces moving each their own way)."""
    if len(moves) < 2:
        return None, 0
    moves_arr = np.array(moves, dtype=np.float64)
    agree = _near(moves_arr, np.median(moves_arr, axis=0), np.array(sizes, dtype=np.float64))
    if agree.sum() < 2 or 2 * agree.sum() < len(moves):
        return None, 0
    return np.array([*np.median(moves_arr[agree], axis=0), 0.0, 0.0]), int(agree.sum())


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
                 frame_size: tuple[int, int] | None = None, camera_motion: bool = True,
                 distance_match: float = 1.0):
        if max_missed < 0 or lookahead < 0:
            raise ValueError("max_missed and lookahead must not be negative")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError("smoothing must be in [0, 1)")
        if not 0.0 < iou_match <= 1.0:
            raise ValueError("iou_match must be in (0, 1]")
        if distance_match < 0.0:
            raise ValueError("distance_match must not be negative")
        self.max_missed = max_missed
        self.iou_match = iou_match
        self.lookahead = lookahead
        self.lost_growth = lost_growth
        self.frame_size = frame_size
        self.camera_motion = camera_motion
        # How far, in face sizes (the larger side of the track's box), a detection's centre
        # may lie from a track's predicted centre and still be linked to it when IoU is not
        # enough: the second association stage, and the range of the camera-motion vote.
        # 0 turns both off (IoU alone).
        self.distance_match = distance_match
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
        # 1. IoU, for the tracks with a velocity of their own (seen twice or more).
        steady = [ti for ti, track in enumerate(tracks) if track.hits >= 2]
        predicted = np.array([_cxcywh_to_xyxy(tracks[ti].predicted(frame), tracks[ti].noise_margin())
                              for ti in steady]).reshape(-1, 4)
        pairs = [(steady[a], di) for a, di in self._associate(iou_matrix(predicted, boxes))]
        # 2. This frame's camera motion, then IoU for the tracks seen once, predicted with it
        #    (they have no velocity of their own: predicted standing still, a face at the
        #    clip's start or as a pan starts would match its neighbour, or nothing).
        motion, pairs = self._camera_motion_in(frame, tracks, boxes, pairs)
        pairs += self._match_young(frame, tracks, boxes, pairs, motion)
        change = motion - self._motion
        self._motion = self._motions[frame] = motion
        # 3. Lost tracks whose prediction drifted, then the distance stage for what is left.
        pairs += self._reacquire(frame, tracks, boxes, pairs, motion)
        pairs += self._match_by_distance(frame, tracks, boxes, pairs, motion, change)
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
            return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= self.iou_match]
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
                          pairs: list[tuple[int, int]]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """The camera's motion from the previous frame to ``frame``, as (dx, dy, 0, 0), and
        the IoU ``pairs`` that stand.

        The median displacement per frame of the tracks matched in this frame; with none
        matched (a frame where the detector found nothing), the median velocity of the
        tracks that have one, which they are predicted to keep. Counted only when at least
        two tracks, and half of them or more, lie within a quarter of their face's size (2 px
        at least) of that median: faces moving each their own way show no camera motion.

        When the matched tracks do not settle it, or say it changed (the clip's start, a
        pan starting or stopping: where IoU on predictions is least to be trusted), the vote
        of ``_aligned_motion`` is taken too. It wins when more faces agree with it than with
        the matched tracks and it differs from theirs; the IoU pairs that do not move with it
        are then undone, for the later stages to link again (in a tight crowd, a pan that
        starts can make each face overlap its neighbour's predicted box more than its own).
        Else zero.
        """
        if not self.camera_motion:
            return np.zeros(4), pairs
        moves, sizes = [], []
        for ti, di in pairs:
            track = tracks[ti]
            measured = _xyxy_to_cxcywh(self._uncut(boxes[di], track.predicted(frame)[2:]))
            moves.append((measured[:2] - track.measured[:2]) / (frame - track.last_seen))
            sizes.append(track.size())
        motion, agreeing = _agreed(moves, sizes)
        if motion is not None:
            tolerance = max(0.25 * float(np.median(sizes)), 2.0)
            if np.hypot(*(motion - self._motion)[:2]) <= tolerance:
                return motion, pairs  # the motion of the last frame: the usual case
        aligned, votes = self._aligned_motion(frame, tracks, boxes)
        if aligned is not None and votes > agreeing and (
                motion is None or np.hypot(*(aligned - motion)[:2]) > tolerance):
            keep = _near(np.array(moves).reshape(-1, 2), aligned, np.array(sizes, dtype=np.float64))
            return aligned, [pair for pair, kept in zip(pairs, keep) if kept]
        if motion is None and not pairs:
            steady = [track for track in tracks if track.hits >= 2]
            motion, _ = _agreed([track.velocity[:2] for track in steady],
                                [track.size() for track in steady])
        return (np.zeros(4) if motion is None else motion), pairs

    def _aligned_motion(self, frame: int, tracks: list[_Track],
                        boxes: np.ndarray) -> tuple[np.ndarray | None, int]:
        """The camera's motion as the shift that best aligns the faces detected in the
        previous frame (the tracks seen there) with this frame's detections, and how many
        faces vote for it; (None, 0) when none counts.

        Every pair of a track and a detection of similar size (``SIZE_RATIO``) whose centres
        lie within ``distance_match`` × the track's size is a candidate shift; each candidate
        gets the vote of every track that has a detection of similar size within a quarter of
        its size (2 px at least) of where the shift puts it (so the small faces, which move
        further than their size in a fast pan, vote for the shift the larger ones propose).
        The best-supported candidate counts, as the median of its voters' shifts, when at
        least two tracks vote for it and at least half of those that could (no more than
        there are detections): the same rule as for matched tracks.
        """
        recent = [track for track in tracks if track.last_seen == frame - 1]
        if self.distance_match <= 0.0 or len(recent) < 2 or len(boxes) < 2:
            return None, 0
        was = np.array([track.measured[:2] for track in recent])  # (N, 2)
        size = np.array([track.size() for track in recent])  # (N,)
        now = np.array([_xyxy_to_cxcywh(box) for box in boxes])  # (M, 4)
        shift = now[None, :, :2] - was[:, None, :]  # (N, M, 2)
        ratio = np.maximum(now[:, 2], now[:, 3]).clip(1.0, None)[None, :] / size[:, None]
        similar = (ratio >= SIZE_RATIO[0]) & (ratio <= SIZE_RATIO[1])
        near = np.hypot(shift[..., 0], shift[..., 1]) <= self.distance_match * size[:, None]
        candidates = shift[similar & near]  # (K, 2)
        if len(candidates) == 0:
            return None, 0
        tolerance = np.maximum(0.25 * size, 2.0)[:, None]  # (N, 1)
        best, best_votes = None, 0
        for start in range(0, len(candidates), 64):  # (64, N, M) at a time
            chunk = candidates[start:start + 64]
            off = np.hypot(*(shift[None] - chunk[:, None, None, :]).transpose(3, 0, 1, 2))
            votes = ((off <= tolerance[None]) & similar[None]).any(axis=2).sum(axis=1)  # (chunk,)
            k = int(votes.argmax())
            if votes[k] > best_votes:
                best, best_votes = chunk[k], int(votes[k])
        if best_votes < 2 or 2 * best_votes < min(len(recent), len(boxes)):
            return None, 0
        # Each voter's own shift: its similar detection nearest to the best candidate.
        off = np.where(similar, np.hypot(*(shift - best).transpose(2, 0, 1)), np.inf)
        nearest = off.argmin(axis=1)
        voters = off[np.arange(len(recent)), nearest] <= tolerance[:, 0]
        median = np.median(shift[np.flatnonzero(voters), nearest[voters]], axis=0)
        return np.array([*median, 0.0, 0.0]), best_votes

    def _match_young(self, frame: int, tracks: list[_Track], boxes: np.ndarray,
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

    def _match_by_distance(self, frame: int, tracks: list[_Track], boxes: np.ndarray,
                           pairs: list[tuple[int, int]], motion: np.ndarray,
                           change: np.ndarray) -> list[tuple[int, int]]:
        """The second association stage, for the tracks and detections still left over: a
        detection of similar size (``SIZE_RATIO``) whose centre lies within
        ``distance_match`` × the track's size of the track's predicted centre.

        IoU needs the boxes to overlap, so it loses a face that moves more than about half
        its width a frame (a fast pan, a walk filmed at a low frame rate). Distance alone
        cannot tell a face from its neighbour in a crowd, though: a pair is linked only when
        it is unambiguous, its distance at most ``AMBIGUITY`` × the runner-up's, both among
        the other detections for the track and among the other tracks' predictions for the
        detection (those IoU linked included). In a crowd whose detections flicker, a face
        that appears next to one the detector lost then starts a track of its own (both stay
        masked) rather than taking over the lost face's track. A track with a velocity of
        its own is also tried with the change in the camera's motion since the last frame
        added (``change``: a pan starting or stopping, which its velocity cannot know);
        linked that way, the change is added to its velocity too. Distances are in track
        sizes.
        """
        taken_t, taken_d = {ti for ti, _ in pairs}, {di for _, di in pairs}
        if (self.distance_match <= 0.0 or len(taken_t) == len(tracks)
                or len(taken_d) == len(boxes)):
            return []
        # Every track against every detection: those already linked are the alternatives.
        centres = np.array([_xyxy_to_cxcywh(box) for box in boxes])  # (M, 4)
        states = np.array([track.predicted(frame, motion) for track in tracks])  # (N, 4)
        track_sizes = np.array([track.size() for track in tracks])[:, None]  # (N, 1)
        ratio = np.maximum(centres[:, 2], centres[:, 3]).clip(1.0, None)[None, :] / track_sizes
        similar = (ratio >= SIZE_RATIO[0]) & (ratio <= SIZE_RATIO[1])
        offset = centres[None, :, :2] - states[:, None, :2]  # (N, M, 2)
        distance = np.hypot(offset[..., 0], offset[..., 1])
        shifted = np.zeros(distance.shape, dtype=bool)
        if self.camera_motion and np.any(change[:2]):
            # Tracks seen twice or more are also tried with the camera's change added, for
            # each frame since their last sighting.
            gaps = np.array([frame - track.last_seen if track.hits >= 2 else 0 for track in tracks])
            offset -= change[None, None, :2] * gaps[:, None, None]
            other = np.hypot(offset[..., 0], offset[..., 1])
            shifted = other < distance
            distance = np.minimum(distance, other)
        distance = np.where(similar, distance / track_sizes, np.inf)
        extra = []
        for ti in range(len(tracks)):
            if ti in taken_t:
                continue
            row = distance[ti]
            di = int(row.argmin())
            if di in taken_d or row[di] > self.distance_match:
                continue
            # The runner-up on either side, among all detections and all tracks.
            rivals = min(np.delete(row, di).min(initial=np.inf),
                         np.delete(distance[:, di], ti).min(initial=np.inf))
            if row[di] > AMBIGUITY * rivals:
                continue
            if shifted[ti, di]:
                tracks[ti].velocity[:2] += change[:2]
            extra.append((ti, di))
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
