"""Crews as CrewAI projects and flows as `crewai.flow/v1`: export, and import of a project.

`GET /api/crews/{id}/export` answers a zipped project that `crewai run` accepts (viewers);
`POST /api/crews/import` takes one as multipart (`file`: the zip, or `agents` and `tasks`:
its two YAML files) and answers what it created and every note on what it could not map
(editors; 422 and nothing created for an upload that is not a project, 413 for one over
20 MiB, refused before it is parsed when the body says its length).
`GET /api/flows/{id}/export/crewai` answers the declarative document where the flow maps,
and which nodes do not (viewers).

Nothing here imports CrewAI: the executor functions called here import it when they run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from api.deps import CurrentContext, ServicesDep
from api.errors import BODY_ERRORS, IN_TENANT, responses
from api.fields import ShortLine
from core.text import Name
from executor.crewai.declarative import DeclarativeExport, export_saved_flow
from executor.crewai.project import MAX_UPLOAD_BYTES, CrewProjects, ImportOptions, ImportReport, ProjectUpload
from wiring.services import Services

#: Room for the multipart framing and the form fields around the files.
_FORM_OVERHEAD = 64 * 1024
_TOO_LARGE = f"the upload is larger than the {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB a crew import accepts"
MAX_VERSION = 2**31 - 1


class _DeclaredSize(APIRoute):
    """Answers 413 for a body whose Content-Length is over the import limit, before the form is parsed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + _FORM_OVERHEAD:
                raise HTTPException(status_code=413, detail=f"{_TOO_LARGE}; upload a smaller project")
            return await handler(request)

        return checked


router = APIRouter(tags=["crews"], responses=responses(*IN_TENANT), route_class=_DeclaredSize)


def _projects(services: Services) -> CrewProjects:
    return CrewProjects(services.crews, services.tools, services.llm_stack.providers)


@router.get(
    "/api/crews/{crew_id}/export",
    summary="A crew as a zipped CrewAI project that `crewai run` accepts (viewer)",
    response_class=Response,
    responses={
        200: {
            "description": "The project: pyproject.toml, crew.py, main.py, config/*.yaml and tools/.",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def export_crew(crew_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    exported = await _projects(services).export(ctx, crew_id)
    return Response(
        exported.data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{exported.filename}"'},
    )


@router.post(
    "/api/crews/import",
    status_code=201,
    summary="New agents, tasks and a crew from a CrewAI project (editor)",
    responses=responses(*BODY_ERRORS, 409),
    openapi_extra={"requestBody": {"required": True}},
)
async def import_crew(
    ctx: CurrentContext,
    services: ServicesDep,
    file: Annotated[UploadFile | None, File(description="The zipped project (or send agents and tasks).")] = None,
    agents: Annotated[UploadFile | None, File(description="Its config/agents.yaml (with tasks).")] = None,
    tasks: Annotated[UploadFile | None, File(description="Its config/tasks.yaml (with agents).")] = None,
    name: Annotated[Name | None, Form(description="The crew's name; else the project's.")] = None,
    manager_provider_id: Annotated[
        uuid.UUID | None, Form(description="Hierarchical crews: the manager's provider.")
    ] = None,
    manager_model: Annotated[ShortLine | None, Form(description="Hierarchical crews: the manager's model.")] = None,
) -> ImportReport:
    uploads = [upload for upload in (file, agents, tasks) if upload is not None]
    if sum(upload.size or 0 for upload in uploads) > MAX_UPLOAD_BYTES:
        raise HTTPException(status_code=413, detail=f"{_TOO_LARGE}; upload a smaller project")
    upload = ProjectUpload(
        archive=file.file if file is not None else None,
        archive_name=(file.filename or "") if file is not None else "",
        agents=await agents.read(MAX_UPLOAD_BYTES + 1) if agents is not None else None,
        tasks=await tasks.read(MAX_UPLOAD_BYTES + 1) if tasks is not None else None,
    )
    options = ImportOptions(name=name, manager_provider_id=manager_provider_id, manager_model=manager_model or None)
    return await _projects(services).import_(ctx, upload, options)


@router.get(
    "/api/flows/{flow_id}/export/crewai",
    summary="A flow as CrewAI's declarative crewai.flow/v1 document, where it maps (viewer)",
)
async def export_flow_crewai(
    flow_id: uuid.UUID,
    ctx: CurrentContext,
    services: ServicesDep,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_VERSION, description="The version; the latest if left out.")
    ] = None,
) -> DeclarativeExport:
    return await export_saved_flow(
        ctx,
        flow_id,
        flows=services.flows,
        crews=services.crews,
        tools=services.tools,
        providers=services.llm_stack.providers,
        version=version,
    )
