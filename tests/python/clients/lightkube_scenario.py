"""lightkube (its synchronous Client, typed resources and generic resources)
against korral: create, get, label-selected lists and chunked lists (limit +
continue, lazily, one snapshot); watches from a list's resourceVersion and
resumed ones; merge, JSON and strategic merge patches and server-side apply
(`Client.apply`); the Deployment scale subresource (`Deployment.Scale`);
NotFound and AlreadyExists errors; a CustomResourceDefinition waited for
with `Client.wait` and used through lightkube's generic resources; deletion
down to the namespace.

lightkube has no call for /version or API discovery, and its watch cannot
ask for bookmarks or initial events: those are not covered here.

Last comes a check where korral has answered differently from kube-apiserver
1.33: the answer to a JSON patch that fails to apply.

Usage: python3 lightkube_scenario.py KUBECONFIG
Prints one line per check; exits non-zero on the first failure.
"""

import queue
import sys
import threading
import time

from lightkube import ApiError, Client, KubeConfig, codecs, operators
from lightkube.generic_resource import get_generic_resource, load_in_cluster_generic_resources
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.autoscaling_v1 import ScaleSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec, ServicePort, ServiceSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace, Service
from lightkube.types import PatchType

NS = "compat-lightkube"
LABELS = {"app": "compat-web"}
GROUP = "lightkube.compat.korral.dev"
CRD = f"widgets.{GROUP}"


def wait_until(cond, timeout: float, what: str):
    """Polls `cond` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def expect_error(fn, status: int, reason: str) -> ApiError:
    try:
        fn()
    except ApiError as e:
        assert e.status.code == status and e.response.status_code == status, (status, e.status)
        assert e.status.reason == reason, e.status
        return e
    raise AssertionError(f"expected a {status} {reason} error, the call succeeded")


class Watcher:
    """Consumes a lightkube watch in a thread (its own Client) until
    stop(events) is true; `events(timeout)` waits for that with a deadline."""

    def __init__(self, kubeconfig: str, res, stop, **kw):
        self.q: "queue.Queue" = queue.Queue()
        self.events = []

        def run():
            client = Client(config=KubeConfig.from_file(kubeconfig))
            try:
                seen = []
                for tp, obj in client.watch(res, **kw):
                    seen.append((tp, obj.metadata.name, dict(getattr(obj, "data", None) or {}), obj.metadata.resourceVersion))
                    self.q.put(("event", seen[-1]))
                    if stop(seen):
                        break
                self.q.put(("done", None))
            except BaseException as e:  # reported to the main thread
                self.q.put(("error", e))

        threading.Thread(target=run, daemon=True).start()

    def result(self, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                kind, val = self.q.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; saw {self.events}")
            if kind == "event":
                self.events.append(val)
            elif kind == "error":
                raise val
            else:
                return self.events


def create_get_list(client: Client) -> None:
    cm = client.create(ConfigMap(metadata=ObjectMeta(name="compat-cm", namespace=NS, labels={"role": "conf"}), data={"k": "1"}))
    assert cm.metadata.uid and cm.metadata.resourceVersion and cm.metadata.namespace == NS, cm.metadata
    dep = client.create(Deployment(
        metadata=ObjectMeta(name="compat-web", namespace=NS, labels=LABELS),
        spec=DeploymentSpec(
            replicas=2,
            selector=LabelSelector(matchLabels=LABELS),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=LABELS),
                spec=PodSpec(containers=[
                    Container(name="web", image="nginx:1.25"),
                    Container(name="sidecar", image="busybox:1.36", command=["sleep", "3600"]),
                ]),
            ),
        ),
    ))
    assert dep.spec.replicas == 2 and dep.spec.strategy.type == "RollingUpdate", dep.spec
    svc = client.create(Service(
        metadata=ObjectMeta(name="compat-web", namespace=NS, labels=LABELS),
        spec=ServiceSpec(selector=LABELS, ports=[ServicePort(port=80, targetPort=8080)]),
    ))
    assert svc.spec.clusterIP and svc.spec.type == "ClusterIP" and svc.spec.ports[0].protocol == "TCP", svc.spec
    print("create: ok")

    got = client.get(ConfigMap, "compat-cm", namespace=NS)
    assert got.data == {"k": "1"} and got.metadata.uid == cm.metadata.uid, got
    d = client.get(Deployment, "compat-web", namespace=NS)
    assert d.spec.replicas == 2 and d.metadata.labels == LABELS, d.metadata
    assert client.get(Service, "compat-web", namespace=NS).spec.clusterIP == svc.spec.clusterIP
    print("get: ok")

    names = [x.metadata.name for x in client.list(Deployment, namespace=NS, labels=LABELS)]
    assert names == ["compat-web"], names
    assert list(client.list(Deployment, namespace=NS, labels={"app": "nope"})) == []
    names = [x.metadata.name for x in client.list(Service, namespace=NS, labels={"app": operators.in_(["compat-web", "other"])})]
    assert names == ["compat-web"], names
    names = [x.metadata.name for x in client.list(ConfigMap, namespace=NS, labels={"role": operators.exists()})]
    assert names == ["compat-cm"], names
    print("list with label selector: ok")


def pagination(client: Client) -> None:
    names = [f"page-{i}" for i in range(5)]
    for n in names:
        client.create(ConfigMap(metadata=ObjectMeta(name=n, namespace=NS, labels={"page": "yes"}), data={"n": n}))
    # chunk_size is the limit; lightkube follows continue tokens lazily
    it = client.list(ConfigMap, namespace=NS, labels={"page": "yes"}, chunk_size=2)
    seen, rvs = [], set()
    for obj in it:
        seen.append(obj.metadata.name)
        rvs.add(it.resourceVersion)
        if len(seen) == 2:
            # the next chunks are a snapshot at the first one's version
            client.create(ConfigMap(metadata=ObjectMeta(name="page-9", namespace=NS, labels={"page": "yes"})))
    assert seen == names, f"chunks gave {seen}, want {names}"
    assert len(rvs) == 1, f"continued chunks must share the first chunk's resourceVersion: {rvs}"
    everything = [x.metadata.name for x in client.list(ConfigMap, namespace=NS, labels={"page": "yes"}, chunk_size=2)]
    assert everything == names + ["page-9"], everything
    print("list with limit and continue: ok")


def watches(client: Client, kubeconfig: str) -> None:
    it = client.list(ConfigMap, namespace=NS)
    list(it)
    start = it.resourceVersion
    w = Watcher(kubeconfig, ConfigMap, lambda evs: evs[-1][0] == "DELETED",
                namespace=NS, fields={"metadata.name": "w-cm"}, resource_version=start)
    client.create(ConfigMap(metadata=ObjectMeta(name="w-cm", namespace=NS), data={"v": "1"}))
    client.patch(ConfigMap, "w-cm", {"data": {"v": "2"}}, namespace=NS)
    client.delete(ConfigMap, "w-cm", namespace=NS)
    events = w.result(30, "ADDED, MODIFIED, DELETED")
    assert [(t, n) for t, n, _, _ in events] == [("ADDED", "w-cm"), ("MODIFIED", "w-cm"), ("DELETED", "w-cm")], events
    assert events[1][2] == {"v": "2"}, events
    nums = [int(e[3]) for e in events]
    assert nums == sorted(nums) and len(set(nums)) == 3, nums
    print("watch from list resourceVersion: ok")

    again = Watcher(kubeconfig, ConfigMap, lambda evs: evs[-1][0] == "DELETED",
                    namespace=NS, resource_version=events[0][3]).result(30, "MODIFIED, DELETED")
    assert [(t, n) for t, n, _, _ in again] == [("MODIFIED", "w-cm"), ("DELETED", "w-cm")], again
    last = events[-1][3]
    w = Watcher(kubeconfig, ConfigMap, lambda evs: True, namespace=NS, resource_version=last)
    client.create(ConfigMap(metadata=ObjectMeta(name="w-cm2", namespace=NS), data={"v": "3"}))
    newer = w.result(30, "the ADDED of w-cm2")
    assert [(t, n) for t, n, _, _ in newer] == [("ADDED", "w-cm2")], newer
    assert int(newer[0][3]) > int(last), (newer, last)
    print("watch resumed from last resourceVersion: ok")


def patches(client: Client) -> None:
    cm = client.patch(ConfigMap, "compat-cm", {"data": {"k": None, "m": "merge"}}, namespace=NS, patch_type=PatchType.MERGE)
    assert cm.data == {"m": "merge"}, cm.data
    print("merge patch: ok")

    cm = client.patch(ConfigMap, "compat-cm", [
        {"op": "test", "path": "/data/m", "value": "merge"},
        {"op": "add", "path": "/data/j", "value": "json"},
        {"op": "replace", "path": "/metadata/labels/role", "value": "patched"},
    ], namespace=NS, patch_type=PatchType.JSON)
    assert cm.data == {"m": "merge", "j": "json"} and cm.metadata.labels == {"role": "patched"}, cm
    expect_error(lambda: client.patch(ConfigMap, "compat-cm", [{"op": "test", "path": "/data/m", "value": "other"}],
                                      namespace=NS, patch_type=PatchType.JSON), 422, "Invalid")
    print("json patch: ok")

    # lightkube's default patch type is strategic merge: containers merge by name
    d = client.patch(Deployment, "compat-web", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}},
                     namespace=NS)
    cs = {c.name: c.image for c in d.spec.template.spec.containers}
    assert cs == {"web": "nginx:1.27", "sidecar": "busybox:1.36"}, cs
    print("strategic merge patch: ok")

    obj = ConfigMap(metadata=ObjectMeta(name="ssa-cm", namespace=NS), data={"a": "1", "b": "2"})
    applied = client.apply(obj, field_manager="compat-ssa")
    assert applied.data == {"a": "1", "b": "2"}, applied.data
    assert ("compat-ssa", "Apply") in [(m.manager, m.operation) for m in applied.metadata.managedFields], applied.metadata
    applied = client.apply(ConfigMap(metadata=ObjectMeta(name="ssa-cm", namespace=NS), data={"a": "1"}), field_manager="compat-ssa")
    assert applied.data == {"a": "1"}, applied.data
    other = ConfigMap(metadata=ObjectMeta(name="ssa-cm", namespace=NS), data={"a": "9"})
    e = expect_error(lambda: client.apply(other, field_manager="other-ssa"), 409, "Conflict")
    assert "compat-ssa" in e.status.message, e.status
    forced = client.apply(other, field_manager="other-ssa", force=True)
    assert forced.data == {"a": "9"}, forced.data
    # apply also creates, typed Deployments included
    made = client.apply(Deployment(
        metadata=ObjectMeta(name="ssa-web", namespace=NS),
        spec=DeploymentSpec(
            replicas=1, selector=LabelSelector(matchLabels={"app": "ssa-web"}),
            template=PodTemplateSpec(metadata=ObjectMeta(labels={"app": "ssa-web"}),
                                     spec=PodSpec(containers=[Container(name="c", image="busybox:1.36")])),
        ),
    ), field_manager="compat-ssa")
    assert made.metadata.uid and made.spec.replicas == 1, made
    client.delete(Deployment, "ssa-web", namespace=NS)
    print("server-side apply: ok")


def scale(client: Client) -> None:
    s = client.get(Deployment.Scale, "compat-web", namespace=NS)
    assert s.kind == "Scale" and s.apiVersion == "autoscaling/v1", (s.kind, s.apiVersion)
    assert s.spec.replicas == 2 and s.status.selector == "app=compat-web", s
    # lightkube's documented way: replace the Scale
    Scale = type(s)
    replaced = client.replace(Scale(metadata=ObjectMeta(name="compat-web", namespace=NS), spec=ScaleSpec(replicas=3)),
                              "compat-web", namespace=NS)
    assert replaced.spec.replicas == 3, replaced
    assert client.get(Deployment.Scale, "compat-web", namespace=NS).spec.replicas == 3
    assert client.get(Deployment, "compat-web", namespace=NS).spec.replicas == 3
    patched = client.patch(Deployment.Scale, "compat-web", {"spec": {"replicas": 4}}, namespace=NS, patch_type=PatchType.MERGE)
    assert patched.spec.replicas == 4, patched
    assert client.get(Deployment, "compat-web", namespace=NS).spec.replicas == 4
    print("scale subresource: ok")


def errors(client: Client) -> None:
    e = expect_error(lambda: client.get(ConfigMap, "missing", namespace=NS), 404, "NotFound")
    assert e.status.message == 'configmaps "missing" not found', e.status
    assert e.status.details.name == "missing" and e.status.details.kind == "configmaps", e.status.details
    print("get missing is NotFound: ok")
    e = expect_error(lambda: client.create(ConfigMap(metadata=ObjectMeta(name="compat-cm", namespace=NS))), 409, "AlreadyExists")
    assert e.status.message == 'configmaps "compat-cm" already exists', e.status
    print("create existing is AlreadyExists: ok")


def generic_resources(client: Client) -> None:
    crd = codecs.from_dict({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "default": 1},
                        "color": {"type": "string"},
                    }},
                }}},
            }],
        },
    })
    client.create(crd)
    established = client.wait(CustomResourceDefinition, CRD, for_conditions=["Established"])
    assert established.status.acceptedNames.kind == "Widget", established.status
    load_in_cluster_generic_resources(client)
    Widget = get_generic_resource(f"{GROUP}/v1", "Widget")
    assert Widget is not None, "load_in_cluster_generic_resources did not register Widget"
    w = client.create(Widget(metadata=ObjectMeta(name="w1", namespace=NS), spec={"color": "red"}))
    assert w.spec == {"color": "red", "size": 1}, w.spec
    got = client.get(Widget, "w1", namespace=NS)
    assert got.metadata.uid == w.metadata.uid and got["spec"]["color"] == "red", got
    patched = client.patch(Widget, "w1", {"spec": {"size": 3}}, namespace=NS, patch_type=PatchType.MERGE)
    assert patched.spec == {"color": "red", "size": 3}, patched.spec
    assert [x.metadata.name for x in client.list(Widget, namespace=NS)] == ["w1"]
    print("generic resources (CRD): ok")


def deletes(client: Client) -> None:
    client.delete(ConfigMap, "compat-cm", namespace=NS)
    expect_error(lambda: client.get(ConfigMap, "compat-cm", namespace=NS), 404, "NotFound")
    client.delete(Deployment, "compat-web", namespace=NS)
    client.delete(Service, "compat-web", namespace=NS)

    def gone():
        try:
            client.get(Deployment, "compat-web", namespace=NS)
            return False
        except ApiError as e:
            return e.status.code == 404
    wait_until(gone, 30, "the Deployment to be deleted")
    print("delete: ok")


def json_patch_failure(client: Client) -> None:
    """kube-apiserver answers a JSON patch that fails to apply (a failed test
    op, a missing path) with errors.NewGenericServerResponse(422, ...), which
    drops the patch library's text (handlers/patch.go applyJSPatch)."""
    client.create(ConfigMap(metadata=ObjectMeta(name="jp-cm", namespace=NS), data={"m": "merge"}))
    for ops in ([{"op": "test", "path": "/data/m", "value": "other"}], [{"op": "remove", "path": "/data/nope"}]):
        e = expect_error(lambda: client.patch(ConfigMap, "jp-cm", ops, namespace=NS, patch_type=PatchType.JSON), 422, "Invalid")
        body = e.response.json()
        want = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server rejected our request due to an error in our request",
                "reason": "Invalid", "details": {}, "code": 422}
        assert body == want, f"PATCH {ops}: got {body}, kube-apiserver answers {want}"
    print("json patch failure answer: ok")


def main(kubeconfig: str) -> None:
    client = Client(config=KubeConfig.from_file(kubeconfig))
    client.create(Namespace(metadata=ObjectMeta(name=NS)))
    try:
        create_get_list(client)
        pagination(client)
        watches(client, kubeconfig)
        patches(client)
        scale(client)
        errors(client)
        generic_resources(client)
        deletes(client)
        json_patch_failure(client)
    finally:
        client.delete(Namespace, NS)

        def ns_gone():
            try:
                ns = client.get(Namespace, NS)
            except ApiError as e:
                assert e.status.code == 404, e.status
                return True
            assert ns.status.phase == "Terminating", ns.status
            return False
        wait_until(ns_gone, 60, f"namespace {NS} to be gone")
        try:
            client.delete(CustomResourceDefinition, CRD)
        except ApiError as e:
            assert e.status.code == 404, e.status

        def crd_gone():
            try:
                client.get(CustomResourceDefinition, CRD)
                return False
            except ApiError as e:
                return e.status.code == 404
        wait_until(crd_gone, 30, f"CustomResourceDefinition {CRD} to be gone")
        print("delete namespace: ok")


if __name__ == "__main__":
    main(sys.argv[1])
