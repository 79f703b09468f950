//! Store benchmark (`cargo bench -p apiserver --bench store`): writes per
//! second and watch delivery latency (p50/p99) for LocalStore and EtcdStore,
//! next to the physical limit, the raw etcd write rate on this machine
//! (etcd-client puts at the same concurrency, and an `etcdctl put` loop).
//! Starts its own etcd (Debian's `etcd-server`); prints one table.

#[path = "../tests/common/etcd.rs"]
mod etcd;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::store::{EtcdOptions, EtcdStore, LocalOptions, LocalStore, Store, WatchItem};
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};

/// The physical limit's row.
const RAW_PUT: &str = "raw etcd put (etcd-client)";

/// How long each measurement writes.
const RUN: Duration = Duration::from_secs(3);
/// Concurrent writers measured.
const WRITERS: [usize; 2] = [1, 16];
/// Value size: a small Kubernetes object.
const VALUE_SIZE: usize = 512;

/// One row of the table.
struct Row {
    name: String,
    writers: usize,
    writes_per_sec: f64,
    /// p50 and p99 watch delivery latency, when measured.
    latency: Option<(Duration, Duration)>,
}

/// A value that carries its write time (nanoseconds since `base`).
fn value(base: Instant) -> Vec<u8> {
    let mut v = format!("{:020}", base.elapsed().as_nanos()).into_bytes();
    v.resize(VALUE_SIZE, b'x');
    v
}

fn written_at(value: &[u8]) -> Option<Duration> {
    let digits = std::str::from_utf8(value.get(..20)?).ok()?;
    Some(Duration::from_nanos(digits.parse().ok()?))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Writes with `writers` tasks for `RUN` while one watcher, reading all
/// along, measures how long each event takes from the start of its write to
/// its delivery.
async fn measure_store(name: &str, store: Arc<dyn Store>, writers: usize, run: usize) -> Row {
    let base = Instant::now();
    let prefix = format!("bench/{run}/");
    let mut watch = store.watch(&prefix, 0).await.expect("watch");
    // The watcher stops once it has seen as many events as were written.
    let (expect_tx, mut expect_rx) = tokio::sync::watch::channel(u64::MAX);
    let watcher = {
        let name = name.to_string();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while (latencies.len() as u64) < *expect_rx.borrow() {
                tokio::select! {
                    item = watch.next() => match item {
                        Some(Ok(WatchItem::Event(ev))) => {
                            let at = written_at(&ev.kv.value).expect("a timestamped value");
                            latencies.push(base.elapsed().saturating_sub(at));
                        }
                        Some(Ok(WatchItem::Progress(_))) => {}
                        other => panic!("{name}: watch failed: {other:?}"),
                    },
                    changed = expect_rx.changed() => changed.expect("the benchmark waits for the watcher"),
                }
            }
            latencies
        })
    };
    let deadline = base + RUN;
    let mut tasks = Vec::new();
    for t in 0..writers {
        let (store, prefix) = (store.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                store
                    .create(&format!("{prefix}{t}/{n}"), value(base))
                    .await
                    .expect("create");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("writer");
    }
    let elapsed = base.elapsed();
    expect_tx.send(total).expect("the watcher is running");
    let mut latencies = tokio::time::timeout(Duration::from_secs(60), watcher)
        .await
        .expect("the watcher delivers every event")
        .expect("watcher task");
    latencies.sort();
    Row {
        name: name.into(),
        writers,
        writes_per_sec: total as f64 / elapsed.as_secs_f64(),
        latency: Some((percentile(&latencies, 0.5), percentile(&latencies, 0.99))),
    }
}

/// Raw etcd puts (no compare, no watch) at the same concurrency.
/// With `txn`, each write is the same compare-and-create `Txn` EtcdStore
/// sends, to separate etcd's cost of a transaction from the store's own.
async fn measure_raw_etcd(endpoint: &str, writers: usize, run: usize, txn: bool) -> Row {
    let client = Client::connect([endpoint], None).await.expect("raw client");
    let base = Instant::now();
    let deadline = base + RUN;
    let mut tasks = Vec::new();
    for t in 0..writers {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let key = format!("/raw/{run}/{t}/{n}");
                if txn {
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(key.as_str(), value(base), None)]);
                    client.txn(txn).await.expect("txn");
                } else {
                    client.put(key, value(base), None).await.expect("put");
                }
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("writer");
    }
    Row {
        name: if txn {
            "raw etcd compare-and-create txn".into()
        } else {
            RAW_PUT.into()
        },
        writers,
        writes_per_sec: total as f64 / base.elapsed().as_secs_f64(),
        latency: None,
    }
}

/// etcd's own tooling: `etcdctl put` in a loop (one process per write).
fn measure_etcdctl(endpoint: &str) -> Option<Row> {
    let base = Instant::now();
    let mut n = 0u64;
    while base.elapsed() < Duration::from_secs(2) {
        let status = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                endpoint,
                "put",
                &format!("/etcdctl/{n}"),
                "v",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        n += 1;
    }
    Some(Row {
        name: "etcdctl put loop (process per write)".into(),
        writers: 1,
        writes_per_sec: n as f64 / base.elapsed().as_secs_f64(),
        latency: None,
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let etcd = match etcd::EtcdProcess::start().await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("cannot start etcd for the benchmark: {e}");
                std::process::exit(1);
            }
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let local: Arc<dyn Store> = Arc::new(
            LocalStore::open(LocalOptions::new(dir.path().join("store.redb")))
                .await
                .expect("open LocalStore"),
        );
        let remote: Arc<dyn Store> = Arc::new(
            EtcdStore::connect(EtcdOptions::new([etcd.endpoint()]))
                .await
                .expect("connect EtcdStore"),
        );
        let mut rows = Vec::new();
        let mut run = 0;
        for writers in WRITERS {
            run += 1;
            let raw = measure_raw_etcd(&etcd.endpoint(), writers, run, false).await;
            run += 1;
            let raw_txn = measure_raw_etcd(&etcd.endpoint(), writers, run, true).await;
            run += 1;
            let e = measure_store("EtcdStore", remote.clone(), writers, run).await;
            run += 1;
            let l = measure_store("LocalStore (redb)", local.clone(), writers, run).await;
            rows.extend([raw, raw_txn, e, l]);
        }
        let etcdctl = measure_etcdctl(&etcd.endpoint());
        print_table(&rows, etcdctl.as_ref());
    });
}

fn print_table(rows: &[Row], etcdctl: Option<&Row>) {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!();
    println!(
        "store benchmark: {VALUE_SIZE}-byte creates for {RUN:?} per row, one watcher on the prefix"
    );
    println!(
        "{:<38} {:>7} {:>10} {:>14} {:>10} {:>10}",
        "backend", "writers", "writes/s", "vs raw etcd", "watch p50", "watch p99"
    );
    for writers in WRITERS {
        let raw = rows
            .iter()
            .find(|r| r.writers == writers && r.name == RAW_PUT)
            .map_or(f64::NAN, |r| r.writes_per_sec);
        for r in rows.iter().filter(|r| r.writers == writers) {
            let (p50, p99) = r
                .latency
                .map_or(("-".into(), "-".into()), |(a, b)| (ms(a), ms(b)));
            println!(
                "{:<38} {:>7} {:>10.0} {:>13.2}x {:>10} {:>10}",
                r.name,
                r.writers,
                r.writes_per_sec,
                r.writes_per_sec / raw,
                p50,
                p99
            );
        }
    }
    if let Some(r) = etcdctl {
        println!(
            "{:<38} {:>7} {:>10.0} {:>14} {:>10} {:>10}",
            r.name, r.writers, r.writes_per_sec, "-", "-", "-"
        );
    }
    println!(
        "(raw etcd put: the physical limit here, same concurrency, no compare-and-swap; \
         `etcdctl check perf` is rate-limited to a fixed load, so not used)"
    );
}
