"""/agents: the workspace's CrewAI agents; /agents/new and /agents/{id}: one agent's editor.

The editor is a `ModelForm` of `AgentSpec` with pickers for the workspace's providers,
the chosen provider's models (a select that also takes a typed name) and saved tools.
The `{placeholders}` in the role, goal and backstory are the crew's inputs; the page lists
them live as they are typed. Viewers see the same form read-only, without Save or Delete.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from core.context import Role, TenantContext
from core.crew_specs import AgentSpec, placeholders
from core.crews import AgentView
from ui.dialogs import confirm
from ui.forms import FieldOptions, ModelForm
from ui.records import (
    SearchList,
    model_choices,
    placeholder_chips,
    placeholder_text,
    provider_choices,
    provider_models,
    save_record,
    shorten,
    tag,
    tool_choices,
)
from ui.tenant_page import Pages, PageView, record_id

WHAT_AN_AGENT_IS = (
    "An agent is someone your crews can give work to: a role, a goal and a backstory, "
    "the model it thinks with and the tools it may use."
)
TEXT_FIELDS = "role, goal or backstory"


def new_agent_button() -> None:
    tag(ui.button("New agent", icon="add", on_click=lambda: ui.navigate.to("/agents/new")), "new-agent")


class AgentList:
    """The list of agents with a search box; each row links to its editor."""

    def __init__(self, page: PageView, providers: dict[str, str], models: dict[str, list[str]]) -> None:
        self.page = page
        self.providers = providers  # id -> name
        self.models = models
        if page.can_edit:
            with ui.row().classes("items-center gap-2"):
                new_agent_button()
        self.list = SearchList[AgentView](
            page,
            testid="agents",
            label="Search agents by name or role",
            load=lambda ctx, search: page.services.crews.list_agents(ctx, search),
            row=self.row,
            empty=self.empty,
        )

    def empty(self) -> None:
        with tag(ui.column().classes("w-full items-start gap-2 py-6"), "agents-empty"):
            ui.label("No agents yet.").classes("text-lg")
            ui.label(WHAT_AN_AGENT_IS).classes("text-slate-600")
            if self.page.can_edit:
                ui.label("Create one, then give it tasks and put it in a crew.").classes("text-slate-600")
                new_agent_button()
            else:
                ui.label("Editors of this workspace can create them.").classes("text-slate-600")

    def row(self, agent: AgentView) -> None:
        provider_id = str(agent.provider_id) if agent.provider_id else None
        provider = self.providers.get(provider_id, "a deleted provider") if provider_id else None
        first = self.models.get(provider_id or "", [])[:1]
        model = agent.model or (f"{first[0]} (the provider's first)" if first else "the default model")
        with tag(ui.card().classes("w-full gap-1"), "agent-row").props(f'data-agent="{agent.name}"'):
            with ui.row().classes("w-full items-baseline gap-3"):
                tag(ui.link(agent.name, f"/agents/{agent.id}").classes("font-mono text-base"), "agent-link")
                tag(ui.label(shorten(agent.role, 90)).classes("text-slate-600"), "agent-role")
            details = [f"model: {model}" + (f" on {provider}" if provider else "")]
            details.append(f"{len(agent.tool_ids)} tool{'s' if len(agent.tool_ids) != 1 else ''}")
            tag(ui.label(" · ".join(details)).classes("text-sm text-slate-600"), "agent-details")
            placeholder_chips(agent.placeholders, "agent-placeholders")


class AgentEditor:
    """The form of one agent (new when `agent` is None), its live placeholders, Save and Delete."""

    def __init__(
        self,
        page: PageView,
        agent: AgentView | None,
        providers: dict[str, str],
        models: dict[str, list[str]],
        tools: dict[str, str],
    ) -> None:
        self.page = page
        self.agent = agent
        self.models = models
        self.provider = str(agent.provider_id) if agent and agent.provider_id else None
        self.model_select: ui.select | None = None
        tag(ui.link("← all agents", "/agents").classes("text-sm"), "agents-back")
        if not tools and page.can_edit:
            with tag(ui.row().classes("items-center gap-2"), "agent-no-tools"):
                ui.label("No saved tools yet: agents can only use tools saved in this workspace.")
                ui.link("Create a tool", "/tools/new")
        self.form = ModelForm(
            AgentSpec,
            value=agent,
            on_submit=self.save,
            submit_label="Create agent" if agent is None else "Save",
            read_only=not page.can_edit,
            testid="agent",
            fields={
                "name": FieldOptions(placeholder="researcher"),
                "role": FieldOptions(placeholder="Senior {topic} researcher"),
                "goal": FieldOptions(placeholder="Find the most relevant news about {topic}"),
                "provider_id": FieldOptions(
                    label="Provider",
                    choices=providers,
                    help="The LLM provider it thinks with; empty for the workspace's default.",
                ),
                "model": FieldOptions(
                    widget="select",
                    choices=model_choices(models, self.provider),
                    help="Pick one of the provider's models or type another; empty for the provider's first.",
                    after=self._model_control,
                ),
                "tool_ids": FieldOptions(label="Tools", choices=tools),
                "max_iter": FieldOptions(label="Step limit"),
                "max_execution_time": FieldOptions(label="Time limit (seconds)"),
            },
        )
        self.inputs = tag(ui.label().classes("text-slate-700"), "agent-inputs")
        self.show_inputs(self.form.values())
        self.form.on_change(self.changed)
        self.meta = tag(ui.label().classes("text-sm text-slate-500"), "agent-meta")
        self.show_meta()
        if agent is not None and page.can_edit:
            delete = page.action(self.delete, Role.EDITOR)
            tag(ui.button("Delete", icon="delete", color="negative", on_click=delete), "agent-delete").props("outline")

    def show_meta(self) -> None:
        agent = self.agent
        self.meta.set_visibility(agent is not None)
        if agent is not None:
            created, saved = f"{agent.created_at:%Y-%m-%d %H:%M}", f"{agent.updated_at:%Y-%m-%d %H:%M}"
            self.meta.set_text(f"Created {created} · last saved {saved} (UTC)")

    def _model_control(self, control: ui.element) -> None:
        """The model select also takes a name typed by hand (a model the provider lists nowhere)."""
        if isinstance(control, ui.select):
            self.model_select = control
            if not self.form_read_only:
                control.props("new-value-mode=add-unique use-input fill-input hide-selected input-debounce=0")

    @property
    def form_read_only(self) -> bool:
        return not self.page.can_edit

    def show_inputs(self, values: dict[str, Any]) -> None:
        names = placeholders(values.get("role"), values.get("goal"), values.get("backstory"))
        self.inputs.set_text(placeholder_text(names, record="agent", fields=TEXT_FIELDS))

    def changed(self, values: dict[str, Any]) -> None:
        self.show_inputs(values)
        provider = values.get("provider_id") or None
        if provider != self.provider:
            self.provider = provider
            self.offer_models(provider, values.get("model"))

    def offer_models(self, provider: str | None, current: str | None) -> None:
        """Offer the chosen provider's models; a model it does not list is cleared (it would not run there)."""
        if self.model_select is None:
            return
        choices = model_choices(self.models, provider)
        if current and current not in choices:
            current = None
        self.model_select.set_options(choices, value=current)

    async def save(self, spec: AgentSpec) -> None:
        crews = self.page.services.crews
        saved = await save_record(
            self.page,
            self.agent,
            kind="agent",
            path="/agents",
            create=lambda ctx: crews.create_agent(ctx, spec),
            update=lambda ctx, agent_id: crews.update_agent(ctx, agent_id, spec),
        )
        if saved is not None:
            self.agent = saved
            self.show_meta()

    async def delete(self, ctx: TenantContext) -> None:
        if self.agent is None:
            return
        name = self.agent.name
        if not await confirm(f"Delete the agent '{name}'?", detail="Tasks and crews must not use it any more."):
            return
        await self.page.services.crews.delete_agent(ctx, self.agent.id)  # a Conflict names who uses it
        ui.notify(f"Deleted agent '{name}'")
        ui.navigate.to("/agents")


async def _pickers(page: PageView) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    services, ctx = page.services, page.ctx
    return (
        await provider_choices(services, ctx),
        await provider_models(services, ctx),
        await tool_choices(services, ctx),
    )


def register(pages: Pages) -> None:
    """Add /agents, /agents/new and /agents/{agent_id}."""

    @pages.tenant_page("/agents", Role.VIEWER, title="Agents")
    async def agents_page(page: PageView) -> None:
        views = await page.services.llm_stack.providers.list(page.ctx)
        names = {str(view.id): view.name for view in views}
        list_view = AgentList(page, names, {str(view.id): list(view.models) for view in views})
        await list_view.list.fill(page.ctx)

    # Registered before /agents/{agent_id}, so "new" is never read as an id.
    @pages.tenant_page("/agents/new", Role.EDITOR, title="Agent")
    async def new_agent_page(page: PageView) -> None:
        page.heading.set_text("New agent")
        AgentEditor(page, None, *await _pickers(page))

    @pages.tenant_page("/agents/{agent_id}", Role.VIEWER, title="Agent")
    async def agent_page(page: PageView, agent_id: str) -> None:
        agent = await page.services.crews.get_agent(page.ctx, record_id(agent_id))
        page.heading.set_text(agent.name)
        AgentEditor(page, agent, *await _pickers(page))
