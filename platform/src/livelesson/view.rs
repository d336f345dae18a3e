//! A live in-memory copy of a KV bucket for readers that ask often (the api role answers
//! every lesson page's polling from it): a watch with history fills it with the last value of
//! every key and then applies each change as it happens.
//!
//! It is a cache, never the truth: a key it does not hold is looked up in KV
//! ([`View::get`]), and writers always go to KV with revision checks. A hit may trail the
//! latest write by the watch's delivery delay (milliseconds); when the watch breaks, the copy
//! is dropped and every read goes to KV until a new watch has caught up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::store::{Bucket, StoreError};

/// An in-memory copy of a bucket of `T`. Cheap to clone.
pub struct View<T> {
    bucket: Bucket<T>,
    shared: Arc<Shared<T>>,
}

impl<T> Clone for View<T> {
    fn clone(&self) -> Self {
        View {
            bucket: self.bucket.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<T> {
    values: RwLock<HashMap<String, Arc<T>>>,
    /// True while a watch runs and has delivered the bucket's history.
    current: AtomicBool,
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> View<T> {
    /// Starts following `bucket` until `shutdown`.
    pub fn follow(bucket: Bucket<T>, shutdown: CancellationToken) -> View<T> {
        let view = View {
            bucket,
            shared: Arc::new(Shared {
                values: RwLock::new(HashMap::new()),
                current: AtomicBool::new(false),
            }),
        };
        let follower = view.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = follower.run() => {}
            }
        });
        view
    }

    /// The value of `key`: from memory when the copy holds it, from KV otherwise.
    pub async fn get(&self, key: &str) -> Result<Option<Arc<T>>, StoreError> {
        if let Some(v) = self.cached(key) {
            return Ok(Some(v));
        }
        Ok(self.bucket.get(key).await?.map(|(v, _)| Arc::new(v)))
    }

    /// The copy's value of `key`, if it holds one and is current.
    pub fn cached(&self, key: &str) -> Option<Arc<T>> {
        if !self.shared.current.load(Ordering::Acquire) {
            return None;
        }
        self.shared
            .values
            .read()
            .ok()
            .and_then(|m| m.get(key).cloned())
    }

    /// Every value: from memory when the copy is current, from KV otherwise.
    pub async fn values(&self) -> Result<Vec<Arc<T>>, StoreError> {
        if self.shared.current.load(Ordering::Acquire)
            && let Ok(map) = self.shared.values.read()
        {
            return Ok(map.values().cloned().collect());
        }
        Ok(self
            .bucket
            .values()
            .await?
            .into_iter()
            .map(Arc::new)
            .collect())
    }

    async fn run(&self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.bucket.watch_history(">").await {
                Ok(watch) => {
                    backoff = Duration::from_millis(100);
                    self.apply(watch).await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot watch the bucket; reading from KV"),
            }
            self.reset();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Applies the watch's entries until it ends.
    async fn apply(&self, mut watch: kv::Watch) {
        while let Some(entry) = watch.next().await {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "bucket watch failed; reading from KV");
                    return;
                }
            };
            let value = match self.bucket.decode_entry(&entry) {
                Ok(v) => v.map(Arc::new),
                // An unreadable value is not cached: readers get the error from KV.
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable entry");
                    None
                }
            };
            if let Ok(mut map) = self.shared.values.write() {
                match value {
                    Some(v) => map.insert(entry.key.clone(), v),
                    None => map.remove(&entry.key),
                };
            }
            if entry.seen_current || entry.delta == 0 {
                self.shared.current.store(true, Ordering::Release);
            }
        }
    }

    fn reset(&self) {
        self.shared.current.store(false, Ordering::Release);
        if let Ok(mut map) = self.shared.values.write() {
            map.clear();
        }
    }
}
