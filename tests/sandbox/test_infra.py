"""infra/k8s: the kustomize base parses, validates strictly, and matches what the backend expects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sandbox.pod_manifests import MANAGED_LABELS, NETWORK_POLICY_NAME, PodSettings, build_network_policy, to_manifest
from sandbox.pod_policy import check_network_policy

BASE = Path(__file__).resolve().parents[2] / "infra" / "k8s"
K8S_VERSION = "1.33.0"


def resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    found: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        found += [doc for doc in yaml.safe_load_all((BASE / name).read_text()) if doc]
    return found


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in resources() if doc["kind"] == kind]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("index", range(len(resources())))
def test_every_resource_validates_strictly(index: int) -> None:
    resource = resources()[index]
    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_network_policy_denies_everything_the_backend_checks_for() -> None:
    (policy,) = by_kind("NetworkPolicy")
    namespace = PodSettings().namespace
    assert policy["metadata"]["namespace"] == namespace
    assert policy["metadata"]["name"] == NETWORK_POLICY_NAME
    assert check_network_policy(policy, pod_labels=MANAGED_LABELS) == []
    assert policy["spec"] == to_manifest(build_network_policy(namespace))["spec"]


def test_app_role_is_limited_to_the_sandbox_namespace() -> None:
    (role,) = by_kind("Role")
    (binding,) = by_kind("RoleBinding")
    (account,) = by_kind("ServiceAccount")
    assert role["metadata"]["namespace"] == PodSettings().namespace
    granted = {
        (rule["apiGroups"][0], resource): set(rule["verbs"]) for rule in role["rules"] for resource in rule["resources"]
    }
    assert granted[("", "pods")] >= {"create", "get", "delete", "list"}
    assert granted[("", "configmaps")] >= {"create", "delete", "list"}
    assert granted[("", "pods/log")] == {"get"}
    # The app may read the deny-all policy it checks, never change it.
    assert granted[("networking.k8s.io", "networkpolicies")] == {"get", "list"}
    assert not any("*" in verbs for verbs in granted.values())
    subject = binding["subjects"][0]
    assert (subject["name"], subject["namespace"]) == (account["metadata"]["name"], account["metadata"]["namespace"])
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_sandbox_namespace_enforces_restricted_pod_security() -> None:
    namespaces = {doc["metadata"]["name"]: doc for doc in by_kind("Namespace")}
    labels = namespaces[PodSettings().namespace]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_runtime_class_example_matches_the_default_setting() -> None:
    (runtime_class,) = by_kind("RuntimeClass")
    assert runtime_class["metadata"]["name"] == PodSettings().runtime_class
    assert runtime_class["handler"] == "runsc"


def test_kustomize_builds_the_base() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: cannot render the kustomize base")
    rendered = subprocess.run([kubectl, "kustomize", str(BASE)], capture_output=True, text=True, check=True, timeout=60)
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert sorted(doc["kind"] for doc in docs) == sorted(doc["kind"] for doc in resources())
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "crewcanvas"
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
