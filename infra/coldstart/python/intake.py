"""The baseline of `coldstart`: a WhatsApp webhook intake in Python with boto3, run by
`awslambdaric` as a Lambda Python function is, doing what switchboard's webhook function does
on its acknowledgement path, and no more:

* at init: the app secret (from Secrets Manager when `SWITCHBOARD_WHATSAPP_SECRET_ARN` is set,
  else `SWITCHBOARD_WHATSAPP_APP_SECRETS`, as the harness gives both functions), the DynamoDB
  and SQS clients;
* per request: the `X-Hub-Signature-256` HMAC over the raw body (401 if wrong), the JSON
  parsed, one conditional put per message (`attribute_not_exists(pk)`: a repeat is a no-op),
  one `SendMessageBatch` of the new messages to the FIFO intake queue, then 200.

It keeps no raw delivery, resolves no customer or conversation and counts nothing: a floor for
the same intake, not an equal. Not part of switchboard; `coldstart --python` measures it beside
the Rust functions in the same run (BENCHMARKS.md, section 3).
"""

import base64
import hashlib
import hmac
import json
import os

import boto3

_TABLE = os.environ["SWITCHBOARD_TABLE"]
_QUEUE = os.environ["SWITCHBOARD_INTAKE_QUEUE_URL"]
_dynamodb = boto3.client("dynamodb")
_sqs = boto3.client("sqs")


def _secrets():
    arn = os.environ.get("SWITCHBOARD_WHATSAPP_SECRET_ARN")
    if arn:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
        return [s.encode() for s in json.loads(value)["app_secrets"]]
    return [s.encode() for s in os.environ["SWITCHBOARD_WHATSAPP_APP_SECRETS"].split(",") if s]


_SECRETS = _secrets()


def _verified(body, header):
    if not header or not header.startswith("sha256="):
        return False
    given = header[len("sha256="):]
    return any(
        hmac.compare_digest(hmac.new(s, body, hashlib.sha256).hexdigest(), given)
        for s in _SECRETS
    )


def handler(event, context):
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if not _verified(raw, headers.get("x-hub-signature-256")):
        return {"statusCode": 401}
    payload = json.loads(raw)
    entries = []
    for entry in payload.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            account = value.get("metadata", {}).get("phone_number_id", "")
            for message in value.get("messages", []):
                key = f"whatsapp/{account}/message/{message['id']}"
                conversation = f"whatsapp/{account}/{message.get('from', '')}"
                try:
                    _dynamodb.put_item(
                        TableName=_TABLE,
                        Item={
                            "pk": {"S": f"R#{key}"},
                            "sk": {"S": "R"},
                            "doc": {"S": json.dumps(message)},
                        },
                        ConditionExpression="attribute_not_exists(pk)",
                    )
                except _dynamodb.exceptions.ConditionalCheckFailedException:
                    continue
                entries.append((key, conversation))
    for start in range(0, len(entries), 10):
        _sqs.send_message_batch(
            QueueUrl=_QUEUE,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": json.dumps({"record_key": key, "conversation_id": conv}),
                    "MessageGroupId": hashlib.sha256(conv.encode()).hexdigest(),
                    "MessageDeduplicationId": hashlib.sha256(key.encode()).hexdigest(),
                }
                for i, (key, conv) in enumerate(entries[start:start + 10])
            ],
        )
    return {"statusCode": 200, "body": ""}
