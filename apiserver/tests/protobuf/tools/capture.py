"""A fake API server that records the request bodies kubectl sends.

Usage: capture.py OUT_DIR PORT (env NAME names the files: NAME.pb for protobuf
bodies, NAME.json for JSON ones; NAME2.* for the second write, ...). It answers
discovery minimally, records every POST/PUT/PATCH/DELETE body and answers it
403, so kubectl stops after one write.
CANNED__path_with_underscores=JSON answers a GET; REPLY=JSON answers writes."""
import json, sys, os, http.server, threading

OUT = sys.argv[1]
PORT = int(sys.argv[2])
RES = {
    '/api/v1': ('v1', [('pods', 'Pod', True, ['create','get','list','delete','patch','update']), ('pods/eviction', 'Eviction', True, ['create']),
                       ('nodes', 'Node', False, ['create','get','list','patch','update']), ('services', 'Service', True, ['create','get']),
                       ('configmaps', 'ConfigMap', True, ['create','get']), ('secrets', 'Secret', True, ['create','get']),
                       ('namespaces', 'Namespace', False, ['create','get']), ('events', 'Event', True, ['create']),
                       ('endpoints', 'Endpoints', True, ['create']), ('pods/binding', 'Binding', True, ['create']),
                       ('serviceaccounts', 'ServiceAccount', True, ['create','get']), ('resourcequotas', 'ResourceQuota', True, ['create','get'])]),
    '/apis/apps/v1': ('apps/v1', [('deployments', 'Deployment', True, ['create','get','patch','update']), ('deployments/scale', 'Scale', True, ['get','patch','update']),
                                  ('replicasets', 'ReplicaSet', True, ['create','get'])]),
    '/apis/batch/v1': ('batch/v1', [('jobs', 'Job', True, ['create','get']), ('cronjobs', 'CronJob', True, ['create','get'])]),
    '/apis/autoscaling/v1': ('autoscaling/v1', [('horizontalpodautoscalers', 'HorizontalPodAutoscaler', True, ['create','get'])]),
    '/apis/networking.k8s.io/v1': ('networking.k8s.io/v1', [('ingresses', 'Ingress', True, ['create','get'])]),
    '/apis/rbac.authorization.k8s.io/v1': ('rbac.authorization.k8s.io/v1', [('roles', 'Role', True, ['create','get']), ('rolebindings', 'RoleBinding', True, ['create','get']),
                                                                             ('clusterroles', 'ClusterRole', False, ['create','get']), ('clusterrolebindings', 'ClusterRoleBinding', False, ['create','get'])]),
    '/apis/scheduling.k8s.io/v1': ('scheduling.k8s.io/v1', [('priorityclasses', 'PriorityClass', False, ['create','get'])]),
    '/apis/certificates.k8s.io/v1': ('certificates.k8s.io/v1', [('certificatesigningrequests', 'CertificateSigningRequest', False, ['create','get']),
                                                                 ('certificatesigningrequests/approval', 'CertificateSigningRequest', False, ['get','patch','update'])]),
    '/apis/coordination.k8s.io/v1': ('coordination.k8s.io/v1', [('leases', 'Lease', True, ['create','get'])]),
    '/apis/policy/v1': ('policy/v1', [('poddisruptionbudgets', 'PodDisruptionBudget', True, ['create','get'])]),
    '/apis/authorization.k8s.io/v1': ('authorization.k8s.io/v1', [('selfsubjectaccessreviews', 'SelfSubjectAccessReview', False, ['create']),
                                                                   ('selfsubjectrulesreviews', 'SelfSubjectRulesReview', False, ['create'])]),
}
GROUPS = {'kind': 'APIGroupList', 'apiVersion': 'v1', 'groups': [
    {'name': gv.split('/')[0], 'versions': [{'groupVersion': gv, 'version': 'v1'}], 'preferredVersion': {'groupVersion': gv, 'version': 'v1'}}
    for p, (gv, _) in RES.items() if p.startswith('/apis/')]}
counter = [0]

class H(http.server.BaseHTTPRequestHandler):
    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        p = self.path.split('?')[0]
        sys.stderr.write('GET %s\n' % self.path)
        if p == '/api':
            return self.reply(200, {'kind': 'APIVersions', 'versions': ['v1'], 'serverAddressByClientCIDRs': [{'clientCIDR': '0.0.0.0/0', 'serverAddress': '127.0.0.1'}]})
        if p == '/apis':
            return self.reply(200, GROUPS)
        if p == '/version':
            return self.reply(200, {'major': '1', 'minor': '32', 'gitVersion': 'v1.32.0'})
        if p in RES:
            gv, rs = RES[p]
            return self.reply(200, {'kind': 'APIResourceList', 'apiVersion': 'v1', 'groupVersion': gv, 'resources': [
                dict({'name': n, 'singularName': '', 'namespaced': ns, 'kind': k, 'verbs': v}, **({'group': 'policy', 'version': 'v1'} if k == 'Eviction' else {'group': 'autoscaling', 'version': 'v1'} if k == 'Scale' else {})) for n, k, ns, v in rs]})
        canned = os.environ.get('CANNED_' + p.replace('/', '_').replace('-', '_').replace('.', '_'))
        if canned:
            return self.reply(200, json.loads(canned))
        self.reply(404, {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'reason': 'NotFound', 'code': 404, 'message': 'not found'})
    def body(self):
        n = int(self.headers.get('Content-Length', '0'))
        b = self.rfile.read(n)
        counter[0] += 1
        name = os.environ.get('NAME', 'req') + ('' if counter[0] == 1 else str(counter[0]))
        open(os.path.join(OUT, name + (".json" if "json" in (self.headers.get("Content-Type") or "") else ".pb")), "wb").write(b)
        sys.stderr.write('%s %s %s %d bytes\n' % (self.command, self.path, self.headers.get('Content-Type'), len(b)))
        canned = os.environ.get('REPLY')
        if canned:
            return self.reply(201, json.loads(canned))
        self.reply(403, {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'reason': 'Forbidden', 'code': 403, 'message': 'captured'})
    do_POST = do_PUT = do_PATCH = do_DELETE = body
    def log_message(self, *a): pass

srv = http.server.ThreadingHTTPServer(('127.0.0.1', PORT), H)
srv.serve_forever()
