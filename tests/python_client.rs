//! Python clients against a real `korral server`: the official Kubernetes
//! client (typed, dynamic and CustomObjectsApi) and the kopf operator
//! framework. Each scenario runs under every interpreter in `KORRAL_PYTHONS`
//! (colon-separated; CI sets one environment with pinned client versions and
//! one with the newest), else under `python3`.

use crate::support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::python::{pythons, scenario};
use support::{ChildGuard, Server, stderr, stdout, wait_for};

#[test]
fn python_client_creates_lists_and_watches() {
    for python in pythons() {
        let server = Server::start();
        scenario(
            &python,
            &server,
            "client_scenario.py",
            &[],
            &[
                "create deployment: ok",
                "list pods by label: ok",
                "watch: ok",
                "delete deployment: ok",
            ],
        );
    }
}

#[test]
fn python_client_sees_kube_apiserver_answers() {
    for python in pythons() {
        let server = Server::start();
        scenario(
            &python,
            &server,
            "parity_scenario.py",
            &[],
            &[
                "typed delete returns the object: ok",
                "create_from_yaml conflict text: ok",
                "no directive warns about unknown fields: ok",
                "metadata-only list and watch: ok",
                "dynamic clients share one discovery cache: ok",
            ],
        );
    }
}

fn orders_crd() -> PathBuf {
    support::root().join("fixtures/crds/shop.example.com_orders.yaml")
}

#[test]
fn python_custom_objects_api_works_on_custom_resources() {
    for python in pythons() {
        let server = Server::start();
        scenario(
            &python,
            &server,
            "custom_objects.py",
            &[orders_crd().as_os_str()],
            &[
                "crd established: ok",
                "list by label: ok",
                "status and scale: ok",
                "validation: ok",
                "watch: ok",
            ],
        );
    }
}

#[test]
fn a_kopf_operator_reconciles_custom_resources() {
    for python in pythons() {
        let s = Server::start();
        s.ok(&["apply", "-f", &orders_crd().to_string_lossy()]);
        s.ok(&[
            "wait",
            "--for=condition=Established",
            "crd/orders.shop.example.com",
            "--timeout=30s",
        ]);
        let log = std::fs::File::create(s.dir.path().join("kopf.log")).expect("kopf log");
        let child = Command::new(&python)
            .args([
                "-m",
                "kopf",
                "run",
                "--standalone",
                "--namespace",
                "default",
            ])
            .arg(support::root().join("tests/python/kopf_operator/operator.py"))
            .env("KUBECONFIG", &s.kubeconfig)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kopf");
        let _kopf = ChildGuard(child);
        let kopf_log =
            || std::fs::read_to_string(s.dir.path().join("kopf.log")).unwrap_or_default();

        let order = "apiVersion: shop.example.com/v1\nkind: Order\nmetadata:\n  name: order-3001\nspec:\n  customer: hooli\n  replicas: 1\n  lineItems:\n  - sku: MUG-001\n    quantity: 3\n  - sku: TSHIRT-L-BLK\n    quantity: 1\n";
        let o = s.kubectl_with(&["apply", "-f", "-"], &[], Some(order));
        assert!(o.status.success(), "{}", stderr(&o));
        let jsonpath = |what: &str, path: &str| {
            let o = s.kubectl(&["get", what, "-o", &format!("jsonpath={path}")]);
            stdout(&o)
        };
        wait_for("kopf to invoice the order", Duration::from_secs(60), || {
            jsonpath("order/order-3001", "{.status.phase}") == "Processing"
        });
        assert_eq!(
            jsonpath(
                "configmap/order-3001-invoice",
                "{.data.customer}/{.data.lines}"
            ),
            "hooli/2",
            "{}",
            kopf_log()
        );
        assert_eq!(
            jsonpath(
                "configmap/order-3001-invoice",
                "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}"
            ),
            "Order/order-3001"
        );
        // kopf stores a handler's result in the status; the Order schema has
        // no such field, so the server prunes it, as kube-apiserver does
        assert!(
            kopf_log().contains("Handler 'invoice' succeeded"),
            "{}",
            kopf_log()
        );
        assert_eq!(jsonpath("order/order-3001", "{.status.invoice}"), "");
        assert_eq!(
            jsonpath("order/order-3001", "{.metadata.finalizers}"),
            r#"["shop.example.com/invoicing"]"#
        );

        // an update handler on one field
        s.ok(&[
            "patch",
            "order",
            "order-3001",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ]);
        wait_for(
            "kopf to see the new replicas",
            Duration::from_secs(60),
            || jsonpath("order/order-3001", "{.status.replicas}") == "3",
        );

        // deletion waits for kopf's finalizer, whose handler voids the invoice
        // first; then the garbage collector removes the invoice with its owner
        s.ok(&["delete", "order", "order-3001", "--wait=false"]);
        wait_for("the order to go", Duration::from_secs(60), || {
            !s.kubectl(&["get", "order", "order-3001"]).status.success()
        });
        assert!(
            kopf_log().contains("voided the invoice of order-3001"),
            "{}",
            kopf_log()
        );
        assert!(
            kopf_log().contains("Handler 'void' succeeded"),
            "{}",
            kopf_log()
        );
        wait_for(
            "the invoice to be collected with its order",
            Duration::from_secs(60),
            || {
                !s.kubectl(&["get", "configmap", "order-3001-invoice"])
                    .status
                    .success()
            },
        );
        assert!(!kopf_log().contains("Traceback"), "{}", kopf_log());
    }
}
