//! Certificates replaced on disk are picked up without a restart: their
//! files are checked every second, and a change reloads, through the same
//! pipeline (and the same checks) as a config change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::reload::Reloader;
use crate::Active;

/// A file as seen on disk: replaced by rename, it has a new inode;
/// rewritten, a new length or modification time.
type FileState = (PathBuf, Option<(u64, u64, Option<SystemTime>)>);

fn state(active: &Active) -> Vec<FileState> {
    use std::os::unix::fs::MetadataExt;
    let Some(tls) = &active.config.tls else {
        return Vec::new();
    };
    tls.files()
        .map(|p| {
            let m = std::fs::metadata(p)
                .ok()
                .map(|m| (m.ino(), m.len(), m.modified().ok()));
            (p.to_path_buf(), m)
        })
        .collect()
}

pub struct CertWatch {
    pub active: Arc<ArcSwap<Active>>,
    pub reloader: Arc<Reloader>,
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for CertWatch {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        let mut last = state(&self.active.load());
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let now = state(&self.active.load());
            if now != last {
                // A pair being replaced may be caught half written: the
                // reload refuses it and the next change reloads again.
                let _ = self.reloader.reload("certificate change").await;
                last = state(&self.active.load());
            }
        }
    }
}
