//! The maintainers' reads of feedback in ClickHouse: the triage queue (filtered, newest
//! first, likely duplicates grouped into one item), one report with its activity, the
//! reports of a session, and the untriaged backlog for `/metrics`.
//!
//! `feedback` holds every revision of a report; `FINAL` keeps the highest. Every query runs
//! on ClickHouse 18.16 and on the current release (values are bound, never spliced in).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::rows::{FeedbackActivityRow, FeedbackRow};

/// The columns of a report the queue shows (the message clipped, no client context).
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct ReportSummary {
    pub feedback_id: String,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub created_at: OffsetDateTime,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub updated_at: OffsetDateTime,
    pub session_id: String,
    pub livelesson_id: String,
    pub lesson: String,
    pub stage: i16,
    pub category: String,
    pub rating: u8,
    /// The first 300 characters.
    pub message: String,
    pub status: String,
    pub assignee: String,
    pub priority: String,
    pub group_key: String,
    pub duplicate_of: String,
}

const SUMMARY_COLUMNS: &str = "feedback_id, created_at, updated_at, session_id, livelesson_id, \
     lesson, stage, category, rating, substringUTF8(message, 1, 300) AS message, status, \
     assignee, priority, group_key, duplicate_of";

const ROW_COLUMNS: &str = "feedback_id, created_at, updated_at, revision, session_id, \
     livelesson_id, lesson, stage, category, rating, message, contact, page_url, user_agent, \
     client_context, status, assignee, priority, group_key, duplicate_of";

/// Which reports the queue shows (`None`: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Any of these statuses (empty: every status).
    pub statuses: Vec<String>,
    pub lesson: Option<String>,
    pub category: Option<String>,
    /// Created at or after this instant.
    pub created_since: Option<OffsetDateTime>,
    /// Case-insensitive text in the message or contact, or an exact report or session ID.
    pub text: Option<String>,
}

/// One row of the queue: a group of likely duplicates (often of one), shown by its newest
/// report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    /// The group's newest report.
    #[serde(flatten)]
    pub latest: ReportSummary,
    /// Reports in the group (that match the filter).
    pub count: u64,
    /// Their IDs, newest first (at most [`GROUP_IDS_MAX`]).
    pub feedback_ids: Vec<String>,
    /// When the group's first report came in.
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub first_created_at: OffsetDateTime,
}

/// The queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub items: Vec<QueueItem>,
    /// Reports matched (before grouping).
    pub reports: u64,
    /// More reports matched than were read ([`QUEUE_ROWS_MAX`]): narrow the filter.
    pub truncated: bool,
}

/// The most reports one queue read looks at.
pub const QUEUE_ROWS_MAX: u64 = 10_000;
/// The most IDs listed per group.
pub const GROUP_IDS_MAX: usize = 50;

/// The triage queue for `filter`: newest group first.
pub async fn queue(
    client: &clickhouse::Client,
    filter: &QueueFilter,
) -> Result<Queue, clickhouse::error::Error> {
    let rows = queue_query(client, filter)
        .fetch_all::<ReportSummary>()
        .await?;
    let truncated = rows.len() as u64 > QUEUE_ROWS_MAX;
    let rows: Vec<ReportSummary> = rows
        .into_iter()
        .take(usize::try_from(QUEUE_ROWS_MAX).unwrap_or(usize::MAX))
        .collect();
    Ok(Queue {
        reports: rows.len() as u64,
        items: group(rows),
        truncated,
    })
}

/// The query behind [`queue`] (each query has its builder, so tests run the same SQL on
/// other engines: [`sample_sql`]).
pub fn queue_query(client: &clickhouse::Client, filter: &QueueFilter) -> clickhouse::query::Query {
    let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM feedback FINAL WHERE 1 = 1");
    if !filter.statuses.is_empty() {
        sql.push_str(" AND has(?, status)");
    }
    if filter.lesson.is_some() {
        sql.push_str(" AND lesson = ?");
    }
    if filter.category.is_some() {
        sql.push_str(" AND category = ?");
    }
    if filter.created_since.is_some() {
        sql.push_str(" AND created_at >= toDateTime(?)");
    }
    if filter.text.is_some() {
        sql.push_str(
            " AND (positionCaseInsensitiveUTF8(message, ?) > 0 \
             OR positionCaseInsensitiveUTF8(contact, ?) > 0 \
             OR feedback_id = ? OR session_id = ?)",
        );
    }
    sql.push_str(" ORDER BY created_at DESC, feedback_id DESC LIMIT ?");
    let mut q = client.query(&sql);
    if !filter.statuses.is_empty() {
        q = q.bind(&filter.statuses);
    }
    if let Some(l) = &filter.lesson {
        q = q.bind(l);
    }
    if let Some(c) = &filter.category {
        q = q.bind(c);
    }
    if let Some(t) = filter.created_since {
        q = q.bind(t.unix_timestamp().max(0));
    }
    if let Some(t) = &filter.text {
        q = q.bind(t).bind(t).bind(t).bind(t);
    }
    q.bind(QUEUE_ROWS_MAX + 1)
}

/// Groups reports (newest first) by group key; groups keep the order of their newest report.
pub fn group(rows: Vec<ReportSummary>) -> Vec<QueueItem> {
    let mut items: Vec<QueueItem> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in rows {
        match index.get(&r.group_key) {
            Some(&i) => {
                let item = &mut items[i];
                item.count += 1;
                if item.feedback_ids.len() < GROUP_IDS_MAX {
                    item.feedback_ids.push(r.feedback_id.clone());
                }
                item.first_created_at = item.first_created_at.min(r.created_at);
            }
            None => {
                index.insert(r.group_key.clone(), items.len());
                items.push(QueueItem {
                    count: 1,
                    feedback_ids: vec![r.feedback_id.clone()],
                    first_created_at: r.created_at,
                    latest: r,
                });
            }
        }
    }
    items
}

/// Report `id` as it is now (its highest revision).
pub async fn report(
    client: &clickhouse::Client,
    id: &str,
) -> Result<Option<FeedbackRow>, clickhouse::error::Error> {
    report_query(client, id).fetch_optional().await
}

/// The query behind [`report`].
pub fn report_query(client: &clickhouse::Client, id: &str) -> clickhouse::query::Query {
    client
        .query(&format!(
            "SELECT {ROW_COLUMNS} FROM feedback FINAL WHERE feedback_id = ?"
        ))
        .bind(id)
}

/// What maintainers did to report `id`, oldest first.
pub async fn activity(
    client: &clickhouse::Client,
    id: &str,
) -> Result<Vec<FeedbackActivityRow>, clickhouse::error::Error> {
    activity_query(client, id).fetch_all().await
}

/// The query behind [`activity`].
pub fn activity_query(client: &clickhouse::Client, id: &str) -> clickhouse::query::Query {
    client
        .query(
            "SELECT activity_id, feedback_id, ts, ts_ns, actor, action, changed_keys, \
             old_values, new_values, note FROM feedback_activity FINAL \
             WHERE feedback_id = ? ORDER BY ts_ns, activity_id",
        )
        .bind(id)
}

/// The reports sharing group key `key`, newest first (at most [`GROUP_IDS_MAX`]).
pub async fn group_members(
    client: &clickhouse::Client,
    key: &str,
) -> Result<Vec<ReportSummary>, clickhouse::error::Error> {
    group_query(client, key).fetch_all().await
}

/// The query behind [`group_members`].
pub fn group_query(client: &clickhouse::Client, key: &str) -> clickhouse::query::Query {
    client
        .query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM feedback FINAL WHERE group_key = ? \
             ORDER BY created_at DESC, feedback_id DESC LIMIT ?"
        ))
        .bind(key)
        .bind(GROUP_IDS_MAX)
}

/// The reports of session `session_id`, oldest first.
pub async fn session_reports(
    client: &clickhouse::Client,
    session_id: &str,
) -> Result<Vec<ReportSummary>, clickhouse::error::Error> {
    session_reports_query(client, session_id).fetch_all().await
}

/// The query behind [`session_reports`].
pub fn session_reports_query(
    client: &clickhouse::Client,
    session_id: &str,
) -> clickhouse::query::Query {
    client
        .query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM feedback FINAL WHERE session_id = ? \
             ORDER BY created_at, feedback_id"
        ))
        .bind(session_id)
}

/// The reports naming `id` as their original (`duplicate_of`), oldest first (at most
/// [`GROUP_IDS_MAX`]).
pub async fn duplicates_of(
    client: &clickhouse::Client,
    id: &str,
) -> Result<Vec<String>, clickhouse::error::Error> {
    duplicates_of_query(client, id).fetch_all().await
}

/// The query behind [`duplicates_of`].
pub fn duplicates_of_query(client: &clickhouse::Client, id: &str) -> clickhouse::query::Query {
    client
        .query(
            "SELECT feedback_id FROM feedback FINAL WHERE duplicate_of = ? AND status = 'duplicate' \
             ORDER BY created_at, feedback_id LIMIT ?",
        )
        .bind(id)
        .bind(GROUP_IDS_MAX)
}

/// Reports nobody has triaged yet (`status = 'new'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub count: u64,
    /// When the oldest came in (`None`: no backlog).
    pub oldest: Option<OffsetDateTime>,
}

impl Backlog {
    /// How long the oldest has waited at `now`, in whole seconds (0: no backlog).
    pub fn oldest_age_seconds(&self, now: OffsetDateTime) -> i64 {
        self.oldest.map_or(0, |t| (now - t).whole_seconds().max(0))
    }
}

/// The untriaged backlog.
pub async fn backlog(client: &clickhouse::Client) -> Result<Backlog, clickhouse::error::Error> {
    let (count, oldest): (u64, u32) = backlog_query(client).fetch_one().await?;
    Ok(Backlog {
        count,
        oldest: (count > 0)
            .then(|| OffsetDateTime::from_unix_timestamp(i64::from(oldest)).ok())
            .flatten(),
    })
}

/// The query behind [`backlog`].
pub fn backlog_query(client: &clickhouse::Client) -> clickhouse::query::Query {
    client
        .query("SELECT count(), toUInt32(min(created_at)) FROM feedback FINAL WHERE status = 'new'")
}

/// Every query of this module with sample arguments, as SQL (for tests on other engines).
pub fn sample_sql(client: &clickhouse::Client) -> Vec<String> {
    let filter = QueueFilter {
        statuses: vec!["new".into(), "triaged".into()],
        lesson: Some("bash-basics".into()),
        category: Some("terminal".into()),
        created_since: OffsetDateTime::from_unix_timestamp(1_700_000_000).ok(),
        text: Some("it's \"broken\" \\ ?".into()),
    };
    [
        queue_query(client, &filter),
        queue_query(client, &QueueFilter::default()),
        report_query(client, "abcdefghij"),
        activity_query(client, "abcdefghij"),
        group_query(client, "bash-basics/0/terminal/"),
        session_reports_query(client, "s3ss10n001"),
        duplicates_of_query(client, "abcdefghij"),
        backlog_query(client),
    ]
    .iter()
    .map(|q| q.sql_display().to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, group: &str, created: i64) -> ReportSummary {
        let t = OffsetDateTime::from_unix_timestamp(created).unwrap();
        ReportSummary {
            feedback_id: id.into(),
            created_at: t,
            updated_at: t,
            session_id: String::new(),
            livelesson_id: String::new(),
            lesson: "l".into(),
            stage: 0,
            category: "other".into(),
            rating: 0,
            message: String::new(),
            status: "new".into(),
            assignee: String::new(),
            priority: String::new(),
            group_key: group.into(),
            duplicate_of: String::new(),
        }
    }

    #[test]
    fn groups_keep_newest_first_and_count_their_reports() {
        let rows = vec![
            summary("c", "g1", 30),
            summary("b", "g2", 20),
            summary("a", "g1", 10),
        ];
        let items = group(rows);
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].latest.feedback_id.as_str(), items[0].count),
            ("c", 2)
        );
        assert_eq!(items[0].feedback_ids, ["c", "a"]);
        assert_eq!(items[0].first_created_at.unix_timestamp(), 10);
        assert_eq!(
            (items[1].latest.feedback_id.as_str(), items[1].count),
            ("b", 1)
        );
    }

    #[test]
    fn backlog_age() {
        let now = OffsetDateTime::from_unix_timestamp(1000).unwrap();
        let none = Backlog {
            count: 0,
            oldest: None,
        };
        assert_eq!(none.oldest_age_seconds(now), 0);
        let some = Backlog {
            count: 2,
            oldest: OffsetDateTime::from_unix_timestamp(400).ok(),
        };
        assert_eq!(some.oldest_age_seconds(now), 600);
    }
}
