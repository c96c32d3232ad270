"""CrewCanvas entry point: wiring only (settings -> backends -> services -> ui/api -> run)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

# Before anything can import crewai or litellm: nothing may phone home.
for _name, _value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_TESTING": "true",
    "OTEL_SDK_DISABLED": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "ANONYMIZED_TELEMETRY": "False",
}.items():
    os.environ.setdefault(_name, _value)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="CrewCanvas: design, run and watch multi-agent AI workflows.",
        epilog="Settings come from the environment and .env; see .env.example.",
    )
    parser.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1, APP_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default 8080, APP_PORT)")
    parser.add_argument("--native", action="store_true", help="open in a native desktop window (pywebview)")
    parser.add_argument("--reload", action="store_true", help="restart when source files change (development)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the app (the default)")
    sub.add_parser("migrate", help="migrate the control plane, then every tenant (resumable)")
    create = sub.add_parser("create-tenant", help="create a tenant and its schema")
    create.add_argument("slug")
    create.add_argument("--name", default="")
    delete = sub.add_parser("delete-tenant", help="drop a tenant's schema and all its data")
    delete.add_argument("slug")
    delete.add_argument("--confirm", default="", help="repeat the slug to confirm")
    sub.add_parser(
        "rotate-keys",
        help="re-wrap every tenant's data key under the newest MASTER_KEYS entry (resumable; run again if stopped)",
    )
    return parser.parse_args(argv)


async def _admin(args: argparse.Namespace) -> int:
    from core.errors import CoreError
    from core.settings import AppSettings
    from wiring.services import build_services

    services = build_services(AppSettings.load())
    try:
        if args.command == "migrate":
            await services.start()
            print("migrated control plane and every tenant")
        elif args.command == "create-tenant":
            await services.start()
            info = await services.tenants.create(args.slug, args.name)
            print(f"created tenant {info.slug}")
        elif args.command == "delete-tenant":
            await services.start()
            await services.tenants.delete(args.slug, confirm=args.confirm)
            print(f"deleted tenant {args.slug}")
        elif args.command == "rotate-keys":
            await services.start()
            rotation = await services.llm_stack.rotate_keys()
            print(
                f"re-wrapped {rotation.rewrapped} data key(s) under master key {services.llm_stack.keyring.newest_id!r}"
                f" ({rotation.already_current} already current, {len(rotation.tenants)} tenant(s))"
            )
    except CoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from db.errors import DatabaseError

        if not isinstance(exc, DatabaseError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await services.aclose()
    return 0


def serve(args: argparse.Namespace) -> None:
    from core.settings import AppSettings

    settings = AppSettings.load()
    # NiceGUI reads this when it is imported: browser storage (session ids) stays in the data dir,
    # readable by this user only.
    storage = (settings.data_dir / "ui-storage").resolve()
    storage.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(storage))

    from nicegui import app, background_tasks, ui

    from api.app import install_api
    from core import log_redaction
    from ui.app import install_ui
    from ui.theme import RUN_OPTIONS
    from wiring.services import build_services

    log_redaction.install()  # one-time tickets and codes in redirect URLs stay out of the access log
    services = build_services(settings)
    install_api(app, services)
    install_ui(services)

    async def start() -> None:
        await services.start()
        # What a crashed earlier process left in the sandbox: swept beside serving, never blocking it.
        background_tasks.create(services.tools.sweep_sandbox(), name="sandbox sweep")

    app.on_startup(start)
    app.on_shutdown(services.aclose)
    if args.native:
        try:
            import webview  # noqa: F401
        except ImportError:
            sys.exit(
                "--native needs pywebview, which this install does not include yet; "
                "open the printed http:// address in a browser instead"
            )
    ui.run(
        host=args.host or settings.host,
        port=args.port or settings.port,
        title="CrewCanvas",
        reload=args.reload,
        native=args.native,
        show=False,
        storage_secret=settings.security.secret_key.get_secret_value(),
        uvicorn_logging_level="info",
        **RUN_OPTIONS,
    )


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.command == "delete-tenant" and not args.confirm:
        args.confirm = input(f"type {args.slug!r} to delete it and all its data: ").strip()
    if args.command in {"migrate", "create-tenant", "delete-tenant", "rotate-keys"}:
        sys.exit(asyncio.run(_admin(args)))
    serve(args)


if __name__ in {"__main__", "__mp_main__"}:
    main()
