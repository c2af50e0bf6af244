//! The AWS settings: the names of the stack's resources, as the Lambda functions and
//! `switchboard serve --backend aws` read them from the environment. Read and checked once, at
//! start; a missing one is an error that names it and says where to find its value.

use switchboard_core::config::{self, ConfigError, Source};
use switchboard_core::priority::PriorityConfig;
use switchboard_core::sla::{Calendar, SlaPolicy};

use crate::scheduler::ScheduleTarget;
use switchboard_core::watch::WatchSettings;

/// The table name: `SWITCHBOARD_TABLE`.
pub const TABLE: &str = "SWITCHBOARD_TABLE";
/// The intake queue URL: `SWITCHBOARD_INTAKE_QUEUE_URL`.
pub const INTAKE_QUEUE_URL: &str = "SWITCHBOARD_INTAKE_QUEUE_URL";
/// The outbox table, whose stream feeds the intake queue: `SWITCHBOARD_OUTBOX_TABLE`.
pub const OUTBOX_TABLE: &str = "SWITCHBOARD_OUTBOX_TABLE";
/// The EventBridge Scheduler group of the SLA reminders: `SWITCHBOARD_SCHEDULE_GROUP`.
pub const SCHEDULE_GROUP: &str = "SWITCHBOARD_SCHEDULE_GROUP";
/// The ARN of the reminder queue the schedules send to: `SWITCHBOARD_REMINDER_QUEUE_ARN`.
pub const REMINDER_QUEUE_ARN: &str = "SWITCHBOARD_REMINDER_QUEUE_ARN";
/// The URL of the reminder queue (for `serve --backend aws`): `SWITCHBOARD_REMINDER_QUEUE_URL`.
pub const REMINDER_QUEUE_URL: &str = "SWITCHBOARD_REMINDER_QUEUE_URL";
/// The role EventBridge Scheduler assumes to send reminders: `SWITCHBOARD_SCHEDULER_ROLE_ARN`.
pub const SCHEDULER_ROLE_ARN: &str = "SWITCHBOARD_SCHEDULER_ROLE_ARN";
/// `SWITCHBOARD_SCHEDULER_DLQ_ARN`: the queue of reminders Scheduler could not deliver
/// (optional; the stack sets it).
pub const SCHEDULER_DLQ_ARN: &str = "SWITCHBOARD_SCHEDULER_DLQ_ARN";
/// The EventBridge bus of the domain events: `SWITCHBOARD_EVENT_BUS`.
pub const EVENT_BUS: &str = "SWITCHBOARD_EVENT_BUS";
/// The mail bucket's name (the customer erasure deletes the person's mail objects in it);
/// unset or empty: no mail bucket (the stack without an `EmailDomain`).
pub const MAIL_BUCKET: &str = "SWITCHBOARD_MAIL_BUCKET";

/// The table: `SWITCHBOARD_TABLE`.
pub fn table(source: &impl Source) -> Result<String, ConfigError> {
    source.require(
        TABLE,
        "the DynamoDB table name (stack output TableName, or `switchboard provision`)",
    )
}

/// The intake queue: `SWITCHBOARD_INTAKE_QUEUE_URL`.
pub fn intake_queue_url(source: &impl Source) -> Result<String, ConfigError> {
    source.require(
        INTAKE_QUEUE_URL,
        "the intake queue URL (stack output IntakeQueueUrl, or `switchboard provision`)",
    )
}

/// The outbox table: `SWITCHBOARD_OUTBOX_TABLE`.
pub fn outbox_table(source: &impl Source) -> Result<String, ConfigError> {
    source.require(
        OUTBOX_TABLE,
        "the outbox table name (stack output OutboxTableName, or `switchboard provision`)",
    )
}

/// The bus: `SWITCHBOARD_EVENT_BUS`.
pub fn event_bus(source: &impl Source) -> Result<String, ConfigError> {
    source.require(
        EVENT_BUS,
        "the EventBridge bus name (stack output EventBusName, or `switchboard provision`)",
    )
}

/// The reminder queue's URL: `SWITCHBOARD_REMINDER_QUEUE_URL`.
pub fn reminder_queue_url(source: &impl Source) -> Result<String, ConfigError> {
    source.require(
        REMINDER_QUEUE_URL,
        "the reminder queue URL (stack output ReminderQueueUrl, or `switchboard provision`)",
    )
}

/// Where reminders are scheduled: `SWITCHBOARD_SCHEDULE_GROUP`,
/// `SWITCHBOARD_REMINDER_QUEUE_ARN`, `SWITCHBOARD_SCHEDULER_ROLE_ARN`, and optionally
/// `SWITCHBOARD_SCHEDULER_DLQ_ARN`.
pub fn schedule_target(source: &impl Source) -> Result<ScheduleTarget, ConfigError> {
    Ok(ScheduleTarget {
        group: source.require(
            SCHEDULE_GROUP,
            "the EventBridge Scheduler group of the SLA reminders (stack output \
             ScheduleGroupName, or `switchboard provision`)",
        )?,
        queue_arn: source.require(
            REMINDER_QUEUE_ARN,
            "the ARN of the reminder queue the schedules send to (stack output \
             ReminderQueueArn, or `switchboard provision`)",
        )?,
        role_arn: source.require(
            SCHEDULER_ROLE_ARN,
            "the ARN of the role EventBridge Scheduler assumes to send reminders \
             (stack output SchedulerRoleArn, or `switchboard provision`)",
        )?,
        dead_letter_arn: source
            .get(SCHEDULER_DLQ_ARN)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()),
    })
}

/// The store's settings, which every function needs: `SWITCHBOARD_TABLE` and
/// `SWITCHBOARD_RETENTION_DAYS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Table name.
    pub table: String,
    /// Days data is kept.
    pub retention_days: u32,
}

impl StoreSettings {
    /// Reads the settings; the error names the first missing or bad one.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: table(source)?,
            retention_days: config::retention_days(source)?,
        })
    }
}

/// A webhook function's settings: the store's and `SWITCHBOARD_INTAKE_QUEUE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Table name.
    pub table: String,
    /// Intake queue URL.
    pub intake_queue_url: String,
    /// Days data is kept.
    pub retention_days: u32,
}

impl AwsSettings {
    /// Reads the settings; the error names the first missing or bad one.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: table(source)?,
            intake_queue_url: intake_queue_url(source)?,
            retention_days: config::retention_days(source)?,
        })
    }

    /// The store's part.
    pub fn store(&self) -> StoreSettings {
        StoreSettings {
            table: self.table.clone(),
            retention_days: self.retention_days,
        }
    }
}

/// The settings of a Lambda function that takes deliveries in (`webhook-*`, `email-intake`):
/// the store's and `SWITCHBOARD_OUTBOX_TABLE`. Such a function never calls SQS: its records'
/// queue entries go into the outbox table in the records' own transaction, and the table's
/// stream feeds the intake queue through the `intake-forwarder` function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeSettings {
    /// The store's part.
    pub store: StoreSettings,
    /// The outbox table's name.
    pub outbox_table: String,
}

impl IntakeSettings {
    /// Reads the settings; the error names the first missing or bad one.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreSettings::from_source(source)?,
            outbox_table: outbox_table(source)?,
        })
    }
}

/// The prioritizer's settings: `SWITCHBOARD_TABLE`, `SWITCHBOARD_EVENT_BUS`,
/// `SWITCHBOARD_SCHEDULE_GROUP`, `SWITCHBOARD_REMINDER_QUEUE_ARN`,
/// `SWITCHBOARD_SCHEDULER_ROLE_ARN`, `SWITCHBOARD_RETENTION_DAYS`, `SWITCHBOARD_PRIORITY`,
/// `SWITCHBOARD_POLICY`, `SWITCHBOARD_STATUSES_ANSWER`, `SWITCHBOARD_AUTO_LINK`.
#[derive(Debug, Clone)]
pub struct PrioritizerSettings {
    /// Table name.
    pub table: String,
    /// The EventBridge bus of the domain events.
    pub event_bus: String,
    /// Where the SLA reminders are scheduled, and what they send to.
    pub schedules: ScheduleTarget,
    /// Days data is kept.
    pub retention_days: u32,
    /// Weights, word lists, topics and teams.
    pub priority: PriorityConfig,
    /// The urgency model's file ([`config::model_path`]); `None`: the word lists alone.
    pub model: Option<std::path::PathBuf>,
    /// Response-time targets and calendars.
    pub policy: SlaPolicy,
    /// Whether statuses of messages sent elsewhere answer ([`config::statuses_answer`]).
    pub statuses_answer: bool,
    /// Whether identities are linked automatically ([`config::auto_link`]).
    pub auto_link: bool,
    /// The silent-channel watch ([`config::silent_after`] on the policy's default calendar);
    /// `None` when off.
    pub watch: Option<WatchSettings>,
}

impl PrioritizerSettings {
    /// Reads the settings; the error names the first missing or bad one.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: table(source)?,
            event_bus: event_bus(source)?,
            schedules: schedule_target(source)?,
            retention_days: config::retention_days(source)?,
            priority: config::priority_config(source)?,
            model: config::model_path(source),
            policy: config::sla_policy(source)?,
            statuses_answer: config::statuses_answer(source)?,
            auto_link: config::auto_link(source)?,
            watch: watch_settings(source)?,
        })
    }

    /// The store's part.
    pub fn store(&self) -> StoreSettings {
        StoreSettings {
            table: self.table.clone(),
            retention_days: self.retention_days,
        }
    }
}

/// The agent API's settings: `SWITCHBOARD_TABLE`, `SWITCHBOARD_EVENT_BUS` (resolutions,
/// assignments and answers are published), `SWITCHBOARD_SCHEDULE_GROUP`,
/// `SWITCHBOARD_REMINDER_QUEUE_ARN`, `SWITCHBOARD_SCHEDULER_ROLE_ARN` (the prioritizer's
/// reminder settings: an answer deletes the reminders it made), `SWITCHBOARD_RETENTION_DAYS`,
/// `SWITCHBOARD_PRIORITY` for the teams whose queues `GET /api/queue` merges, and
/// `SWITCHBOARD_POLICY` for the time zone of the figures' days and weeks (its default
/// calendar's).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Table name.
    pub table: String,
    /// The EventBridge bus of the domain events.
    pub event_bus: String,
    /// Where the SLA reminders are (an answer deletes its wait's).
    pub schedules: ScheduleTarget,
    /// Days data is kept.
    pub retention_days: u32,
    /// The teams of the priority configuration.
    pub teams: Vec<String>,
    /// The SLA policy's default calendar.
    pub calendar: Calendar,
    /// The console's sign-in, when the stack has a user pool
    /// (`SWITCHBOARD_CONSOLE_COGNITO_DOMAIN` and `SWITCHBOARD_CONSOLE_CLIENT_ID`, both or
    /// neither); `None`: no console (the API alone).
    pub console: Option<ConsoleSignIn>,
}

/// Where the deployed console's agents sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSignIn {
    /// The user pool's domain (`<prefix>.auth.<region>.amazoncognito.com`).
    pub domain: String,
    /// The console's app client id.
    pub client_id: String,
}

/// The user pool domain of the console's sign-in.
pub const CONSOLE_COGNITO_DOMAIN: &str = "SWITCHBOARD_CONSOLE_COGNITO_DOMAIN";
/// The console's app client id.
pub const CONSOLE_CLIENT_ID: &str = "SWITCHBOARD_CONSOLE_CLIENT_ID";

fn console_sign_in(source: &impl Source) -> Result<Option<ConsoleSignIn>, ConfigError> {
    match (
        source.get(CONSOLE_COGNITO_DOMAIN),
        source.get(CONSOLE_CLIENT_ID),
    ) {
        (None, None) => Ok(None),
        (Some(domain), Some(client_id)) => Ok(Some(ConsoleSignIn { domain, client_id })),
        (Some(_), None) => Err(ConfigError::Missing {
            name: CONSOLE_CLIENT_ID.into(),
            hint: format!("the console's app client id, set with {CONSOLE_COGNITO_DOMAIN}"),
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            name: CONSOLE_COGNITO_DOMAIN.into(),
            hint: format!("the user pool domain of the console, set with {CONSOLE_CLIENT_ID}"),
        }),
    }
}

impl ApiSettings {
    /// Reads the settings; the error names the first missing or bad one.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: table(source)?,
            event_bus: event_bus(source)?,
            schedules: schedule_target(source)?,
            retention_days: config::retention_days(source)?,
            teams: config::priority_teams(source)?,
            calendar: config::sla_policy(source)?.default_calendar().clone(),
            console: console_sign_in(source)?,
        })
    }

    /// The store's part.
    pub fn store(&self) -> StoreSettings {
        StoreSettings {
            table: self.table.clone(),
            retention_days: self.retention_days,
        }
    }
}

/// The customer erasure's settings: `SWITCHBOARD_TABLE`, `SWITCHBOARD_RETENTION_DAYS`, the
/// schedule settings (`SWITCHBOARD_SCHEDULE_GROUP`, …: the person's reminders are deleted) and
/// `SWITCHBOARD_MAIL_BUCKET` (optional: the person's mail objects are deleted).
#[derive(Debug, Clone)]
pub struct ErasureSettings {
    /// The store's settings.
    pub store: StoreSettings,
    /// Where the reminders are.
    pub schedules: ScheduleTarget,
    /// The mail bucket, when the stack has one.
    pub mail_bucket: Option<String>,
}

impl ErasureSettings {
    /// Reads the settings; the error names the first missing or bad one.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreSettings {
                table: table(source)?,
                retention_days: config::retention_days(source)?,
            },
            schedules: schedule_target(source)?,
            mail_bucket: source.get(MAIL_BUCKET),
        })
    }
}

/// The reminder consumer's settings: `SWITCHBOARD_TABLE`, `SWITCHBOARD_EVENT_BUS`,
/// `SWITCHBOARD_RETENTION_DAYS`.
#[derive(Debug, Clone)]
pub struct ReminderSettings {
    /// The store's settings.
    pub store: StoreSettings,
    /// The EventBridge bus of the domain events.
    pub event_bus: String,
    /// The silent-channel watch, and where its next checks are scheduled; `None` when off.
    pub watch: Option<(WatchSettings, ScheduleTarget)>,
}

impl ReminderSettings {
    /// Reads the settings; the error names the first missing or bad one (the schedule
    /// settings are needed only while the silent-channel watch is on).
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let table = table(source)?;
        let event_bus = event_bus(source)?;
        let watch = match watch_settings(source)? {
            Some(settings) => Some((settings, schedule_target(source)?)),
            None => None,
        };
        Ok(Self {
            store: StoreSettings {
                table,
                retention_days: config::retention_days(source)?,
            },
            event_bus,
            watch,
        })
    }
}

/// The silent-channel watch's settings: `SWITCHBOARD_SILENT_AFTER` on the default calendar
/// of `SWITCHBOARD_POLICY`; `None` when the watch is off.
pub fn watch_settings(source: &impl Source) -> Result<Option<WatchSettings>, ConfigError> {
    let Some(silent_after) = config::silent_after(source)? else {
        return Ok(None);
    };
    Ok(Some(WatchSettings {
        silent_after,
        calendar: config::sla_policy(source)?.default_calendar().clone(),
    }))
}
