"""`ui.forms.ModelForm`: forms rendered from pydantic models, driven by NiceGUI's simulated user (no browser)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any, Literal

from nicegui import ui
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from core.crew_specs import AgentSpec, CrewSpec
from core.errors import Conflict, InvalidInput, Problem
from core.providers import ProviderInput
from core.text import JsonObject
from ui.forms import FieldOptions, ModelForm


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    street: str = Field(max_length=100)
    city: str = Field(default="Berlin", max_length=100)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=100)
    minutes: int = Field(default=5, ge=1)


class Recipe(BaseModel):
    """A small model with one of everything the forms render."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100, description="What it is called.")
    notes: str | None = Field(default=None, max_length=100)
    servings: int | None = Field(default=None, ge=1, le=20)
    rating: float = Field(default=2.5, ge=0, le=5)
    vegan: bool = False
    kind: Literal["starter", "main", "dessert"] = "main"
    colour: Colour | None = None
    address: Address
    steps: list[Step] = Field(default_factory=list, max_length=3)
    labels: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    extra: JsonObject | None = None
    story: str = Field(default="", max_length=5000)


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: int = 0
    end: int = 10

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end < self.start:
            raise ValueError("end must not come before start")
        return self


FILLED_AGENT = {"name": "researcher", "role": "Senior {topic} researcher", "goal": "Find out"}


class Calls:
    """An `on_submit` that records what it got, and raises `error` if one is set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.models: list[BaseModel] = []
        self.error = error
        self.release: asyncio.Event | None = None

    async def __call__(self, model: BaseModel) -> None:
        self.models.append(model)
        if self.release is not None:
            await self.release.wait()
        if self.error is not None:
            raise self.error


@asynccontextmanager
async def page(make: Callable[[], ModelForm[Any]]) -> AsyncIterator[tuple[User, ModelForm[Any]]]:
    """Open a page holding the form `make` builds; yields the simulated user and the form."""
    made: list[ModelForm[Any]] = []

    def build() -> None:
        made.append(make())

    async with user_simulation(root=build) as user:
        await user.open("/")
        yield user, made[0]


def control(user: User, testid: str) -> Any:
    (element,) = user.find(marker=testid).elements
    return element


def error_of(user: User, testid: str) -> str | None:
    element = control(user, testid)
    return element.props.get("error-message") if element.props.get("error") else None


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_every_problem_shows_under_its_own_field_at_once() -> None:
    calls = Calls()
    async with page(lambda: ModelForm(AgentSpec, on_submit=calls, testid="agent")) as (user, form):
        user.find(marker="agent-name").type("Bad Name")
        form.set_values({"max_iter": 0})
        user.find(marker="agent-submit").click()
        await user.should_see("Input should be greater than or equal to 1")

        assert "snake_case" in (error_of(user, "agent-name") or "")
        assert error_of(user, "agent-role") == "Field required"
        assert error_of(user, "agent-goal") == "Field required"
        assert error_of(user, "agent-max_iter") == "Input should be greater than or equal to 1"
        assert error_of(user, "agent-backstory") is None
        assert control(user, "agent-role").props["aria-invalid"] == "true"
        assert "aria-invalid" not in control(user, "agent-backstory").props
        await user.should_not_see(marker="agent-error")
        assert calls.models == []
        assert user.notify.messages == []


async def test_editing_a_field_clears_its_own_error_only() -> None:
    async with page(lambda: ModelForm(AgentSpec, testid="agent")) as (user, form):
        assert form.validate() is None
        user.find(marker="agent-role").type("Writer")
        assert error_of(user, "agent-role") is None
        assert "aria-invalid" not in control(user, "agent-role").props
        assert error_of(user, "agent-goal") == "Field required"


async def test_enter_in_an_input_submits_a_validated_model() -> None:
    calls = Calls()
    async with page(lambda: ModelForm(AgentSpec, value=FILLED_AGENT, on_submit=calls, testid="agent")) as (user, _):
        user.find(marker="agent-name").trigger("keydown.enter")
        await settle()

        assert calls.models == [AgentSpec(**FILLED_AGENT)]
        agent = calls.models[0]
        assert isinstance(agent, AgentSpec)
        assert agent.provider_id is None  # empty optional input -> None, not ""
        assert agent.model is None
        assert agent.max_iter == 25  # untouched default


async def test_enter_in_a_textarea_does_not_submit() -> None:
    calls = Calls()
    async with page(lambda: ModelForm(AgentSpec, value=FILLED_AGENT, on_submit=calls, testid="agent")) as (user, _):
        user.find(marker="agent-role").trigger("keydown.enter")
        await settle()
        assert calls.models == []


async def test_invalid_input_from_on_submit_shows_under_its_fields() -> None:
    calls = Calls(
        InvalidInput(
            "crew refused",
            problems=[
                Problem("inputs.topic", "is not used by any agent or task"),
                Problem("agent_ids.1", "no agent with this id"),
                Problem("name", "a crew named research exists"),
                Problem("budget", "is over the limit"),
            ],
        )
    )
    value = {"name": "research", "inputs": {"topic": "AI", "tone": "dry"}, "agent_ids": [str(uuid.uuid4())] * 2}
    async with page(lambda: ModelForm(CrewSpec, value=value, on_submit=calls, testid="crew")) as (user, form):
        await form.submit()

        assert len(calls.models) == 1
        assert error_of(user, "crew-inputs.0.value") == "is not used by any agent or task"
        assert error_of(user, "crew-inputs.1.value") is None
        assert error_of(user, "crew-agent_ids") == "item 2: no agent with this id"
        assert error_of(user, "crew-name") == "a crew named research exists"
        await user.should_see(marker="crew-error", content="budget: is over the limit")
        assert user.notify.messages == []


async def test_a_core_error_from_on_submit_shows_in_the_form_box() -> None:
    calls = Calls(Conflict("an agent named researcher exists already; choose another name"))
    async with page(lambda: ModelForm(AgentSpec, value=FILLED_AGENT, on_submit=calls, testid="agent")) as (user, form):
        await user.should_not_see(marker="agent-error")
        await form.submit()

        box = control(user, "agent-error")
        assert box.text == "an agent named researcher exists already; choose another name"
        assert box.props["role"] == "alert"
        assert user.notify.messages == []
        await form.submit()  # a second failure does not repeat the message
        assert box.text == "an agent named researcher exists already; choose another name"


async def test_submit_is_disabled_while_on_submit_runs() -> None:
    calls = Calls()
    calls.release = asyncio.Event()
    async with page(lambda: ModelForm(AgentSpec, value=FILLED_AGENT, on_submit=calls, testid="agent")) as (user, form):
        running = asyncio.create_task(form.submit())
        await settle()
        assert not control(user, "agent-submit").enabled
        user.find(marker="agent-name").trigger("keydown.enter")
        await form.submit()
        assert len(calls.models) == 1

        calls.release.set()
        await running
        assert control(user, "agent-submit").enabled
        assert len(calls.models) == 1


async def test_read_only_renders_no_submit_and_locks_every_control() -> None:
    calls = Calls()
    value = {**FILLED_AGENT, "allow_delegation": True}
    async with page(lambda: ModelForm(AgentSpec, value=value, on_submit=calls, read_only=True, testid="agent")) as (
        user,
        form,
    ):
        await user.should_not_see(marker="agent-submit")
        for field in AgentSpec.model_fields:
            element = control(user, f"agent-{field}")
            assert element.props.get("readonly") or not element.enabled, field
        user.find(marker="agent-name").trigger("keydown.enter")
        await form.submit()
        assert calls.models == []
        assert control(user, "agent-allow_delegation").value is True


async def test_values_round_trip_through_set_values_and_validate() -> None:
    value = {
        "name": "Soup",
        "notes": "hot",
        "servings": 4,
        "rating": 4.5,
        "vegan": True,
        "kind": "starter",
        "colour": Colour.GREEN,
        "address": {"street": "Main St 1", "city": "Hamburg"},
        "steps": [{"title": "Chop", "minutes": 10}, {"title": "Boil", "minutes": 20}],
        "labels": {"cuisine": "french"},
        "tags": ["quick", "cheap"],
        "extra": {"spicy": False, "level": [1, 2]},
        "story": "Line one\nline two",
    }
    async with page(lambda: ModelForm(Recipe, testid="recipe")) as (_, form):
        form.set_values(value)
        typed = form.values()
        assert typed["colour"] == "green"
        assert typed["extra"].startswith("{")  # JSON is edited as text
        assert typed["servings"] == 4
        assert isinstance(typed["servings"], int)

        assert form.validate() == Recipe.model_validate(value)

        form.set_values(form.values())
        assert form.values() == typed
        form.set_values(Recipe.model_validate(value))  # a model instance works too
        assert form.values() == typed


async def test_empty_optionals_submit_as_none_and_defaults_stay() -> None:
    async with page(lambda: ModelForm(Recipe, testid="recipe")) as (user, form):
        user.find(marker="recipe-name").type("Soup")
        user.find(marker="recipe-address.street").type("Main St 1")
        assert form.values()["notes"] == ""
        assert control(user, "recipe-rating").value == 2.5
        assert control(user, "recipe-address.city").value == "Berlin"

        recipe = form.validate()
        assert recipe == Recipe(name="Soup", address=Address(street="Main St 1"))
        assert recipe is not None
        assert recipe.notes is None
        assert recipe.servings is None
        assert recipe.colour is None
        assert recipe.extra is None


async def test_nested_objects_render_as_fieldsets_and_route_problems() -> None:
    async with page(lambda: ModelForm(Recipe, testid="recipe")) as (user, form):
        fieldset = control(user, "recipe-address")
        assert fieldset.tag == "fieldset"
        assert form.validate() is None
        assert error_of(user, "recipe-address.street") == "Field required"
        assert error_of(user, "recipe-name") == "Field required"


async def test_lists_of_objects_add_and_remove_items() -> None:
    async with page(lambda: ModelForm(Recipe, value={"name": "Soup", "address": {"street": "x"}}, testid="r")) as (
        user,
        form,
    ):
        add = user.find(marker="r-steps-add")
        add.click()
        add.click()
        add.click()
        assert not control(user, "r-steps-add").enabled  # max_length=3
        user.find(marker="r-steps.0.title").type("Chop")
        user.find(marker="r-steps.1.title").type("Boil")
        user.find(marker="r-steps.2.title").type("Serve")
        remove = control(user, "r-steps.1-remove")
        assert remove.props["aria-label"] == "Remove Steps: item 2"

        user.find(marker="r-steps.1-remove").click()
        assert form.values()["steps"] == [{"title": "Chop", "minutes": 5}, {"title": "Serve", "minutes": 5}]
        assert control(user, "r-steps-add").enabled

        form.set_values({"steps": [{"title": "Chop"}, {"title": ""}]})
        assert form.validate() is None
        assert error_of(user, "r-steps.1.title") == "Field required"  # empty required input: left out
        assert error_of(user, "r-steps.0.title") is None


async def test_key_value_rows_edit_a_dict_of_strings() -> None:
    async with page(lambda: ModelForm(Recipe, value={"name": "Soup", "address": {"street": "x"}}, testid="r")) as (
        user,
        form,
    ):
        user.find(marker="r-labels-add").click()
        user.find(marker="r-labels.0.key").type("cuisine")
        user.find(marker="r-labels.0.value").type("french")
        user.find(marker="r-labels-add").click()
        user.find(marker="r-labels.1.key").type("diet")
        assert form.values()["labels"] == {"cuisine": "french", "diet": ""}
        recipe = form.validate()
        assert recipe is not None
        assert recipe.labels == {"cuisine": "french", "diet": ""}

        user.find(marker="r-labels.1.key").type("x")
        user.find(marker="r-labels-add").click()
        user.find(marker="r-labels.2.key").type("cuisine")
        assert form.validate() is None
        await user.should_see(marker="r-labels-error", content="'cuisine' is named twice; keep one of them")

        user.find(marker="r-labels.0-remove").click()
        await user.should_not_see(marker="r-labels-error")  # editing clears the group's problem
        assert form.values()["labels"] == {"dietx": "", "cuisine": ""}


async def test_json_fields_must_hold_a_json_object() -> None:
    async with page(lambda: ModelForm(Recipe, value={"name": "Soup", "address": {"street": "x"}}, testid="r")) as (
        user,
        form,
    ):
        user.find(marker="r-extra").type("{not json")
        assert form.validate() is None
        assert (error_of(user, "r-extra") or "").startswith("is not valid JSON")
        await user.should_not_see(marker="r-error")

        form.set_values({"extra": "[1, 2]"})
        assert form.validate() is None
        assert error_of(user, "r-extra") == 'must be a JSON object, such as {"name": "value"}'

        form.set_values({"extra": '{"depth": 1}'})
        recipe = form.validate()
        assert recipe is not None
        assert recipe.extra == {"depth": 1}


async def test_enums_and_literals_render_selects_of_their_values() -> None:
    async with page(lambda: ModelForm(Recipe, testid="r")) as (user, form):
        kind = control(user, "r-kind")
        assert isinstance(kind, ui.select)
        assert kind.options == {"starter": "starter", "main": "main", "dessert": "dessert"}
        assert kind.value == "main"
        assert not kind.props.get("clearable")  # not nullable: there is always a kind
        colour = control(user, "r-colour")
        assert isinstance(colour, ui.select)
        assert colour.props.get("clearable")

        user.find(marker="r-kind").click()
        user.find("dessert").click()
        assert form.values()["kind"] == "dessert"


async def test_numbers_and_switches_hold_typed_values() -> None:
    async with page(lambda: ModelForm(Recipe, testid="r")) as (user, form):
        servings = control(user, "r-servings")
        assert servings.props["min"] == 1
        assert servings.props["max"] == 20
        user.find(marker="r-servings").type("3")
        assert form.values()["servings"] == 3
        assert isinstance(form.values()["servings"], int)
        user.find(marker="r-vegan").click()
        assert form.values()["vegan"] is True

        form.set_values({"servings": 2.5, "name": "x", "address": {"street": "y"}})
        assert form.validate() is None
        assert "integer" in (error_of(user, "r-servings") or "")


async def test_choices_render_a_select_and_a_multiple_select_for_uuids() -> None:
    providers = {uuid.uuid4(): f"Provider {n}" for n in range(3)}
    tools = {str(uuid.uuid4()): f"Tool {n}" for n in range(10)}
    gone = uuid.uuid4()
    fields = {
        "provider_id": FieldOptions(choices=providers, label="Provider"),
        "tool_ids": FieldOptions(choices=lambda: tools),
    }
    value = {**FILLED_AGENT, "tool_ids": [uuid.UUID(next(iter(tools))), gone]}
    async with page(lambda: ModelForm(AgentSpec, value=value, fields=fields, testid="agent")) as (user, form):
        provider = control(user, "agent-provider_id")
        assert isinstance(provider, ui.select)
        assert not provider.multiple
        assert provider.props["label"] == "Provider"
        assert not provider.props.get("use-input")  # three options need no filter
        tool_ids = control(user, "agent-tool_ids")
        assert isinstance(tool_ids, ui.select)
        assert tool_ids.multiple
        assert tool_ids.props.get("use-input")  # ten options: searchable
        assert tool_ids.value == [next(iter(tools)), str(gone)]  # a deleted tool stays visible

        chosen = next(iter(providers))
        form.set_values({"provider_id": chosen, "tool_ids": [next(iter(tools))]})
        agent = form.validate()
        assert agent is not None
        assert agent.provider_id == chosen
        assert agent.tool_ids == [uuid.UUID(next(iter(tools)))]


async def test_labels_mark_required_fields_and_link_their_help() -> None:
    async with page(lambda: ModelForm(AgentSpec, testid="agent")) as (user, _):
        name = control(user, "agent-name")
        assert name.props["label"] == "Name *"
        assert name.props["aria-required"] == "true"
        (help_label,) = [e for e in user.find(kind=ui.label).elements if e.html_id == name.props["aria-describedby"]]
        assert help_label.text == "snake_case, unique in the workspace, e.g. researcher."
        assert "cc-field-help" in help_label.classes
        backstory = control(user, "agent-backstory")
        assert backstory.props["label"] == "Backstory"
        assert "aria-required" not in backstory.props
        assert isinstance(backstory, ui.textarea)  # long text
        assert isinstance(control(user, "agent-model"), ui.input)
        assert not isinstance(control(user, "agent-model"), ui.textarea)


async def test_secrets_are_never_put_back_into_the_page() -> None:
    value = ProviderInput(name="Main", kind="openai", api_key=SecretStr("sk-secret"))
    async with page(lambda: ModelForm(ProviderInput, value=value, testid="p")) as (user, form):
        key = control(user, "p-api_key")
        assert key.props["type"] == "password"
        assert key.value == ""
        user.find(marker="p-api_key").type("sk-new")
        provider = form.validate()
        assert provider is not None
        assert provider.api_key is not None
        assert provider.api_key.get_secret_value() == "sk-new"


async def test_problems_below_a_chips_field_and_without_a_field() -> None:
    async with page(lambda: ModelForm(ProviderInput, testid="p")) as (user, form):
        form.show_problems([Problem("models.3", "is too long"), Problem("input", "nothing works")])
        assert error_of(user, "p-models") == "item 4: is too long"
        await user.should_see(marker="p-error", content="nothing works")
        form.clear_problems()
        assert error_of(user, "p-models") is None
        await user.should_not_see(marker="p-error")


async def test_a_model_wide_problem_goes_to_the_form_box() -> None:
    async with page(lambda: ModelForm(Window, value={"start": 5, "end": 1}, testid="w")) as (user, form):
        assert form.validate() is None
        await user.should_see(marker="w-error", content="end must not come before start")


async def test_hidden_fields_carry_their_value_and_excluded_fields_keep_defaults() -> None:
    fields = {"rating": FieldOptions(hidden=True)}
    value = {"name": "Soup", "address": {"street": "x"}, "rating": 4.0}
    async with page(lambda: ModelForm(Recipe, value=value, fields=fields, exclude=["story"], testid="r")) as (
        user,
        form,
    ):
        await user.should_not_see(marker="r-rating")
        await user.should_not_see(marker="r-story")
        recipe = form.validate()
        assert recipe is not None
        assert recipe.rating == 4.0
        assert recipe.story == ""


async def test_on_change_reports_the_values_as_typed() -> None:
    seen: list[dict[str, Any]] = []
    async with page(lambda: ModelForm(AgentSpec, testid="agent")) as (user, form):
        form.on_change(seen.append)
        user.find(marker="agent-role").type("Senior {topic} researcher")
        assert seen[-1]["role"] == "Senior {topic} researcher"
        form.set_values({"goal": "Find {question}"})
        assert seen[-1]["goal"] == "Find {question}"
