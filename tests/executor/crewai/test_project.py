"""Crews as CrewAI projects: the export loads with CrewAI's own `@CrewBase`, and imports back as the same records.

Also what an import refuses (with nothing created) and what it reports instead of dropping.
"""

from __future__ import annotations

import importlib
import io
import sys
import tomllib
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.context import TenantContext
from core.crew_specs import AgentSpec, CrewSpec, TaskSpec
from core.errors import InvalidInput
from executor.crewai.project import CrewProjects, ImportOptions, ProjectUpload
from tests.executor.conftest import World, make_world

MiB = 1024 * 1024
PACKAGE = "research_crew"


@pytest.fixture
def fresh_modules() -> Iterator[None]:
    """Forget the exported package after each test: the next one loads its own export."""
    yield
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def projects(world: World) -> CrewProjects:
    services = world.services
    return CrewProjects(services.crews, services.tools, services.llm_stack.providers)


@dataclass
class Saved:
    crew_id: uuid.UUID
    ids: dict[str, uuid.UUID]


async def save_research_crew(world: World, *, manager: str | None = None) -> Saved:
    """Two agents (the researcher with the shout tool), two tasks (the report reads the research), defaults.

    `manager`: None (sequential), "model" (hierarchical, the scripted model manages) or "agent"
    (hierarchical, a boss agent manages).
    """
    provider = uuid.UUID(world.provider_id)
    ids = {name: uuid.uuid4() for name in ("researcher", "writer", "boss", "research_task", "report_task")}
    agents = {
        ids["researcher"]: AgentSpec(
            name="researcher",
            role="Senior {topic} researcher",
            goal="Uncover what is new about {topic}",
            backstory="Curious.\nThorough: checks every source twice.",
            provider_id=provider,
            model="m1",
            tool_ids=[uuid.UUID(world.shout_tool)],
            allow_delegation=True,
            max_iter=7,
            max_execution_time=120,
            verbose=True,
        ),
        ids["writer"]: AgentSpec(name="writer", role="Writer", goal="Write for {audience}", provider_id=provider),
    }
    if manager == "agent":
        agents[ids["boss"]] = AgentSpec(
            name="boss", role="Editor in chief", goal="Deliver the report", provider_id=provider, allow_delegation=True
        )
    hierarchical = manager is not None
    tasks = {
        ids["research_task"]: TaskSpec(
            name="research_task",
            description="Research {topic} as of {year}",
            expected_output="Ten bullet points",
            agent_id=None if hierarchical else ids["researcher"],
        ),
        ids["report_task"]: TaskSpec(
            name="report_task",
            description="Turn the research into a report for {audience}",
            expected_output="A markdown report",
            agent_id=ids["writer"],
            context_ids=[ids["research_task"]],
            output_file="report.md",
        ),
    }
    crew = CrewSpec(
        name="research_crew",
        description="Researches a topic and writes it up",
        process="hierarchical" if hierarchical else "sequential",
        agent_ids=[ids["researcher"], ids["writer"]],
        task_ids=[ids["research_task"], ids["report_task"]],
        manager_provider_id=provider if manager == "model" else None,
        manager_model="m1" if manager == "model" else None,
        manager_agent_id=ids["boss"] if manager == "agent" else None,
        inputs={"topic": "AI agents", "year": "2026"},
    )
    view = await world.services.crews.save_all(world.editor, agents, tasks, crew)
    return Saved(view.id, ids)


def unzip(data: bytes, into: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(into)
    return into / PACKAGE


def load_crew(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The exported crew class instance (configs loaded by `@CrewBase`) and its main module."""
    monkeypatch.syspath_prepend(str(root / "src"))
    crew_module = importlib.import_module(f"{PACKAGE}.crew")
    main_module = importlib.import_module(f"{PACKAGE}.main")
    return crew_module.ResearchCrew(), main_module


def offline_llm() -> Any:
    from crewai import LLM

    return LLM(model="openai/m1", base_url="http://127.0.0.1:1/v1", api_key="not-used")


async def other_tenant(world: World) -> TenantContext:
    return (await make_world(world.services, world.server, slug="globex")).editor


async def counts(world: World, ctx: TenantContext) -> tuple[int, int, int]:
    crews = world.services.crews
    return len(await crews.list_agents(ctx)), len(await crews.list_tasks(ctx)), len(await crews.list_crews(ctx))


def zipped(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files.items():
            archive.writestr(path, content)
    return buffer.getvalue()


AGENTS_YAML = """\
researcher:
  role: >
    {topic} researcher
  goal: Find out about {topic}
  backstory: Curious.
  llm: openai/m1
  tools: [shout]
"""
TASKS_YAML = """\
research_task:
  description: Research {topic}
  expected_output: Bullet points
  agent: researcher
"""


# -- export --------------------------------------------------------------------------------


async def test_an_exported_crew_is_a_project_crewai_loads_with_its_own_crewbase(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_modules: None
) -> None:
    saved = await save_research_crew(world)
    exported = await projects(world).export(world.viewer, saved.crew_id)
    assert exported.filename == "research_crew.zip"
    root = unzip(exported.data, tmp_path / "project")

    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["tool"]["crewai"] == {"type": "crew"}
    assert pyproject["project"]["scripts"]["run_crew"] == "research_crew.main:run"
    assert any(dependency.startswith("crewai") for dependency in pyproject["project"]["dependencies"])
    config = root / "src" / PACKAGE / "config"
    agents_yaml = yaml.safe_load((config / "agents.yaml").read_text())
    assert agents_yaml["researcher"]["llm"] == "openai/m1"
    assert agents_yaml["researcher"]["tools"] == ["shout"]

    project, main = load_crew(root, monkeypatch)
    assert project.agents_config["researcher"]["llm"] == "openai/m1"
    for name in project.agents_config:
        project.agents_config[name]["llm"] = offline_llm()
    crew = project.crew()

    researcher, writer = crew.agents
    assert (researcher.role, researcher.goal) == ("Senior {topic} researcher", "Uncover what is new about {topic}")
    assert researcher.backstory == "Curious.\nThorough: checks every source twice."
    assert (researcher.allow_delegation, researcher.max_iter, researcher.max_execution_time) == (True, 7, 120)
    assert [tool.name for tool in researcher.tools] == ["shout"]
    assert researcher.tools[0].run(text="hi") == '{"loud": "HI"}'  # the tool's own code, in the project
    assert (writer.role, writer.goal, writer.allow_delegation, writer.max_iter) == (
        "Writer",
        "Write for {audience}",
        False,
        25,
    )

    research, report = crew.tasks
    assert (research.description, research.expected_output) == ("Research {topic} as of {year}", "Ten bullet points")
    assert research.agent is researcher
    assert report.agent is writer
    assert report.context == [research]
    assert report.output_file == "report.md"
    assert str(crew.process) in {"sequential", "Process.sequential"}

    assert main.inputs == {"topic": "AI agents", "year": "2026", "audience": ""}
    inputs = {**main.inputs, "audience": "engineers"}
    researcher.interpolate_inputs(inputs)
    writer.interpolate_inputs(inputs)
    research.interpolate_inputs_and_add_conversation_history(inputs)
    assert researcher.role == "Senior AI agents researcher"
    assert writer.goal == "Write for engineers"
    assert research.description == "Research AI agents as of 2026"


async def test_a_hierarchical_crew_exports_its_manager_model(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_modules: None
) -> None:
    saved = await save_research_crew(world, manager="model")
    root = unzip((await projects(world).export(world.editor, saved.crew_id)).data, tmp_path)
    tasks_yaml = yaml.safe_load((root / "src" / PACKAGE / "config" / "tasks.yaml").read_text())
    assert "agent" not in tasks_yaml["research_task"]
    assert 'manager_llm="openai/m1"' in (root / "src" / PACKAGE / "crew.py").read_text()

    project, _main = load_crew(root, monkeypatch)
    for name in project.agents_config:
        project.agents_config[name]["llm"] = offline_llm()
    crew = project.crew()
    assert str(crew.process).endswith("hierarchical")
    assert crew.manager_llm is not None
    assert crew.tasks[0].agent is None


async def test_a_manager_agent_is_exported_beside_the_crew_not_in_it(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_modules: None
) -> None:
    saved = await save_research_crew(world, manager="agent")
    root = unzip((await projects(world).export(world.editor, saved.crew_id)).data, tmp_path)
    project, _main = load_crew(root, monkeypatch)
    for name in project.agents_config:
        project.agents_config[name]["llm"] = offline_llm()
    crew = project.crew()
    assert crew.manager_agent is not None
    assert crew.manager_agent.role == "Editor in chief"
    assert sorted(agent.role for agent in crew.agents) == ["Senior {topic} researcher", "Writer"]


# -- import --------------------------------------------------------------------------------


async def test_a_project_imported_into_another_tenant_has_the_same_records(world: World) -> None:
    saved = await save_research_crew(world)
    exported = await projects(world).export(world.editor, saved.crew_id)
    globex = await other_tenant(world)

    report = await projects(world).import_(globex, ProjectUpload(archive=exported.data, archive_name=exported.filename))

    assert (report.crew_name, report.process) == ("research_crew", "sequential")
    assert [record.name for record in report.agents] == ["researcher", "writer"]
    assert [record.name for record in report.tasks] == ["research_task", "report_task"]
    assert report.notes == []
    original = await world.services.crews.bundle(world.editor, saved.crew_id)
    copy = await world.services.crews.bundle(globex, report.crew_id)
    fields = ("description", "process", "inputs", "planning", "placeholders")
    assert copy.crew.model_dump(include=set(fields)) == original.crew.model_dump(include=set(fields))
    agent_fields = {
        "name",
        "role",
        "goal",
        "backstory",
        "allow_delegation",
        "max_iter",
        "max_execution_time",
        "verbose",
    }
    assert [a.model_dump(include=agent_fields) for a in copy.agents.values()] == [
        a.model_dump(include=agent_fields) for a in original.agents.values()
    ]
    # An agent on its provider's first model is exported with that model named, and comes back naming it.
    assert [a.model or "m1" for a in original.agents.values()] == [a.model for a in copy.agents.values()]
    globex_providers = {p.name: p.id for p in await world.services.llm_stack.providers.list(globex)}
    assert {agent.provider_id for agent in copy.agents.values()} == {globex_providers["scripted"]}
    assert [tool.name for tool in copy.tools.values()] == ["shout"]
    assert next(iter(copy.tools)) != uuid.UUID(world.shout_tool)  # globex's own shout tool

    def task_shape(bundle: Any) -> list[tuple[Any, ...]]:
        names = {task.id: task.name for task in bundle.tasks}
        return [
            (
                task.name,
                task.description,
                task.expected_output,
                bundle.agents[task.agent_id].name,
                [names[context_id] for context_id in task.context_ids],
                task.output_file,
            )
            for task in bundle.tasks
        ]

    assert task_shape(copy) == task_shape(original)


@pytest.mark.parametrize("manager", ["model", "agent"])
async def test_a_hierarchical_crew_comes_back_with_its_manager(world: World, manager: str) -> None:
    saved = await save_research_crew(world, manager=manager)
    exported = await projects(world).export(world.editor, saved.crew_id)
    globex = await other_tenant(world)

    report = await projects(world).import_(globex, ProjectUpload(archive=exported.data))

    copy = await world.services.crews.bundle(globex, report.crew_id)
    assert copy.crew.process == "hierarchical"
    assert copy.tasks[0].agent_id is None
    if manager == "model":
        globex_providers = {p.name: p.id for p in await world.services.llm_stack.providers.list(globex)}
        assert (copy.crew.manager_provider_id, copy.crew.manager_model) == (globex_providers["scripted"], "m1")
    else:
        assert copy.crew.manager_agent_id is not None
        assert copy.agents[copy.crew.manager_agent_id].name == "boss"
        assert copy.crew.manager_agent_id not in copy.crew.agent_ids
    assert copy.crew.problems == []


async def test_tasks_without_an_agent_need_a_manager_model_chosen_at_import(world: World) -> None:
    tasks = TASKS_YAML.replace("  agent: researcher\n", "")
    upload = ProjectUpload(agents=AGENTS_YAML.encode(), tasks=tasks.encode())
    before = await counts(world, world.editor)

    with pytest.raises(InvalidInput) as refused:
        await projects(world).import_(world.editor, upload)
    assert "needs a manager" in str(refused.value)
    assert [problem.field for problem in refused.value.problems] == ["manager_model"]
    assert await counts(world, world.editor) == before

    options = ImportOptions(name="managed", manager_provider_id=uuid.UUID(world.provider_id), manager_model="m1")
    report = await projects(world).import_(world.editor, upload, options)
    crew = await world.services.crews.get_crew(world.editor, report.crew_id)
    assert (crew.name, crew.process, crew.manager_model) == ("managed", "hierarchical", "m1")
    assert crew.problems == []


async def test_the_two_yaml_files_alone_are_a_project(world: World) -> None:
    report = await projects(world).import_(
        world.editor, ProjectUpload(agents=AGENTS_YAML.encode(), tasks=TASKS_YAML.encode()), ImportOptions(name="duo")
    )
    bundle = await world.services.crews.bundle(world.editor, report.crew_id)
    (agent,) = bundle.agents.values()
    assert agent.role == "{topic} researcher"  # the folded scalar's line break is not part of the role
    assert (agent.model, agent.provider_id) == ("m1", uuid.UUID(world.provider_id))
    assert [tool.name for tool in bundle.tools.values()] == ["shout"]
    assert bundle.crew.placeholders == ["topic"]


async def test_what_does_not_map_is_reported_never_dropped(world: World) -> None:
    agents = """\
researcher:
  role: Researcher
  goal: Research
  llm: anthropic/claude-nowhere
  max_rpm: 10
  memory: true
  max_iter: 500
  tools: [shout, serper_dev]
"""
    tasks = """\
research_task:
  description: Research
  expected_output: Notes
  agent: researcher
  callback: my_callback
  human_input: true
  output_file: output/notes.md
"""
    report = await projects(world).import_(
        world.editor, ProjectUpload(agents=agents.encode(), tasks=tasks.encode()), ImportOptions(name="noted")
    )
    notes = {(note.item, note.field): note.message for note in report.notes}
    for key in ("max_rpm", "memory", "callback", "human_input"):
        assert "no CrewCanvas equivalent" in next(m for (item, f), m in notes.items() if f == key)
    assert "claude-nowhere" in notes[("researcher", "llm")]
    assert "serper_dev" in notes[("researcher", "tools")]
    assert "imported as 100" in notes[("researcher", "max_iter")]
    assert "imported as 'notes.md'" in notes[("research_task", "output_file")]
    bundle = await world.services.crews.bundle(world.editor, report.crew_id)
    (agent,) = bundle.agents.values()
    assert (agent.provider_id, agent.model, agent.max_iter) == (None, None, 100)
    assert [tool.name for tool in bundle.tools.values()] == ["shout"]


async def test_taken_names_are_imported_with_a_suffix_and_reported(world: World) -> None:
    upload = ProjectUpload(agents=AGENTS_YAML.encode(), tasks=TASKS_YAML.encode())
    first = await projects(world).import_(world.editor, upload, ImportOptions(name="twice"))
    second = await projects(world).import_(world.editor, upload, ImportOptions(name="twice"))

    assert (first.crew_name, second.crew_name) == ("twice", "twice_2")
    assert [(r.name, r.source) for r in second.agents] == [("researcher_2", "researcher")]
    assert [(r.name, r.source) for r in second.tasks] == [("research_task_2", "research_task")]
    renamed = [note.message for note in second.notes if note.field == "name"]
    assert any("imported as 'researcher_2'" in message for message in renamed)
    assert any("imported as 'twice_2'" in message for message in renamed)


async def test_crew_py_is_read_never_run(world: World, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    crew_py = f"""
import pathlib
pathlib.Path({str(marker)!r}).write_text("crew.py was executed")
from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, crew, task


@CrewBase
class Sneaky:
    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"], max_iter=3, tools=[make_tool()])

    @task
    def summary_task(self) -> Task:
        return Task(config=self.tasks_config["summary_task"], callback=print)

    @task
    def research_task(self) -> Task:
        return Task(config=self.tasks_config["research_task"])

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.hierarchical, manager_llm="openai/m1",
                    memory=True, planning=True)
"""
    tasks = TASKS_YAML + "summary_task:\n  description: Sum up\n  expected_output: One line\n"
    data = zipped(
        {
            "sneaky/pyproject.toml": '[project]\nname = "sneaky-crew"\ndescription = "Reads, never runs"\n',
            "sneaky/src/sneaky/crew.py": crew_py,
            "sneaky/src/sneaky/main.py": "inputs = {'topic': 'owls', 'year': str(2026)}\n",
            "sneaky/src/sneaky/config/agents.yaml": AGENTS_YAML,
            "sneaky/src/sneaky/config/tasks.yaml": tasks,
        }
    )

    report = await projects(world).import_(world.editor, ProjectUpload(archive=data, archive_name="sneaky.zip"))

    assert not marker.exists()
    bundle = await world.services.crews.bundle(world.editor, report.crew_id)
    assert (bundle.crew.name, bundle.crew.description) == ("sneaky_crew", "Reads, never runs")
    assert (bundle.crew.process, bundle.crew.manager_model, bundle.crew.planning) == ("hierarchical", "m1", True)
    assert bundle.crew.manager_provider_id == uuid.UUID(world.provider_id)
    assert [task.name for task in bundle.tasks] == ["summary_task", "research_task"]  # crew.py's order
    assert next(iter(bundle.agents.values())).max_iter == 3
    assert bundle.crew.inputs == {"topic": "owls"}
    noted = {(note.file, note.item, note.field) for note in report.notes}
    assert ("crew.py", "researcher", "tools") in noted
    assert ("crew.py", "summary_task", "callback") in noted
    assert ("crew.py", None, "memory") in noted
    assert ("main.py", "year", "inputs") in noted


def crewai_create_crew_project() -> bytes:
    """The project `crewai create crew latest_ai` writes, from the templates of the installed CrewAI CLI."""
    from importlib.resources import files

    template = files("crewai_cli") / "templates" / "crew"
    values = {"folder_name": "latest_ai", "crew_name": "LatestAi", "name": "latest_ai"}
    values["crewai_tools_dependency"] = "crewai[tools]"
    members: dict[str, str | bytes] = {}
    for path in ("pyproject.toml", "crew.py", "main.py", "config/agents.yaml", "config/tasks.yaml"):
        text = (template / path).read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        members[f"latest_ai/{path}" if path == "pyproject.toml" else f"latest_ai/src/latest_ai/{path}"] = text
    return zipped(members)


async def test_a_project_made_by_crewai_create_crew_imports(world: World) -> None:
    report = await projects(world).import_(
        world.editor, ProjectUpload(archive=crewai_create_crew_project(), archive_name="latest_ai.zip")
    )

    bundle = await world.services.crews.bundle(world.editor, report.crew_id)
    assert (bundle.crew.name, bundle.crew.process) == ("latest_ai", "sequential")
    assert [agent.name for agent in bundle.agents.values()] == ["researcher", "reporting_analyst"]
    research, reporting = bundle.tasks
    assert (research.name, reporting.name) == ("research_task", "reporting_task")
    assert research.description.startswith("Conduct a thorough research about {topic}")
    assert reporting.output_file == "report.md"  # given in crew.py, not in tasks.yaml
    assert bundle.crew.inputs == {"topic": "AI LLMs"}
    assert "current_year" in bundle.crew.placeholders
    noted = {(note.file, note.item, note.field) for note in report.notes}
    assert ("main.py", "current_year", "inputs") in noted  # str(datetime.now().year) is code, not a default
    assert ("crew.py", None, "verbose") in noted
    assert bundle.crew.problems == []


def project_zip(extra: dict[str, str | bytes]) -> bytes:
    """A valid project plus `extra` members."""
    return zipped({"demo/config/agents.yaml": AGENTS_YAML, "demo/config/tasks.yaml": TASKS_YAML, **extra})


def laughs() -> str:
    """An agent whose role and tools are nine lists of nine lists... of 'lol' (a billion of them, unfolded)."""
    lines = ["researcher:", "  goal: g", "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)]
    lines += ["  tools: *l8", "  role: *l8"]
    return "\n".join(lines) + "\n"


def bomb() -> bytes:
    return zipped(
        {
            "demo/config/agents.yaml": AGENTS_YAML,
            "demo/config/tasks.yaml": TASKS_YAML,
            "demo/knowledge/zeros.bin": b"\0" * (60 * MiB),
        }
    )


BAD_UPLOADS: dict[str, tuple[Callable[[], ProjectUpload], str]] = {
    "malformed yaml": (
        lambda: ProjectUpload(agents=b"researcher: [unclosed\n  role: x", tasks=TASKS_YAML.encode()),
        "not valid YAML (line",
    ),
    "yaml that is a list": (lambda: ProjectUpload(agents=b"- a\n- b\n", tasks=TASKS_YAML.encode()), "but it is a list"),
    "empty yaml": (lambda: ProjectUpload(agents=AGENTS_YAML.encode(), tasks=b""), "but it is empty"),
    "an agent that is text": (
        lambda: ProjectUpload(agents=b"researcher: a researcher\n", tasks=TASKS_YAML.encode()),
        "must be a mapping of its settings",
    ),
    "a task naming an unknown agent": (
        lambda: ProjectUpload(
            agents=AGENTS_YAML.encode(), tasks=TASKS_YAML.replace("agent: researcher", "agent: ghost").encode()
        ),
        "names agent 'ghost'",
    ),
    "an unknown context task": (
        lambda: ProjectUpload(agents=AGENTS_YAML.encode(), tasks=(TASKS_YAML + "  context: [ghost]\n").encode()),
        "context of task 'ghost'",
    ),
    "aliases nested a billion times": (
        lambda: ProjectUpload(agents=laughs().encode(), tasks=TASKS_YAML.encode()),
        "must be text",
    ),
    "not utf-8": (lambda: ProjectUpload(agents=b"\xff\xfe\x00r", tasks=TASKS_YAML.encode()), "not UTF-8"),
    "only one yaml file": (lambda: ProjectUpload(agents=AGENTS_YAML.encode()), "both its config/agents.yaml"),
    "not a zip": (lambda: ProjectUpload(archive=b"this is not a zip"), "not a zip archive"),
    "over 20 MiB": (lambda: ProjectUpload(archive=b"PK" + b"\0" * (20 * MiB)), "larger than 20 MiB"),
    "a zip without tasks.yaml": (
        lambda: ProjectUpload(archive=zipped({"demo/config/agents.yaml": AGENTS_YAML})),
        "no config/tasks.yaml",
    ),
    "a zip without agents.yaml": (
        lambda: ProjectUpload(archive=zipped({"demo/config/tasks.yaml": TASKS_YAML})),
        "no config/agents.yaml",
    ),
    "a zip with ../ paths": (
        lambda: ProjectUpload(archive=project_zip({"../evil.py": "x = 1"})),
        "unsafe path '../evil.py'",
    ),
    "a zip with an absolute path": (lambda: ProjectUpload(archive=project_zip({"/etc/cron.d/x": "x"})), "unsafe path"),
    "a zip with a backslash path": (lambda: ProjectUpload(archive=project_zip({"..\\evil.py": "x"})), "unsafe path"),
    "a zip with too many members": (
        lambda: ProjectUpload(archive=zipped({f"demo/{index}.txt": "" for index in range(1001)})),
        "more than the 1000",
    ),
    "a zip bomb": (lambda: ProjectUpload(archive=bomb()), "zip bomb"),
    "a huge yaml in the zip": (
        lambda: ProjectUpload(
            archive=zipped(
                {"demo/config/agents.yaml": AGENTS_YAML + "#" * (3 * MiB), "demo/config/tasks.yaml": TASKS_YAML}
            )
        ),
        "larger than 2 MiB",
    ),
    "two projects in one zip": (
        lambda: ProjectUpload(
            archive=zipped(
                {
                    "a/config/agents.yaml": AGENTS_YAML,
                    "a/config/tasks.yaml": TASKS_YAML,
                    "b/config/agents.yaml": AGENTS_YAML,
                    "b/config/tasks.yaml": TASKS_YAML,
                }
            )
        ),
        "one project at a time",
    ),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
async def test_a_bad_upload_is_refused_clearly_and_creates_nothing(world: World, case: str) -> None:
    make, expected = BAD_UPLOADS[case]
    upload = make()
    before = await counts(world, world.editor)
    with pytest.raises(InvalidInput) as refused:
        await projects(world).import_(world.editor, upload, ImportOptions(name="bad_upload"))
    assert expected in str(refused.value)
    assert await counts(world, world.editor) == before


async def test_a_viewer_may_export_but_not_import(world: World) -> None:
    from core.errors import PermissionDenied

    saved = await save_research_crew(world)
    exported = await projects(world).export(world.viewer, saved.crew_id)
    with pytest.raises(PermissionDenied):
        await projects(world).import_(world.viewer, ProjectUpload(archive=exported.data))
