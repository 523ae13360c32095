"""Tracker: identities through crossings, short absences, long absences, new people and empty frames."""

import colorsys

import numpy as np
import pytest

from hrpose_cli.core.schema import COCO17

OKS_SIGMAS = COCO17.oks_sigmas
from hrpose_cli.core.tracking import Tracker, box_iou
from hrpose_cli.viz.colormaps import track_colour

W, H = 60.0, 160.0
# A standing pose in box-relative units (x, y in [0, 1]), one row per COCO joint.
STANDING = np.array([
    [.50, .05], [.45, .03], [.55, .03], [.40, .05], [.60, .05], [.30, .20], [.70, .20], [.25, .35], [.75, .35],
    [.20, .50], [.80, .50], [.38, .55], [.62, .55], [.38, .75], [.62, .75], [.38, .95], [.62, .95],
])
ARMS_UP = STANDING.copy()
ARMS_UP[7:11, 1] = [.05, .05, -.10, -.10]  # elbows and wrists above the head


def person(x: float, y: float, pose: np.ndarray = STANDING, score: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """A box at (x, y) and its keypoints (17, 3)."""
    points = pose * [W, H] + [x, y]
    return np.array([x, y, W, H]), np.concatenate([points, np.full((len(pose), 1), score)], axis=1)


def frame(*people: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack persons into one frame's (N, 4) boxes and (N, 17, 3) keypoints (empty arrays for no one)."""
    if not people:
        return np.zeros((0, 4)), np.zeros((0, len(OKS_SIGMAS), 3))
    return np.stack([p[0] for p in people]), np.stack([p[1] for p in people])


def test_box_iou_hand_checked():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 10]], dtype=float)
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0, 1], [0, 0, 0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_crossing_people_keep_their_ids_whatever_the_detection_order():
    tracker = Tracker(OKS_SIGMAS)
    seen_a, seen_b = set(), set()
    for step in range(26):
        a = person(100 + 8 * step, 100)  # walks right
        b = person(300 - 8 * step, 140)  # walks left, overlapping A's box while they pass
        swap = step % 2 == 1  # the detector's order is arbitrary: the ids must not follow it
        ids = tracker.update(*frame(*((b, a) if swap else (a, b))))
        id_a, id_b = (ids[1], ids[0]) if swap else (ids[0], ids[1])
        seen_a.add(int(id_a))
        seen_b.add(int(id_b))
    assert seen_a == {0} and seen_b == {1}


def test_same_box_the_pose_decides():
    """Two people in the same place: the box IoU ties, the keypoints tell them apart."""
    tracker = Tracker(OKS_SIGMAS)
    first = tracker.update(*frame(person(100, 100, STANDING), person(103, 100, ARMS_UP)))
    second = tracker.update(*frame(person(101, 100, ARMS_UP), person(102, 100, STANDING)))
    assert first.tolist() == [0, 1]
    assert second.tolist() == [1, 0]


@pytest.mark.parametrize("max_missed", [0, 2, 5])
def test_absence_up_to_max_missed_keeps_the_id_and_longer_ends_the_track(max_missed):
    tracker = Tracker(OKS_SIGMAS, max_missed=max_missed)
    here = frame(person(100, 100))
    assert tracker.update(*here).tolist() == [0]
    for _ in range(2):  # a match resets the count: two absences of max_missed frames each are both bridged
        for _ in range(max_missed):
            assert tracker.update(*frame()).tolist() == []
        assert tracker.update(*here).tolist() == [0]
    for _ in range(max_missed + 1):
        tracker.update(*frame())
    assert tracker.update(*here).tolist() == [1]


def test_new_person_gets_a_new_id_and_ids_are_never_reused():
    tracker = Tracker(OKS_SIGMAS, max_missed=1)
    assert tracker.update(*frame(person(100, 100))).tolist() == [0]
    assert tracker.update(*frame(person(400, 100), person(102, 100))).tolist() == [1, 0]
    tracker.update(*frame(person(400, 100)))
    tracker.update(*frame(person(400, 100)))  # track 0 has now missed 2 > max_missed frames and is gone
    assert tracker.update(*frame(person(102, 100), person(400, 100))).tolist() == [2, 1]


def test_a_jump_below_min_similarity_is_a_new_person():
    tracker = Tracker(OKS_SIGMAS)
    tracker.update(*frame(person(100, 100)))
    assert tracker.update(*frame(person(100 + 0.9 * W, 100))).tolist() == [1]  # IoU 0.05, joints far off


def test_one_detection_goes_to_the_more_similar_track():
    tracker = Tracker(OKS_SIGMAS)
    tracker.update(*frame(person(100, 100), person(130, 100)))
    assert tracker.update(*frame(person(128, 100))).tolist() == [1]


def test_a_track_takes_at_most_one_detection():
    tracker = Tracker(OKS_SIGMAS)
    tracker.update(*frame(person(100, 100)))
    assert tracker.update(*frame(person(104, 100), person(101, 100))).tolist() == [1, 0]


def test_empty_frames():
    tracker = Tracker(OKS_SIGMAS)
    ids = tracker.update(*frame())
    assert ids.shape == (0,) and ids.dtype == np.int64
    assert tracker.update(np.zeros((0, 4)), np.zeros((0,))).tolist() == []
    assert tracker.update(*frame(person(100, 100))).tolist() == [0]
    assert tracker.update(*frame()).tolist() == []
    assert tracker.update(*frame(person(101, 100))).tolist() == [0]


def test_low_scoring_joints_do_not_count():
    """Joints below the threshold are ignored; with none left the similarity is the box IoU alone."""
    box, keypoints = person(100, 100)
    guessed = keypoints.copy()
    guessed[:, :2] += 200  # wildly wrong, but scored low
    guessed[:, 2] = 0.1
    tracker = Tracker(OKS_SIGMAS, min_similarity=0.9)  # IoU 1 passes; IoU 1 with OKS ~0 (0.5) would not
    tracker.update(box[None], keypoints[None])
    assert tracker.update(box[None], guessed[None]).tolist() == [0]
    strict = Tracker(OKS_SIGMAS, min_similarity=0.9, joint_threshold=0.05)  # now the guesses count
    strict.update(box[None], keypoints[None])
    assert strict.update(box[None], guessed[None]).tolist() == [1]


def test_other_keypoint_sets_use_their_own_sigmas():
    sigmas = np.full(5, 0.05)
    tracker = Tracker(sigmas)
    box = np.array([[10, 10, 50, 50]], dtype=float)
    keypoints = np.array([[[20, 20, 1], [30, 20, 1], [40, 20, 1], [30, 40, 1], [30, 55, 1]]], dtype=float)
    assert tracker.update(box, keypoints).tolist() == [0]
    assert tracker.update(box + [1, 0, 0, 0], keypoints + [1, 0, 0]).tolist() == [0]
    with pytest.raises(ValueError):
        tracker.update(box, np.zeros((1, 17, 3)))


def test_mismatched_inputs_are_errors():
    with pytest.raises(ValueError, match="2 boxes for 1 persons"):
        Tracker(OKS_SIGMAS).update(np.zeros((2, 4)), np.zeros((1, 17, 3)))


def test_deterministic():
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(30):
        count = int(rng.integers(0, 5))
        frames.append(frame(*(person(*rng.uniform(0, 300, 2)) for _ in range(count))))
    trackers = [Tracker(OKS_SIGMAS), Tracker(OKS_SIGMAS)]
    runs = [[tracker.update(*f).tolist() for f in frames] for tracker in trackers]
    assert runs[0] == runs[1]
    assert max(max(ids, default=-1) for ids in runs[0]) >= 5  # random people far apart do get new ids


def test_track_colours_are_stable_and_well_separated():
    colours = [track_colour(i) for i in range(8)]
    assert colours == [track_colour(i) for i in range(8)]
    assert all(isinstance(c, int) and 0 <= c <= 255 for colour in colours for c in colour)
    hues = np.sort([colorsys.rgb_to_hsv(*(np.array(colour) / 255))[0] for colour in colours])
    gaps = np.diff(np.r_[hues, hues[0] + 1])
    assert gaps.min() > 0.08  # the first 8 ids are at least ~30 degrees of hue apart


def test_fast_walker_is_followed_by_its_velocity():
    """A narrow person speeding up to 70% of its box width per frame overlaps its last box too little to be
    matched there; matched where its velocity says it will be, it keeps one id, also across a missed frame."""
    tracker = Tracker(OKS_SIGMAS)
    ids, x = [], 100.0
    for step in range(14):
        x += min(0.7, 0.2 + 0.1 * step) * W
        if step == 9:
            tracker.update(*frame())  # the detector misses it once
            continue
        ids.extend(tracker.update(*frame(person(x, 100))).tolist())
    assert set(ids) == {0}
