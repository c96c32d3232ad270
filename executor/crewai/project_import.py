"""Planning an import: the agents, tasks and crew an uploaded CrewAI project describes, matched to a workspace.

`plan_import` is pure: it reads the project's files (`project_upload.ProjectFiles`) and
what the tenant has (`Workspace`), and returns the records to create, each with a fresh
id, plus an `ImportNote` for everything that was not taken over as it was: an unknown key
(`callback`, `human_input`, ...), a tool the workspace does not have, a model no provider
of the workspace offers (the agent then uses the workspace's default model), a name that
had to change. A name that is taken in the workspace is not refused: the record is
imported under the first free name with a suffix (`researcher_2`), and a note says so.

`InvalidInput` (nothing is created) for malformed YAML, YAML that is not a mapping of
records, a task naming an agent or context task the project does not define, a value of
the wrong kind, and a hierarchical crew (tasks without an agent) with no manager model.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ValidationError

from core.crew_specs import NAME_PATTERN, AgentSpec, CrewSpec, Process, TaskSpec
from core.errors import InvalidInput, Problem, problems_of
from executor.crewai.project_sources import CrewPy, read_crew_module, read_inputs, read_pyproject
from executor.crewai.project_upload import ProjectFiles

#: The prefix CrewAI (and LiteLLM) give a model of each provider kind.
LLM_PREFIX = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure",
    "ollama": "ollama",
    "openai_compatible": "openai",
    "local": "openai",
}
AGENT_KEYS = frozenset(
    {"role", "goal", "backstory", "llm", "tools", "allow_delegation", "max_iter", "max_execution_time", "verbose"}
)
TASK_KEYS = frozenset({"description", "expected_output", "agent", "context", "output_file"})
_TASK_TEXTS = ("description", "expected_output")


class ProviderInfo(Protocol):
    """What export and import need of a provider (`core.providers.ProviderView` fits)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def models(self) -> list[str]: ...


class ImportNote(BaseModel):
    """One thing of the upload that was not imported as it was, and why: which file, which record, which key."""

    file: str
    item: str | None = None
    field: str | None = None
    message: str


class ImportedRecord(BaseModel):
    """A record an import created: its id, its name, and its key in the upload (when it was renamed)."""

    id: uuid.UUID
    name: str
    source: str


class ImportReport(BaseModel):
    """What an import created, and every note on what it could not map."""

    crew_id: uuid.UUID
    crew_name: str
    process: Process
    agents: list[ImportedRecord]
    tasks: list[ImportedRecord]
    notes: list[ImportNote]


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """Choices an import takes from the caller: the crew's name, and a hierarchical crew's manager model."""

    name: str | None = None
    manager_provider_id: uuid.UUID | None = None
    manager_model: str | None = None


@dataclass(frozen=True)
class Workspace:
    """What the tenant has, for matching and renaming: record names, tools by name, providers."""

    agent_names: frozenset[str] = frozenset()
    task_names: frozenset[str] = frozenset()
    crew_names: frozenset[str] = frozenset()
    tools: Mapping[str, uuid.UUID] = field(default_factory=dict)
    providers: Sequence[ProviderInfo] = ()


@dataclass
class ImportPlan:
    """The records an import would create (fresh ids), their keys in the upload, and the notes."""

    agents: dict[uuid.UUID, AgentSpec]
    tasks: dict[uuid.UUID, TaskSpec]
    crew: CrewSpec
    sources: dict[uuid.UUID, str]
    notes: list[ImportNote]


def plan_import(files: ProjectFiles, workspace: Workspace, options: ImportOptions = ImportOptions()) -> ImportPlan:
    """The records `files` describe, matched to `workspace`; pure (no storage). `InvalidInput` as documented above."""
    notes: list[ImportNote] = []
    agents_raw = _mapping(files.agents, files.agents_path, "agent")
    tasks_raw = _mapping(files.tasks, files.tasks_path, "task")
    module = read_crew_module(files.crew_py) if files.crew_py is not None else None
    if module is not None:
        notes += [ImportNote(file="crew.py", item=n.item, field=n.field, message=n.message) for n in module.notes]
    agent_keys = _ordered(list(agents_raw), module.agents if module else [])
    task_keys = _ordered(list(tasks_raw), module.tasks if module else [])
    if module is not None:
        manager = module.manager_agent
        notes += [
            ImportNote(file="crew.py", item=key, message="has no @agent method in crew.py; added to the crew")
            for key in agent_keys
            if module.agents and key not in module.agents and key != manager
        ]
        notes += [
            ImportNote(file="crew.py", item=key, message="has no @task method in crew.py; added at the end of the crew")
            for key in task_keys
            if module.tasks and key not in module.tasks
        ]

    taken_agents = set(workspace.agent_names)
    taken_tasks = set(workspace.task_names)
    agent_ids: dict[str, uuid.UUID] = {key: uuid.uuid4() for key in agent_keys}
    task_ids: dict[str, uuid.UUID] = {key: uuid.uuid4() for key in task_keys}
    agents: dict[uuid.UUID, AgentSpec] = {}
    tasks: dict[uuid.UUID, TaskSpec] = {}
    sources: dict[uuid.UUID, str] = {}
    problems: list[Problem] = []
    for key in agent_keys:
        name = _record_name(key, "agent", taken_agents, files.agents_path, notes)
        values = _agent_values(key, agents_raw[key], files.agents_path, workspace, notes)
        if module is not None:
            values |= module.agent_overrides.get(key, {})
        spec = _validated(AgentSpec, {"name": name, **values}, files.agents_path, key, problems)
        if spec is not None:
            agents[agent_ids[key]] = spec
            sources[agent_ids[key]] = key
    for key in task_keys:
        name = _record_name(key, "task", taken_tasks, files.tasks_path, notes)
        values = _task_values(key, tasks_raw[key], files.tasks_path, agent_ids, task_ids, module, notes)
        if module is not None:
            values |= module.task_overrides.get(key, {})
        spec = _validated(TaskSpec, {"name": name, **values}, files.tasks_path, key, problems)
        if spec is not None:
            tasks[task_ids[key]] = spec
            sources[task_ids[key]] = key
    if problems:
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
        raise InvalidInput(f"the project's records are not valid: {summary}", problems=problems)

    crew = _crew_spec(files, module, agent_ids, task_ids, tasks, workspace, options, notes)
    return ImportPlan(agents=agents, tasks=tasks, crew=crew, sources=sources, notes=notes)


def _mapping(text: str, path: str, kind: str) -> dict[str, dict[str, Any]]:
    """The YAML file as `{key: settings}`; `InvalidInput` naming the line of a syntax error."""
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506  # a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        reason = getattr(exc, "problem", None) or type(exc).__name__
        raise InvalidInput(f"{path} is not valid YAML{where}: {reason}", field=path) from exc
    except RecursionError as exc:
        raise InvalidInput(f"{path} is nested too deeply to read", field=path) from exc
    if not isinstance(data, dict):
        shown = "empty" if data is None else f"a {type(data).__name__}"
        raise InvalidInput(
            f"{path} must map each {kind}'s name to its settings (e.g. researcher: {{role: ...}}), but it is {shown}",
            field=path,
        )
    if not data:
        raise InvalidInput(f"{path} defines no {kind}; a crew needs at least one", field=path)
    found: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if not isinstance(value, dict):
            raise InvalidInput(
                f"{path}: {kind} {str(key)!r} must be a mapping of its settings, not a {type(value).__name__}",
                field=f"{path}:{key}",
            )
        found[str(key)] = value
    return found


def _ordered(keys: list[str], preferred: Sequence[str]) -> list[str]:
    """`keys` in the order of `preferred` (crew.py's methods) first, then in their own order."""
    first = [key for key in preferred if key in keys]
    return first + [key for key in keys if key not in first]


def snake_name(raw: str, fallback: str) -> str:
    """`raw` as a record name (snake_case, a letter first, at most 64 characters)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", raw.strip())
    text = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not text or not text[0].isalpha():
        text = f"{fallback}_{text}".strip("_")
    return text[:64].rstrip("_")


def free_name(name: str, taken: set[str]) -> str:
    """`name`, or with the first free `_2`, `_3`... suffix (still at most 64 characters)."""
    if name not in taken:
        return name
    number = 2
    while True:
        suffix = f"_{number}"
        candidate = name[: 64 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        number += 1


def _record_name(key: str, kind: str, taken: set[str], path: str, notes: list[ImportNote]) -> str:
    name = key if NAME_PATTERN.match(key) else snake_name(key, kind)
    if name != key:
        notes.append(ImportNote(file=path, item=key, field="name", message=f"not snake_case; imported as '{name}'"))
    chosen = free_name(name, taken)
    if chosen != name:
        article = "an" if kind[0] in "aeiou" else "a"
        message = f"{article} {kind} named '{name}' exists already in this workspace; imported as '{chosen}'"
        notes.append(ImportNote(file=path, item=key, field="name", message=message))
    taken.add(chosen)
    return chosen


def _scalar(value: Any, path: str, key: str, name: str) -> str:
    """A YAML scalar as text; a list or mapping (which could be aliases nested a billion times) is refused."""
    if isinstance(value, dict | list | set | tuple):
        raise InvalidInput(f"{path}: {key}.{name} must be text, not a {type(value).__name__}", field=f"{path}:{key}")
    return "" if value is None else str(value)


def _text(value: Any, path: str, key: str, name: str) -> str:
    return _scalar(value, path, key, name).strip()


def _unknown(body: Mapping[str, Any], known: frozenset[str], path: str, key: str, notes: list[ImportNote]) -> None:
    for name in body:
        if name not in known:
            notes.append(
                ImportNote(file=path, item=key, field=str(name), message="has no CrewCanvas equivalent; not imported")
            )


def _agent_values(
    key: str, body: Mapping[str, Any], path: str, workspace: Workspace, notes: list[ImportNote]
) -> dict[str, Any]:
    _unknown(body, AGENT_KEYS, path, key, notes)
    values: dict[str, Any] = {name: _text(body.get(name), path, key, name) for name in ("role", "goal", "backstory")}
    for flag in ("allow_delegation", "verbose"):
        if flag in body:
            values[flag] = body[flag]
    for number, (low, high) in {"max_iter": (1, 100), "max_execution_time": (1, 86_400)}.items():
        value = body.get(number)
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            clamped = min(max(value, low), high)
            notes.append(
                ImportNote(
                    file=path,
                    item=key,
                    field=number,
                    message=f"{value} is outside CrewCanvas's {low}..{high}; imported as {clamped}",
                )
            )
            value = clamped
        if value is not None:
            values[number] = value
    llm = body.get("llm")
    if isinstance(llm, dict):
        extra = sorted(str(name) for name in llm if name != "model")
        if extra:
            message = f"LLM settings {', '.join(extra)} have no CrewCanvas equivalent; not imported"
            notes.append(ImportNote(file=path, item=key, field="llm", message=message))
        llm = llm.get("model")
    if llm is not None:
        llm = _scalar(llm, path, key, "llm")
        match = find_model(llm, workspace.providers)
        if match is None:
            message = (
                f"no provider of this workspace offers model '{llm}'; the agent uses the workspace's default "
                "model (choose another on the agent)"
            )
            notes.append(ImportNote(file=path, item=key, field="llm", message=message))
        else:
            values["provider_id"], values["model"] = match
    tools = body.get("tools") or []
    tool_ids: list[uuid.UUID] = []
    for tool in tools if isinstance(tools, list) else [tools]:
        tool_id = _tool_id(tool, workspace.tools)
        if tool_id is None:
            shown = repr(tool[:80]) if isinstance(tool, str) else f"given as a {type(tool).__name__}"
            message = f"no tool named {shown} in this workspace; left out (create it, then add it)"
            notes.append(ImportNote(file=path, item=key, field="tools", message=message))
        elif tool_id not in tool_ids:
            tool_ids.append(tool_id)
    values["tool_ids"] = tool_ids
    return values


def _tool_id(tool: Any, tools: Mapping[str, uuid.UUID]) -> uuid.UUID | None:
    if not isinstance(tool, str):
        return None
    for candidate in (tool, tool.removeprefix("custom:"), tool.removesuffix("_tool")):
        if candidate in tools:
            return tools[candidate]
    return None


def find_model(llm: str, providers: Sequence[ProviderInfo]) -> tuple[uuid.UUID, str] | None:
    """The provider and model of a CrewAI model name (`openai/gpt-4o` or `gpt-4o`), if a provider offers it."""
    prefix, _, rest = llm.partition("/")
    ordered = sorted(providers, key=lambda provider: LLM_PREFIX.get(str(provider.kind)) != prefix)
    for provider in ordered:
        for candidate in (llm, rest):
            if candidate and candidate in provider.models:
                return provider.id, candidate
    return None


def _task_values(
    key: str,
    body: Mapping[str, Any],
    path: str,
    agent_ids: Mapping[str, uuid.UUID],
    task_ids: Mapping[str, uuid.UUID],
    module: CrewPy | None,
    notes: list[ImportNote],
) -> dict[str, Any]:
    _unknown(body, TASK_KEYS, path, key, notes)
    values: dict[str, Any] = {name: _text(body.get(name), path, key, name) for name in _TASK_TEXTS}
    agent = body.get("agent")
    if agent is not None:
        method = _scalar(agent, path, key, "agent")
        agent_key = module.agent_methods.get(method, method) if module is not None else method
        if agent_key not in agent_ids:
            known = ", ".join(agent_ids)
            raise InvalidInput(
                f"{path}: task '{key}' names agent '{method}', which agents.yaml does not define; "
                f"its agents are: {known}",
                field=f"{path}:{key}.agent",
            )
        values["agent_id"] = agent_ids[agent_key]
    context = body.get("context") or []
    context_ids: list[uuid.UUID] = []
    for entry in context if isinstance(context, list) else [context]:
        name = _scalar(entry, path, key, "context")
        if name not in task_ids:
            raise InvalidInput(
                f"{path}: task '{key}' reads the context of task '{name}', which tasks.yaml does not define",
                field=f"{path}:{key}.context",
            )
        context_ids.append(task_ids[name])
    values["context_ids"] = context_ids
    output_file = body.get("output_file")
    if output_file is not None:
        text = _scalar(output_file, path, key, "output_file").replace("\\", "/")
        plain = text.rsplit("/", 1)[-1] or None
        if plain != text:
            message = f"'{text}' has folders; CrewCanvas keeps a plain file name: imported as '{plain}'"
            notes.append(ImportNote(file=path, item=key, field="output_file", message=message))
        values["output_file"] = plain
    return values


def _validated(
    model: type[AgentSpec] | type[TaskSpec], values: dict[str, Any], path: str, key: str, problems: list[Problem]
) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems.extend(Problem(f"{path}:{key}.{p.field}", p.message) for p in problems_of(exc))
        return None


def _crew_spec(
    files: ProjectFiles,
    module: CrewPy | None,
    agent_ids: Mapping[str, uuid.UUID],
    task_ids: Mapping[str, uuid.UUID],
    tasks: Mapping[uuid.UUID, TaskSpec],
    workspace: Workspace,
    options: ImportOptions,
    notes: list[ImportNote],
) -> CrewSpec:
    project = read_pyproject(files.pyproject) if files.pyproject else {}
    stem = re.sub(r"\.zip$", "", files.source_name.rsplit("/", 1)[-1], flags=re.IGNORECASE)
    wanted = options.name or project.get("name") or (module.class_name if module else None) or stem or "imported_crew"
    name = wanted if NAME_PATTERN.match(wanted) else snake_name(wanted, "crew")
    chosen = free_name(name, set(workspace.crew_names))
    if chosen != name:
        message = f"a crew named '{name}' exists already in this workspace; imported as '{chosen}'"
        notes.append(ImportNote(file="import", item=name, field="name", message=message))
    agentless = [key for key, task_id in task_ids.items() if tasks[task_id].agent_id is None]
    process: Process = "hierarchical" if agentless else "sequential"
    if module is not None and module.process in ("sequential", "hierarchical"):
        process = "hierarchical" if module.process == "hierarchical" else "sequential"
    manager_key = module.manager_agent if module and module.manager_agent else None
    if manager_key is not None and manager_key not in agent_ids:
        raise InvalidInput(f"crew.py names manager agent '{manager_key}', which agents.yaml does not define")
    values: dict[str, Any] = {
        "name": chosen,
        "description": str(project.get("description") or ""),
        "process": process,
        "agent_ids": [agent_id for key, agent_id in agent_ids.items() if key != manager_key],
        "task_ids": list(task_ids.values()),
        "planning": bool(module.planning) if module else False,
    }
    if process == "hierarchical":
        values |= _manager(module, manager_key, agent_ids, agentless, workspace, options, notes)
    elif options.manager_provider_id or options.manager_model:
        notes.append(ImportNote(file="import", field="manager_model", message="the crew is sequential; not used"))
    if files.main_py is not None:
        inputs, input_notes = read_inputs(files.main_py)
        notes += [ImportNote(file="main.py", item=n.item, field=n.field, message=n.message) for n in input_notes]
        values["inputs"] = inputs
    try:
        return CrewSpec.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, "crew") from exc


def _manager(
    module: CrewPy | None,
    manager_key: str | None,
    agent_ids: Mapping[str, uuid.UUID],
    agentless: list[str],
    workspace: Workspace,
    options: ImportOptions,
    notes: list[ImportNote],
) -> dict[str, Any]:
    """The manager of a hierarchical crew: the caller's choice, else crew.py's; `InvalidInput` when there is none."""
    providers = {provider.id: provider for provider in workspace.providers}
    if options.manager_provider_id is not None:
        provider = providers.get(options.manager_provider_id)
        if provider is None:
            raise InvalidInput(
                f"no provider with id {options.manager_provider_id} in this workspace; choose one for the manager",
                field="manager_provider_id",
            )
        if options.manager_model and options.manager_model not in provider.models:
            offered = ", ".join(provider.models) or "none"
            raise InvalidInput(
                f"provider '{provider.name}' does not offer model '{options.manager_model}'; it offers: {offered}",
                field="manager_model",
            )
        if manager_key or (module and module.manager_llm):
            message = "replaced by the manager chosen at import"
            notes.append(ImportNote(file="crew.py", field="manager", message=message))
        return {"manager_provider_id": provider.id, "manager_model": options.manager_model or None}
    if options.manager_model:
        match = find_model(options.manager_model, workspace.providers)
        if match is None:
            raise InvalidInput(
                f"no provider of this workspace offers model '{options.manager_model}'; choose the manager's provider",
                field="manager_model",
            )
        return {"manager_provider_id": match[0], "manager_model": match[1]}
    if manager_key is not None:
        return {"manager_agent_id": agent_ids[manager_key]}
    if module is not None and module.manager_llm:
        match = find_model(module.manager_llm, workspace.providers)
        if match is not None:
            return {"manager_provider_id": match[0], "manager_model": match[1]}
        notes.append(
            ImportNote(
                file="crew.py",
                field="manager_llm",
                message=f"no provider of this workspace offers '{module.manager_llm}'",
            )
        )
    why = (
        f"tasks {', '.join(repr(key) for key in agentless[:5])} have no agent, so"
        if agentless
        else "crew.py makes it hierarchical, so"
    )
    raise InvalidInput(
        f"{why} the crew is hierarchical and needs a manager: choose a manager model at import "
        "(manager_provider_id and manager_model)",
        field="manager_model",
    )
