//! Typed, revision-checked access to the `livelessons` and `sessions` KV buckets.
//!
//! Every change is read → modify → write-if-revision-unchanged, retried on conflict, so
//! concurrent writers (schedulers, API replicas) never lose each other's updates.

use std::marker::PhantomData;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Livelesson, Session};
use crate::bus::Layout;

/// Failures of KV access.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key-value bucket {bucket}: {message}")]
    Kv { bucket: String, message: String },
    #[error("{bucket}/{key} holds unreadable data: {error}")]
    Corrupt {
        bucket: String,
        key: String,
        error: String,
    },
    #[error("{bucket}/{key} already exists")]
    Exists { bucket: String, key: String },
    #[error("{bucket}/{key} does not exist")]
    NotFound { bucket: String, key: String },
    #[error("{bucket}/{key} kept changing under concurrent writers")]
    Contended { bucket: String, key: String },
}

/// A bucket of JSON values of type `T`.
pub struct Bucket<T> {
    kv: kv::Store,
    name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Bucket<T> {
    fn clone(&self) -> Self {
        Bucket {
            kv: self.kv.clone(),
            name: self.name.clone(),
            _t: PhantomData,
        }
    }
}

/// What an update closure decided.
pub enum Change<R> {
    /// Write the modified value and return `R`.
    Write(R),
    /// Leave the value as it is and return `R`.
    Keep(R),
}

impl<T: Serialize + DeserializeOwned> Bucket<T> {
    async fn open(js: &jetstream::Context, name: String) -> Result<Bucket<T>, StoreError> {
        let kv = js.get_key_value(&name).await.map_err(|e| StoreError::Kv {
            bucket: name.clone(),
            message: e.to_string(),
        })?;
        Ok(Bucket {
            kv,
            name,
            _t: PhantomData,
        })
    }

    fn kv_err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Kv {
            bucket: self.name.clone(),
            message: e.to_string(),
        }
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            bucket: self.name.clone(),
            key: key.to_owned(),
            error: e.to_string(),
        })
    }

    fn encode(&self, value: &T) -> Result<bytes::Bytes, StoreError> {
        serde_json::to_vec(value)
            .map(Into::into)
            .map_err(|e| self.kv_err(e))
    }

    /// The value and its revision, if the key exists.
    pub async fn get(&self, key: &str) -> Result<Option<(T, u64)>, StoreError> {
        match self.kv.entry(key).await.map_err(|e| self.kv_err(e))? {
            Some(entry) if entry.operation == kv::Operation::Put => {
                Ok(Some((self.decode(key, &entry.value)?, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Writes `value` under a key that must not exist yet.
    pub async fn create(&self, key: &str, value: &T) -> Result<u64, StoreError> {
        let bytes = self.encode(value)?;
        self.kv.create(key, bytes).await.map_err(|e| {
            if e.kind() == kv::CreateErrorKind::AlreadyExists {
                StoreError::Exists {
                    bucket: self.name.clone(),
                    key: key.to_owned(),
                }
            } else {
                self.kv_err(e)
            }
        })
    }

    /// Applies `f` to the current value and writes the result if nobody wrote in between;
    /// retries from a fresh read otherwise.
    pub async fn update<R>(
        &self,
        key: &str,
        mut f: impl FnMut(&mut T) -> Change<R>,
    ) -> Result<(R, T), StoreError> {
        for _ in 0..50 {
            let Some((mut value, revision)) = self.get(key).await? else {
                return Err(StoreError::NotFound {
                    bucket: self.name.clone(),
                    key: key.to_owned(),
                });
            };
            match f(&mut value) {
                Change::Keep(r) => return Ok((r, value)),
                Change::Write(r) => {
                    let bytes = self.encode(&value)?;
                    match self.kv.update(key, bytes, revision).await {
                        Ok(_) => return Ok((r, value)),
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        }
                        Err(e) => return Err(self.kv_err(e)),
                    }
                }
            }
        }
        Err(StoreError::Contended {
            bucket: self.name.clone(),
            key: key.to_owned(),
        })
    }

    /// Removes the key (and its history).
    pub async fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.kv.purge(key).await.map_err(|e| self.kv_err(e))
    }

    /// Every key currently present.
    pub async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let mut keys = self.kv.keys().await.map_err(|e| self.kv_err(e))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            out.push(k.map_err(|e| self.kv_err(e))?);
        }
        out.sort();
        Ok(out)
    }

    /// Every value currently present.
    pub async fn values(&self) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for k in self.keys().await? {
            if let Some((v, _)) = self.get(&k).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// A stream of changes to `key` from now on (read the current value after starting it).
    pub async fn watch(&self, key: &str) -> Result<kv::Watch, StoreError> {
        self.kv.watch(key).await.map_err(|e| self.kv_err(e))
    }

    /// The last value of every key matching `keys` (`>`: all), then every change.
    pub async fn watch_history(&self, keys: &str) -> Result<kv::Watch, StoreError> {
        self.kv
            .watch_with_history(keys)
            .await
            .map_err(|e| self.kv_err(e))
    }

    /// Decodes a watched entry: `None` when the key was deleted.
    pub fn decode_entry(&self, entry: &kv::Entry) -> Result<Option<T>, StoreError> {
        if entry.operation == kv::Operation::Put {
            self.decode(&entry.key, &entry.value).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Both buckets.
#[derive(Clone)]
pub struct Store {
    pub livelessons: Bucket<Livelesson>,
    pub sessions: Bucket<Session>,
}

impl Store {
    /// Opens the buckets of `layout` (created by [`crate::bus::ensure`]).
    pub async fn open(js: &jetstream::Context, layout: &Layout) -> Result<Store, StoreError> {
        Ok(Store {
            livelessons: Bucket::open(js, layout.livelessons_bucket()).await?,
            sessions: Bucket::open(js, layout.sessions_bucket()).await?,
        })
    }
}
