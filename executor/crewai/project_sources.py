"""The Python side of a CrewAI project: writing `crew.py`, `main.py` and tool modules, and reading them back.

Writing: every text of a record goes into the source as a Python literal (`repr`), never
pasted into code or comments, so a name or description cannot change what the file does.
A tool's own code is the exception, by design: it is the tool.

Reading: uploaded Python is parsed with `ast` and never executed. What a file states as
literals (`process=Process.hierarchical`, `manager_llm="openai/gpt-4o"`, `@task` methods
and their order, `inputs = {"topic": "AI"}`) is read; what it computes at run time is a
`SourceNote`, so the import report can say what was not taken over.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from core.text import text_problem

_INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,199}$")
_DECORATORS = frozenset({"agent", "task", "crew", "tool", "llm"})
_AGENT_LITERALS = frozenset({"allow_delegation", "verbose", "max_iter", "max_execution_time"})
_TASK_LITERALS = frozenset({"output_file"})
_CREW_HANDLED = frozenset({"agents", "tasks", "process", "manager_llm", "manager_agent", "planning"})


@dataclass(frozen=True, slots=True)
class SourceNote:
    """Something a Python file of the upload does that was not taken over: which record, which argument, why."""

    item: str | None
    field: str | None
    message: str


# -- writing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrewModule:
    """What `crew.py` declares: method names (the YAML keys), tool classes, process and manager."""

    class_name: str
    description: str
    tools: Mapping[str, str]  # method -> tool class
    agents: Sequence[str]
    tasks: Sequence[str]
    process: str
    manager_agent: str | None = None
    manager_llm: str | None = None
    planning: bool = False


def crew_module(package: str, module: CrewModule) -> str:
    """The `crew.py` of a project: a `@CrewBase` class over `config/agents.yaml` and `config/tasks.yaml`."""
    decorators = ["CrewBase", "agent", "crew", "task", *(["tool"] if module.tools else [])]
    lines = [
        f"{_docstring(module.description)}",
        "",
        "from crewai import Agent, Crew, Process, Task",
        "from crewai.agents.agent_builder.base_agent import BaseAgent",
        f"from crewai.project import {', '.join(decorators)}",
        "",
    ]
    lines += [f"from {package}.tools.{method} import {cls}" for method, cls in module.tools.items()]
    lines += [
        "",
        "",
        "@CrewBase",
        f"class {module.class_name}:",
        f"    {_docstring(module.description)}",
        "",
        "    agents: list[BaseAgent]",
        "    tasks: list[Task]",
        "",
        '    agents_config = "config/agents.yaml"',
        '    tasks_config = "config/tasks.yaml"',
    ]
    for method, cls in module.tools.items():
        lines += ["", "    @tool", f"    def {method}(self) -> {cls}:", f"        return {cls}()"]
    for method in module.agents:
        lines += ["", "    @agent", f"    def {method}(self) -> Agent:", _config_line("agents", method)]
    if module.manager_agent is not None:
        lines += [
            "",
            f"    def {module.manager_agent}(self) -> Agent:",
            '        """The manager: plans, delegates to the agents and checks their work (not one of them)."""',
            _config_line("agents", module.manager_agent),
        ]
    for method in module.tasks:
        lines += ["", "    @task", f"    def {method}(self) -> Task:", _config_line("tasks", method)]
    process = "hierarchical" if module.process == "hierarchical" else "sequential"
    arguments = ["agents=self.agents", "tasks=self.tasks", f"process=Process.{process}"]
    if module.manager_agent is not None:
        arguments.append(f"manager_agent=self.{module.manager_agent}()")
    elif module.manager_llm is not None:
        arguments.append(f"manager_llm={_q(module.manager_llm)}")
    if module.planning:
        arguments.append("planning=True")
    lines += ["", "    @crew", "    def crew(self) -> Crew:", "        return Crew("]
    lines += [f"            {argument}," for argument in arguments]
    lines += ["        )", ""]
    return "\n".join(lines)


def class_name(snake: str) -> str:
    """A snake_case name in CamelCase, for a Python class (`research_crew` -> `ResearchCrew`)."""
    return "".join(part.capitalize() for part in snake.split("_") if part) or "Crew"


def tool_class_name(tool_name: str) -> str:
    """The class of a tool's `BaseTool` in its exported module (`shout` -> `ShoutTool`)."""
    return class_name(tool_name) + "Tool"


def _q(text: str) -> str:
    """`text` as a double-quoted Python string literal (a JSON string is one)."""
    return json.dumps(text, ensure_ascii=False)


def _docstring(text: str) -> str:
    first = text.strip().splitlines()[0][:200] if text.strip() else "A crew exported from CrewCanvas."
    if first.isprintable() and '"' not in first and "\\" not in first:
        return f'"""{first}"""'
    return _q(first)


def _config_line(kind: str, key: str) -> str:
    cls = "Agent" if kind == "agents" else "Task"
    return f"        return {cls}(config=self.{kind}_config[{_q(key)}])  # type: ignore[index]"


def main_module(package: str, class_name: str, inputs: Mapping[str, str | None]) -> str:
    """The `main.py` of a project: `run()` kicks the crew off with its default inputs (plus train, replay, test)."""
    entries = []
    for name, value in inputs.items():
        missing = "  # no default in CrewCanvas: give one" if value is None else ""
        entries.append(f"    {_q(name)}: {_q(value or '')},{missing}")
    body = "\n".join(entries)
    return f'''#!/usr/bin/env python
"""Run the crew: `crewai run` (or `uv run run_crew`)."""

import sys

from {package}.crew import {class_name}

#: The crew's inputs: one value for each {{placeholder}} of its agents and tasks.
inputs = {{
{body}
}}


def run():
    """Run the crew with the inputs above."""
    return {class_name}().crew().kickoff(inputs=dict(inputs))


def train():
    """Train the crew: `crewai train -n <iterations> -f <file>`."""
    {class_name}().crew().train(n_iterations=int(sys.argv[1]), filename=sys.argv[2], inputs=dict(inputs))


def replay():
    """Replay the crew from a task: `crewai replay -t <task id>`."""
    {class_name}().crew().replay(task_id=sys.argv[1])


def test():
    """Test the crew: `crewai test -n <iterations> -m <model>`."""
    {class_name}().crew().test(n_iterations=int(sys.argv[1]), eval_llm=sys.argv[2], inputs=dict(inputs))
'''


_JSON_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}


def _annotation(schema: Any) -> str:
    """A Python annotation (as source) for a JSON schema: the subset tool calling needs; `_Any` for the rest."""
    if not isinstance(schema, Mapping):
        return "_Any"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str | int | bool) or v is None for v in enum):
        return f"_Literal[{', '.join(repr(value) for value in enum)}]"
    kind = schema.get("type")
    if isinstance(kind, list) and kind:
        return " | ".join(dict.fromkeys(_annotation({**schema, "type": one}) for one in kind))
    if kind in _JSON_TYPES:
        return _JSON_TYPES[kind]
    if kind == "array":
        return f"list[{_annotation(schema.get('items'))}]"
    if kind == "object":
        return "dict[str, _Any]"
    return "_Any"


def _field_name(name: str, taken: set[str]) -> str:
    usable = (
        name.isidentifier()
        and not keyword.iskeyword(name)
        and not name.startswith(("_", "model_"))
        and not hasattr(BaseModel, name)
    )
    chosen = name if usable else f"argument_{len(taken) + 1}"
    taken.add(chosen)
    return chosen


def tool_module(tool: Any, class_name: str) -> str:
    """A tool as a CrewAI `BaseTool` module: its args schema from the JSON schema, its code as written."""
    schema: Mapping[str, Any] = tool.input_schema or {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
    required = [str(name) for name in schema.get("required") or [] if isinstance(name, str)]
    taken: set[str] = set()
    renamed: dict[str, str] = {}
    fields = []
    for name, spec in (properties or {}).items():
        attribute = _field_name(str(name), taken)
        if attribute != name:
            renamed[attribute] = str(name)
        annotation = _annotation(spec)
        description = str(spec.get("description") or "") if isinstance(spec, Mapping) else ""
        if name in required:
            fields.append(f"    {attribute}: {annotation} = _Field(..., description={_q(description)})")
        else:
            default = spec.get("default") if isinstance(spec, Mapping) else None
            fields.append(
                f"    {attribute}: {annotation} | None = _Field(default={default!r}, description={_q(description)})"
            )
    input_class = class_name.removesuffix("Tool") + "Input"
    description = tool.description or f"Runs the tool {tool.name}."
    code, hoisted = _tool_code(tool)
    return "\n".join(
        [
            _docstring(f"The tool {tool.name}, exported from CrewCanvas (there it ran in a sandbox; here in-process)."),
            *hoisted,
            "",
            "import json as _json",
            "from typing import Any as _Any, Literal as _Literal  # noqa: F401",
            "",
            "from crewai.tools import BaseTool as _BaseTool",
            "from pydantic import BaseModel as _BaseModel, Field as _Field",
            "",
            "# -- the tool's code, as written in CrewCanvas --------------------------------------",
            code,
            "# -- end of the tool's code -----------------------------------------------------------",
            "",
            "_TOOL_RUN = run",
            f"_REQUIRED = frozenset({sorted(required)!r})",
            f"_NAMES = {renamed!r}",
            "",
            "",
            f"class {input_class}(_BaseModel):",
            f"    {_docstring(f'The arguments of {tool.name}.')}",
            "",
            *(fields or ["    pass"]),
            "",
            "",
            f"class {class_name}(_BaseTool):",
            f"    name: str = {_q(tool.name)}",
            f"    description: str = {_q(description)}",
            f"    args_schema: type[_BaseModel] = {input_class}",
            "",
            "    def _run(self, **arguments: _Any) -> str:",
            "        # CrewAI passes an optional argument the model left out as None: leave it out.",
            "        given = {_NAMES.get(k, k): v for k, v in arguments.items() if v is not None or k in _REQUIRED}",
            "        result = _TOOL_RUN(**given)",
            "        if isinstance(result, str):",
            "            return result",
            "        return _json.dumps(result, ensure_ascii=False, default=str)",
            "",
        ]
    )


def _tool_code(tool: Any) -> tuple[str, list[str]]:
    """The tool's code for the module body, and any `from __future__` lines that must come first."""
    if tool.kind == "command":
        wall = float((getattr(tool, "effective_limits", None) or {}).get("wall_seconds", 30))
        return (
            "\n".join(
                [
                    "import os as _os",
                    "import subprocess as _subprocess",
                    "import tempfile as _tempfile",
                    "",
                    f"_SCRIPT = {_q(tool.code)}",
                    "",
                    "",
                    "def run(**arguments):",
                    '    """Run the script with the arguments as JSON on stdin and in $TOOL_INPUT; it prints JSON."""',
                    "    payload = _json.dumps(arguments)",
                    "    with _tempfile.TemporaryDirectory() as work:",
                    '        path = _os.path.join(work, "input.json")',
                    '        with open(path, "w", encoding="utf-8") as handle:',
                    "            handle.write(payload)",
                    "        done = _subprocess.run(",
                    '            ["/bin/sh", "-c", _SCRIPT], input=payload, capture_output=True, text=True, cwd=work,',
                    f'            env={{**_os.environ, "TOOL_INPUT": path}}, timeout={wall!r}, check=False,',
                    "        )",
                    "    if done.returncode != 0:",
                    '        raise RuntimeError(f"the script exited with {done.returncode}: {done.stderr[-2000:]}")',
                    "    return _json.loads(done.stdout)",
                ]
            ),
            [],
        )
    lines = str(tool.code).splitlines()
    hoisted = [line for line in lines if line.startswith("from __future__ import")]
    body = [line for line in lines if not line.startswith("from __future__ import")]
    return "\n".join(body), hoisted


# -- reading -------------------------------------------------------------------------------


@dataclass
class CrewPy:
    """What an uploaded `crew.py` states: its `@CrewBase` class, the YAML keys of its methods, process and manager."""

    class_name: str | None = None
    agents: list[str] = field(default_factory=list)  # agents.yaml keys of the @agent methods, in order
    tasks: list[str] = field(default_factory=list)  # tasks.yaml keys of the @task methods, in order
    agent_methods: dict[str, str] = field(default_factory=dict)  # method name -> agents.yaml key
    process: str | None = None
    manager_agent: str | None = None  # agents.yaml key
    manager_llm: str | None = None
    planning: bool = False
    agent_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[SourceNote] = field(default_factory=list)


def _parse(source: str, what: str) -> ast.Module | str:
    try:
        return ast.parse(source, filename=what)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'msg', None) or exc}"[:200]


def _name_of(node: ast.expr) -> str | None:
    """`x` of `x`, `a.x` or `x(...)`."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _config_key(function: ast.FunctionDef | ast.AsyncFunctionDef, kind: str) -> str | None:
    """The key of `self.<kind>_config['key']` in a method body."""
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == f"{kind}_config"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            return node.slice.value
    return None


def _constructor(function: ast.FunctionDef | ast.AsyncFunctionDef, names: set[str]) -> ast.Call | None:
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and _name_of(node.func) in names:
            return node
    return None


def read_crew_module(source: str) -> CrewPy:
    """What `crew.py` states, read with `ast` (never run); what it computes is a note."""
    found = CrewPy()
    tree = _parse(source, "crew.py")
    if isinstance(tree, str):
        found.notes.append(SourceNote(None, None, f"could not be read ({tree}); process and manager inferred"))
        return found
    classes = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and any(_name_of(d) == "CrewBase" for d in node.decorator_list)
    ]
    if not classes:
        found.notes.append(SourceNote(None, None, "has no @CrewBase class; process and manager inferred from tasks"))
        return found
    crew_class = classes[0]
    found.class_name = crew_class.name
    crew_call: ast.Call | None = None
    for method in crew_class.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        kinds = {_name_of(d) for d in method.decorator_list} & _DECORATORS
        agent_key = _config_key(method, "agents")
        if agent_key is not None:
            found.agent_methods[method.name] = agent_key
        if "agent" in kinds:
            key = agent_key or method.name
            found.agents.append(key)
            _overrides(_constructor(method, {"Agent"}), key, _AGENT_LITERALS, found.agent_overrides, found.notes)
        elif "task" in kinds:
            key = _config_key(method, "tasks") or method.name
            found.tasks.append(key)
            _overrides(_constructor(method, {"Task"}), key, _TASK_LITERALS, found.task_overrides, found.notes)
        elif "crew" in kinds:
            crew_call = _constructor(method, {"Crew"})
    if crew_call is None:
        found.notes.append(SourceNote(None, None, "has no @crew method building a Crew; process inferred from tasks"))
    else:
        _read_crew_call(crew_call, found)
    return found


def _overrides(
    call: ast.Call | None,
    key: str,
    literals: frozenset[str],
    into: dict[str, dict[str, Any]],
    notes: list[SourceNote],
) -> None:
    """Literal keyword arguments a method passes besides `config` (they win over the YAML, as in CrewAI)."""
    for argument in call.keywords if call is not None else []:
        name = argument.arg
        if name == "config":
            continue
        ok, value = _literal(argument.value)
        if name in literals and ok:
            into.setdefault(key, {})[name] = value
        else:
            what = f"'{name}'" if name else "**keyword arguments"
            notes.append(SourceNote(key, name, f"{what} is set in crew.py code; not imported"))


def _read_crew_call(call: ast.Call, found: CrewPy) -> None:
    for argument in call.keywords:
        name, value = argument.arg, argument.value
        if name == "process":
            process = _name_of(value) if isinstance(value, ast.Attribute) else None
            ok, literal = _literal(value)
            chosen = process or (literal if ok else None)
            if chosen in {"sequential", "hierarchical"}:
                found.process = chosen
            else:
                found.notes.append(SourceNote(None, "process", "is computed in code; inferred from the tasks"))
        elif name == "manager_llm":
            found.manager_llm = _model_literal(value, found.notes)
        elif name == "manager_agent":
            method = _name_of(value) if isinstance(value, ast.Call) else None
            if method is not None and method in found.agent_methods:
                found.manager_agent = found.agent_methods[method]
            else:
                found.notes.append(SourceNote(None, "manager_agent", "is not a method of the crew class; not imported"))
        elif name == "planning":
            ok, literal = _literal(value)
            if ok and isinstance(literal, bool):
                found.planning = literal
            else:
                found.notes.append(SourceNote(None, "planning", "is computed in code; not imported"))
        elif name in {"agents", "tasks"}:
            if not (isinstance(value, ast.Attribute) and value.attr == name):
                found.notes.append(SourceNote(None, name, f"is not self.{name}; the YAML's {name} were imported"))
        else:
            what = f"{name}=..." if name else "**keyword arguments"
            found.notes.append(SourceNote(None, name, f"Crew({what}) has no CrewCanvas equivalent; not imported"))


def _model_literal(value: ast.expr, notes: list[SourceNote]) -> str | None:
    ok, literal = _literal(value)
    if ok and isinstance(literal, str):
        return literal
    if isinstance(value, ast.Call) and _name_of(value.func) == "LLM":
        model = next((kw.value for kw in value.keywords if kw.arg == "model"), value.args[0] if value.args else None)
        other = sorted(kw.arg or "**" for kw in value.keywords if kw.arg != "model")
        if other:
            notes.append(SourceNote(None, "manager_llm", f"LLM settings {', '.join(other)} are not imported"))
        ok, literal = _literal(model) if model is not None else (False, None)
        if ok and isinstance(literal, str):
            return literal
    notes.append(SourceNote(None, "manager_llm", "is computed in code; not imported"))
    return None


def read_inputs(source: str) -> tuple[dict[str, str], list[SourceNote]]:
    """The default inputs `main.py` kicks the crew off with (`inputs = {...}`), literals only; the rest as notes."""
    tree = _parse(source, "main.py")
    if isinstance(tree, str):
        return {}, [SourceNote(None, None, f"could not be read ({tree}); no default inputs imported")]
    for node in ast.walk(tree):
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(node, ast.AnnAssign):
            target = node.target
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and target.id in {"inputs", "INPUTS"} and isinstance(value, ast.Dict):
            return _inputs(value)
    return {}, []


def _inputs(literal: ast.Dict) -> tuple[dict[str, str], list[SourceNote]]:
    inputs: dict[str, str] = {}
    notes: list[SourceNote] = []
    for key_node, value_node in zip(literal.keys, literal.values, strict=True):
        ok_key, key = _literal(key_node) if key_node is not None else (False, None)
        if not ok_key or not isinstance(key, str) or not _INPUT_NAME.match(key):
            message = "an input whose name is not a plain {placeholder} name was left out"
            notes.append(SourceNote(None, "inputs", message))
            continue
        ok, value = _literal(value_node)
        if not ok or isinstance(value, dict | list | tuple | set | bytes) or value is None:
            notes.append(SourceNote(key, "inputs", "is computed in main.py; imported without a default"))
            continue
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        problem = text_problem(text, "line")
        if problem is not None:
            notes.append(SourceNote(key, "inputs", f"its default {problem}; imported without a default"))
            continue
        if text:
            inputs[key] = text
    return inputs, notes


def read_pyproject(text: str) -> dict[str, str]:
    """`[project]` name and description of a `pyproject.toml`; empty when it cannot be read."""
    try:
        project = tomllib.loads(text).get("project")
    except (tomllib.TOMLDecodeError, RecursionError):
        return {}
    if not isinstance(project, dict):
        return {}
    return {key: project[key] for key in ("name", "description") if isinstance(project.get(key), str)}
