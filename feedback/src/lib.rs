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

impl std::str::FromStr for Status {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Status, UnknownValue> {
        Status::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "status",
                value: s.to_owned(),
                allowed: Status::ALL.map(Status::as_str).join(", "),
            })
    }
}

impl Status {
    /// Every status, in the order of the flow.
    pub const ALL: [Status; 6] = [
        Status::New,
        Status::Triaged,
        Status::InProgress,
        Status::Resolved,
        Status::WontFix,
        Status::Duplicate,
    ];
}

impl std::str::FromStr for Category {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Category, UnknownValue> {
        Category::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| UnknownValue {
                what: "category",
                value: s.to_owned(),
                allowed: Category::ALL.map(Category::as_str).join(", "),
            })
    }
}

impl Category {
    /// Every category, in the form's order.
    pub const ALL: [Category; 4] = [
        Category::LabNotWorking,
        Category::Terminal,
        Category::LessonContent,
        Category::Other,
    ];
}

/// A word that is not one of a field's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {what} (one of: {allowed})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub allowed: String,
}

/// The priorities a maintainer may give (empty: none yet).
pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
/// The longest assignee, in characters.
pub const ASSIGNEE_MAX_CHARS: usize = 100;
/// The longest triage note, in characters.
pub const NOTE_MAX_CHARS: usize = 4000;

/// The fields triage changes on a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triage {
    pub status: Status,
    pub assignee: String,
    /// One of [`PRIORITIES`], or empty.
    pub priority: String,
    /// The report this one duplicates (only while `status` is `duplicate`).
    pub duplicate_of: String,
}

/// What a maintainer asks to change (absent fields stay as they are; an empty assignee,
/// priority or duplicate_of clears it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub duplicate_of: Option<String>,
}

/// A change applied: the new fields and, per changed field, its old and new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub triage: Triage,
    /// `(field, old, new)` for every field that changed, in a fixed order.
    pub changed: Vec<(&'static str, String, String)>,
    /// The note, trimmed (empty: none).
    pub note: String,
}

impl Applied {
    /// The activity's action: `status` when the status moved, `note` for a note alone,
    /// `update` otherwise.
    pub fn action(&self) -> &'static str {
        if self.changed.iter().any(|(k, _, _)| *k == "status") {
            "status"
        } else if self.changed.is_empty() {
            "note"
        } else {
            "update"
        }
    }
}

/// Why a change is refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error(
        "status cannot move from `{from}` to `{to}` (the flow is new → triaged → in_progress → resolved | wont_fix | duplicate; a closed report reopens as triaged)",
        from = .from.as_str(), to = .to.as_str()
    )]
    Transition { from: Status, to: Status },
    #[error("assignee is {0} characters long; the limit is {ASSIGNEE_MAX_CHARS}")]
    AssigneeTooLong(usize),
    #[error("note is {0} characters long; the limit is {NOTE_MAX_CHARS}")]
    NoteTooLong(usize),
    #[error("priority `{0}` is not one of: low, normal, high, urgent (or empty)")]
    Priority(String),
    #[error("duplicate_of `{0}` is not a report ID (10 characters a-z, 0-9)")]
    DuplicateId(String),
    #[error("a report cannot duplicate itself")]
    DuplicateOfSelf,
    #[error("status `duplicate` needs duplicate_of: the report this one repeats")]
    DuplicateNeedsTarget,
    #[error(
        "duplicate_of names an original only for status `duplicate`, not `{}`",
        .0.as_str()
    )]
    DuplicateNeedsStatus(Status),
    #[error("nothing to change: every field given already has that value and there is no note")]
    Nothing,
}

fn is_report_id(s: &str) -> bool {
    s.len() == 10
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Change {
    /// Applies the change to report `id`'s `current` triage fields.
    ///
    /// Setting `duplicate_of` alone also moves the status to `duplicate`; moving away from
    /// `duplicate` clears `duplicate_of`.
    pub fn apply(&self, id: &str, current: &Triage) -> Result<Applied, ChangeError> {
        let mut next = current.clone();
        if let Some(a) = &self.assignee {
            let a = a.trim();
            let len = a.chars().count();
            if len > ASSIGNEE_MAX_CHARS {
                return Err(ChangeError::AssigneeTooLong(len));
            }
            next.assignee = a.to_owned();
        }
        if let Some(p) = &self.priority {
            let p = p.trim();
            if !p.is_empty() && !PRIORITIES.contains(&p) {
                return Err(ChangeError::Priority(p.to_owned()));
            }
            next.priority = p.to_owned();
        }
        let note = self.note.as_deref().unwrap_or_default().trim().to_owned();
        let len = note.chars().count();
        if len > NOTE_MAX_CHARS {
            return Err(ChangeError::NoteTooLong(len));
        }
        if let Some(d) = &self.duplicate_of {
            let d = d.trim();
            if !d.is_empty() && !is_report_id(d) {
                return Err(ChangeError::DuplicateId(d.to_owned()));
            }
            if d == id {
                return Err(ChangeError::DuplicateOfSelf);
            }
            next.duplicate_of = d.to_owned();
        }
        // A status equal to the current one (a form always sends one) is no move, so a
        // duplicate_of set alongside it still moves the report to `duplicate`.
        let wanted = self.status.filter(|s| *s != current.status).or_else(|| {
            (!next.duplicate_of.is_empty() && next.duplicate_of != current.duplicate_of)
                .then_some(Status::Duplicate)
        });
        if let Some(s) = wanted
            && s != current.status
        {
            if !current.status.can_move_to(s) {
                return Err(ChangeError::Transition {
                    from: current.status,
                    to: s,
                });
            }
            next.status = s;
        }
        if next.status == Status::Duplicate {
            if next.duplicate_of.is_empty() {
                return Err(ChangeError::DuplicateNeedsTarget);
            }
        } else {
            // A new original named along with another status is a contradiction; the old
            // link goes when the report leaves `duplicate`.
            if next.duplicate_of != current.duplicate_of && !next.duplicate_of.is_empty() {
                return Err(ChangeError::DuplicateNeedsStatus(next.status));
            }
            next.duplicate_of.clear();
        }
        let mut changed = Vec::new();
        for (field, old, new) in [
            ("status", current.status.as_str(), next.status.as_str()),
            ("assignee", &current.assignee, &next.assignee),
            ("priority", &current.priority, &next.priority),
            ("duplicate_of", &current.duplicate_of, &next.duplicate_of),
        ] {
            if old != new {
                changed.push((field, old.to_owned(), new.to_owned()));
            }
        }
        if changed.is_empty() && note.is_empty() {
            return Err(ChangeError::Nothing);
        }
        Ok(Applied {
            triage: next,
            changed,
            note,
        })
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
/// when IDs, numbers and addresses in the text differ. A report without one (no failure, no
/// client error) is evidence of nothing shared: it is a group of its own, keyed by its
/// `feedback_id`.
pub fn group_key(
    lesson: &str,
    stage: i16,
    category: Category,
    error_signature: &str,
    feedback_id: &str,
) -> String {
    let signature = normalise_signature(error_signature);
    if signature.is_empty() {
        format!(
            "{lesson}/{stage}/{}/report:{feedback_id}",
            category.as_str()
        )
    } else {
        format!("{lesson}/{stage}/{}/{signature}", category.as_str())
    }
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

    fn triage(status: Status) -> Triage {
        Triage {
            status,
            assignee: String::new(),
            priority: String::new(),
            duplicate_of: String::new(),
        }
    }

    #[test]
    fn changes_follow_the_flow_and_record_what_moved() {
        let id = "aaaaaaaaaa";
        let a = Change {
            status: Some(Status::Triaged),
            assignee: Some(" ana ".into()),
            note: Some("looking".into()),
            ..Change::default()
        }
        .apply(id, &triage(Status::New))
        .unwrap();
        assert_eq!(a.triage.status, Status::Triaged);
        assert_eq!(a.triage.assignee, "ana");
        assert_eq!(
            a.changed,
            [
                ("status", "new".into(), "triaged".into()),
                ("assignee", String::new(), "ana".into())
            ]
        );
        assert_eq!((a.action(), a.note.as_str()), ("status", "looking"));

        let skip = Change {
            status: Some(Status::Resolved),
            ..Change::default()
        };
        assert_eq!(
            skip.apply(id, &triage(Status::New)),
            Err(ChangeError::Transition {
                from: Status::New,
                to: Status::Resolved
            })
        );
        assert!(
            ChangeError::Transition {
                from: Status::New,
                to: Status::Resolved
            }
            .to_string()
            .contains("`new` to `resolved`")
        );
        // A note alone is an activity; nothing at all is refused.
        let note = Change {
            note: Some("seen it".into()),
            ..Change::default()
        };
        assert_eq!(
            note.apply(id, &triage(Status::New)).unwrap().action(),
            "note"
        );
        let same = Change {
            status: Some(Status::New),
            ..Change::default()
        };
        assert_eq!(
            same.apply(id, &triage(Status::New)),
            Err(ChangeError::Nothing)
        );
        let p = Change {
            priority: Some("asap".into()),
            ..Change::default()
        };
        assert_eq!(
            p.apply(id, &triage(Status::New)),
            Err(ChangeError::Priority("asap".into()))
        );
    }

    #[test]
    fn duplicates_name_their_original() {
        let id = "aaaaaaaaaa";
        let dup = Change {
            duplicate_of: Some("bbbbbbbbbb".into()),
            ..Change::default()
        }
        .apply(id, &triage(Status::Triaged))
        .unwrap();
        assert_eq!(dup.triage.status, Status::Duplicate);
        assert_eq!(dup.triage.duplicate_of, "bbbbbbbbbb");
        // As the report page's form sends it: the current status along with the link.
        let form = Change {
            status: Some(Status::New),
            duplicate_of: Some("bbbbbbbbbb".into()),
            priority: Some(String::new()),
            ..Change::default()
        }
        .apply(id, &triage(Status::New))
        .unwrap();
        assert_eq!(form.triage.status, Status::Duplicate);
        assert_eq!(form.triage.duplicate_of, "bbbbbbbbbb");
        let bare = Change {
            status: Some(Status::Duplicate),
            ..Change::default()
        };
        assert_eq!(
            bare.apply(id, &triage(Status::New)),
            Err(ChangeError::DuplicateNeedsTarget)
        );
        let me = Change {
            duplicate_of: Some(id.into()),
            ..Change::default()
        };
        assert_eq!(
            me.apply(id, &triage(Status::New)),
            Err(ChangeError::DuplicateOfSelf)
        );
        let contradiction = Change {
            status: Some(Status::Triaged),
            duplicate_of: Some("bbbbbbbbbb".into()),
            ..Change::default()
        };
        assert_eq!(
            contradiction.apply(id, &triage(Status::New)),
            Err(ChangeError::DuplicateNeedsStatus(Status::Triaged))
        );
        // Reopening clears the link (the form sends the old link along: fine).
        let form_reopen = Change {
            status: Some(Status::Triaged),
            duplicate_of: Some("bbbbbbbbbb".into()),
            ..Change::default()
        }
        .apply(id, &dup.triage)
        .unwrap();
        assert_eq!(form_reopen.triage.duplicate_of, "");
        let reopened = Change {
            status: Some(Status::Triaged),
            ..Change::default()
        }
        .apply(id, &dup.triage)
        .unwrap();
        assert_eq!(reopened.triage.duplicate_of, "");
        assert_eq!("in_progress".parse::<Status>(), Ok(Status::InProgress));
        assert!(
            "done"
                .parse::<Status>()
                .unwrap_err()
                .to_string()
                .contains("one of: new, triaged")
        );
    }

    #[test]
    fn duplicates_group_despite_ids_and_numbers() {
        let a = group_key(
            "ospf-triangle",
            1,
            Category::LabNotWorking,
            "Endpoint r1 unreachable: port 22 timed out after 60 s (livelesson k3j4h5)",
            "aaaaaaaaaa",
        );
        let b = group_key(
            "ospf-triangle",
            1,
            Category::LabNotWorking,
            "endpoint r1 unreachable:  port 22 timed out after 61 s (livelesson k3j4h5)",
            "bbbbbbbbbb",
        );
        assert_eq!(a, b);
        let other_stage = group_key("ospf-triangle", 2, Category::LabNotWorking, "x", "c");
        assert_ne!(a, other_stage);
        // Without a signature nothing says two reports are one: each is its own group.
        let quiet = |id| group_key("bash-basics", 1, Category::LessonContent, "  ", id);
        assert_ne!(quiet("aaaaaaaaaa"), quiet("bbbbbbbbbb"));
    }
}
