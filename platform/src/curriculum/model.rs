//! The curriculum model: the NRE Labs file formats as Rust types, plus our optional extensions.
//!
//! Field names and meanings are NRE Labs' (`lesson.meta.yaml`, `image.meta.yaml`,
//! `collection.meta.yaml`, `curriculum.meta.yaml`), so the real NRE Labs curriculum loads
//! unchanged. Our extensions (`verify`, `hints`, `solution` per stage; `local` and `kubernetes`
//! per image; the `frr` and `shell` configuration types) are optional keys.
//!
//! These types are the single source of truth: their derived JSON Schema is what the validator
//! enforces and what `antidote schema` prints.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Slugs of lessons, images and collections (lower case words joined by dashes).
pub const SLUG_PATTERN: &str = "^[a-z0-9]+(-[a-z0-9]+)*$";
/// Endpoint names: usable as host names and Kubernetes object names.
pub const ENDPOINT_NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$";
/// Presentation names.
pub const PRESENTATION_NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9_-]{0,30}[a-z0-9])?$";
/// Configuration types: NRE Labs' `napalm` (optionally `napalm-<driver>`), `python`, `ansible`,
/// and ours, `frr` (a vtysh configuration) and `shell` (a script run on the endpoint).
pub const CONFIGURATION_TYPE_PATTERN: &str = "^(napalm(-[a-z_]+)?|python|ansible|frr|shell)$";
/// An IPv4 network in CIDR notation (the address itself is checked after the pattern).
pub const SUBNET_PATTERN: &str = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$";

/// What a pattern means, for error messages (a regular expression is no help to an author).
pub fn pattern_hint(pattern: &str) -> Option<&'static str> {
    match pattern {
        SLUG_PATTERN => Some("use lower-case letters and digits, words joined by single dashes"),
        ENDPOINT_NAME_PATTERN => Some(
            "use 1 to 32 lower-case letters, digits and dashes, starting and ending with a letter or digit",
        ),
        PRESENTATION_NAME_PATTERN => Some(
            "use 1 to 32 lower-case letters, digits, dashes and underscores, starting and ending with a letter or digit",
        ),
        CONFIGURATION_TYPE_PATTERN => {
            Some("use napalm (or napalm-<driver>), python, ansible, frr or shell")
        }
        SUBNET_PATTERN => Some("write an IPv4 network as a.b.c.d/len, e.g. 10.12.0.0/24"),
        _ => None,
    }
}

/// A lesson: `lessons/<dir>/lesson.meta.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    title = "Antidote lesson",
    description = "lessons/<lesson>/lesson.meta.yaml of an Antidote (NRE Labs compatible) curriculum"
)]
pub struct Lesson {
    /// Human-readable name of the lesson.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Unique identifier, used in URLs.
    #[schemars(pattern(SLUG_PATTERN))]
    pub slug: String,
    /// Where the lesson appears in the catalog.
    pub category: Category,
    /// Where the lesson may be served (`local`, `ptr` or `prod`).
    pub tier: Tier,
    /// What the learner will learn.
    #[schemars(length(min = 1))]
    pub description: String,
    /// A few words for catalog cards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
    /// Slugs of lessons to take first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prereqs: Vec<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Slug of the collection the lesson belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// URL of a topology diagram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagram: Option<String>,
    /// URL of a lesson video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// The lesson's authors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<Author>,
    /// Seconds to wait after every endpoint is reachable and configured before READY.
    #[serde(default)]
    #[schemars(range(max = 600))]
    pub ready_delay: u32,
    /// The stages, in order; stage N's files live in `stage<N>/`.
    #[schemars(length(min = 1))]
    pub stages: Vec<Stage>,
    /// The devices and hosts of the lesson's topology.
    #[schemars(length(min = 1))]
    pub endpoints: Vec<Endpoint>,
    /// Point-to-point links between endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<Connection>,
}

/// Catalog categories of NRE Labs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Fundamentals,
    Tools,
    Workflows,
}

/// Where a lesson or collection may be served.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Local,
    Ptr,
    Prod,
}

/// A lesson author.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Author {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// One stage of a lesson.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Stage {
    /// Title of the stage.
    #[schemars(length(min = 1))]
    pub description: String,
    /// `markdown` (stage<N>/guide.md) or `jupyter` (stage<N>/guide.ipynb).
    pub guide_type: GuideType,
    /// URL of a video for this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_video: Option<String>,
    /// Antidote extension: a check the learner can run to see whether the stage is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    /// Antidote extension: hints shown one at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// Antidote extension: the solution, shown on request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
}

/// Kinds of stage guides.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GuideType {
    Markdown,
    Jupyter,
}

impl GuideType {
    /// The guide's file name inside `stage<N>/`.
    pub fn file_name(self) -> &'static str {
        match self {
            GuideType::Markdown => "guide.md",
            GuideType::Jupyter => "guide.ipynb",
        }
    }
}

/// A stage check: a command run on an endpoint; it passes when it exits 0.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Verify {
    /// The endpoint the command runs on.
    #[schemars(pattern(ENDPOINT_NAME_PATTERN))]
    pub endpoint: String,
    /// A shell command; exit status 0 means the stage is done.
    #[schemars(length(min = 1))]
    pub command: String,
    /// What the check looks at, shown on the button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Shown with the command's output when the check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_hint: Option<String>,
    /// Seconds before the check counts as failed.
    #[serde(default = "default_verify_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout: u32,
}

fn default_verify_timeout() -> u32 {
    20
}

/// A device or host of the lesson's topology.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpoint {
    /// Unique within the lesson.
    #[schemars(pattern(ENDPOINT_NAME_PATTERN))]
    pub name: String,
    /// Slug of an image in `images/`.
    #[schemars(pattern(SLUG_PATTERN))]
    pub image: String,
    /// How each stage's configuration is applied; needs `stage<N>/configs/<name>.<ext>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(CONFIGURATION_TYPE_PATTERN))]
    pub configuration_type: Option<String>,
    /// Ports to open that no presentation names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1)))]
    pub additional_ports: Vec<u16>,
    /// How the learner reaches the endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presentations: Vec<Presentation>,
}

/// A way into an endpoint: a terminal (ssh) or a web page (http).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Presentation {
    /// Unique within the endpoint.
    #[schemars(pattern(PRESENTATION_NAME_PATTERN))]
    pub name: String,
    /// TCP port inside the endpoint.
    #[schemars(range(min = 1))]
    pub port: u16,
    /// `ssh` or `http`.
    #[serde(rename = "type")]
    pub kind: PresentationType,
}

/// Kinds of presentation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PresentationType {
    Ssh,
    Http,
}

/// A point-to-point link between two endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    #[schemars(pattern(ENDPOINT_NAME_PATTERN))]
    pub a: String,
    #[schemars(pattern(ENDPOINT_NAME_PATTERN))]
    pub b: String,
    /// IPv4 subnet the two ends are addressed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(SUBNET_PATTERN))]
    pub subnet: Option<String>,
}

/// An image: `images/<slug>/image.meta.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    title = "Antidote image",
    description = "images/<image>/image.meta.yaml"
)]
pub struct Image {
    #[schemars(pattern(SLUG_PATTERN))]
    pub slug: String,
    #[serde(default)]
    pub description: String,
    /// `trusted` images may run with more privileges.
    #[serde(default)]
    pub flavor: Flavor,
    /// Whether the endpoint routes between its interfaces.
    #[serde(default)]
    pub enable_forwarding: bool,
    /// Interface names inside the endpoint, in connection order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_password: Option<String>,
    /// Antidote extension: how the local backend realises this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalImage>,
    /// Antidote extension: how the Kubernetes backend realises this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesImage>,
}

impl Image {
    /// The SSH user and password learners (and the platform) log in with; NRE Labs' defaults
    /// when the image names none.
    pub fn ssh_credentials(&self) -> (&str, &str) {
        (
            self.ssh_user.as_deref().unwrap_or("antidote"),
            self.ssh_password.as_deref().unwrap_or("antidotepassword"),
        )
    }

    /// The user and password stage configuration runs as (NRE Labs' defaults otherwise).
    pub fn config_credentials(&self) -> (&str, &str) {
        (
            self.config_user.as_deref().unwrap_or("antidote"),
            self.config_password
                .as_deref()
                .unwrap_or("antidotepassword"),
        )
    }
}

/// Image flavors of NRE Labs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Trusted,
    #[default]
    Untrusted,
}

/// The local backend's realisation of an image.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocalImage {
    /// What runs inside the endpoint.
    pub kind: LocalKind,
    /// For `frr`: the FRR daemons to run (default zebra, staticd, ospfd, bgpd).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(DAEMON_PATTERN)))]
    pub daemons: Vec<String>,
    /// Long-running programs the endpoint starts at boot (shell command lines), as the
    /// image's SSH user and with the learner's capabilities — e.g. the web server behind an
    /// http presentation. Output goes to `/var/log/antidote-service-<n>.log` inside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1)))]
    pub services: Vec<String>,
}

/// Names of FRR daemons (`zebra`, `ospfd`, `isisd`, ...).
pub const DAEMON_PATTERN: &str = "^[a-z0-9]+$";

/// Kinds of local endpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LocalKind {
    /// A Linux host with sshd.
    Linux,
    /// A Linux host running FRR's routing daemons, with vtysh and sshd.
    Frr,
}

/// The Kubernetes backend's realisation of an image.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesImage {
    /// Container image reference.
    #[schemars(length(min = 1))]
    pub image: String,
}

/// A collection: `collections/<slug>/collection.meta.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "Antidote collection")]
pub struct Collection {
    #[schemars(pattern(SLUG_PATTERN))]
    pub slug: String,
    #[schemars(length(min = 1))]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_description: Option<String>,
    #[serde(rename = "type")]
    pub kind: CollectionType,
    pub tier: Tier,
}

/// Kinds of collection.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    Vendor,
    Consultancy,
    Community,
}

/// `curriculum.meta.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "Antidote curriculum")]
pub struct CurriculumMeta {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Antidote version the curriculum targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_ver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_root: Option<String>,
}

/// The JSON Schema of a model type, with every subschema inlined (what the validator walks).
pub fn schema_of<T: JsonSchema>() -> serde_json::Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
    });
    settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}
