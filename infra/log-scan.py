#!/usr/bin/env python3
"""The log scan: no message text, phone number, e-mail address, token or secret the tests used
may appear in what the suite logged.

Usage: infra/log-scan.py LOG_FILE

LOG_FILE is what the test suite wrote with SWITCHBOARD_TEST_LOG set (switchboard's crates at
debug, and the stderr of every `switchboard` process the tests started). What is searched for
is gathered from the project itself:

* the fixtures (tests/fixtures): the texts customers wrote (`body`, `text`, `message`,
  `caption` values), the customers' phone numbers (`wa_id`, `from`, `recipient_id`,
  `phone_number`), every e-mail address, and every secret of a signature vector;
* the tests' sources (tests/*.rs, tests/support/*.rs, the sample payloads): the texts and phone
  numbers passed to the payload builders, every e-mail address, and every string literal given
  as a secret, token or password.

A business account's own ids (`display_phone_number`, `phone_number_id`) are not a customer's
and are not searched for; nor are names of settings (all capitals: `SWITCHBOARD_…_SECRETS`).
Exits 1, printing each finding with the line it is on, when one is found; 2 when the log is
missing or holds too little to have been the suite's.
"""

import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEXT_KEYS = {"body", "text", "message", "caption"}
PHONE_KEYS = {"wa_id", "from", "recipient_id", "phone_number"}
SECRET_KEYS = {"app_secret", "secret", "secret_token", "consumer_secret", "bot_token",
               "access_token", "verify_token", "token"}
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(r"^\+?\d{8,15}$")
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
SETTING = re.compile(r"^[A-Z0-9_]+$")
# Builders of the tests' deliveries: the texts and numbers given to them are a customer's.
BUILDER = re.compile(r"\b(payloads::\w+|\w+_text(?:_named)?|whatsapp|instagram|messenger|"
                     r"telegram\w*|x_\w+|comment\w*|email\w*)\s*\(")
# Secrets as the tests give them: a setting's value (`("SWITCHBOARD_X_APP_SECRETS", "…")`), a
# JSON field (`"bot_token": "…"`), a binding (`let secret = "…"`, `const APP_SECRET: &str = "…"`).
SECRET_VALUES = [
    re.compile(r'"SWITCHBOARD_[A-Z_]*(?:SECRET|TOKEN|PASSWORD)[A-Z_]*"\s*,\s*"([^"\\]+)"'),
    re.compile(r'"(?:app_secret|secret|secret_token|bot_token|access_token|verify_token|'
               r'consumer_secret|api_token|token)"\s*:\s*"([^"\\]+)"'),
    re.compile(r'(?i)\b\w*(?:secret|token|password)\w*\s*(?::\s*&(?:\'static\s+)?str)?\s*=\s*"([^"\\]+)"'),
]
MIN_SECRET = 6
MIN_TEXT = 8
# Enough to say the suite ran with the log on: the intake logs this for every delivery.
SIGN_OF_LIFE = "delivery accepted"


# A business account's own ids: logged as the account a delivery came to, not a customer's.
BUSINESS_KEYS = {"display_phone_number", "phone_number_id", "business_phone_number"}


def business_ids(value, key, ids):
    """The business accounts' ids of a payload: its `entry[].id` and the keys above."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "entry" and isinstance(v, list):
                ids.update(str(e.get("id")) for e in v if isinstance(e, dict) and "id" in e)
            business_ids(v, k, ids)
    elif isinstance(value, list):
        for v in value:
            business_ids(v, key, ids)
    elif key in BUSINESS_KEYS:
        ids.add(str(value))


def walk(value, key, found):
    if isinstance(value, dict):
        for k, v in value.items():
            walk(v, k, found)
    elif isinstance(value, list):
        for v in value:
            walk(v, key, found)
    elif isinstance(value, str):
        if key in TEXT_KEYS and len(value.strip()) >= MIN_TEXT:
            found.add(("message text", value.strip()))
        elif key in PHONE_KEYS and PHONE.match(value):
            found.add(("phone number", value))
        elif key in SECRET_KEYS and len(value) >= MIN_SECRET and not SETTING.match(value):
            found.add(("secret", value))
    elif isinstance(value, int) and key in PHONE_KEYS and PHONE.match(str(value)):
        found.add(("phone number", str(value)))


def from_fixtures(found, business):
    for path in sorted((ROOT / "tests" / "fixtures").rglob("*")):
        if not path.is_file() or path.suffix == ".md":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for address in EMAIL.findall(text):
            found.add(("e-mail address", address))
        lines = text.splitlines() if path.suffix == ".jsonl" else [text]
        for line in lines:
            try:
                payload = json.loads(line)
            except ValueError:
                continue
            walk(payload, None, found)
            business_ids(payload, None, business)


def statements(source):
    """The source split at semicolons and braces: roughly one call or binding each."""
    return re.split(r"[;{}]", source)


def from_sources(found):
    paths = sorted((ROOT / "tests").glob("*.rs")) + sorted((ROOT / "tests" / "support").glob("*.rs"))
    paths.append(ROOT / "shared" / "core" / "src" / "channels" / "meta" / "samples.rs")
    for path in paths:
        source = path.read_text(encoding="utf-8")
        for address in EMAIL.findall(source):
            found.add(("e-mail address", address))
        for statement in statements(source):
            literals = [bytes(l, "utf-8").decode("unicode_escape", errors="replace")
                        for l in LITERAL.findall(statement)]
            if BUILDER.search(statement):
                for literal in literals:
                    if PHONE.match(literal):
                        found.add(("phone number", literal))
                    elif " " in literal.strip() and len(literal.strip()) >= MIN_TEXT \
                            and "{" not in literal:
                        found.add(("message text", literal.strip()))
        for pattern in SECRET_VALUES:
            for value in pattern.findall(source):
                if len(value) >= MIN_SECRET and not SETTING.match(value) and "{" not in value:
                    found.add(("secret", value))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    log_path = pathlib.Path(sys.argv[1])
    if not log_path.is_file():
        print(f"log-scan: no log at {log_path}", file=sys.stderr)
        return 2
    log = log_path.read_text(encoding="utf-8", errors="replace")
    if log.count(SIGN_OF_LIFE) < 100:
        print(f"log-scan: {log_path} holds {log.count(SIGN_OF_LIFE)} deliveries accepted: "
              "the suite did not log to it", file=sys.stderr)
        return 2
    found = set()
    business = set()
    from_fixtures(found, business)
    from_sources(found)
    found = {(kind, needle) for kind, needle in found if needle not in business}
    lines = log.splitlines()
    findings = []
    for kind, needle in sorted(found):
        if needle in log:
            line = next(l for l in lines if needle in l)
            findings.append((kind, needle, line))
    kinds = sorted({k for k, _ in found})
    counts = ", ".join(f"{kind}: {sum(1 for k, _ in found if k == kind)}" for kind in kinds)
    print(f"log-scan: {len(lines)} log lines searched for the strings the tests used: {counts}")
    for kind, needle, line in findings:
        print(f"log-scan: {kind} {needle!r} is in the log:\n    {line[:400]}")
    if findings:
        print(f"log-scan: {len(findings)} found", file=sys.stderr)
        return 1
    print("log-scan: none found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
