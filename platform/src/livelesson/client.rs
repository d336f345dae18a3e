//! Asking for livelessons: what the API and the operator CLI do on a learner's behalf.
//!
//! A request is validated here (lesson exists, stage in range, session known), written to KV
//! as INITIALIZED, linked from the session (at most one livelesson per lesson), and then put on
//! the scheduler's work queue. Schedulers do the rest.

use async_nats::jetstream;

use super::store::{Change, Store, StoreError};
use super::{
    EndpointState, EndpointStatus, Livelesson, PresentationView, Request, Session, Status, now_ms,
};
use crate::backend::local::random_id;
use crate::bus::{self, Layout, SESSION_HEADER};
use crate::curriculum::Curriculum;
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::rows::Severity;

/// Failures of livelesson requests; each names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unknown lesson `{0}`")]
    UnknownLesson(String),
    #[error("lesson `{lesson}` has {count} stage(s), numbered from 0; there is no stage {stage}")]
    StageOutOfRange {
        lesson: String,
        stage: usize,
        count: usize,
    },
    #[error("unknown session `{0}`")]
    UnknownSession(String),
    #[error("unknown livelesson `{0}`")]
    UnknownLivelesson(String),
    #[error("livelesson `{id}` is {status}; {action} needs READY")]
    NotReady {
        id: String,
        status: Status,
        action: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot queue the request on NATS: {0}")]
    Publish(String),
}

/// A handle for asking for livelessons.
#[derive(Clone)]
pub struct Client {
    pub js: jetstream::Context,
    pub layout: Layout,
    pub store: Store,
    /// Service name on events (`api`, `cli`).
    pub service: String,
}

impl Client {
    /// Sets up the NATS layout (idempotent) and opens the buckets.
    pub async fn new(
        nats: async_nats::Client,
        layout: Layout,
        service: &str,
    ) -> Result<Client, anyhow::Error> {
        let js = jetstream::new(nats);
        bus::ensure(&js, &layout).await?;
        let store = Store::open(&js, &layout).await?;
        Ok(Client {
            js,
            layout,
            store,
            service: service.to_owned(),
        })
    }

    /// Publishes `event`; a failure is logged, never fatal (the action itself succeeded).
    pub async fn event(&self, event: Event) {
        if let Err(e) = bus::publish_event(&self.js, &self.layout, &event).await {
            tracing::warn!(error = %e, kind = %event.kind, "cannot publish event");
        }
    }

    /// Starts a new session.
    pub async fn create_session(&self) -> Result<Session, ClientError> {
        let now = now_ms();
        let session = Session {
            id: random_id(10),
            created_at: now,
            last_active_at: now,
            livelessons: Default::default(),
        };
        self.store.sessions.create(&session.id, &session).await?;
        let mut e = Event::new(kind::SESSION_CREATED, &self.service, Severity::Info);
        e.session_id = session.id.clone();
        self.event(e).await;
        Ok(session)
    }

    /// The session's livelesson for `lesson`, created (and queued) if it has none or only a
    /// FAILED one.
    pub async fn request_livelesson(
        &self,
        curriculum: &Curriculum,
        session_id: &str,
        lesson: &str,
        stage: usize,
    ) -> Result<Livelesson, ClientError> {
        let loaded = curriculum
            .lessons
            .get(lesson)
            .ok_or_else(|| ClientError::UnknownLesson(lesson.to_owned()))?;
        let count = loaded.lesson.stages.len();
        if stage >= count {
            return Err(ClientError::StageOutOfRange {
                lesson: lesson.to_owned(),
                stage,
                count,
            });
        }
        let (session, _) = self
            .store
            .sessions
            .get(session_id)
            .await?
            .ok_or_else(|| ClientError::UnknownSession(session_id.to_owned()))?;
        if let Some(existing) = session.livelessons.get(lesson)
            && let Some((ll, _)) = self.store.livelessons.get(existing).await?
        {
            if ll.status != Status::Failed {
                return Ok(ll);
            }
            // A failed livelesson never blocks the lesson: forget it, start afresh.
            self.store.livelessons.remove(existing).await?;
        }

        let now = now_ms();
        let ll = Livelesson {
            id: random_id(10),
            session_id: session_id.to_owned(),
            lesson: lesson.to_owned(),
            stage,
            status: Status::Initialized,
            error: None,
            endpoints: loaded
                .lesson
                .endpoints
                .iter()
                .map(|e| EndpointState {
                    name: e.name.clone(),
                    image: e.image.clone(),
                    state: EndpointStatus::Pending,
                    instance: String::new(),
                    node: String::new(),
                    presentations: e
                        .presentations
                        .iter()
                        .map(|p| PresentationView {
                            name: p.name.clone(),
                            kind: match p.kind {
                                crate::curriculum::model::PresentationType::Ssh => "ssh".into(),
                                crate::curriculum::model::PresentationType::Http => "http".into(),
                            },
                            port: p.port,
                        })
                        .collect(),
                    reachability_error: None,
                    last_configuration: None,
                })
                .collect(),
            created_at: now,
            last_active_at: now,
            owner: None,
            lease_until: 0,
            traceparent: None,
        };
        self.store.livelessons.create(&ll.id, &ll).await?;
        // Link it from the session unless a concurrent request linked another one first.
        let (winner, _) = self
            .store
            .sessions
            .update(session_id, |s| {
                s.last_active_at = now;
                match s.livelessons.get(lesson) {
                    Some(other) if other != &ll.id && !other.is_empty() => {
                        // Only keep the other one if it still exists (checked below).
                        Change::Keep(Some(other.clone()))
                    }
                    _ => {
                        s.livelessons.insert(lesson.to_owned(), ll.id.clone());
                        Change::Write(None)
                    }
                }
            })
            .await?;
        if let Some(other) = winner {
            if let Some((theirs, _)) = self.store.livelessons.get(&other).await?
                && theirs.status != Status::Failed
            {
                self.store.livelessons.remove(&ll.id).await?;
                return Ok(theirs);
            }
            self.store
                .sessions
                .update(session_id, |s| {
                    s.livelessons.insert(lesson.to_owned(), ll.id.clone());
                    Change::Write(())
                })
                .await?;
        }

        self.queue(
            &Request::Create {
                livelesson_id: ll.id.clone(),
            },
            session_id,
        )
        .await?;
        let mut e = Event::new(kind::LIVELESSON_REQUESTED, &self.service, Severity::Info);
        e.session_id = session_id.to_owned();
        e.lesson = lesson.to_owned();
        e.stage = i16::try_from(stage).unwrap_or(i16::MAX);
        e.livelesson_id = ll.id.clone();
        self.event(e).await;
        Ok(ll)
    }

    /// Moves a READY livelesson to `stage`.
    pub async fn change_stage(
        &self,
        curriculum: &Curriculum,
        livelesson_id: &str,
        stage: usize,
    ) -> Result<(), ClientError> {
        let ll = self.get(livelesson_id).await?;
        let count = curriculum
            .lessons
            .get(&ll.lesson)
            .map(|l| l.lesson.stages.len())
            .unwrap_or(0);
        if stage >= count {
            return Err(ClientError::StageOutOfRange {
                lesson: ll.lesson,
                stage,
                count,
            });
        }
        if ll.status != Status::Ready {
            return Err(ClientError::NotReady {
                id: ll.id,
                status: ll.status,
                action: "a stage change",
            });
        }
        self.queue(
            &Request::ChangeStage {
                livelesson_id: livelesson_id.to_owned(),
                stage,
            },
            &ll.session_id,
        )
        .await
    }

    /// Keeps a livelesson from being collected as idle.
    pub async fn keepalive(&self, livelesson_id: &str) -> Result<(), ClientError> {
        let ll = self.get(livelesson_id).await?;
        self.queue(
            &Request::Keepalive {
                livelesson_id: livelesson_id.to_owned(),
            },
            &ll.session_id,
        )
        .await
    }

    /// Asks for the livelesson to be deleted.
    pub async fn delete(&self, livelesson_id: &str, reason: &str) -> Result<(), ClientError> {
        let ll = self.get(livelesson_id).await?;
        self.queue(
            &Request::Delete {
                livelesson_id: livelesson_id.to_owned(),
                reason: reason.to_owned(),
            },
            &ll.session_id,
        )
        .await
    }

    /// The livelesson, or `UnknownLivelesson` (also for what cannot be an ID at all).
    pub async fn get(&self, livelesson_id: &str) -> Result<Livelesson, ClientError> {
        if !crate::backend::local::is_id(livelesson_id, 10) {
            return Err(ClientError::UnknownLivelesson(livelesson_id.to_owned()));
        }
        self.store
            .livelessons
            .get(livelesson_id)
            .await?
            .map(|(ll, _)| ll)
            .ok_or_else(|| ClientError::UnknownLivelesson(livelesson_id.to_owned()))
    }

    async fn queue(&self, request: &Request, session_id: &str) -> Result<(), ClientError> {
        let payload =
            serde_json::to_vec(request).map_err(|e| ClientError::Publish(e.to_string()))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(SESSION_HEADER, session_id);
        // The scheduler's work continues this trace (one trace per learner action).
        antidote_telemetry::setup::inject_nats(&mut headers);
        self.js
            .publish_with_headers(self.layout.livelesson_requests(), headers, payload.into())
            .await
            .map_err(|e| ClientError::Publish(e.to_string()))?
            .await
            .map_err(|e| ClientError::Publish(e.to_string()))?;
        Ok(())
    }
}
