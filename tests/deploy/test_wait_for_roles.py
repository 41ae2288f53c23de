"""scripts/wait-for-roles.sh, azd's postprovision hook: polls the deploying identity's
data-plane access until the role assignments take effect, bounded, and fails with a clear
message when they don't. Storage is a fixture HTTP/1.1 server answering as Azure Storage does
(403 AuthorizationPermissionMismatch with the XML error body, chunked 200 lists); `az` and
`azd` are stubs that hand out a token and record how they were called."""

import os
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ROOT

SCRIPT = ROOT / "scripts/wait-for-roles.sh"
TOKEN = "eyJ0eXAiOiJKV1QifQ.fake-storage-token.signature"
MODELS = "models"
QUEUE = "customvision-notifications"

DENIED = (
    "\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationPermissionMismatch"
    "</Code><Message>This request is not authorized to perform this operation using this "
    "permission.\nRequestId:5d1a7c3e-401e-0042-3c2b-4a1d2e000000\n"
    "Time:2026-12-04T17:00:00.0000000Z</Message></Error>"
)
BAD_TOKEN = (
    "\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>InvalidAuthenticationInfo"
    "</Code><Message>Server failed to authenticate the request.</Message></Error>"
)


class Storage:
    """Answers `status_for(kind, n)` to the n-th (1-based) call of each kind (blob, queue)."""

    def __init__(self, status_for):
        self.status_for = status_for
        self.calls = {"blob": 0, "queue": 0}
        self.requests = []
        self.lock = threading.Lock()
        storage = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                kind = "blob" if self.path.startswith(f"/{MODELS}?") else "queue"
                with storage.lock:
                    storage.calls[kind] += 1
                    n = storage.calls[kind]
                    storage.requests.append((self.path, dict(self.headers)))
                status = storage.status_for(kind, n)
                if status == 200:
                    body = (
                        f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults '
                        f'ServiceEndpoint="http://127.0.0.1/" ContainerName="{MODELS}">'
                        "<MaxResults>1</MaxResults><Blobs /><NextMarker /></EnumerationResults>"
                        if kind == "blob"
                        else '<?xml version="1.0" encoding="utf-8"?><QueueMessagesList />'
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("x-ms-version", "2023-11-03")
                    self.end_headers()
                    self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
                    return
                code, body = (
                    ("AuthorizationPermissionMismatch", DENIED)
                    if status == 403
                    else ("InvalidAuthenticationInfo", BAD_TOKEN)
                )
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-ms-error-code", code)
                if status == 401:
                    self.send_header("WWW-Authenticate", "Bearer authorization_uri=https://x")
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def storage_with():
    made = []

    def make(status_for):
        s = Storage(status_for)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def stubs(tmp_path, azd=True):
    """`az` and `azd` on PATH that print TOKEN and log their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("az", "azd") if azd else ("az",):
        log = tmp_path / f"{tool}.log"
        path = bin_dir / tool
        path.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\necho "{TOKEN}"\n')
        path.chmod(0o755)
    return bin_dir


def run(tmp_path, storage_port, timeout=30, interval=1, azd_env=False, **extra):
    env = {
        "PATH": f"{stubs(tmp_path)}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AZURE_PRINCIPAL_ID": "00000000-0000-0000-0000-00000000abcd",
        "AZURE_STORAGE_BLOB_ENDPOINT": f"http://127.0.0.1:{storage_port}/",
        "MODEL_STORE_CONTAINER": MODELS,
        "AZURE_STORAGE_QUEUE_ENDPOINT": f"http://127.0.0.1:{storage_port}/",
        "CV_NOTIFICATION_QUEUE": QUEUE,
        "WAIT_FOR_ROLES_TIMEOUT": str(timeout),
        "WAIT_FOR_ROLES_INTERVAL": str(interval),
    }
    if azd_env:
        env["AZURE_ENV_NAME"] = "dev"
    env.update(extra)
    return subprocess.run(
        ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )


def log_of(tmp_path, tool):
    path = tmp_path / f"{tool}.log"
    return path.read_text().splitlines() if path.exists() else []


def test_it_polls_through_403s_until_the_roles_apply(tmp_path, storage_with):
    storage = storage_with(lambda kind, n: 403 if kind == "blob" and n <= 3 else 200)
    result = run(tmp_path, storage.port)
    assert result.returncode == 0, result.stderr
    assert storage.calls["blob"] == 4
    assert "role assignments in effect" in result.stdout
    assert result.stdout.count("not yet") == 3
    assert "AuthorizationPermissionMismatch" in result.stdout
    # The calls a Storage Blob/Queue Data Contributor may make, with the bearer token.
    paths = {p for p, _ in storage.requests}
    assert paths == {
        f"/{MODELS}?restype=container&comp=list&maxresults=1",
        f"/{QUEUE}/messages?peekonly=true&numofmessages=1",
    }
    for _, headers in storage.requests:
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["x-ms-version"]
    # Outside azd: the Azure CLI's login, asked once, for storage.
    assert log_of(tmp_path, "az") == [
        "account get-access-token --resource https://storage.azure.com/ --query accessToken -o tsv"
    ]
    assert TOKEN not in result.stdout + result.stderr


def test_it_fails_clearly_when_the_roles_do_not_apply_in_time(tmp_path, storage_with):
    storage = storage_with(lambda kind, n: 403)
    result = run(tmp_path, storage.port, timeout=2, interval=1)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wait-for-roles: role assignments not in effect after")
    assert "AuthorizationPermissionMismatch" in last
    assert "azd hooks run postprovision" in last
    # Bounded: it stopped at the deadline, not after many more tries.
    assert 2 <= storage.calls["blob"] <= 4
    assert TOKEN not in result.stdout + result.stderr


def test_a_refused_token_fails_at_once(tmp_path, storage_with):
    storage = storage_with(lambda kind, n: 401)
    result = run(tmp_path, storage.port)
    assert result.returncode == 1
    assert "refused the token" in result.stderr
    assert storage.calls["blob"] == 1


def test_under_azd_it_asks_azd_for_the_token(tmp_path, storage_with):
    storage = storage_with(lambda kind, n: 200)
    result = run(tmp_path, storage.port, azd_env=True)
    assert result.returncode == 0, result.stderr
    assert log_of(tmp_path, "azd") == ["auth token --scope https://storage.azure.com/.default"]
    assert log_of(tmp_path, "az") == []
    assert "(azd identity)" in result.stdout


def test_without_a_deploying_principal_there_is_nothing_to_wait_for(tmp_path, storage_with):
    storage = storage_with(lambda kind, n: 403)
    result = run(tmp_path, storage.port, AZURE_PRINCIPAL_ID="")
    assert result.returncode == 0
    assert "nothing to wait for" in result.stdout
    assert storage.calls == {"blob": 0, "queue": 0}


def test_a_missing_output_is_named(tmp_path, storage_with):
    storage = storage_with(lambda kind, n: 200)
    result = run(tmp_path, storage.port, MODEL_STORE_CONTAINER="")
    assert result.returncode == 1
    assert "MODEL_STORE_CONTAINER is not set" in result.stderr


def test_storage_not_answering_yet_is_retried_until_the_deadline(tmp_path):
    # A new account's name may not resolve yet: curl fails; the script keeps trying.
    closed = Storage(lambda kind, n: 200)
    port = closed.port
    closed.close()
    result = run(tmp_path, port, timeout=2, interval=1)
    assert result.returncode == 1
    assert "not in effect after" in result.stderr
    assert "000" in result.stderr


# ---- what the script relies on in infra/ ----


def test_the_deployment_outputs_what_the_script_reads():
    outputs = set(re.findall(r"^output (\w+) ", (ROOT / "infra/main.bicep").read_text(), re.M))
    script = SCRIPT.read_text()
    needed = {"AZURE_STORAGE_BLOB_ENDPOINT", "MODEL_STORE_CONTAINER",
              "AZURE_STORAGE_QUEUE_ENDPOINT", "CV_NOTIFICATION_QUEUE"}
    assert needed <= set(re.findall(r"\b([A-Z][A-Z_]+)\b", script))
    assert needed <= outputs, needed - outputs
    # azd sets AZURE_PRINCIPAL_ID; it is what main.parameters.json gives principalId.
    params = (ROOT / "infra/main.parameters.json").read_text()
    assert "${AZURE_PRINCIPAL_ID}" in params


def test_the_deploying_principal_gets_the_roles_the_script_polls():
    # The blob list needs a Storage Blob Data role on the model store container, the peek a
    # Storage Queue Data role on the notification queue, both for the deploying principal.
    rbac = (ROOT / "infra/app/rbac.bicep").read_text()
    blocks = re.findall(r"^resource \w+ 'Microsoft\.Authorization/roleAssignments@[^']+'.*?^}",
                        rbac, re.M | re.S)
    user = [b for b in blocks if re.search(r"principalId:\s*userPrincipalId", b)]
    assert any(re.search(r"scope:\s*modelStoreContainer\b", b)
               and re.search(r"storageBlobData(Contributor|Owner|Reader)", b) for b in user)
    assert any(re.search(r"scope:\s*notificationQueue\b", b)
               and re.search(r"storageQueueData(Contributor|Reader)", b) for b in user)
