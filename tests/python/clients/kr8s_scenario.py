"""kr8s (its asyncio API) against korral: version, API versions and resources;
create, get (kr8s reads one object through a list with a metadata.name field
selector), label-selected lists, limit/continue pages; watches from a list's
resourceVersion and resumed ones; merge and JSON patches; kr8s's scale (a
merge patch of spec.replicas) and the scale subresource; NotFound and
AlreadyExists errors; deletion down to the namespace.

kr8s has no strategic merge patch, no server-side apply, no way to set a
page size and no watch bookmarks: strategic merge, apply and explicit pages
go through its raw call (`Api.call_api`); bookmarks are not covered.

Last come checks where korral has answered differently from kube-apiserver
1.33 (a field selector on a field the kind does not index, a JSON patch that
fails to apply): they all run, each prints ok or FAILED, and any failure
fails the script at the end.

Usage: python3 kr8s_scenario.py KUBECONFIG
Prints one line per check; exits non-zero on the first failure (for the
trailing kube-apiserver parity checks: after all of them ran).
"""

import asyncio
import json
import sys
import warnings

import kr8s
import kr8s.asyncio
from kr8s.asyncio.objects import ConfigMap, Deployment, Namespace, Service

from compat import run_checks, wait_until

NS = "compat-kr8s"
LABELS = {"app": "compat-web"}


def server_error(e: BaseException) -> kr8s.ServerError:
    """kr8s wraps some 404s in NotFoundError; the ServerError is its cause."""
    while e is not None and not isinstance(e, kr8s.ServerError):
        e = e.__cause__
    assert e is not None, "no ServerError behind the exception"
    return e


async def expect_error(coro, status: int, reason: str, wrapper=kr8s.ServerError) -> dict:
    try:
        await coro
    except wrapper as e:
        err = server_error(e)
        assert err.response is not None and err.response.status_code == status, (status, err.response, err.status)
        body = err.status
        assert isinstance(body, dict) and body.get("kind") == "Status", body
        assert body.get("reason") == reason and body.get("code") == status, body
        return body
    raise AssertionError(f"expected a {status} {reason} error, the call succeeded")


async def raw(api, method: str, url: str, **kw):
    """kr8s's raw call; returns the decoded JSON body."""
    async with api.call_api(method, **kw, url=url) as r:
        return r.json()


async def version_and_discovery(api) -> None:
    v = await api.version()
    assert v["major"] == "1" and v["minor"].startswith("33"), v
    assert v["gitVersion"].startswith("v1.33"), v
    print("version: ok")

    versions = [x async for x in api.api_versions()]
    assert versions[0] == "v1" and "apps/v1" in versions and "autoscaling/v1" in versions, versions
    resources = await api.api_resources()
    by = {(r["version"], r["name"]): r for r in resources}
    cm = by.get(("v1", "configmaps"))
    assert cm and cm["kind"] == "ConfigMap" and cm["namespaced"] and "cm" in cm.get("shortNames", []), cm
    dep = by.get(("apps/v1", "deployments"))
    assert dep and "deploy" in dep.get("shortNames", []) and "all" in dep.get("categories", []), dep
    # kr8s resolves kinds through discovery: a short name and a plural
    assert (await api.lookup_kind("deploy"))[:2] == ("deployment.apps/v1", "deployments"), await api.lookup_kind("deploy")
    assert (await api.lookup_kind("cm"))[1:] == ("configmaps", True), await api.lookup_kind("cm")
    print("discovery: ok")


def deployment_body() -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "compat-web", "namespace": NS, "labels": LABELS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {"containers": [
                    {"name": "web", "image": "nginx:1.25"},
                    {"name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "3600"]},
                ]},
            },
        },
    }


async def create_get_list(api) -> None:
    cm = await ConfigMap({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "compat-cm", "namespace": NS, "labels": {"role": "conf"}},
                          "data": {"k": "1"}}, api=api)
    await cm.create()
    assert cm.metadata.uid and cm.metadata.resourceVersion and cm.namespace == NS, cm.raw
    dep = await Deployment(deployment_body(), api=api)
    await dep.create()
    assert dep.spec.replicas == 2 and dep.spec.strategy.type == "RollingUpdate", dep.raw
    svc = await Service({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "compat-web", "namespace": NS, "labels": LABELS},
                         "spec": {"selector": LABELS, "ports": [{"port": 80, "targetPort": 8080}]}}, api=api)
    await svc.create()
    assert svc.spec.clusterIP and svc.spec.type == "ClusterIP" and svc.spec.ports[0].protocol == "TCP", svc.raw
    print("create: ok")

    got = await ConfigMap.get("compat-cm", namespace=NS, api=api)
    assert got.data == {"k": "1"} and got.metadata.uid == cm.metadata.uid, got.raw
    d = await Deployment.get("compat-web", namespace=NS, api=api)
    assert d.spec.replicas == 2 and d.labels == LABELS, d.raw
    s = await Service.get("compat-web", namespace=NS, api=api)
    assert s.spec.clusterIP == svc.spec.clusterIP, s.raw
    # refresh is a plain GET of the object
    await cm.refresh()
    assert cm.data == {"k": "1"}, cm.raw
    print("get: ok")

    listed = [x async for x in api.get("deployments", namespace=NS, label_selector={"app": "compat-web"})]
    assert [x.name for x in listed] == ["compat-web"] and isinstance(listed[0], Deployment), listed
    none = [x async for x in api.get("deployments", namespace=NS, label_selector="app=nope")]
    assert none == [], none
    svcs = [x async for x in api.get("services", namespace=NS, label_selector="app in (compat-web,other)")]
    assert [x.name for x in svcs] == ["compat-web"], svcs
    print("list with label selector: ok")


async def pagination(api) -> None:
    names = [f"page-{i}" for i in range(5)]
    for n in names:
        c = await ConfigMap({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": n, "namespace": NS, "labels": {"page": "yes"}}, "data": {"n": n}}, api=api)
        await c.create()
    # kr8s pages by itself (limit=100); all five come back
    listed = [x.name async for x in api.get("configmaps", namespace=NS, label_selector="page=yes")]
    assert listed == names, listed
    # explicit pages of two through kr8s's raw call
    seen, pages, token, rvs = [], 0, None, set()
    while True:
        params = {"labelSelector": "page=yes", "limit": 2}
        if token:
            params["continue"] = token
        page = await raw(api, "GET", "configmaps", namespace=NS, params=params)
        pages += 1
        assert len(page["items"]) <= 2, page
        seen += [x["metadata"]["name"] for x in page["items"]]
        rvs.add(page["metadata"]["resourceVersion"])
        if pages == 1:
            late = await ConfigMap({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "page-9", "namespace": NS, "labels": {"page": "yes"}}}, api=api)
            await late.create()
        token = page["metadata"].get("continue")
        if not token:
            break
        assert pages < 10, "pagination does not end"
    assert seen == names, f"pages gave {seen}, want {names}"
    assert pages == 3 and len(rvs) == 1, (pages, rvs)
    print("list with limit and continue: ok")


async def take(gen, stop, timeout: float, what: str):
    """Consumes kr8s's (type, object) watch generator until stop(events)."""
    events = []

    async def run():
        async for t, obj in gen:
            events.append((t, obj.name, dict(obj.raw.get("data") or {}), obj.metadata.resourceVersion))
            if stop(events):
                break
    try:
        await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; saw {events}")
    finally:
        await gen.aclose()
    return events


async def watches(api) -> None:
    start = (await raw(api, "GET", "configmaps", namespace=NS))["metadata"]["resourceVersion"]
    gen = api.watch("configmaps", namespace=NS, field_selector="metadata.name=w-cm", since=start)
    task = asyncio.ensure_future(take(gen, lambda evs: evs[-1][0] == "DELETED", 30, "ADDED, MODIFIED, DELETED"))
    cm = await ConfigMap({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "w-cm", "namespace": NS}, "data": {"v": "1"}}, api=api)
    await cm.create()
    await cm.patch({"data": {"v": "2"}})
    await cm.delete()
    events = await task
    assert [(t, n) for t, n, _, _ in events] == [("ADDED", "w-cm"), ("MODIFIED", "w-cm"), ("DELETED", "w-cm")], events
    assert events[1][2] == {"v": "2"}, events
    nums = [int(e[3]) for e in events]
    assert nums == sorted(nums) and len(set(nums)) == 3, nums
    print("watch from list resourceVersion: ok")

    gen = api.watch("configmaps", namespace=NS, field_selector="metadata.name=w-cm", since=events[0][3])
    again = await take(gen, lambda evs: evs[-1][0] == "DELETED", 30, "MODIFIED, DELETED")
    assert [(t, n) for t, n, _, _ in again] == [("MODIFIED", "w-cm"), ("DELETED", "w-cm")], again
    last = events[-1][3]
    gen = api.watch("configmaps", namespace=NS, since=last)
    task = asyncio.ensure_future(take(gen, lambda evs: True, 30, "the ADDED of w-cm2"))
    cm2 = await ConfigMap({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "w-cm2", "namespace": NS}, "data": {"v": "3"}}, api=api)
    await cm2.create()
    newer = await task
    assert [(t, n) for t, n, _, _ in newer] == [("ADDED", "w-cm2")], newer
    assert int(newer[0][3]) > int(last), (newer, last)
    print("watch resumed from last resourceVersion: ok")

    # the object's own watch (field selector on its name, from its version)
    task = asyncio.ensure_future(take(cm2.watch(), lambda evs: True, 30, "w-cm2's MODIFIED"))
    other = await ConfigMap.get("w-cm2", namespace=NS, api=api)
    await other.patch({"data": {"v": "4"}})
    mine = await task
    assert [(t, n, d) for t, n, d, _ in mine] == [("MODIFIED", "w-cm2", {"v": "4"})], mine
    print("object watch: ok")


async def patches(api) -> None:
    cm = await ConfigMap.get("compat-cm", namespace=NS, api=api)
    await cm.patch({"data": {"k": None, "m": "merge"}})
    assert cm.data == {"m": "merge"}, cm.raw
    print("merge patch: ok")

    await cm.patch([
        {"op": "test", "path": "/data/m", "value": "merge"},
        {"op": "add", "path": "/data/j", "value": "json"},
        {"op": "replace", "path": "/metadata/labels/role", "value": "patched"},
    ], type="json")
    assert cm.data == {"m": "merge", "j": "json"} and cm.labels == {"role": "patched"}, cm.raw
    await expect_error(cm.patch([{"op": "test", "path": "/data/m", "value": "other"}], type="json"), 422, "Invalid")
    print("json patch: ok")

    # no strategic merge in kr8s: the raw call with its content type
    d = await raw(api, "PATCH", "deployments/compat-web", version="apps/v1", namespace=NS,
                  headers={"Content-Type": "application/strategic-merge-patch+json"},
                  content=json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}))
    cs = {c["name"]: c["image"] for c in d["spec"]["template"]["spec"]["containers"]}
    assert cs == {"web": "nginx:1.27", "sidecar": "busybox:1.36"}, cs
    print("strategic merge patch (raw call): ok")

    # no server-side apply in kr8s either
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa-cm", "namespace": NS}, "data": {"a": "1"}}
    headers = {"Content-Type": "application/apply-patch+yaml"}
    applied = await raw(api, "PATCH", "configmaps/ssa-cm", namespace=NS, headers=headers,
                        params={"fieldManager": "compat-ssa"}, content=json.dumps(body))
    assert applied["data"] == {"a": "1"}, applied
    assert ("compat-ssa", "Apply") in [(m["manager"], m["operation"]) for m in applied["metadata"]["managedFields"]], applied
    other = dict(body, data={"a": "9"})
    err = await expect_error(raw(api, "PATCH", "configmaps/ssa-cm", namespace=NS, headers=headers,
                                 params={"fieldManager": "other-ssa"}, content=json.dumps(other)), 409, "Conflict")
    assert "compat-ssa" in err["message"], err
    print("server-side apply (raw call): ok")


async def scale(api) -> None:
    dep = await Deployment.get("compat-web", namespace=NS, api=api)
    assert dep.replicas == 2, dep.replicas
    # kr8s's scale patches spec.replicas and polls until it reads it back
    await asyncio.wait_for(dep.scale(3), 20)
    assert dep.replicas == 3, dep.raw
    s = await raw(api, "GET", "deployments/compat-web/scale", version="apps/v1", namespace=NS)
    assert s["kind"] == "Scale" and s["apiVersion"] == "autoscaling/v1" and s["spec"]["replicas"] == 3, s
    assert s["status"]["selector"] == "app=compat-web", s
    # through the scale subresource with kr8s's patch
    # (kr8s keeps the answer, a Scale, as the Deployment's raw and stamps the
    # class's kind and apiVersion over it)
    await dep.patch({"spec": {"replicas": 4}}, subresource="scale")
    assert dep.raw["spec"] == {"replicas": 4} and dep.raw["status"]["selector"] == "app=compat-web", dep.raw
    back = await Deployment.get("compat-web", namespace=NS, api=api)
    assert back.replicas == 4, back.raw
    print("scale subresource: ok")


async def errors(api) -> None:
    missing = await ConfigMap({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "missing", "namespace": NS}}, api=api)
    body = await expect_error(missing.refresh(), 404, "NotFound", wrapper=kr8s.NotFoundError)
    assert body["message"] == 'configmaps "missing" not found', body
    assert body["details"] == {"name": "missing", "kind": "configmaps"}, body
    assert not await missing.exists()
    # get by name goes through a list: nothing found within its timeout
    try:
        await ConfigMap.get("missing", namespace=NS, api=api, timeout=1)
        raise AssertionError("get of a missing ConfigMap returned something")
    except kr8s.NotFoundError:
        pass
    print("get missing is NotFound: ok")
    dup = await ConfigMap({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "compat-cm", "namespace": NS}}, api=api)
    body = await expect_error(dup.create(), 409, "AlreadyExists")
    assert body["message"] == 'configmaps "compat-cm" already exists', body
    print("create existing is AlreadyExists: ok")


async def deletes(api) -> None:
    cm = await ConfigMap.get("compat-cm", namespace=NS, api=api)
    await cm.delete()
    assert not await cm.exists()
    dep = await Deployment.get("compat-web", namespace=NS, api=api)
    await dep.delete(propagation_policy="Foreground")
    svc = await Service.get("compat-web", namespace=NS, api=api)
    await svc.delete()

    async def gone():
        return not await dep.exists()
    await wait_until(gone, 30, "the Deployment to be deleted")
    print("delete: ok")


# Checks where korral has answered differently from kube-apiserver 1.33:
# each runs even when an earlier one failed, a failure prints
# "<check>: FAILED ..." and the script exits non-zero at the end.

async def unknown_field_selector(api) -> None:
    """Kinds without field label conversions of their own (ConfigMap,
    Deployment) accept only metadata.name and metadata.namespace: kube-apiserver
    answers with runtime.DefaultMetaV1FieldSelectorConversion's error; kinds
    with their own (Pod, Secret, Service, ...) say "field label not supported"."""
    for kind in ("configmaps", "deployments"):
        async def listing():
            return [x async for x in api.get(kind, namespace=NS, field_selector="data.a=1")]
        body = await expect_error(listing(), 400, "BadRequest")
        want = '"data.a" is not a known field selector: only "metadata.name", "metadata.namespace"'
        assert body["message"] == want, f"GET {kind}?fieldSelector=data.a=1: {body['message']!r}, kube-apiserver says {want!r}"

    async def pods():
        return [x async for x in api.get("pods", namespace=NS, field_selector="data.a=1")]
    body = await expect_error(pods(), 400, "BadRequest")
    assert body["message"] == "field label not supported: data.a", body


async def json_patch_failure(api) -> None:
    """kube-apiserver answers a JSON patch that fails to apply (a failed test
    op, a missing path) with errors.NewGenericServerResponse(422, ...), which
    drops the patch library's text (handlers/patch.go applyJSPatch)."""
    cm = await ConfigMap({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "jp-cm", "namespace": NS}, "data": {"m": "merge"}}, api=api)
    await cm.create()
    for ops in ([{"op": "test", "path": "/data/m", "value": "other"}], [{"op": "remove", "path": "/data/nope"}]):
        body = await expect_error(cm.patch(ops, type="json"), 422, "Invalid")
        want = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server rejected our request due to an error in our request",
                "reason": "Invalid", "details": {}, "code": 422}
        assert body == want, f"PATCH {ops}: got {body}, kube-apiserver answers {want}"


PARITY = [
    ("unknown field selector answer", unknown_field_selector),
    ("json patch failure answer", json_patch_failure),
]


async def main(kubeconfig: str) -> None:
    with warnings.catch_warnings():
        # kr8s warns about server versions it cannot parse or does not support
        warnings.simplefilter("error")
        api = await kr8s.asyncio.api(kubeconfig=kubeconfig)
    await version_and_discovery(api)
    ns = await Namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, api=api)
    await ns.create()
    try:
        await create_get_list(api)
        await pagination(api)
        await watches(api)
        await patches(api)
        await scale(api)
        await errors(api)
        await deletes(api)
        failed = await run_checks(PARITY, api, (AssertionError, kr8s.ServerError))
    finally:
        await ns.delete()

        async def ns_gone():
            try:
                await ns.refresh()
            except kr8s.NotFoundError:
                return True
            assert ns.status.phase == "Terminating", ns.raw
            return False
        await wait_until(ns_gone, 60, f"namespace {NS} to be gone")
        print("delete namespace: ok")
    assert not failed, "answers unlike kube-apiserver 1.33:\n" + "\n".join(failed)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
