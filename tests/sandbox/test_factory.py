"""Choosing a backend, and refusing runs whenever the chosen one cannot isolate."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from sandbox.base import SandboxUnavailable, ToolRun
from sandbox.bwrap import BwrapBackend
from sandbox.factory import BACKENDS, backend_class, create_backend
from sandbox.gvisor import GVisorBackend
from sandbox.unsafe import UnsafeSubprocessBackend


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(SandboxUnavailable, match="unknown sandbox backend 'docker'; choose one of: bwrap, gvisor"):
        create_backend("docker")


def test_every_registered_backend_loads() -> None:
    for name in BACKENDS:
        assert backend_class(name).name == name


def test_missing_binary_is_refused_at_creation() -> None:
    with pytest.raises(SandboxUnavailable, match="bubblewrap not found at /nonexistent/bwrap: install"):
        create_backend("bwrap", bwrap_path="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match="runsc not found at /nonexistent/runsc"):
        create_backend("gvisor", runsc_path="/nonexistent/runsc")


def test_bad_option_is_refused() -> None:
    with pytest.raises(SandboxUnavailable, match="bad options for sandbox backend 'bwrap'"):
        create_backend("bwrap", no_such_option=1)


def test_default_is_bwrap_and_unsafe_only_by_name() -> None:
    assert type(create_backend()) is BwrapBackend
    assert not BwrapBackend.UNSAFE
    assert not GVisorBackend.UNSAFE
    assert UnsafeSubprocessBackend.UNSAFE


async def test_run_is_refused_when_the_python_is_unreadable_to_the_sandbox_uid() -> None:
    # The pyenv interpreter under /root (mode 0700) is exactly this trap.
    private = sorted(glob.glob("/root/.pyenv/versions/3.*/bin/python3"))
    if os.geteuid() != 0 or not private or os.stat("/root").st_mode & 0o005:
        pytest.skip("needs root and a Python under a /root that other users cannot enter")
    backend = create_backend("bwrap", python_path=private[0])
    availability = await backend.available()
    assert not availability
    assert f"{private[0]} must be readable by uid 65534" in availability.reason
    with pytest.raises(SandboxUnavailable, match="bwrap sandbox unavailable, tool run refused"):
        await backend.run(ToolRun(source="def run():\n    return 1\n"))


async def test_gvisor_run_is_refused_when_runsc_cannot_start_a_container() -> None:
    backend = create_backend("gvisor", platform="no-such-platform")
    try:
        availability = await backend.available()
        assert not availability
        assert "platform='no-such-platform'" in availability.reason
        with pytest.raises(SandboxUnavailable, match="gvisor sandbox unavailable"):
            await backend.run(ToolRun(source="def run():\n    return 1\n"))
    finally:
        await backend.aclose()


def test_app_settings_reach_the_kubernetes_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from core.settings import SandboxSettings
    from sandbox.kubernetes import KubernetesBackend
    from wiring.backends import build_sandbox

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    for name, value in {
        "SANDBOX_BACKEND": "kubernetes",
        "SANDBOX_KUBERNETES_NAMESPACE": "tools-ns",
        "SANDBOX_KUBERNETES_RUNTIME_CLASS": "",
        "SANDBOX_KUBERNETES_IMAGE": "registry.example/python:3.11",
        "SANDBOX_KUBERNETES_MEMORY": "2Gi",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SANDBOX_KUBERNETES_CPU", raising=False)
    backend, unsafe = build_sandbox(SandboxSettings())
    assert isinstance(backend, KubernetesBackend)
    assert not unsafe
    assert backend.settings.namespace == "tools-ns"
    assert backend.settings.runtime_class is None
    assert backend.settings.image == "registry.example/python:3.11"
    assert backend.settings.memory == "2Gi"
    assert backend.settings.cpu == "2"
