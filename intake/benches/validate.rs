//! Benchmark: manifests validated per second per core, on a generated set of
//! 50,000 resources in 500 files, against the cost of YAML parsing alone
//! measured in the same run, and kubeconform's published figure.
//!
//! Run with `cargo bench -p intake --bench validate` (add `-- --count N` to change the size).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;

const PER_FILE: usize = 100;
/// kubeconform: 50,714 resources in 6.7 s on 4 cores (from the brief), per core.
const KUBECONFORM_PER_CORE: f64 = 50_714.0 / 6.7 / 4.0;

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

fn generate(dir: &Path, count: usize) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut i = 0;
    while i < count {
        let mut text = String::new();
        for _ in 0..PER_FILE.min(count - i) {
            let doc = match i % 4 {
                0 => deployment(i),
                1 => service(i),
                2 => config_map(i),
                _ => secret(i),
            };
            text.push_str("---\n");
            text.push_str(&doc);
            i += 1;
        }
        let path = dir.join(format!("apps-{:04}.yaml", files.len()));
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(2);
        }
        files.push(path);
    }
    files
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
        eprintln!("generated manifests are invalid: {}", report.diagnostics[0]);
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

fn main() {
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
    let files = generate(dir.path(), count);

    let (parsed, parse_1) = time_in(1, || parse_only(&files));
    let (valid_1_n, valid_1) = time_in(1, || validate(&files));
    let (valid_n_n, valid_n) = time_in(cores, || validate(&files));
    assert_eq!(parsed, count);
    assert_eq!(valid_1_n, count);
    assert_eq!(valid_n_n, count);

    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    let parse_rate = rate(parse_1);
    println!(
        "korral validate benchmark: {count} resources, {} files, {cores} cores",
        files.len()
    );
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
}
