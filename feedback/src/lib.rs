//! Feedback reports and the triage workflow (DESIGN §8): what a report may contain, the
//! statuses a report moves through, and how likely duplicates are grouped.
//!
//! Pure rules, no I/O: the API validates submissions with [`Submission::validate`], triage
//! changes go through [`Status::can_move_to`], and the queue groups by [`group_key`].

use serde::{Deserialize, Serialize};

/// The longest message a learner may send, in characters.
pub const MESSAGE_MAX_CHARS: usize = 4000;
/// The longest contact (e-mail or handle), in characters.
pub const CONTACT_MAX_CHARS: usize = 200;

/// What the report is about (the form's choices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    LessonContent,
    LabNotWorking,
    Terminal,
    Other,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::LessonContent => "lesson_content",
            Category::LabNotWorking => "lab_not_working",
            Category::Terminal => "terminal",
            Category::Other => "other",
        }
    }
}

/// Where a report is in triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Triaged,
    InProgress,
    Resolved,
    WontFix,
    Duplicate,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Triaged => "triaged",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::WontFix => "wont_fix",
            Status::Duplicate => "duplicate",
        }
    }

    /// Whether the report is closed.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Resolved | Status::WontFix | Status::Duplicate)
    }

    /// The flow `new → triaged → in_progress → resolved | wont_fix | duplicate`: forward
    /// along the chain, any open report may be closed as won't-fix or duplicate, and a closed
    /// report may be reopened as triaged. Staying put is not a move.
    pub fn can_move_to(self, next: Status) -> bool {
        use Status::*;
        match (self, next) {
            (a, b) if a == b => false,
            (New, Triaged) | (Triaged, InProgress) | (InProgress, Resolved) => true,
            (a, WontFix | Duplicate) if !a.is_closed() => true,
            (a, Triaged) if a.is_closed() => true,
            _ => false,
        }
    }
}

/// What a learner submits (the page adds the context).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    pub category: Category,
    /// 1 to 5, if given.
    #[serde(default)]
    pub rating: Option<u8>,
    pub message: String,
    #[serde(default)]
    pub contact: Option<String>,
}

/// Why a submission is refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    #[error("rating must be between 1 and 5, got {0}")]
    Rating(u8),
    #[error("message must not be empty")]
    EmptyMessage,
    #[error("message is {0} characters long; the limit is {MESSAGE_MAX_CHARS}")]
    MessageTooLong(usize),
    #[error("contact is {0} characters long; the limit is {CONTACT_MAX_CHARS}")]
    ContactTooLong(usize),
}

impl Submission {
    /// Checks the bounds of every field.
    pub fn validate(&self) -> Result<(), SubmissionError> {
        if let Some(r) = self.rating
            && !(1..=5).contains(&r)
        {
            return Err(SubmissionError::Rating(r));
        }
        if self.message.trim().is_empty() {
            return Err(SubmissionError::EmptyMessage);
        }
        let len = self.message.chars().count();
        if len > MESSAGE_MAX_CHARS {
            return Err(SubmissionError::MessageTooLong(len));
        }
        if let Some(c) = &self.contact {
            let len = c.chars().count();
            if len > CONTACT_MAX_CHARS {
                return Err(SubmissionError::ContactTooLong(len));
            }
        }
        Ok(())
    }
}

/// The key grouping likely duplicates: same lesson, stage, category and error signature.
///
/// The error signature is normalised so that reports of the same failure group together even
/// when IDs, numbers and addresses in the text differ.
pub fn group_key(lesson: &str, stage: i16, category: Category, error_signature: &str) -> String {
    format!(
        "{lesson}/{stage}/{}/{}",
        category.as_str(),
        normalise_signature(error_signature)
    )
}

/// Lower-cases, turns every run of digits into `#` and squeezes whitespace.
pub fn normalise_signature(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_digit = false;
    let mut last_space = true;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('#');
            }
            last_digit = true;
            last_space = false;
        } else if c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
            last_digit = false;
        } else {
            out.extend(c.to_lowercase());
            last_digit = false;
            last_space = false;
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_flow() {
        use Status::*;
        let moves = [
            (New, Triaged, true),
            (Triaged, InProgress, true),
            (InProgress, Resolved, true),
            (New, Duplicate, true),
            (InProgress, WontFix, true),
            (Resolved, Triaged, true),
            (New, Resolved, false),
            (Triaged, New, false),
            (Resolved, InProgress, false),
            (Duplicate, WontFix, false),
            (New, New, false),
        ];
        for (from, to, ok) in moves {
            assert_eq!(from.can_move_to(to), ok, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn statuses_and_categories_serialise_as_stored() {
        assert_eq!(
            serde_json::to_string(&Status::InProgress).unwrap(),
            "\"in_progress\""
        );
        assert_eq!(Status::WontFix.as_str(), "wont_fix");
        assert_eq!(
            serde_json::from_str::<Category>("\"lab_not_working\"").unwrap(),
            Category::LabNotWorking
        );
    }

    fn submission(message: &str, rating: Option<u8>) -> Submission {
        Submission {
            category: Category::Terminal,
            rating,
            message: message.into(),
            contact: None,
        }
    }

    #[test]
    fn submissions_are_bounded() {
        assert_eq!(submission("broken", Some(3)).validate(), Ok(()));
        assert_eq!(
            submission("broken", Some(6)).validate(),
            Err(SubmissionError::Rating(6))
        );
        assert_eq!(
            submission("  ", None).validate(),
            Err(SubmissionError::EmptyMessage)
        );
        let long = "é".repeat(MESSAGE_MAX_CHARS + 1);
        assert_eq!(
            submission(&long, None).validate(),
            Err(SubmissionError::MessageTooLong(MESSAGE_MAX_CHARS + 1))
        );
        let unknown: Result<Submission, _> =
            serde_json::from_str(r#"{"category":"other","message":"x","admin":true}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn duplicates_group_despite_ids_and_numbers() {
        let a = group_key(
            "ospf-triangle",
            1,
            Category::LabNotWorking,
            "Endpoint r1 unreachable: port 22 timed out after 60 s (livelesson k3j4h5)",
        );
        let b = group_key(
            "ospf-triangle",
            1,
            Category::LabNotWorking,
            "endpoint r1 unreachable:  port 22 timed out after 61 s (livelesson k3j4h5)",
        );
        assert_eq!(a, b);
        let other_stage = group_key("ospf-triangle", 2, Category::LabNotWorking, "x");
        assert_ne!(a, other_stage);
    }
}
