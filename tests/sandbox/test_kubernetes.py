"""Kubernetes backend: manifests validated offline, the pod policy, and a real cluster when one is configured.

No API server can be had on the development machines: the generated Pod,
ConfigMap and NetworkPolicy are validated against the Kubernetes schema in
strict mode (kubernetes-validate ships the schemas), and the policy checks must
pass on them and fail on weakened copies that are still schema-valid. The
end-to-end test runs only when KUBECONFIG points at a cluster.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes_validate
import pytest

from sandbox import job
from sandbox.base import ExitReason, GiB, InvalidToolRun, Limits, MiB, SandboxUnavailable, ToolRun
from sandbox.factory import create_backend
from sandbox.kubernetes import KubernetesBackend
from sandbox.pod_manifests import (
    EXPIRES_ANNOTATION,
    MANAGED_LABELS,
    RUN_LABEL,
    PodSettings,
    build_config_map,
    build_network_policy,
    build_pod,
    to_manifest,
)
from sandbox.pod_policy import check_network_policy, check_pod
from tests.sandbox.fake_kube_api import FakeCluster, serve

#: A schema version kubernetes-validate ships (offline, strict variants included).
K8S_VERSION = "1.33.0"
RUN = ToolRun(
    source="def run(name):\n    return 'hi ' + name\n",
    input={"name": "ada"},
    limits=Limits(wall_seconds=12.5, disk_bytes=32 * 1024 * 1024),
    env={"GREETING_STYLE": "short"},
    run_id="run-abc123",
)
NOW = 1_800_000_000.0


def validate_strict(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


@pytest.fixture
def pod() -> dict[str, Any]:
    return to_manifest(build_pod(RUN, PodSettings(), now=NOW))


@pytest.fixture
def network_policy() -> dict[str, Any]:
    return to_manifest(build_network_policy())


def test_generated_manifests_validate_strictly(pod: dict[str, Any], network_policy: dict[str, Any]) -> None:
    validate_strict(pod)
    validate_strict(network_policy)
    validate_strict(to_manifest(build_config_map(RUN, PodSettings(), now=NOW)))


def test_strict_validation_rejects_unknown_fields(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["securityContext"]["priviledged"] = False  # misspelt on purpose
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(pod)


def test_pod_has_the_restricted_shape(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 13 + PodSettings().startup_seconds
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Derived from the run: 512 MiB + 64 MiB harness; 32 MiB work + 32 MiB tmp + 1 MiB log + 16 MiB.
    sized = {"memory": "576Mi", "ephemeral-storage": "81Mi"}
    assert container["resources"] == {"requests": {"cpu": "1", **sized}, "limits": {"cpu": "2", **sized}}
    assert container["command"] == ["/usr/local/bin/python3", "-I", "-B", job.HARNESS_FILE, job.JOB_DIR]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {**job.run_env(RUN)}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["work"]["emptyDir"] == {"sizeLimit": "32Mi"}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "32Mi"}
    assert volumes["job"]["configMap"]["name"] == pod["metadata"]["name"]
    paths = sorted(item["path"] for item in volumes["job"]["configMap"]["items"])
    assert paths == ["harness.py", "job/config.json", "job/input.json", "job/tool.py"]
    labels = pod["metadata"]["labels"]
    assert labels == {**MANAGED_LABELS, RUN_LABEL: "run-abc123"}
    assert int(pod["metadata"]["annotations"][EXPIRES_ANNOTATION]) > NOW + spec["activeDeadlineSeconds"]


def test_config_map_carries_the_job_files() -> None:
    config_map = to_manifest(build_config_map(RUN, PodSettings(), now=NOW))
    data = config_map["data"]
    assert data["harness.py"] == job.harness_source().decode()
    assert data["tool.py"] == RUN.source
    assert json.loads(data["input.json"]) == {"name": "ada"}
    assert json.loads(data["config.json"])["entrypoint"] == "run"
    assert config_map["immutable"] is True


def test_runtime_class_and_resources_are_configurable() -> None:
    settings = PodSettings(runtime_class="sysbox-runc", cpu="500m", memory="512Mi", ephemeral_storage="2Gi")
    manifest = to_manifest(build_pod(RUN, settings, now=NOW))
    assert manifest["spec"]["runtimeClassName"] == "sysbox-runc"
    resources = manifest["spec"]["containers"][0]["resources"]
    # The run wants 576Mi of memory: capped at the configured 512Mi; CPU request capped by the 500m limit.
    assert resources["limits"] == {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "81Mi"}
    assert resources["requests"] == {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "81Mi"}
    assert check_pod(manifest, runtime_class="sysbox-runc") == []
    default_runtime = to_manifest(build_pod(RUN, PodSettings(runtime_class=None), now=NOW))
    assert "runtimeClassName" not in default_runtime["spec"]
    validate_strict(default_runtime)


def test_pod_resources_follow_the_runs_limits() -> None:
    small = RUN.model_copy(
        update={"limits": Limits(memory_bytes=64 * MiB, disk_bytes=8 * MiB, output_bytes=64 * 1024, cpu_cores=0.25)}
    )
    manifest = to_manifest(build_pod(small, PodSettings(), now=NOW))
    validate_strict(manifest)
    assert check_pod(manifest, runtime_class="gvisor") == []
    resources = manifest["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "250m", "memory": "128Mi", "ephemeral-storage": "33Mi"}
    assert resources["limits"] == {"cpu": "2", "memory": "128Mi", "ephemeral-storage": "33Mi"}


def test_a_run_asking_above_the_configured_maxima_is_clamped() -> None:
    greedy = RUN.model_copy(
        update={"limits": Limits(memory_bytes=16 * GiB, disk_bytes=16 * GiB, output_bytes=256 * MiB, cpu_cores=8)}
    )
    manifest = to_manifest(build_pod(greedy, PodSettings(), now=NOW))
    validate_strict(manifest)
    assert check_pod(manifest, runtime_class="gvisor") == []
    container = manifest["spec"]["containers"][0]
    maxima = {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi"}
    assert container["resources"] == {"requests": maxima, "limits": maxima}
    work = next(volume for volume in manifest["spec"]["volumes"] if volume["name"] == "work")
    assert work["emptyDir"] == {"sizeLimit": "10Gi"}


@pytest.mark.parametrize("field", ["cpu", "memory", "ephemeral_storage"])
def test_a_bad_resource_setting_makes_the_backend_unavailable(field: str) -> None:
    with pytest.raises(SandboxUnavailable, match="not a positive Kubernetes quantity"):
        PodSettings(**{field: "4 gigs"})


def test_policy_passes_on_generated_manifests(pod: dict[str, Any], network_policy: dict[str, Any]) -> None:
    assert check_pod(pod, runtime_class="gvisor") == []
    assert check_network_policy(network_policy, pod_labels=MANAGED_LABELS) == []


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = pod["spec"]["containers"][0]
    return found


POD_WEAKENINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "privileged": (lambda p: _container(p)["securityContext"].update(privileged=True), "privileged"),
    "container_root": (lambda p: _container(p)["securityContext"].update(runAsUser=0), "runAsUser must not be 0"),
    "pod_root": (
        lambda p: (p["spec"]["securityContext"].update(runAsUser=0), _container(p)["securityContext"].pop("runAsUser")),
        "runAsUser must not be 0",
    ),
    "non_root_off": (lambda p: _container(p)["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
    "host_network": (lambda p: p["spec"].update(hostNetwork=True), "hostNetwork"),
    "host_pid": (lambda p: p["spec"].update(hostPID=True), "hostPID"),
    "token_mounted": (lambda p: p["spec"].pop("automountServiceAccountToken"), "automountServiceAccountToken"),
    "service_links": (lambda p: p["spec"].update(enableServiceLinks=True), "enableServiceLinks"),
    "escalation": (
        lambda p: _container(p)["securityContext"].update(allowPrivilegeEscalation=True),
        "allowPrivilegeEscalation",
    ),
    "writable_root": (
        lambda p: _container(p)["securityContext"].update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem",
    ),
    "caps_kept": (lambda p: _container(p)["securityContext"].pop("capabilities"), "drop ALL"),
    "caps_added": (
        lambda p: _container(p)["securityContext"]["capabilities"].update(add=["NET_RAW"]),
        "must not add",
    ),
    "seccomp_unconfined": (
        lambda p: (
            _container(p)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            p["spec"]["securityContext"].pop("seccompProfile"),
        ),
        "seccompProfile",
    ),
    "no_limits": (lambda p: _container(p)["resources"].pop("limits"), "resources.limits"),
    "no_memory_request": (lambda p: _container(p)["resources"]["requests"].pop("memory"), "resources.requests"),
    "no_storage_limit": (
        lambda p: _container(p)["resources"]["limits"].pop("ephemeral-storage"),
        "ephemeral-storage",
    ),
    "no_deadline": (lambda p: p["spec"].pop("activeDeadlineSeconds"), "activeDeadlineSeconds"),
    "restarts": (lambda p: p["spec"].update(restartPolicy="OnFailure"), "restartPolicy"),
    "unbounded_empty_dir": (lambda p: p["spec"]["volumes"][1]["emptyDir"].pop("sizeLimit"), "sizeLimit"),
    "host_path": (
        lambda p: p["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        "only emptyDir and configMap",
    ),
    "runtime_class_swapped": (lambda p: p["spec"].update(runtimeClassName="runc"), "runtimeClassName"),
    "host_port": (
        lambda p: _container(p).update(ports=[{"containerPort": 80, "hostPort": 80}]),
        "hostPort",
    ),
    "sidecar_unrestricted": (
        lambda p: (
            p["spec"]["initContainers"].append({"name": "init", "image": "busybox"})
            if "initContainers" in p["spec"]
            else p["spec"].update(initContainers=[{"name": "init", "image": "busybox"}])
        ),
        "initContainer 'init'",
    ),
}


@pytest.mark.parametrize("weakening", sorted(POD_WEAKENINGS))
def test_policy_fails_on_weakened_pod(pod: dict[str, Any], weakening: str) -> None:
    weaken, expected = POD_WEAKENINGS[weakening]
    weakened = copy.deepcopy(pod)
    weaken(weakened)
    validate_strict(weakened)  # still a valid Pod: only the policy can catch it
    violations = check_pod(weakened, runtime_class="gvisor")
    assert any(expected in violation for violation in violations), violations


NETWORK_WEAKENINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "egress_allowed": (lambda n: n["spec"].update(egress=[{}]), "spec.egress must be empty"),
    "egress_to_dns": (
        lambda n: n["spec"].update(egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}]),
        "spec.egress must be empty",
    ),
    "egress_not_enforced": (lambda n: n["spec"].update(policyTypes=["Ingress"]), "must include Egress"),
    "ingress_allowed": (lambda n: n["spec"].update(ingress=[{}]), "spec.ingress must be empty"),
    "other_pods_selected": (
        lambda n: n["spec"].update(podSelector={"matchLabels": {"app": "something-else"}}),
        "does not select the sandbox pods",
    ),
}


@pytest.mark.parametrize("weakening", sorted(NETWORK_WEAKENINGS))
def test_policy_fails_on_weakened_network_policy(network_policy: dict[str, Any], weakening: str) -> None:
    weaken, expected = NETWORK_WEAKENINGS[weakening]
    weakened = copy.deepcopy(network_policy)
    weaken(weakened)
    validate_strict(weakened)
    violations = check_network_policy(weakened, pod_labels=MANAGED_LABELS)
    assert any(expected in violation for violation in violations), violations


def test_backend_refuses_without_cluster_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", os.path.join(tmp_path, "missing-kubeconfig"))
    with pytest.raises(SandboxUnavailable, match="no Kubernetes configuration found: set KUBECONFIG"):
        create_backend("kubernetes")


def test_oversized_job_is_refused_before_reaching_the_cluster() -> None:
    backend = KubernetesBackend(api_client=object())
    big = ToolRun(source="def run(blob):\n    return len(blob)\n", input={"blob": "x" * 1_100_000})
    with pytest.raises(InvalidToolRun, match="at most 1000000 bytes per run"):
        backend.manifests(big)


@pytest.fixture
def cluster_backend() -> KubernetesBackend:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("no Kubernetes cluster here: set KUBECONFIG (and apply infra/k8s) to run this test")
    return KubernetesBackend(
        namespace=os.environ.get("SANDBOX_KUBERNETES_NAMESPACE", "crewcanvas-sandbox"),
        runtime_class=os.environ.get("SANDBOX_KUBERNETES_RUNTIME_CLASS", "gvisor"),
    )


async def test_real_cluster_runs_a_trivial_tool(cluster_backend: KubernetesBackend) -> None:
    availability = await cluster_backend.available()
    assert availability, availability.reason
    result = await cluster_backend.run(ToolRun(source="def run(a, b):\n    return a + b\n", input={"a": 2, "b": 3}))
    assert result.reason is ExitReason.OK, result
    assert result.output == 5
    timeout = await cluster_backend.run(
        ToolRun(source="def run():\n    while True:\n        pass\n", limits=Limits(wall_seconds=2))
    )
    assert timeout.reason is ExitReason.TIMEOUT, timeout
    assert await cluster_backend.sweep() == 0


@pytest.fixture
def fake_cluster() -> Iterator[tuple[FakeCluster, KubernetesBackend]]:
    from kubernetes import client

    cluster = FakeCluster()
    server = serve(cluster)
    configuration = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    backend = KubernetesBackend(api_client=client.ApiClient(configuration))
    try:
        yield cluster, backend
    finally:
        server.shutdown()
        for name in list(cluster.processes):
            cluster.delete_pod(name)


def install_deny_all(cluster: FakeCluster) -> None:
    policy = to_manifest(build_network_policy())
    cluster.objects["networkpolicies"][policy["metadata"]["name"]] = policy


async def test_backend_refuses_while_egress_is_not_denied(fake_cluster: tuple[FakeCluster, KubernetesBackend]) -> None:
    cluster, backend = fake_cluster
    availability = await backend.available()
    assert not availability
    assert "no NetworkPolicy denying all ingress and egress" in availability.reason
    with pytest.raises(SandboxUnavailable, match="kubernetes sandbox unavailable"):
        await backend.run(RUN)
    assert cluster.created == []


async def test_pod_runs_the_tool_and_is_cleaned_up(fake_cluster: tuple[FakeCluster, KubernetesBackend]) -> None:
    cluster, backend = fake_cluster
    install_deny_all(cluster)
    result = await backend.run(RUN)
    assert result.reason is ExitReason.OK, result
    assert result.output == "hi ada"
    assert result.backend == "kubernetes"
    assert cluster.created == ["configmaps/cc-tool-run-abc123", "pods/cc-tool-run-abc123"]
    assert cluster.objects["pods"] == {}
    assert cluster.objects["configmaps"] == {}


async def test_tool_exception_comes_back_as_crashed(fake_cluster: tuple[FakeCluster, KubernetesBackend]) -> None:
    cluster, backend = fake_cluster
    install_deny_all(cluster)
    result = await backend.run(ToolRun(source="def run():\n    print('noise')\n    raise KeyError('missing')\n"))
    assert result.reason is ExitReason.CRASHED, result
    assert result.error_type == "KeyError"
    assert "KeyError: 'missing'" in (result.error or "")
    assert "noise" in result.stderr_tail
    assert "crewcanvas-result" not in result.stderr_tail


async def test_overrunning_pod_is_killed_at_the_wall_time(fake_cluster: tuple[FakeCluster, KubernetesBackend]) -> None:
    cluster, backend = fake_cluster
    install_deny_all(cluster)
    result = await backend.run(
        ToolRun(source="def run():\n    while True:\n        pass\n", limits=Limits(wall_seconds=1))
    )
    assert result.reason is ExitReason.TIMEOUT, result
    assert result.wall_seconds < 5
    assert cluster.objects["pods"] == {}
    assert cluster.processes == {}


async def test_output_over_the_cap_is_output_limit(fake_cluster: tuple[FakeCluster, KubernetesBackend]) -> None:
    cluster, backend = fake_cluster
    install_deny_all(cluster)
    flood = "def run():\n    print('x' * 20000)\n    return 1\n"
    result = await backend.run(ToolRun(source=flood, limits=Limits(output_bytes=8192)))
    assert result.reason is ExitReason.OUTPUT_LIMIT, result


async def test_sweep_removes_only_expired_leftovers(fake_cluster: tuple[FakeCluster, KubernetesBackend]) -> None:
    cluster, backend = fake_cluster
    old = ToolRun(source=RUN.source, run_id="crashed-caller")
    fresh = ToolRun(source=RUN.source, run_id="still-running")
    past = NOW - 10_000
    for run, created in ((old, past), (fresh, NOW)):
        for manifest in (build_config_map(run, PodSettings(), now=created), build_pod(run, PodSettings(), now=created)):
            data = to_manifest(manifest)
            kind = "pods" if data["kind"] == "Pod" else "configmaps"
            cluster.objects[kind][data["metadata"]["name"]] = data
    assert await backend.sweep(now=NOW + 60) == 2
    assert sorted(cluster.objects["pods"]) == ["cc-tool-still-running"]
    assert sorted(cluster.objects["configmaps"]) == ["cc-tool-still-running"]
