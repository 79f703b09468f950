//! EtcdStore's snapshots: etcd's maintenance `Snapshot` stream (the member's
//! whole backend followed by its SHA-256) written to a file as it arrives,
//! then checked, so the file is exactly what `etcdctl snapshot save` writes
//! and `etcdctl snapshot restore` reads.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::EtcdStore;
use super::convert::map_err;
use super::pool::Retry;
use crate::store::{Revision, Store, StoreError};

/// Streams a snapshot from the preferred member (another one if it cannot be
/// reached) into `dest`; returns the store's revision read just before it
/// began (etcd 3.4 puts no revision on snapshot messages): the snapshot holds
/// every write up to it, and perhaps writes racing its start.
pub(super) async fn write(store: &EtcdStore, dest: &Path) -> Result<Revision, StoreError> {
    if dest.exists() {
        return Err(StoreError::Internal(format!(
            "writing snapshot {}: the file exists",
            dest.display()
        )));
    }
    let revision = store.current_revision().await?;
    store
        .pool
        .call(Retry::Read, |client| {
            let dest: PathBuf = dest.to_path_buf();
            async move { stream_to(client, &dest).await }
        })
        .await
        .map_err(|e| {
            let _ = std::fs::remove_file(dest);
            // etcd serves snapshots only to its root role when auth is on
            if e.to_string().contains("permission denied") {
                return StoreError::Internal(format!(
                    "etcd refused the snapshot ({e}): with authentication on, etcd's Snapshot \
                     API needs a user with the root role (korral's --etcd-user has not)"
                ));
            }
            map_err(e, "taking an etcd snapshot")
        })?;
    // hashing reads the whole file: off tokio's worker threads
    let path = dest.to_path_buf();
    let verified = tokio::task::spawn_blocking(move || crate::snapshots::file::verify(&path))
        .await
        .map_err(|e| StoreError::Internal(format!("the snapshot check failed: {e}")))?
        .map_err(|e| {
            let _ = std::fs::remove_file(dest);
            StoreError::Internal(format!("etcd sent a bad snapshot: {e}"))
        })?;
    tracing::info!(path = %dest.display(), revision, bytes = verified.payload_len, "wrote etcd snapshot");
    Ok(revision)
}

async fn stream_to(mut client: etcd_client::Client, dest: &Path) -> Result<(), etcd_client::Error> {
    let mut stream = client.snapshot().await?;
    // created here (truncating what an attempt on another member left)
    let _ = tokio::fs::remove_file(dest).await;
    let file = crate::snapshots::file::create_private(dest).map_err(etcd_client::Error::IoError)?;
    let mut file = tokio::fs::File::from_std(file);
    while let Some(message) = stream.message().await? {
        file.write_all(message.blob())
            .await
            .map_err(etcd_client::Error::IoError)?;
    }
    file.sync_all().await.map_err(etcd_client::Error::IoError)
}
