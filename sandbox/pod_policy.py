"""Policy checks for sandbox manifests: what a Pod and a NetworkPolicy must say.

They read plain manifest dicts (what ``pod_manifests.to_manifest`` returns, or
YAML loaded from ``infra/k8s``), so they also catch a manifest that someone
edited by hand or that a newer builder weakened. Each check returns readable
violations; an empty list means the manifest passes. The backend refuses a
run whose Pod has any (``PodPolicyViolation``) and refuses to run at all while
the namespace lacks a deny-all NetworkPolicy.

Schema validity is a separate question (``kubernetes-validate``): these checks
assume the manifest is well formed and judge only what it allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Volume types a sandbox pod may use; everything else (hostPath, secret,
#: projected service-account tokens, persistent volumes, ...) is refused.
ALLOWED_VOLUME_TYPES = frozenset({"emptyDir", "configMap"})
REQUIRED_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _containers(spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    found = []
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            found.append((f"{field[:-1]} {container.get('name', '?')!r}", _dict(container)))
    return found


def _check_container(
    where: str, container: Mapping[str, Any], pod_security: Mapping[str, Any], violations: list[str]
) -> None:
    security = _dict(container.get("securityContext"))
    if security.get("privileged") is True:
        violations.append(f"{where}: privileged must not be true")
    if security.get("allowPrivilegeEscalation") is not False:
        violations.append(f"{where}: allowPrivilegeEscalation must be false")
    if security.get("readOnlyRootFilesystem") is not True:
        violations.append(f"{where}: readOnlyRootFilesystem must be true")
    capabilities = _dict(security.get("capabilities"))
    if "ALL" not in (capabilities.get("drop") or []):
        violations.append(f"{where}: capabilities must drop ALL")
    if capabilities.get("add"):
        violations.append(f"{where}: capabilities must not add {capabilities['add']}")
    if security.get("procMount") not in (None, "Default"):
        violations.append(f"{where}: procMount must be Default")
    run_as_user = security.get("runAsUser", pod_security.get("runAsUser"))
    if run_as_user == 0:
        violations.append(f"{where}: runAsUser must not be 0 (root)")
    if security.get("runAsGroup", pod_security.get("runAsGroup")) == 0:
        violations.append(f"{where}: runAsGroup must not be 0")
    if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
        violations.append(f"{where}: runAsNonRoot must be true")
    seccomp = _dict(security.get("seccompProfile") or pod_security.get("seccompProfile"))
    if seccomp.get("type") not in _SECCOMP_OK:
        violations.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost, not {seccomp.get('type')}")
    resources = _dict(container.get("resources"))
    for kind in ("requests", "limits"):
        missing = [name for name in REQUIRED_RESOURCES if name not in _dict(resources.get(kind))]
        if missing:
            violations.append(f"{where}: resources.{kind} must set {', '.join(missing)}")
    for port in container.get("ports") or []:
        if _dict(port).get("hostPort"):
            violations.append(f"{where}: hostPort {port['hostPort']} must not be used")
    if container.get("stdin") and not container.get("stdinOnce"):
        violations.append(f"{where}: stdin may only be attached once (stdinOnce)")


def check_pod(manifest: Mapping[str, Any], *, runtime_class: str | None = None) -> list[str]:
    """Violations of the sandbox pod policy in a Pod manifest; ``[]`` if it passes.

    ``runtime_class``: when given, the pod must ask for exactly this RuntimeClass.
    """
    if manifest.get("kind") != "Pod":
        return [f"expected a Pod, got {manifest.get('kind')!r}"]
    spec = _dict(manifest.get("spec"))
    violations: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        if spec.get(field) is True:
            violations.append(f"spec.{field} must not be true")
    if spec.get("automountServiceAccountToken") is not False:
        violations.append("spec.automountServiceAccountToken must be false (no service-account token in the pod)")
    if spec.get("enableServiceLinks") is not False:
        violations.append("spec.enableServiceLinks must be false (no service addresses in the environment)")
    if spec.get("hostUsers") is True:
        violations.append("spec.hostUsers must not be true")
    if spec.get("restartPolicy") != "Never":
        violations.append("spec.restartPolicy must be Never (a tool runs once)")
    deadline = spec.get("activeDeadlineSeconds")
    if not isinstance(deadline, int) or deadline <= 0:
        violations.append("spec.activeDeadlineSeconds must be a positive number of seconds")
    if runtime_class is not None and spec.get("runtimeClassName") != runtime_class:
        violations.append(f"spec.runtimeClassName must be {runtime_class!r}, not {spec.get('runtimeClassName')!r}")
    pod_security = _dict(spec.get("securityContext"))
    if pod_security.get("runAsUser") == 0:
        violations.append("spec.securityContext.runAsUser must not be 0 (root)")
    for sysctl in pod_security.get("sysctls") or []:
        violations.append(f"spec.securityContext.sysctls must be empty, found {_dict(sysctl).get('name')!r}")
    containers = _containers(spec)
    if not containers:
        violations.append("spec.containers must not be empty")
    for where, container in containers:
        _check_container(where, container, pod_security, violations)
    for volume in spec.get("volumes") or []:
        volume = _dict(volume)
        kinds = [key for key in volume if key != "name"]
        name = volume.get("name", "?")
        if not kinds or any(kind not in ALLOWED_VOLUME_TYPES for kind in kinds):
            violations.append(f"volume {name!r}: only emptyDir and configMap volumes are allowed, not {kinds}")
        elif "emptyDir" in kinds and not _dict(volume["emptyDir"]).get("sizeLimit"):
            violations.append(f"volume {name!r}: emptyDir must have a sizeLimit")
    return violations


def check_network_policy(manifest: Mapping[str, Any], *, pod_labels: Mapping[str, str] | None = None) -> list[str]:
    """Violations of "deny all ingress and egress" in a NetworkPolicy manifest; ``[]`` if it passes.

    ``pod_labels``: the policy must select pods carrying these labels (an empty
    selector, which selects every pod in the namespace, always does).
    """
    if manifest.get("kind") != "NetworkPolicy":
        return [f"expected a NetworkPolicy, got {manifest.get('kind')!r}"]
    spec = _dict(manifest.get("spec"))
    violations: list[str] = []
    selector = _dict(spec.get("podSelector"))
    if "podSelector" not in spec:
        violations.append("spec.podSelector is missing")
    if selector.get("matchExpressions"):
        violations.append("spec.podSelector must be empty or plain matchLabels")
    match_labels = _dict(selector.get("matchLabels"))
    if pod_labels is not None and any(pod_labels.get(key) != value for key, value in match_labels.items()):
        violations.append(f"spec.podSelector {dict(match_labels)} does not select the sandbox pods {dict(pod_labels)}")
    policy_types = spec.get("policyTypes") or []
    for direction, rules in (("Egress", "egress"), ("Ingress", "ingress")):
        if direction not in policy_types:
            violations.append(f"spec.policyTypes must include {direction}")
        if spec.get(rules):
            violations.append(f"spec.{rules} must be empty (deny all), found {len(spec[rules])} rule(s)")
    return violations
