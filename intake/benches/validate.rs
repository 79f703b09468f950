//! Benchmark: manifests validated per second per core, on a generated set of
//! 50,000 resources in 500 files that exercises the widened schemas
//! (Deployments, Services, ConfigMaps, Secrets, StatefulSets, Jobs,
//! CronJobs, Ingresses, HorizontalPodAutoscalers, ServiceAccounts, Roles,
//! RoleBindings, NetworkPolicies, and custom resources of a
//! CustomResourceDefinition with CEL rules, the definition in the input),
//! against the cost of YAML parsing alone measured in the same run, and
//! kubeconform's published figure. Also the memory of the kinds registry:
//! the live heap (a counting allocator) and RSS added by building the
//! built-in registry and compiling every kind's schema, and per registered
//! CustomResourceDefinition.
//!
//! Run with `cargo bench -p intake --bench validate` (add `-- --count N` to
//! change the size, `-- --classic` for the earlier mix: Deployments,
//! Services, ConfigMaps and Secrets only, no custom resources).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use schemas::Registry;

const PER_FILE: usize = 100;
/// kubeconform: 50,714 resources in 6.7 s on 4 cores (from the brief), per core.
const KUBECONFORM_PER_CORE: f64 = 50_714.0 / 6.7 / 4.0;
/// The definition of the generated custom resources (CEL rules, a list map,
/// int-or-string, defaults, formats).
const ORDERS_CRD: &str = include_str!("../../fixtures/crds/shop.example.com_orders.yaml");
/// A large real-world definition (Prometheus Operator's ServiceMonitor).
const SERVICE_MONITOR_CRD: &str =
    include_str!("../../fixtures/crds/third-party/monitoring.coreos.com_servicemonitors.yaml");

/// Counts live heap bytes while `COUNTING` is on (off while timing, so the
/// throughput figures carry no allocator overhead).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Resident set size in bytes (Linux), 0 where unknown.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Live heap and RSS added by `f` (what it keeps, not its peak).
fn memory_of<T>(f: impl FnOnce() -> T) -> (T, isize, isize) {
    let (heap0, rss0) = (LIVE.load(Ordering::Relaxed), rss() as isize);
    COUNTING.store(true, Ordering::Relaxed);
    let out = f();
    COUNTING.store(false, Ordering::Relaxed);
    (
        out,
        LIVE.load(Ordering::Relaxed) - heap0,
        rss() as isize - rss0,
    )
}

fn deployment(i: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{ns}
  labels: {{app: app-{i}, tier: web}}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: app-{i}}}
  template:
    metadata:
      labels: {{app: app-{i}, tier: web}}
    spec:
      containers:
        - name: web
          image: registry.example.com/app-{i}:1.{i}
          args: ["--port=8080"]
          ports: [{{name: http, containerPort: 8080}}]
          env:
            - {{name: MODE, value: production}}
            - name: PASSWORD
              valueFrom: {{secretKeyRef: {{name: app-{i}, key: password}}}}
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{cpu: "1", memory: 256Mi}}
          readinessProbe:
            httpGet: {{path: /ready, port: http}}
          volumeMounts: [{{name: config, mountPath: /etc/app}}]
      volumes:
        - name: config
          configMap: {{name: app-{i}, defaultMode: 0644}}
"#,
        ns = i % 20
    )
}

fn service(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{i}\n  namespace: team-{}\nspec:\n  selector: {{app: app-{i}}}\n  ports:\n    - {{name: http, port: 80, targetPort: http}}\n",
        i % 20
    )
}

fn config_map(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i}\n  namespace: team-{}\ndata:\n  app.properties: |\n    greeting=hello\n    id={i}\n  MODE: production\n",
        i % 20
    )
}

fn secret(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-{i}\n  namespace: team-{}\ntype: Opaque\ndata:\n  password: c2VjcmV0\n",
        i % 20
    )
}

fn stateful_set(i: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db-{i}
  namespace: team-{ns}
spec:
  serviceName: db-{i}
  replicas: 3
  selector:
    matchLabels: {{app: db-{i}}}
  template:
    metadata:
      labels: {{app: db-{i}}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: db
          image: postgres:16.{i}
          ports: [{{name: pg, containerPort: 5432}}]
          env: [{{name: PGDATA, value: /var/lib/postgresql/data/pgdata}}]
          resources:
            requests: {{cpu: 250m, memory: 512Mi}}
          volumeMounts: [{{name: data, mountPath: /var/lib/postgresql/data}}]
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec:
        accessModes: [ReadWriteOnce]
        storageClassName: fast
        resources:
          requests: {{storage: 10Gi}}
"#,
        ns = i % 20
    )
}

fn job(i: usize) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: migrate-{i}
  namespace: team-{ns}
spec:
  backoffLimit: 4
  ttlSecondsAfterFinished: 3600
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - name: migrate
          image: registry.example.com/migrate:{i}
          command: ["/bin/migrate", "--up"]
"#,
        ns = i % 20
    )
}

fn cron_job(i: usize) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: report-{i}
  namespace: team-{ns}
spec:
  schedule: "{m} 3 * * *"
  timeZone: Europe/Berlin
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 3
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: report
              image: registry.example.com/report:{i}
              args: ["--since=24h"]
"#,
        ns = i % 20,
        m = i % 60
    )
}

fn ingress(i: usize) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app-{i}
  namespace: team-{ns}
  annotations: {{nginx.ingress.kubernetes.io/rewrite-target: /}}
spec:
  ingressClassName: nginx
  tls:
    - hosts: [app-{i}.example.com]
      secretName: app-{i}-tls
  rules:
    - host: app-{i}.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service: {{name: app-{i}, port: {{name: http}}}}
"#,
        ns = i % 20
    )
}

fn hpa(i: usize) -> String {
    format!(
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: app-{i}
  namespace: team-{ns}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: app-{i}}}
  minReplicas: 2
  maxReplicas: 10
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {{type: Utilization, averageUtilization: 70}}
"#,
        ns = i % 20
    )
}

fn service_account(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app-{i}\n  namespace: team-{}\nautomountServiceAccountToken: false\n",
        i % 20
    )
}

fn role(i: usize) -> String {
    format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: app-{i}
  namespace: team-{ns}
rules:
  - apiGroups: [""]
    resources: [configmaps, secrets]
    verbs: [get, list, watch]
  - apiGroups: [apps]
    resources: [deployments]
    resourceNames: [app-{i}]
    verbs: [get, patch]
"#,
        ns = i % 20
    )
}

fn role_binding(i: usize) -> String {
    format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: app-{i}
  namespace: team-{ns}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: app-{i}}}
subjects:
  - {{kind: ServiceAccount, name: app-{i}, namespace: team-{ns}}}
"#,
        ns = i % 20
    )
}

fn network_policy(i: usize) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: app-{i}
  namespace: team-{ns}
spec:
  podSelector: {{matchLabels: {{app: app-{i}}}}}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: ingress-nginx}}}}
      ports: [{{protocol: TCP, port: 8080}}]
"#,
        ns = i % 20
    )
}

fn order(i: usize) -> String {
    format!(
        r#"apiVersion: shop.example.com/v1
kind: Order
metadata:
  name: order-{i}
  namespace: team-{ns}
  labels: {{app: app-{i}}}
spec:
  customer: customer-{i}
  priority: high
  contactEmail: buyer-{i}@example.com
  replicas: 3
  minReplicas: 1
  maxUnavailable: 25%
  lineItems:
    - {{sku: SKU-{i}, quantity: 2, unitPrice: "19.99"}}
    - {{sku: MUG-001, quantity: 1}}
  shippingAddress: {{line1: 1 Main St, city: Springfield, country: US}}
  extensions: {{crm: {{segment: smb}}}}
"#,
        ns = i % 20
    )
}

/// A kind's name and the generator of its i-th object.
type Kind = (&'static str, fn(usize) -> String);

/// The kinds, in turn (custom resources twice: about one object in eight).
const MIX: &[Kind] = &[
    ("Deployment", deployment),
    ("Service", service),
    ("ConfigMap", config_map),
    ("Secret", secret),
    ("Order (custom)", order),
    ("StatefulSet", stateful_set),
    ("Job", job),
    ("CronJob", cron_job),
    ("Ingress", ingress),
    ("HorizontalPodAutoscaler", hpa),
    ("ServiceAccount", service_account),
    ("Role", role),
    ("RoleBinding", role_binding),
    ("NetworkPolicy", network_policy),
    ("Order (custom)", order),
];

/// The earlier benchmark's mix (four built-in kinds).
const CLASSIC: &[Kind] = &[
    ("Deployment", deployment),
    ("Service", service),
    ("ConfigMap", config_map),
    ("Secret", secret),
];

/// Writes `count` resources of `mix` (plus, when it has custom resources,
/// their CustomResourceDefinition, last) and returns the files and the
/// number of objects.
fn generate(dir: &Path, count: usize, mix: &[Kind]) -> (Vec<PathBuf>, usize) {
    let write = |path: &Path, text: &str| {
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(2);
        }
    };
    let mut files = Vec::new();
    let mut i = 0;
    while i < count {
        let mut text = String::new();
        for _ in 0..PER_FILE.min(count - i) {
            text.push_str("---\n");
            text.push_str(&(mix[i % mix.len()].1)(i));
            i += 1;
        }
        let path = dir.join(format!("apps-{:04}.yaml", files.len()));
        write(&path, &text);
        files.push(path);
    }
    if !mix.iter().any(|(k, _)| k.contains("custom")) {
        return (files, count);
    }
    // the definition sorts after every object of its kind
    let crd = dir.join("zz-crds.yaml");
    write(&crd, ORDERS_CRD);
    files.push(crd);
    (files, count + 1)
}

fn parse_only(files: &[PathBuf]) -> usize {
    files
        .par_iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            schemas::decode_file(&f.display().to_string(), &text)
                .manifests
                .len()
        })
        .sum()
}

fn validate(files: &[PathBuf]) -> usize {
    let report = intake::validate::validate_files(files, "default");
    if !report.diagnostics.is_empty() {
        eprintln!(
            "generated manifests are invalid ({} errors), e.g. {}",
            report.diagnostics.len(),
            report.diagnostics[0]
        );
        std::process::exit(2);
    }
    report.valid.len()
}

fn time_in(threads: usize, f: impl Fn() -> usize + Send + Sync) -> (usize, Duration) {
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot build a pool of {threads}: {e}");
            std::process::exit(2);
        }
    };
    pool.install(|| {
        f(); // warm the page cache and the schema validators
        let start = Instant::now();
        let n = f();
        (n, start.elapsed())
    })
}

/// A definition of its own group (`shop{j}.example.com`), so many can be registered.
fn orders_crd_copy(j: usize) -> String {
    ORDERS_CRD.replace("shop.example.com", &format!("shop{j}.example.com"))
}

/// Registers the definitions among `manifests` and compiles every kind's schema.
fn register_and_compile(registry: &Registry, manifests: &[schemas::Manifest]) {
    let errors = schemas::crd::register_from_manifests(manifests, registry);
    if let Some(e) = errors.first() {
        eprintln!("a benchmark definition is invalid: {e}");
        std::process::exit(2);
    }
    for k in registry.snapshot().all() {
        let _ = k.compiled();
    }
}

fn decode_all(texts: &[String]) -> Vec<schemas::Manifest> {
    texts
        .iter()
        .enumerate()
        .flat_map(|(i, t)| schemas::decode_file(&format!("crd-{i}.yaml"), t).manifests)
        .collect()
}

struct RegistryMemory {
    kinds: usize,
    builtin: (isize, isize),
    per_orders_crd: (isize, isize),
    service_monitor: (isize, isize),
}

/// The registry's memory, measured before anything else touches the kinds.
fn registry_memory() -> RegistryMemory {
    let (registry, heap, rss) = memory_of(|| {
        let registry = Registry::builtin();
        for k in registry.snapshot().all() {
            let _ = k.compiled();
        }
        registry
    });
    let kinds = registry.snapshot().all().len();
    let builtin = (heap, rss);

    const COPIES: usize = 50;
    let manifests = decode_all(&(0..COPIES).map(orders_crd_copy).collect::<Vec<_>>());
    let ((), heap, rss) = memory_of(|| register_and_compile(&registry, &manifests));
    let per_orders_crd = (heap / COPIES as isize, rss / COPIES as isize);

    let manifests = decode_all(&[SERVICE_MONITOR_CRD.to_string()]);
    let ((), heap, rss) = memory_of(|| register_and_compile(&registry, &manifests));
    RegistryMemory {
        kinds,
        builtin,
        per_orders_crd,
        service_monitor: (heap, rss),
    }
}

fn main() {
    let memory = registry_memory();
    let args: Vec<String> = std::env::args().collect();
    let count = args
        .iter()
        .position(|a| a == "--count")
        .and_then(|i| args.get(i + 1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(50_000usize);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot create a temporary directory: {e}");
            std::process::exit(2);
        }
    };
    eprintln!(
        "generating {count} resources in {} files…",
        count.div_ceil(PER_FILE)
    );
    let mix = if args.iter().any(|a| a == "--classic") {
        CLASSIC
    } else {
        MIX
    };
    let (files, objects) = generate(dir.path(), count, mix);

    let (parsed, parse_1) = time_in(1, || parse_only(&files));
    let (valid_1_n, valid_1) = time_in(1, || validate(&files));
    let (valid_n_n, valid_n) = time_in(cores, || validate(&files));
    assert_eq!(parsed, objects);
    assert_eq!(valid_1_n, objects);
    assert_eq!(valid_n_n, objects);

    let rate = |d: Duration| objects as f64 / d.as_secs_f64();
    let parse_rate = rate(parse_1);
    let mut kinds: Vec<&str> = Vec::new();
    for (k, _) in mix {
        if !kinds.contains(k) {
            kinds.push(k);
        }
    }
    println!(
        "korral validate benchmark: {objects} resources ({count} + {} CustomResourceDefinition), {} files, {cores} cores",
        objects - count,
        files.len()
    );
    println!("kinds, in turn: {}", kinds.join(", "));
    println!(
        "{:<38} {:>9} {:>12} {:>12} {:>12} {:>14}",
        "measurement", "seconds", "resources/s", "per core", "vs parse", "vs kubeconform"
    );
    let row = |name: &str, d: Duration, threads: usize| {
        let r = rate(d);
        let per_core = r / threads as f64;
        println!(
            "{name:<38} {:>9.3} {:>12.0} {:>12.0} {:>11.2}x {:>13.2}x",
            d.as_secs_f64(),
            r,
            per_core,
            per_core / parse_rate,
            per_core / KUBECONFORM_PER_CORE
        );
    };
    row("YAML parse only (1 core)", parse_1, 1);
    row("full validation (1 core)", valid_1, 1);
    row(&format!("full validation ({cores} cores)"), valid_n, cores);
    println!(
        "{:<38} {:>9} {:>12.0} {:>12.0} {:>12} {:>14}",
        "kubeconform, published (4 cores)",
        "6.700",
        50_714.0 / 6.7,
        KUBECONFORM_PER_CORE,
        "-",
        "1.00x"
    );
    let mib = |b: isize| b as f64 / (1024.0 * 1024.0);
    println!();
    println!(
        "{:<62} {:>12} {:>12}",
        "kinds registry memory", "heap (MiB)", "RSS (MiB)"
    );
    println!(
        "{:<62} {:>12.2} {:>12.2}",
        format!(
            "built-in registry, {} kinds, every schema compiled",
            memory.kinds
        ),
        mib(memory.builtin.0),
        mib(memory.builtin.1)
    );
    println!(
        "{:<62} {:>12.3} {:>12.3}",
        "per CRD like shop's Orders (2 versions, CEL; mean of 50)",
        mib(memory.per_orders_crd.0),
        mib(memory.per_orders_crd.1)
    );
    println!(
        "{:<62} {:>12.3} {:>12.3}",
        "Prometheus Operator's ServiceMonitor CRD (1,384 lines)",
        mib(memory.service_monitor.0),
        mib(memory.service_monitor.1)
    );
}
