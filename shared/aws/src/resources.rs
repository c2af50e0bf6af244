//! The AWS resources switchboard needs, defined once: `switchboard provision` creates them from
//! these definitions on an emulator or a development account, and a test holds them in agreement
//! with `template.yaml`, which creates them in a deployed stack.

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::HashMap;

/// Partition key attribute of the table.
pub const PK: &str = "pk";
/// Sort key attribute of the table.
pub const SK: &str = "sk";
/// The attribute DynamoDB's TTL reads (Unix seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// A global secondary index: name, partition key attribute, sort key attribute. Projection:
/// [`INDEX_ATTRIBUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    /// Index name.
    pub name: &'static str,
    /// Partition key attribute.
    pub pk: &'static str,
    /// Sort key attribute.
    pub sk: &'static str,
}

/// `gsi1`: a conversation's records in provider-time order (`C#<conversation>`), all
/// conversations by last activity (`CONVS`), an account's notifications.
pub const GSI1: IndexSpec = IndexSpec {
    name: "gsi1",
    pk: "gsi1pk",
    sk: "gsi1sk",
};
/// `gsi2`: a customer's records across conversations in provider-time order (`U#<customer>`),
/// one channel's conversations by last activity (`CONVS#<channel>`).
pub const GSI2: IndexSpec = IndexSpec {
    name: "gsi2",
    pk: "gsi2pk",
    sk: "gsi2sk",
};
/// `gsi3`: each team's queue (`Q#<team>`), sorted by `<rank>#<waiting_since>#<id>`: most
/// urgent first, then longest waiting. Sparse: only waiting conversations with a priority
/// carry its keys, so an answered conversation leaves the index.
pub const GSI3: IndexSpec = IndexSpec {
    name: "gsi3",
    pk: "gsi3pk",
    sk: "gsi3sk",
};
/// `gsi4`: each agent's queue (`A#<agent>`), the same sort key as `gsi3`. Sparse: only
/// waiting, prioritized conversations assigned to an agent carry its keys.
pub const GSI4: IndexSpec = IndexSpec {
    name: "gsi4",
    pk: "gsi4pk",
    sk: "gsi4sk",
};
/// Every index of the table.
pub const INDEXES: [IndexSpec; 4] = [GSI1, GSI2, GSI3, GSI4];

/// The attributes the indexes carry besides the keys: what the listings read (a record's `doc`
/// and `stored_at`, a conversation's `state`). Not `enqueued`: confirming an enqueue then
/// rewrites the record only, not its two index copies.
pub const INDEX_ATTRIBUTES: [&str; 3] = ["doc", "stored_at", "state"];

/// The outbox table's partition key: a conversation id. Its one other attribute besides
/// [`TTL_ATTRIBUTE`] is [`OUTBOX_ENTRIES`].
pub const OUTBOX_PK: &str = "conversation";
/// The outbox item's attribute holding the queue entries of the write that put it, in order
/// (a JSON array of `QueueEntry`).
pub const OUTBOX_ENTRIES: &str = "entries";
/// How long an outbox item is kept: a day, the stream's own retention; it is read from the
/// stream, never from the table.
pub const OUTBOX_KEEP_SECS: i64 = 24 * 3600;

/// The intake queue: FIFO (one conversation = one message group, so its records stay in order),
/// explicit deduplication ids (the record key), a dead-letter queue after a bounded number of
/// receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    /// Seconds a received message stays hidden; above the consumer's timeout.
    pub visibility_timeout_secs: u32,
    /// Seconds a message is kept (14 days, the SQS maximum).
    pub retention_secs: u32,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receive_count: u32,
}

/// The intake queue's settings.
pub const INTAKE_QUEUE: QueueSpec = QueueSpec {
    visibility_timeout_secs: 180,
    retention_secs: 1_209_600,
    max_receive_count: 5,
};

/// The reminder queue: standard (a reminder has no order to keep), the same redrive as the
/// intake queue.
pub const REMINDER_QUEUE: QueueSpec = QueueSpec {
    visibility_timeout_secs: 180,
    retention_secs: 1_209_600,
    max_receive_count: 5,
};

/// The key schema, attribute definitions and indexes of the table, as SDK types.
pub fn table_schema() -> (
    Vec<KeySchemaElement>,
    Vec<AttributeDefinition>,
    Vec<GlobalSecondaryIndex>,
) {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("name and type are set")
    };
    let string_attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let mut attributes = vec![string_attr(PK), string_attr(SK)];
    let mut indexes = Vec::new();
    for index in INDEXES {
        attributes.push(string_attr(index.pk));
        attributes.push(string_attr(index.sk));
        indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.pk, KeyType::Hash))
                .key_schema(key(index.sk, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .set_non_key_attributes(Some(
                            INDEX_ATTRIBUTES.iter().map(|a| a.to_string()).collect(),
                        ))
                        .build(),
                )
                .build()
                .expect("name, keys and projection are set"),
        );
    }
    (
        vec![key(PK, KeyType::Hash), key(SK, KeyType::Range)],
        attributes,
        indexes,
    )
}

/// The queue attributes of the intake queue, given its dead-letter queue's ARN.
pub fn intake_queue_attributes(dlq_arn: &str) -> HashMap<QueueAttributeName, String> {
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": INTAKE_QUEUE.max_receive_count,
    });
    HashMap::from([
        (QueueAttributeName::FifoQueue, "true".to_owned()),
        (
            QueueAttributeName::ContentBasedDeduplication,
            "false".to_owned(),
        ),
        (
            QueueAttributeName::VisibilityTimeout,
            INTAKE_QUEUE.visibility_timeout_secs.to_string(),
        ),
        (
            QueueAttributeName::MessageRetentionPeriod,
            INTAKE_QUEUE.retention_secs.to_string(),
        ),
        (QueueAttributeName::RedrivePolicy, redrive.to_string()),
    ])
}

/// The attributes of the intake dead-letter queue.
pub fn intake_dlq_attributes() -> HashMap<QueueAttributeName, String> {
    HashMap::from([
        (QueueAttributeName::FifoQueue, "true".to_owned()),
        (
            QueueAttributeName::MessageRetentionPeriod,
            INTAKE_QUEUE.retention_secs.to_string(),
        ),
    ])
}

/// Names of the provisioned resources, from a prefix (the stack name in a deployment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    /// The table.
    pub table: String,
    /// The intake queue (ends in `.fifo`).
    pub intake_queue: String,
    /// The intake dead-letter queue (ends in `.fifo`).
    pub intake_dlq: String,
    /// The outbox table, whose stream feeds the intake queue.
    pub outbox_table: String,
    /// The EventBridge bus of the domain events.
    pub event_bus: String,
    /// The reminder queue (standard).
    pub reminder_queue: String,
    /// Its dead-letter queue.
    pub reminder_dlq: String,
    /// The dead-letter queue of the schedules: reminders Scheduler could not deliver.
    pub schedule_dlq: String,
    /// The EventBridge Scheduler group of the reminders.
    pub schedule_group: String,
    /// The role Scheduler assumes to send reminders (created by the stack, not by
    /// `provision`).
    pub scheduler_role: String,
}

impl ResourceNames {
    /// The names `template.yaml` gives a stack called `prefix`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            table: format!("{prefix}-table"),
            intake_queue: format!("{prefix}-intake.fifo"),
            intake_dlq: format!("{prefix}-intake-dlq.fifo"),
            outbox_table: format!("{prefix}-outbox"),
            event_bus: format!("{prefix}-events"),
            reminder_queue: format!("{prefix}-reminders"),
            reminder_dlq: format!("{prefix}-reminders-dlq"),
            schedule_dlq: format!("{prefix}-schedules-dlq"),
            schedule_group: format!("{prefix}-sla"),
            scheduler_role: format!("{prefix}-scheduler"),
        }
    }
}

/// What `provision` created (or found): the values of `SWITCHBOARD_TABLE`,
/// `SWITCHBOARD_OUTBOX_TABLE` and `SWITCHBOARD_INTAKE_QUEUE_URL`, the outbox's stream and the
/// dead-letter queue's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// Table name.
    pub table: String,
    /// Intake queue URL.
    pub intake_queue_url: String,
    /// The outbox table's name.
    pub outbox_table: String,
    /// The ARN of the outbox table's stream (what the forwarder reads).
    pub outbox_stream_arn: String,
    /// Dead-letter queue URL.
    pub intake_dlq_url: String,
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
#[error("could not {step}")]
pub struct ProvisionError {
    step: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

fn failed(
    step: impl Into<String>,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> ProvisionError {
    let step = step.into();
    move |source| ProvisionError { step, source }
}

/// The outbox table's stream: new images only (an outbox item holds queue entries, never a
/// message's content), which the forwarder turns into queue messages.
pub fn outbox_stream() -> StreamSpecification {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewImage)
        .build()
        .expect("the flag is set")
}

/// Creates the table and the outbox table (both with TTL, the outbox with its stream), the
/// dead-letter queue and the intake queue, unless they exist. Safe to run again: existing
/// resources are left as they are.
pub async fn provision(
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    names: &ResourceNames,
) -> Result<Provisioned, ProvisionError> {
    let (keys, attributes, indexes) = table_schema();
    let created = dynamodb
        .create_table()
        .table_name(&names.table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys))
        .set_attribute_definitions(Some(attributes))
        .set_global_secondary_indexes(Some(indexes))
        .send()
        .await;
    created_unless_there(created, &names.table)?;
    enable_ttl(dynamodb, &names.table).await?;
    let created = dynamodb
        .create_table()
        .table_name(&names.outbox_table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(OUTBOX_PK)
                .key_type(KeyType::Hash)
                .build()
                .expect("name and type are set"),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(OUTBOX_PK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set"),
        )
        .stream_specification(outbox_stream())
        .send()
        .await;
    created_unless_there(created, &names.outbox_table)?;
    enable_ttl(dynamodb, &names.outbox_table).await?;
    let outbox_stream_arn = dynamodb
        .describe_table()
        .table_name(&names.outbox_table)
        .send()
        .await
        .map_err(|e| failed("read the outbox table's stream")(e.into()))?
        .table()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned)
        .ok_or_else(|| failed("read the outbox table's stream")("no stream".into()))?;

    let dlq_url = create_queue(sqs, &names.intake_dlq, intake_dlq_attributes()).await?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed("read the dead-letter queue's ARN")(e.into()))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| failed("read the dead-letter queue's ARN")("no QueueArn returned".into()))?;
    let queue_url =
        create_queue(sqs, &names.intake_queue, intake_queue_attributes(&dlq_arn)).await?;
    Ok(Provisioned {
        table: names.table.clone(),
        intake_queue_url: queue_url,
        outbox_table: names.outbox_table.clone(),
        outbox_stream_arn,
        intake_dlq_url: dlq_url,
    })
}

/// A table created, or there already.
fn created_unless_there<T>(
    created: Result<T, aws_sdk_dynamodb::error::SdkError<CreateTableError>>,
    table: &str,
) -> Result<(), ProvisionError> {
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(failed(format!("create table {table}"))(e.into())),
    }
}

/// Turns on TTL on [`TTL_ATTRIBUTE`] of `table` (done already is fine).
async fn enable_ttl(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), ProvisionError> {
    let ttl = dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .expect("name and flag are set"),
        )
        .send()
        .await;
    if let Err(e) = ttl {
        // Enabling TTL twice is refused with a ValidationException: already done.
        let already = e
            .as_service_error()
            .and_then(|s| s.meta().message())
            .is_some_and(|m| m.contains("already enabled"));
        if !already {
            return Err(failed(format!("enable TTL on {table}"))(e.into()));
        }
    }
    Ok(())
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, ProvisionError> {
    sqs.create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| failed(format!("create queue {name}"))(e.into()))?
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| failed(format!("create queue {name}"))("no QueueUrl returned".into()))
}

/// Creates the event bus unless it exists; answers its name (the value of
/// `SWITCHBOARD_EVENT_BUS`).
pub async fn provision_event_bus(
    eventbridge: &aws_sdk_eventbridge::Client,
    names: &ResourceNames,
) -> Result<String, ProvisionError> {
    let created = eventbridge
        .create_event_bus()
        .name(&names.event_bus)
        .send()
        .await;
    match created {
        Ok(_) => Ok(names.event_bus.clone()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) =>
        {
            Ok(names.event_bus.clone())
        }
        Err(e) => Err(failed(format!("create event bus {}", names.event_bus))(
            e.into(),
        )),
    }
}

/// What [`provision_reminders`] created (or found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedReminders {
    /// The schedule group (`SWITCHBOARD_SCHEDULE_GROUP`).
    pub group: String,
    /// The reminder queue's URL (`SWITCHBOARD_REMINDER_QUEUE_URL`).
    pub queue_url: String,
    /// The reminder queue's ARN (`SWITCHBOARD_REMINDER_QUEUE_ARN`).
    pub queue_arn: String,
    /// Its dead-letter queue's URL.
    pub dlq_url: String,
    /// The schedules' dead-letter queue's ARN (`SWITCHBOARD_SCHEDULER_DLQ_ARN`).
    pub schedule_dlq_arn: String,
    /// The ARN the scheduler role has in the queue's account (`SWITCHBOARD_SCHEDULER_ROLE_ARN`).
    pub role_arn: String,
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, ProvisionError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed(format!("read the ARN of {url}"))(e.into()))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| failed(format!("read the ARN of {url}"))("no QueueArn returned".into()))
}

fn retention_of_dlq() -> (QueueAttributeName, String) {
    (
        QueueAttributeName::MessageRetentionPeriod,
        REMINDER_QUEUE.retention_secs.to_string(),
    )
}

/// Creates the reminder queue, its dead-letter queue, the schedules' dead-letter queue and the
/// schedule group, unless they exist.
/// The role Scheduler assumes is not created (no IAM here): its ARN is derived from the
/// queue's account; the stack creates it, and an emulator does not check it.
pub async fn provision_reminders(
    sqs: &aws_sdk_sqs::Client,
    scheduler: &aws_sdk_scheduler::Client,
    names: &ResourceNames,
) -> Result<ProvisionedReminders, ProvisionError> {
    let retention = (
        QueueAttributeName::MessageRetentionPeriod,
        REMINDER_QUEUE.retention_secs.to_string(),
    );
    let dlq_url =
        create_queue(sqs, &names.reminder_dlq, HashMap::from([retention.clone()])).await?;
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": REMINDER_QUEUE.max_receive_count,
    });
    let queue_url = create_queue(
        sqs,
        &names.reminder_queue,
        HashMap::from([
            retention,
            (
                QueueAttributeName::VisibilityTimeout,
                REMINDER_QUEUE.visibility_timeout_secs.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ]),
    )
    .await?;
    let schedule_dlq_url = create_queue(
        sqs,
        &names.schedule_dlq,
        HashMap::from([retention_of_dlq()]),
    )
    .await?;
    let schedule_dlq_arn = queue_arn(sqs, &schedule_dlq_url).await?;
    let queue_arn = queue_arn(sqs, &queue_url).await?;
    let created = scheduler
        .create_schedule_group()
        .name(&names.schedule_group)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conflict_exception()) => {}
        Err(e) => {
            return Err(failed(format!(
                "create schedule group {}",
                names.schedule_group
            ))(e.into()));
        }
    }
    let account = queue_arn.split(':').nth(4).unwrap_or_default().to_owned();
    Ok(ProvisionedReminders {
        group: names.schedule_group.clone(),
        queue_url,
        queue_arn,
        dlq_url,
        schedule_dlq_arn,
        role_arn: format!("arn:aws:iam::{account}:role/{}", names.scheduler_role),
    })
}
