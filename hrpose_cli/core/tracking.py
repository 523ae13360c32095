"""Person identities across video frames: greedy matching on box IoU and keypoint OKS, pure numpy.

Top-down pose estimation sees each frame alone; a tracker gives the same person the same ``track_id`` from
frame to frame so that JSON-lines records can be joined over time and skeletons drawn in a stable colour.
Each track is matched where it is expected to be: its last detection moved on by its recent velocity
(constant velocity, smoothed), because a walking person's narrow box can shift by half its width between
frames at 10 fps and would otherwise overlap its own next box too little. A track that misses a few frames
(occlusion, a missed detection) keeps moving at that velocity and is matched there. Track ids start at 0, like the frame index, and are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hrpose_cli.core.oks import oks_matrix


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``boxes_a`` (A, 4) with every box in ``boxes_b`` (B, 4), COCO
    x, y, w, h; (A, B). Boxes without area overlap nothing (IoU 0), so a degenerate box never divides by zero."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    ax0, ay0, aw, ah = (a[:, None, i] for i in range(4))
    bx0, by0, bw, bh = (b[None, :, i] for i in range(4))
    inter_w = np.clip(np.minimum(ax0 + aw, bx0 + bw) - np.maximum(ax0, bx0), 0.0, None)
    inter_h = np.clip(np.minimum(ay0 + ah, by0 + bh) - np.maximum(ay0, by0), 0.0, None)
    inter = inter_w * inter_h
    union = np.clip(aw, 0.0, None) * np.clip(ah, 0.0, None) + np.clip(bw, 0.0, None) * np.clip(bh, 0.0, None) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class _Track:
    """One person's identity and its last matched detection (the reference for the next frames)."""

    track_id: int
    box: np.ndarray  # (4,) x, y, w, h
    keypoints: np.ndarray  # (J, 3) x, y, score
    missed: int = 0  # consecutive frames without a match
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # box centre, pixels per frame

    def expected(self) -> tuple[np.ndarray, np.ndarray]:
        """Box and keypoints where the person should be now, ``missed + 1`` frames after the last match."""
        shift = self.velocity * (self.missed + 1)
        box = self.box.copy()
        box[:2] += shift
        keypoints = self.keypoints.copy()
        keypoints[:, :2] += shift
        return box, keypoints

    def matched(self, box: np.ndarray, keypoints: np.ndarray, smoothing: float = 0.5) -> None:
        step = (box[:2] + box[2:] / 2 - self.box[:2] - self.box[2:] / 2) / (self.missed + 1)
        self.velocity = smoothing * self.velocity + (1.0 - smoothing) * step
        self.box, self.keypoints, self.missed = box, keypoints, 0


class Tracker:
    """Assigns track ids to the persons of consecutive frames; call ``update`` once per frame, in order.

    Similarity of a track and a detection is ``iou_weight * IoU + (1 - iou_weight) * OKS``. The OKS takes the
    track's last keypoints as the reference, its box area as the scale, and only joints scoring above
    ``joint_threshold`` in both poses, because a guessed joint says nothing about identity; with no such joint
    the similarity is the IoU alone. Both are measured where the track is expected (see the module docstring). Pairs are taken greedily, most similar first, while at least
    ``min_similarity``; ties go to the older track, then to the earlier detection, so results are deterministic.
    A track unmatched for more than ``max_missed`` consecutive frames ends, and whoever appears there later gets
    a new id.
    """

    def __init__(self, sigmas: np.ndarray, max_missed: int = 5, min_similarity: float = 0.2,
                 iou_weight: float = 0.5, joint_threshold: float = 0.3) -> None:
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        if not 0.0 <= iou_weight <= 1.0:
            raise ValueError(f"iou_weight must be in [0, 1], got {iou_weight}")
        self.sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        self.max_missed = max_missed
        self.min_similarity = min_similarity
        self.iou_weight = iou_weight
        self.joint_threshold = joint_threshold
        self._tracks: list[_Track] = []  # oldest first, which is what breaks similarity ties
        self._next_id = 0

    def update(self, boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Track ids (N,) int64 for one frame's persons: ``boxes`` (N, 4) x, y, w, h and ``keypoints`` (N, J, 3)
        x, y, score in image pixels. An empty frame (N = 0) counts as a missed frame for every track."""
        joints = len(self.sigmas)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, joints, 3)
        if len(boxes) != len(keypoints):
            raise ValueError(f"{len(boxes)} boxes for {len(keypoints)} persons")

        ids = np.full(len(boxes), -1, dtype=np.int64)
        matched: set[int] = set()
        similarity = self._similarity(boxes, keypoints)
        order = np.argsort(-similarity, axis=None, kind="stable")  # row-major: older track first on ties
        for t, d in zip(*(index.tolist() for index in np.unravel_index(order, similarity.shape))):
            if similarity[t, d] < self.min_similarity:
                break
            if t in matched or ids[d] >= 0:
                continue
            track = self._tracks[t]
            track.matched(boxes[d], keypoints[d])
            ids[d] = track.track_id
            matched.add(t)

        for t, track in enumerate(self._tracks):
            if t not in matched:
                track.missed += 1
        self._tracks = [track for track in self._tracks if track.missed <= self.max_missed]
        for d in np.flatnonzero(ids < 0):
            self._tracks.append(_Track(self._next_id, boxes[d], keypoints[d]))
            ids[d] = self._next_id
            self._next_id += 1
        return ids

    def _similarity(self, boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """(tracks, detections) weighted IoU + OKS; IoU alone for pairs without a joint confident in both."""
        if not self._tracks or not len(boxes):
            return np.zeros((len(self._tracks), len(boxes)))
        expected = [track.expected() for track in self._tracks]
        similarity = box_iou(np.stack([box for box, _ in expected]), boxes)
        confident = keypoints[..., 2] > self.joint_threshold
        for t, (box, reference_keypoints) in enumerate(expected):
            area = np.array([max(box[2], 0.0) * max(box[3], 0.0)])
            for d in range(len(boxes)):
                shared = (reference_keypoints[:, 2] > self.joint_threshold) & confident[d]
                if not shared.any():
                    continue
                # oks_matrix counts the reference's labelled joints (v > 0): label exactly the shared ones.
                reference = np.concatenate([reference_keypoints[:, :2], shared[:, None].astype(np.float64)], axis=1)
                oks = oks_matrix(reference[None], area, box[None], keypoints[d][None], self.sigmas)[0, 0]
                similarity[t, d] = self.iou_weight * similarity[t, d] + (1.0 - self.iou_weight) * oks
        return similarity
