"""Where the local worlds live: one per-user folder, whatever folder a command runs in.

``WORLDGEN_HOME`` when set, else the platform's per-user data folder (platformdirs'
``user_data_path``: ``~/.local/share/worldgen`` on Linux, following the XDG base directory spec;
``~/Library/Application Support/worldgen`` on macOS; https://github.com/platformdirs/platformdirs).
Before this, the embedded PostgreSQL lived in ``.worldgen/`` of the working directory: one found
there is named on every command and moved by ``worldgen where --move-old``, never silently ignored.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from worldgen.settings import get_settings

OLD_FOLDER = ".worldgen"
PGDATA = "pgdata"


def worldgen_home() -> Path:
    configured = get_settings().home
    if configured is not None:
        return configured.expanduser().resolve()
    import platformdirs  # a dependency of the [local] extra (pgserver's own too)

    return platformdirs.user_data_path("worldgen", appauthor=False).resolve()


def old_database(cwd: Path | None = None) -> Path | None:
    """An embedded database in ``.worldgen/`` of the working directory that is not the home's."""
    folder = (cwd or Path.cwd()) / OLD_FOLDER
    if not (folder / PGDATA).is_dir() or folder.resolve() == worldgen_home():
        return None
    return folder / PGDATA


def old_database_notice() -> str | None:
    """The one line said while an old database waits to be moved (None when there is none)."""
    old = old_database()
    if old is None:
        return None
    return (
        f"note: worlds made before are in {old} (an older place, not used now); "
        f"`worldgen where --move-old` moves them to {worldgen_home()}"
    )


class MoveRefused(Exception):
    """The old database cannot be moved; the message says why and what to do, in one line."""


def move_old_database(cwd: Path | None = None) -> Path:
    """Move ``./.worldgen/pgdata`` into the home; refused while it runs or when the home has one."""
    old = old_database(cwd)
    if old is None:
        raise MoveRefused(f"no older database in {(cwd or Path.cwd()) / OLD_FOLDER}")
    target = worldgen_home() / PGDATA
    if target.exists():
        raise MoveRefused(
            f"{target} already holds a database: export the worlds you want from {old.parent} "
            f"(WORLDGEN_HOME={old.parent} worldgen export ...) and import them, or remove one of the two"
        )
    pid_file = old / "postmaster.pid"
    if pid_file.exists() and _alive(pid_file):
        raise MoveRefused(f"the database in {old} is running: stop the worldgen command that uses it, then move it")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(old), str(target))
    return target


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except PermissionError:  # alive, another user's
        return True
    except (ValueError, IndexError, OSError):  # no such process, or no pid in the file
        return False
    return True
