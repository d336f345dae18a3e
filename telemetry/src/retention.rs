//! Retention: telemetry older than N days is dropped a whole daily partition at a time
//! (`events`, `spans` and `logs` are partitioned by `toYYYYMMDD(ts)`). Feedback is product
//! data and is never dropped here.

use serde::Deserialize;
use time::OffsetDateTime;

/// The tables retention applies to.
pub const TABLES: [&str; 3] = ["events", "spans", "logs"];

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Part {
    table: String,
    partition: String,
}

/// `YYYYMMDD` of the day `days` before `now` (UTC): partitions before it are dropped.
pub fn cutoff(now: OffsetDateTime, days: u32) -> u32 {
    let day = now.date() - time::Duration::days(i64::from(days));
    u32::try_from(day.year()).unwrap_or(0) * 10_000
        + u32::from(u8::from(day.month())) * 100
        + u32::from(day.day())
}

/// Drops every partition of [`TABLES`] in `database` older than `before` (`YYYYMMDD`);
/// returns what it dropped as `(table, partition)`.
pub async fn drop_before(
    client: &clickhouse::Client,
    database: &str,
    before: u32,
) -> Result<Vec<(String, String)>, clickhouse::error::Error> {
    let parts = client
        .query(
            "SELECT DISTINCT table, partition FROM system.parts \
             WHERE database = ? AND active AND table IN ('events', 'spans', 'logs')",
        )
        .bind(database)
        .fetch_all::<Part>()
        .await?;
    let mut dropped = Vec::new();
    for p in parts {
        // Partition IDs of toYYYYMMDD are the day as digits; anything else is not ours.
        let Ok(day) = p.partition.trim_matches('\'').parse::<u32>() else {
            continue;
        };
        if day < before {
            client
                .query(&format!(
                    "ALTER TABLE {database}.{} DROP PARTITION {day}",
                    p.table
                ))
                .execute()
                .await?;
            dropped.push((p.table, day.to_string()));
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_a_calendar_day() {
        let now = time::Date::from_calendar_date(2026, time::Month::March, 2)
            .unwrap()
            .with_hms(10, 0, 0)
            .unwrap()
            .assume_utc();
        assert_eq!(cutoff(now, 0), 20260302);
        assert_eq!(cutoff(now, 2), 20260228);
        assert_eq!(cutoff(now, 365), 20250302);
    }
}
