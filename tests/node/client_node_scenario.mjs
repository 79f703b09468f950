// @kubernetes/client-node (the official JavaScript client, 1.x: its
// ObjectParam typed APIs, Watch, makeInformer and KubernetesObjectApi)
// against korral: version and discovery; create, get, label-selected and
// paginated lists (limit + continue, one snapshot); watches from a list's
// resourceVersion, resumed watches and bookmarks; an informer that lists,
// then watches and sees an add, an update and a delete; merge, JSON and
// strategic merge patches (the Content-Type set with setHeaderOptions, as
// client-node 1.x documents) and server-side apply (KubernetesObjectApi.patch
// with PatchStrategy.ServerSideApply, and the typed patch call); the
// Deployment scale subresource; NotFound and AlreadyExists errors; deletion
// down to the namespace. Last come checks of answers where korral has
// differed from kube-apiserver 1.33 (a patch body that does not match its
// Content-Type, client-node 1.x's usual mistake since its patch calls default
// to application/json-patch+json); they all run, each prints ok or FAILED, and
// any failure fails the script at the end.
//
// client-node 2.x needs Node >= 22.19 (its undici 8 does not load on Node 20).
//
// Usage: node client_node_scenario.mjs KUBECONFIG MODULE
// MODULE is the package to import: an npm alias installed under
// <repo>/target/node/node_modules (client-node-pinned, client-node-latest),
// or under $KORRAL_NODE_DIR/node_modules when that is set. Runs from any cwd.
// Prints one line per check; exits non-zero on the first failure (for the
// trailing kube-apiserver parity checks: after all of them ran).

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [kubeconfigPath, moduleName] = process.argv.slice(2);
if (!kubeconfigPath || !moduleName) {
    console.error('usage: node client_node_scenario.mjs KUBECONFIG MODULE');
    process.exit(2);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.KORRAL_NODE_DIR || path.resolve(here, '../../target/node');
const requireFrom = createRequire(path.join(nodeDir, 'noop.js'));
let k8s;
try {
    k8s = await import(pathToFileURL(requireFrom.resolve(moduleName)).href);
} catch (e) {
    console.error(`cannot import ${moduleName} from ${nodeDir}/node_modules: ${e.message}`);
    process.exit(2);
}
const clientVersion = requireFrom(`${moduleName}/package.json`).version;

const { ApiException, PatchStrategy, setHeaderOptions } = k8s;

const NS = 'compat-client-node';
const LABELS = { app: 'compat-web' };
const CM_PATH = `/api/v1/namespaces/${NS}/configmaps`;

class CheckFailed extends Error {}

function assert(cond, what, detail) {
    if (!cond) {
        const extra = detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`;
        throw new CheckFailed(`${what}${extra}`);
    }
}

/** JSON with object keys sorted (maps such as ConfigMap data have no order). */
function canonical(v) {
    return JSON.stringify(v, (_, x) => (x && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Date)
        ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]]))
        : x));
}

function assertEq(got, want, what) {
    const g = canonical(got);
    const w = canonical(want);
    assert(g === w, what, `got ${g}, want ${w}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls the async function cond until it returns a truthy value. */
async function waitUntil(cond, timeoutMs, what) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
        last = await cond();
        if (last) {
            return last;
        }
        await sleep(200); // poll interval, not synchronisation
    }
    throw new CheckFailed(`timed out after ${timeoutMs / 1000}s waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** Runs an API call that must fail with an ApiException carrying a Status. */
async function expectError(promise, status, reason) {
    let result;
    try {
        result = await promise;
    } catch (e) {
        assert(e instanceof ApiException, `want an ApiException ${status} ${reason}, got`, String(e));
        assert(e.code === status, `want HTTP ${status}, got ${e.code}`, e.body);
        const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
        assert(body && body.kind === 'Status', 'the error body is not a Status', body);
        assert(body.reason === reason, `want reason ${reason}`, body);
        assert(body.code === status, `want code ${status} in the Status`, body);
        return body;
    }
    throw new CheckFailed(`expected a ${status} ${reason} error, the call succeeded: ${JSON.stringify(result)}`);
}

/**
 * Consumes a Watch on path until stop(events) is true and resolves with the
 * events ({type, object}); rejects when the watch ends first or after
 * timeoutMs.
 */
function collect(kc, watchPath, params, stop, timeoutMs) {
    return new Promise((resolve, reject) => {
        const events = [];
        let controller;
        let finished = false;
        const finish = (err) => {
            if (finished) {
                return;
            }
            finished = true;
            clearTimeout(timer);
            if (controller) {
                controller.abort();
            }
            if (err) {
                reject(err);
            } else {
                resolve(events);
            }
        };
        const timer = setTimeout(() => finish(new CheckFailed(
            `watch ${watchPath} ${JSON.stringify(params)}: stop condition not met within ${timeoutMs / 1000}s; ` +
            `events: ${JSON.stringify(summary(events))}`)), timeoutMs);
        new k8s.Watch(kc).watch(
            watchPath,
            params,
            (type, object) => {
                if (finished) {
                    return;
                }
                events.push({ type, object });
                if (stop(events)) {
                    finish(null);
                }
            },
            (err) => finish(new CheckFailed(
                `watch ${watchPath} ${JSON.stringify(params)} ended before its stop condition ` +
                `(${err ? err.message || err : 'closed by the server'}); events: ${JSON.stringify(summary(events))}`)),
        ).then((c) => {
            controller = c;
            if (finished) {
                c.abort();
            }
        }, (err) => finish(err));
    });
}

const rv = (ev) => ev.object.metadata.resourceVersion;
const summary = (events) => events.map((e) => [e.type, e.object?.metadata?.name, e.object?.data]);
const typesAndNames = (events) => events.map((e) => [e.type, e.object?.metadata?.name]);

function configMap(name, data, labels) {
    return { metadata: { name, ...(labels ? { labels } : {}) }, ...(data ? { data } : {}) };
}

function deployment() {
    return {
        metadata: { name: 'compat-web', labels: LABELS },
        spec: {
            replicas: 2,
            selector: { matchLabels: LABELS },
            template: {
                metadata: { labels: LABELS },
                spec: {
                    containers: [
                        { name: 'web', image: 'nginx:1.25' },
                        { name: 'sidecar', image: 'busybox:1.36', command: ['sleep', '3600'] },
                    ],
                },
            },
        },
    };
}

async function versionAndDiscovery(kc) {
    const v = await kc.makeApiClient(k8s.VersionApi).getCode();
    assert(v.major === '1' && v.minor.startsWith('33'), 'version', v);
    assert(v.gitVersion.startsWith('v1.33'), 'gitVersion', v.gitVersion);
    console.log('version: ok');

    const core = await kc.makeApiClient(k8s.CoreApi).getAPIVersions();
    assertEq(core.versions, ['v1'], '/api versions');
    const groups = await kc.makeApiClient(k8s.ApisApi).getAPIVersions();
    const apps = groups.groups.find((g) => g.name === 'apps');
    assert(apps && apps.versions.some((x) => x.version === 'v1'), '/apis has apps/v1', groups.groups.map((g) => g.name));
    const res = await kc.makeApiClient(k8s.CoreV1Api).getAPIResources();
    const cm = res.resources.find((r) => r.name === 'configmaps');
    assert(cm && cm.namespaced && cm.kind === 'ConfigMap', '/api/v1 lists configmaps', cm);
    for (const verb of ['create', 'get', 'list', 'watch', 'patch', 'delete']) {
        assert(cm.verbs.includes(verb), `configmaps verbs include ${verb}`, cm.verbs);
    }
    const appsRes = await kc.makeApiClient(k8s.AppsV1Api).getAPIResources();
    const scale = appsRes.resources.find((r) => r.name === 'deployments/scale');
    assert(scale && scale.kind === 'Scale' && scale.group === 'autoscaling' && scale.version === 'v1',
        'apps/v1 lists deployments/scale as autoscaling/v1 Scale', scale);
    console.log('discovery: ok');
}

async function createGetList(core, apps) {
    const made = await core.createNamespacedConfigMap({ namespace: NS, body: configMap('compat-cm', { k: '1' }, { role: 'conf' }) });
    assert(made.metadata.uid && made.metadata.resourceVersion, 'created ConfigMap has uid and resourceVersion', made.metadata);
    assert(made.metadata.namespace === NS, 'created ConfigMap namespace', made.metadata);
    assert(made.metadata.creationTimestamp instanceof Date && !isNaN(made.metadata.creationTimestamp),
        'creationTimestamp deserializes to a Date', made.metadata.creationTimestamp);
    const dep = await apps.createNamespacedDeployment({ namespace: NS, body: deployment() });
    assert(dep.spec.replicas === 2 && dep.spec.strategy.type === 'RollingUpdate', 'created Deployment defaults', dep.spec);
    const svc = await core.createNamespacedService({
        namespace: NS,
        body: {
            metadata: { name: 'compat-web', labels: LABELS },
            spec: { selector: LABELS, ports: [{ port: 80, targetPort: 8080 }] },
        },
    });
    assert(svc.spec.clusterIP && svc.spec.type === 'ClusterIP', 'created Service has a ClusterIP', svc.spec);
    assert(svc.spec.ports[0].protocol === 'TCP' && svc.spec.ports[0].targetPort === 8080, 'Service port defaults', svc.spec.ports);
    console.log('create: ok');

    const got = await core.readNamespacedConfigMap({ name: 'compat-cm', namespace: NS });
    assertEq(got.data, { k: '1' }, 'read ConfigMap data');
    assert(got.metadata.uid === made.metadata.uid, 'read ConfigMap uid', got.metadata);
    const d = await apps.readNamespacedDeployment({ name: 'compat-web', namespace: NS });
    assert(d.spec.replicas === 2, 'read Deployment replicas', d.spec);
    assertEq(d.metadata.labels, LABELS, 'read Deployment labels');
    const s = await core.readNamespacedService({ name: 'compat-web', namespace: NS });
    assert(s.spec.clusterIP === svc.spec.clusterIP, 'read Service clusterIP', s.spec);
    console.log('get: ok');

    const listed = await apps.listNamespacedDeployment({ namespace: NS, labelSelector: 'app=compat-web' });
    assertEq(listed.items.map((x) => x.metadata.name), ['compat-web'], 'deployments with app=compat-web');
    assert(listed.kind === 'DeploymentList' && listed.apiVersion === 'apps/v1', 'list kind', [listed.kind, listed.apiVersion]);
    const none = await apps.listNamespacedDeployment({ namespace: NS, labelSelector: 'app=nope' });
    assertEq(none.items, [], 'deployments with app=nope');
    const svcs = await core.listNamespacedService({ namespace: NS, labelSelector: 'app in (compat-web,other)' });
    assertEq(svcs.items.map((x) => x.metadata.name), ['compat-web'], 'services with app in (compat-web,other)');
    console.log('list with label selector: ok');
}

async function pagination(core) {
    const names = [0, 1, 2, 3, 4].map((i) => `page-${i}`);
    for (const n of names) {
        await core.createNamespacedConfigMap({ namespace: NS, body: configMap(n, { n }, { page: 'yes' }) });
    }
    const seen = [];
    const rvs = new Set();
    let pages = 0;
    let token;
    for (;;) {
        const page = await core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'page=yes', limit: 2, _continue: token });
        pages += 1;
        assert(page.items.length <= 2, 'page size', page.items.length);
        seen.push(...page.items.map((x) => x.metadata.name));
        rvs.add(page.metadata.resourceVersion);
        if (pages === 1) {
            // created after the first page: a continued list is a snapshot
            // at the first page's resourceVersion and does not show it
            await core.createNamespacedConfigMap({ namespace: NS, body: configMap('page-9', undefined, { page: 'yes' }) });
        }
        token = page.metadata._continue;
        if (!token) {
            break;
        }
        assert(pages < 10, 'pagination does not end');
    }
    assertEq(seen, names, 'names over the pages');
    assert(pages === 3, 'three pages of at most 2', pages);
    assert(rvs.size === 1, 'continued pages share the first page\'s resourceVersion', [...rvs]);
    const all = await core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'page=yes' });
    assertEq(all.items.map((x) => x.metadata.name), [...names, 'page-9'], 'a fresh list shows page-9');
    console.log('list with limit and continue: ok');
}

async function watches(kc, core) {
    const start = (await core.listNamespacedConfigMap({ namespace: NS })).metadata.resourceVersion;
    const deletedWcm = (evs) => evs.some((e) => e.type === 'DELETED' && e.object.metadata.name === 'w-cm');
    const pending = collect(kc, CM_PATH, { resourceVersion: start, timeoutSeconds: 30 }, deletedWcm, 30000);
    await core.createNamespacedConfigMap({ namespace: NS, body: configMap('w-cm', { v: '1' }) });
    await core.patchNamespacedConfigMap({ name: 'w-cm', namespace: NS, body: { data: { v: '2' } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await core.deleteNamespacedConfigMap({ name: 'w-cm', namespace: NS });
    const events = await pending;
    assertEq(typesAndNames(events), [['ADDED', 'w-cm'], ['MODIFIED', 'w-cm'], ['DELETED', 'w-cm']], 'watch events');
    assertEq(events[1].object.data, { v: '2' }, 'MODIFIED carries the new data');
    assert(events.every((e) => e.object.kind === 'ConfigMap' && e.object.apiVersion === 'v1'),
        'watch objects carry kind and apiVersion', events.map((e) => [e.object.kind, e.object.apiVersion]));
    const nums = events.map((e) => Number(rv(e)));
    assert(nums[0] < nums[1] && nums[1] < nums[2], 'event resourceVersions increase', nums);
    console.log('watch from list resourceVersion: ok');

    // resume from the ADDED event: only the later two come back
    const again = await collect(kc, CM_PATH, { resourceVersion: rv(events[0]), timeoutSeconds: 30 },
        (evs) => evs.some((e) => e.type === 'DELETED'), 30000);
    assertEq(typesAndNames(again), [['MODIFIED', 'w-cm'], ['DELETED', 'w-cm']], 'watch resumed from ADDED');
    // resume from the last seen event: only what happens after it
    const last = rv(events[events.length - 1]);
    const pendingNewer = collect(kc, CM_PATH, { resourceVersion: last, timeoutSeconds: 30 }, (evs) => evs.length >= 1, 30000);
    await core.createNamespacedConfigMap({ namespace: NS, body: configMap('w-cm2', { v: '3' }) });
    const newer = await pendingNewer;
    assertEq(typesAndNames(newer), [['ADDED', 'w-cm2']], 'watch resumed from the last event');
    assert(Number(rv(newer[0])) > Number(last), 'the new event is newer', [rv(newer[0]), last]);
    console.log('watch resumed from last resourceVersion: ok');

    // bookmarks: after a change, an idle watch gets a BOOKMARK no older than
    // it (servers may send bookmarks at any time; their versions never go back)
    const from = (await core.listNamespacedConfigMap({ namespace: NS })).metadata.resourceVersion;
    const bookmarkAfterChange = (evs) => {
        const i = evs.findIndex((e) => e.type === 'MODIFIED');
        return i >= 0 && evs[evs.length - 1].type === 'BOOKMARK' && i < evs.length - 1;
    };
    const pendingMarks = collect(kc, CM_PATH, { resourceVersion: from, allowWatchBookmarks: true, timeoutSeconds: 25 },
        bookmarkAfterChange, 25000);
    await core.patchNamespacedConfigMap({ name: 'w-cm2', namespace: NS, body: { data: { v: '4' } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const marked = await pendingMarks;
    const changes = marked.filter((e) => e.type !== 'BOOKMARK');
    assertEq(typesAndNames(changes), [['MODIFIED', 'w-cm2']], 'changes on the bookmark watch');
    const mark = marked[marked.length - 1].object;
    assert(mark.kind === 'ConfigMap' && mark.apiVersion === 'v1', 'BOOKMARK object kind and apiVersion', mark);
    assert(Number(mark.metadata.resourceVersion) >= Number(rv(changes[0])), 'BOOKMARK is no older than the change',
        [mark.metadata.resourceVersion, rv(changes[0])]);
    const markNums = marked.map((e) => Number(rv(e)));
    assert(markNums.every((n, i) => i === 0 || n >= markNums[i - 1]), 'resourceVersions never go back', summary(marked));
    console.log('watch bookmarks: ok');
}

async function informer(kc, core) {
    const selector = 'informer=yes';
    await core.createNamespacedConfigMap({ namespace: NS, body: configMap('inf-0', { v: '0' }, { informer: 'yes' }) });
    const inf = k8s.makeInformer(kc, CM_PATH,
        () => core.listNamespacedConfigMap({ namespace: NS, labelSelector: selector }), selector);
    const seen = [];
    const errors = [];
    inf.on(k8s.ADD, (o) => seen.push(['add', o.metadata.name, o.data]));
    inf.on(k8s.UPDATE, (o) => seen.push(['update', o.metadata.name, o.data]));
    inf.on(k8s.DELETE, (o) => seen.push(['delete', o.metadata.name]));
    inf.on(k8s.ERROR, (err) => errors.push(String(err && (err.message || err))));
    try {
        await inf.start();
        await waitUntil(() => seen.length >= 1 || errors.length > 0, 10000, 'the informer\'s initial list');
        assertEq(errors, [], 'informer errors after start');
        assertEq(seen, [['add', 'inf-0', { v: '0' }]], 'the informer\'s initial list');
        assert(inf.get('inf-0', NS)?.metadata?.name === 'inf-0', 'the informer cache holds inf-0');

        await core.createNamespacedConfigMap({ namespace: NS, body: configMap('inf-1', { v: '1' }, { informer: 'yes' }) });
        await core.patchNamespacedConfigMap({ name: 'inf-1', namespace: NS, body: { data: { v: '2' } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
        // not selected: the informer must not see it
        await core.createNamespacedConfigMap({ namespace: NS, body: configMap('inf-other', { v: 'x' }, { informer: 'no' }) });
        await core.deleteNamespacedConfigMap({ name: 'inf-1', namespace: NS });
        await waitUntil(() => seen.some((s) => s[0] === 'delete') || errors.length > 0, 15000,
            'the informer to see inf-1 deleted');
        assertEq(errors, [], 'informer errors');
        assertEq(seen, [
            ['add', 'inf-0', { v: '0' }],
            ['add', 'inf-1', { v: '1' }],
            ['update', 'inf-1', { v: '2' }],
            ['delete', 'inf-1'],
        ], 'informer callbacks');
        assertEq(inf.list(NS).map((o) => o.metadata.name), ['inf-0'], 'the informer cache after the delete');
        assert(Number(inf.latestResourceVersion()) > 0, 'the informer tracks a resourceVersion', inf.latestResourceVersion());
    } finally {
        await inf.stop();
    }
    console.log('informer: ok');
}

async function patches(core, apps, objects) {
    const merged = await core.patchNamespacedConfigMap(
        { name: 'compat-cm', namespace: NS, body: { data: { k: null, m: 'merge' } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    assertEq(merged.data, { m: 'merge' }, 'merge patch result');
    console.log('merge patch: ok');

    // client-node's generated patch calls send application/json-patch+json
    // unless told otherwise
    const jp = await core.patchNamespacedConfigMap({
        name: 'compat-cm',
        namespace: NS,
        body: [
            { op: 'test', path: '/data/m', value: 'merge' },
            { op: 'add', path: '/data/j', value: 'json' },
            { op: 'replace', path: '/metadata/labels/role', value: 'patched' },
        ],
    });
    assertEq(jp.data, { m: 'merge', j: 'json' }, 'JSON patch data');
    assertEq(jp.metadata.labels, { role: 'patched' }, 'JSON patch labels');
    await expectError(core.patchNamespacedConfigMap(
        { name: 'compat-cm', namespace: NS, body: [{ op: 'test', path: '/data/m', value: 'other' }] },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch)), 422, 'Invalid');
    console.log('json patch: ok');

    // strategic merge: containers merge by name, so the sidecar stays
    const d = await apps.patchNamespacedDeployment({
        name: 'compat-web',
        namespace: NS,
        body: { spec: { template: { spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] } } } },
    }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    const cs = Object.fromEntries(d.spec.template.spec.containers.map((c) => [c.name, c.image]));
    assertEq(cs, { web: 'nginx:1.27', sidecar: 'busybox:1.36' }, 'strategic merge patch containers');
    assert(d.metadata.generation === 2, 'generation after a template change', d.metadata.generation);
    console.log('strategic merge patch: ok');

    // server-side apply through KubernetesObjectApi (it looks the resource up
    // in discovery, then PATCHes with application/apply-patch+yaml)
    const spec = () => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa-cm', namespace: NS }, data: { a: '1', b: '2' } });
    let applied = await objects.patch(spec(), undefined, undefined, 'compat-ssa', undefined, PatchStrategy.ServerSideApply);
    assertEq(applied.data, { a: '1', b: '2' }, 'applied data');
    const mf = (applied.metadata.managedFields || []).map((m) => [m.manager, m.operation]);
    assert(mf.some(([m, o]) => m === 'compat-ssa' && o === 'Apply'), 'managedFields has compat-ssa Apply', mf);
    // applying without b removes it (the manager owned it)
    applied = await objects.patch({ ...spec(), data: { a: '1' } }, undefined, undefined, 'compat-ssa', undefined,
        PatchStrategy.ServerSideApply);
    assertEq(applied.data, { a: '1' }, 'applied data after dropping b');
    const read = await objects.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa-cm', namespace: NS } });
    assertEq(read.data, { a: '1' }, 'KubernetesObjectApi.read');
    // another manager changing an owned field conflicts, unless forced; this
    // one goes through the typed call with the apply Content-Type
    const other = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa-cm' }, data: { a: '9' } };
    const err = await expectError(core.patchNamespacedConfigMap(
        { name: 'ssa-cm', namespace: NS, body: other, fieldManager: 'other-ssa' },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply)), 409, 'Conflict');
    assert((err.message || '').includes('compat-ssa'), 'the conflict names the owning manager', err);
    const forced = await core.patchNamespacedConfigMap(
        { name: 'ssa-cm', namespace: NS, body: other, fieldManager: 'other-ssa', force: true },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply));
    assertEq(forced.data, { a: '9' }, 'forced apply data');
    console.log('server-side apply: ok');
}

async function scale(apps) {
    const s = await apps.readNamespacedDeploymentScale({ name: 'compat-web', namespace: NS });
    assert(s.kind === 'Scale' && s.apiVersion === 'autoscaling/v1', 'Scale kind', [s.kind, s.apiVersion]);
    assert(s.spec.replicas === 2, 'Scale spec.replicas', s.spec);
    assert(s.status.selector === 'app=compat-web', 'Scale status.selector', s.status);
    // read, modify, replace: the Scale's resourceVersion is the Deployment's,
    // which the deployment controller may bump (status) in between; a 409
    // Conflict then means read again, as client-go's RetryOnConflict does
    const replaced = await waitUntil(async () => {
        const cur = await apps.readNamespacedDeploymentScale({ name: 'compat-web', namespace: NS });
        try {
            return await apps.replaceNamespacedDeploymentScale({
                name: 'compat-web',
                namespace: NS,
                body: {
                    apiVersion: 'autoscaling/v1',
                    kind: 'Scale',
                    metadata: { name: 'compat-web', namespace: NS, resourceVersion: cur.metadata.resourceVersion },
                    spec: { replicas: 3 },
                },
            });
        } catch (e) {
            if (e instanceof ApiException && e.code === 409) {
                return false;
            }
            throw e;
        }
    }, 30000, 'a Scale replace without a conflict');
    assert(replaced.spec.replicas === 3, 'replaced Scale spec.replicas', replaced.spec);
    const back = await apps.readNamespacedDeploymentScale({ name: 'compat-web', namespace: NS });
    assert(back.spec.replicas === 3, 'Scale read back', back.spec);
    const d = await apps.readNamespacedDeployment({ name: 'compat-web', namespace: NS });
    assert(d.spec.replicas === 3, 'Deployment spec.replicas after scaling', d.spec);
    // a stale resourceVersion on the Scale (the one read before scaling) is a conflict
    await expectError(apps.replaceNamespacedDeploymentScale({
        name: 'compat-web',
        namespace: NS,
        body: {
            apiVersion: 'autoscaling/v1',
            kind: 'Scale',
            metadata: { name: 'compat-web', namespace: NS, resourceVersion: s.metadata.resourceVersion },
            spec: { replicas: 4 },
        },
    }), 409, 'Conflict');

    // the Scale's status is the Deployment's: once the controller has seen
    // the change (pods never start here, so a stuck rollout's surge pods may
    // count too) both report the same, at least 3, replicas
    await waitUntil(async () => {
        const st = (await apps.readNamespacedDeploymentScale({ name: 'compat-web', namespace: NS })).status;
        const dep = await apps.readNamespacedDeployment({ name: 'compat-web', namespace: NS });
        const observed = (dep.status.observedGeneration || 0) >= dep.metadata.generation;
        return observed && (dep.status.replicas || 0) >= 3 && st.replicas === dep.status.replicas && st;
    }, 30000, 'the Scale\'s status.replicas to match the Deployment\'s (>= 3)');
    console.log('scale subresource: ok');
}

async function errors(core) {
    let body = await expectError(core.readNamespacedConfigMap({ name: 'missing', namespace: NS }), 404, 'NotFound');
    assert(body.message === 'configmaps "missing" not found', 'NotFound message', body);
    assertEq(body.details, { name: 'missing', kind: 'configmaps' }, 'NotFound details');
    console.log('get missing is NotFound: ok');
    body = await expectError(core.createNamespacedConfigMap({ namespace: NS, body: configMap('compat-cm') }), 409, 'AlreadyExists');
    assert(body.message === 'configmaps "compat-cm" already exists', 'AlreadyExists message', body);
    assertEq(body.details, { name: 'compat-cm', kind: 'configmaps' }, 'AlreadyExists details');
    console.log('create existing is AlreadyExists: ok');
}

async function deletes(core, apps) {
    const st = await core.deleteNamespacedConfigMap({ name: 'compat-cm', namespace: NS });
    assert(st.kind === 'Status' && st.status === 'Success', 'delete ConfigMap answers a Success Status', st);
    await expectError(core.readNamespacedConfigMap({ name: 'compat-cm', namespace: NS }), 404, 'NotFound');
    await apps.deleteNamespacedDeployment({ name: 'compat-web', namespace: NS, propagationPolicy: 'Foreground' });
    await core.deleteNamespacedService({ name: 'compat-web', namespace: NS });
    await waitUntil(async () => {
        try {
            await apps.readNamespacedDeployment({ name: 'compat-web', namespace: NS });
            return false;
        } catch (e) {
            if (e instanceof ApiException && e.code === 404) {
                return true;
            }
            throw e;
        }
    }, 30000, 'the Deployment to be deleted');
    console.log('delete: ok');
}

// Checks where korral has answered differently from kube-apiserver 1.33:
// each runs even when an earlier one failed (so all show), a failure prints
// "<check>: FAILED ..." and the script exits non-zero once the namespace is
// deleted.

/** The whole Status kube-apiserver answers for errors.NewBadRequest(message). */
function badRequest(message) {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'BadRequest', code: 400 };
}

async function expectBadRequest(promise, message, request) {
    const body = await expectError(promise, 400, 'BadRequest');
    const want = badRequest(message);
    assert(canonical(body) === canonical(want), `${request}: got ${JSON.stringify(body)}, kube-apiserver answers`, want);
}

// client-node 1.x's generated patch calls send application/json-patch+json
// whatever the body is, so an object body without setHeaderOptions is the
// most common client-node mistake (and a list sent as a merge patch its
// mirror image). With no fieldValidation (so Warn) kube-apiserver decodes the
// body strictly first and answers errors.NewBadRequest with the Go decoder's
// text (handlers/patch.go: applyJSPatch, strategicPatchObject).

async function mismatchTarget(core) {
    try {
        await core.readNamespacedConfigMap({ name: 'mismatch-cm', namespace: NS });
    } catch (e) {
        if (!(e instanceof ApiException && e.code === 404)) {
            throw e;
        }
        await core.createNamespacedConfigMap({ namespace: NS, body: configMap('mismatch-cm', { a: '1' }) });
    }
}

async function mismatchUnchanged(core) {
    const cm = await core.readNamespacedConfigMap({ name: 'mismatch-cm', namespace: NS });
    assertEq(cm.data, { a: '1' }, 'a refused patch changed the ConfigMap');
}

const REPLACE_OPS = [{ op: 'replace', path: '/data/a', value: '2' }];

async function objectAsJsonPatch(core) {
    await mismatchTarget(core);
    await expectBadRequest(
        core.patchNamespacedConfigMap({ name: 'mismatch-cm', namespace: NS, body: { data: { a: '2' } } }),
        'error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp',
        `PATCH ${CM_PATH}/mismatch-cm, Content-Type: application/json-patch+json, body {"data":{"a":"2"}}`);
    await mismatchUnchanged(core);
}

async function listAsMergePatch(core) {
    await mismatchTarget(core);
    await expectBadRequest(
        core.patchNamespacedConfigMap({ name: 'mismatch-cm', namespace: NS, body: REPLACE_OPS },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
        'error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}',
        `PATCH ${CM_PATH}/mismatch-cm, Content-Type: application/merge-patch+json, body ${JSON.stringify(REPLACE_OPS)}`);
    await mismatchUnchanged(core);
}

async function listAsStrategicMergePatch(core) {
    await mismatchTarget(core);
    await expectBadRequest(
        core.patchNamespacedConfigMap({ name: 'mismatch-cm', namespace: NS, body: REPLACE_OPS },
            setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)),
        'json: cannot unmarshal array into Go value of type map[string]interface {}',
        `PATCH ${CM_PATH}/mismatch-cm, Content-Type: application/strategic-merge-patch+json, body ${JSON.stringify(REPLACE_OPS)}`);
    await mismatchUnchanged(core);
}

const PARITY = [
    ['object body sent as a JSON patch is refused', objectAsJsonPatch],
    ['list body sent as a merge patch is refused', listAsMergePatch],
    ['list body sent as a strategic merge patch is refused', listAsStrategicMergePatch],
];

async function parity(core) {
    const failed = [];
    for (const [name, check] of PARITY) {
        try {
            await check(core);
            console.log(`${name}: ok`);
        } catch (e) {
            const why = e instanceof ApiException ? `API error ${e.code}: ${e.body}` : e.message || String(e);
            console.log(`${name}: FAILED: ${why}`);
            failed.push(`${name}: ${why}`);
        }
    }
    return failed;
}

async function main() {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    console.log(`client-node ${clientVersion} (${moduleName}), node ${process.version}`);

    await versionAndDiscovery(kc);
    let failed = [];
    await core.createNamespace({ body: { metadata: { name: NS } } });
    try {
        await createGetList(core, apps);
        await pagination(core);
        await watches(kc, core);
        await informer(kc, core);
        await patches(core, apps, objects);
        await scale(apps);
        await errors(core);
        await deletes(core, apps);
        failed = await parity(core);
    } finally {
        await core.deleteNamespace({ name: NS });
        await waitUntil(async () => {
            try {
                const ns = await core.readNamespace({ name: NS });
                assert(ns.status.phase === 'Terminating', 'a deleted namespace is Terminating', ns.status);
                return false;
            } catch (e) {
                if (e instanceof ApiException && e.code === 404) {
                    return true;
                }
                throw e;
            }
        }, 60000, `namespace ${NS} to be gone`);
        console.log('delete namespace: ok');
    }
    assert(failed.length === 0, `answers unlike kube-apiserver 1.33:\n${failed.join('\n')}`);
}

try {
    await main();
} catch (e) {
    if (e instanceof CheckFailed) {
        console.error(`FAILED: ${e.message}`);
    } else if (e instanceof ApiException) {
        console.error(`FAILED: unexpected API error ${e.code}: ${typeof e.body === 'string' ? e.body : JSON.stringify(e.body)}`);
    } else {
        console.error('FAILED:', e);
    }
    process.exit(1);
}
// informer and watch sockets may linger in the agent's keep-alive pool
process.exit(0);
