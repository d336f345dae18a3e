//! The catalog: `GET /api/v1/lessons` and `GET /api/v1/lessons/{slug}`.
//!
//! Every lesson of the curriculum is listed — valid ones with whether this installation's
//! backend can run them (and why not), invalid ones as unavailable with their first problem.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::curriculum::LoadedLesson;
use crate::curriculum::model::{Category, GuideType, PresentationType};

/// A catalog entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LessonSummary {
    pub slug: String,
    pub name: String,
    /// `fundamentals`, `tools`, `workflows`, or `invalid` for a lesson whose definition has
    /// problems.
    pub category: String,
    pub short_description: String,
    pub description: String,
    pub available: bool,
    /// Why the lesson cannot run here (an image without a realisation, an invalid file).
    pub unavailable_reason: Option<String>,
    pub stage_count: usize,
}

/// A lesson with its stages and endpoints.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LessonDetail {
    pub slug: String,
    pub name: String,
    pub category: String,
    pub description: String,
    pub short_description: String,
    pub prereqs: Vec<String>,
    pub tags: Vec<String>,
    pub available: bool,
    pub unavailable_reason: Option<String>,
    pub stages: Vec<StageView>,
    pub endpoints: Vec<TopologyEndpoint>,
}

/// One stage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageView {
    /// Counted from 0.
    pub index: usize,
    pub description: String,
    /// `markdown` or `jupyter`.
    pub guide_type: String,
    /// What the stage's verify check looks at, when it has one.
    pub verify: Option<String>,
    /// Hints, to show one at a time.
    pub hints: Vec<String>,
    /// The solution, to show on request.
    pub solution: Option<String>,
}

/// One endpoint of the lesson's topology.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopologyEndpoint {
    pub name: String,
    pub image: String,
    pub presentations: Vec<crate::livelesson::PresentationView>,
}

pub fn category_name(c: Category) -> &'static str {
    match c {
        Category::Fundamentals => "fundamentals",
        Category::Tools => "tools",
        Category::Workflows => "workflows",
    }
}

pub fn presentation_type(t: PresentationType) -> &'static str {
    match t {
        PresentationType::Ssh => "ssh",
        PresentationType::Http => "http",
    }
}

impl AppState {
    /// Why `slug` cannot run here, if it cannot.
    pub fn unavailable_reason(&self, slug: &str) -> Option<String> {
        self.availability.get(slug).cloned().flatten()
    }

    /// Every lesson, valid or not, in catalog order (category, then name).
    pub fn catalog(&self) -> Vec<LessonSummary> {
        let mut out: Vec<LessonSummary> = self
            .curriculum
            .lessons
            .values()
            .map(|l| summary(self, l))
            .collect();
        for invalid in &self.curriculum.invalid_lessons {
            let first = invalid
                .problems
                .first()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let more = invalid.problems.len().saturating_sub(1);
            let reason = if more > 0 {
                format!("the lesson definition is invalid: {first} (and {more} more problem(s))")
            } else {
                format!("the lesson definition is invalid: {first}")
            };
            out.push(LessonSummary {
                slug: invalid.name.clone(),
                name: invalid.name.clone(),
                category: "invalid".into(),
                short_description: String::new(),
                description: String::new(),
                available: false,
                unavailable_reason: Some(reason),
                stage_count: 0,
            });
        }
        out.sort_by(|a, b| (&a.category, &a.name).cmp(&(&b.category, &b.name)));
        out
    }

    /// A valid lesson by slug.
    pub fn lesson(&self, slug: &str) -> Result<&LoadedLesson, ApiError> {
        self.curriculum
            .lessons
            .get(slug)
            .ok_or_else(|| ApiError::not_found(format!("unknown lesson `{slug}`")))
    }
}

fn summary(state: &AppState, l: &LoadedLesson) -> LessonSummary {
    let reason = state.unavailable_reason(&l.lesson.slug);
    LessonSummary {
        slug: l.lesson.slug.clone(),
        name: l.lesson.name.clone(),
        category: category_name(l.lesson.category).into(),
        short_description: l.lesson.short_description.clone().unwrap_or_default(),
        description: l.lesson.description.clone(),
        available: reason.is_none(),
        unavailable_reason: reason,
        stage_count: l.lesson.stages.len(),
    }
}

pub fn detail(state: &AppState, l: &LoadedLesson) -> LessonDetail {
    let s = summary(state, l);
    LessonDetail {
        slug: s.slug,
        name: s.name,
        category: s.category,
        description: s.description,
        short_description: s.short_description,
        prereqs: l.lesson.prereqs.clone(),
        tags: l.lesson.tags.clone(),
        available: s.available,
        unavailable_reason: s.unavailable_reason,
        stages: l
            .lesson
            .stages
            .iter()
            .enumerate()
            .map(|(index, st)| StageView {
                index,
                description: st.description.clone(),
                guide_type: match st.guide_type {
                    GuideType::Markdown => "markdown".into(),
                    GuideType::Jupyter => "jupyter".into(),
                },
                verify: st.verify.as_ref().map(|v| {
                    v.description
                        .clone()
                        .unwrap_or_else(|| format!("`{}` on {}", v.command, v.endpoint))
                }),
                hints: st.hints.clone(),
                solution: st.solution.clone(),
            })
            .collect(),
        endpoints: l
            .lesson
            .endpoints
            .iter()
            .map(|e| TopologyEndpoint {
                name: e.name.clone(),
                image: e.image.clone(),
                presentations: e
                    .presentations
                    .iter()
                    .map(|p| crate::livelesson::PresentationView {
                        name: p.name.clone(),
                        kind: presentation_type(p.kind).into(),
                        port: p.port,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The catalog.
#[utoipa::path(
    get,
    path = "/api/v1/lessons",
    tag = "lessons",
    responses((status = 200, description = "Every lesson, available or not", body = Vec<LessonSummary>))
)]
pub async fn list(State(state): State<AppState>) -> Json<Vec<LessonSummary>> {
    Json(state.catalog())
}

/// One lesson with its stages and endpoints.
#[utoipa::path(
    get,
    path = "/api/v1/lessons/{slug}",
    tag = "lessons",
    params(("slug" = String, Path, description = "The lesson's slug")),
    responses(
        (status = 200, description = "The lesson", body = LessonDetail),
        (status = 404, description = "No such (valid) lesson", body = super::error::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<LessonDetail>, ApiError> {
    let l = state.lesson(&slug)?;
    Ok(Json(detail(&state, l)))
}
