"""Graph algorithms the flow checks share: strongly connected components (which nodes loop together) and
shortest paths (to name a loop or a call cycle)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence


def strongly_connected(nodes: Iterable[str], successors: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The strongly connected components of the graph, each a list of node ids (Tarjan's algorithm,
    without recursion, so a long chain cannot exhaust the stack). A node alone in its component loops
    only if it has an edge to itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = successors.get(node, ())
            if position < len(targets):
                work.append((node, position + 1))
                target = targets[position]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                components.append(group)
    return components


def shortest_path(start: str, goal: str, successors: Mapping[str, Iterable[str]]) -> list[str] | None:
    """The shortest path from `start` to `goal`, both included (breadth first, successors in the order
    given), or None when `goal` cannot be reached."""
    came_from: dict[str, str | None] = {start: None}
    pending = deque([start])
    while pending:
        current = pending.popleft()
        if current == goal:
            path: list[str] = []
            step: str | None = current
            while step is not None:
                path.append(step)
                step = came_from[step]
            return path[::-1]
        for target in successors.get(current, ()):
            if target not in came_from:
                came_from[target] = current
                pending.append(target)
    return None
