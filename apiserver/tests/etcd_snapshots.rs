//! EtcdStore snapshots against real etcd: taken from a live member when the
//! first one is dead, and with authentication on, refused for a user without
//! etcd's root role with a message saying so (etcd serves its Snapshot API
//! only to root), taken for root. Each test runs its own etcd.

use crate::common;

use apiserver::snapshots::file::{Kind, verify};
use apiserver::store::{EtcdAuth, EtcdOptions, EtcdStore, Store};
use common::etcd::{EtcdCluster, EtcdProcess};
use etcd_client::{Client, Permission};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_comes_from_a_live_member_when_the_first_is_dead() {
    let mut cluster = EtcdCluster::start(3)
        .await
        .unwrap_or_else(|e| panic!("cannot start a 3-member etcd cluster: {e}"));
    let store = EtcdStore::connect(EtcdOptions::new(cluster.endpoints()))
        .await
        .expect("connect");
    for i in 0..20 {
        store
            .create(&format!("configmaps/default/c{i}"), b"{}".to_vec())
            .await
            .expect("create");
    }
    cluster.members[0].kill();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut n = 0;
    // the two left may be electing a leader for a moment: try until one answers
    common::eventually("a snapshot from a live member", || {
        n += 1;
        let dest = dir.path().join(format!("snap-{n}"));
        let store = &store;
        async move {
            match store.snapshot(&dest).await {
                Ok(written) => {
                    assert_eq!(written.backend, "etcd");
                    assert!(written.revision > 20, "{written:?}");
                    assert_eq!(verify(&dest).expect("whole").kind, Kind::Etcd);
                    true
                }
                Err(e) => {
                    assert!(!dest.exists(), "a failed snapshot leaves no file: {e}");
                    false
                }
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_only_etcds_root_may_snapshot() {
    let etcd = EtcdProcess::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
    let mut raw = Client::connect([etcd.endpoint()], None)
        .await
        .expect("raw client");
    raw.user_add("root", "r00t", None).await.expect("root user");
    let _ = raw.role_add("root").await;
    raw.user_grant_role("root", "root")
        .await
        .expect("grant root");
    raw.role_add("korral").await.expect("korral role");
    raw.role_grant_permission("korral", Permission::read_write("/registry/").with_prefix())
        .await
        .expect("grant /registry/");
    raw.user_add("korral", "pw", None)
        .await
        .expect("korral user");
    raw.user_grant_role("korral", "korral")
        .await
        .expect("grant korral");
    raw.auth_enable().await.expect("auth on");

    let as_user = |user: &str, password: &str| {
        let mut o = EtcdOptions::new([etcd.endpoint()]);
        o.auth = Some(EtcdAuth {
            user: user.into(),
            password: password.into(),
        });
        o
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let limited = EtcdStore::connect(as_user("korral", "pw"))
        .await
        .expect("connect as korral");
    limited.create("k", b"v".to_vec()).await.expect("create");
    let dest = dir.path().join("refused");
    let err = limited
        .snapshot(&dest)
        .await
        .expect_err("not root")
        .to_string();
    assert!(err.contains("root role"), "{err}");
    assert!(!dest.exists());

    let root = EtcdStore::connect(as_user("root", "r00t"))
        .await
        .expect("connect as root");
    let dest = dir.path().join("taken");
    root.snapshot(&dest).await.expect("root may");
    assert_eq!(verify(&dest).expect("whole").kind, Kind::Etcd);
}
