"""deploy/k8s: schema-valid offline, and the security properties a platform team relies on."""

from __future__ import annotations

import copy
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest

from bench import capacity
from modelshield.core.errors import InputError
from modelshield.serve.config import parse_config
from modelshield.serve.readiness import CACHE_SECONDS, CHECK_SECONDS

K8S_VERSION = "1.31"
README = Path(__file__).resolve().parents[2] / "deploy" / "README.md"
Docs = list[tuple[Path, dict[str, Any]]]
Kinds = dict[str, list[dict[str, Any]]]


def the(by_kind: Kinds, kind: str) -> dict[str, Any]:
    (doc,) = by_kind[kind]
    return doc


def named(by_kind: Kinds, kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in by_kind[kind] if d["metadata"]["name"] == name]
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
    named += [v["value"] for v in gateway(by_kind)["env"] if v["name"].endswith("_FILE")]
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
            ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
            assert rule.get("to")
            for peer in rule["to"]:
                if "ipBlock" in peer:  # only the external datastores, by private subnet, one port each
                    assert ports in ({("TCP", 5432)}, {("TCP", 6379)}), ports
                    assert ipaddress.ip_network(peer["ipBlock"]["cidr"]).is_private, peer
            egress_ports |= ports
    assert ingress_ports == {8443}
    assert egress_ports == {("TCP", 5432), ("TCP", 6379), ("UDP", 53), ("TCP", 53)}


def test_service_pdb_and_hpa_point_at_the_gateway(by_kind: Kinds) -> None:
    deployment = the(by_kind, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = named(by_kind, "Service", "modelshield-gateway")["spec"]
    assert service["selector"].items() <= labels.items() and service["type"] == "ClusterIP"
    assert {p["targetPort"] for p in service["ports"]} <= {p["name"] for p in gateway(by_kind)["ports"]}
    pdb = the(by_kind, "PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    hpa = the(by_kind, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "modelshield-gateway"}
    # the autoscaler owns the count: a replicas field would reset it to that number on every kubectl apply
    assert "replicas" not in deployment["spec"]
    # a drain takes one replica at a time at any scale (minAvailable: 1 would let it take all but one), and the
    # smallest fleet keeps one serving while one is disrupted
    assert pdb == {**pdb, "maxUnavailable": 1} and "minAvailable" not in pdb
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_autoscaler_matches_the_capacity_plan_and_scales_up_fast_down_slowly(by_kind: Kinds) -> None:
    hpa = the(by_kind, "HorizontalPodAutoscaler")["spec"]
    ((metric),) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    # docs/capacity.md sizes replicas from bench/capacity.py at this target and this CPU request
    assert metric["resource"]["target"]["averageUtilization"] / 100 == capacity.HPA_CPU_TARGET
    requests = gateway(by_kind)["resources"]["requests"]
    assert float(requests["cpu"].removesuffix("m")) / (1000 if requests["cpu"].endswith("m") else 1) == (
        capacity.POD_CPU_REQUEST
    )
    up, down = hpa["behavior"]["scaleUp"], hpa["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 0 and down["stabilizationWindowSeconds"] >= 300
    assert max(p["value"] for p in up["policies"] if p["type"] == "Pods") > max(
        p["value"] for p in down["policies"] if p["type"] == "Pods"
    )


def test_readiness_probe_waits_longer_than_the_gateway_bounds_its_checks(by_kind: Kinds) -> None:
    probe = gateway(by_kind)["readinessProbe"]
    assert probe["timeoutSeconds"] > CHECK_SECONDS  # /readyz answers within CHECK_SECONDS, hung store or not
    # a replica that lost its store leaves the balancer within period x threshold + the cache
    assert probe["periodSeconds"] * probe["failureThreshold"] + CACHE_SECONDS <= 15


def test_postgres_and_redis_are_external_services_reached_by_name(by_kind: Kinds) -> None:
    postgres, redis = named(by_kind, "Service", "postgresql"), named(by_kind, "Service", "redis")
    for svc, port in ((postgres, 5432), (redis, 6379)):
        spec = svc["spec"]
        assert spec["type"] == "ExternalName" and "selector" not in spec
        assert "." in spec["externalName"] and not spec["externalName"].endswith(".svc.cluster.local")
        assert [p["port"] for p in spec["ports"]] == [port]


def readme_urls() -> dict[str, str]:
    """The example URLs deploy/README.md tells operators to put in the Secret modelshield-datastores."""
    text = README.read_text(encoding="utf-8")
    found = dict(re.findall(r"^(db-url|redis-url): (\S+)$", text, re.MULTILINE))
    assert set(found) == {"db-url", "redis-url"}, "deploy/README.md lost its example datastore URLs"
    return found


def test_datastore_urls_come_from_a_secret_mounted_as_files(by_kind: Kinds) -> None:
    files = projected_files(by_kind)
    env = {v["name"]: v["value"] for v in gateway(by_kind)["env"]}
    assert "MODELSHIELD_DB_URL" not in env and "MODELSHIELD_REDIS_URL" not in env
    assert files[env["MODELSHIELD_DB_URL_FILE"]] == "secret:modelshield-datastores"
    assert files[env["MODELSHIELD_REDIS_URL_FILE"]] == "secret:modelshield-datastores"
    # the documented URLs name the in-cluster service names and ports, and only files that are mounted
    urls = readme_urls()
    for key, service, port in (("db-url", "postgresql", 5432), ("redis-url", "redis", 6379)):
        parts = urlsplit(urls[key])
        assert parts.hostname == f"{service}.modelshield.svc" and parts.port == port, urls[key]
        named_files = [v[0] for v in parse_qs(parts.query).values() if v[0].startswith("/")]
        assert named_files and all(f in files for f in named_files), named_files


def test_the_gateway_reads_its_urls_from_the_secret_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_kind: Kinds
) -> None:
    urls = readme_urls()
    for key in ("db-url", "redis-url"):
        (tmp_path / key).write_text(urls[key] + "\n")  # kubectl create secret --from-file keeps the newline
    monkeypatch.setenv("MODELSHIELD_DB_URL_FILE", str(tmp_path / "db-url"))
    monkeypatch.setenv("MODELSHIELD_REDIS_URL_FILE", str(tmp_path / "redis-url"))
    monkeypatch.delenv("MODELSHIELD_DB_URL", raising=False)
    monkeypatch.delenv("MODELSHIELD_REDIS_URL", raising=False)
    config = parse_config(serve_toml(by_kind), source="configmap serve.toml")
    assert config.database_url() == config.store_url() == urls["db-url"]
    assert config.redis_url() == urls["redis-url"]
    monkeypatch.setenv("MODELSHIELD_DB_URL", "postgresql://elsewhere/db")
    with pytest.raises(InputError, match="both"):  # two sources is a mistake, not a precedence puzzle
        config.database_url()
    monkeypatch.delenv("MODELSHIELD_DB_URL")
    (tmp_path / "db-url").write_text("")
    with pytest.raises(InputError, match="empty"):
        config.database_url()
