//! Backends realise a livelesson's endpoints and links on real infrastructure.
//!
//! The scheduler drives the provisioning steps of DESIGN §6 — create endpoints, create links,
//! wait until reachable, configure, verify, delete — through the [`Backend`] trait and knows
//! nothing about Linux namespaces or Kubernetes. Each step is one call so the scheduler can
//! time it, trace it and publish an event for it per endpoint instance.

pub mod local;
pub mod ssh;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::curriculum::model::{Endpoint, Image, Lesson};

/// Everything a backend needs to know about one livelesson.
#[derive(Debug, Clone)]
pub struct LivelessonSpec {
    pub livelesson_id: String,
    pub session_id: String,
    pub lesson: Lesson,
    /// The lesson's directory (holds `stage<N>/`), copied to `/antidote` in every endpoint.
    pub lesson_dir: PathBuf,
    /// The images the lesson's endpoints use, by slug.
    pub images: BTreeMap<String, Image>,
}

impl LivelessonSpec {
    /// The spec of livelesson `livelesson_id` of `lesson`, or `None` when the curriculum has
    /// no such (valid) lesson.
    pub fn for_lesson(
        curriculum: &crate::curriculum::Curriculum,
        livelesson_id: &str,
        session_id: &str,
        lesson: &str,
    ) -> Option<LivelessonSpec> {
        let loaded = curriculum.lessons.get(lesson)?;
        Some(LivelessonSpec {
            livelesson_id: livelesson_id.to_owned(),
            session_id: session_id.to_owned(),
            lesson: loaded.lesson.clone(),
            lesson_dir: loaded.dir.clone(),
            images: curriculum.images.clone(),
        })
    }

    /// The endpoint called `name`.
    pub fn endpoint(&self, name: &str) -> Result<&Endpoint, BackendError> {
        self.lesson
            .endpoints
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| BackendError::UnknownEndpoint(name.to_owned()))
    }

    /// The image of the endpoint called `name`.
    pub fn image_of(&self, name: &str) -> Result<&Image, BackendError> {
        let ep = self.endpoint(name)?;
        self.images
            .get(&ep.image)
            .ok_or_else(|| BackendError::UnknownImage(ep.image.clone()))
    }

    /// Interface name of `endpoint`'s `n`-th connection (in lesson order): the image's
    /// `networkInterfaces[n]`, else `eth<n+1>`.
    pub fn interface_name(&self, endpoint: &str, n: usize) -> String {
        self.image_of(endpoint)
            .ok()
            .and_then(|i| i.network_interfaces.get(n).cloned())
            .unwrap_or_else(|| format!("eth{}", n + 1))
    }
}

/// One endpoint as the backend realised it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointInstance {
    pub endpoint: String,
    /// Backend's concrete name (local: the network namespace; Kubernetes: namespace/pod).
    pub instance: String,
    /// Host or Kubernetes node.
    pub node: String,
}

/// Output of a command run inside an endpoint (configuration or verify).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandRun {
    /// Exit status; `None` when the command timed out or was killed.
    pub exit_code: Option<i32>,
    /// Standard output and error, interleaved, at most [`OUTPUT_LIMIT`] bytes (the tail).
    pub output: String,
    pub duration_ms: u64,
}

impl CommandRun {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// The exit code as events carry it: the number, or `none` when there was none.
    pub fn exit_code_text(&self) -> String {
        self.exit_code.map_or("none".to_owned(), |c| c.to_string())
    }

    /// The last `chars` characters of the output (what events carry).
    pub fn output_tail(&self, chars: usize) -> String {
        let count = self.output.chars().count();
        self.output
            .chars()
            .skip(count.saturating_sub(chars))
            .collect()
    }
}

/// How much command output is kept (the end of it, where errors are).
pub const OUTPUT_LIMIT: usize = 16 * 1024;

/// The last `limit` bytes of `text` (cut on a character boundary).
pub fn tail(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// An instance found on the infrastructure, for sweeps and `lesson list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub livelesson_id: String,
    pub endpoint: String,
    pub instance: String,
}

/// Failures of backend operations.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("endpoint `{0}` is not part of the lesson")]
    UnknownEndpoint(String),
    #[error("image `{0}` is not in the curriculum")]
    UnknownImage(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("endpoint `{endpoint}` failed to start: {message}")]
    EndpointFailed { endpoint: String, message: String },
    #[error("{what} failed: {message}")]
    Command { what: String, message: String },
    #[error("endpoint `{endpoint}` is not running")]
    NotRunning { endpoint: String },
    #[error("{endpoint}:{port} is not reachable: {message}")]
    Unreachable {
        endpoint: String,
        port: u16,
        message: String,
    },
    #[error("configuration of `{endpoint}` is not possible: {message}")]
    Configuration { endpoint: String, message: String },
    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl BackendError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackendError {
        let context = context.into();
        move |source| BackendError::Io { context, source }
    }
}

/// The operations the scheduler needs from a backend.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Short name (`local`, `kubernetes`) for events and metrics.
    fn name(&self) -> &'static str;

    /// Why `lesson` cannot run on this backend, or `None` when it can.
    fn unavailable_reason(
        &self,
        lesson: &Lesson,
        images: &BTreeMap<String, Image>,
    ) -> Option<String>;

    /// Starts one endpoint of the livelesson (and the livelesson's shared parts on first use).
    async fn create_endpoint(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
    ) -> Result<EndpointInstance, BackendError>;

    /// Creates every connection of the lesson between the (created) endpoints.
    async fn create_links(&self, spec: &LivelessonSpec) -> Result<(), BackendError>;

    /// One reachability attempt of a presentation port (SSH handshake for ssh, TCP otherwise).
    async fn check_reachable(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
        port: u16,
        ssh: bool,
    ) -> Result<(), BackendError>;

    /// Applies `stage`'s configuration to `endpoint` (which has a `configurationType`).
    async fn configure(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
        stage: usize,
        timeout: Duration,
    ) -> Result<CommandRun, BackendError>;

    /// Runs a shell command inside `endpoint` as root (verify checks).
    async fn exec(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandRun, BackendError>;

    /// A TCP connection to `port` of `endpoint` through the platform's management path.
    async fn connect(
        &self,
        livelesson_id: &str,
        endpoint: &str,
        port: u16,
    ) -> Result<tokio::net::TcpStream, BackendError>;

    /// Removes every trace of the livelesson. Idempotent.
    async fn delete(&self, livelesson_id: &str) -> Result<(), BackendError>;

    /// Every instance of this installation that exists now.
    async fn list_instances(&self) -> Result<Vec<InstanceInfo>, BackendError>;
}
