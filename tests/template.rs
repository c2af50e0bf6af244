//! `template.yaml` (what a deployment creates) agrees with the resource definitions the code uses
//! (what `switchboard provision` creates and what the adapters expect), and follows the rules of
//! the project: least privilege, no secret as a plain parameter.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

use switchboard_aws::resources::{self, INDEXES, INTAKE_QUEUE, PK, SK, TTL_ATTRIBUTE};

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml");
    serde_yaml_ng::from_str(&text).expect("template.yaml is plain YAML (long-form intrinsics)")
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    let r = &t["Resources"][name];
    assert!(r.is_object(), "resource {name} missing");
    r
}

#[test]
fn the_table_matches_the_code_definitions() {
    let t = template();
    let table = &resource(&t, "Table")["Properties"];
    let (keys, attributes, indexes) = resources::table_schema();
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    let key_schema: Vec<(String, String)> = table["KeySchema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().into(),
                k["KeyType"].as_str().unwrap().into(),
            )
        })
        .collect();
    let code_keys: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.attribute_name().into(), k.key_type().as_str().into()))
        .collect();
    assert_eq!(key_schema, code_keys);
    assert_eq!(code_keys[0].0, PK);
    assert_eq!(code_keys[1].0, SK);
    let template_attrs: BTreeSet<(String, String)> = table["AttributeDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().into(),
                a["AttributeType"].as_str().unwrap().into(),
            )
        })
        .collect();
    let code_attrs: BTreeSet<(String, String)> = attributes
        .iter()
        .map(|a| {
            (
                a.attribute_name().into(),
                a.attribute_type().as_str().into(),
            )
        })
        .collect();
    assert_eq!(template_attrs, code_attrs);
    let template_indexes = table["GlobalSecondaryIndexes"].as_array().unwrap();
    assert_eq!(template_indexes.len(), indexes.len());
    for (spec, code) in INDEXES.iter().zip(&indexes) {
        let t_index = template_indexes
            .iter()
            .find(|i| i["IndexName"] == spec.name)
            .unwrap_or_else(|| panic!("index {} missing", spec.name));
        assert_eq!(code.index_name(), spec.name);
        let t_keys: Vec<&str> = t_index["KeySchema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["AttributeName"].as_str().unwrap())
            .collect();
        assert_eq!(t_keys, [spec.pk, spec.sk]);
        let projection = code.projection().expect("projection");
        assert_eq!(
            t_index["Projection"]["ProjectionType"],
            projection.projection_type().unwrap().as_str()
        );
        assert_eq!(
            t_index["Projection"]["NonKeyAttributes"],
            serde_json::json!(projection.non_key_attributes())
        );
    }
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        TTL_ATTRIBUTE
    );
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
}

#[test]
fn the_queues_match_the_code_definitions() {
    let t = template();
    let queue = &resource(&t, "IntakeQueue")["Properties"];
    let dlq = &resource(&t, "IntakeDeadLetterQueue")["Properties"];
    let code = resources::intake_queue_attributes("arn:dlq");
    let attr = |name: aws_sdk_sqs::types::QueueAttributeName| code.get(&name).cloned().unwrap();
    use aws_sdk_sqs::types::QueueAttributeName as Q;
    assert_eq!(queue["FifoQueue"].to_string(), attr(Q::FifoQueue));
    assert_eq!(dlq["FifoQueue"], true);
    assert_eq!(
        queue["ContentBasedDeduplication"].to_string(),
        attr(Q::ContentBasedDeduplication)
    );
    assert_eq!(
        queue["VisibilityTimeout"],
        INTAKE_QUEUE.visibility_timeout_secs
    );
    assert_eq!(queue["MessageRetentionPeriod"], INTAKE_QUEUE.retention_secs);
    assert_eq!(dlq["MessageRetentionPeriod"], INTAKE_QUEUE.retention_secs);
    assert_eq!(
        queue["RedrivePolicy"]["maxReceiveCount"],
        INTAKE_QUEUE.max_receive_count
    );
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"],
        serde_json::json!(["IntakeDeadLetterQueue", "Arn"])
    );
    let redrive: Value = serde_json::from_str(&attr(Q::RedrivePolicy)).unwrap();
    assert_eq!(redrive["maxReceiveCount"], INTAKE_QUEUE.max_receive_count);
    // The names provision gives a prefix are the names the template gives a stack.
    let names = resources::ResourceNames::with_prefix("${AWS::StackName}");
    assert_eq!(queue["QueueName"]["Fn::Sub"], names.intake_queue);
    assert_eq!(dlq["QueueName"]["Fn::Sub"], names.intake_dlq);
}

/// The webhook functions of the template, one per channel module of the registry: (the
/// function's resource, its webhook, the resource of its secret). Each module must have its
/// function (by the binary it builds) and the function its secret.
fn webhook_functions(t: &Value) -> Vec<(String, String, String)> {
    let resources = t["Resources"].as_object().unwrap();
    switchboard_core::channels::REGISTRY
        .iter()
        .map(|module| {
            let (name, function) = resources
                .iter()
                .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"] == module.function())
                .unwrap_or_else(|| panic!("no function builds {}", module.function()));
            let webhook = module.webhook().as_str();
            let arn_var = format!("SWITCHBOARD_{}_SECRET_ARN", webhook.to_ascii_uppercase());
            let secret =
                function["Properties"]["Environment"]["Variables"][arn_var.as_str()]["Ref"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} has no {arn_var}"));
            (name.clone(), webhook.to_owned(), secret.to_owned())
        })
        .collect()
}

/// The webhook functions whose replies are sent with a token of their secret.
fn replying_webhooks(t: &Value) -> Vec<(String, String, String)> {
    webhook_functions(t)
        .into_iter()
        .filter(|(_, webhook, _)| {
            let webhook: switchboard_core::model::Webhook = webhook.parse().unwrap();
            switchboard_core::channels::reply_credential(webhook).is_some()
        })
        .collect()
}

/// `function` is built from the crate `functions/<binary>`, whose package is named so.
fn builds(function: &Value, binary: &str) {
    assert_eq!(function["Metadata"]["BuildProperties"]["Binary"], binary);
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions")
            .join(binary)
            .join("Cargo.toml"),
    )
    .unwrap_or_else(|e| panic!("the {binary} crate: {e}"));
    assert!(
        manifest.contains(&format!("name = \"{binary}\"")),
        "{binary}"
    );
}

#[test]
fn every_webhook_function_is_wired_as_the_code_expects() {
    let t = template();
    for (name, webhook, secret) in webhook_functions(&t) {
        function_is_wired(&t, &name, &webhook, &secret);
    }
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], serde_json::json!(["arm64"]));
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
}

fn function_is_wired(t: &Value, name: &str, webhook: &str, secret: &str) {
    let function = resource(t, name);
    assert_eq!(resource(t, secret)["Type"], "AWS::SecretsManager::Secret");
    assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda");
    let binary = function["Metadata"]["BuildProperties"]["Binary"]
        .as_str()
        .unwrap();
    builds(function, binary);
    let env = &function["Properties"]["Environment"]["Variables"];
    let arn_var = format!("SWITCHBOARD_{}_SECRET_ARN", webhook.to_ascii_uppercase());
    assert_eq!(env[arn_var.as_str()]["Ref"], secret);
    for name in [
        switchboard_aws::settings::TABLE,
        switchboard_aws::settings::OUTBOX_TABLE,
        switchboard_core::config::RETENTION_DAYS,
        arn_var.as_str(),
    ] {
        assert!(
            env[name].is_object(),
            "{name} not set from a resource or parameter"
        );
    }
    let routes: BTreeSet<(String, String)> = function["Properties"]["Events"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| {
            assert_eq!(e["Type"], "HttpApi");
            (
                e["Properties"]["Method"].as_str().unwrap().to_owned(),
                e["Properties"]["Path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        BTreeSet::from([
            ("GET".into(), format!("/webhooks/{webhook}")),
            ("POST".into(), format!("/webhooks/{webhook}"))
        ])
    );
    assert!(
        webhook.parse::<switchboard_core::model::Webhook>().is_ok(),
        "{webhook} is a webhook the code serves"
    );
}

#[test]
fn every_webhook_role_has_exactly_the_actions_it_uses_on_its_own_resources() {
    let t = template();
    for (name, _, secret) in webhook_functions(&t) {
        role_is_least_privilege(&t, &name, &secret);
    }
}

fn role_is_least_privilege(t: &Value, name: &str, secret: &str) {
    let function = resource(t, name);
    let statements: Vec<&Value> = function["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["Statement"]
                .as_array()
                .expect("inline statements only")
                .iter()
        })
        .collect();
    let mut actions = BTreeSet::new();
    for s in &statements {
        assert_eq!(s["Effect"], "Allow");
        assert!(
            s["Resource"].is_object(),
            "resource must be a reference, not {}",
            s["Resource"]
        );
        let list = match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
            other => panic!("{other}"),
        };
        for a in list {
            assert!(!a.contains('*'), "wildcard action {a}");
            actions.insert(a);
        }
    }
    let used: BTreeSet<String> = [
        // DynamoStore: BatchGetItem (dedup), BatchWriteItem (raw delivery chunks),
        // TransactWriteItems of Put and Update (new records, confirmations), UpdateItem
        // TransactWriteItems need the underlying actions' permissions. GetItem and PutItem
        // (conversations, read and written back under a version condition). PutItem on the
        // outbox table (the queue entries, in the records' transaction). No SQS.
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(actions, used, "{name}");
    // A function reads its own secret and no other.
    let secret_refs: Vec<&Value> = statements
        .iter()
        .filter(|s| s["Action"] == "secretsmanager:GetSecretValue")
        .map(|s| &s["Resource"])
        .collect();
    assert_eq!(secret_refs, [&serde_json::json!({"Ref": secret})], "{name}");
    // The outbox table is written with PutItem alone; nothing else reaches it.
    let outbox = serde_json::json!({"Fn::GetAtt": ["OutboxTable", "Arn"]});
    let on_outbox: Vec<&Value> = statements
        .iter()
        .filter(|s| s["Resource"] == outbox)
        .map(|s| &s["Action"])
        .collect();
    assert_eq!(
        on_outbox,
        [&serde_json::json!("dynamodb:PutItem")],
        "{name}"
    );
}

#[test]
fn the_outbox_table_streams_to_the_forwarder_which_alone_sends_to_the_intake_queue() {
    let t = template();
    let table = &resource(&t, "OutboxTable")["Properties"];
    assert_eq!(
        table["KeySchema"],
        serde_json::json!([{"AttributeName": resources::OUTBOX_PK, "KeyType": "HASH"}])
    );
    assert_eq!(
        table["StreamSpecification"]["StreamViewType"],
        resources::outbox_stream()
            .stream_view_type()
            .expect("a view type")
            .as_str()
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        resources::TTL_ATTRIBUTE
    );
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);

    let function = resource(&t, "IntakeForwarderFunction");
    builds(function, "intake-forwarder");
    assert_eq!(
        function["Properties"]["Environment"]["Variables"]
            [switchboard_aws::settings::INTAKE_QUEUE_URL],
        serde_json::json!({"Ref": "IntakeQueue"})
    );
    // Reads its own stream, sends to the intake queue and to its failure destination: nothing
    // else.
    let stream = serde_json::json!({"Fn::GetAtt": ["OutboxTable", "StreamArn"]});
    let queue = serde_json::json!({"Fn::GetAtt": ["IntakeQueue", "Arn"]});
    let dlq = serde_json::json!({"Fn::GetAtt": ["OutboxDeadLetterQueue", "Arn"]});
    let granted = grants(function);
    let expected: BTreeSet<(String, String)> = [
        ("dynamodb:DescribeStream", &stream),
        ("dynamodb:GetRecords", &stream),
        ("dynamodb:GetShardIterator", &stream),
        ("dynamodb:ListStreams", &stream),
        ("sqs:SendMessage", &queue),
        ("sqs:SendMessage", &dlq),
    ]
    .into_iter()
    .map(|(a, r)| (a.to_owned(), r.to_string()))
    .collect();
    assert_eq!(granted, expected);

    let mapping = &resource(&t, "IntakeForwarderMapping")["Properties"];
    assert_eq!(
        mapping["FunctionName"],
        serde_json::json!({"Ref": "IntakeForwarderFunction"})
    );
    assert_eq!(mapping["EventSourceArn"], stream);
    assert_eq!(
        mapping["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    // Retried until it goes through, from the oldest record kept; a batch still failing an
    // hour before the stream would drop it is described in the dead-letter queue instead.
    assert_eq!(mapping["MaximumRetryAttempts"], -1);
    assert_eq!(mapping["MaximumRecordAgeInSeconds"], 23 * 3600);
    assert_eq!(mapping["StartingPosition"], "TRIM_HORIZON");
    assert_eq!(
        mapping["DestinationConfig"]["OnFailure"]["Destination"],
        dlq
    );
    let pattern: Value = serde_json::from_str(
        mapping["FilterCriteria"]["Filters"][0]["Pattern"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        pattern,
        serde_json::json!({"eventName": ["INSERT", "MODIFY"]})
    );

    // No other function sends to the intake queue.
    for (name, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::Serverless::Function" || name == "IntakeForwarderFunction" {
            continue;
        }
        for statement in r["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["Statement"].as_array().into_iter().flatten())
        {
            assert!(
                !(statement["Resource"] == queue
                    && statement["Action"].to_string().contains("sqs:SendMessage")),
                "{name} sends to the intake queue"
            );
        }
    }
}

#[test]
fn no_secret_is_a_plain_parameter() {
    let t = template();
    for (name, p) in t["Parameters"].as_object().into_iter().flatten() {
        let lower = name.to_ascii_lowercase();
        assert!(
            !["secret", "token", "password"]
                .iter()
                .any(|w| lower.contains(w)),
            "parameter {name} looks like a secret: {p}"
        );
        // A key EventBridge needs as a value (the ticketing connection's, which it keeps in a
        // secret of its own) is never echoed.
        if lower.contains("apikey") && !lower.contains("header") {
            assert_eq!(p["NoEcho"], true, "parameter {name} must be NoEcho");
        }
    }
    assert_eq!(
        resource(&t, "WhatsAppSecret")["Type"],
        "AWS::SecretsManager::Secret"
    );
}

#[test]
fn the_prioritizer_consumes_the_intake_queue_with_partial_batch_failures() {
    let t = template();
    let function = resource(&t, "PrioritizerFunction");
    builds(function, "prioritizer");
    let env = &function["Properties"]["Environment"]["Variables"];
    assert_eq!(env[switchboard_aws::settings::TABLE]["Ref"], "Table");
    assert_eq!(env[switchboard_aws::settings::EVENT_BUS]["Ref"], "EventBus");
    assert!(env[switchboard_core::config::RETENTION_DAYS].is_object());
    assert_eq!(
        env[switchboard_aws::settings::SCHEDULE_GROUP]["Ref"],
        "ScheduleGroup"
    );
    assert_eq!(
        env[switchboard_aws::settings::REMINDER_QUEUE_ARN]["Fn::GetAtt"],
        serde_json::json!(["ReminderQueue", "Arn"])
    );
    assert_eq!(
        env[switchboard_aws::settings::SCHEDULER_ROLE_ARN]["Fn::GetAtt"],
        serde_json::json!(["SchedulerRole", "Arn"])
    );
    // No SAM event: it would attach a managed SQS policy on any queue.
    assert!(function["Properties"]["Events"].is_null());

    // The urgency model: the layer's file is where the function's setting points, and the
    // layer is built by its Makefile target (sam build runs `make build-<logical id>`),
    // which takes the file infra/model.sh fetched and verified.
    assert_eq!(
        function["Properties"]["Layers"],
        serde_json::json!([{ "Ref": "ModelLayer" }])
    );
    let layer = resource(&t, "ModelLayer");
    assert_eq!(layer["Type"], "AWS::Serverless::LayerVersion");
    assert_eq!(layer["Metadata"]["BuildMethod"], "makefile");
    assert_eq!(layer["Metadata"]["BuildArchitecture"], "arm64");
    let content = layer["Properties"]["ContentUri"].as_str().unwrap();
    let makefile = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(content)
            .join("Makefile"),
    )
    .expect("the layer's Makefile");
    assert!(makefile.contains("build-ModelLayer:"), "{makefile}");
    assert!(makefile.contains("../model.sh"), "{makefile}");
    let model = env[switchboard_core::config::MODEL].as_str().unwrap();
    let file = model
        .strip_prefix("/opt/")
        .expect("a file of a layer, under /opt");
    assert!(
        makefile.contains(&format!("$(ARTIFACTS_DIR)/{file}")),
        "the layer puts the model at {model}: {makefile}"
    );
    // Memory sized for the model (BENCHMARKS.md): above the stack's default.
    assert_eq!(function["Properties"]["MemorySize"], 1024);

    let mapping = resource(&t, "PrioritizerIntakeMapping");
    assert_eq!(mapping["Type"], "AWS::Lambda::EventSourceMapping");
    let p = &mapping["Properties"];
    assert_eq!(p["FunctionName"]["Ref"], "PrioritizerFunction");
    assert_eq!(
        p["EventSourceArn"]["Fn::GetAtt"],
        serde_json::json!(["IntakeQueue", "Arn"])
    );
    assert_eq!(
        p["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    assert!(
        p["BatchSize"].as_u64().unwrap() <= 10,
        "FIFO batches hold at most 10"
    );
    // AWS's advice for SQS event sources: a visibility timeout of at least six times the
    // function's timeout, so a retried batch is not received again while it still runs.
    let timeout = function["Properties"]["Timeout"]
        .as_u64()
        .or_else(|| t["Globals"]["Function"]["Timeout"].as_u64())
        .unwrap();
    assert!(u64::from(INTAKE_QUEUE.visibility_timeout_secs) >= 6 * timeout);

    let bus = resource(&t, "EventBus");
    assert_eq!(bus["Type"], "AWS::Events::EventBus");
    let names = resources::ResourceNames::with_prefix("${AWS::StackName}");
    assert_eq!(bus["Properties"]["Name"]["Fn::Sub"], names.event_bus);

    let statements: Vec<&Value> = function["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["Statement"].as_array().unwrap().iter())
        .collect();
    let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
    for s in &statements {
        assert_eq!(s["Effect"], "Allow");
        let resource = s["Resource"].to_string();
        let list = match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
            other => panic!("{other}"),
        };
        for a in list {
            assert!(!a.contains('*'), "wildcard action {a}");
            granted.insert((a, resource.clone()));
        }
    }
    let table = serde_json::json!({"Fn::GetAtt": ["Table", "Arn"]}).to_string();
    let gsi2 = serde_json::json!({"Fn::Sub": "${Table.Arn}/index/gsi2"}).to_string();
    let queue = serde_json::json!({"Fn::GetAtt": ["IntakeQueue", "Arn"]}).to_string();
    let events = serde_json::json!({"Fn::GetAtt": ["EventBus", "Arn"]}).to_string();
    let schedules = serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"}).to_string();
    let role = serde_json::json!({"Fn::GetAtt": ["SchedulerRole", "Arn"]}).to_string();
    let expected: BTreeSet<(String, String)> = [
        // DynamoStore: find (BatchGetItem), conversation and customer (GetItem), the history's
        // activity and conversations (BatchGetItem), the activity noted (UpdateItem), the
        // conversation written back under its version (PutItem) with the metrics' ADD
        // (UpdateItem) in one transaction, the records a link moves (Query on gsi2).
        ("dynamodb:GetItem", &table),
        ("dynamodb:BatchGetItem", &table),
        ("dynamodb:PutItem", &table),
        ("dynamodb:UpdateItem", &table),
        ("dynamodb:Query", &gsi2),
        // Identity resolution: the sightings of an identifier (`I#…` partitions only).
        ("dynamodb:Query", &table),
        // The event source mapping, on the function's role.
        ("sqs:ReceiveMessage", &queue),
        ("sqs:DeleteMessage", &queue),
        ("sqs:ChangeMessageVisibility", &queue),
        ("sqs:GetQueueAttributes", &queue),
        ("events:PutEvents", &events),
        // SchedulerReminders: a schedule created per reminder, deleted when the wait ends,
        // with the scheduler role passed to it.
        ("scheduler:CreateSchedule", &schedules),
        ("scheduler:DeleteSchedule", &schedules),
        ("iam:PassRole", &role),
    ]
    .into_iter()
    .map(|(a, r)| (a.to_owned(), r.clone()))
    .collect();
    assert_eq!(granted, expected);
    let identifiers = statements
        .iter()
        .find(|s| s["Sid"] == "IdentifierQuery")
        .expect("the identifier query");
    assert_eq!(
        identifiers["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
        serde_json::json!(["I#*"])
    );
}

/// The actions of a function's inline policies, with the resource each is granted on.
fn grants(function: &Value) -> BTreeSet<(String, String)> {
    let mut granted = BTreeSet::new();
    for p in function["Properties"]["Policies"].as_array().unwrap() {
        for s in p["Statement"].as_array().unwrap() {
            // A statement under a condition: the grant when it holds.
            let s = s.get("Fn::If").map_or(s, |branches| &branches[1]);
            assert_eq!(s["Effect"], "Allow");
            let list = match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
                other => panic!("{other}"),
            };
            let resources: Vec<String> = match &s["Resource"] {
                Value::Array(r) => r.iter().map(Value::to_string).collect(),
                one => vec![one.to_string()],
            };
            for a in list {
                assert!(!a.contains('*'), "wildcard action {a}");
                for r in &resources {
                    granted.insert((a.clone(), r.clone()));
                }
            }
        }
    }
    granted
}

#[test]
fn the_reminders_go_from_scheduler_to_their_queue_and_the_sla_reminder_function() {
    let t = template();
    let names = resources::ResourceNames::with_prefix("${AWS::StackName}");
    let group = resource(&t, "ScheduleGroup");
    assert_eq!(group["Type"], "AWS::Scheduler::ScheduleGroup");
    assert_eq!(group["Properties"]["Name"]["Fn::Sub"], names.schedule_group);
    let queue = &resource(&t, "ReminderQueue")["Properties"];
    let dlq = &resource(&t, "ReminderDeadLetterQueue")["Properties"];
    assert_eq!(queue["QueueName"]["Fn::Sub"], names.reminder_queue);
    assert_eq!(dlq["QueueName"]["Fn::Sub"], names.reminder_dlq);
    assert!(
        queue["FifoQueue"].is_null(),
        "a standard queue: Scheduler sends without a group"
    );
    assert_eq!(
        queue["VisibilityTimeout"],
        resources::REMINDER_QUEUE.visibility_timeout_secs
    );
    assert_eq!(
        queue["MessageRetentionPeriod"],
        resources::REMINDER_QUEUE.retention_secs
    );
    assert_eq!(
        queue["RedrivePolicy"]["maxReceiveCount"],
        resources::REMINDER_QUEUE.max_receive_count
    );
    assert_eq!(
        resource(&t, "ReminderDeadLetterQueueAlarm")["Type"],
        "AWS::CloudWatch::Alarm"
    );

    // Scheduler's role: assumed by Scheduler, sends to the reminder queue and to the
    // schedules' dead-letter queue, nothing else.
    let role = &resource(&t, "SchedulerRole")["Properties"];
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        "scheduler.amazonaws.com"
    );
    let statements = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Action"], "sqs:SendMessage");
    assert_eq!(
        statements[0]["Resource"],
        serde_json::json!([
            {"Fn::GetAtt": ["ReminderQueue", "Arn"]},
            {"Fn::GetAtt": ["SchedulerDeadLetterQueue", "Arn"]}
        ])
    );
    // Every schedule names that dead-letter queue (the prioritizer and the sla-reminder create
    // them), and a message there is an alarm.
    let schedule_dlq = &resource(&t, "SchedulerDeadLetterQueue")["Properties"];
    assert_eq!(schedule_dlq["QueueName"]["Fn::Sub"], names.schedule_dlq);
    for creator in ["PrioritizerFunction", "SlaReminderFunction"] {
        let env = &resource(&t, creator)["Properties"]["Environment"]["Variables"];
        assert_eq!(
            env[switchboard_aws::settings::SCHEDULER_DLQ_ARN]["Fn::GetAtt"],
            serde_json::json!(["SchedulerDeadLetterQueue", "Arn"]),
            "{creator}"
        );
        assert_eq!(
            env[switchboard_core::config::SILENT_AFTER]["Ref"],
            "SilentAfter",
            "{creator}"
        );
    }

    let function = resource(&t, "SlaReminderFunction");
    builds(function, "sla-reminder");
    let env = &function["Properties"]["Environment"]["Variables"];
    assert_eq!(env[switchboard_aws::settings::TABLE]["Ref"], "Table");
    assert_eq!(env[switchboard_aws::settings::EVENT_BUS]["Ref"], "EventBus");
    assert!(function["Properties"]["Events"].is_null());
    let mapping = &resource(&t, "SlaReminderMapping")["Properties"];
    assert_eq!(mapping["FunctionName"]["Ref"], "SlaReminderFunction");
    assert_eq!(
        mapping["EventSourceArn"]["Fn::GetAtt"],
        serde_json::json!(["ReminderQueue", "Arn"])
    );
    assert_eq!(
        mapping["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    let table = serde_json::json!({"Fn::GetAtt": ["Table", "Arn"]}).to_string();
    let reminders = serde_json::json!({"Fn::GetAtt": ["ReminderQueue", "Arn"]}).to_string();
    let events = serde_json::json!({"Fn::GetAtt": ["EventBus", "Arn"]}).to_string();
    let schedules = serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"}).to_string();
    let scheduler_role = serde_json::json!({"Fn::GetAtt": ["SchedulerRole", "Arn"]}).to_string();
    let expected: BTreeSet<(String, String)> = [
        // ReminderHandler: the conversation (GetItem), written back on a breach (PutItem); an
        // account's watch, read and written back by a channel check, which may set the next
        // check (a schedule, with the scheduler role passed to it).
        ("dynamodb:GetItem", &table),
        ("dynamodb:PutItem", &table),
        ("scheduler:CreateSchedule", &schedules),
        ("iam:PassRole", &scheduler_role),
        ("sqs:ReceiveMessage", &reminders),
        ("sqs:DeleteMessage", &reminders),
        ("sqs:ChangeMessageVisibility", &reminders),
        ("sqs:GetQueueAttributes", &reminders),
        ("events:PutEvents", &events),
    ]
    .into_iter()
    .map(|(a, r)| (a.to_owned(), r.clone()))
    .collect();
    assert_eq!(grants(function), expected);

    // sla.breached reaches the SNS topic; the e-mail subscription is optional.
    let rule = &resource(&t, "BreachRule")["Properties"];
    assert_eq!(rule["EventBusName"]["Ref"], "EventBus");
    assert_eq!(
        rule["EventPattern"]["detail-type"],
        serde_json::json!(["sla.breached"])
    );
    assert_eq!(
        rule["EventPattern"]["source"],
        serde_json::json!([switchboard_aws::events::EVENT_SOURCE])
    );
    assert_eq!(rule["Targets"][0]["Arn"]["Ref"], "BreachTopic");
    assert_eq!(
        resource(&t, "BreachEmailSubscription")["Condition"],
        "HasBreachEmail"
    );
}

#[test]
fn the_agent_api_is_wired_iam_authorized_and_holds_only_what_it_uses() {
    let t = template();
    let function = resource(&t, "AgentApiFunction");
    builds(function, "agent-api");
    // The settings `agent_api_app` reads.
    let env = &function["Properties"]["Environment"]["Variables"];
    use switchboard_core::config;
    for name in [
        switchboard_aws::settings::TABLE,
        switchboard_aws::settings::EVENT_BUS,
        switchboard_aws::settings::SCHEDULE_GROUP,
        switchboard_aws::settings::REMINDER_QUEUE_ARN,
        switchboard_aws::settings::SCHEDULER_ROLE_ARN,
        config::RETENTION_DAYS,
        config::GRAPH_API_URL,
        config::TELEGRAM_API_URL,
    ] {
        assert!(
            env[name].is_object(),
            "{name} not set from a resource or parameter"
        );
    }
    // Each webhook whose replies need a token: the agent API reads the webhook's own secret.
    for (_, webhook, secret) in replying_webhooks(&t) {
        let arn_var = format!("SWITCHBOARD_{}_SECRET_ARN", webhook.to_ascii_uppercase());
        assert_eq!(env[arn_var.as_str()]["Ref"], secret, "{arn_var}");
    }
    assert_eq!(
        t["Parameters"]["GraphApiUrl"]["Default"],
        config::DEFAULT_GRAPH_API_URL
    );
    assert_eq!(
        t["Parameters"]["TelegramApiUrl"]["Default"],
        config::DEFAULT_TELEGRAM_API_URL
    );
    let events: Vec<&Value> = function["Properties"]["Events"]
        .as_object()
        .unwrap()
        .values()
        .collect();
    assert_eq!(events.len(), 1);
    let route = &events[0]["Properties"];
    assert_eq!(events[0]["Type"], "HttpApi");
    assert_eq!(route["ApiId"]["Ref"], "HttpApi");
    assert_eq!(
        (route["Method"].as_str(), route["Path"].as_str()),
        (Some("ANY"), Some("/api/{proxy+}"))
    );
    assert_eq!(route["Auth"]["Authorizer"], "AWS_IAM");
    assert_eq!(
        resource(&t, "HttpApi")["Properties"]["Auth"]["EnableIamAuthorizer"],
        true
    );

    let table = serde_json::json!({"Fn::GetAtt": ["Table", "Arn"]}).to_string();
    let index =
        |i: &str| serde_json::json!({"Fn::Sub": format!("${{Table.Arn}}/index/{i}")}).to_string();
    let schedules = serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"}).to_string();
    let mail_identity = serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${EmailDomain}"}).to_string();
    let expected: BTreeSet<(String, String)> = [
        // Conversations, customers, deliveries (GetItem, Query on the table); a conversation
        // answered or a customer's tier written back (PutItem, UpdateItem); a link's two
        // customers (TransactWriteItems of puts) and its records moved (UpdateItem).
        ("dynamodb:GetItem", table.clone()),
        ("dynamodb:Query", table.clone()),
        ("dynamodb:PutItem", table.clone()),
        ("dynamodb:UpdateItem", table.clone()),
        // A reply: the message answered (BatchGetItem), an idempotency key released after a
        // refusal (DeleteItem); the sent message's transaction is puts and updates.
        ("dynamodb:BatchGetItem", table.clone()),
        ("dynamodb:DeleteItem", table.clone()),
        ("dynamodb:Query", index("gsi1")),
        ("dynamodb:Query", index("gsi2")),
        ("dynamodb:Query", index("gsi3")),
        ("dynamodb:Query", index("gsi4")),
        // Answers, resolutions, assignments published.
        (
            "events:PutEvents",
            serde_json::json!({"Fn::GetAtt": ["EventBus", "Arn"]}).to_string(),
        ),
        // An answered or resolved wait's reminders.
        ("scheduler:DeleteSchedule", schedules),
        // Replies by e-mail, from the stack's own domain (SES v2's raw SendEmail).
        ("ses:SendEmail", mail_identity.clone()),
        ("ses:SendRawEmail", mail_identity.clone()),
    ]
    .into_iter()
    .map(|(a, r)| (a.to_owned(), r))
    // The tokens of replies: the secret of each webhook that has one, and no other.
    .chain(replying_webhooks(&t).into_iter().map(|(_, _, secret)| {
        (
            "secretsmanager:GetSecretValue".to_owned(),
            serde_json::json!({ "Ref": secret }).to_string(),
        )
    }))
    .collect();
    assert_eq!(grants(function), expected);
}

/// What the stack really creates: `template.yaml` transformed by aws-sam-translator (SAM's own
/// library, offline, `infra/sam-translate.py`). Every route of the HTTP API but Meta's webhooks
/// requires IAM authorization.
/// The template as SAM deploys it: transformed offline by SAM's translator
/// (`infra/sam-translate.py`).
#[test]
fn the_customer_erasure_has_its_own_iam_authorized_route_and_only_what_it_uses() {
    let t = template();
    let function = resource(&t, "CustomerErasureFunction");
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"],
        "customer-erasure"
    );
    let route = &function["Properties"]["Events"]["Api"]["Properties"];
    assert_eq!(route["Method"], "DELETE");
    assert_eq!(route["Path"], "/api/customers/{id}");
    assert_eq!(route["Auth"]["Authorizer"], "AWS_IAM");
    // What ErasureSettings reads, and nothing else.
    let env = function["Properties"]["Environment"]["Variables"]
        .as_object()
        .unwrap();
    let names: BTreeSet<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            switchboard_aws::settings::TABLE,
            switchboard_core::config::RETENTION_DAYS,
            switchboard_aws::settings::SCHEDULE_GROUP,
            switchboard_aws::settings::REMINDER_QUEUE_ARN,
            switchboard_aws::settings::SCHEDULER_ROLE_ARN,
            switchboard_aws::settings::MAIL_BUCKET,
        ])
    );
    // The mail bucket where the stack has one (an `EmailDomain`), none otherwise.
    assert_eq!(
        env[switchboard_aws::settings::MAIL_BUCKET],
        serde_json::json!({"Fn::If": ["HasEmailDomain", {"Ref": "MailBucket"}, ""]})
    );
    let mail_delete = function["Properties"]["Policies"][0]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Fn::If"][1]["Sid"] == "MailObjectsDelete")
        .expect("the mail objects' statement");
    assert_eq!(mail_delete["Fn::If"][0], "HasEmailDomain");
    assert_eq!(
        mail_delete["Fn::If"][2],
        serde_json::json!({"Ref": "AWS::NoValue"})
    );
    let table = serde_json::json!({"Fn::GetAtt": ["Table", "Arn"]}).to_string();
    let index =
        |i: &str| serde_json::json!({"Fn::Sub": format!("${{Table.Arn}}/index/{i}")}).to_string();
    let schedules = serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"}).to_string();
    let expected: BTreeSet<(String, String)> = [
        // Customers (GetItem), records and chunks (Query), kept deliveries and replies' keys
        // (Scan), a tombstone in place of a dropped delivery (a transaction of a put and
        // deletes), the person's items (BatchWriteItem).
        ("dynamodb:GetItem", table.clone()),
        ("dynamodb:Query", table.clone()),
        ("dynamodb:Scan", table.clone()),
        ("dynamodb:PutItem", table.clone()),
        ("dynamodb:DeleteItem", table.clone()),
        ("dynamodb:BatchWriteItem", table.clone()),
        ("dynamodb:Query", index("gsi1")),
        ("dynamodb:Query", index("gsi2")),
        ("scheduler:DeleteSchedule", schedules),
        // The person's messages as SES stored them, and their attachments.
        (
            "s3:DeleteObject",
            serde_json::json!({"Fn::Sub": "${MailBucket.Arn}/inbound/*"}).to_string(),
        ),
        (
            "s3:DeleteObject",
            serde_json::json!({"Fn::Sub": "${MailBucket.Arn}/attachments/*"}).to_string(),
        ),
    ]
    .into_iter()
    .map(|(a, r)| (a.to_owned(), r))
    .collect();
    assert_eq!(grants(function), expected);
    // The agent API reads no whole table.
    assert!(
        !grants(resource(&t, "AgentApiFunction"))
            .iter()
            .any(|(a, _)| a == "dynamodb:Scan")
    );
}

fn translated() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The SAM CLI's virtual environment: beside moto_server (./infra/test.sh sets it), else PATH.
    let python = std::env::var("SWITCHBOARD_MOTO_SERVER")
        .ok()
        .map(|m| Path::new(&m).with_file_name("python3"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "python3".into());
    let out = std::process::Command::new(&python)
        .arg(root.join("infra/sam-translate.py"))
        .arg(root.join("template.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        out.status.success(),
        "infra/sam-translate.py failed (the SAM CLI's virtual environment of ./infra/dev-setup.sh \
         must be first on PATH): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn every_route_but_the_webhooks_is_iam_authorized_in_the_deployed_api() {
    let deployed = translated();
    let api = &deployed["Resources"]["HttpApi"];
    assert_eq!(api["Type"], "AWS::ApiGatewayV2::Api");
    let paths = api["Properties"]["Body"]["paths"]
        .as_object()
        .expect("an OpenAPI body");
    let mut seen = BTreeSet::new();
    for (path, methods) in paths {
        for (method, operation) in methods.as_object().unwrap() {
            seen.insert(format!("{method} {path}"));
            let security = &operation["security"];
            if path.starts_with("/webhooks/") {
                assert!(
                    security.is_null(),
                    "{method} {path}: Meta cannot sign with IAM"
                );
            } else {
                assert_eq!(
                    security,
                    &serde_json::json!([{"AWS_IAM": []}]),
                    "{method} {path}"
                );
            }
        }
    }
    assert!(
        seen.contains("x-amazon-apigateway-any-method /api/{proxy+}"),
        "{seen:?}"
    );
    let webhooks = seen.iter().filter(|r| r.contains("/webhooks/")).count();
    assert_eq!(
        webhooks,
        2 * switchboard_core::channels::REGISTRY.len(),
        "{seen:?}"
    );
    let schemes = &api["Properties"]["Body"]["components"]["securitySchemes"]["AWS_IAM"];
    assert_eq!(schemes["x-amazon-apigateway-authtype"], "awsSigv4");
}

/// The bus keeps every event for replay, and the optional ticketing hook forwards exactly the
/// case events to an API destination with a retry policy and a dead-letter queue, all of it
/// only when an endpoint is given.
#[test]
fn the_bus_is_archived_and_the_ticketing_hook_forwards_the_case_events() {
    let t = template();
    let archive = resource(&t, "EventArchive");
    assert_eq!(archive["Type"], "AWS::Events::Archive");
    assert_eq!(
        archive["Properties"]["SourceArn"],
        serde_json::json!({"Fn::GetAtt": ["EventBus", "Arn"]})
    );
    assert_eq!(
        archive["Properties"]["EventPattern"]["source"],
        serde_json::json!([switchboard_aws::events::EVENT_SOURCE])
    );
    assert!(archive["Properties"]["RetentionDays"].is_object());

    let hook = [
        ("TicketingConnection", "AWS::Events::Connection"),
        ("TicketingDestination", "AWS::Events::ApiDestination"),
        ("TicketingDeadLetterQueue", "AWS::SQS::Queue"),
        ("TicketingDeadLetterQueuePolicy", "AWS::SQS::QueuePolicy"),
        ("TicketingRole", "AWS::IAM::Role"),
        ("TicketingRule", "AWS::Events::Rule"),
    ];
    for (name, kind) in hook {
        let r = resource(&t, name);
        assert_eq!(r["Type"], kind, "{name}");
        assert_eq!(
            r["Condition"], "HasTicketing",
            "{name} only with an endpoint"
        );
    }
    let connection = &resource(&t, "TicketingConnection")["Properties"];
    assert_eq!(connection["AuthorizationType"], "API_KEY");
    let key = &connection["AuthParameters"]["ApiKeyAuthParameters"];
    assert_eq!(key["ApiKeyName"]["Ref"], "TicketingApiKeyHeader");
    assert_eq!(key["ApiKeyValue"]["Ref"], "TicketingApiKey");
    let destination = &resource(&t, "TicketingDestination")["Properties"];
    assert_eq!(
        destination["InvocationEndpoint"]["Ref"],
        "TicketingEndpoint"
    );
    assert_eq!(destination["HttpMethod"], "POST");
    assert_eq!(
        t["Parameters"]["TicketingEndpoint"]["AllowedPattern"], "^(https://.+)?$",
        "HTTPS only"
    );

    let rule = &resource(&t, "TicketingRule")["Properties"];
    assert_eq!(rule["EventBusName"]["Ref"], "EventBus");
    let forwarded: BTreeSet<&str> = rule["EventPattern"]["detail-type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    use switchboard_core::events;
    let case_events = BTreeSet::from([
        events::MESSAGE_RECEIVED,
        events::MESSAGE_SENT,
        events::ANSWERED,
        events::RESOLVED,
        events::REOPENED,
        events::ASSIGNED,
    ]);
    assert_eq!(forwarded, case_events);
    assert!(forwarded.iter().all(|t| events::TYPES.contains(t)));
    let target = &rule["Targets"][0];
    assert_eq!(
        target["Arn"],
        serde_json::json!({"Fn::GetAtt": ["TicketingDestination", "Arn"]})
    );
    assert!(
        target["RetryPolicy"]["MaximumRetryAttempts"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        target["RetryPolicy"]["MaximumEventAgeInSeconds"]
            .as_u64()
            .unwrap()
            >= 3600
    );
    assert_eq!(
        target["DeadLetterConfig"]["Arn"],
        serde_json::json!({"Fn::GetAtt": ["TicketingDeadLetterQueue", "Arn"]})
    );
    // The role may invoke that destination and nothing else.
    let statements =
        &resource(&t, "TicketingRole")["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    assert_eq!(statements.as_array().unwrap().len(), 1);
    assert_eq!(statements[0]["Action"], "events:InvokeApiDestination");
    assert_eq!(
        statements[0]["Resource"],
        serde_json::json!({"Fn::GetAtt": ["TicketingDestination", "Arn"]})
    );
}

/// The stack as deployed (SAM's translation): every alarm notifies the ops topic; the dead
/// letters, function errors and throttles, queue ages, the API's 5xx rate, failed rule and
/// schedule deliveries are each watched; every function has a log group with the retention
/// parameter; the dashboard reads only metrics the code emits; the webhook routes are
/// throttled; the topics EventBridge and CloudWatch publish to are not encrypted with a key
/// they cannot use, and what reaches them carries no personal data.
#[test]
fn alarms_reach_the_ops_topic_and_the_dashboard_watches_the_whole_stack() {
    let deployed = translated();
    let resources = deployed["Resources"].as_object().unwrap();
    let of_type = |kind: &str| -> Vec<(&String, &Value)> {
        resources
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .collect()
    };
    let functions: Vec<&String> = of_type("AWS::Lambda::Function")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        functions.len(),
        6 + switchboard_core::channels::REGISTRY.len()
    );

    // Every alarm notifies the ops topic, and says when it is over.
    let alarms = of_type("AWS::CloudWatch::Alarm");
    for (name, alarm) in &alarms {
        for actions in ["AlarmActions", "OKActions"] {
            assert_eq!(
                alarm["Properties"][actions],
                serde_json::json!([{"Ref": "OpsTopic"}]),
                "{name}.{actions}"
            );
        }
    }
    let watched = |namespace: &str, metric: &str, dimension: &str| -> Vec<String> {
        let mut found = Vec::new();
        for (_, alarm) in &alarms {
            let p = &alarm["Properties"];
            let mut stats: Vec<&Value> = vec![p];
            for m in p["Metrics"].as_array().into_iter().flatten() {
                stats.push(&m["MetricStat"]["Metric"]);
            }
            for s in stats {
                if s["Namespace"] == namespace && s["MetricName"] == metric {
                    for d in s["Dimensions"].as_array().into_iter().flatten() {
                        if d["Name"] == dimension {
                            found.push(d["Value"].to_string());
                        }
                    }
                }
            }
        }
        found
    };
    let ref_of = |name: &str| serde_json::json!({"Ref": name}).to_string();
    let queue_name = |q: &str| serde_json::json!({"Fn::GetAtt": [q, "QueueName"]}).to_string();
    for queue in [
        "IntakeDeadLetterQueue",
        "ReminderDeadLetterQueue",
        "SchedulerDeadLetterQueue",
        "TicketingDeadLetterQueue",
        "OutboxDeadLetterQueue",
    ] {
        assert!(
            watched("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
                .contains(&queue_name(queue)),
            "{queue} depth"
        );
    }
    for queue in ["IntakeQueue", "ReminderQueue"] {
        assert!(
            watched("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName")
                .contains(&queue_name(queue)),
            "{queue} age"
        );
    }
    for metric in ["Errors", "Throttles"] {
        let covered = watched("AWS/Lambda", metric, "FunctionName");
        for f in &functions {
            assert!(covered.contains(&ref_of(f)), "{metric} of {f}");
        }
    }
    for metric in ["5xx", "Count"] {
        assert!(watched("AWS/ApiGateway", metric, "ApiId").contains(&ref_of("HttpApi")));
    }
    // How far behind the outbox stream the forwarder reads.
    assert!(
        watched("AWS/Lambda", "IteratorAge", "FunctionName")
            .contains(&ref_of("IntakeForwarderFunction"))
    );
    let rules = of_type("AWS::Events::Rule");
    assert!(rules.len() >= 3);
    for (rule, _) in &rules {
        assert!(
            watched("AWS/Events", "FailedInvocations", "RuleName").contains(&ref_of(rule)),
            "failed deliveries of {rule}"
        );
    }
    for metric in ["TargetErrorCount", "InvocationDroppedCount"] {
        assert!(
            watched("AWS/Scheduler", metric, "ScheduleGroup").contains(&ref_of("ScheduleGroup"))
        );
    }

    // A log group with the retention parameter for every function.
    let groups: BTreeSet<String> = of_type("AWS::Logs::LogGroup")
        .iter()
        .map(|(_, g)| {
            assert_eq!(
                g["Properties"]["RetentionInDays"],
                serde_json::json!({"Ref": "LogRetentionDays"})
            );
            g["Properties"]["LogGroupName"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for f in &functions {
        assert!(
            groups.contains(&format!("/aws/lambda/${{{f}}}")),
            "{f}: {groups:?}"
        );
        let env = &resources[f.as_str()]["Properties"]["Environment"]["Variables"];
        assert_eq!(
            env[switchboard_lambda::emf::NAMESPACE_SETTING]["Fn::Sub"],
            "switchboard/${AWS::StackName}",
            "{f}"
        );
    }

    // The dashboard: valid JSON once substituted; every switchboard metric it shows is one
    // the code emits; it shows every function and the queues.
    let (_, dashboard) = of_type("AWS::CloudWatch::Dashboard")[0];
    let body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("a Fn::Sub body");
    let body: Value = serde_json::from_str(body).expect("the dashboard body is JSON");
    let mut shown = BTreeSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        for m in widget["properties"]["metrics"].as_array().unwrap() {
            let m = m.as_array().unwrap();
            if m[0] == "switchboard/${AWS::StackName}" {
                let name = m[1].as_str().unwrap();
                assert!(
                    switchboard_core::telemetry::METRICS.contains(&name),
                    "the dashboard shows {name}, which nothing emits"
                );
            }
            shown.extend(m.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    for f in &functions {
        assert!(shown.contains(&format!("${{{f}}}")), "{f} on the dashboard");
    }
    for q in ["IntakeQueue", "ReminderQueue", "IntakeDeadLetterQueue"] {
        assert!(shown.contains(&format!("${{{q}.QueueName}}")), "{q}");
    }

    // The webhook routes are throttled.
    let (_, stage) = of_type("AWS::ApiGatewayV2::Stage")
        .into_iter()
        .find(|(_, s)| s["Properties"]["ApiId"] == serde_json::json!({"Ref": "HttpApi"}))
        .expect("the HTTP API's stage");
    let settings = &stage["Properties"]["RouteSettings"];
    for module in switchboard_core::channels::REGISTRY {
        let route = format!("POST /webhooks/{}", module.webhook());
        assert_eq!(
            settings[&route]["ThrottlingRateLimit"],
            serde_json::json!({"Ref": "WebhookRateLimit"}),
            "{route}"
        );
        assert_eq!(
            settings[&route]["ThrottlingBurstLimit"],
            serde_json::json!({"Ref": "WebhookBurstLimit"})
        );
    }

    // The topics: no key EventBridge or CloudWatch cannot use; publishers limited.
    for topic in ["BreachTopic", "OpsTopic"] {
        assert!(
            resources[topic]["Properties"]["KmsMasterKeyId"].is_null(),
            "{topic}: EventBridge and CloudWatch cannot publish to a topic under aws/sns"
        );
    }
    let ops_policy = &resources["OpsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"];
    let principals: BTreeSet<String> = ops_policy
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Principal"]["Service"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        principals,
        BTreeSet::from([
            "cloudwatch.amazonaws.com".into(),
            "events.amazonaws.com".into()
        ])
    );
    for s in ops_policy.as_array().unwrap() {
        assert!(s["Condition"].is_object(), "{s}: limited to this stack");
    }
    // What the rules send to the topics carries no personal data: no text, no name, no
    // provider id of a person in the schemas of those events.
    for (rule, target) in [
        ("BreachRule", "BreachTopic"),
        ("ChannelWatchRule", "OpsTopic"),
    ] {
        let r = &resources[rule]["Properties"];
        assert_eq!(r["Targets"][0]["Arn"], serde_json::json!({"Ref": target}));
        for kind in r["EventPattern"]["detail-type"].as_array().unwrap() {
            let schema = switchboard_tests::event_schema_json(kind.as_str().unwrap());
            for field in schema["properties"].as_object().unwrap().keys() {
                assert!(
                    ![
                        "text",
                        "customer_name",
                        "customer_provider_id",
                        "provider_user_id",
                        "phone"
                    ]
                    .contains(&field.as_str()),
                    "{kind} carries {field} to {target}"
                );
            }
        }
    }
}

/// The deployed console (with `ConsoleAdminEmail`): an agents' user pool where only an admin
/// creates users, its hosted sign-in domain, a public client with the code flow calling back
/// to the console's own HTTP API, whose page and assets are public and whose /api routes need a
/// token of that client from that pool (a JWT authorizer), all served by the agent-api
/// function, which is told the sign-in. The IAM-authorized /api of the main API stays.
#[test]
fn the_console_signs_agents_in_with_cognito_and_calls_the_api_through_a_jwt_authorizer() {
    let deployed = translated();
    let r = deployed["Resources"].as_object().unwrap();
    let props = |name: &str| -> &Value {
        let res = &r[name];
        assert_eq!(
            res["Condition"], "HasConsole",
            "{name} exists only with a console"
        );
        &res["Properties"]
    };
    let pool = props("ConsoleUserPool");
    assert_eq!(
        pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"],
        true
    );
    assert!(
        pool["Policies"]["PasswordPolicy"]["MinimumLength"]
            .as_u64()
            .unwrap()
            >= 12
    );
    let admin = props("ConsoleAdmin");
    assert_eq!(
        admin["Username"],
        serde_json::json!({"Ref": "ConsoleAdminEmail"})
    );
    assert_eq!(
        props("ConsoleUserPoolDomain")["UserPoolId"],
        serde_json::json!({"Ref": "ConsoleUserPool"})
    );

    let client = props("ConsoleClient");
    assert_eq!(
        client["GenerateSecret"], false,
        "a public client: PKCE, no secret in the page"
    );
    assert_eq!(client["AllowedOAuthFlows"], serde_json::json!(["code"]));
    let callback = serde_json::json!([{"Fn::Sub": "https://${ConsoleApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}]);
    assert_eq!(client["CallbackURLs"], callback);

    let authorizer = props("ConsoleAuthorizer");
    assert_eq!(authorizer["AuthorizerType"], "JWT");
    assert_eq!(
        authorizer["JwtConfiguration"]["Audience"],
        serde_json::json!([{"Ref": "ConsoleClient"}])
    );
    assert_eq!(
        authorizer["JwtConfiguration"]["Issuer"],
        serde_json::json!({"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${ConsoleUserPool}"})
    );
    let integration = props("ConsoleIntegration");
    assert_eq!(
        integration["IntegrationUri"],
        serde_json::json!({"Fn::GetAtt": ["AgentApiFunction", "Arn"]})
    );
    let mut routes: Vec<(String, Value)> = r
        .iter()
        .filter(|(_, v)| v["Type"] == "AWS::ApiGatewayV2::Route")
        .map(|(_, v)| {
            assert_eq!(
                v["Properties"]["ApiId"],
                serde_json::json!({"Ref": "ConsoleApi"})
            );
            (
                v["Properties"]["RouteKey"].as_str().unwrap().to_owned(),
                v["Properties"]["AuthorizationType"].clone(),
            )
        })
        .collect();
    routes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        routes,
        [
            ("ANY /api/{proxy+}".to_owned(), serde_json::json!("JWT")),
            ("GET /".to_owned(), Value::Null),
            ("GET /assets/{proxy+}".to_owned(), Value::Null),
        ]
    );
    let permission = props("ConsoleInvokePermission");
    assert_eq!(permission["Principal"], "apigateway.amazonaws.com");
    assert_eq!(props("ConsoleStage")["AutoDeploy"], true);

    let env = &r["AgentApiFunction"]["Properties"]["Environment"]["Variables"];
    for (name, value) in [
        (
            switchboard_aws::settings::CONSOLE_CLIENT_ID,
            serde_json::json!({"Ref": "ConsoleClient"}),
        ),
        (
            switchboard_aws::settings::CONSOLE_COGNITO_DOMAIN,
            serde_json::json!({"Fn::Sub": "${ConsoleUserPoolDomain}.auth.${AWS::Region}.amazoncognito.com"}),
        ),
    ] {
        assert_eq!(
            env[name],
            serde_json::json!({"Fn::If": ["HasConsole", value, {"Ref": "AWS::NoValue"}]}),
            "{name}"
        );
    }
    assert_eq!(deployed["Outputs"]["ConsoleUrl"]["Condition"], "HasConsole");
}

/// E-mail on AWS: SES's receipt rule for the `EmailDomain` parameter stores each message in
/// the encrypted, private mail bucket under `inbound/` (spam and virus scanning on), the
/// bucket forgets with the retention period, its `inbound/` events invoke `email-intake`
/// (retried, then kept at an on-failure queue), and the function reads `inbound/`, writes
/// `attachments/` and nothing else of the bucket.
#[test]
fn ses_stores_mail_in_an_encrypted_bucket_whose_events_invoke_the_email_intake() {
    let t = template();
    let bucket = &resource(&t, "MailBucket")["Properties"];
    assert_eq!(
        bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
            ["SSEAlgorithm"],
        "AES256"
    );
    for block in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            bucket["PublicAccessBlockConfiguration"][block], true,
            "{block}"
        );
    }
    let rule = &bucket["LifecycleConfiguration"]["Rules"][0];
    assert_eq!(rule["Status"], "Enabled");
    assert_eq!(rule["ExpirationInDays"]["Ref"], "RetentionDays");

    let receipt = resource(&t, "MailReceiptRule");
    assert_eq!(receipt["Condition"], "HasEmailDomain");
    let r = &receipt["Properties"]["Rule"];
    assert_eq!(r["Recipients"], serde_json::json!([{"Ref": "EmailDomain"}]));
    assert_eq!(r["ScanEnabled"], true);
    assert_eq!(
        r["Actions"][0]["S3Action"]["BucketName"]["Ref"],
        "MailBucket"
    );
    assert_eq!(r["Actions"][0]["S3Action"]["ObjectKeyPrefix"], "inbound/");
    let policy = &resource(&t, "MailBucketPolicy")["Properties"]["PolicyDocument"]["Statement"];
    let ses = &policy[0];
    assert_eq!(ses["Principal"]["Service"], "ses.amazonaws.com");
    assert_eq!(ses["Action"], "s3:PutObject");
    assert_eq!(ses["Resource"]["Fn::Sub"], "${MailBucket.Arn}/inbound/*");
    assert_eq!(
        ses["Condition"]["StringEquals"]["AWS:SourceAccount"]["Ref"],
        "AWS::AccountId"
    );

    let function = resource(&t, "EmailIntakeFunction");
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"],
        "email-intake"
    );
    let p = &function["Properties"];
    let event = &p["Events"]["Mail"];
    assert_eq!(event["Type"], "S3");
    assert_eq!(event["Properties"]["Bucket"]["Ref"], "MailBucket");
    assert_eq!(
        event["Properties"]["Filter"]["S3Key"]["Rules"],
        serde_json::json!([{"Name": "prefix", "Value": "inbound/"}])
    );
    assert_eq!(p["EventInvokeConfig"]["MaximumRetryAttempts"], 2);
    assert_eq!(
        p["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"],
        serde_json::json!(["MailDeadLetterQueue", "Arn"])
    );
    let granted: BTreeSet<(String, String)> = grants(function)
        .into_iter()
        .filter(|(a, _)| a.starts_with("s3:"))
        .map(|(a, r)| {
            let path = if r.contains("/inbound/*") {
                "inbound/*"
            } else if r.contains("/attachments/*") {
                "attachments/*"
            } else {
                "other"
            };
            (a, path.to_owned())
        })
        .collect();
    assert_eq!(
        granted,
        BTreeSet::from([
            ("s3:GetObject".to_owned(), "inbound/*".to_owned()),
            ("s3:PutObject".to_owned(), "attachments/*".to_owned()),
        ])
    );
    // The bucket the function's policy names is the bucket's own name.
    let named = serde_json::to_string(
        &p["Policies"][0]["Statement"][0]["Resource"]["Fn::Sub"][1]["Bucket"],
    )
    .unwrap();
    assert_eq!(named, serde_json::to_string(&bucket["BucketName"]).unwrap());
}
