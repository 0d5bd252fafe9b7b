"""Mean facial anchors for a new dataset, mirror-symmetric by construction.

NPHM's anchors are 39 landmarks of its registered template (16 left/right pairs + 7 on the middle
plane). A folder of artist meshes has no landmarks, so the anchors are spread over the neutral heads'
surface by farthest-point sampling (the whole head: far from every anchor NPHM's blending weights all
vanish): pair anchors on the +x side, each followed by its mirror image (-x, y, z), then the unpaired
ones near the middle plane x = 0, in the order the identity network expects
([a_1, a_1*, a_2, a_2*, ..., middle...]).
"""

from __future__ import annotations

import numpy as np

MIDDLE_BAND = 0.05
"""Points within this fraction of the head width of x = 0 count as on the middle plane."""


def farthest_points(points: np.ndarray, count: int) -> np.ndarray:
    """``count`` points of ``points`` spread out greedily, starting from the frontmost (largest z)."""
    chosen = [int(np.argmax(points[:, 2]))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return points[chosen]


def symmetric_anchors(surface: np.ndarray, anchors: int, symmetric_pairs: int) -> np.ndarray:
    """(anchors, 3) on ``surface`` (points in model space, the face towards +z, first anchor frontmost)."""
    width = np.ptp(surface[:, 0])
    side = surface[surface[:, 0] > MIDDLE_BAND * width]
    middle = surface[np.abs(surface[:, 0]) <= MIDDLE_BAND * width]
    if len(middle) == 0:
        middle = surface[np.argsort(np.abs(surface[:, 0]))[: max(1, len(surface) // 20)]]
    rows = []
    if symmetric_pairs:
        for point in farthest_points(side if len(side) >= symmetric_pairs else surface, symmetric_pairs):
            rows += [point, point * np.array([-1.0, 1.0, 1.0])]
    unpaired = anchors - 2 * symmetric_pairs
    if unpaired:
        centred = farthest_points(middle, unpaired).copy()
        centred[:, 0] = 0.0
        rows += list(centred)
    return np.asarray(rows, dtype=np.float32).reshape(anchors, 3)
