"""The `human` node: the run waits until a person approves, edits or rejects a value.

When the node runs it renders its prompt and the value under review (by default what the
node upstream produced) and asks the engine to wait. The execution pauses, durably: it
holds nothing while it waits, and a response through the API (in any process, also after
a restart) continues it. `approve` passes the value on, `edit` passes a replacement,
`reject` ends the run with the reason (or, with `on_reject: branch`, takes the `rejected`
handle). An optional deadline applies `on_timeout` when nobody answers in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints

from core.text import Text
from executor.errors import NodeFailed, TemplateError
from executor.nodes.base import Handle, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType
from executor.registry import register

Action = Literal["approve", "reject", "edit"]
#: An address to tell that a response is awaited (mail goes out only when SMTP is configured).
Address = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$", max_length=254)]
_FAIL_HANDLES = (Handle("out"),)
_BRANCH_HANDLES = (Handle("approved", "Approved"), Handle("rejected", "Rejected"))


class HumanData(NodeData):
    """What the person is asked, what they review, and what happens without an answer."""

    prompt: Annotated[Text, StringConstraints(min_length=1)] = Field(
        default="Please review and approve.",
        description="What the person is asked (a template), e.g. Publish this summary of {{ inputs.topic }}?",
    )
    value: Text = Field(
        default="",
        description="The value under review (a template); empty: the output of the node upstream.",
    )
    allow_edit: bool = Field(default=True, description="Whether the person may replace the value (edit).")
    on_reject: Literal["fail", "branch"] = Field(
        default="fail",
        description="fail: a rejection ends the run with the reason; branch: it takes the 'rejected' handle.",
    )
    respond_within_s: float | None = Field(
        default=None, gt=0, le=90 * 86_400, description="Apply on_timeout when nobody answered in this long."
    )
    on_timeout: Literal["approve", "reject"] = Field(default="reject", description="The answer given at the deadline.")
    notify: list[Address] = Field(
        default_factory=list, max_length=20, description="Mail these addresses when the run starts waiting."
    )


@register
class HumanNode(NodeType[HumanData]):
    """Pauses the run for a person's approve / edit / reject."""

    type = "human"
    data_model = HumanData
    meta = NodeMeta(
        label="Human approval",
        category="Flow",
        icon="how_to_reg",
        help="Pauses the run until a person approves, edits or rejects the value; the run may wait for days.",
    )
    outputs: ClassVar[tuple[Handle, ...]] = _FAIL_HANDLES

    def output_handles(self, data: HumanData) -> tuple[Handle, ...]:
        return _BRANCH_HANDLES if data.on_reject == "branch" else _FAIL_HANDLES

    def templates(self, data: HumanData) -> dict[str, str]:
        return {"prompt": data.prompt, "value": data.value}

    def handles_of(self, data: HumanData, output: Any) -> frozenset[str] | None:
        if data.on_reject != "branch":
            return None
        rejected = isinstance(output, dict) and output.get("rejected") is True
        return frozenset({"rejected" if rejected else "approved"})

    async def run(self, data: HumanData, ctx: NodeContext) -> NodeOutcome:
        try:
            prompt = ctx.render(data.prompt)
            proposal = ctx.render_value(data.value) if data.value else _upstream(ctx.upstream)
        except TemplateError as exc:
            raise NodeFailed(str(exc)) from exc
        actions = ["approve", "reject", *(["edit"] if data.allow_edit else [])]
        due = None
        if data.respond_within_s is not None:
            due = (datetime.now(UTC) + timedelta(seconds=data.respond_within_s)).isoformat()
        wait = {
            "reason": "human",
            "prompt": prompt,
            "proposal": proposal,
            "actions": actions,
            "due_at": due,
            "on_timeout": data.on_timeout if due else None,
            "notify": list(data.notify),
        }
        return NodeOutcome(wait=wait)

    def answer(self, data: HumanData, waiting: Mapping[str, Any], response: Mapping[str, Any]) -> NodeOutcome:
        action = response.get("action")
        taken = frozenset({"approved"}) if data.on_reject == "branch" else None
        if action == "approve":
            return NodeOutcome(output=waiting.get("proposal"), taken=taken)
        if action == "edit":
            return NodeOutcome(output=response.get("output"), taken=taken)
        reason = str(response.get("reason") or "").strip()
        who = "the deadline" if response.get("by") == "timeout" else "a person"
        if data.on_reject == "branch":
            output = {"rejected": True, "reason": reason, "by": response.get("by")}
            return NodeOutcome(output=output, taken=frozenset({"rejected"}))
        raise NodeFailed(f"rejected by {who}" + (f": {reason}" if reason else " (no reason given)"))


def _upstream(outputs: Mapping[str, Any]) -> Any:
    """The value under review by default: the one upstream node's output, or all of them by node id."""
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    return dict(outputs) if outputs else None
