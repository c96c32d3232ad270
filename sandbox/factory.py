"""Choose a sandbox backend by name (``SANDBOX_BACKEND``).

The one place that names concrete backends. Backends are imported lazily so a
host without the kubernetes client, or without libseccomp, can still use the
others. ``create_backend`` runs each backend's static checks and raises
``SandboxUnavailable`` instead of handing back something that cannot isolate;
nothing ever falls back to running tools unsandboxed.
"""

from __future__ import annotations

import importlib
from typing import Any

from sandbox.base import SandboxBackend, SandboxUnavailable

DEFAULT_BACKEND = "bwrap"

#: name -> (module, class)
BACKENDS: dict[str, tuple[str, str]] = {
    "bwrap": ("sandbox.bwrap", "BwrapBackend"),
    "gvisor": ("sandbox.gvisor", "GVisorBackend"),
    "kubernetes": ("sandbox.kubernetes", "KubernetesBackend"),
    "unsafe-subprocess": ("sandbox.unsafe", "UnsafeSubprocessBackend"),
}


def backend_class(name: str) -> type[SandboxBackend]:
    """The backend class registered under ``name``."""
    try:
        module_name, class_name = BACKENDS[name]
    except KeyError:
        choices = ", ".join(sorted(BACKENDS))
        raise SandboxUnavailable(f"unknown sandbox backend {name!r}; choose one of: {choices}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SandboxUnavailable(f"sandbox backend {name!r} cannot be loaded: {exc}") from exc
    cls: type[SandboxBackend] = getattr(module, class_name)
    return cls


def create_backend(name: str = DEFAULT_BACKEND, **options: Any) -> SandboxBackend:
    """Build the named backend with ``options`` and check its prerequisites.

    Raises ``SandboxUnavailable`` saying what is missing and how to fix it.
    ``unsafe-subprocess`` is only ever returned when asked for by name.
    """
    cls = backend_class(name)
    try:
        backend = cls(**options)
    except TypeError as exc:
        raise SandboxUnavailable(f"bad options for sandbox backend {name!r}: {exc}") from exc
    backend.check_prerequisites()
    return backend
