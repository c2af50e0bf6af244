//! The figures service: [`Reports`] answers a [`ReportQuery`] from the stored hourly buckets
//! ([`MetricsReader`]) and the waiting conversations of every team's queue (the backlog of the
//! moment), by the rules of [`crate::metrics::report`].
//!
//! Reads: the buckets' (one query per month covered on DynamoDB, one range scan on SQLite)
//! and one page of each team's queue per 500 waiting conversations. Neither grows with the
//! volume counted.

use std::sync::Arc;

use crate::clock::Clock;
use crate::metrics::report::{self, Report, ReportQuery, Waiting};
use crate::ports::{BackendError, ConversationReader, MetricsReader, QueueName};
use crate::sla::Calendar;

/// Conversations read per page of a queue for the backlog.
const QUEUE_PAGE: usize = 500;

/// The report of `GET /api/metrics`. See the module docs.
#[derive(Clone)]
pub struct Reports {
    metrics: Arc<dyn MetricsReader>,
    queues: Arc<dyn ConversationReader>,
    teams: Arc<[String]>,
    calendar: Arc<Calendar>,
    clock: Arc<dyn Clock>,
}

impl Reports {
    /// Reports over `metrics`, with the backlog of `teams`' queues read from `queues`; days
    /// and weeks are `calendar`'s (the SLA policy's default calendar).
    pub fn new(
        metrics: Arc<dyn MetricsReader>,
        queues: Arc<dyn ConversationReader>,
        teams: Vec<String>,
        calendar: Calendar,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut teams = teams;
        teams.sort();
        teams.dedup();
        Self {
            metrics,
            queues,
            teams: teams.into(),
            calendar: Arc::new(calendar),
            clock,
        }
    }

    /// The report of `query`, with the backlog as of now.
    pub async fn report(&self, query: &ReportQuery) -> Result<Report, BackendError> {
        let (from, to) = query.hours();
        let stored = self.metrics.buckets(from, to).await?;
        let mut waiting: Vec<Waiting> = Vec::new();
        for team in self.teams.iter() {
            let mut after = None;
            loop {
                let page = self
                    .queues
                    .queue(QueueName::Team(team), after.as_ref(), QUEUE_PAGE)
                    .await?;
                waiting.extend(page.iter().filter_map(report::waiting_of));
                after = match page.last() {
                    Some(last) if page.len() == QUEUE_PAGE => crate::ports::QueuePosition::of(last),
                    _ => None,
                };
                if after.is_none() {
                    break;
                }
            }
        }
        Ok(report::report(
            query,
            &self.calendar,
            &stored,
            &waiting,
            self.clock.now(),
        ))
    }
}
