"""The official Kubernetes Python client's typed and dynamic APIs against
korral, where they notice differences from kube-apiserver: DELETE bodies,
error text, unknown fields without a fieldValidation directive, metadata-only
reads, and discovery caches shared by two dynamic clients.

Usage: python3 parity_scenario.py KUBECONFIG
Prints one line per check; exits non-zero on the first failure.
"""

import hashlib
import json
import os
import sys
import tempfile

from kubernetes import client, config, utils, watch
from kubernetes.dynamic import DynamicClient


def typed_pod_and_service(core: client.CoreV1Api) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-parity", labels={"app": "py-parity"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36.1", command=["sleep", "3600"])]),
    )
    created = core.create_namespaced_pod("default", pod)
    assert created.status.phase == "Pending", created.status
    assert created.spec.dns_policy == "ClusterFirst", created.spec.dns_policy
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="py-parity"),
        spec=client.V1ServiceSpec(selector={"app": "py-parity"}, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    )
    s = core.create_namespaced_service("default", svc)
    assert s.spec.cluster_ip, s.spec
    print("typed create: ok")

    deleted = core.delete_namespaced_pod("py-parity", "default")
    # kube-apiserver answers a pod DELETE with the pod, stamped for deletion
    assert isinstance(deleted, client.V1Pod), type(deleted)
    assert deleted.metadata.deletion_timestamp is not None, deleted.metadata
    gone = core.delete_namespaced_service("py-parity", "default")
    assert isinstance(gone, client.V1Service), type(gone)
    print("typed delete returns the object: ok")


def create_from_yaml_conflict(api: client.ApiClient) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-dup", "namespace": "default"}, "data": {"a": "1"}}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(body, f)
    utils.create_from_yaml(api, f.name)
    try:
        utils.create_from_yaml(api, f.name)
        raise AssertionError("the second create must fail")
    except utils.FailToCreateError as e:
        text = str(e)
        assert text.startswith("Error from server (Conflict): "), text
        want = '"message":"configmaps \\"py-dup\\" already exists","reason":"AlreadyExists"'
        assert want in text, text
    finally:
        os.unlink(f.name)
    print("create_from_yaml conflict text: ok")


def raw(api: client.ApiClient, method: str, path: str, headers: dict, body=None):
    """A request the client's models cannot express, through the client's own
    REST layer (whose call signature is stable across client versions)."""
    cfg = api.configuration
    all_headers = dict(headers)
    for auth in cfg.auth_settings().values():
        if auth.get("in") == "header" and auth.get("value"):
            all_headers[auth["key"]] = auth["value"]
    resp = api.rest_client.pool_manager.request(
        method, cfg.host + path, headers=all_headers,
        body=json.dumps(body).encode() if body is not None else None, preload_content=True)
    return resp.status, resp.headers, resp.data


def unknown_fields_warn(api: client.ApiClient) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-extra"}, "data": {"a": "1"}, "dataa": {"b": "2"}}
    status, headers, data = raw(api, "POST", "/api/v1/namespaces/default/configmaps",
                                {"Content-Type": "application/json", "Accept": "application/json"}, body)
    assert status == 201, (status, data)
    warning = headers.get("Warning")
    assert warning == '299 - "unknown field \\"dataa\\""', warning
    assert json.loads(data)["data"] == {"a": "1"}, data
    print("no directive warns about unknown fields: ok")


def metadata_only(api: client.ApiClient, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-meta", labels={"tier": "web"}), data={"big": "x" * 1000}))
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    _, _, data = raw(api, "GET", "/api/v1/namespaces/default/configmaps", {"Accept": accept})
    listed = json.loads(data)
    assert listed["kind"] == "PartialObjectMetadataList", listed["kind"]
    names = [i["metadata"]["name"] for i in listed["items"]]
    assert "py-meta" in names, names
    assert all("data" not in i for i in listed["items"])
    rv = listed["metadata"]["resourceVersion"]
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-meta-2")))
    _, _, data = raw(api, "GET", f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=2",
                     {"Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"})
    first = json.loads(data.decode().splitlines()[0])
    assert first["type"] == "ADDED" and first["object"]["kind"] == "PartialObjectMetadata", first
    assert first["object"]["metadata"]["name"] == "py-meta-2", first
    print("metadata-only list and watch: ok")


def dynamic_clients_share_discovery(api: client.ApiClient) -> None:
    cache = os.path.join(tempfile.mkdtemp(), "discovery.json")
    first = DynamicClient(api, cache_file=cache)
    pods = first.resources.get(api_version="v1", kind="Pod")
    assert pods.namespaced
    first.resources.get(api_version="apps/v1", kind="Deployment")
    with open(cache, "rb") as f:
        before = hashlib.sha256(f.read()).hexdigest()
    second = DynamicClient(api, cache_file=cache)
    deployments = second.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.name == "deployments", deployments.name
    listed = second.get(second.resources.get(api_version="v1", kind="Pod"), namespace="default")
    assert listed.kind == "PodList", listed.kind
    with open(cache, "rb") as f:
        after = hashlib.sha256(f.read()).hexdigest()
    # the second client found everything it needed in the first one's cache
    assert before == after, "the second dynamic client rewrote the shared discovery cache"
    print("dynamic clients share one discovery cache: ok")


def main(kubeconfig: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    api = client.ApiClient()
    core = client.CoreV1Api(api)
    typed_pod_and_service(core)
    create_from_yaml_conflict(api)
    unknown_fields_warn(api)
    metadata_only(api, core)
    dynamic_clients_share_discovery(api)


if __name__ == "__main__":
    main(sys.argv[1])
