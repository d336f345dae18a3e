//! Livelessons and sessions as stored in the KV buckets, and the requests that change them.
//!
//! The state machine of DESIGN §6: `INITIALIZED → BOOTING → CONFIGURING → READY`, `FAILED`
//! (with `error.phase` and `error.message`) from any of them, and `READY → CONFIGURING → READY`
//! for a stage change. Every write goes through [`store::Store`], which checks KV revisions so
//! two writers never silently overwrite each other.

pub mod client;
pub mod store;
pub mod view;

use serde::{Deserialize, Serialize};

use crate::backend::CommandRun;

/// Livelesson states (contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Initialized,
    Booting,
    Configuring,
    Ready,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initialized => "INITIALIZED",
            Status::Booting => "BOOTING",
            Status::Configuring => "CONFIGURING",
            Status::Ready => "READY",
            Status::Failed => "FAILED",
        }
    }

    /// Whether a scheduler is (or should be) working on it.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            Status::Initialized | Status::Booting | Status::Configuring
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a livelesson failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    /// The provisioning step: `create`, `link`, `reachability`, `configure`, `interrupted`, ...
    pub phase: String,
    pub message: String,
}

/// Progress of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Pending,
    Created,
    Reachable,
    Configuring,
    Configured,
    Failed,
}

/// A presentation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresentationView {
    pub name: String,
    /// `ssh` or `http`.
    #[serde(rename = "type")]
    pub kind: String,
    pub port: u16,
}

/// One endpoint of a livelesson.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    pub name: String,
    pub image: String,
    pub state: EndpointStatus,
    /// Backend's instance name, once created.
    #[serde(default)]
    pub instance: String,
    #[serde(default)]
    pub node: String,
    pub presentations: Vec<PresentationView>,
    /// The last reachability failure, if any (kept for triage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachability_error: Option<String>,
    /// The last configuration run (exit code and output tail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_configuration: Option<CommandRun>,
}

/// A livelesson: the key in the `livelessons` bucket is its ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Livelesson {
    pub id: String,
    pub session_id: String,
    pub lesson: String,
    pub stage: usize,
    pub status: Status,
    #[serde(default)]
    pub error: Option<Failure>,
    pub endpoints: Vec<EndpointState>,
    /// Unix milliseconds.
    pub created_at: u64,
    pub last_active_at: u64,
    /// The scheduler working on it while in flight, and until when its claim holds.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub lease_until: u64,
    /// W3C trace context of the request that created it (for the scheduler's spans).
    #[serde(default)]
    pub traceparent: Option<String>,
}

impl Livelesson {
    pub fn endpoint_mut(&mut self, name: &str) -> Option<&mut EndpointState> {
        self.endpoints.iter_mut().find(|e| e.name == name)
    }

    /// "N of M endpoints reachable" for progress displays.
    pub fn reachable_count(&self) -> (usize, usize) {
        let n = self
            .endpoints
            .iter()
            .filter(|e| {
                matches!(
                    e.state,
                    EndpointStatus::Reachable
                        | EndpointStatus::Configuring
                        | EndpointStatus::Configured
                )
            })
            .count();
        (n, self.endpoints.len())
    }
}

/// A learner's (or operator's) session: the key in the `sessions` bucket is its ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub created_at: u64,
    pub last_active_at: u64,
    /// Lesson slug → livelesson ID: at most one livelesson per lesson.
    #[serde(default)]
    pub livelessons: std::collections::BTreeMap<String, String>,
}

/// A message on `antidote.livelesson.requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Provision a livelesson already written to KV as INITIALIZED.
    Create {
        livelesson_id: String,
    },
    ChangeStage {
        livelesson_id: String,
        stage: usize,
    },
    Keepalive {
        livelesson_id: String,
    },
    Delete {
        livelesson_id: String,
        /// `learner`, `gc`, `maintainer`, `operator`.
        reason: String,
    },
}

impl Request {
    pub fn livelesson_id(&self) -> &str {
        match self {
            Request::Create { livelesson_id }
            | Request::ChangeStage { livelesson_id, .. }
            | Request::Keepalive { livelesson_id }
            | Request::Delete { livelesson_id, .. } => livelesson_id,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_as_the_contract_says() {
        for s in [
            Status::Initialized,
            Status::Booting,
            Status::Configuring,
            Status::Ready,
            Status::Failed,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }

    #[test]
    fn requests_are_tagged_json() {
        let r = Request::ChangeStage {
            livelesson_id: "abcdefghij".into(),
            stage: 2,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"type":"change_stage","livelesson_id":"abcdefghij","stage":2}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), r);
    }
}
