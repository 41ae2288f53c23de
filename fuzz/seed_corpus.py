#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the messages the unit tests use: the seed document's
examples (src/seed.rs), the captured host envelopes (src/envelope.rs), the string literals of
the tests of each module under fuzz. Re-run after adding test messages, then minimise with
`make fuzz-cmin`. Files are named by content hash, as libFuzzer names its own."""
import base64
import hashlib
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
P = "9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b"
I = "1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0"


def raw_literals(text):
    """r#"…"# literals, with format!'s {{ }} and {P}/{I} filled in."""
    for m in re.finditer(r'r#"(.*?)"#', text, re.S):
        s = m.group(1)
        if "{{" in s:
            s = s.replace("{{", "{").replace("}}", "}")
        yield s.replace("{P}", P).replace("{I}", I)


def plain_literals(text):
    """Ordinary "…" literals, Rust escapes undone."""
    for m in re.finditer(r'(?<![r#\w])"((?:[^"\\\n]|\\.)*)"', text):
        s = m.group(1)
        s = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda u: chr(int(u.group(1), 16)), s)
        s = s.replace("\\n", "\n").replace("\\r", "\r").replace("\\t", "\t")
        s = s.replace('\\"', '"').replace("\\\\", "\\")
        yield s


def tests_of(path):
    text = (ROOT / path).read_text()
    return text[text.find("#[cfg(test)]"):]


def write(target, seeds):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        data = seed if isinstance(seed, bytes) else seed.encode()
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


seed_rs = (ROOT / "src/seed.rs").read_text()
seed_messages = [s.replace("{url}", json.dumps(
    "https://acct.blob.core.windows.net/customvision-backups/" + f"{P} - {I}.ONNX"))
    for s in raw_literals(seed_rs)]
notification_messages = seed_messages + [
    s for s in raw_literals(tests_of("src/notification.rs")) if s.lstrip().startswith("{")]
envelopes = list(raw_literals((ROOT / "src/envelope.rs").read_text()))
envelopes += [json.dumps({"Data": {"notification": json.dumps(m)},
                          "Metadata": {"DequeueCount": "1", "Id": '"x"'}})
              for m in seed_messages]

write("envelope", envelopes)
write("notification", notification_messages
      + [base64.b64encode(m.encode()).decode() for m in seed_messages])
write("base64text", list(plain_literals(tests_of("src/base64text.rs")))
      + [base64.b64encode(m.encode()).decode() for m in seed_messages[:1]])
urls = [u for u in plain_literals(tests_of("src/export/hint.rs")) if "/" in u or " " in u]
# The first byte picks the endpoint (even: Azure, odd: Azurite) and the allow-list.
write("model_uri", [bytes([sel]) + u.encode() for u in urls for sel in (0, 1, 2)])
write("redact", list(plain_literals(tests_of("src/redact.rs")))
      + list(raw_literals(tests_of("src/redact.rs"))) + notification_messages[:3])
