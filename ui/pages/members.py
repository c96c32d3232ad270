"""/members: who belongs to the current tenant; admins invite, change roles and remove.

Every handler resolves the session again (`current_context`), so someone removed or
demoted meanwhile is stopped at their next click; core checks the role once more.
An invitation link is shown once, right after it is made; only its digest is stored.
With an address and a mail server (SMTP_*), the link is also mailed to that address.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from nicegui import ui
from nicegui.events import ValueChangeEventArguments
from starlette.responses import Response

from core.auth.members import MemberInfo
from core.context import Role, TenantContext
from core.errors import CoreError
from ui.dialogs import confirm
from ui.layout import frame
from ui.session import current_context, page_context
from wiring.services import Services


def assignable_roles(ctx: TenantContext) -> dict[str, str]:
    """The roles the caller may hand out (never owner, never above their own), weakest first."""
    return {r.value: r.value for r in Role if r is not Role.OWNER and r.rank <= ctx.role.rank}


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def register(services: Services) -> None:
    @ui.page("/members")
    async def members_page() -> Response | None:
        ctx = await page_context(services, Role.VIEWER)
        if not isinstance(ctx, TenantContext):
            return ctx
        with frame("Members"):
            page = MembersPage(services, ctx)
            if ctx.role.rank >= Role.ADMIN.rank:
                page.invite_form()
                await page.invites()
            await page.members()
        return None


class MembersPage:
    """The members page of one tenant, as built for one visitor."""

    def __init__(self, services: Services, ctx: TenantContext) -> None:
        self.services = services
        self.ctx = ctx  # replaced by the fresh context each handler resolves
        self.created: ui.column | None = None

    # -- members -----------------------------------------------------------------------------

    @ui.refreshable_method
    async def members(self) -> None:
        try:
            members = await self.services.identity.members.list_members(self.ctx)
        except CoreError as exc:
            ui.label(str(exc)).classes("text-red-700")
            return
        with ui.card().classes("w-full"):
            ui.label(f"Members ({len(members)})").classes("text-lg font-medium")
            with ui.column().classes("w-full gap-1").props('data-testid="member-list"'):
                for member in members:
                    self._member_row(member)

    def _member_row(self, member: MemberInfo) -> None:
        is_me = member.user_id == self.ctx.user_id
        manageable = (
            self.ctx.role.rank >= Role.ADMIN.rank
            and not is_me
            and member.role is not Role.OWNER
            and member.role.rank <= self.ctx.role.rank
        )
        with ui.row().classes("w-full items-center justify-between").props('data-testid="member-row"'):
            with ui.column().classes("gap-0"):
                ui.label(member.email + (" (you)" if is_me else "")).classes("font-medium")
                if member.display_name:
                    ui.label(member.display_name).classes("text-sm text-slate-500")
            with ui.row().classes("items-center gap-2"):
                if manageable:
                    ui.select(
                        assignable_roles(self.ctx),
                        value=member.role.value,
                        on_change=lambda e, m=member: self._change_role(m, e),
                    ).props('dense outlined data-testid="member-role"').classes("min-w-32")
                    ui.button("Remove", on_click=lambda m=member: self._confirm_remove(m)).props(
                        'flat color=negative data-testid="member-remove"'
                    )
                    if self.ctx.role is Role.OWNER:
                        ui.button("Make owner", on_click=lambda m=member: self._confirm_transfer(m)).props(
                            'flat data-testid="member-make-owner"'
                        )
                else:
                    ui.badge(member.role.value).props('data-testid="member-role-badge"')
                    if is_me and member.role is not Role.OWNER:
                        ui.button("Leave", on_click=lambda m=member: self._confirm_remove(m)).props(
                            'flat color=negative data-testid="member-leave"'
                        )

    async def _change_role(self, member: MemberInfo, event: ValueChangeEventArguments) -> None:
        if event.value == member.role.value:
            return
        ctx = await current_context(self.services, Role.ADMIN)
        if ctx is None:
            return
        self.ctx = ctx
        try:
            changed = await self.services.identity.members.change_role(ctx, member.user_id, str(event.value))
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
        else:
            ui.notify(f"{changed.email} is now {changed.role}", type="positive")
        self.members.refresh()

    async def _confirm_transfer(self, member: MemberInfo) -> None:
        if not await confirm(
            f"Make {member.email} the owner of {self.ctx.tenant_slug}?",
            detail="You become an admin. Only the owner can delete the tenant or transfer it again.",
            action="Transfer ownership",
            testid="confirm-transfer",
        ):
            return
        ctx = await current_context(self.services, Role.OWNER)
        if ctx is None:
            return
        try:
            await self.services.identity.members.transfer_ownership(ctx, member.user_id)
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.notify(f"{member.email} now owns {ctx.tenant_slug}; you are an admin", type="positive")
        ui.navigate.reload()  # every control on the page depends on the role

    async def _confirm_remove(self, member: MemberInfo) -> None:
        leaving = member.user_id == self.ctx.user_id
        if leaving:
            question, detail = f"Leave {self.ctx.tenant_slug}?", "You lose access to it at once."
        else:
            question = f"Remove {member.email} from {self.ctx.tenant_slug}?"
            detail = "Their sessions, tokens and API keys for this tenant stop working at once."
        if await confirm(question, detail=detail, action="Leave" if leaving else "Remove", testid="confirm-remove"):
            await self._remove(member, leaving)

    async def _remove(self, member: MemberInfo, leaving: bool) -> None:
        ctx = await current_context(self.services, Role.VIEWER if leaving else Role.ADMIN)
        if ctx is None:
            return
        self.ctx = ctx
        try:
            await self.services.identity.members.remove(ctx, member.user_id)
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
            return
        if leaving:
            ui.navigate.to("/tenants")
            return
        ui.notify(f"{member.email} was removed", type="positive")
        self.members.refresh()

    # -- invitations -------------------------------------------------------------------------

    def invite_form(self) -> None:
        with ui.card().classes("w-full"):
            ui.label("Invite someone").classes("text-lg font-medium")
            if self.services.identity.invites.mails_enabled:
                explanation = (
                    "With an address, the invitation is mailed to it and only that address can accept it; "
                    "without one, you get a link that anyone holding it can use. Either way the link is shown once."
                )
            else:
                explanation = (
                    "You get a link to pass on: no mail server is configured, so nothing is mailed (an operator "
                    "can set SMTP_HOST and SMTP_FROM to mail invitations). With an address, only that address "
                    "can accept it; without one, anyone holding the link can."
                )
            ui.label(explanation).classes("text-sm text-slate-600").props('data-testid="invite-explanation"')
            with ui.row().classes("w-full items-end gap-3"):
                roles = assignable_roles(self.ctx)
                role = (
                    ui.select(roles, value=Role.VIEWER.value, label="Role")
                    .props('data-testid="invite-role"')
                    .classes("min-w-32")
                )
                email = ui.input("Email (optional)").props('type=email data-testid="invite-for-email"').classes("w-72")
                button = ui.button("Create invitation").props('data-testid="invite-create"')
                button.on_click(lambda: self._create_invite(role, email, button))
            self.created = ui.column().classes("w-full")

    async def _create_invite(self, role: ui.select, email: ui.input, button: ui.button) -> None:
        ctx = await current_context(self.services, Role.ADMIN)
        if ctx is None:
            return
        self.ctx = ctx
        button.disable()  # sending a mail takes a moment; one click, one invitation
        try:
            created = await self.services.identity.invites.create(
                ctx, str(role.value), email.value or None, base_url=self._browser_base_url()
            )
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
            return
        finally:
            button.enable()
        link = created.link
        slot = self.created
        if slot is None:
            return
        slot.clear()
        with slot, ui.card().classes("w-full bg-green-50").props('data-testid="invite-created"'):
            address = created.info.email
            target = f"for {address}" if address else "for anyone with the link"
            if created.emailed:
                ui.label(f"Invitation sent to {address}.").classes("font-medium").props('data-testid="invite-emailed"')
            elif created.email_error:
                ui.label(
                    f"The invitation mail to {address} could not be sent: {created.email_error}. "
                    "The invitation is valid: copy the link below and pass it on yourself."
                ).classes("font-medium text-red-700").props('data-testid="invite-email-error"')
            elif address:
                ui.label(
                    f"Nothing was mailed to {address}: no mail server is configured (SMTP_HOST). "
                    "Pass the link on yourself."
                ).props('data-testid="invite-not-emailed"')
            ui.label(
                f"Invitation as {created.info.role} {target}, valid until {when(created.info.expires_at)}. "
                "Copy the link now: it is not shown again."
            )
            with ui.row().classes("w-full items-center gap-2"):
                ui.input(value=link).props('readonly dense outlined data-testid="invite-link"').classes("grow")
                ui.button(icon="content_copy", on_click=lambda: ui.clipboard.write(link)).props(
                    'flat data-testid="invite-copy"'
                ).tooltip("Copy the link")
        email.value = ""
        self.invites.refresh()

    def _browser_base_url(self) -> str:
        """The address this page was opened at (core prefers APP_BASE_URL when it is set)."""
        request = ui.context.client.request
        return str(request.base_url).rstrip("/") if request is not None else ""

    @ui.refreshable_method
    async def invites(self) -> None:
        try:
            pending = await self.services.identity.invites.pending(self.ctx)
        except CoreError as exc:
            ui.label(str(exc)).classes("text-red-700")
            return
        if not pending:
            return
        with ui.card().classes("w-full"):
            ui.label(f"Pending invitations ({len(pending)})").classes("text-lg font-medium")
            with ui.column().classes("w-full gap-1").props('data-testid="invite-list"'):
                for invite in pending:
                    with ui.row().classes("w-full items-center justify-between"):
                        ui.label(
                            f"{invite.role} · {invite.email or 'anyone with the link'} · "
                            f"expires {when(invite.expires_at)}"
                        )
                        ui.button("Withdraw", on_click=lambda i=invite.id: self._revoke_invite(i)).props(
                            'flat color=negative data-testid="invite-revoke"'
                        )

    async def _revoke_invite(self, invite_id: uuid.UUID) -> None:
        ctx = await current_context(self.services, Role.ADMIN)
        if ctx is None:
            return
        self.ctx = ctx
        try:
            await self.services.identity.invites.revoke(ctx, invite_id)
        except CoreError as exc:
            ui.notify(str(exc), type="negative")
            return
        ui.notify("invitation withdrawn; its link no longer works", type="positive")
        self.invites.refresh()
