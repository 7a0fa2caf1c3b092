"""The NPC role rules: which rows give an NPC a role, how many roles one NPC may hold, and how the
phases that hand out roles side by side share that room.

Read by those who plan a world's cast (the parts of a phase, the offline model, the simulator) and
by the audit that judges it; the rules depend on the phase registry alone.
"""

from __future__ import annotations

import math
import zlib

from worldgen.phases import PHASES, ancestors

ROLE_LIMIT = 3  # an NPC with more roles (ruler, owner, priest, quest giver, ...) is overloaded
# The tables whose rows give an NPC a role (a foreign key to entities outside the relationship
# tables), for those who plan a world's cast: the audit itself reads them from the catalog, and a
# test checks this declaration against it.
ROLE_TABLES = frozenset({"locations", "dungeons", "buildings", "quest_hooks", "shops", "taverns", "temples"})


def role_phases_beside(phase_id: str) -> tuple[str, ...]:
    """The phases handing out NPC roles side by side with ``phase_id`` (it included, in registry
    order): none runs before or after another, so none sees the roles the others give."""
    return tuple(
        phase.id
        for phase in PHASES
        if ROLE_TABLES.intersection(phase.tables)
        and (phase.id == phase_id or (phase.id not in ancestors(phase_id) and phase_id not in ancestors(phase.id)))
    )


def role_room(phase_id: str, npc: str, roles: int) -> int:
    """The new roles ``phase_id`` may give ``npc`` (holding ``roles``): its room up to ROLE_LIMIT,
    shared between the phases beside it, the odd unit going to one of them by the NPC's key."""
    group = role_phases_beside(phase_id)
    room = max(0, ROLE_LIMIT - roles)
    share, extra = divmod(room, len(group))
    rank = group.index(phase_id) if phase_id in group else 0
    return share + (1 if (zlib.crc32(npc.encode()) + rank) % len(group) < extra else 0)


def cast_for_roles(role_rows: int) -> int:
    """The NPCs a world needs for ``role_rows`` roles: two roles each on average, which leaves every
    NPC a role of room for the phases that hand out roles side by side (3A and 3B do not see each
    other's rows)."""
    return math.ceil(role_rows / (ROLE_LIMIT - 1))
