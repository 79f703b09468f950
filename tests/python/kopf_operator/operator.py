"""A small kopf operator for shop.example.com Orders, run against korral
by tests/python_client.rs: for each new Order it writes an invoice
ConfigMap owned by the Order and records the invoice in the Order's
status; on deletion (kopf's finalizer) it marks the invoice void first.

Run: kopf run --standalone --namespace NS operator.py  (KUBECONFIG set)
"""

import kopf
import kubernetes


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.persistence.finalizer = "shop.example.com/invoicing"
    settings.watching.server_timeout = 30
    kubernetes.config.load_kube_config()


@kopf.on.create("shop.example.com", "v1", "orders")
def invoice(spec, name, namespace, patch, logger, **_):
    items = spec.get("lineItems", [])
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-invoice", "labels": {"app.kubernetes.io/managed-by": "kopf"}},
        "data": {"customer": spec["customer"], "lines": str(len(items))},
    }
    kopf.adopt(cm)
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, cm)
    patch.status["phase"] = "Processing"
    logger.info("invoiced %s", name)
    return {"invoice": f"{name}-invoice"}


@kopf.on.update("shop.example.com", "v1", "orders", field="spec.replicas")
def rescale(old, new, patch, **_):
    patch.status["replicas"] = new


@kopf.on.delete("shop.example.com", "v1", "orders")
def void(name, namespace, logger, **_):
    core = kubernetes.client.CoreV1Api()
    core.patch_namespaced_config_map(f"{name}-invoice", namespace, {"data": {"void": "true"}})
    logger.info("voided the invoice of %s", name)
