"""A set of task ids kept in ascending order, for the in-process store's lists.

One sorted Python list would do, but adding or removing an id moves everything after it, and
retention and the memory budget delete the oldest tasks, at the front: in a large store that
is much copying under the store's lock for every task deleted. Here the ids sit in blocks of
at most ``2 * block``, and an add or a removal moves one block's items.
"""

from __future__ import annotations

import bisect


class OrderedIds:
    """Ascending, distinct ids; ``before`` gives a page of them, highest first."""

    def __init__(self, block: int = 512):
        self._block = block
        self._blocks: list[list[int]] = []  # each non-empty and ascending, in order
        self._lasts: list[int] = []  # the last id of each block, for bisect

    def __bool__(self) -> bool:
        return bool(self._blocks)

    def add(self, task_id: int) -> None:
        """Add an id that is not there yet."""
        if not self._blocks:
            self._blocks.append([task_id])
            self._lasts.append(task_id)
            return
        at = min(bisect.bisect_left(self._lasts, task_id), len(self._blocks) - 1)
        block = self._blocks[at]
        bisect.insort(block, task_id)
        self._lasts[at] = block[-1]
        if len(block) > 2 * self._block:
            self._blocks[at:at + 1] = [block[:self._block], block[self._block:]]
            self._lasts[at:at + 1] = [block[self._block - 1], block[-1]]

    def discard(self, task_id: int) -> None:
        """Remove the id if it is there."""
        at = bisect.bisect_left(self._lasts, task_id)
        if at == len(self._blocks):
            return
        block = self._blocks[at]
        index = bisect.bisect_left(block, task_id)
        if index == len(block) or block[index] != task_id:
            return
        del block[index]
        if block:
            self._lasts[at] = block[-1]
        else:  # its neighbours meet
            del self._blocks[at], self._lasts[at]
            at -= 1
            if at < 0:
                return
        # Blocks thinned out by removals merge with a neighbour, so that no two neighbours
        # hold together at most ``block`` ids: there stay few blocks, and a page few to walk.
        if at > 0 and len(self._blocks[at - 1]) + len(self._blocks[at]) <= self._block:
            at -= 1
            self._merge(at)
        if at + 1 < len(self._blocks) and len(self._blocks[at]) + len(self._blocks[at + 1]) \
                <= self._block:
            self._merge(at)

    def _merge(self, at: int) -> None:
        """Make blocks ``at`` and ``at + 1`` one."""
        self._blocks[at:at + 2] = [self._blocks[at] + self._blocks[at + 1]]
        del self._lasts[at]

    def before(self, limit: int, before_id: int | None = None) -> list[int]:
        """Up to ``limit`` ids, highest first, all below ``before_id`` when given."""
        at = len(self._blocks) - 1
        if before_id is not None:
            at = min(bisect.bisect_left(self._lasts, before_id), at)
        page: list[int] = []
        while at >= 0 and len(page) < limit:
            block = self._blocks[at]
            end = len(block) if before_id is None else bisect.bisect_left(block, before_id)
            page.extend(reversed(block[max(0, end - (limit - len(page))):end]))
            at -= 1
        return page
