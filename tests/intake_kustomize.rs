//! GitOps intake of kustomizations built with the real kustomize (the one
//! inside kubectl, or a kustomize on PATH) from a real Git repository laid
//! out as real ones are (base/, components/, overlays/staging and
//! overlays/production with strategic-merge and JSON 6902 patches,
//! namePrefix, commonLabels, a configMapGenerator): each overlay syncs,
//! `korral drift` is clean and names the kustomization of a drifted
//! object, `korral validate` and `korral diff` build a kustomization
//! folder, a generator change rolls the Deployment and prunes the old
//! ConfigMap; a broken kustomization and a remote base are reported at
//! their file and apply nothing; Flux-style post-build substitution
//! (inline and from a ConfigMap, defaults, `$${…}` escapes, the disable
//! annotation) lands in the applied objects; a folder source builds its
//! kustomization and follows a base outside its folder.

use crate::intake_common;
use crate::support;

use serde_json::Value;

use intake_common::{
    Repo, SYNC, condition, create_source, get, korral, source, wait_applied, wait_failed,
};
use support::simulated_nodes::SimulatedNodes;
use support::{Server, stderr, stdout, wait_for};

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: [sh, -c, 'while true; do sleep 3600; done']
        envFrom:
        - configMapRef:
            name: web-config
";

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
";

fn base_kustomization(greeting: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
- service.yaml
commonLabels:
  app.kubernetes.io/part-of: shop
configMapGenerator:
- name: web-config
  literals:
  - GREETING={greeting}
"
    )
}

const COMPONENT: &str = "\
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
patches:
- patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      template:
        metadata:
          annotations:
            prometheus.io/scrape: \"true\"
";

const STAGING: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namePrefix: staging-
commonLabels:
  env: staging
resources:
- ../../base
components:
- ../../components/monitoring
patches:
- path: replicas.yaml
";

const STAGING_REPLICAS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
";

const PRODUCTION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namePrefix: prod-
commonLabels:
  env: production
buildMetadata: [originAnnotations]
resources:
- ../../base
patches:
- target:
    kind: Deployment
    name: web
  patch: |-
    - op: replace
      path: /spec/replicas
      value: 3
    - op: replace
      path: /spec/template/spec/containers/0/image
      value: busybox:1.37
";

fn git_source(name: &str, url: &str, path: &str, extra: &str) -> String {
    format!(
        "apiVersion: korral.dev/v1alpha1\nkind: GitSource\nmetadata:\n  name: {name}\nspec:\n  url: {url}\n  ref: {{branch: main}}\n  path: {path}\n  interval: 1s\n  prune: true\n{extra}"
    )
}

fn shop_repo() -> Repo {
    let repo = Repo::new();
    repo.write("base/deployment.yaml", DEPLOYMENT);
    repo.write("base/service.yaml", SERVICE);
    repo.write("base/kustomization.yaml", &base_kustomization("hello"));
    repo.write("components/monitoring/kustomization.yaml", COMPONENT);
    repo.write("overlays/staging/kustomization.yaml", STAGING);
    repo.write("overlays/staging/replicas.yaml", STAGING_REPLICAS);
    repo.write("overlays/production/kustomization.yaml", PRODUCTION);
    repo.write("README.md", "# shop\n");
    repo
}

/// The name of the ConfigMap a Deployment's first container reads.
fn config_of(deployment: &Value) -> String {
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn run(server: &Server, args: &[&str]) -> (Option<i32>, String) {
    let o = korral(server, args);
    (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn overlays_sync_clean_and_a_generator_change_rolls_the_deployment_and_prunes() {
    let server = Server::start();
    let _nodes = SimulatedNodes::start(&server, "sim", 2);
    let repo = shop_repo();
    let c1 = repo.commit("shop: base, monitoring component, staging and production");
    create_source(
        &server,
        &git_source("staging", &repo.url(), "overlays/staging", ""),
    );
    create_source(
        &server,
        &git_source("production", &repo.url(), "overlays/production", ""),
    );
    let staging = wait_applied(&server, "staging", &c1);
    wait_applied(&server, "production", &c1);
    assert_eq!(
        staging["status"]["inventory"].as_array().map(Vec::len),
        Some(3),
        "{staging:#}"
    );

    // the overlays' patches, prefix, labels and component are applied
    let sd = get(&server, "deployment", "staging-web");
    assert_eq!(sd["spec"]["replicas"], 1, "strategic merge patch");
    assert_eq!(
        sd["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"], "true",
        "the component's patch"
    );
    assert_eq!(sd["spec"]["selector"]["matchLabels"]["env"], "staging");
    assert_eq!(
        sd["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "shop"
    );
    let pd = get(&server, "deployment", "prod-web");
    assert_eq!(pd["spec"]["replicas"], 3, "JSON 6902 patch");
    assert_eq!(
        pd["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.37"
    );
    // kustomize's own annotations are not applied
    assert!(
        pd["metadata"]["annotations"]
            .get("config.kubernetes.io/origin")
            .is_none(),
        "{:#}",
        pd["metadata"]
    );
    let old_config = config_of(&sd);
    assert!(
        old_config.starts_with("staging-web-config-") && old_config.len() > 19,
        "{old_config}"
    );
    assert_eq!(
        get(&server, "configmap", &old_config)["data"]["GREETING"],
        "hello"
    );
    assert!(!get(&server, "service", "prod-web").is_null());

    // no false drift (hashed names, defaults, prefixes)
    for s in ["staging", "production"] {
        let (code, out) = run(&server, &["drift", s]);
        assert_eq!(code, Some(0), "{s}: {out}");
        assert!(out.contains("no drift"), "{out}");
    }

    // drift names the kustomization (and the origin kustomize recorded)
    let o = server.kubectl(&["scale", "deployment", "prod-web", "--replicas=5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (code, out) = run(&server, &["drift", "production"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "~ Deployment/prod-web [overlays/production/kustomization.yaml (from base/deployment.yaml)] spec.replicas: 3 → 5"
        ),
        "{out}"
    );
    let (code, out) = run(&server, &["drift", "production", "-o", "json"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("\"overlays/production/kustomization.yaml (from base/deployment.yaml)\""),
        "{out}"
    );

    // and so does the DriftReport
    wait_for("the DriftReport to name the kustomization", SYNC, || {
        get(&server, "driftreport", "production")["status"]["modified"][0]["builtFrom"]
            == "overlays/production/kustomization.yaml (from base/deployment.yaml)"
    });

    // validate and diff build a kustomization folder first
    let staging_dir = repo.work.join("overlays/staging");
    let staging_dir = staging_dir.to_str().expect("utf-8");
    let (code, out) = run(&server, &["validate", staging_dir]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("3 objects: all valid"), "{out}");
    let (code, out) = run(&server, &["diff", staging_dir, "--source", "staging"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 objects would change, 3 unchanged"), "{out}");

    // the generator's data changes: a new hashed name, the Deployment rolls,
    // the old ConfigMap is pruned
    repo.write("base/kustomization.yaml", &base_kustomization("hi"));
    let (code, out) = run(&server, &["diff", staging_dir, "--source", "staging"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("+ ConfigMap default/staging-web-config-") && out.contains("would be pruned"),
        "{out}"
    );
    let c2 = repo.commit("greeting: hi");
    let s = wait_applied(&server, "staging", &c2);
    assert_eq!(s["status"]["pruned"], 1, "{s:#}");
    let sd = get(&server, "deployment", "staging-web");
    let new_config = config_of(&sd);
    assert_ne!(new_config, old_config);
    assert_eq!(
        get(&server, "configmap", &new_config)["data"]["GREETING"],
        "hi"
    );
    wait_for("the old ConfigMap to be pruned", SYNC, || {
        get(&server, "configmap", &old_config).is_null()
    });
    let o = server.kubectl(&[
        "rollout",
        "status",
        "deployment/staging-web",
        "--timeout=60s",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let o = server.kubectl(&["get", "replicasets", "-l", "env=staging", "-o", "json"]);
    let rs: Value = serde_json::from_slice(&o.stdout).expect("json");
    let configs: Vec<String> = rs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(config_of)
        .collect();
    assert!(
        configs.contains(&old_config) && configs.contains(&new_config),
        "a new ReplicaSet for the new ConfigMap: {configs:?}"
    );
    wait_applied(&server, "production", &c2);
    let (code, out) = run(&server, &["drift", "staging"]);
    assert_eq!(code, Some(0), "{out}");
}

const SUBSTITUTED: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  env: ${cluster_env}
  region: ${region:=eu-west-1}
  team: ${team}
  literal: $${not_a_var}
  shell: $HOME
  undefined: \"[${nope}]\"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: verbatim
  annotations:
    kustomize.toolkit.fluxcd.io/substitute: disabled
data:
  env: ${cluster_env}
";

#[test]
fn broken_and_remote_kustomizations_apply_nothing_and_post_build_substitutes() {
    let server = Server::start();
    let repo = Repo::new();
    repo.write("app/settings.yaml", SUBSTITUTED);
    repo.write(
        "app/kustomization.yaml",
        "resources:\n- settings.yaml\ngeneratorOptions:\n  disableNameSuffixHash: true\nconfigMapGenerator:\n- name: motd\n  files: [motd.txt]\n",
    );
    repo.write("app/motd.txt", "welcome to ${cluster_env}\n");
    repo.write(
        "broken/kustomization.yaml",
        "resources:\n- settings.yaml\n- missing.yaml\n",
    );
    repo.write(
        "broken/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken-one}\n",
    );
    repo.write(
        "remote/kustomization.yaml",
        "resources:\n- settings.yaml\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1\n",
    );
    repo.write(
        "remote/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: remote-one}\n",
    );
    let c1 = repo.commit("app, a broken kustomization and a remote base");

    let o = server.kubectl(&[
        "create",
        "configmap",
        "cluster-vars",
        "--from-literal=cluster_env=from-configmap",
        "--from-literal=team=from-configmap",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    create_source(
        &server,
        &git_source(
            "app",
            &repo.url(),
            "app",
            "  postBuild:\n    substitute: {team: inline}\n    substituteFrom:\n    - {kind: ConfigMap, name: cluster-vars}\n    - {kind: Secret, name: absent, optional: true}\n",
        ),
    );
    create_source(&server, &git_source("broken", &repo.url(), "broken", ""));
    create_source(&server, &git_source("remote", &repo.url(), "remote", ""));

    wait_applied(&server, "app", &c1);
    let cm = get(&server, "configmap", "settings");
    assert_eq!(cm["data"]["env"], "from-configmap", "{cm:#}");
    assert_eq!(cm["data"]["region"], "eu-west-1", "the default");
    assert_eq!(
        cm["data"]["team"], "inline",
        "substitute overrides substituteFrom"
    );
    assert_eq!(cm["data"]["literal"], "${not_a_var}", "the escape");
    assert_eq!(cm["data"]["shell"], "$HOME", "$var is left alone");
    assert_eq!(cm["data"]["undefined"], "[]", "undefined is empty");
    // a generator reading a file that is no manifest (the checkout holds it)
    assert_eq!(
        get(&server, "configmap", "motd")["data"]["motd.txt"],
        "welcome to from-configmap\n"
    );
    let v = get(&server, "configmap", "verbatim");
    assert_eq!(v["data"]["env"], "${cluster_env}", "disabled: {v:#}");
    let (code, out) = run(&server, &["drift", "app"]);
    assert_eq!(code, Some(0), "{out}");

    // a build error names the kustomization; nothing is applied
    let s = wait_failed(&server, "broken", &c1);
    let e = &s["status"]["lastError"]["errors"][0];
    assert_eq!(e["file"], "broken/kustomization.yaml", "{s:#}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing.yaml")),
        "{s:#}"
    );
    assert!(s["status"]["lastAppliedRevision"].is_null(), "{s:#}");
    assert!(get(&server, "configmap", "broken-one").is_null());

    // a remote base is refused before building, at its file and line
    let s = wait_failed(&server, "remote", &c1);
    let e = &s["status"]["lastError"]["errors"][0];
    assert_eq!(e["file"], "remote/kustomization.yaml", "{s:#}");
    assert_eq!(e["line"], 3, "{s:#}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("remote") && m.contains("allowRemoteBases")),
        "{s:#}"
    );
    assert!(get(&server, "configmap", "remote-one").is_null());
}

#[test]
fn a_folder_source_builds_its_kustomization_and_follows_its_base() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write(
        "base/kustomization.yaml",
        "configMapGenerator:\n- name: greeting\n  files: [greeting.txt]\n",
    );
    write("base/greeting.txt", "hello\n");
    write(
        "site/kustomization.yaml",
        "resources: [../base]\nnamePrefix: site-\n",
    );
    let site = dir.path().join("site");
    let site = site.to_str().expect("utf-8");
    create_source(
        &server,
        &format!(
            "apiVersion: korral.dev/v1alpha1\nkind: GitSource\nmetadata:\n  name: site\nspec:\n  path: {site}\n  interval: 1s\n  prune: true\n"
        ),
    );
    let configmap = |want: &str| {
        let mut found = Value::Null;
        wait_for(&format!("a ConfigMap saying {want:?}"), SYNC, || {
            let o = server.kubectl(&["get", "configmaps", "-o", "json"]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            let items: Vec<Value> = v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    c["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("site-greeting-"))
                })
                .cloned()
                .collect();
            // the old one pruned, the new one there
            if let [only] = items.as_slice()
                && only["data"]["greeting.txt"] == want
            {
                found = only.clone();
                return true;
            }
            false
        });
        found
    };
    let first = configmap("hello\n");
    let rev = source(&server, "site")["status"]["lastAppliedRevision"].clone();
    assert!(
        rev.as_str().is_some_and(|r| r.starts_with("sha256:")),
        "{rev}"
    );
    // the base, outside the source's folder, changes: a new revision
    write("base/greeting.txt", "hi\n");
    let second = configmap("hi\n");
    assert_ne!(first["metadata"]["name"], second["metadata"]["name"]);
    let s = source(&server, "site");
    assert_ne!(s["status"]["lastAppliedRevision"], rev, "{s:#}");
    assert_eq!(condition(&s, "Ready").as_deref(), Some("True"));
    let (code, out) = run(&server, &["drift", "site"]);
    assert_eq!(code, Some(0), "{out}");
}
