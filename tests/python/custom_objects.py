"""The official Kubernetes Python client's CustomObjectsApi against korral:
install a CustomResourceDefinition, wait for it to be Established, then
create, list by label, watch, patch the status and scale of, and delete its
objects.

Usage: python3 custom_objects.py KUBECONFIG CRD_YAML
Prints one line per check; exits non-zero on the first failure.
"""

import sys
import threading
import time

from kubernetes import client, config, utils, watch

GROUP, VERSION, PLURAL, NS = "shop.example.com", "v1", "orders", "default"


def wait_established(ext: client.ApiextensionsV1Api, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        conds = {c.type: c.status for c in (crd.status.conditions or [])}
        if conds.get("Established") == "True":
            return
        w = watch.Watch()
        for ev in w.stream(ext.list_custom_resource_definition, field_selector=f"metadata.name={name}", timeout_seconds=5):
            conds = {c.type: c.status for c in (ev["object"].status.conditions or [])}
            if conds.get("Established") == "True":
                w.stop()
                return
    raise AssertionError(f"{name} was not Established in time")


def order(name: str, customer: str, replicas: int) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Order",
        "metadata": {"name": name, "labels": {"shop.example.com/customer": customer}},
        "spec": {"customer": customer, "replicas": replicas, "lineItems": [{"sku": "MUG-001", "quantity": 1}]},
    }


def main(kubeconfig: str, crd_file: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    api = client.ApiClient()
    ext = client.ApiextensionsV1Api(api)
    co = client.CustomObjectsApi(api)

    utils.create_from_yaml(api, crd_file)
    wait_established(ext, f"{PLURAL}.{GROUP}")
    print("crd established: ok")

    # a watch from the list's resourceVersion sees every change after it, in order
    rv = co.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["metadata"]["resourceVersion"]
    events = []
    w = watch.Watch()

    def follow():
        for ev in w.stream(co.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, resource_version=rv, timeout_seconds=20):
            events.append((ev["type"], ev["object"]["metadata"]["name"]))
            if ("DELETED", "py-order-1") in events:
                w.stop()

    t = threading.Thread(target=follow)
    t.start()

    created = co.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, order("py-order-1", "acme-corp", 2))
    assert created["spec"]["priority"] == "normal", created["spec"]  # the schema's default
    co.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, order("py-order-2", "globex", 1))
    print("create: ok")

    listed = co.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, label_selector="shop.example.com/customer=acme-corp")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["py-order-1"], listed["items"]
    assert listed["kind"] == "OrderList", listed["kind"]
    print("list by label: ok")

    patched = co.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "py-order-1", {"status": {"phase": "Processing", "replicas": 2}})
    assert patched["status"]["phase"] == "Processing", patched
    scaled = co.patch_namespaced_custom_object_scale(GROUP, VERSION, NS, PLURAL, "py-order-1", {"spec": {"replicas": 4}})
    assert scaled["kind"] == "Scale" and scaled["spec"]["replicas"] == 4, scaled
    got = co.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-order-1")
    assert got["spec"]["replicas"] == 4 and got["status"]["phase"] == "Processing", got
    print("status and scale: ok")

    try:
        co.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, order("py-bad", "Not_Valid", 1))
        raise AssertionError("an invalid order must be refused")
    except client.ApiException as e:
        assert e.status == 422, e.status
        assert "spec.customer in body should match" in e.body, e.body
    print("validation: ok")

    co.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-order-1")
    t.join(timeout=25)
    names = [e for e in events if e[1] == "py-order-1"]
    assert names[0] == ("ADDED", "py-order-1") and names[-1] == ("DELETED", "py-order-1"), events
    assert ("MODIFIED", "py-order-1") in names, events
    print("watch: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
