//! GitOps intake of custom resources, from a real Git repository against a
//! real server: one commit holding a CustomResourceDefinition, two of its
//! objects (in a file that sorts before the definition's) and the demo app
//! syncs in one revision (the definition applied first and waited for until
//! Established; `korral diff` shows it all as to be created beforehand); `korral drift` names a custom resource's field changed with
//! `kubectl patch` and who changed it; an Order removed from Git is pruned;
//! removing the definition while its objects stay is refused before
//! anything is written; removing both prunes the objects, then the
//! definition, and the API server deletes the definition's other objects.
//! Objects of a definition installed apart from the source are validated
//! against it; a definition whose names are taken is reported, not waited
//! for.

use crate::intake_common;
use crate::support;

use serde_json::Value;

use intake_common::{Repo, SYNC, condition, create_source, get, korral, source, wait_applied};
use support::{Server, stderr, stdout, wait_for};

const CRD_NAME: &str = "orders.shop.example.com";

fn order(name: &str, customer: &str, replicas: u32) -> String {
    format!(
        "apiVersion: shop.example.com/v1\nkind: Order\nmetadata:\n  name: {name}\n  labels:\n    app.kubernetes.io/part-of: shop\nspec:\n  customer: {customer}\n  replicas: {replicas}\n  lineItems:\n  - sku: MUG-001\n    quantity: 2\n    unitPrice: \"9.50\"\n"
    )
}

fn source_yaml(url: &str) -> String {
    format!(
        "apiVersion: korral.dev/v1alpha1\nkind: GitSource\nmetadata:\n  name: shop\nspec:\n  url: {url}\n  ref: {{branch: main}}\n  path: deploy\n  interval: 1s\n  prune: true\n"
    )
}

fn orders(server: &Server) -> Vec<String> {
    let o = server.kubectl(&["get", "orders", "-o", "json"]);
    if !o.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let mut names: Vec<String> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn crd_exists(server: &Server) -> bool {
    server
        .kubectl(&["get", "crd", CRD_NAME, "-o", "name"])
        .status
        .success()
}

#[test]
fn definitions_and_their_objects_sync_in_one_revision_drift_and_prune() {
    let server = Server::start();
    // the demo pods become ready: the source is Ready only when its objects are healthy
    let _kubelet = support::fake_kubelet::FakeKubelet::start(&server.kubeconfig);
    let repo = Repo::new();
    repo.add_demo("deploy/app");
    let crd =
        std::fs::read_to_string(support::root().join("fixtures/crds/shop.example.com_orders.yaml"))
            .expect("fixture");
    // the objects' file sorts before the definition's
    repo.write(
        "deploy/a-orders.yaml",
        &format!(
            "{}---\n{}",
            order("order-a", "acme-corp", 2),
            order("order-b", "globex", 1)
        ),
    );
    repo.write("deploy/z-crds/orders.yaml", &crd);
    let c1 = repo.commit("the shop: a CRD, its orders and the demo app");

    // what a sync would do: the Orders are checked against the definition beside them
    let work = repo.work.join("deploy");
    let o = korral(&server, &["diff", work.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let plan = stdout(&o);
    for line in [
        "+ CustomResourceDefinition orders.shop.example.com: would be created",
        "+ Order default/order-a: would be created",
        "+ Order default/order-b: would be created",
        "+ Deployment default/hello: would be created",
        "6 objects would change, 0 unchanged",
    ] {
        assert!(plan.lines().any(|l| l == line), "{line:?} in\n{plan}");
    }

    create_source(&server, &source_yaml(&repo.url()));

    // 1: everything applied by the first sync
    let s = wait_applied(&server, "shop", &c1);
    assert!(s["status"]["lastError"].is_null(), "{s:#}");
    let inventory = s["status"]["inventory"].as_array().expect("inventory");
    assert_eq!(inventory.len(), 6, "{inventory:#?}");
    assert!(
        inventory
            .iter()
            .any(|e| e["kind"] == "CustomResourceDefinition" && e["name"] == CRD_NAME),
        "{inventory:#?}"
    );
    assert!(
        inventory
            .iter()
            .any(|e| e["kind"] == "Order" && e["apiVersion"] == "shop.example.com/v1"),
        "{inventory:#?}"
    );
    let definition = get(&server, "crd", CRD_NAME);
    let established = definition["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{definition:#}");
    assert_eq!(orders(&server), vec!["order-a", "order-b"]);
    let a = get(&server, "order", "order-a");
    assert_eq!(a["metadata"]["labels"]["korral.dev/source"], "default.shop");
    assert_eq!(a["spec"]["priority"], "normal", "the CRD's default: {a:#}");
    assert!(!get(&server, "deployment", "hello").is_null());
    assert!(!get(&server, "configmap", "hello-page").is_null());
    let o = korral(&server, &["drift", "shop"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("no drift: 6 objects"), "{}", stdout(&o));

    // 2: an Order changed by hand is drift, named with its manager
    let o = server.kubectl(&[
        "patch",
        "order",
        "order-a",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = korral(&server, &["drift", "shop"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let line = out.lines().next().unwrap_or("");
    assert!(
        line.starts_with("~ Order/order-a spec.replicas: 2 → 4 (by kubectl-patch, ")
            && line.ends_with("ago)"),
        "{out}"
    );
    let o = korral(&server, &["drift", "shop", "-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["modified"][0]["object"]["kind"], "Order", "{v:#}");
    assert_eq!(
        v["modified"][0]["fields"][0]["manager"], "kubectl-patch",
        "{v:#}"
    );

    // 3: an Order removed from Git is pruned; the other is put back as declared
    repo.write("deploy/a-orders.yaml", &order("order-a", "acme-corp", 2));
    let c2 = repo.commit("order-b is done");
    let s = wait_applied(&server, "shop", &c2);
    assert_eq!(s["status"]["pruned"], 1, "{s:#}");
    wait_for("order-b to be pruned", SYNC, || {
        orders(&server) == vec!["order-a"]
    });
    assert_eq!(get(&server, "order", "order-a")["spec"]["replicas"], 2);

    // an Order made by hand, not the source's
    let o = server.kubectl_with(
        &["apply", "-f", "-"],
        &[],
        Some(&order("order-manual", "initech", 1)),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // 4: the definition removed while an Order of it stays: refused, nothing written
    repo.remove("deploy/z-crds/orders.yaml");
    repo.write(
        "deploy/app/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n",
    );
    let c3 = repo.commit("no more orders definition");
    let mut s = Value::Null;
    wait_for("the refusal to be reported", SYNC, || {
        s = source(&server, "shop");
        s["status"]["lastError"]["revision"] == c3.as_str()
    });
    assert_eq!(s["status"]["lastAppliedRevision"], c2.as_str(), "{s:#}");
    assert_eq!(condition(&s, "Ready").as_deref(), Some("False"), "{s:#}");
    let errors = s["status"]["lastError"]["errors"]
        .as_array()
        .expect("errors");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["file"], "deploy/a-orders.yaml", "{errors:#?}");
    assert_eq!(errors[0]["line"], 2, "{errors:#?}");
    assert_eq!(errors[0]["path"], "kind", "{errors:#?}");
    let message = errors[0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(
            "its CustomResourceDefinition orders.shop.example.com is no longer in the source"
        ),
        "{message}"
    );
    assert!(crd_exists(&server));
    assert!(get(&server, "configmap", "extra").is_null());

    // 5: both removed: the Order is pruned, then the definition, which takes the rest with it
    repo.remove("deploy/a-orders.yaml");
    let c4 = repo.commit("no more orders");
    let s = wait_applied(&server, "shop", &c4);
    assert_eq!(s["status"]["pruned"], 2, "{s:#}");
    let inventory = s["status"]["inventory"].as_array().expect("inventory");
    assert_eq!(inventory.len(), 4, "{inventory:#?}");
    assert!(!get(&server, "configmap", "extra").is_null());
    wait_for("the definition to be deleted", SYNC, || {
        !crd_exists(&server)
    });
    // the kind is no longer served (kubectl's discovery cache may still name it)
    let o = server.kubectl(&["get", "orders"]);
    let err = stderr(&o);
    assert!(
        !o.status.success()
            && (err.contains("the server doesn't have a resource type")
                || err.contains("the server could not find the requested resource")),
        "{}{err}",
        stdout(&o)
    );
    let o = korral(&server, &["drift", "shop"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn objects_of_a_definition_installed_separately_sync_and_a_refused_definition_is_reported() {
    let server = Server::start();
    // installed apart from the source, as an operator's chart would
    server.ok(&[
        "apply",
        "-f",
        &support::root()
            .join("fixtures/crds/shop.example.com_orders.yaml")
            .display()
            .to_string(),
    ]);
    let repo = Repo::new();
    repo.write("deploy/orders.yaml", &order("order-a", "acme-corp", 2));
    let c1 = repo.commit("an order");
    create_source(&server, &source_yaml(&repo.url()));
    let s = wait_applied(&server, "shop", &c1);
    let inventory = s["status"]["inventory"].as_array().expect("inventory");
    assert_eq!(inventory.len(), 1, "{inventory:#?}");
    assert_eq!(orders(&server), vec!["order-a"]);

    // validated against the cluster's definition: an invalid Order applies nothing
    repo.write(
        "deploy/orders.yaml",
        &order("order-a", "acme-corp", 2).replace("replicas: 2", "replicas: 11"),
    );
    let c2 = repo.commit("too many workers");
    let mut s = Value::Null;
    wait_for("the invalid Order to be reported", SYNC, || {
        s = source(&server, "shop");
        s["status"]["lastError"]["revision"] == c2.as_str()
    });
    let e = &s["status"]["lastError"]["errors"][0];
    assert_eq!(
        (&e["file"], &e["line"], &e["path"]),
        (
            &Value::from("deploy/orders.yaml"),
            &Value::from(9),
            &Value::from("spec.replicas")
        ),
        "{s:#}"
    );
    assert_eq!(get(&server, "order", "order-a")["spec"]["replicas"], 2);

    // a definition whose names another one holds never gets established: said so, at its file
    repo.write("deploy/orders.yaml", &order("order-a", "acme-corp", 3));
    repo.write(
        "deploy/purchases.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: purchases.shop.example.com\nspec:\n  group: shop.example.com\n  names: {kind: Order, plural: purchases}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n",
    );
    let c3 = repo.commit("a rival definition");
    wait_for("the refused definition to be reported", SYNC, || {
        s = source(&server, "shop");
        s["status"]["lastError"]["revision"] == c3.as_str()
    });
    let errors = s["status"]["lastError"]["errors"]
        .as_array()
        .expect("errors");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["file"], "deploy/purchases.yaml", "{errors:#?}");
    assert_eq!(
        errors[0]["object"], "CustomResourceDefinition purchases.shop.example.com",
        "{errors:#?}"
    );
    let message = errors[0]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with(
            "the CustomResourceDefinition is not established: its names are not accepted: "
        ),
        "{message}"
    );
    assert_eq!(
        get(&server, "order", "order-a")["spec"]["replicas"],
        2,
        "nothing after the definitions is applied"
    );
}
