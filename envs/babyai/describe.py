"""What a BabyAI agent sees, as data (`View`) and as AgentGym-style text (`render`).

`scan_view` reads the agent's partial view (minigrid's 7x7 egocentric grid, walls
occluding) and lists the visible objects with their absolute cell, their position
relative to the agent in steps, and a label that numbers same-looking objects from
the nearest ("red ball 1", "red ball 2"); doors are numbered per colour, whatever
their state. The labels are what the high-level actions name.
"""

from __future__ import annotations

from dataclasses import dataclass

from minigrid.minigrid_env import MiniGridEnv

OBJECT_TYPES = ("ball", "key", "box", "door")
DIR_VECTORS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # minigrid's agent_dir 0..3


@dataclass(frozen=True)
class SeenObject:
    """A visible object: `label` names it in actions ("red door 1")."""

    label: str
    type: str
    color: str
    state: str  # "open" / "closed" / "locked" for doors, "" otherwise
    pos: tuple[int, int]
    forward: int
    right: int

    @property
    def name(self) -> str:
        """How the text calls it: "red ball 1", "red door 1 (closed)"."""
        return f"{self.label} ({self.state})" if self.state else self.label


@dataclass(frozen=True)
class View:
    objects: tuple[SeenObject, ...]
    cells: tuple[tuple[int, int], ...]  # absolute cells in view, for the agent's map
    wall_ahead: int | None  # steps to the wall straight ahead, if nothing nearer hides it
    wall_left: bool
    wall_right: bool
    standing_in: str | None  # "red door" when the agent stands in an open doorway

    def by_label(self) -> dict[str, SeenObject]:
        return {obj.label: obj for obj in self.objects}


def scan_view(env: MiniGridEnv) -> View:
    """The objects and walls the agent sees now (occlusion as minigrid computes it)."""
    grid, vis_mask = env.gen_obs_grid()
    size = env.agent_view_size
    half = size // 2
    ax, ay = env.agent_pos
    fx, fy = DIR_VECTORS[env.agent_dir]
    rx, ry = -fy, fx
    width, height = env.width, env.height
    found = []
    cells = []
    view_cells = grid.grid
    for j in range(size):
        forward = size - 1 - j
        for i in range(size):
            if not vis_mask[i, j]:
                continue
            right = i - half
            x, y = ax + forward * fx + right * rx, ay + forward * fy + right * ry
            if not (0 <= x < width and 0 <= y < height):
                continue
            cells.append((x, y))
            if forward == 0 and right == 0:
                continue  # the agent's own cell shows what it carries
            cell = view_cells[j * size + i]
            if cell is not None and cell.type in OBJECT_TYPES:
                found.append((abs(forward) + abs(right), forward, right, cell, (x, y)))
    found.sort(key=lambda item: item[:3])
    counts: dict[str, int] = {}
    objects = []
    for _, forward, right, cell, pos in found:
        kind = f"{cell.color} {cell.type}"
        counts[kind] = counts.get(kind, 0) + 1
        state = ""
        if cell.type == "door":
            state = "open" if cell.is_open else "locked" if cell.is_locked else "closed"
        objects.append(
            SeenObject(f"{kind} {counts[kind]}", cell.type, cell.color, state, pos, forward, right)
        )

    def is_wall(i: int, j: int) -> bool:
        cell = view_cells[j * size + i]
        return bool(vis_mask[i, j]) and cell is not None and cell.type == "wall"

    wall_ahead = None
    for j in range(size - 2, -1, -1):
        if not vis_mask[half, j]:
            break
        cell = view_cells[j * size + half]
        if cell is not None and not (cell.type == "door" and cell.is_open):
            wall_ahead = size - 1 - j if cell.type == "wall" else None
            break
    here = env.grid.get(ax, ay)
    standing_in = f"{here.color} door" if here is not None and here.type == "door" else None
    return View(
        tuple(objects),
        tuple(cells),
        wall_ahead,
        is_wall(half - 1, size - 1),
        is_wall(half + 1, size - 1),
        standing_in,
    )


def steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def relative_position(forward: int, right: int) -> str:
    """'2 steps forward and 1 step to your left'."""
    parts = []
    if forward:
        parts.append(f"{steps(forward)} forward")
    if right:
        parts.append(f"{steps(abs(right))} to your {'right' if right > 0 else 'left'}")
    return " and ".join(parts)


def render(
    mission: str,
    view: View,
    carrying: str | None,
    actions: list[str],
    feedback: str = "",
) -> str:
    """The observation text: feedback, mission, objects, walls, carried item, actions."""
    lines = [feedback] if feedback else []
    lines.append(f"Your goal: {mission}")
    if view.objects:
        lines.append("You see:")
        lines.extend(f"- a {obj.name}, {relative_position(obj.forward, obj.right)}" for obj in view.objects)
    else:
        lines.append("You see no objects.")
    walls = []
    if view.wall_ahead is not None:
        walls.append(f"a wall {steps(view.wall_ahead)} ahead of you")
    if view.wall_left:
        walls.append("a wall directly to your left")
    if view.wall_right:
        walls.append("a wall directly to your right")
    if walls:
        lines.append("There is " + ", ".join(walls) + ".")
    if view.standing_in:
        lines.append(f"You are standing in the open {view.standing_in}.")
    lines.append(f"You are carrying a {carrying}." if carrying else "You are not carrying anything.")
    lines.append("Available actions: " + ", ".join(actions))
    return "\n".join(lines)
