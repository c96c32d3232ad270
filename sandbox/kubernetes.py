"""Kubernetes backend: one Pod per run in a sandbox namespace.

Per run: a ConfigMap with the job files, then a Pod built by
``pod_manifests.build_pod`` and checked by ``pod_policy.check_pod`` before it
is sent. The backend polls the Pod, kills it when the tool's wall time has
passed since its container started (``activeDeadlineSeconds`` is the
cluster-side backstop that also covers scheduling and image pulls), reads the
result from the container log and always deletes both objects. Objects that a
crashed caller left behind carry labels and an expiry annotation; ``sweep()``
deletes expired ones (never a live run's: its expiry lies past its deadline).
Who calls it: the app once at start (core's tool service start-up hook), and
this backend whenever it is (re)probed. A long-lived cluster where app
processes rarely restart can add a CronJob running the same sweep (list by the
managed labels, delete what is past ``crewcanvas.io/expires-at``).

Pod resources follow the run's own limits (memory plus the harness's share,
ephemeral storage for work, tmp and log), capped by the configured maxima;
see ``pod_manifests.pod_resources``.

The backend refuses to run anything while the namespace lacks a NetworkPolicy
that denies all egress: the Role in ``infra/k8s`` lets the app read policies
but not write them, so an operator owns that guarantee.

The official client is synchronous; every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sandbox.base import (
    Availability,
    ClusterError,
    InvalidToolRun,
    PodPolicyViolation,
    SandboxBackend,
    SandboxFailure,
    SandboxUnavailable,
    ToolResult,
    ToolRun,
)
from sandbox.harness import MARKER
from sandbox.outcome import build_result
from sandbox.pod_manifests import (
    CONFIG_MAP_BUDGET,
    CONTAINER_NAME,
    EXPIRES_ANNOTATION,
    MANAGED_LABELS,
    MANAGED_SELECTOR,
    PodSettings,
    build_config_map,
    build_pod,
    config_map_size,
    object_name,
    to_manifest,
)
from sandbox.pod_policy import check_network_policy, check_pod
from sandbox.supervise import Captured

log = logging.getLogger(__name__)

T = TypeVar("T")
_POLL_SECONDS = 0.5
#: Waiting reasons that will not fix themselves: fail the run instead of waiting out the deadline.
_STUCK_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}
)


class KubernetesBackend(SandboxBackend):
    """Run each tool in its own Pod."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        namespace: str = "crewcanvas-sandbox",
        runtime_class: str | None = "gvisor",
        image: str = "python:3.11-slim",
        python_path: str = "/usr/local/bin/python3",
        cpu: str = "2",
        memory: str = "4Gi",
        ephemeral_storage: str = "10Gi",
        startup_seconds: int = 120,
        api_client: Any = None,
    ) -> None:
        """``api_client``: a ``kubernetes.client.ApiClient``; by default one is built from
        the in-cluster service account or ``KUBECONFIG`` on first use."""
        super().__init__()
        self.settings = PodSettings(
            namespace=namespace,
            runtime_class=runtime_class or None,
            image=image,
            python_path=python_path,
            cpu=cpu,
            memory=memory,
            ephemeral_storage=ephemeral_storage,
            startup_seconds=startup_seconds,
        )
        self._api_client = api_client

    # -- cluster access -------------------------------------------------------------------------

    def check_prerequisites(self) -> None:
        try:
            import kubernetes  # noqa: F401 - only checking that the client is installed
        except ImportError as exc:
            raise SandboxUnavailable(f"the kubernetes client is not installed ({exc}); install 'kubernetes'") from exc
        if self._api_client is not None or os.environ.get("KUBERNETES_SERVICE_HOST"):
            return
        candidates = os.environ.get("KUBECONFIG", "").split(os.pathsep) if os.environ.get("KUBECONFIG") else []
        candidates = candidates or [str(Path.home() / ".kube" / "config")]
        if not any(os.path.isfile(path) for path in candidates):
            raise SandboxUnavailable(
                "no Kubernetes configuration found: set KUBECONFIG to a kubeconfig file, or run the app in the "
                "cluster with the service account from infra/k8s"
            )

    def _client(self) -> Any:
        if self._api_client is None:
            from kubernetes import config
            from kubernetes.config.config_exception import ConfigException

            try:
                if os.environ.get("KUBERNETES_SERVICE_HOST"):
                    config.load_incluster_config()
                    from kubernetes import client

                    self._api_client = client.ApiClient()
                else:
                    self._api_client = config.new_client_from_config()
            except (ConfigException, OSError) as exc:
                raise SandboxUnavailable(f"cannot load the Kubernetes configuration: {exc}") from exc
        return self._api_client

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._client())

    def _networking(self) -> Any:
        from kubernetes import client

        return client.NetworkingV1Api(self._client())

    async def _call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a client call in a thread, translating its errors into ``ClusterError``."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except ApiException as exc:
            raise ClusterError(f"Kubernetes API refused to {what}: {exc.status} {exc.reason}: {_message(exc)}") from exc
        except (HTTPError, OSError) as exc:
            raise ClusterError(f"cannot reach the Kubernetes API to {what}: {exc}") from exc

    async def _probe(self) -> Availability:
        namespace = self.settings.namespace
        try:
            await self._call("list pods", self._core().list_namespaced_pod, namespace, limit=1)
            policies = await self._call(
                "list network policies", self._networking().list_namespaced_network_policy, namespace
            )
        except (ClusterError, SandboxUnavailable) as exc:
            return Availability(False, f"{exc}; check the namespace {namespace!r} and the app's Role (infra/k8s)")
        from kubernetes import client

        serializer = client.ApiClient()
        if not any(
            not check_network_policy(serializer.sanitize_for_serialization(policy), pod_labels=MANAGED_LABELS)
            for policy in policies.items
        ):
            return Availability(
                False,
                f"namespace {namespace!r} has no NetworkPolicy denying all ingress and egress for sandbox pods; "
                "apply infra/k8s (kubectl apply -k infra/k8s)",
            )
        await self.sweep()
        return Availability(True)

    async def sweep(self, *, now: float | None = None) -> int:
        """Delete sandbox Pods and ConfigMaps whose expiry has passed (a caller crashed); return how many."""
        now = time.time() if now is None else now
        core = self._core()
        deleted = 0
        for kind, lister, deleter in (
            ("pods", core.list_namespaced_pod, core.delete_namespaced_pod),
            ("configmaps", core.list_namespaced_config_map, core.delete_namespaced_config_map),
        ):
            found = await self._call(f"list {kind}", lister, self.settings.namespace, label_selector=MANAGED_SELECTOR)
            for item in found.items:
                annotations = item.metadata.annotations or {}
                try:
                    expires = float(annotations.get(EXPIRES_ANNOTATION, "0"))
                except ValueError:
                    expires = 0.0
                if expires < now:
                    log.warning("sweeping leftover sandbox %s %s", kind[:-1], item.metadata.name)
                    await self._delete(deleter, item.metadata.name)
                    deleted += 1
        return deleted

    async def _delete(self, deleter: Callable[..., Any], name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            await asyncio.to_thread(
                deleter, name, self.settings.namespace, grace_period_seconds=0, propagation_policy="Background"
            )
        except ApiException as exc:
            if exc.status != 404:
                log.error("could not delete sandbox object %s: %s %s", name, exc.status, exc.reason)
        except Exception:
            # Cleanup must never hide the run's own outcome; the sweep retries later.
            log.exception("could not delete sandbox object %s", name)

    # -- one run ---------------------------------------------------------------------------------

    def manifests(self, run: ToolRun) -> tuple[dict[str, Any], dict[str, Any]]:
        """(ConfigMap, Pod) manifests for ``run``, after the size and policy checks."""
        config_map = build_config_map(run, self.settings)
        if config_map_size(config_map) > CONFIG_MAP_BUDGET:
            raise InvalidToolRun(
                f"tool source and input are {config_map_size(config_map)} bytes; the Kubernetes backend "
                f"takes at most {CONFIG_MAP_BUDGET} bytes per run (a ConfigMap): shrink the input"
            )
        pod = to_manifest(build_pod(run, self.settings))
        violations = check_pod(pod, runtime_class=self.settings.runtime_class)
        if violations:
            raise PodPolicyViolation(violations)
        return to_manifest(config_map), pod

    async def _execute(self, run: ToolRun) -> ToolResult:
        config_map, pod = self.manifests(run)
        core = self._core()
        namespace, name = self.settings.namespace, object_name(run)
        started = time.monotonic()
        try:
            await self._call("create the job ConfigMap", core.create_namespaced_config_map, namespace, config_map)
            await self._call("create the sandbox Pod", core.create_namespaced_pod, namespace, pod)
            state = await self._wait(core, name, run, started)
            logs = b""
            if state.container_ran:
                text = await self._call(
                    "read the tool's log",
                    core.read_namespaced_pod_log,
                    name,
                    namespace,
                    container=CONTAINER_NAME,
                    limit_bytes=run.limits.output_bytes + 1,
                    _preload_content=False,
                )
                logs = text.data if hasattr(text, "data") else bytes(text)
        finally:
            await self._delete(core.delete_namespaced_pod, name)
            await self._delete(core.delete_namespaced_config_map, name)
        exceeded = len(logs) > run.limits.output_bytes
        captured = Captured(
            pid=0,
            stdout=b"" if exceeded else logs,
            stderr_tail=_without_report(logs)[-8192:],
            returncode=state.exit_code,
            timed_out=state.timed_out,
            output_exceeded=exceeded,
            wall_seconds=time.monotonic() - started,
        )
        notes = (f"pod {namespace}/{name}: {state.detail}",) if state.detail else ()
        return build_result(run, self.name, captured, memory_exhausted=state.oom_killed, notes=notes)

    async def _wait(self, core: Any, name: str, run: ToolRun, started: float) -> _PodOutcome:
        """Poll the Pod until it ends; kill it when the tool overruns its wall time."""
        namespace = self.settings.namespace
        give_up = started + self.settings.startup_seconds
        running_since: float | None = None
        while True:
            pod = await self._call("read the sandbox Pod", core.read_namespaced_pod, name, namespace)
            status = pod.status
            container = next(
                (c for c in status.container_statuses or [] if c.name == CONTAINER_NAME),
                None,
            )
            state = container.state if container is not None else None
            if state is not None and state.terminated is not None:
                terminated = state.terminated
                return _PodOutcome(
                    exit_code=terminated.exit_code,
                    oom_killed=terminated.reason == "OOMKilled",
                    timed_out=status.reason == "DeadlineExceeded",
                    container_ran=True,
                    detail=f"container {terminated.reason or 'terminated'} with exit code {terminated.exit_code}",
                )
            if status.phase in ("Failed", "Succeeded"):
                # Ended without the container reporting (deadline during start-up, eviction).
                reason = status.reason or status.phase
                if reason == "DeadlineExceeded" and running_since is None:
                    raise SandboxFailure(self._not_started(namespace))
                return _PodOutcome(
                    exit_code=None,
                    oom_killed=False,
                    timed_out=reason == "DeadlineExceeded",
                    container_ran=False,
                    detail=f"pod {reason}: {status.message or 'no message'}",
                )
            if state is not None and state.waiting is not None and state.waiting.reason in _STUCK_REASONS:
                raise SandboxFailure(
                    f"sandbox pod cannot start: {state.waiting.reason}: {state.waiting.message or ''}; "
                    f"check the image {self.settings.image!r} and the namespace {namespace!r}"
                )
            now = time.monotonic()
            if state is not None and state.running is not None and running_since is None:
                running_since = now
            if running_since is not None and now - running_since > run.limits.wall_seconds:
                # The caller deletes the pod right after reading what the tool logged so far.
                return _PodOutcome(
                    exit_code=None,
                    oom_killed=False,
                    timed_out=True,
                    container_ran=True,
                    detail="killed at the wall-clock limit",
                )
            if running_since is None and now > give_up:
                raise SandboxFailure(self._not_started(namespace))
            await asyncio.sleep(_POLL_SECONDS)

    def _not_started(self, namespace: str) -> str:
        return (
            f"the sandbox pod did not start within {self.settings.startup_seconds} s; check that namespace "
            f"{namespace!r} has capacity for {self.settings.cpu} CPU / {self.settings.memory} and that the image "
            f"{self.settings.image!r} can be pulled"
        )


@dataclass(frozen=True, kw_only=True)
class _PodOutcome:
    """What the Pod's status said about how the run ended."""

    exit_code: int | None
    oom_killed: bool
    timed_out: bool
    container_ran: bool
    detail: str


def _without_report(logs: bytes) -> bytes:
    """The log minus the harness's report line (it is parsed separately)."""
    marker = MARKER.encode()
    index = logs.rfind(marker)
    if index < 0:
        return logs
    end = logs.find(b"\n", index)
    return logs[:index] + (logs[end + 1 :] if end >= 0 else b"")


def _message(exc: Any) -> str:
    """The Status message of an API error, falling back to its raw body."""
    body = getattr(exc, "body", None) or ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return str(json.loads(body).get("message", body))[:500]
    return str(body)[:500]
