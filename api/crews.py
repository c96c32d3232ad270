"""`/api/agents`, `/api/tasks`, `/api/crews`: the records CrewAI crews are built from.

Every save is checked against what the tenant has now (422 naming each wrong field); a
name that is taken, or a record that others still use when it is deleted, is a 409.
A crew's `problems` say what would stop it from running today.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentContext, ServicesDep
from api.errors import BODY_ERRORS, IN_TENANT, responses
from api.fields import ShortLine
from core.crew_specs import AgentSpec, CrewSpec, TaskSpec
from core.crews import AgentView, CrewView, TaskView

router = APIRouter(tags=["crews"], responses=responses(*IN_TENANT))

Search = Annotated[
    ShortLine | None,
    Query(description="Only records whose name, or role (agents) or description (tasks, crews), contains this."),
]


def _no_content() -> Response:
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- agents --------------------------------------------------------------------------------


@router.get("/api/agents", summary="The tenant's agents, by name (viewer)")
async def list_agents(ctx: CurrentContext, services: ServicesDep, search: Search = None) -> list[AgentView]:
    return await services.crews.list_agents(ctx, search)


@router.post(
    "/api/agents",
    status_code=status.HTTP_201_CREATED,
    summary="Create an agent (editor)",
    responses=responses(*BODY_ERRORS, 409),
)
async def create_agent(body: AgentSpec, ctx: CurrentContext, services: ServicesDep) -> AgentView:
    return await services.crews.create_agent(ctx, body)


@router.get("/api/agents/{agent_id}", summary="One agent (viewer)")
async def get_agent(agent_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> AgentView:
    return await services.crews.get_agent(ctx, agent_id)


@router.put("/api/agents/{agent_id}", summary="Replace an agent (editor)", responses=responses(*BODY_ERRORS, 409))
async def update_agent(agent_id: uuid.UUID, body: AgentSpec, ctx: CurrentContext, services: ServicesDep) -> AgentView:
    return await services.crews.update_agent(ctx, agent_id, body)


@router.delete(
    "/api/agents/{agent_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an agent no task or crew uses (editor)",
    responses=responses(409),
)
async def delete_agent(agent_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.crews.delete_agent(ctx, agent_id)
    return _no_content()


# -- tasks ---------------------------------------------------------------------------------


@router.get("/api/tasks", summary="The tenant's tasks, by name (viewer)")
async def list_tasks(ctx: CurrentContext, services: ServicesDep, search: Search = None) -> list[TaskView]:
    return await services.crews.list_tasks(ctx, search)


@router.post(
    "/api/tasks",
    status_code=status.HTTP_201_CREATED,
    summary="Create a task (editor)",
    responses=responses(*BODY_ERRORS, 409),
)
async def create_task(body: TaskSpec, ctx: CurrentContext, services: ServicesDep) -> TaskView:
    return await services.crews.create_task(ctx, body)


@router.get("/api/tasks/{task_id}", summary="One task (viewer)")
async def get_task(task_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> TaskView:
    return await services.crews.get_task(ctx, task_id)


@router.put("/api/tasks/{task_id}", summary="Replace a task (editor)", responses=responses(*BODY_ERRORS, 409))
async def update_task(task_id: uuid.UUID, body: TaskSpec, ctx: CurrentContext, services: ServicesDep) -> TaskView:
    return await services.crews.update_task(ctx, task_id, body)


@router.delete(
    "/api/tasks/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a task that no crew or other task uses (editor)",
    responses=responses(409),
)
async def delete_task(task_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.crews.delete_task(ctx, task_id)
    return _no_content()


# -- crews ---------------------------------------------------------------------------------


@router.get("/api/crews", summary="The tenant's crews, by name, each with its problems (viewer)")
async def list_crews(ctx: CurrentContext, services: ServicesDep, search: Search = None) -> list[CrewView]:
    return await services.crews.list_crews(ctx, search)


@router.post(
    "/api/crews",
    status_code=status.HTTP_201_CREATED,
    summary="Create a crew that can run (editor)",
    responses=responses(*BODY_ERRORS, 409),
)
async def create_crew(body: CrewSpec, ctx: CurrentContext, services: ServicesDep) -> CrewView:
    return await services.crews.create_crew(ctx, body)


@router.get("/api/crews/{crew_id}", summary="One crew, with what would stop it from running now (viewer)")
async def get_crew(crew_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> CrewView:
    return await services.crews.get_crew(ctx, crew_id)


@router.put("/api/crews/{crew_id}", summary="Replace a crew (editor)", responses=responses(*BODY_ERRORS, 409))
async def update_crew(crew_id: uuid.UUID, body: CrewSpec, ctx: CurrentContext, services: ServicesDep) -> CrewView:
    return await services.crews.update_crew(ctx, crew_id, body)


@router.delete("/api/crews/{crew_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a crew (editor)")
async def delete_crew(crew_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.crews.delete_crew(ctx, crew_id)
    return _no_content()
