"""kubernetes_asyncio (the asyncio port of the official client) against korral:
version and discovery; create, get, label-selected and paginated lists;
watches from a list's resourceVersion, resumed watches and bookmarks; merge,
JSON, strategic merge patches and server-side apply; the Deployment scale
subresource; NotFound and AlreadyExists errors; deletion down to the
namespace. Last come checks of answers korral once gave unlike
kube-apiserver 1.33 (remainingItemCount, PatchOptions and ListOptions
validation, WatchList refused with the gate off as 1.33 ships); they all run,
each prints ok or FAILED, and any failure fails the script at the end.

With --watch-list (a server started with `korral server --watch-list`, the
WatchList feature gate on) only the WatchList checks run: sendInitialEvents
and a watch without resourceVersion send ADDED for the current objects, then
a BOOKMARK annotated "k8s.io/initial-events-end": "true".

Usage: python3 kubernetes_asyncio_scenario.py KUBECONFIG [--watch-list]
Prints one line per check; exits non-zero on the first failure (for the
trailing kube-apiserver parity checks: after all of them ran).
"""

import asyncio
import json
import sys

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

from compat import run_checks, wait_until

NS = "compat-asyncio"
LABELS = {"app": "compat-web"}


async def expect_error(coro, status: int, reason: str):
    try:
        await coro
    except ApiException as e:
        assert e.status == status, f"want {status}, got {e.status}: {e.body}"
        body = json.loads(e.body)
        assert body.get("kind") == "Status", body
        assert body.get("reason") == reason, body
        assert body.get("code") == status, body
        return body
    raise AssertionError(f"expected a {status} {reason} error, the call succeeded")


async def collect(w: watch.Watch, gen_args, stop, timeout: float):
    """Consumes a watch until stop(events) is true; returns the events."""
    events = []

    async def run():
        async for ev in w.stream(*gen_args[0], **gen_args[1]):
            events.append(ev)
            if stop(events):
                w.stop()
                break

    await asyncio.wait_for(run(), timeout)
    return events


def rv(ev) -> str:
    return ev["raw_object"]["metadata"]["resourceVersion"]


def summary(events):
    return [(e["type"], e["raw_object"].get("metadata", {}).get("name"), e["raw_object"].get("data")) for e in events]


async def version_and_discovery(api: client.ApiClient) -> None:
    v = await client.VersionApi(api).get_code()
    assert v.major == "1" and v.minor.startswith("33"), v
    assert v.git_version.startswith("v1.33"), v.git_version
    print("version: ok")

    core = await client.CoreApi(api).get_api_versions()
    assert core.versions == ["v1"], core
    groups = await client.ApisApi(api).get_api_versions()
    names = {g.name: [x.version for x in g.versions] for g in groups.groups}
    assert "v1" in names.get("apps", []), names
    res = await client.CoreV1Api(api).get_api_resources()
    cm = next((r for r in res.resources if r.name == "configmaps"), None)
    assert cm is not None and cm.namespaced and cm.kind == "ConfigMap", cm
    assert {"create", "get", "list", "watch", "patch", "delete"} <= set(cm.verbs), cm.verbs
    apps = await client.AppsV1Api(api).get_api_resources()
    by_name = {r.name: r for r in apps.resources}
    assert "deployments" in by_name and "deployments/scale" in by_name, sorted(by_name)
    scale = by_name["deployments/scale"]
    assert scale.kind == "Scale" and scale.group == "autoscaling" and scale.version == "v1", scale
    print("discovery: ok")


def deployment() -> client.V1Deployment:
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="compat-web", labels=LABELS),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=LABELS),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=LABELS),
                spec=client.V1PodSpec(containers=[
                    client.V1Container(name="web", image="nginx:1.25"),
                    client.V1Container(name="sidecar", image="busybox:1.36", command=["sleep", "3600"]),
                ]),
            ),
        ),
    )


async def create_get_list(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="compat-cm", labels={"role": "conf"}), data={"k": "1"})
    made = await core.create_namespaced_config_map(NS, cm)
    assert made.metadata.uid and made.metadata.resource_version, made.metadata
    assert made.metadata.namespace == NS, made.metadata
    dep = await apps.create_namespaced_deployment(NS, deployment())
    assert dep.spec.replicas == 2 and dep.spec.strategy.type == "RollingUpdate", dep.spec
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="compat-web", labels=LABELS),
        spec=client.V1ServiceSpec(selector=LABELS, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    )
    s = await core.create_namespaced_service(NS, svc)
    assert s.spec.cluster_ip and s.spec.type == "ClusterIP", s.spec
    assert s.spec.ports[0].protocol == "TCP", s.spec.ports
    print("create: ok")

    got = await core.read_namespaced_config_map("compat-cm", NS)
    assert got.data == {"k": "1"} and got.metadata.uid == made.metadata.uid, got
    d = await apps.read_namespaced_deployment("compat-web", NS)
    assert d.spec.replicas == 2 and d.metadata.labels == LABELS, d.metadata
    s2 = await core.read_namespaced_service("compat-web", NS)
    assert s2.spec.cluster_ip == s.spec.cluster_ip, s2.spec
    print("get: ok")

    listed = await apps.list_namespaced_deployment(NS, label_selector="app=compat-web")
    assert [x.metadata.name for x in listed.items] == ["compat-web"], listed.items
    none = await apps.list_namespaced_deployment(NS, label_selector="app=nope")
    assert none.items == [], none.items
    svcs = await core.list_namespaced_service(NS, label_selector="app in (compat-web,other)")
    assert [x.metadata.name for x in svcs.items] == ["compat-web"], svcs.items
    print("list with label selector: ok")


async def pagination(core: client.CoreV1Api) -> None:
    names = [f"page-{i}" for i in range(5)]
    for n in names:
        await core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=n, labels={"page": "yes"}), data={"n": n}))
    seen, pages, token, rvs = [], 0, None, set()
    while True:
        kw = {"label_selector": "page=yes", "limit": 2}
        if token:
            kw["_continue"] = token
        page = await core.list_namespaced_config_map(NS, **kw)
        pages += 1
        assert len(page.items) <= 2, len(page.items)
        seen += [x.metadata.name for x in page.items]
        rvs.add(page.metadata.resource_version)
        if pages == 1:
            # created after the first page: a continued list is a snapshot at
            # the first page's resourceVersion and does not show it
            await core.create_namespaced_config_map(
                NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="page-9", labels={"page": "yes"})))
        token = page.metadata._continue
        if not token:
            break
        assert pages < 10, "pagination does not end"
    assert seen == names, f"pages gave {seen}, want {names}"
    assert pages == 3, pages
    assert len(rvs) == 1, f"continued pages must share the first page's resourceVersion: {rvs}"
    everything = await core.list_namespaced_config_map(NS, label_selector="page=yes")
    assert [x.metadata.name for x in everything.items] == names + ["page-9"], everything.items
    print("list with limit and continue: ok")


async def watches(core: client.CoreV1Api) -> None:
    start = (await core.list_namespaced_config_map(NS)).metadata.resource_version
    w = watch.Watch()
    task = asyncio.ensure_future(collect(
        w, ((core.list_namespaced_config_map, NS), {"resource_version": start, "timeout_seconds": 30}),
        lambda evs: any(e["type"] == "DELETED" and e["raw_object"]["metadata"]["name"] == "w-cm" for e in evs), 30))
    await core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w-cm"), data={"v": "1"}))
    await core.patch_namespaced_config_map("w-cm", NS, {"data": {"v": "2"}})
    await core.delete_namespaced_config_map("w-cm", NS)
    events = await task
    await w.close()
    got = summary(events)
    assert [(t, n) for t, n, _ in got] == [("ADDED", "w-cm"), ("MODIFIED", "w-cm"), ("DELETED", "w-cm")], got
    assert got[1][2] == {"v": "2"}, got
    assert isinstance(events[0]["object"], client.V1ConfigMap), type(events[0]["object"])
    nums = [int(rv(e)) for e in events]
    assert nums == sorted(nums) and len(set(nums)) == 3, nums
    print("watch from list resourceVersion: ok")

    # resume from the ADDED event: only the later two come back
    w = watch.Watch()
    again = await collect(
        w, ((core.list_namespaced_config_map, NS), {"resource_version": rv(events[0]), "timeout_seconds": 30}),
        lambda evs: any(e["type"] == "DELETED" for e in evs), 30)
    await w.close()
    assert [(t, n) for t, n, _ in summary(again)] == [("MODIFIED", "w-cm"), ("DELETED", "w-cm")], summary(again)
    # resume from the last seen event: only what happens after it
    last = rv(events[-1])
    w = watch.Watch()
    task = asyncio.ensure_future(collect(
        w, ((core.list_namespaced_config_map, NS), {"resource_version": last, "timeout_seconds": 30}),
        lambda evs: len(evs) >= 1, 30))
    await core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w-cm2"), data={"v": "3"}))
    newer = await task
    await w.close()
    assert [(t, n) for t, n, _ in summary(newer)] == [("ADDED", "w-cm2")], summary(newer)
    assert int(rv(newer[0])) > int(last), (rv(newer[0]), last)
    print("watch resumed from last resourceVersion: ok")

    # bookmarks: after a change, an idle watch gets a BOOKMARK no older than
    # it (servers may send bookmarks at any time; their versions never go back)
    start = (await core.list_namespaced_config_map(NS)).metadata.resource_version
    w = watch.Watch()

    def bookmark_after_change(evs):
        kinds = [e["type"] for e in evs]
        return "MODIFIED" in kinds and kinds[-1] == "BOOKMARK" and kinds.index("MODIFIED") < len(kinds) - 1
    task = asyncio.ensure_future(collect(
        w, ((core.list_namespaced_config_map, NS),
            {"resource_version": start, "allow_watch_bookmarks": True, "timeout_seconds": 20}),
        bookmark_after_change, 25))
    await core.patch_namespaced_config_map("w-cm2", NS, {"data": {"v": "4"}})
    try:
        events = await task
    except asyncio.TimeoutError:
        raise AssertionError("no BOOKMARK within 20 s after a change on a watch with allowWatchBookmarks=true")
    await w.close()
    changes = [e for e in events if e["type"] != "BOOKMARK"]
    assert [(t, n) for t, n, _ in summary(changes)] == [("MODIFIED", "w-cm2")], summary(events)
    mark = events[-1]["raw_object"]
    assert mark.get("kind") == "ConfigMap" and mark.get("apiVersion") == "v1", mark
    assert int(mark["metadata"]["resourceVersion"]) >= int(rv(changes[-1])), (mark, rv(changes[-1]))
    nums = [int(rv(e)) for e in events]
    assert nums == sorted(nums), f"resourceVersions go back: {summary(events)} {nums}"
    assert w.resource_version == mark["metadata"]["resourceVersion"], w.resource_version
    print("watch bookmarks: ok")


async def patches(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    merged = await core.patch_namespaced_config_map(
        "compat-cm", NS, {"data": {"k": None, "m": "merge"}}, _content_type="application/merge-patch+json")
    assert merged.data == {"m": "merge"}, merged.data
    print("merge patch: ok")

    jp = await core.patch_namespaced_config_map("compat-cm", NS, [
        {"op": "test", "path": "/data/m", "value": "merge"},
        {"op": "add", "path": "/data/j", "value": "json"},
        {"op": "replace", "path": "/metadata/labels/role", "value": "patched"},
    ])
    assert jp.data == {"m": "merge", "j": "json"} and jp.metadata.labels == {"role": "patched"}, jp
    await expect_error(core.patch_namespaced_config_map(
        "compat-cm", NS, [{"op": "test", "path": "/data/m", "value": "other"}]), 422, "Invalid")
    print("json patch: ok")

    # strategic merge: containers merge by name, so the sidecar stays
    d = await apps.patch_namespaced_deployment("compat-web", NS, {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
    cs = {c.name: c.image for c in d.spec.template.spec.containers}
    assert cs == {"web": "nginx:1.27", "sidecar": "busybox:1.36"}, cs
    assert d.metadata.generation == 2, d.metadata.generation
    print("strategic merge patch: ok")

    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa-cm"}, "data": {"a": "1", "b": "2"}}
    applied = await core.patch_namespaced_config_map(
        "ssa-cm", NS, body, field_manager="compat-ssa", _content_type="application/apply-patch+yaml")
    assert applied.data == {"a": "1", "b": "2"}, applied.data
    mf = [(m.manager, m.operation) for m in applied.metadata.managed_fields or []]
    assert ("compat-ssa", "Apply") in mf, mf
    # applying without b removes it (the manager owned it)
    body["data"] = {"a": "1"}
    applied = await core.patch_namespaced_config_map(
        "ssa-cm", NS, body, field_manager="compat-ssa", _content_type="application/apply-patch+yaml")
    assert applied.data == {"a": "1"}, applied.data
    # another manager changing a owned field conflicts, unless forced
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa-cm"}, "data": {"a": "9"}}
    err = await expect_error(core.patch_namespaced_config_map(
        "ssa-cm", NS, other, field_manager="other-ssa", _content_type="application/apply-patch+yaml"), 409, "Conflict")
    assert "compat-ssa" in err.get("message", ""), err
    forced = await core.patch_namespaced_config_map(
        "ssa-cm", NS, other, field_manager="other-ssa", force=True, _content_type="application/apply-patch+yaml")
    assert forced.data == {"a": "9"}, forced.data
    print("server-side apply: ok")


async def scale(apps: client.AppsV1Api) -> None:
    s = await apps.read_namespaced_deployment_scale("compat-web", NS)
    assert s.kind == "Scale" and s.api_version == "autoscaling/v1", (s.kind, s.api_version)
    assert s.spec.replicas == 2, s.spec
    assert s.status.selector == "app=compat-web", s.status
    patched = await apps.patch_namespaced_deployment_scale("compat-web", NS, {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3, patched.spec
    back = await apps.read_namespaced_deployment_scale("compat-web", NS)
    assert back.spec.replicas == 3, back.spec
    d = await apps.read_namespaced_deployment("compat-web", NS)
    assert d.spec.replicas == 3, d.spec

    # the scale's status is the Deployment's: once the controller has seen
    # the change (pods never start here, so a stuck rollout's surge pods may
    # count too) both report the same, at least 3, replicas
    async def settled():
        st = (await apps.read_namespaced_deployment_scale("compat-web", NS)).status
        d = await apps.read_namespaced_deployment("compat-web", NS)
        seen = (d.status.observed_generation or 0) >= d.metadata.generation
        return seen and (d.status.replicas or 0) >= 3 and st.replicas == d.status.replicas and st
    await wait_until(settled, 30, "the Scale's status.replicas to match the Deployment's (>= 3)")
    print("scale subresource: ok")


async def errors(core: client.CoreV1Api) -> None:
    body = await expect_error(core.read_namespaced_config_map("missing", NS), 404, "NotFound")
    assert body["message"] == 'configmaps "missing" not found', body
    assert body["details"] == {"name": "missing", "kind": "configmaps"}, body
    print("get missing is NotFound: ok")
    dup = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="compat-cm"))
    body = await expect_error(core.create_namespaced_config_map(NS, dup), 409, "AlreadyExists")
    assert body["message"] == 'configmaps "compat-cm" already exists', body
    print("create existing is AlreadyExists: ok")


async def deletes(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    st = await core.delete_namespaced_config_map("compat-cm", NS)
    assert st.kind == "Status" and st.status == "Success", st
    await expect_error(core.read_namespaced_config_map("compat-cm", NS), 404, "NotFound")
    await apps.delete_namespaced_deployment("compat-web", NS, propagation_policy="Foreground")
    await core.delete_namespaced_service("compat-web", NS)

    async def gone():
        try:
            await apps.read_namespaced_deployment("compat-web", NS)
            return False
        except ApiException as e:
            return e.status == 404
    await wait_until(gone, 30, "the Deployment to be deleted")
    print("delete: ok")


# Checks where korral has answered differently from kube-apiserver 1.33:
# each runs even when an earlier one failed (so all show), a failure prints
# "<check>: FAILED ..." and the script exits non-zero once the namespace is
# deleted. The WatchList check is the last.

async def remaining_item_count(core: client.CoreV1Api) -> None:
    """An unfiltered page carries metadata.remainingItemCount (kube-apiserver's
    storage.PrepareContinueToken sets it when there is no selector)."""
    total = len((await core.list_namespaced_config_map(NS)).items)
    assert total > 2, total
    page = await core.list_namespaced_config_map(NS, limit=2)
    assert page.metadata._continue, page.metadata
    assert page.metadata.remaining_item_count == total - 2, (
        f"GET /api/v1/namespaces/{NS}/configmaps?limit=2: remainingItemCount is "
        f"{page.metadata.remaining_item_count}, want {total - 2}")
    # with a selector the count would be inexact: kube-apiserver leaves it out
    page = await core.list_namespaced_config_map(NS, limit=2, label_selector="page=yes")
    assert page.metadata.remaining_item_count is None, page.metadata


async def apply_needs_field_manager(core: client.CoreV1Api) -> None:
    """kube-apiserver validates PatchOptions: apply needs a fieldManager,
    force is for apply only."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa-cm"}, "data": {"a": "0"}}
    err = await expect_error(core.patch_namespaced_config_map(
        "ssa-cm", NS, body, _content_type="application/apply-patch+yaml"), 422, "Invalid")
    assert err["message"] == 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch', err
    assert err["details"]["causes"] == [{"reason": "FieldValueRequired", "field": "fieldManager",
                                         "message": "Required value: is required for apply patch"}], err
    err = await expect_error(core.patch_namespaced_config_map(
        "ssa-cm", NS, {"data": {"a": "0"}}, force=True, _content_type="application/merge-patch+json"), 422, "Invalid")
    assert err["message"] == 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch', err


GATE_OFF = ("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch "
            "unless the WatchList feature gate is enabled")


async def watch_list_options(core: client.CoreV1Api) -> None:
    """sendInitialEvents needs resourceVersionMatch=NotOlderThan (422
    otherwise); Kubernetes 1.33 ships with the WatchList gate off, which is a
    second error."""
    err = await expect_error(core.list_namespaced_config_map(
        NS, watch=True, send_initial_events=True, allow_watch_bookmarks=True, timeout_seconds=5), 422, "Invalid")
    want = ('resourceVersionMatch: Forbidden: '
            'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan')
    if not WATCH_LIST:
        want = f"[{want}, {GATE_OFF}]"
    assert err["message"] == f'ListOptions.meta.k8s.io "" is invalid: {want}', err


async def watch_list_refused(core: client.CoreV1Api) -> None:
    """With the gate off (kube-apiserver 1.33's default) the WatchList form
    is refused; clients such as client-go fall back to list and watch."""
    err = await expect_error(core.list_namespaced_config_map(
        NS, watch=True, send_initial_events=True, resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True, timeout_seconds=5), 422, "Invalid")
    assert err["message"] == f'ListOptions.meta.k8s.io "" is invalid: {GATE_OFF}', err


async def initial_events(core: client.CoreV1Api, what: str, **kw) -> None:
    current = sorted(x.metadata.name for x in (await core.list_namespaced_config_map(NS, label_selector="page=yes")).items)
    w = watch.Watch()
    try:
        events = await collect(
            w, ((core.list_namespaced_config_map, NS),
                dict(label_selector="page=yes", allow_watch_bookmarks=True, timeout_seconds=15, **kw)),
            lambda evs: evs[-1]["type"] == "BOOKMARK", 20)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: no BOOKMARK within 15 s after the initial events")
    finally:
        await w.close()
    types = [e["type"] for e in events]
    assert types == ["ADDED"] * len(current) + ["BOOKMARK"], summary(events)
    assert sorted(e["raw_object"]["metadata"]["name"] for e in events[:-1]) == current, summary(events)
    mark = events[-1]["raw_object"]
    ann = mark["metadata"].get("annotations") or {}
    assert ann.get("k8s.io/initial-events-end") == "true", f"{what}: the first BOOKMARK is {json.dumps(mark)}"
    assert int(mark["metadata"]["resourceVersion"]) >= max(int(rv(e)) for e in events[:-1]), summary(events)


async def legacy_watch_is_watch_list(core: client.CoreV1Api) -> None:
    """With the WatchList gate on, kube-apiserver defaults a watch without
    resourceVersion to sendInitialEvents=true&resourceVersionMatch=NotOlderThan
    (SetListOptionsDefaults), so with bookmarks it ends the initial ADDED
    events with the annotated bookmark."""
    await initial_events(core, "watch?allowWatchBookmarks=true (no resourceVersion)")


async def watch_list(core: client.CoreV1Api) -> None:
    """WatchList: sendInitialEvents=true with resourceVersionMatch=NotOlderThan."""
    await initial_events(core, "watch?sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
                         send_initial_events=True, resource_version_match="NotOlderThan")


# the server runs with kube-apiserver's WatchList gate on (`korral server --watch-list`)
WATCH_LIST = "--watch-list" in sys.argv

PARITY = [
    ("list remainingItemCount", remaining_item_count),
    ("patch options validated", apply_needs_field_manager),
    ("watchlist options validated", watch_list_options),
    ("watchlist refused with the gate off", watch_list_refused),
]

WATCH_LIST_CHECKS = [
    ("watchlist options validated", watch_list_options),
    ("watch without resourceVersion ends initial events with a bookmark", legacy_watch_is_watch_list),
    ("watchlist initial events (sendInitialEvents)", watch_list),
]


async def main(kubeconfig: str) -> None:
    await config.load_kube_config(config_file=kubeconfig)
    async with client.ApiClient() as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        await version_and_discovery(api)
        await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        try:
            if WATCH_LIST:
                await pagination(core)
                failed = await run_checks(WATCH_LIST_CHECKS, core, (AssertionError, ApiException))
            else:
                await create_get_list(core, apps)
                await pagination(core)
                await watches(core)
                await patches(core, apps)
                await scale(apps)
                await errors(core)
                await deletes(core, apps)
                failed = await run_checks(PARITY, core, (AssertionError, ApiException))
        finally:
            await core.delete_namespace(NS)

            async def ns_gone():
                try:
                    ns = await core.read_namespace(NS)
                except ApiException as e:
                    assert e.status == 404, e
                    return True
                assert ns.status.phase == "Terminating", ns.status
                return False
            await wait_until(ns_gone, 60, f"namespace {NS} to be gone")
            print("delete namespace: ok")
        assert not failed, "answers unlike kube-apiserver 1.33:\n" + "\n".join(failed)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
