//! kill -9 at random moments never loses an acknowledged LocalStore write.
//!
//! The test re-runs its own executable as a child (marked by an environment
//! variable) that writes to a LocalStore from several tasks (group commit,
//! periodic compaction running) and prints every acknowledged write. The
//! parent SIGKILLs it at a random moment, reopens the store, and checks that
//! every acknowledged write is there, that history has no holes, and that
//! history and data agree. The same file goes through every iteration, so
//! each run also recovers from the previous crash.

use crate::common;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiserver::store::{
    CompactionPolicy, EventType, ListRequest, LocalStore, Revision, Store, WatchItem,
};

const CHILD_DIR: &str = "KORRAL_CRASH_CHILD_DIR";
const CHILD_ITERATION: &str = "KORRAL_CRASH_CHILD_ITERATION";
const ITERATIONS: usize = 20;
const TEST_NAME: &str = "kill_9_never_loses_an_acknowledged_write";

/// The test's full name as the test harness knows it (its module path
/// without the crate), for re-running just this test as the child.
fn test_path() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    if module.is_empty() {
        TEST_NAME.to_string()
    } else {
        format!("{module}::{TEST_NAME}")
    }
}

#[test]
fn kill_9_never_loses_an_acknowledged_write() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut total_acks = 0;
    let mut killed_while_writing = 0;
    for iteration in 0..ITERATIONS {
        let acks = run_child_and_kill(dir.path(), iteration);
        total_acks += acks.len();
        if !acks.is_empty() {
            killed_while_writing += 1;
        }
        runtime.block_on(verify(dir.path(), &acks, iteration));
    }
    eprintln!(
        "{ITERATIONS} kills, {total_acks} acknowledged writes checked, {killed_while_writing} children killed while writing"
    );
    assert!(total_acks > 0, "the children acknowledged writes");
    assert!(
        killed_while_writing >= ITERATIONS / 2,
        "most children were killed while writing ({killed_while_writing} of {ITERATIONS})"
    );
}

/// One acknowledged write as the child printed it.
#[derive(Debug)]
struct Ack {
    revision: Revision,
    key: String,
    /// The value written; `None` for a delete.
    value: Option<String>,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let revision = parts.next()?.parse().ok()?;
    let key = parts.next()?.to_string();
    let value = match parts.next()? {
        "-" => None,
        v => Some(v.to_string()),
    };
    Some(Ack {
        revision,
        key,
        value,
    })
}

fn random_below(n: u64) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() % n.max(1)
}

/// Runs one child, kills it with SIGKILL at a random moment, and returns
/// what it acknowledged.
fn run_child_and_kill(dir: &Path, iteration: usize) -> Vec<Ack> {
    let exe = std::env::current_exe().expect("the test executable");
    let mut child = Command::new(exe)
        .args([&test_path(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_ITERATION, iteration.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer child");
    let stdout = child.stdout.take().expect("child stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(ack) = parse_ack(&line) {
                    lines.lock().expect("ack list").push(ack);
                }
            }
        })
    };
    // The random moment: on odd iterations some time after the start (maybe
    // before the store is even open), on even ones after some writes.
    if iteration % 2 == 1 {
        std::thread::sleep(Duration::from_millis(random_below(100)));
    } else {
        let wanted = 1 + random_below(400) as usize;
        let deadline = Instant::now() + common::DEADLINE;
        while lines.lock().expect("ack list").len() < wanted {
            assert!(
                Instant::now() < deadline,
                "the child acknowledged fewer than {wanted} writes in {:?}",
                common::DEADLINE
            );
            assert!(
                child.try_wait().expect("child status").is_none(),
                "the writer child exited on its own"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("stdout reader");
    let mut acks = lines.lock().expect("ack list");
    std::mem::take(&mut *acks)
}

fn options(dir: &Path) -> apiserver::store::LocalOptions {
    let mut options = common::local_options(dir);
    // Compaction runs too, so some kills land in it.
    options.compaction = Some(CompactionPolicy {
        interval: Duration::from_millis(30),
        max_revisions: 300,
    });
    options
}

/// Reopens the store after a crash and checks it against the acks.
async fn verify(dir: &Path, acks: &[Ack], iteration: usize) {
    let opened = Instant::now();
    // No compaction here: history must stay put while it is checked.
    let store = LocalStore::open(common::local_options(dir))
        .await
        .unwrap_or_else(|e| panic!("iteration {iteration}: reopen after kill -9 failed: {e}"));
    let open_time = opened.elapsed();
    assert!(
        open_time < Duration::from_secs(10),
        "recovery took {open_time:?}"
    );
    let current = store.current_revision().await.expect("rev");
    let compacted = store.compacted_revision().await.expect("compacted");
    eprintln!(
        "iteration {iteration}: {} acks, reopened in {open_time:?} at revision {current} (compacted {compacted})",
        acks.len()
    );
    if let Some(last) = acks.iter().map(|a| a.revision).max() {
        assert!(
            current >= last,
            "iteration {iteration}: store at {current}, but revision {last} was acknowledged"
        );
    }

    // History from the compacted revision on: every revision, in order.
    let from = compacted.max(1);
    let mut history = BTreeMap::new();
    let mut stream = store.watch("", from).await.expect("watch history");
    loop {
        match tokio::time::timeout(common::DEADLINE, stream.next())
            .await
            .expect("history replay answers")
        {
            Some(Ok(WatchItem::Event(ev))) => {
                history.insert(ev.revision(), ev);
            }
            Some(Ok(WatchItem::Progress(p))) if p >= current => break,
            Some(Ok(WatchItem::Progress(_))) => {}
            other => panic!("iteration {iteration}: history replay: {other:?}"),
        }
    }
    let first = from.max(2);
    let revisions: Vec<Revision> = history.keys().copied().collect();
    let want: Vec<Revision> = (first..=current).collect();
    assert_eq!(
        revisions, want,
        "iteration {iteration}: history must hold every revision from {first} to {current}"
    );

    for ack in acks.iter().filter(|a| a.revision >= first) {
        let ev = &history[&ack.revision];
        assert_eq!(ev.kv.key, ack.key, "iteration {iteration}: {ack:?}");
        match &ack.value {
            Some(v) => assert_eq!(ev.kv.value, v.as_bytes(), "iteration {iteration}: {ack:?}"),
            None => assert_eq!(
                ev.kind,
                EventType::Deleted,
                "iteration {iteration}: {ack:?}"
            ),
        }
    }

    // Data and history agree: the state at `from` plus history is the latest state.
    let at_from = store
        .list(ListRequest {
            revision: Some(from),
            ..ListRequest::default()
        })
        .await
        .expect("list at the oldest revision");
    let mut state: BTreeMap<String, (Vec<u8>, Revision)> = at_from
        .kvs
        .into_iter()
        .map(|kv| (kv.key, (kv.value, kv.mod_revision)))
        .collect();
    for ev in history.values().filter(|e| e.revision() > from) {
        match ev.kind {
            EventType::Deleted => state.remove(&ev.kv.key),
            _ => state.insert(ev.kv.key.clone(), (ev.kv.value.clone(), ev.revision())),
        };
    }
    let latest: BTreeMap<String, (Vec<u8>, Revision)> = store
        .list(ListRequest::default())
        .await
        .expect("list")
        .kvs
        .into_iter()
        .map(|kv| (kv.key, (kv.value, kv.mod_revision)))
        .collect();
    assert_eq!(
        latest, state,
        "iteration {iteration}: data and history disagree"
    );
    // The latest acknowledged write of each key is what the key holds, unless
    // a later (possibly unacknowledged) write replaced it.
    let mut last_ack: BTreeMap<&str, &Ack> = BTreeMap::new();
    for ack in acks {
        last_ack.insert(&ack.key, ack);
    }
    for (key, ack) in last_ack {
        match latest.get(key) {
            Some((value, rev)) if *rev == ack.revision => {
                assert_eq!(
                    Some(value.as_slice()),
                    ack.value.as_deref().map(str::as_bytes)
                );
            }
            Some((_, rev)) => assert!(
                *rev > ack.revision,
                "iteration {iteration}: {key} went back"
            ),
            None => assert!(
                ack.value.is_none() || current > ack.revision,
                "iteration {iteration}: acknowledged key {key} is missing"
            ),
        }
    }
    store.close().await;
}

/// The child: writes from 4 tasks until killed (or 20 s / 200k writes pass).
fn child(dir: &Path) {
    let iteration: usize = std::env::var(CHILD_ITERATION)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let store = Arc::new(LocalStore::open(options(dir)).await.expect("child: open"));
        let stop = Instant::now() + Duration::from_secs(20);
        let mut tasks = Vec::new();
        for t in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let ack = |rev: Revision, key: &str, value: &str| {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {rev} {key} {value}").expect("child: print ack");
                    out.flush().expect("child: flush ack");
                };
                for i in 0..50_000u32 {
                    if Instant::now() > stop {
                        break;
                    }
                    let key = format!("it{iteration}/t{t}/{i}");
                    let v1 = format!("c{iteration}.{t}.{i}");
                    let kv = store
                        .create(&key, v1.clone().into_bytes())
                        .await
                        .expect("create");
                    ack(kv.mod_revision, &key, &v1);
                    let v2 = format!("u{iteration}.{t}.{i}");
                    let kv = store
                        .update(&key, v2.clone().into_bytes(), kv.mod_revision)
                        .await
                        .expect("update");
                    ack(kv.mod_revision, &key, &v2);
                    if i.is_multiple_of(3) {
                        let d = store
                            .delete(&key, Some(kv.mod_revision))
                            .await
                            .expect("delete");
                        ack(d.revision, &key, "-");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("child writer");
        }
    });
}
