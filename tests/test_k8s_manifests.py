"""The Kubernetes manifests of deploy/k8s (issue 27): valid against the Kubernetes JSON schemas, and wired together.

`kubernetes-validate` (a dev dependency) ships the schemas of every Kubernetes release it supports, so this runs
offline, with no cluster. Strict mode refuses any field a schema does not know (a typo is an error, not ignored).
The operator's `postgresql` resource has no schema there: its fields the services depend on are checked by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
# 1.30: the oldest release with the `sleep` pre-stop action on by default; then the newest the package knows.
VERSIONS = ["1.30.0", f"{kubernetes_validate.latest_version()}.0"]
OPERATOR_KIND = ("acid.zalan.do/v1", "postgresql")


def resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs.extend(doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc)
    return docs


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in resources() if doc["kind"] == kind}


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    assert {image["name"] for image in kustomization["images"]} == {"session-backend", "test-session-agent"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    checked = []
    for doc in resources():
        if (doc["apiVersion"], doc["kind"]) == OPERATOR_KIND:
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked.append(doc["kind"])
    assert sorted(checked) == sorted(["Deployment", "Service", "PodDisruptionBudget"] * 2)


def test_a_misspelt_field_is_refused() -> None:
    # The check has teeth: strict schemas refuse a field Kubernetes does not know.
    deployment = by_kind("Deployment")["session-backend"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/health"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("name", ["session-backend", "test-session-agent"])
def test_each_service_has_probes_resources_a_budget_and_a_service(name: str) -> None:
    deployment = by_kind("Deployment")[name]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["replicas"] >= 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in ("/health", "/ready"), probe
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    env = {e["name"]: e for e in container["env"]}
    assert env["HOST"]["value"] == "0.0.0.0"
    assert int(env["PORT"]["value"]) == container["ports"][0]["containerPort"]

    budget = by_kind("PodDisruptionBudget")[name]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    service = by_kind("Service")[name]
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_agent_reaches_the_backend_service() -> None:
    (agent,) = by_kind("Deployment")["test-session-agent"]["spec"]["template"]["spec"]["containers"]
    url = urlsplit(next(e["value"] for e in agent["env"] if e["name"] == "SESSION_BACKEND_URL"))
    backend_service = by_kind("Service")["session-backend"]
    assert url.hostname == backend_service["metadata"]["name"]
    assert url.port == backend_service["spec"]["ports"][0]["port"]


def test_the_backend_uses_the_operators_primary_service_and_credentials() -> None:
    (cluster,) = (doc for doc in resources() if (doc["apiVersion"], doc["kind"]) == OPERATOR_KIND)
    spec, name = cluster["spec"], cluster["metadata"]["name"]
    # The operator's naming rules: cluster names start with the team id; one Secret per user.
    assert name.startswith(f"{spec['teamId']}-")
    assert spec["numberOfInstances"] >= 3 and spec["patroni"]["synchronous_mode"] is True

    (backend,) = by_kind("Deployment")["session-backend"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in backend["env"]}
    url = urlsplit(env["DATABASE_URL"]["value"])
    assert url.hostname == name  # the operator's Service that always points at the primary
    assert url.path.lstrip("/") in spec["databases"]
    assert "target_session_attrs=read-write" in url.query
    for variable in ("DB_USER", "DB_PASSWORD"):
        secret = env[variable]["valueFrom"]["secretKeyRef"]["name"]
        user, cluster_name, rest = secret.split(".", 2)
        assert (cluster_name, rest) == (name, "credentials.postgresql.acid.zalan.do")
        assert user in spec["users"] and spec["databases"][url.path.lstrip("/")] == user
