"""An admission webhook server for apiserver/tests/webhooks_kubectl.rs, the way
teams write small ones: HTTPS with its own certificate, AdmissionReview v1 in
and out, standard library only.

  /deny    validating: refuses objects labelled deny=true (403, with a
           reason) and the deletion of objects labelled protected=true
  /inject  mutating: adds the label injected=webhook (a JSONPatch)

Every review received is appended as one JSON line to the log file (path,
operation, kind, namespace, name, user, dryRun, options kind, the object's
labels), so the test can check what the API server sent.

usage: webhook_server.py CERT KEY LOG PORTFILE
"""

import base64
import http.server
import json
import os
import ssl
import sys

CERT, KEY, LOG, PORTFILE = sys.argv[1:5]


def labels_of(obj):
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def review(path, request):
    obj = request.get("object")
    old = request.get("oldObject")
    labels = labels_of(obj) or labels_of(old)
    response = {"uid": request["uid"], "allowed": True}
    if path == "/deny" and labels.get("deny") == "true":
        response["allowed"] = False
        response["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": "objects labelled deny=true are not allowed here",
        }
    elif path == "/deny" and request["operation"] == "DELETE" and labels.get("protected") == "true":
        response["allowed"] = False
        response["status"] = {"message": "protected objects stay"}
    elif path == "/inject" and obj is not None:
        if labels_of(obj):
            patch = [{"op": "add", "path": "/metadata/labels/injected", "value": "webhook"}]
        else:
            patch = [{"op": "add", "path": "/metadata/labels", "value": {"injected": "webhook"}}]
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        response["warnings"] = ["the inject webhook added a label"]
    return response


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        request = body["request"]
        path = self.path.split("?")[0]
        with open(LOG, "a") as log:
            log.write(json.dumps({
                "path": path,
                "query": self.path.partition("?")[2],
                "apiVersion": body.get("apiVersion"),
                "operation": request.get("operation"),
                "kind": request.get("kind", {}).get("kind"),
                "namespace": request.get("namespace"),
                "name": request.get("name"),
                "user": request.get("userInfo", {}).get("username"),
                "dryRun": request.get("dryRun"),
                "options": (request.get("options") or {}).get("kind"),
                "labels": labels_of(request.get("object") or request.get("oldObject")),
            }) + "\n")
        answer = json.dumps({
            "apiVersion": body.get("apiVersion"),
            "kind": "AdmissionReview",
            "response": review(path, request),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
server.serve_forever()
