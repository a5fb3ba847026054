"""Near-duplicates by content: images whose embeddings are almost the same, grouped.

Two images are linked when their cosine similarity reaches the threshold; a group is a connected
set of links (a re-saved copy of a re-saved copy joins the same group). File hashes miss what this
finds: resized, re-compressed or re-exported copies of one image. A group that spans more than one
split is leakage: the same image (or patient) both trained on and tested on.

Links come from the neighbour graph (each image's most similar others), so moving the threshold
costs no new similarity search; a group larger than the graph's ``k + 1`` is still found whole
through chains of links.

Embeddings alone can't always tell a copy from a look-alike: in a dataset of near-identical
pictures (blood cells, 28 px) a re-saved copy scored 0.87-0.96 with its original under the
built-in model, while thousands of pairs of different cells scored as high. ``SamePicture`` then
confirms each link by the pictures themselves: the correlation of 16 x 16 grey thumbnails, which
resizing and JPEG re-compression barely change (>= 0.985 for every planted copy on the bench,
<= 0.96 for every look-alike pair). It catches copies, not other images of the same patient; leave
it out to group by the embeddings alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from clipstudio.engine.data.images import load_image
from clipstudio.engine.errors import ImageError
from clipstudio.engine.explore.neighbours import NeighbourGraph

DEFAULT_DUPLICATE_THRESHOLD = 0.85  # embeddings: low enough for every planted copy, as SamePicture confirms
PICTURE_MATCH = 0.975  # thumbnail correlation of a copy (bench: copies >= 0.985, look-alikes <= 0.96)
_THUMBNAIL = 16

Confirm = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (rows a, rows b) -> bool per pair


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are near-copies of one another."""

    rows: tuple[int, ...]  # row positions, ascending
    min_similarity: float  # the weakest link that holds the group together
    max_similarity: float
    splits: tuple[str, ...]  # the distinct splits of the rows, sorted ("" : no split)
    across_splits: bool  # more than one split: a copy is trained on and tested on


class SamePicture:
    """Confirms pairs of rows as the same picture by their thumbnails; reads each image once, when first asked.

    An unreadable image confirms nothing.
    """

    def __init__(self, paths: Sequence[str | Path], match: float = PICTURE_MATCH) -> None:
        self.paths = list(paths)
        self.match = match
        self._thumbnails: dict[int, np.ndarray | None] = {}

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        for row in set(a.tolist()) | set(b.tolist()):
            if row not in self._thumbnails:
                self._thumbnails[row] = self._thumbnail(self.paths[row])
        out = np.zeros(len(a), bool)
        for i, (ra, rb) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
            ta, tb = self._thumbnails[ra], self._thumbnails[rb]
            out[i] = ta is not None and tb is not None and float(ta @ tb) >= self.match
        return out

    @staticmethod
    def _thumbnail(path: str | Path) -> np.ndarray | None:
        """Unit-length, zero-mean 16 x 16 grey thumbnail (None: unreadable or a flat picture)."""
        try:
            image = load_image(path)
        except (ImageError, OSError):
            return None
        grey = np.asarray(image.convert("L").resize((_THUMBNAIL, _THUMBNAIL), Image.BOX), np.float64).ravel()
        grey -= grey.mean()
        norm = np.linalg.norm(grey)
        return grey / norm if norm > 1e-6 else None


def find_duplicates(
    graph: NeighbourGraph,
    splits: Sequence[str],
    threshold: float = DEFAULT_DUPLICATE_THRESHOLD,
    confirm: Confirm | None = None,
) -> list[DuplicateGroup]:
    """Groups of rows linked by cosine similarity >= ``threshold`` (and ``confirm``, e.g. ``SamePicture``, if given).

    Across-split groups come first, then the most similar. Without ``confirm`` it is instant; with
    ``SamePicture`` it reads the images of the links above ``threshold`` (run it in a worker).
    """
    n = len(graph.indices)
    heads, cols = np.nonzero(graph.similarities >= threshold)
    tails = graph.indices[heads, cols].astype(np.int64)
    sims = graph.similarities[heads, cols]
    if confirm is not None and len(heads):
        same = confirm(heads, tails)
        heads, tails, sims = heads[same], tails[same], sims[same]
    component = _components(n, heads, tails)
    linked = np.unique(np.concatenate([heads, tails]))
    roots = component[heads]
    low = np.ones(n, np.float32)
    high = np.full(n, -1.0, np.float32)
    np.minimum.at(low, roots, sims)
    np.maximum.at(high, roots, sims)
    members: dict[int, list[int]] = {}
    for row, r in zip(linked.tolist(), component[linked].tolist(), strict=True):
        members.setdefault(r, []).append(row)
    groups = []
    for r, rows in members.items():
        names = tuple(sorted({splits[i] for i in rows}))
        groups.append(DuplicateGroup(tuple(rows), float(low[r]), float(high[r]), names, len(names) > 1))
    groups.sort(key=lambda g: (not g.across_splits, -g.max_similarity, g.rows[0]))
    return groups


def _components(n: int, heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """Connected component of each of ``n`` nodes (its smallest member) given edges ``heads[i]-tails[i]``."""
    label = np.arange(n)
    while True:
        low = np.minimum(label[heads], label[tails])
        new = label.copy()
        np.minimum.at(new, heads, low)
        np.minimum.at(new, tails, low)
        while True:  # pointer jumping: follow each label to its own label until nothing changes
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            return label
        label = new
