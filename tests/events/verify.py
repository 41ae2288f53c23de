"""Checks every event the e2e tests' fakes accepted (files written under CV_EVENTS_CAPTURE_DIR
by tests/support/events.rs) with parsers that are not ours:

- the CloudEvents Python SDK (`cloudevents`) parses each as a structured CloudEvent 1.0;
- `jsonschema` validates each against schemas/events/<type>.schema.json (formats checked);
- `standardwebhooks` verifies each webhook delivery's signature with the secrets the
  receiver held;
- no event carries a SAS signature or a key.

Usage: verify.py CAPTURE_DIR. Exits non-zero, naming each failure, if anything fails, if
the directory holds no capture of each sink, or if any of the event types (one per schema)
was never captured (a check that checked nothing).
"""
import base64
import json
import pathlib
import re
import sys

import jsonschema
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks import Webhook

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = {
    p.name.removesuffix(".schema.json"): json.loads(p.read_text())
    for p in (ROOT / "schemas" / "events").glob("*.schema.json")
}
SECRET = re.compile(r"(?i)(sig=|sig%3d|accountkey|sharedaccesssignature|whsec_|aeg-sas-key)")


def check_event(event: dict, where: str, failures: list, seen: set) -> None:
    seen.add(event.get("type", ""))
    schema = SCHEMAS.get(event.get("type", ""))
    if schema is None:
        failures.append(f"{where}: no schema for type {event.get('type')!r}")
        return
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for error in validator.iter_errors(event):
        failures.append(f"{where}: {event['type']}: {error.message} at {list(error.absolute_path)}")
    if SECRET.search(json.dumps(event)):
        failures.append(f"{where}: a secret-looking text in {event['id']}")


def main(directory: str) -> int:
    failures: list = []
    counts = {"eventgrid": 0, "webhook": 0}
    seen: set = set()
    files = sorted(pathlib.Path(directory).glob("*.json"))
    for path in files:
        capture = json.loads(path.read_text())
        body = capture["body"].encode()
        headers = {k.lower(): v for k, v in capture["headers"]}
        where = f"{path.name} ({capture['sink']})"
        if capture["sink"] == "eventgrid":
            for item in json.loads(body):
                # The batch is an array of structured events: each parsed on its own.
                try:
                    parsed = JSONFormat().read(None, json.dumps(item).encode())
                    if parsed.get_id() != item["id"]:
                        failures.append(f"{where}: the SDK read another id")
                except Exception as e:  # noqa: BLE001 - the SDK's refusal, reported
                    failures.append(f"{where}: the CloudEvents SDK refuses it: {e}")
                check_event(item, where, failures, seen)
                counts["eventgrid"] += 1
        else:
            message = HTTPMessage(headers=headers, body=body)
            event = json.loads(body)
            try:
                parsed = from_structured_event(message)
                if parsed.get_id() != event["id"] or headers["webhook-id"] != event["id"]:
                    failures.append(f"{where}: webhook-id, the SDK's id and the event's id differ")
            except Exception as e:  # noqa: BLE001 - the SDK's refusal, reported
                failures.append(f"{where}: the CloudEvents SDK refuses it: {e}")
            verified = False
            for secret in capture["secrets"]:
                try:
                    Webhook(secret).verify(body, headers)
                    verified = True
                except Exception:  # noqa: BLE001 - any failure is "this secret does not verify"
                    pass
            if not verified:
                failures.append(f"{where}: no secret verifies the signature")
            check_event(event, where, failures, seen)
            counts["webhook"] += 1
    for missing in sorted(set(SCHEMAS) - seen):
        failures.append(f"no {missing} was captured: no e2e test checked it")
    for failure in failures:
        print("FAIL", failure)
    print(f"verified {counts['eventgrid']} Event Grid and {counts['webhook']} webhook event(s) from {len(files)} request(s)")
    if not all(counts.values()):
        print("FAIL: nothing captured for a sink: did the e2e tests run with CV_EVENTS_CAPTURE_DIR?")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
