"""/members: who belongs to the current workspace; admins invite, change roles and remove.

Everyone sees the member list; only admins and the owner see the invitation form, the
pending invitations and the role controls (core checks the role once more). Every action
resolves the session again (`PageView.action`), so someone removed or demoted meanwhile is
stopped at their next click. An invitation link is shown once, right after it is made; only
its digest is stored. With an address and a mail server (SMTP_*), the link is also mailed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from nicegui import ui
from nicegui.events import ValueChangeEventArguments
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.auth.directory import normalize_email
from core.auth.invites import CreatedInvite
from core.auth.members import MemberInfo
from core.context import Role, TenantContext
from core.errors import InvalidInput
from ui.dialogs import confirm
from ui.forms import FieldOptions, ModelForm
from ui.session import current_context
from ui.tenant_page import Pages, PageView


def assignable_roles(ctx: TenantContext) -> dict[str, str]:
    """The roles the caller may hand out (never owner, never above their own), weakest first."""
    return {r.value: r.value for r in Role if r is not Role.OWNER and r.rank <= ctx.role.rank}


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def checked_email(value: str | None) -> str | None:
    """An address as core will store it, or a ValueError saying what is wrong with it."""
    if value is None or not value.strip():
        return None
    try:
        return normalize_email(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


class Invitation(BaseModel):
    """The invitation form."""

    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="What they may do here; you can change it later.")
    email: str | None = Field(default=None, max_length=320, description="Optional: only this address can accept.")

    @field_validator("role")
    @classmethod
    def _not_owner(cls, value: Role) -> Role:
        if value is Role.OWNER:
            raise ValueError("nobody can be invited as owner; invite an admin and transfer ownership later")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return checked_email(value)


def email_input(control: ui.element) -> None:
    """Let browsers offer the email keyboard and autofill for an address field."""
    control.props["type"] = "email"


def register(pages: Pages) -> None:
    @pages.tenant_page("/members", Role.VIEWER, title="Members")
    async def members_page(page: PageView) -> None:
        view = MembersPage(page)
        if page.can(Role.ADMIN):
            view.invite_form()
            await view.invites()
        await view.members()


class MembersPage:
    """The members page of one workspace, as built for one visitor."""

    def __init__(self, page: PageView) -> None:
        self.page = page
        self.services = page.services
        self.ctx = page.ctx  # replaced by the fresh context each action resolves
        self.created: ui.column | None = None
        self.form: ModelForm[Invitation] | None = None
        self.browser_base_url = _browser_base_url()  # read while the page is built: handlers have no request

    # -- members -----------------------------------------------------------------------------

    @ui.refreshable_method
    async def members(self) -> None:
        members = await self.services.identity.members.list_members(self.ctx)
        with ui.card().classes("w-full"):
            ui.label(f"Members ({len(members)})").classes("text-lg font-medium")
            if not self.page.can(Role.ADMIN):
                ui.label("Only admins and the owner invite people and change roles.").classes(
                    "text-sm text-slate-600"
                ).props('data-testid="members-read-only"')
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
                    ui.label(member.display_name).classes("text-sm text-slate-600")
            with ui.row().classes("items-center gap-2"):
                if manageable:
                    role = ui.select(
                        assignable_roles(self.ctx),
                        value=member.role.value,
                        on_change=lambda e, m=member: self._change_role(m, e),
                    ).props('dense outlined data-testid="member-role"')
                    role.props["aria-label"] = f"Role of {member.email}"
                    role.classes("min-w-32")
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

        async def change(ctx: TenantContext) -> None:
            self.ctx = ctx
            try:
                changed = await self.services.identity.members.change_role(ctx, member.user_id, str(event.value))
            finally:
                self.members.refresh()  # back to what is stored if it was refused
            ui.notify(f"{changed.email} is now {changed.role}", type="positive")

        await self.page.action(change, Role.ADMIN)()

    async def _confirm_transfer(self, member: MemberInfo) -> None:
        if not await confirm(
            f"Make {member.email} the owner of {self.ctx.tenant_slug}?",
            detail="You become an admin. Only the owner can delete the workspace or transfer it again.",
            action="Transfer ownership",
            testid="confirm-transfer",
        ):
            return

        async def transfer(ctx: TenantContext) -> None:
            await self.services.identity.members.transfer_ownership(ctx, member.user_id)
            ui.notify(f"{member.email} now owns {ctx.tenant_slug}; you are an admin", type="positive")
            ui.navigate.reload()  # every control on the page depends on the role

        await self.page.action(transfer, Role.OWNER)()

    async def _confirm_remove(self, member: MemberInfo) -> None:
        leaving = member.user_id == self.ctx.user_id
        if leaving:
            question, detail = f"Leave {self.ctx.tenant_slug}?", "You lose access to it at once."
        else:
            question = f"Remove {member.email} from {self.ctx.tenant_slug}?"
            detail = "Their sessions, tokens and API keys for this workspace stop working at once."
        if not await confirm(question, detail=detail, action="Leave" if leaving else "Remove", testid="confirm-remove"):
            return

        async def remove(ctx: TenantContext) -> None:
            self.ctx = ctx
            await self.services.identity.members.remove(ctx, member.user_id)
            if leaving:
                ui.navigate.to("/workspaces")
                return
            ui.notify(f"{member.email} was removed", type="positive")
            self.members.refresh()

        await self.page.action(remove, Role.VIEWER if leaving else Role.ADMIN)()

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
            self.form = ModelForm(
                Invitation,
                value={"role": Role.VIEWER.value},
                on_submit=self._create_invite,
                submit_label="Create invitation",
                testid="invite",
                fields={
                    "role": FieldOptions(choices=assignable_roles(self.ctx)),
                    "email": FieldOptions(label="Email", after=email_input),
                },
            )
            self.created = ui.column().classes("w-full")

    async def _create_invite(self, invitation: Invitation) -> None:
        # Not `page.action`: what core refuses (a role above one's own, the mail budget) belongs in
        # the form's box, which ModelForm fills from the CoreError this raises.
        ctx = await current_context(self.services, Role.ADMIN)
        if ctx is None:
            return
        self.ctx = ctx
        created = await self.services.identity.invites.create(
            ctx, invitation.role, invitation.email, base_url=self.browser_base_url
        )
        self._show_created(created)
        if self.form is not None:
            self.form.set_values({"email": ""})
        self.invites.refresh()

    def _show_created(self, created: CreatedInvite) -> None:
        link = created.link
        slot = self.created
        if slot is None:
            return
        slot.clear()
        with slot, ui.card().classes("w-full border-l-4 border-green-700").props('data-testid="invite-created"'):
            address = created.info.email
            target = f"for {address}" if address else "for anyone with the link"
            if created.emailed:
                ui.label(f"Invitation sent to {address}.").classes("font-medium").props('data-testid="invite-emailed"')
            elif created.email_error:
                ui.label(
                    f"The invitation mail to {address} could not be sent: {created.email_error}. "
                    "The invitation is valid: copy the link below and pass it on yourself."
                ).classes("font-medium").props('role=alert data-testid="invite-email-error"')
            elif address:
                ui.label(
                    f"Nothing was mailed to {address}: no mail server is configured (SMTP_HOST). "
                    "Pass the link on yourself."
                ).props('data-testid="invite-not-emailed"')
            ui.label(
                f"Invitation as {created.info.role} {target}, valid until {when(created.info.expires_at)}. "
                "Copy the link now: it is not shown again."
            )
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                box = ui.input("Invitation link", value=link).props('readonly dense outlined data-testid="invite-link"')
                box.classes("grow")
                ui.button(icon="content_copy", on_click=lambda: ui.clipboard.write(link)).props(
                    'flat round aria-label="Copy the link" data-testid="invite-copy"'
                ).tooltip("Copy the link")

    @ui.refreshable_method
    async def invites(self) -> None:
        pending = await self.services.identity.invites.pending(self.ctx)
        if not pending:
            return
        with ui.card().classes("w-full"):
            ui.label(f"Pending invitations ({len(pending)})").classes("text-lg font-medium")
            with ui.column().classes("w-full gap-1").props('data-testid="invite-list"'):
                for invite in pending:
                    with ui.row().classes("w-full items-center justify-between").props('data-testid="invite-row"'):
                        ui.label(
                            f"{invite.role} · {invite.email or 'anyone with the link'} · "
                            f"expires {when(invite.expires_at)}"
                        )
                        ui.button("Withdraw", on_click=lambda i=invite.id: self._revoke_invite(i)).props(
                            'flat color=negative data-testid="invite-revoke"'
                        )

    async def _revoke_invite(self, invite_id: uuid.UUID) -> None:
        if not await confirm(
            "Withdraw this invitation?",
            detail="Its link stops working at once.",
            action="Withdraw",
            testid="confirm-withdraw",
        ):
            return

        async def revoke(ctx: TenantContext) -> None:
            self.ctx = ctx
            await self.services.identity.invites.revoke(ctx, invite_id)
            ui.notify("invitation withdrawn; its link no longer works", type="positive")
            self.invites.refresh()

        await self.page.action(revoke, Role.ADMIN)()


def _browser_base_url() -> str:
    """The address this page was opened at (core prefers APP_BASE_URL when it is set)."""
    request = ui.context.client.request
    return str(request.base_url).rstrip("/") if request is not None else ""
