"""A crew as a CrewAI project that `crewai run` accepts, and such a project (or its two YAML files) as a crew.

Export (`export_crew`) writes the layout `crewai create crew` makes, in one zip under a
folder named after the crew: `pyproject.toml` (`[tool.crewai] type = "crew"`, the `run_crew`
script), `src/<package>/crew.py` (a `@CrewBase` class with an `@agent` / `@task` method per
record, a `@tool` method per tool, process and manager in `@crew`), `main.py` (`run()` kicks
the crew off with its default inputs), `config/agents.yaml`, `config/tasks.yaml`, and each
tool as `tools/<name>.py`: a CrewAI `BaseTool` whose `args_schema` is built from the tool's
JSON schema and whose code is the tool's own (run in-process there, not in a sandbox).

Import (`CrewProjects.import_`) takes a zipped project or its `config/agents.yaml` and
`config/tasks.yaml` (`project_upload`: checked before anything is unpacked), plans the
records they describe against the tenant's names, tools and providers (`project_import`:
nothing uploaded is ever executed; `crew.py` and `main.py` are read with `ast` by
`project_sources`), and saves them all in one transaction (`CrewRecords.save_all`).
What could not be mapped is an `ImportNote` of the `ImportReport`, never dropped silently;
a taken name is imported with a suffix (`researcher_2`) and a note, never refused.

Errors: `InvalidInput` (nothing created) for an upload that is not a project (see
`project_upload` and `project_import`), including a hierarchical crew with no manager
model; `Conflict` when a name is taken between planning and saving.
"""

from __future__ import annotations

import asyncio
import io
import json
import keyword
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from core.context import Role, TenantContext
from core.errors import NotFound
from executor.crewai.project_import import (
    LLM_PREFIX,
    ImportedRecord,
    ImportNote,
    ImportOptions,
    ImportReport,
    ProviderInfo,
    Workspace,
    free_name,
    plan_import,
)
from executor.crewai.project_sources import (
    CrewModule,
    class_name,
    crew_module,
    main_module,
    tool_class_name,
    tool_module,
)
from executor.crewai.project_upload import MAX_UPLOAD_BYTES, ProjectFiles, ProjectUpload

if TYPE_CHECKING:
    from core.crews import CrewBundle, CrewRecords

__all__ = [
    "MAX_UPLOAD_BYTES",
    "CrewProjects",
    "ExportedProject",
    "ImportNote",
    "ImportOptions",
    "ImportReport",
    "ImportedRecord",
    "ProjectFiles",
    "ProjectUpload",
    "export_crew",
    "llm_name",
    "package_name",
]

# Attributes `@CrewBase` gives a crew class: a record's method must not take one of these names.
_CREWBASE_NAMES = frozenset(
    {
        "crew",
        "agents",
        "tasks",
        "agents_config",
        "tasks_config",
        "base_directory",
        "close_mcp_server",
        "get_mcp_tools",
        "is_crew_class",
        "load_configurations",
        "load_yaml",
        "map_all_agent_variables",
        "map_all_task_variables",
        "mcp_connect_timeout",
        "mcp_server_params",
        "original_agents_config_path",
        "original_tasks_config_path",
        "self",
    }
)


class ProviderSource(Protocol):
    """The tenant's providers (`core.providers.ProviderService` fits)."""

    async def list(self, ctx: TenantContext) -> Sequence[ProviderInfo]: ...
    async def default_provider_id(self, ctx: TenantContext) -> uuid.UUID: ...


class ToolInfo(Protocol):
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def name(self) -> str: ...


class ToolSource(Protocol):
    """The tenant's tools (`core.tools.ToolService` fits)."""

    async def list(self, ctx: TenantContext) -> Sequence[ToolInfo]: ...


# -- export --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportedProject:
    """A crew as a zipped CrewAI project."""

    filename: str
    data: bytes


def llm_name(provider: ProviderInfo | None, model: str | None) -> str | None:
    """The `provider/model` string CrewAI builds an LLM from, e.g. `openai/gpt-4o-mini`; None when unknown."""
    if provider is None:
        return model
    chosen = model or (provider.models[0] if provider.models else None)
    if chosen is None:
        return None
    prefix = LLM_PREFIX.get(str(provider.kind))
    return f"{prefix}/{chosen}" if prefix and not chosen.startswith(f"{prefix}/") else chosen


def package_name(crew_name: str) -> str:
    """The Python package of a crew's project: its snake_case name, unless Python or CrewAI takes that name."""
    if keyword.iskeyword(crew_name) or crew_name in {"crewai", "test", "tests", "tools", "config", "src"}:
        return f"{crew_name}_crew"
    return crew_name


def export_crew(
    bundle: CrewBundle,
    providers: Mapping[uuid.UUID, ProviderInfo],
    *,
    default_provider_id: uuid.UUID | None = None,
) -> bytes:
    """The crew of `bundle` as a zipped CrewAI project (see the module docstring for the layout).

    `providers` (by id) name each agent's model as CrewAI wants it (`openai/gpt-4o-mini`);
    agents without a provider use `default_provider_id`'s.
    """
    crew = bundle.crew
    package = package_name(crew.name)
    names = _method_names(bundle)

    def model_of(provider_id: uuid.UUID | None, model: str | None) -> str | None:
        return llm_name(providers.get(provider_id or default_provider_id or uuid.UUID(int=0)), model)

    agents_yaml: dict[str, dict[str, Any]] = {}
    for agent_id, agent in bundle.agents.items():
        entry: dict[str, Any] = {"role": agent.role, "goal": agent.goal, "backstory": agent.backstory}
        llm = model_of(agent.provider_id, agent.model)
        if llm is not None:
            entry["llm"] = llm
        entry |= {"allow_delegation": agent.allow_delegation, "max_iter": agent.max_iter, "verbose": agent.verbose}
        if agent.max_execution_time is not None:
            entry["max_execution_time"] = agent.max_execution_time
        tools = [names.tools[tool_id] for tool_id in agent.tool_ids if tool_id in names.tools]
        if tools:
            entry["tools"] = tools
        agents_yaml[names.agents[agent_id]] = entry
    tasks_yaml: dict[str, dict[str, Any]] = {}
    for task in bundle.tasks:
        item: dict[str, Any] = {"description": task.description, "expected_output": task.expected_output}
        if task.agent_id is not None and task.agent_id in names.agents:
            item["agent"] = names.agents[task.agent_id]
        context = [names.tasks[context_id] for context_id in task.context_ids if context_id in names.tasks]
        if context:
            item["context"] = context
        if task.output_file:
            item["output_file"] = task.output_file
        tasks_yaml[names.tasks[task.id]] = item

    members = [agent_id for agent_id in crew.agent_ids if agent_id in names.agents]
    manager_llm = None
    if crew.process == "hierarchical" and crew.manager_agent_id is None:
        manager_llm = model_of(crew.manager_provider_id, crew.manager_model)
    tool_classes = {names.tools[tool_id]: tool_class_name(names.tools[tool_id]) for tool_id in bundle.tools}
    module = CrewModule(
        class_name=class_name(crew.name),
        description=crew.description or f"The {crew.name} crew.",
        tools=tool_classes,
        agents=[names.agents[agent_id] for agent_id in members],
        tasks=[names.tasks[task.id] for task in bundle.tasks],
        process=crew.process,
        manager_agent=names.agents.get(crew.manager_agent_id) if crew.manager_agent_id else None,
        manager_llm=manager_llm,
        planning=crew.planning,
    )
    inputs = {name: crew.inputs.get(name) for name in crew.placeholders}
    inputs |= {name: value for name, value in crew.inputs.items() if name not in inputs}
    files: dict[str, str] = {
        "pyproject.toml": _pyproject(package, crew.description),
        "README.md": _readme(bundle, package, names, providers, default_provider_id),
        ".gitignore": ".env\n__pycache__/\n.venv/\n",
        f"src/{package}/__init__.py": "",
        f"src/{package}/crew.py": crew_module(package, module),
        f"src/{package}/main.py": main_module(package, module.class_name, inputs),
        f"src/{package}/config/agents.yaml": _yaml(agents_yaml),
        f"src/{package}/config/tasks.yaml": _yaml(tasks_yaml),
        f"src/{package}/tools/__init__.py": '"""The crew\'s tools, exported from CrewCanvas."""\n',
    }
    for tool_id, tool in bundle.tools.items():
        method = names.tools[tool_id]
        files[f"src/{package}/tools/{method}.py"] = tool_module(tool, tool_classes[method])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in files.items():
            info = zipfile.ZipInfo(f"{package}/{path}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text)
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class _Names:
    """Each record's key in the YAML files and method name in `crew.py`: one namespace, no CrewBase names."""

    tools: dict[uuid.UUID, str]
    agents: dict[uuid.UUID, str]
    tasks: dict[uuid.UUID, str]


def _method_names(bundle: CrewBundle) -> _Names:
    taken: set[str] = set(_CREWBASE_NAMES)

    def claim(name: str, suffix: str) -> str:
        chosen = name if name not in taken and not keyword.iskeyword(name) else free_name(f"{name}_{suffix}", taken)
        taken.add(chosen)
        return chosen

    tools = {tool_id: claim(tool.name, "tool") for tool_id, tool in bundle.tools.items()}
    agents = {agent_id: claim(agent.name, "agent") for agent_id, agent in bundle.agents.items()}
    tasks = {task.id: claim(task.name, "task") for task in bundle.tasks}
    return _Names(tools, agents, tasks)


class _LiteralDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, writing multi-line text as literal blocks (`|`) people can read and edit."""


def _literal_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_LiteralDumper.add_representer(str, _literal_text)


def _yaml(data: Mapping[str, Any]) -> str:
    return yaml.dump(dict(data), Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=100)


def _toml_string(value: str) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=True)


def _pyproject(package: str, description: str) -> str:
    try:
        version = metadata.version("crewai")
    except metadata.PackageNotFoundError:
        version = "1.15.30"
    summary = description.splitlines()[0] if description.strip() else f"The {package} crew, exported from CrewCanvas"
    scripts = {package: "run", "run_crew": "run", "train": "train", "replay": "replay", "test": "test"}
    lines = [
        "[project]",
        f"name = {_toml_string(package)}",
        'version = "0.1.0"',
        f"description = {_toml_string(summary)}",
        'requires-python = ">=3.10,<3.14"',
        f'dependencies = ["crewai[tools]=={version}"]',
        "",
        "[project.scripts]",
        *(f"{script} = {_toml_string(f'{package}.main:{target}')}" for script, target in scripts.items()),
        "",
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[tool.crewai]",
        'type = "crew"',
        "",
    ]
    return "\n".join(lines)


def _readme(
    bundle: CrewBundle,
    package: str,
    names: _Names,
    providers: Mapping[uuid.UUID, ProviderInfo],
    default_provider_id: uuid.UUID | None,
) -> str:
    crew = bundle.crew
    lines = [f"# {crew.name}", "", crew.description or "A crew exported from CrewCanvas.", ""]
    lines += [
        "## Run it",
        "",
        "```",
        "crewai install",
        "crewai run",
        "```",
        "",
        "Set the API key of each model's provider first (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, ...);",
        "for an OpenAI-compatible server or the local model also `OPENAI_BASE_URL`.",
        "Keys and endpoints stay in CrewCanvas: they are never exported.",
        "",
        "## Models",
        "",
    ]
    for agent_id, agent in bundle.agents.items():
        provider = providers.get(agent.provider_id or default_provider_id or uuid.UUID(int=0))
        where = f"provider '{provider.name}' ({provider.kind})" if provider else "no provider: CrewAI's default"
        lines.append(f"- agent `{names.agents[agent_id]}`: {where}")
    if bundle.tools:
        lines += [
            "",
            "## Tools",
            "",
            "In CrewCanvas these tools ran in a sandbox; here they run in the crew's own process.",
        ]
    schemas = [task.name for task in bundle.tasks if task.output_schema]
    if schemas:
        lines += ["", "## Not exported", ""]
        lines += [f"- the output schema of task `{name}`" for name in schemas]
    lines += ["", f"Package: `{package}`.", ""]
    return "\n".join(lines)


# -- the service ---------------------------------------------------------------------------


class CrewProjects:
    """Export a saved crew as a CrewAI project; import one as new records of the tenant."""

    def __init__(self, crews: CrewRecords, tools: ToolSource, providers: ProviderSource) -> None:
        self._crews = crews
        self._tools = tools
        self._providers = providers

    async def export(self, ctx: TenantContext, crew_id: uuid.UUID) -> ExportedProject:
        """The crew as a zipped CrewAI project (viewers may export)."""
        bundle = await self._crews.bundle(ctx, crew_id)
        providers = {provider.id: provider for provider in await self._providers.list(ctx)}
        try:
            default: uuid.UUID | None = await self._providers.default_provider_id(ctx)
        except NotFound:
            default = None
        data = await asyncio.to_thread(export_crew, bundle, providers, default_provider_id=default)
        return ExportedProject(filename=f"{package_name(bundle.crew.name)}.zip", data=data)

    async def import_(
        self, ctx: TenantContext, upload: ProjectUpload, options: ImportOptions = ImportOptions()
    ) -> ImportReport:
        """New agents, tasks and a crew from an uploaded project, all or nothing (editors)."""
        ctx.require(Role.EDITOR, "import crews")
        files = await asyncio.to_thread(upload.read)
        workspace = Workspace(
            agent_names=frozenset(agent.name for agent in await self._crews.list_agents(ctx)),
            task_names=frozenset(task.name for task in await self._crews.list_tasks(ctx)),
            crew_names=frozenset(crew.name for crew in await self._crews.list_crews(ctx)),
            tools={tool.name: tool.id for tool in await self._tools.list(ctx)},
            providers=list(await self._providers.list(ctx)),
        )
        plan = await asyncio.to_thread(plan_import, files, workspace, options)
        crew = await self._crews.save_all(ctx, plan.agents, plan.tasks, plan.crew)
        return ImportReport(
            crew_id=crew.id,
            crew_name=crew.name,
            process=crew.process,
            agents=[ImportedRecord(id=i, name=s.name, source=plan.sources[i]) for i, s in plan.agents.items()],
            tasks=[ImportedRecord(id=i, name=s.name, source=plan.sources[i]) for i, s in plan.tasks.items()],
            notes=plan.notes,
        )
