"""The official Kubernetes Python client against korral: create a Deployment,
list pods with a label selector, and watch ADDED/MODIFIED/DELETED in order.

Usage: python3 client_scenario.py KUBECONFIG
Prints one line per check; exits non-zero on the first failure.
"""

import sys
import threading

from kubernetes import client, config, watch


def main(kubeconfig: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    apps = client.AppsV1Api()
    core = client.CoreV1Api()
    ns = "default"

    labels = {"app": "py-web"}
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py-web", labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.25")]),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(ns, dep)
    assert created.metadata.uid, "the server sets a uid"
    assert created.spec.strategy.type == "RollingUpdate", created.spec.strategy
    print("create deployment: ok")

    got = apps.read_namespaced_deployment("py-web", ns)
    assert got.spec.replicas == 2
    print("read deployment: ok")

    # pods with and without the label
    for name, lbl in [("py-a", {"app": "py"}), ("py-b", {"app": "py"}), ("other", {"app": "other"})]:
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels=lbl),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
        )
        core.create_namespaced_pod(ns, pod)
    names = sorted(p.metadata.name for p in core.list_namespaced_pod(ns, label_selector="app=py").items)
    assert names == ["py-a", "py-b"], names
    print("list pods by label: ok")

    # watch from the list's resourceVersion, then change things
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    events = []
    w = watch.Watch()
    done = threading.Event()

    def consume():
        for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=20):
            if ev["object"].metadata.name != "py-cm":
                continue
            events.append((ev["type"], ev["object"].data))
            if ev["type"] == "DELETED":
                w.stop()
                break
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm"), data={"k": "1"})
    core.create_namespaced_config_map(ns, cm)
    core.patch_namespaced_config_map("py-cm", ns, {"data": {"k": "2"}})
    core.delete_namespaced_config_map("py-cm", ns)
    assert done.wait(20), "the watch saw the deletion"
    t.join()
    kinds = [e[0] for e in events]
    assert kinds == ["ADDED", "MODIFIED", "DELETED"], events
    assert events[1][1] == {"k": "2"}, events
    print("watch: ok")

    apps.delete_namespaced_deployment("py-web", ns)
    try:
        apps.read_namespaced_deployment("py-web", ns)
        raise AssertionError("deleted deployment still readable")
    except client.exceptions.ApiException as e:
        assert e.status == 404, e.status
    print("delete deployment: ok")


if __name__ == "__main__":
    main(sys.argv[1])
