"""The shell every workspace page shares: session and role checks, not-found pages, navigation."""

from __future__ import annotations

import uuid

from nicegui import ui
from nicegui.testing.user import User

from core.context import Role, TenantContext
from core.errors import Conflict, NotFound
from tests.ui.conftest import sign_in
from ui.tenant_page import Pages, PageView, record_id
from wiring.services import Services

KNOWN = uuid.UUID("00000000-0000-4000-8000-000000000001")


def add_probe_page(services: Services) -> list[TenantContext]:
    """`/probe/{item_id}` (editor and up): KNOWN exists, other ids are not found; a button fails with a Conflict."""
    seen: list[TenantContext] = []

    @Pages(services).tenant_page("/probe/{item_id}", Role.EDITOR, title="Probe")
    async def probe(page: PageView, item_id: str) -> None:
        if record_id(item_id) != KNOWN:
            raise NotFound(f"no item {item_id}")
        page.heading.set_text("Probe item")
        ui.label(f"role {page.ctx.role}").props('data-testid="probe-role"')

        async def clash(ctx: TenantContext) -> None:
            seen.append(ctx)
            raise Conflict("that name is taken; pick another one")

        ui.button("Clash", on_click=page.action(clash, Role.EDITOR)).props('data-testid="probe-clash"')

    return seen


async def test_signed_out_visitor_is_sent_to_login_and_back(user: User, ui_services: Services) -> None:
    add_probe_page(ui_services)
    response = await user.http_client.get(f"/probe/{KNOWN}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/probe/{KNOWN}"


async def test_a_page_gets_the_context_and_reports_errors_of_its_handlers(user: User, ui_services: Services) -> None:
    seen = add_probe_page(ui_services)
    account = await sign_in(user, ui_services)
    await user.open(f"/probe/{KNOWN}")
    await user.should_see("Probe item")
    await user.should_see("role owner")
    user.find("Clash").click()
    await user.should_see("that name is taken; pick another one")
    assert [ctx.tenant_id for ctx in seen] == [account.ctx.tenant_id]


async def test_a_role_too_low_sees_why_inside_the_shell(user: User, ui_services: Services) -> None:
    add_probe_page(ui_services)
    owner = await sign_in(User(user.http_client), ui_services)  # another browser would do; only the workspace counts
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    response = await user.http_client.get(f"/probe/{KNOWN}")
    assert response.status_code == 403
    assert "needs &#x27;editor&#x27; or higher" in response.text or "needs 'editor' or higher" in response.text
    assert 'data-testid="nav"' in response.text or "nav-drawer" in response.text


async def test_unknown_and_malformed_ids_are_the_not_found_page(user: User, ui_services: Services) -> None:
    add_probe_page(ui_services)
    await sign_in(user, ui_services)
    for item in (str(uuid.uuid4()), "not-an-id"):
        response = await user.http_client.get(f"/probe/{item}")
        assert response.status_code == 404
        assert "not-found" in response.text
        assert "nav-drawer" in response.text  # inside the shell, with the way back


async def test_unknown_addresses_get_the_not_found_page_and_the_api_stays_json(
    user: User, ui_services: Services
) -> None:
    await sign_in(user, ui_services)
    page = await user.http_client.get("/no/such/page")
    assert page.status_code == 404
    assert "not-found" in page.text
    assert "nav-drawer" in page.text
    api = await user.http_client.get("/api/no-such-route")
    assert api.status_code == 404
    assert api.json() == {"detail": "Not Found"}
