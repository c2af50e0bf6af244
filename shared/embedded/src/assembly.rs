//! The embedded backend assembled: one bundle of ports ([`EmbeddedPorts`]) over one SQLite
//! file and the event file beside it, and the services built from it, as `switchboard serve`
//! runs them.

use std::path::Path;
use std::sync::Arc;

use switchboard_core::cases::Cases;
use switchboard_core::clock::Clock;
use switchboard_core::erasure::Erasure;
use switchboard_core::intake::Intake;
use switchboard_core::ports::ReplySender;
use switchboard_core::prioritize::{Prioritizer, PrioritizerPorts};
use switchboard_core::priority::Scorer;
use switchboard_core::remind::ReminderHandler;
use switchboard_core::replies::{Replies, ReplyPorts};
use switchboard_core::reports::Reports;
use switchboard_core::sla::Calendar;
use switchboard_core::sla::SlaPolicy;
use switchboard_core::watch::{WatchSettings, Watcher};

use crate::{EmbeddedError, EventFile, SqliteStore};

/// The ports of the embedded backend: the store (every storage port, the intake queue and the
/// timers) and the event file.
#[derive(Clone)]
pub struct EmbeddedPorts {
    store: Arc<SqliteStore>,
    events: Arc<EventFile>,
    clock: Arc<dyn Clock>,
}

impl EmbeddedPorts {
    /// Opens the store in `data` (see [`SqliteStore::open`]) and the event file beside it.
    pub fn open(
        data: &Path,
        retention_days: u32,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EmbeddedError> {
        Ok(Self {
            store: Arc::new(SqliteStore::open(data, retention_days, clock.clone())?),
            events: Arc::new(EventFile::in_folder(data)),
            clock,
        })
    }

    /// The store.
    pub fn store(&self) -> Arc<SqliteStore> {
        self.store.clone()
    }

    /// The event file: the bus and its log.
    pub fn events(&self) -> Arc<EventFile> {
        self.events.clone()
    }

    /// The clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The intake service over the store and its queue, which share the file: a delivery is
    /// written, enqueued and confirmed in one transaction ([`Outbox`]).
    ///
    /// [`Outbox`]: switchboard_core::ports::Outbox
    pub fn intake(&self) -> Intake {
        Intake::with_outbox(self.store(), self.store(), self.clock())
    }

    /// The prioritizer, scoring with `scorer` and timing by `policy`.
    pub fn prioritizer(&self, scorer: Arc<Scorer>, policy: Arc<SlaPolicy>) -> Prioritizer {
        let store = self.store();
        Prioritizer::new(
            PrioritizerPorts {
                records: store.clone(),
                conversations: store.clone(),
                customers: store.clone(),
                history: store.clone(),
                identities: store.clone(),
                events: self.events(),
                timers: store.clone(),
                settle: store,
            },
            scorer,
            policy,
            self.clock(),
        )
    }

    /// The silent-channel watch: watches in the store, checks in the timer table, events to
    /// the event file. Give the same one to the prioritizer and the reminder consumer.
    pub fn watcher(&self, settings: WatchSettings) -> Watcher {
        Watcher::new(
            self.store(),
            self.store(),
            self.events(),
            settings,
            self.clock(),
        )
    }

    /// The reminder consumer.
    pub fn reminders(&self) -> ReminderHandler {
        ReminderHandler::new(self.store(), self.events(), self.clock())
    }

    /// What agents do to conversations (answers, resolutions, assignments).
    pub fn cases(&self) -> Cases {
        Cases::new(self.store(), self.store(), self.events(), self.clock())
    }

    /// Replies sent through `sender`, stored here, idempotency keys in the store.
    pub fn replies(&self, sender: Arc<dyn ReplySender>) -> Replies {
        let store = self.store();
        Replies::new(
            ReplyPorts {
                conversations: store.clone(),
                records: store.clone(),
                history: store.clone(),
                sender,
                claims: store,
                events: self.events(),
            },
            self.cases(),
            self.clock(),
        )
    }

    /// The figures over the store: the buckets, and the backlog of `teams`' queues; days and
    /// weeks of `calendar`.
    pub fn reports(&self, teams: Vec<String>, calendar: Calendar) -> Reports {
        Reports::new(self.store(), self.store(), teams, calendar, self.clock())
    }

    /// Customer erasure: the store's rows and deliveries, its timers, the event file.
    pub fn erasure(&self) -> Erasure {
        Erasure::new(
            self.store(),
            self.store(),
            vec![self.events()],
            self.clock(),
        )
    }
}
