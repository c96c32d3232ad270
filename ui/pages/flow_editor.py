"""The flow editor page, `/flows/{id}/edit`: full-screen palette, canvas and properties (`ui.flow_editor`).

Viewers open it read-only (they see the flow, its problems, its versions and its runs); editors
edit and run, and every change is kept in the flow's draft as it is made. `?run=<execution id>`
shows that run's node states on the canvas (the links from a trace and from the inbox).
"""

from __future__ import annotations

from core.context import Role
from ui.editor_properties import Pickers
from ui.editor_session import EditorSession
from ui.flow_editor import Editor
from ui.tenant_page import Pages, PageView, record_id


def register(pages: Pages) -> None:
    @pages.tenant_page("/flows/{flow_id}/edit", Role.VIEWER, title="Flow editor", full_screen=True)
    async def flow_editor_page(page: PageView, flow_id: str, run: str | None = None) -> None:
        flow = await page.services.flows.get(page.ctx, record_id(flow_id))
        page.heading.set_text(flow.name)
        session = await EditorSession.open(page.services, page.ctx, flow.id)
        if session.draft.problems is None:
            session.problems = await page.services.flows.validate(page.ctx, session.document, flow_id=flow.id)
        pickers = await Pickers.load(page, page.ctx)
        editor = Editor(page, flow, session, pickers)
        editor.draw()
        if run:
            await editor.show_run(record_id(run))
