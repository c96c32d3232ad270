"""Kubernetes objects for one sandboxed run, built with the official client's typed models.

Pure functions: nothing here talks to a cluster, so the manifests can be
validated offline (``kubernetes-validate``) and checked by ``pod_policy.py``.

A run is a ConfigMap (harness, config, input and tool source) plus a Pod that
mounts it read-only at ``/sandbox`` and runs the harness as a non-root uid on a
read-only root file system, with size-limited emptyDirs for ``/work`` and
``/tmp``, no service-account token, no service links, every capability dropped,
RuntimeDefault seccomp, resource requests and limits, and an
``activeDeadlineSeconds`` backstop. The namespace's NetworkPolicy (also built
here, and shipped in ``infra/k8s``) denies all ingress and egress. Every object
carries labels that let a later process sweep what a crashed caller left.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.utils.quantity import parse_quantity

from sandbox import job
from sandbox.base import MiB, SandboxUnavailable, ToolRun

#: On every object the backend creates; the sweep lists by it.
MANAGED_LABELS = {"app.kubernetes.io/name": "crewcanvas-sandbox", "app.kubernetes.io/managed-by": "crewcanvas"}
MANAGED_SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED_LABELS.items())
RUN_LABEL = "crewcanvas.io/run-id"
#: Unix time after which a leftover object may be deleted by any sweeper.
EXPIRES_ANNOTATION = "crewcanvas.io/expires-at"
CONTAINER_NAME = "tool"
NETWORK_POLICY_NAME = "crewcanvas-sandbox-deny-all"
#: ConfigMaps hold at most 1 MiB; leave room for keys and metadata.
CONFIG_MAP_BUDGET = 1000 * 1000
#: Memory the harness itself (interpreter, JSON, pipes) needs above the tool's own limit.
HARNESS_MEMORY_BYTES = 64 * MiB
#: Ephemeral storage above the work and tmp emptyDirs and the log: the container's writable bits.
STORAGE_OVERHEAD_BYTES = 16 * MiB


@dataclass(frozen=True)
class PodSettings:
    """How sandbox pods are shaped; the defaults follow the design document."""

    namespace: str = "crewcanvas-sandbox"
    #: ``gvisor`` is recommended for untrusted code; ``sysbox-runc`` per the design; None: the cluster default.
    runtime_class: str | None = "gvisor"
    image: str = "python:3.11-slim"
    python_path: str = "/usr/local/bin/python3"
    uid: int = 65534
    gid: int = 65534
    #: The CPU limit of every pod; a run requests its own ``cpu_cores`` up to this.
    cpu: str = "2"
    #: The most memory and ephemeral storage a pod may get; a run gets what its limits need, up to these.
    memory: str = "4Gi"
    ephemeral_storage: str = "10Gi"
    #: Scheduling and image pull allowance added to the run's wall time in activeDeadlineSeconds.
    startup_seconds: int = 120
    #: How long after its deadline an object may be swept as a leftover.
    sweep_margin_seconds: int = 300

    def __post_init__(self) -> None:
        for field, value in (("cpu", self.cpu), ("memory", self.memory), ("ephemeral_storage", self.ephemeral_storage)):
            try:
                valid = parse_quantity(value) > 0
            except ValueError:
                valid = False
            if not valid:
                raise SandboxUnavailable(
                    f"Kubernetes sandbox {field} {value!r} is not a positive Kubernetes quantity (e.g. '2', '500m', "
                    "'4Gi'); fix the setting"
                )


def object_name(run: ToolRun) -> str:
    """Pod and ConfigMap name for a run (a DNS subdomain; run ids are DNS labels)."""
    return f"cc-tool-{run.run_id}"


def active_deadline_seconds(run: ToolRun, settings: PodSettings) -> int:
    return math.ceil(run.limits.wall_seconds) + settings.startup_seconds


def _metadata(run: ToolRun, settings: PodSettings, now: float) -> k8s.V1ObjectMeta:
    expires = int(now) + active_deadline_seconds(run, settings) + settings.sweep_margin_seconds
    return k8s.V1ObjectMeta(
        name=object_name(run),
        namespace=settings.namespace,
        labels={**MANAGED_LABELS, RUN_LABEL: run.run_id},
        annotations={EXPIRES_ANNOTATION: str(expires)},
    )


def build_config_map(run: ToolRun, settings: PodSettings, *, now: float | None = None) -> k8s.V1ConfigMap:
    """The job files of a run: harness, config, input and tool source."""
    data = {"harness.py": job.harness_source().decode()}
    data.update({name: content.decode() for name, content in job.job_files(run).items()})
    return k8s.V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        metadata=_metadata(run, settings, time.time() if now is None else now),
        data=data,
        immutable=True,
    )


def config_map_size(config_map: k8s.V1ConfigMap) -> int:
    return sum(len(key) + len(value.encode()) for key, value in (config_map.data or {}).items())


def _quantity_bytes(value: int) -> str:
    # Whole MiB keep the manifest readable; never round a limit down to zero.
    return f"{max(1, math.ceil(value / MiB))}Mi"


def _capped(wanted: int, maximum: str) -> str:
    """``wanted`` bytes as a quantity, or the configured ``maximum`` itself when it is smaller."""
    return maximum if wanted >= parse_quantity(maximum) else _quantity_bytes(wanted)


def _cpu_quantity(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def pod_resources(run: ToolRun, settings: PodSettings) -> tuple[dict[str, str], dict[str, str]]:
    """(requests, limits) of the tool container, derived from the run's own limits.

    Memory: the run's memory plus the harness's share; ephemeral storage: the
    work and tmp emptyDirs, the log (output cap) and a little for the container
    itself; both capped by the configured maxima and requested in full so the
    scheduler reserves what the run may use. CPU: limited as configured,
    requested as the run's ``cpu_cores`` (up to that limit).
    """
    limits = run.limits
    memory = _capped(limits.memory_bytes + HARNESS_MEMORY_BYTES, settings.memory)
    storage_wanted = limits.disk_bytes + _tmp_bytes(run) + limits.output_bytes + STORAGE_OVERHEAD_BYTES
    storage = _capped(storage_wanted, settings.ephemeral_storage)
    cpu_limit_millicores = math.ceil(parse_quantity(settings.cpu) * 1000)
    cpu_request = _cpu_quantity(min(math.ceil(limits.cpu_cores * 1000), cpu_limit_millicores))
    requests = {"cpu": cpu_request, "memory": memory, "ephemeral-storage": storage}
    return requests, {"cpu": settings.cpu, "memory": memory, "ephemeral-storage": storage}


def _tmp_bytes(run: ToolRun) -> int:
    return min(run.limits.disk_bytes, 64 * MiB)


def build_pod(run: ToolRun, settings: PodSettings, *, now: float | None = None) -> k8s.V1Pod:
    """The Pod that runs the harness for ``run`` (see the module docstring for its shape)."""
    limits = run.limits
    tmp_bytes = _tmp_bytes(run)
    requests, resource_limits = pod_resources(run, settings)
    job_files = [job.tool_filename(run), "config.json", "input.json"]
    container = k8s.V1Container(
        name=CONTAINER_NAME,
        image=settings.image,
        image_pull_policy="IfNotPresent",
        command=job.harness_argv(settings.python_path),
        working_dir=job.WORK_DIR,
        env=[k8s.V1EnvVar(name=key, value=value) for key, value in job.run_env(run).items()],
        resources=k8s.V1ResourceRequirements(requests=requests, limits=resource_limits),
        security_context=k8s.V1SecurityContext(
            run_as_non_root=True,
            run_as_user=settings.uid,
            run_as_group=settings.gid,
            privileged=False,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        volume_mounts=[
            k8s.V1VolumeMount(name="job", mount_path=job.SANDBOX_DIR, read_only=True),
            k8s.V1VolumeMount(name="work", mount_path=job.WORK_DIR),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
        ],
        stdin=False,
        tty=False,
        termination_message_policy="File",
    )
    volumes = [
        k8s.V1Volume(
            name="job",
            config_map=k8s.V1ConfigMapVolumeSource(
                name=object_name(run),
                default_mode=0o444,
                items=[k8s.V1KeyToPath(key="harness.py", path="harness.py")]
                + [k8s.V1KeyToPath(key=name, path=f"job/{name}") for name in job_files],
            ),
        ),
        k8s.V1Volume(
            name="work",
            empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=_capped(limits.disk_bytes, settings.ephemeral_storage)),
        ),
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=_quantity_bytes(tmp_bytes))),
    ]
    spec = k8s.V1PodSpec(
        containers=[container],
        volumes=volumes,
        restart_policy="Never",
        runtime_class_name=settings.runtime_class,
        active_deadline_seconds=active_deadline_seconds(run, settings),
        termination_grace_period_seconds=0,
        automount_service_account_token=False,
        enable_service_links=False,
        host_network=False,
        host_pid=False,
        host_ipc=False,
        share_process_namespace=False,
        # Nothing answers on the pod's loopback: lookups fail at once instead of
        # waiting for a cluster DNS server that the NetworkPolicy blocks anyway.
        dns_policy="None",
        dns_config=k8s.V1PodDNSConfig(nameservers=["127.0.0.1"]),
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=settings.uid,
            run_as_group=settings.gid,
            fs_group=settings.gid,
            supplemental_groups=[],
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
    )
    metadata = _metadata(run, settings, time.time() if now is None else now)
    return k8s.V1Pod(api_version="v1", kind="Pod", metadata=metadata, spec=spec)


def build_network_policy(namespace: str = "crewcanvas-sandbox") -> k8s.V1NetworkPolicy:
    """Deny all ingress and egress for every pod in the sandbox namespace."""
    return k8s.V1NetworkPolicy(
        api_version="networking.k8s.io/v1",
        kind="NetworkPolicy",
        metadata=k8s.V1ObjectMeta(name=NETWORK_POLICY_NAME, namespace=namespace, labels=dict(MANAGED_LABELS)),
        # An empty selector covers the whole namespace, not only pods we label.
        spec=k8s.V1NetworkPolicySpec(pod_selector=k8s.V1LabelSelector(), policy_types=["Ingress", "Egress"]),
    )


def to_manifest(model: Any) -> dict[str, Any]:
    """A typed model as the plain dict the API server receives (camelCase keys, no nulls)."""
    manifest: dict[str, Any] = k8s.ApiClient().sanitize_for_serialization(model)
    return manifest
