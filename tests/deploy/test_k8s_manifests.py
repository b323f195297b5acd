"""deploy/k8s: schema-valid offline, and the security properties a platform team relies on."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest

from modelshield.serve.config import parse_config

K8S_VERSION = "1.31"
Docs = list[tuple[Path, dict[str, Any]]]
Kinds = dict[str, list[dict[str, Any]]]


def the(by_kind: Kinds, kind: str) -> dict[str, Any]:
    (doc,) = by_kind[kind]
    return doc


def pod_spec(by_kind: Kinds) -> dict[str, Any]:
    return the(by_kind, "Deployment")["spec"]["template"]["spec"]


def gateway(by_kind: Kinds) -> dict[str, Any]:
    (container,) = pod_spec(by_kind)["containers"]
    return container


def serve_toml(by_kind: Kinds) -> dict[str, Any]:
    return tomllib.loads(the(by_kind, "ConfigMap")["data"]["serve.toml"])


def test_every_manifest_validates_against_the_kubernetes_schema(documents: Docs) -> None:
    kinds = set()
    for path, doc in documents:
        if doc["kind"] == "Kustomization":
            listed = {p.name for p, d in documents if d["kind"] != "Kustomization"}
            assert set(doc["resources"]) == listed, "kustomization.yaml must list every manifest"
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"].get("namespace", "modelshield") == "modelshield", path
        kinds.add(doc["kind"])
    assert kinds >= {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }


def test_the_validator_rejects_a_broken_manifest(by_kind: Kinds) -> None:
    broken = copy.deepcopy(the(by_kind, "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {"privileged": True}  # typo'd field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_namespace_enforces_the_restricted_pod_security_standard(by_kind: Kinds) -> None:
    labels = the(by_kind, "Namespace")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_pod_runs_unprivileged_with_a_read_only_root(by_kind: Kinds) -> None:
    spec, container = pod_spec(by_kind), gateway(by_kind)
    pod_sc, sc = spec["securityContext"], container["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == 10001 and pod_sc["runAsGroup"] == 10001
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["runAsNonRoot"] is True and sc.get("runAsUser", 10001) != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    assert the(by_kind, "ServiceAccount")["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == the(by_kind, "ServiceAccount")["metadata"]["name"]
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(forbidden)
    assert not any("hostPath" in v for v in spec["volumes"])
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])


def test_image_is_pinned_not_latest(by_kind: Kinds) -> None:
    image = gateway(by_kind)["image"]
    assert "@sha256:" in image or re.search(r":[\w][\w.-]*$", image.rsplit("/", 1)[-1])
    assert not image.endswith(":latest")


def test_only_tmp_and_the_data_folder_are_writable(by_kind: Kinds) -> None:
    volumes = {v["name"]: v for v in pod_spec(by_kind)["volumes"]}
    writable = {}
    for mount in gateway(by_kind)["volumeMounts"]:
        volume = volumes[mount["name"]]
        if not mount.get("readOnly"):
            assert "emptyDir" in volume, f"{mount['mountPath']} is writable but not an emptyDir"
            writable[mount["mountPath"]] = volume
        else:
            assert "emptyDir" not in volume
    assert set(writable) == {"/tmp", "/var/lib/modelshield"}
    assert all(v["emptyDir"].get("sizeLimit") for v in writable.values())


def projected_files(by_kind: Kinds) -> dict[str, str]:
    """Path under /etc/modelshield -> the Secret or ConfigMap it comes from."""
    volumes = {v["name"]: v for v in pod_spec(by_kind)["volumes"]}
    (mount,) = [m for m in gateway(by_kind)["volumeMounts"] if m["mountPath"] == "/etc/modelshield"]
    files = {}
    for source in volumes[mount["name"]]["projected"]["sources"]:
        ((kind, ref),) = source.items()
        for item in ref["items"]:
            files[f"/etc/modelshield/{item['path']}"] = f"{kind}:{ref['name']}"
    return files


def test_secrets_are_files_never_environment_variables(by_kind: Kinds) -> None:
    container = gateway(by_kind)
    assert "envFrom" not in container
    credential_in_url = re.compile(r"://[^/@\s:]+:[^/@\s]+@")
    for var in container["env"]:
        assert "valueFrom" not in var, f"{var['name']} is read from a Secret into the environment"
        assert not re.search(r"PASSWORD|SECRET|TOKEN|PEPPER|PRIVATE", var["name"], re.IGNORECASE)
        assert not credential_in_url.search(var.get("value", "")), f"{var['name']} carries a password"
    files = projected_files(by_kind)
    secrets = {where for where in files.values() if where.startswith("secret:")}
    assert {
        "secret:modelshield-gateway-tls",
        "secret:modelshield-apikey-pepper",
        "secret:modelshield-audit-signing",
        "secret:modelshield-model-signing",
    } <= secrets
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/modelshield")
    assert mount["readOnly"] is True
    volume = next(v for v in pod_spec(by_kind)["volumes"] if v["name"] == mount["name"])
    assert volume["projected"]["defaultMode"] & 0o077 == 0o040  # owner + fsGroup read, nobody else


def test_every_file_the_config_and_urls_name_is_mounted(by_kind: Kinds) -> None:
    files = projected_files(by_kind)
    config = serve_toml(by_kind)
    named = [v for table in config.values() if isinstance(table, dict) for k, v in table.items() if k.endswith("_file")]
    for var in gateway(by_kind)["env"]:
        if var["name"] in ("MODELSHIELD_DB_URL", "MODELSHIELD_REDIS_URL"):
            query = parse_qs(urlsplit(var["value"]).query)
            named += [v[0] for k, v in query.items() if v[0].startswith("/")]
    assert named and all(path in files for path in named), sorted(set(named) - set(files))
    assert "/etc/modelshield/serve.toml" in files


def test_config_map_is_a_valid_secure_gateway_config(by_kind: Kinds) -> None:
    config = parse_config(serve_toml(by_kind), source="configmap serve.toml")
    assert config.insecure_settings() == []
    assert config.server.tls_cert_file is not None
    ports = {p["name"]: p["containerPort"] for p in gateway(by_kind)["ports"]}
    assert ports == {"https": config.server.port} and config.server.port == 8443


def test_probes_check_health_and_readiness_over_tls(by_kind: Kinds) -> None:
    container = gateway(by_kind)
    port_names = {p["name"] for p in container["ports"]}
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path and get["port"] in port_names and get["scheme"] == "HTTPS"


def test_network_policy_denies_by_default_and_allows_only_what_is_needed(by_kind: Kinds) -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind["NetworkPolicy"]}
    deny = [s for s in policies.values() if s["podSelector"] == {} and "ingress" not in s and "egress" not in s]
    assert deny and set(deny[0]["policyTypes"]) == {"Ingress", "Egress"}
    pod_labels = the(by_kind, "Deployment")["spec"]["template"]["metadata"]["labels"]
    ingress_ports, egress_ports = set(), set()
    for spec in policies.values():
        if spec["podSelector"]:
            assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
        for rule in spec.get("ingress", []):
            assert all("namespaceSelector" in peer and "ipBlock" not in peer for peer in rule["from"])
            ingress_ports |= {p["port"] for p in rule["ports"]}
            sources = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in rule["from"]}
            assert "ingress-nginx" in sources
        for rule in spec.get("egress", []):
            assert rule.get("to") and all("ipBlock" not in peer for peer in rule["to"])
            egress_ports |= {(p["protocol"], p["port"]) for p in rule["ports"]}
    assert ingress_ports == {8443}
    assert egress_ports == {("TCP", 5432), ("TCP", 6380), ("UDP", 53), ("TCP", 53)}


def test_service_pdb_and_hpa_point_at_the_gateway(by_kind: Kinds) -> None:
    deployment = the(by_kind, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = the(by_kind, "Service")["spec"]
    assert service["selector"].items() <= labels.items() and service["type"] == "ClusterIP"
    assert {p["targetPort"] for p in service["ports"]} <= {p["name"] for p in gateway(by_kind)["ports"]}
    pdb = the(by_kind, "PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] < deployment["spec"]["replicas"]
    hpa = the(by_kind, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"] and hpa["minReplicas"] >= 2
