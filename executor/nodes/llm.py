"""The `llm` node: a prompt template sent to a model; its output is the reply (or the parsed JSON)."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Annotated, Any

import jsonschema
from pydantic import Field, StringConstraints, field_validator

from core.errors import CoreError
from core.llm.types import PASSTHROUGH_PARAMS, CallMeta, ChatRequest, LLMResult
from core.text import JsonObject, Line, Text
from core.tool_schemas import json_schema_or_none
from executor.errors import NodeFailed, TemplateError
from executor.nodes.base import NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType, ReferenceKind
from executor.registry import register

#: Streamed tokens are sent on as events at most this often; the UI gains nothing from more.
TOKEN_INTERVAL_S = 0.05
_FENCE = re.compile(r"\A\s*```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n\s*```\s*\Z", re.DOTALL)


class LLMData(NodeData):
    """The prompt, the model and how to call it."""

    provider_id: uuid.UUID | None = Field(default=None, description="The LLM provider; empty for the tenant default.")
    model: Annotated[Line, StringConstraints(max_length=200)] | None = Field(
        default=None, description="The model; empty for the provider's first model."
    )
    system: Text = Field(default="", description="System prompt (a template).")
    prompt: Annotated[Text, StringConstraints(min_length=1)] = Field(
        description="The user message (a template), e.g. Summarise {{ nodes.fetch.output }}."
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    json_schema: JsonObject | None = Field(
        default=None, description="When set, the reply must be JSON valid against this schema; the output is that JSON."
    )
    stream: bool = Field(default=True, description="Show the reply token by token while it is written.")

    _check_schema = field_validator("json_schema")(json_schema_or_none)


@register
class LLMNode(NodeType[LLMData]):
    """Renders the prompts, calls the model (streaming tokens as events) and outputs the reply."""

    type = "llm"
    data_model = LLMData
    meta = NodeMeta(
        label="LLM",
        category="AI",
        icon="smart_toy",
        help="Sends a prompt to a language model and outputs its reply, or JSON matching a schema.",
    )

    def templates(self, data: LLMData) -> dict[str, str]:
        found = {"prompt": data.prompt}
        if data.system:
            found["system"] = data.system
        return found

    def references(self, data: LLMData) -> list[tuple[ReferenceKind, str, str]]:
        return [("provider", str(data.provider_id), "provider_id")] if data.provider_id else []

    async def run(self, data: LLMData, ctx: NodeContext) -> NodeOutcome:
        request = _request(data, ctx)
        meta = CallMeta(execution_id=ctx.execution_id, node_id=ctx.node_id)
        try:
            if data.stream:
                result = await _stream(data, ctx, request, meta)
            else:
                result = await ctx.services.llm.complete(ctx.tenant, request, provider_id=data.provider_id, meta=meta)
        except CoreError as exc:
            raise NodeFailed(str(exc)) from exc
        ctx.usage.add(result.prompt_tokens, result.completion_tokens, result.cost_usd)
        if data.json_schema is None:
            return NodeOutcome(output=result.content)
        return NodeOutcome(output=_parse_reply(result.content, data.json_schema))


def _request(data: LLMData, ctx: NodeContext) -> ChatRequest:
    try:
        system = ctx.render(data.system) if data.system else ""
        prompt = ctx.render(data.prompt)
    except TemplateError as exc:
        raise NodeFailed(f"the prompt could not be rendered: {exc}") from exc
    params: dict[str, Any] = {}
    if data.json_schema is not None:
        # JSON mode only promises JSON, not this schema, and some providers have no JSON mode:
        # the schema always goes into the system prompt, the mode only where it is allowed.
        instruction = (
            "Answer with JSON only, no other text. The JSON must be valid against this JSON schema:\n"
            + json.dumps(data.json_schema, ensure_ascii=False)
        )
        system = f"{system}\n\n{instruction}" if system else instruction
        if "response_format" in PASSTHROUGH_PARAMS:
            params["response_format"] = {"type": "json_object"}
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return ChatRequest(
        messages=messages,
        model=data.model or None,
        temperature=data.temperature,
        max_tokens=data.max_tokens,
        params=params,
    )


async def _stream(data: LLMData, ctx: NodeContext, request: ChatRequest, meta: CallMeta) -> LLMResult:
    """Stream the reply, sending the text as `token` events at most every `TOKEN_INTERVAL_S`."""
    result: LLMResult | None = None
    pending: list[str] = []
    last_sent = float("-inf")
    async for chunk in ctx.services.llm.stream(ctx.tenant, request, provider_id=data.provider_id, meta=meta):
        if chunk.delta:
            pending.append(chunk.delta)
            now = time.monotonic()
            if now - last_sent >= TOKEN_INTERVAL_S:
                ctx.emit("token", {"text": "".join(pending)})
                pending.clear()
                last_sent = now
        if chunk.result is not None:
            result = chunk.result
    if pending:
        ctx.emit("token", {"text": "".join(pending)})
    if result is None:
        raise NodeFailed("the model's answer stream ended before its final result; try again")
    return result


def _parse_reply(content: str, schema: dict[str, Any]) -> Any:
    # Models often wrap JSON in a Markdown code fence even when told not to.
    fenced = _FENCE.match(content)
    text = fenced["body"] if fenced else content
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise NodeFailed(f"the model's reply is not JSON ({exc}); make the prompt ask for JSON only") from exc
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        raise NodeFailed(f"the model's reply does not match the JSON schema at {where}: {error.message}")
    return value
