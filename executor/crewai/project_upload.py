"""Reading an uploaded CrewAI project: a zip checked before anything is unpacked, or its two YAML files.

A zip is never extracted to disk. Before any member is read, every path is checked (no
`..`, no absolute paths), the member count is capped and the sizes the zip claims are
capped one by one and in all (a zip bomb is refused, not unpacked). The few files an
import reads (the two YAML files, `crew.py`, `main.py`, `pyproject.toml`) are then read
with a cap of their own, so a member that unpacks to more than it claims is refused too.
Every refusal is an `InvalidInput` saying what is wrong with the upload.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from core.errors import InvalidInput

MiB = 1024 * 1024
#: Largest upload an import reads (a zip, or the two YAML files together).
MAX_UPLOAD_BYTES = 20 * MiB
#: Largest single file an import reads out of an upload (YAML, `crew.py`, ...).
MAX_FILE_BYTES = 2 * MiB
MAX_MEMBERS = 1000
#: What a zip may claim its members unpack to, each and in all (more is a zip bomb).
MAX_MEMBER_BYTES = 50 * MiB
MAX_UNPACKED_BYTES = 200 * MiB


@dataclass(frozen=True, slots=True)
class ProjectFiles:
    """The text of the files an import reads; the paths are where they were found (for messages)."""

    agents: str
    tasks: str
    crew_py: str | None = None
    main_py: str | None = None
    pyproject: str | None = None
    agents_path: str = "agents.yaml"
    tasks_path: str = "tasks.yaml"
    source_name: str = ""


@dataclass(frozen=True, slots=True)
class ProjectUpload:
    """What was uploaded: a zipped project (`archive`), or its `agents.yaml` and `tasks.yaml`."""

    archive: bytes | IO[bytes] | None = None
    archive_name: str = ""
    agents: bytes | None = None
    tasks: bytes | None = None

    def read(self) -> ProjectFiles:
        """The project's files; `InvalidInput` when the upload is not a project (see the module docstring)."""
        if self.archive is not None:
            if self.agents is not None or self.tasks is not None:
                raise InvalidInput("upload either a zipped project or agents.yaml and tasks.yaml, not both")
            return read_archive(self.archive, self.archive_name)
        if self.agents is None or self.tasks is None:
            raise InvalidInput(
                "upload a zipped CrewAI project, or both its config/agents.yaml and config/tasks.yaml",
                field="agents" if self.agents is None else "tasks",
            )
        if len(self.agents) + len(self.tasks) > MAX_UPLOAD_BYTES:
            raise InvalidInput(f"the upload is larger than {MAX_UPLOAD_BYTES // MiB} MiB; upload a smaller project")
        return ProjectFiles(
            agents=_decode(_capped(self.agents, "agents.yaml"), "agents.yaml"),
            tasks=_decode(_capped(self.tasks, "tasks.yaml"), "tasks.yaml"),
        )


def _capped(data: bytes, path: str) -> bytes:
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_FILE_BYTES // MiB} MiB; a crew's configuration is far smaller")
    return data


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc


def read_archive(source: bytes | IO[bytes], name: str = "") -> ProjectFiles:
    """The project files in a zip, which is checked before anything is unpacked and never extracted to disk."""
    stream: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
    stream.seek(0, io.SEEK_END)
    if stream.tell() > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"the upload is larger than {MAX_UPLOAD_BYTES // MiB} MiB; upload a smaller project")
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidInput(
            "the upload is not a zip archive; upload a zipped CrewAI project, or agents.yaml and tasks.yaml"
        ) from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise InvalidInput(f"the zip has {len(infos)} members, more than the {MAX_MEMBERS} a project may have")
        files: dict[str, zipfile.ZipInfo] = {}
        unpacked = 0
        for info in infos:
            path = _safe_path(info.filename)
            unpacked += info.file_size
            if info.file_size > MAX_MEMBER_BYTES or unpacked > MAX_UNPACKED_BYTES:
                raise InvalidInput(
                    f"the zip unpacks to more than {MAX_UNPACKED_BYTES // MiB} MiB, or '{_shown(path)}' to more "
                    f"than {MAX_MEMBER_BYTES // MiB} MiB; that is not a crew project (a zip bomb?)"
                )
            if not info.is_dir():
                files[path] = info
        config = _config_dir(files)
        package = config.rsplit("/", 1)[0] if "/" in config else ""

        def member(path: str) -> str | None:
            info = files.get(path)
            return None if info is None else _read_member(archive, info, path)

        agents_path = _yaml_in(files, config, "agents")
        tasks_path = _yaml_in(files, config, "tasks")
        pyprojects = sorted((p for p in files if p == "pyproject.toml" or p.endswith("/pyproject.toml")), key=len)
        return ProjectFiles(
            agents=member(agents_path) or "",
            tasks=member(tasks_path) or "",
            crew_py=member(f"{package}/crew.py" if package else "crew.py"),
            main_py=member(f"{package}/main.py" if package else "main.py"),
            pyproject=member(pyprojects[0]) if pyprojects else None,
            agents_path=agents_path,
            tasks_path=tasks_path,
            source_name=name,
        )


def _shown(path: str) -> str:
    return path if len(path) <= 80 else path[:77] + "..."


def _safe_path(raw: str) -> str:
    """The member's path with `/` separators; `InvalidInput` for one that would leave the archive."""
    path = raw.replace("\\", "/")
    parts = path.split("/")
    if "\x00" in path or path.startswith("/") or re.match(r"^[A-Za-z]:", path) or ".." in parts:
        raise InvalidInput(
            f"the zip has an unsafe path {_shown(path)!r}: members must stay inside the archive "
            "(no '..', no absolute paths); zip the project folder itself"
        )
    return path.strip("/")


def _config_dir(files: Mapping[str, zipfile.ZipInfo]) -> str:
    """The folder holding both agents.yaml and tasks.yaml, preferring one named `config`."""
    folders: dict[str, set[str]] = {}
    for path in files:
        folder, _, leaf = path.rpartition("/")
        if leaf in {"agents.yaml", "agents.yml", "tasks.yaml", "tasks.yml"}:
            folders.setdefault(folder, set()).add(leaf.split(".")[0])
    complete = [folder for folder, kinds in folders.items() if kinds == {"agents", "tasks"}]
    configs = [folder for folder in complete if folder == "config" or folder.endswith("/config")] or complete
    if not configs:
        missing = (
            "config/agents.yaml" if not any("agents" in kinds for kinds in folders.values()) else "config/tasks.yaml"
        )
        raise InvalidInput(
            f"the zip has no {missing} (with its partner in the same folder); a CrewAI project keeps "
            "config/agents.yaml and config/tasks.yaml beside crew.py"
        )
    if len(configs) > 1:
        raise InvalidInput(
            f"the zip holds {len(configs)} projects ({', '.join(sorted(configs)[:3])}); upload one project at a time"
        )
    return configs[0]


def _yaml_in(files: Mapping[str, zipfile.ZipInfo], folder: str, kind: str) -> str:
    for suffix in ("yaml", "yml"):
        path = f"{folder}/{kind}.{suffix}" if folder else f"{kind}.{suffix}"
        if path in files:
            return path
    raise InvalidInput(f"the zip has no {kind}.yaml in {folder or 'its top folder'}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> str:
    if info.flag_bits & 0x1:
        raise InvalidInput(f"{path} in the zip is encrypted; upload the project without a password")
    try:
        with archive.open(info) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
        raise InvalidInput(f"{path} cannot be read from the zip ({type(exc).__name__}); zip the project again") from exc
    return _decode(_capped(data, path), path)
