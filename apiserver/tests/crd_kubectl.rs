//! CustomResourceDefinitions end to end, through the real kubectl against an
//! in-process API server: establishment and conditions, printer columns,
//! short names and categories, defaults, schema and CEL validation with
//! kube-apiserver's messages, the scale and status subresources, explain,
//! deprecated versions, name conflicts, and deletion with the cleanup
//! finalizer.

use crate::cluster;

use std::time::Duration;

use cluster::{Cluster, repo_root, text};

const WAIT: Duration = Duration::from_secs(30);

fn fixture(path: &str) -> String {
    repo_root()
        .join("fixtures")
        .join(path)
        .to_string_lossy()
        .to_string()
}

fn install_orders(c: &Cluster) {
    let out = c.ok(&["apply", "-f", &fixture("crds/shop.example.com_orders.yaml")]);
    assert_eq!(
        out,
        "customresourcedefinition.apiextensions.k8s.io/orders.shop.example.com created"
    );
    let out = c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/orders.shop.example.com",
        "--timeout=30s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    c.ok(&["apply", "-f", &fixture("kinds/00-namespace.yaml")]);
}

#[test]
fn a_definition_is_established_and_its_objects_served_like_built_in_ones() {
    let c = Cluster::start();
    install_orders(&c);
    let jsonpath = |path: &str| {
        c.ok(&[
            "get",
            "crd",
            "orders.shop.example.com",
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    assert_eq!(
        jsonpath(r#"{.status.conditions[?(@.type=="NamesAccepted")].reason}"#),
        "NoConflicts"
    );
    assert_eq!(
        jsonpath(r#"{.status.conditions[?(@.type=="Established")].message}"#),
        "the initial names have been accepted"
    );
    assert_eq!(jsonpath("{.status.acceptedNames.kind}"), "Order");
    assert_eq!(jsonpath("{.status.storedVersions}"), r#"["v1"]"#);

    // the objects, one of them through the deprecated version
    let o = c.kubectl(&["apply", "-f", &fixture("crds/orders.yaml")]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("order.shop.example.com/order-1001 created"),
        "{out}"
    );
    assert!(
        err.contains(
            "Warning: shop.example.com/v1alpha1 Order is deprecated; use shop.example.com/v1 Order"
        ),
        "{err}"
    );

    // printer columns, priority-1 columns only with -o wide, short name, category
    let table = c.ok(&["get", "orders", "-n", "shop"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "CUSTOMER", "REPLICAS", "PHASE", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("order-1001"))
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // no phase yet: a null cell, which kubectl prints empty
    assert_eq!(row[..3], ["order-1001", "acme-corp", "3"], "{table}");
    assert_eq!(row.len(), 4, "{table}");
    let wide = c.ok(&["get", "ord", "-n", "shop", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap_or("").contains("PRIORITY"),
        "{wide}"
    );
    let by_category = c.ok(&["get", "shop", "-n", "shop", "-o", "name"]);
    assert!(
        by_category.contains("order.shop.example.com/order-1002"),
        "{by_category}"
    );

    // the schema's default, and a selectable field
    assert_eq!(
        c.ok(&[
            "get",
            "order",
            "order-1002",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.priority}"
        ]),
        "normal"
    );
    let selected = c.ok(&[
        "get",
        "orders",
        "-n",
        "shop",
        "--field-selector",
        "spec.customer=globex",
        "-o",
        "name",
    ]);
    assert_eq!(selected, "order.shop.example.com/order-1002");

    // scale and status subresources
    let out = c.ok(&["scale", "order", "order-1001", "-n", "shop", "--replicas=5"]);
    assert_eq!(out, "order.shop.example.com/order-1001 scaled");
    assert_eq!(
        c.ok(&[
            "get",
            "order",
            "order-1001",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "5"
    );
    c.ok(&[
        "patch",
        "order",
        "order-1001",
        "-n",
        "shop",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Shipped","replicas":5}}"#,
    ]);
    // the main resource ignores status
    c.ok(&[
        "patch",
        "order",
        "order-1001",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Lost"}}"#,
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "order",
            "order-1001",
            "-n",
            "shop",
            "-o",
            "jsonpath={.status.phase}"
        ]),
        "Shipped"
    );
    let scale = c.ok(&[
        "get",
        "--raw",
        "/apis/shop.example.com/v1/namespaces/shop/orders/order-1001/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).expect("scale JSON");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["status"]["replicas"], 5);

    // explain reads the published schema
    let explain = c.ok(&["explain", "orders.spec.customer"]);
    assert!(explain.contains("FIELD: customer <string>"), "{explain}");
}

/// The expected message of an invalid fixture: its second line, after the
/// `kube-apiserver 1.33...: ` prefix.
fn expected_message(file: &std::path::Path) -> (String, bool) {
    let body = std::fs::read_to_string(file).expect("read fixture");
    let line = body.lines().nth(1).unwrap_or_default();
    let (prefix, message) = line
        .split_once(": ")
        .expect("a `kube-apiserver ...: message` line");
    (message.trim().to_string(), prefix.contains("approximate"))
}

#[test]
fn invalid_objects_are_refused_with_kube_apiserver_messages() {
    let c = Cluster::start();
    install_orders(&c);
    c.ok(&["apply", "-f", &fixture("crds/orders.yaml")]);
    let dir = repo_root().join("fixtures/crds/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("invalid fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    for file in files {
        let (expected, approximate) = expected_message(&file);
        let err = c.fails(&["apply", "-f", &file.to_string_lossy()]);
        let name = file.display();
        // `The Order "x" is invalid: <path>: <detail>`; other errors may follow in a list
        let (object, detail) = match expected.split_once(" is invalid: ") {
            Some((object, detail)) => (format!("{object} is invalid: "), detail.to_string()),
            None => (String::new(), expected.clone()),
        };
        assert!(
            err.contains(&object),
            "{name}: expected {object:?} in\n{err}"
        );
        let detail = if approximate {
            // the path and the kind of error are exact, the wording may differ
            detail.split(": ").take(2).collect::<Vec<_>>().join(": ")
        } else {
            detail
        };
        assert!(
            err.contains(&detail),
            "{name}: expected\n{detail}\nin\n{err}"
        );
    }
    // nothing invalid was stored
    let names = c.ok(&["get", "orders", "-n", "shop", "-o", "name"]);
    assert!(!names.contains("invalid-"), "{names}");
}

#[test]
fn a_name_in_use_is_refused_and_the_definition_never_established() {
    let c = Cluster::start();
    install_orders(&c);
    let rival = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: purchases.shop.example.com
spec:
  group: shop.example.com
  names: {kind: Order, plural: purchases, shortNames: [ord]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;
    let o = c.kubectl_in(&["apply", "-f", "-"], Some(rival));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let reason = || {
        c.ok(&[
            "get",
            "crd",
            "purchases.shop.example.com",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="NamesAccepted")].reason}"#,
        ])
    };
    c.wait_for("the names verdict", WAIT, || !reason().is_empty());
    // kind and listKind (defaulted to OrderList) are both taken: the last check's reason wins
    assert_eq!(reason(), "ListKindConflict");
    let established = c.ok(&[
        "get", "crd", "purchases.shop.example.com", "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Established")].status}/{.status.acceptedNames.plural}"#,
    ]);
    assert_eq!(
        established, "False/purchases",
        "the free plural is accepted on its own"
    );
    let err = c.fails(&["get", "purchases"]);
    assert!(
        err.contains("the server doesn't have a resource type \"purchases\""),
        "{err}"
    );
    // the first definition is untouched
    assert_eq!(c.ok(&["get", "orders", "-A", "-o", "name"]), "");
}

#[test]
fn deleting_a_definition_deletes_its_objects_first() {
    let c = Cluster::start();
    install_orders(&c);
    c.ok(&["apply", "-f", &fixture("crds/orders.yaml")]);
    c.ok(&[
        "patch",
        "order",
        "order-1002",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["shop.example.com/invoice"]}}"#,
    ]);
    let out = c.ok(&["delete", "crd", "orders.shop.example.com", "--wait=false"]);
    assert_eq!(
        out,
        "customresourcedefinition.apiextensions.k8s.io \"orders.shop.example.com\" deleted"
    );

    // the objects without finalizers go; the held one waits, and so does the definition
    c.wait_for("order-1001 to go", WAIT, || {
        !c.kubectl(&["get", "order", "order-1001", "-n", "shop"])
            .status
            .success()
    });
    let held = c.ok(&[
        "get",
        "order",
        "order-1002",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(!held.is_empty(), "order-1002 is being deleted");
    let terminating = c.ok(&[
        "get",
        "crd",
        "orders.shop.example.com",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Terminating")].status}/{.metadata.finalizers}"#,
    ]);
    assert_eq!(
        terminating,
        r#"True/["customresourcecleanup.apiextensions.k8s.io"]"#
    );
    let new_order = r#"{"apiVersion":"shop.example.com/v1","kind":"Order","metadata":{"name":"late","namespace":"shop"},"spec":{"customer":"late","replicas":1,"lineItems":[{"sku":"A","quantity":1}]}}"#;
    let o = c.kubectl_in(&["create", "-f", "-"], Some(new_order));
    assert!(
        text(&o.stderr)
            .contains("create not allowed while custom resource definition is terminating"),
        "{}",
        text(&o.stderr)
    );

    // releasing the last object lets the definition go, and its kinds with it
    c.ok(&[
        "patch",
        "order",
        "order-1002",
        "-n",
        "shop",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    c.wait_for("the definition to go", WAIT, || {
        !c.kubectl(&["get", "crd", "orders.shop.example.com"])
            .status
            .success()
    });
    let err = c.fails(&["get", "--raw", "/apis/shop.example.com/v1"]);
    assert!(err.contains("NotFound"), "{err}");
    let groups = c.ok(&["get", "--raw", "/apis"]);
    assert!(!groups.contains("shop.example.com"), "{groups}");
}

#[test]
fn server_side_apply_merges_a_list_map_by_its_keys() {
    let c = Cluster::start();
    install_orders(&c);
    let order = |sku: &str, qty: u32| {
        format!(
            "apiVersion: shop.example.com/v1\nkind: Order\nmetadata:\n  name: order-2001\n  namespace: shop\nspec:\n  customer: initech\n  replicas: 1\n  lineItems:\n  - sku: {sku}\n    quantity: {qty}\n"
        )
    };
    let apply = |manager: &str, body: &str| {
        let o = c.kubectl_in(
            &[
                "apply",
                "--server-side",
                &format!("--field-manager={manager}"),
                "-f",
                "-",
            ],
            Some(body),
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
    };
    apply("storefront", &order("MUG-001", 2));
    apply("warehouse", &order("TSHIRT-L-BLK", 5));
    let skus = || {
        c.ok(&[
            "get",
            "order",
            "order-2001",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.lineItems[*].sku}",
        ])
    };
    assert_eq!(
        skus(),
        "MUG-001 TSHIRT-L-BLK",
        "each manager owns its own item"
    );
    // a manager that stops applying its item removes it, and only it
    let without = "apiVersion: shop.example.com/v1\nkind: Order\nmetadata:\n  name: order-2001\n  namespace: shop\nspec:\n  customer: initech\n  replicas: 1\n";
    apply("storefront", without);
    assert_eq!(skus(), "TSHIRT-L-BLK");
    // the same key with another value is a conflict
    let o = c.kubectl_in(
        &[
            "apply",
            "--server-side",
            "--field-manager=storefront",
            "-f",
            "-",
        ],
        Some(&order("TSHIRT-L-BLK", 9)),
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("conflict with \"warehouse\""),
        "{}",
        text(&o.stderr)
    );
}
