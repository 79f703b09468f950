//! Watching a folder source: file-system events under the folder,
//! debounced (an editor's save-via-rename is several events), each burst
//! calling back once. Events can be lost, so the reconciler also rescans
//! on its interval; this only makes changes show up at once.

use std::path::Path;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

/// A running watch; stops when dropped.
pub struct FolderWatch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

impl FolderWatch {
    /// Watches `dir` recursively; `on_change` runs (on the watcher's thread)
    /// after each burst of events settles for `debounce`.
    pub fn start(
        dir: &Path,
        debounce: Duration,
        on_change: impl Fn() + Send + 'static,
    ) -> Result<FolderWatch, notify::Error> {
        let mut debouncer = new_debouncer(debounce, None, move |res: DebounceEventResult| {
            match res {
                Ok(events) if !events.is_empty() => on_change(),
                Ok(_) => {}
                Err(errors) => {
                    for e in errors {
                        tracing::warn!(error = %e, "folder watch error");
                    }
                    // something may have been missed: rescan
                    on_change();
                }
            }
        })?;
        debouncer.watch(dir, RecursiveMode::Recursive)?;
        Ok(FolderWatch {
            _debouncer: debouncer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_save_via_rename_is_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("app.yaml"), "a: 1\n").expect("write");
        let (tx, rx) = mpsc::channel();
        let _w = FolderWatch::start(dir.path(), Duration::from_millis(100), move || {
            let _ = tx.send(());
        })
        .expect("watch");
        // what vim and many editors do: write a temporary file, rename it over the original
        let tmp = dir.path().join(".app.yaml.swp");
        std::fs::write(&tmp, "a: 2\n").expect("write tmp");
        std::fs::rename(&tmp, dir.path().join("app.yaml")).expect("rename");
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a change notification within 5 s");
    }
}
