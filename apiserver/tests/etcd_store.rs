//! EtcdStore behaviour beyond the conformance suite: the key prefix, watch
//! resumption across an etcd restart, unreachable etcd, several endpoints,
//! user/password auth and TLS with client certificates. Each test runs its
//! own etcd and fails (never skips) if etcd cannot start.

use crate::common;

use std::time::{Duration, Instant};

use apiserver::store::{EtcdAuth, EtcdOptions, EtcdStore, EtcdTls, ListRequest, Store, StoreError};
use common::Watcher;
use common::etcd::{EtcdProcess, TestTls};
use etcd_client::{Client, GetOptions};

async fn start_etcd() -> EtcdProcess {
    EtcdProcess::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start etcd for the etcd store tests: {e}"))
}

async fn raw_client(etcd: &EtcdProcess) -> Client {
    Client::connect([etcd.endpoint()], None)
        .await
        .expect("raw etcd client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_live_under_the_configured_prefix() {
    let etcd = start_etcd().await;
    let store = EtcdStore::connect(EtcdOptions::new([etcd.endpoint()]))
        .await
        .expect("connect");
    assert_eq!(store.prefix(), "/registry/");
    store
        .create("pods/default/web", b"{}".to_vec())
        .await
        .expect("create");
    let mut raw = raw_client(&etcd).await;
    let got = raw
        .get("/registry/pods/default/web", None)
        .await
        .expect("raw get");
    assert_eq!(got.kvs().len(), 1);
    assert_eq!(got.kvs()[0].value(), b"{}");

    // Another prefix (given without its slash) sees only its own keys.
    let mut options = EtcdOptions::new([etcd.endpoint()]);
    options.prefix = "/korral".into();
    let other = EtcdStore::connect(options).await.expect("connect");
    assert_eq!(other.prefix(), "/korral/");
    other
        .create("pods/default/db", b"1".to_vec())
        .await
        .expect("create");
    raw.put("/registry-other/x", "not ours", None)
        .await
        .expect("raw put");
    let listed = store.list(ListRequest::default()).await.expect("list");
    let keys: Vec<&str> = listed.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["pods/default/web"]);
    let listed = other.list(ListRequest::default()).await.expect("list");
    let keys: Vec<&str> = listed.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["pods/default/db"]);
    let all = raw
        .get("/", Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .expect("raw list");
    assert_eq!(all.kvs().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_etcd_restarts() {
    let mut etcd = start_etcd().await;
    let store = EtcdStore::connect(EtcdOptions::new([etcd.endpoint()]))
        .await
        .expect("connect");
    let mut w = Watcher::new(store.watch("r/", 0).await.expect("watch"));
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(
            store
                .create(&format!("r/{i}"), b"1".to_vec())
                .await
                .expect("create"),
        );
    }
    w.until_revision(written[4].mod_revision).await;

    etcd.kill();
    assert!(
        matches!(store.get("r/0").await, Err(StoreError::Unavailable(_))),
        "a read while etcd is down is Unavailable"
    );
    etcd.restart().await.expect("restart etcd");
    for i in 5..10 {
        let key = format!("r/{i}");
        // The client reconnects on its own; retry until it has.
        let deadline = Instant::now() + common::DEADLINE;
        let kv = loop {
            match store.create(&key, b"1".to_vec()).await {
                Ok(kv) => break kv,
                Err(StoreError::Unavailable(e)) if Instant::now() < deadline => {
                    tracing::debug!(%e, "etcd not back yet");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("create after restart: {e}"),
            }
        };
        written.push(kv);
    }
    w.until_revision(written[9].mod_revision).await;
    let got: Vec<_> = w.events.iter().map(|e| &e.kv).collect();
    let want: Vec<_> = written.iter().collect();
    assert_eq!(got, want, "every event once, in order, across the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_etcd_is_unavailable_and_names_the_endpoint() {
    let etcd = start_etcd().await;
    let endpoint = etcd.endpoint();
    drop(etcd);
    let mut options = EtcdOptions::new([endpoint.clone()]);
    options.connect_timeout = Duration::from_millis(500);
    options.request_timeout = Duration::from_secs(1);
    let started = Instant::now();
    match EtcdStore::connect(options).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains(&endpoint), "{msg}"),
        Err(e) => panic!("expected Unavailable, got {e}"),
        Ok(_) => panic!("connecting to a stopped etcd must fail"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_in_the_list_is_avoided() {
    let etcd = start_etcd().await;
    let dead = {
        let gone = start_etcd().await;
        gone.endpoint()
    };
    let mut options = EtcdOptions::new([dead, etcd.endpoint()]);
    options.connect_timeout = Duration::from_millis(500);
    let store = EtcdStore::connect(options)
        .await
        .expect("connect with one live member");
    for i in 0..10 {
        store
            .create(&format!("k/{i}"), b"1".to_vec())
            .await
            .expect("writes reach the live member");
    }
    let listed = store.list(ListRequest::default()).await.expect("list");
    assert_eq!(listed.kvs.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_auth() {
    let etcd = start_etcd().await;
    let mut raw = raw_client(&etcd).await;
    raw.user_add("root", "s3cret", None)
        .await
        .expect("add root user");
    // The root role may already exist; granting it is what matters.
    let _ = raw.role_add("root").await;
    raw.user_grant_role("root", "root")
        .await
        .expect("grant root");
    raw.auth_enable().await.expect("enable auth");

    let mut options = EtcdOptions::new([etcd.endpoint()]);
    options.auth = Some(EtcdAuth {
        user: "root".into(),
        password: "wrong".into(),
    });
    let err = EtcdStore::connect(options.clone())
        .await
        .err()
        .expect("a wrong password is refused");
    assert!(err.to_string().contains("etcd"), "{err}");
    assert!(
        !format!("{options:?}").contains("wrong"),
        "passwords are not printed"
    );

    options.auth = Some(EtcdAuth {
        user: "root".into(),
        password: "s3cret".into(),
    });
    let store = EtcdStore::connect(options)
        .await
        .expect("connect with the password");
    let kv = store.create("a", b"1".to_vec()).await.expect("create");
    assert_eq!(store.get("a").await.expect("get"), Some(kv));

    let anonymous = EtcdStore::connect(EtcdOptions::new([etcd.endpoint()])).await;
    match anonymous {
        Err(e) => assert!(e.to_string().contains("user"), "actionable: {e}"),
        Ok(store) => {
            let e = store.get("a").await.expect_err("no credentials, no data");
            assert!(e.to_string().contains("user"), "actionable: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = TestTls::generate(dir.path()).expect("generate certificates");
    let etcd = EtcdProcess::start_with(Some(tls.clone()))
        .await
        .unwrap_or_else(|e| panic!("cannot start etcd with TLS: {e}"));
    assert!(etcd.endpoint().starts_with("https://"));

    let mut options = EtcdOptions::new([etcd.endpoint()]);
    options.tls = Some(EtcdTls {
        ca_file: Some(tls.ca.clone()),
        cert_file: Some(tls.client_cert.clone()),
        key_file: Some(tls.client_key.clone()),
        domain_name: None,
    });
    let store = EtcdStore::connect(options.clone())
        .await
        .expect("connect over TLS");
    let kv = store
        .create("secure/a", b"1".to_vec())
        .await
        .expect("create");
    let mut w = Watcher::new(
        store
            .watch("secure/", kv.mod_revision)
            .await
            .expect("watch"),
    );
    w.until_revision(kv.mod_revision).await;
    assert_eq!(w.events[0].kv, kv);

    // Without a client certificate etcd refuses the connection.
    let mut options_no_cert = options.clone();
    options_no_cert.tls = Some(EtcdTls {
        ca_file: Some(tls.ca.clone()),
        ..EtcdTls::default()
    });
    options_no_cert.connect_timeout = Duration::from_millis(500);
    options_no_cert.request_timeout = Duration::from_secs(2);
    assert!(EtcdStore::connect(options_no_cert).await.is_err());

    // A missing file is named in the error.
    let mut missing = options;
    missing.tls = Some(EtcdTls {
        ca_file: Some(dir.path().join("nope.crt")),
        ..EtcdTls::default()
    });
    let err = EtcdStore::connect(missing)
        .await
        .err()
        .expect("missing CA file");
    assert!(err.to_string().contains("nope.crt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_cluster_survives_losing_a_member() {
    let mut cluster = common::etcd::EtcdCluster::start(3)
        .await
        .unwrap_or_else(|e| panic!("cannot start a 3-member etcd cluster: {e}"));
    // Member 0 is the one the store talks to first; make it a follower, so
    // killing it loses no leader (writes in flight during a leader election
    // may time out with an unknown outcome, and are then the caller's to retry).
    let endpoints = cluster.endpoints();
    let mut first = Client::connect([endpoints[0].as_str()], None)
        .await
        .expect("raw client of member 0");
    let status = first.status().await.expect("status");
    let me = status.header().expect("status header").member_id();
    if status.leader() == me {
        let mut second = Client::connect([endpoints[1].as_str()], None)
            .await
            .expect("raw client of member 1");
        let target = second
            .status()
            .await
            .expect("status")
            .header()
            .expect("header")
            .member_id();
        first
            .move_leader(target)
            .await
            .expect("move the leader off member 0");
    }
    common::eventually("member 0 is a follower", || {
        let mut first = first.clone();
        async move {
            match first.status().await {
                Ok(s) => s.leader() != 0 && s.leader() != s.header().map_or(0, |h| h.member_id()),
                Err(_) => false,
            }
        }
    })
    .await;

    let store = EtcdStore::connect(EtcdOptions::new(endpoints.clone()))
        .await
        .expect("connect to the cluster");
    // Requests and the watch go to the first member until it dies.
    let mut w = Watcher::new(store.watch("ha/", 0).await.expect("watch"));
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(
            store
                .create(&format!("ha/{i}"), b"1".to_vec())
                .await
                .expect("create"),
        );
    }
    w.until_revision(written[4].mod_revision).await;
    cluster.members[0].kill();
    // Every write succeeds without the caller retrying: the store moves on.
    for i in 5..15 {
        written.push(
            store
                .create(&format!("ha/{i}"), b"1".to_vec())
                .await
                .expect("create with one member down"),
        );
    }
    let listed = store.list(ListRequest::default()).await.expect("list");
    assert_eq!(listed.kvs.len(), 15);
    w.until_revision(written[14].mod_revision).await;
    let got: Vec<_> = w.events.iter().map(|e| &e.kv).collect();
    let want: Vec<_> = written.iter().collect();
    assert_eq!(got, want, "every event once, in order, across the failover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_end_when_the_store_is_dropped() {
    let etcd = start_etcd().await;
    let store = EtcdStore::connect(EtcdOptions::new([etcd.endpoint()]))
        .await
        .expect("connect");
    let mut w = Watcher::new(store.watch("", 0).await.expect("watch"));
    let kv = store.create("a", b"1".to_vec()).await.expect("create");
    w.until_revision(kv.mod_revision).await;
    drop(store);
    loop {
        match w.next().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("dropping the store is not an error: {e}"),
            None => break,
        }
    }
}
