"""`make bench`: the whole-process benchmark of the Rust handler against the Python reference
peer (`bench/peer/`), both driven the way the Functions host drives a custom handler, against
one in-memory Azurite, in one run. See `bench/README.md` for the method.

Reports; never fails on a missed target (it exits non-zero only if the run itself breaks).
"""

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from azure.storage.blob.aio import BlobServiceClient

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BACKUPS, MODELS = "customvision-backups", "models"
HOST_VERSION = "4.0.0-bench"
CHUNK = 4096  # the body is cut at fixed offsets, as the host's buffered writer does
SMALL = 64 * 1024
LARGE = 1024 * 1024 * 1024
LARGE_BLOCK = 4 * 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
HANDLERS = ("rust", "peer")


def log(*parts):
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes: Azurite, the handlers, /proc readings
# ---------------------------------------------------------------------------------------------

def drain(pipe, sink=None):
    """Reads a child's output for its whole life so it never blocks on a full pipe."""
    def run():
        for line in iter(pipe.readline, b""):
            if sink is not None:
                sink(line.decode(errors="replace").rstrip("\n"))
    threading.Thread(target=run, daemon=True).start()


class Azurite:
    def __init__(self):
        binary = ROOT / "node_modules/.bin/azurite"
        if not binary.exists():
            sys.exit(f"{binary} missing: run `npm ci`")
        # --silent: no access log per request (it would cost Azurite CPU per request).
        self.proc = subprocess.Popen(
            [str(binary), "--silent", "--inMemoryPersistence", "--disableTelemetry",
             "--skipApiVersionCheck", "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1",
             "--tableHost", "127.0.0.1", "--blobPort", "0", "--queuePort", "0",
             "--tablePort", "0", *os.environ.get("BENCH_AZURITE_ARGS", "").split()],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=tempfile.gettempdir())
        self.ports = {}
        ready = threading.Event()
        lines = []

        def sink(line):
            lines.append(line)
            m = re.match(r"Azurite (Blob|Queue) service is successfully listening at .*:(\d+)$",
                         line)
            if m:
                self.ports[m.group(1)] = int(m.group(2))
                if len(self.ports) == 2:
                    ready.set()
        drain(self.proc.stdout, sink)
        if not ready.wait(30):
            self.stop()
            sys.exit("Azurite did not start:\n" + "\n".join(lines))
        self.blob_port, self.queue_port = self.ports["Blob"], self.ports["Queue"]
        self.version = subprocess.run([str(binary), "--version"], capture_output=True,
                                      text=True).stdout.strip()

    def connection_string(self, blob_port=None):
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"BlobEndpoint=http://127.0.0.1:{blob_port or self.blob_port}/{ACCOUNT};"
                f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};")

    def stop(self):
        stop_process(self.proc)


def stop_process(proc, timeout=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


def storage_sockets(pid, port):
    """Inodes of the process's TCP sockets connected to 127.0.0.1:`port` right now."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    found = set()
    want = f":{port:04X}"
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[2].endswith(want) and parts[9] in inodes and parts[3] == "01":
                found.add(parts[9])
    return found


class Handler:
    """One handler implementation: how to start it."""

    def __init__(self, kind, python):
        self.kind = kind
        if kind == "rust":
            self.command = [str(ROOT / "target/release/handler")]
        else:
            self.command = [python, str(ROOT / "bench/peer/handler.py")]

    def env(self, port, connection_string, action):
        env = dict(os.environ)
        env.update({
            "FUNCTIONS_CUSTOMHANDLER_PORT": str(port),
            "CV_STORAGE": connection_string,
            "EXPORT_ACTION": action,
            "CV_BACKUP_CONTAINER": BACKUPS,
            "MODEL_STORE_CONTAINER": MODELS,
            "RUST_LOG": "warn",
            # Like for like with the peer: the copy-and-tag work only, no `latest` alias or
            # index (each costs two requests more per export).
            "LATEST_ALIAS": "false",
            "MODEL_INDEX": "false",
        })
        if self.kind == "rust" and os.environ.get("BENCH_EVENTS") == "1":
            # Events on (docs/events.md): each export builds its ModelCopied, reading the
            # copy's Last-Modified. The driver plays the host without writing outputs, so
            # nothing is ever sent to this (closed) port.
            env.update({
                "CV_WEBHOOK_URL": "https://127.0.0.1:9/hook",
                "CV_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            })
        return env

    def label(self):
        return "Rust handler" if self.kind == "rust" else "Python peer"


class Running:
    """A started handler: its process, port, and the lines it printed."""

    def __init__(self, handler, connection_string, action, wrapper=()):
        self.handler = handler
        self.port = free_port()
        self.lines = []
        self.wrapped = bool(wrapper)
        self.proc = subprocess.Popen(
            [*wrapper, *handler.command],
            env=handler.env(self.port, connection_string, action),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        drain(self.proc.stdout, self.lines.append)
        self.pid = self.proc.pid

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.handler.kind} exited: " + "\n".join(self.lines[-20:]))
            if probe(self.port):
                return
            time.sleep(0.01)
        raise RuntimeError(f"{self.handler.kind} not ready in {timeout} s")

    def stop(self):
        # Under strace, signal the handler itself: strace then exits with it and flushes.
        for child in children(self.proc.pid) if self.wrapped else ():
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass
        stop_process(self.proc)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


PROBE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: Azure-Functions-Host/"
         + HOST_VERSION.encode() + b"\r\n\r\n")


def probe(port):
    """The host's readiness check: any HTTP answer to GET / on a new connection."""
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        return False
    try:
        s.sendall(PROBE % port)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return False
            data += chunk
        return data.startswith(b"HTTP/1.")
    except OSError:
        return False
    finally:
        s.close()


def cold_start(handler, connection_string):
    """exec → first answer to GET /, polling every 0.2 ms."""
    port = free_port()
    env = handler.env(port, connection_string, "both")
    started = time.perf_counter()
    proc = subprocess.Popen(handler.command, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not probe(port):
            if proc.poll() is not None:
                raise RuntimeError(f"{handler.kind} exited during start-up")
            if time.perf_counter() - started > 30:
                raise RuntimeError(f"{handler.kind} not ready in 30 s")
            time.sleep(0.0002)
        return time.perf_counter() - started
    finally:
        stop_process(proc)


# ---------------------------------------------------------------------------------------------
# The host's side of the wire
# ---------------------------------------------------------------------------------------------

def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def export_message(project, iteration, model_uri):
    """The seed's Export example (`shared/seeds/storage-integration.md`), stray space included."""
    return ('{\n"version": "1.0" ,\n"type": "Export",\n"Content":\n    {\n'
            f'    "projectId": "{project}",\n    "iterationId": "{iteration}",\n'
            '    "exportStatus": "ExportCompleted",\n'
            f'    "modelUri": {json.dumps(model_uri)}\n    }}\n}}')


def invocation_body(text, dequeue_count=1):
    """As `src/devhost/mod.rs::invocation_body` (HOST-CONTRACT.md): `Data` encoded twice, string
    metadata quoted, the message's top-level properties copied into `Metadata`."""
    quoted = json.dumps
    now = datetime.now(timezone.utc)
    metadata = {}
    try:
        props = json.loads(text)
    except ValueError:
        props = None
    if isinstance(props, dict):
        for k, v in props.items():
            metadata[k] = quoted(v) if isinstance(v, str) else v
    metadata.update({
        "DequeueCount": str(dequeue_count),
        "ExpirationTime": iso(now + timedelta(days=7)),
        "Id": quoted(str(uuid.uuid4())),
        "InsertionTime": iso(now),
        "NextVisibleTime": iso(now + timedelta(seconds=30)),
        "PopReceipt": quoted("AgAAAAMAAAAAAAAAAgtnj8x+1QE="),
        "sys": {"MethodName": "ExportCompleted",
                "UtcNow": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "RandGuid": str(uuid.uuid4())},
    })
    body = {"Data": {"notification": quoted(text)}, "Metadata": metadata}
    return json.dumps(body, separators=(",", ":")).encode()


class HostConnection:
    """One kept-alive connection of the host's HttpClient pool. POSTs go out chunked, no
    Content-Length, with the host's headers and nothing else."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def post(self, path, body):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"X-Azure-Functions-HostVersion: {HOST_VERSION}\r\n"
                f"X-Azure-Functions-InvocationId: {uuid.uuid4()}\r\n"
                f"User-Agent: Azure-Functions-Host/{HOST_VERSION}\r\n"
                "Content-Type: application/json; charset=utf-8\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        parts = [head]
        for i in range(0, len(body), CHUNK):
            piece = body[i:i + CHUNK]
            parts += [b"%x\r\n" % len(piece), piece, b"\r\n"]
        parts.append(b"0\r\n\r\n")
        self.writer.write(b"".join(parts))
        await self.writer.drain()
        status_line, headers = await read_head(self.reader)
        status = int(status_line.split()[1])
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data = await read_chunked(self.reader)
        else:
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers.get("content-type", ""), data

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def read_head(reader):
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


async def read_chunked(reader):
    data = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(data)
        data += await reader.readexactly(size)
        await reader.readexactly(2)


class Outcome:
    def __init__(self):
        self.ok = 0
        self.failures = []
        self.latencies = []

    def record(self, status, content_type, data, latency):
        self.latencies.append(latency)
        good = status == 200 and content_type.startswith("application/json")
        if good:
            try:
                answer = json.loads(data)
                good = set(answer) >= {"Outputs", "Logs", "ReturnValue"}
            except ValueError:
                good = False
        if good:
            self.ok += 1
        else:
            self.failures.append(f"{status} {content_type}: {data[:300]!r}")


async def invoke_all(port, bodies, concurrency, connections=None):
    """Sends `bodies` to POST /ExportCompleted with `concurrency` in flight, each worker on its
    own kept-alive connection (the host's pool). Returns (Outcome, wall seconds)."""
    outcome = Outcome()
    pending = iter(bodies)
    connections = connections if connections is not None else []
    while len(connections) < concurrency:
        connections.append(HostConnection(port))

    async def worker(conn):
        for body in pending:
            started = time.perf_counter()
            try:
                status, ctype, data = await conn.post("/ExportCompleted", body)
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                conn.close()
                outcome.failures.append(f"transport: {e!r}")
                continue
            outcome.record(status, ctype, data, time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections[:concurrency]))
    return outcome, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# The counting proxy between a handler and Azurite's blob endpoint
# ---------------------------------------------------------------------------------------------

def operation(method, target, headers):
    query = parse_qs(urlsplit(target).query)
    comp = query.get("comp", [""])[0]
    restype = query.get("restype", [""])[0]
    if "x-ms-copy-source" in headers:
        return "Copy Blob (start)" if method == "PUT" else f"{method} copy"
    if comp == "list":
        return "List Blobs"
    if comp in ("tags", "metadata", "block", "blocklist", "properties"):
        verb = {"GET": "Get", "PUT": "Set", "HEAD": "Get"}.get(method, method)
        return f"{verb} Blob {comp.capitalize()}"
    if restype == "container":
        return f"{method} container"
    return {"HEAD": "Get Blob Properties", "GET": "Get Blob (download)",
            "PUT": "Put Blob", "DELETE": "Delete Blob"}.get(method, method)


def internal_label(method, target, headers):
    """A request Azurite makes to itself, e.g. `GET customvision-backups/…?comp=metadata (axios)`
    (its check of a SAS-signed copy source, which it serves as a download)."""
    url = urlsplit(target)
    container = url.path.split("/")[2] if url.path.count("/") >= 2 else ""
    comp = parse_qs(url.query).get("comp", [""])[0]
    agent = headers.get("user-agent", "?").split("/")[0]
    return f"{method} {container}/…{'?comp=' + comp if comp else ''} ({agent})"


class CountingProxy:
    """Forwards bytes both ways unchanged (the Host header too, so Azurite sees the same host as
    the copy-source URL the handler built and resolves the source in the same instance). Parses
    only the client→server request heads and body framing, to count requests. Requests from
    Azurite itself (its check of a SAS-signed copy source, `axios`) are counted apart."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.server = None
        self.tasks = set()
        self.reset()

    def reset(self):
        self.requests = Counter()
        self.internal = Counter()
        self.client_ports = set()  # connections that sent a handler request
        self.accepted = 0  # every connection accepted, Azurite's own ones excepted
        self.internal_connections = 0

    async def start(self):
        self.server = await asyncio.start_server(self.client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        self.server.close()
        # Azurite keeps its own (copy-source check) connection alive: close what is left.
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def client(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await self.serve(reader, writer)
        except asyncio.CancelledError:  # stop(): the proxy goes away with its connections
            writer.close()
        finally:
            self.tasks.discard(task)

    async def serve(self, reader, writer):
        peer_port = writer.get_extra_info("peername")[1]
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        back = asyncio.create_task(self.pipe(up_reader, writer))
        self.accepted += 1
        first = True
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                lines = raw.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                op = operation(method, target, headers)
                if headers.get("user-agent", "").startswith("azsdk"):
                    self.requests[op] += 1
                    self.client_ports.add(peer_port)
                else:
                    self.internal[internal_label(method, target, headers)] += 1
                    if first:
                        self.internal_connections += 1
                first = False
                up_writer.write(raw)
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    while True:
                        size_line = await reader.readuntil(b"\r\n")
                        up_writer.write(size_line)
                        size = int(size_line.split(b";")[0], 16)
                        if size == 0:
                            while True:
                                trailer = await reader.readuntil(b"\r\n")
                                up_writer.write(trailer)
                                if trailer == b"\r\n":
                                    break
                            break
                        up_writer.write(await reader.readexactly(size + 2))
                else:
                    left = int(headers.get("content-length", "0"))
                    while left:
                        piece = await reader.read(min(left, 1 << 20))
                        if not piece:
                            break
                        up_writer.write(piece)
                        left -= len(piece)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_writer.close()
            back.cancel()
            await asyncio.gather(back, return_exceptions=True)
            writer.close()

    @staticmethod
    async def pipe(reader, writer):
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


# ---------------------------------------------------------------------------------------------
# Storage setup and checks (not timed)
# ---------------------------------------------------------------------------------------------

class Export:
    def __init__(self):
        self.project, self.iteration = str(uuid.uuid4()), str(uuid.uuid4())
        self.name = f"{self.project} - {self.iteration}.ONNX"
        self.copy = f"{self.project}/{self.iteration}/ONNX/{self.name}"
        self.bodies = {}

    def body(self, blob_port, dequeue_count=1):
        uri = f"http://127.0.0.1:{blob_port}/{ACCOUNT}/{BACKUPS}/{quote(self.name)}"
        return invocation_body(export_message(self.project, self.iteration, uri), dequeue_count)


async def upload_small(service, exports, concurrency=32):
    data = os.urandom(SMALL)
    container = service.get_container_client(BACKUPS)
    gate = asyncio.Semaphore(concurrency)

    async def one(e):
        async with gate:
            await container.upload_blob(e.name, data, overwrite=True)
    await asyncio.gather(*(one(e) for e in exports))


async def delete(service, blobs, concurrency=32):
    """Removes (container, name) blobs, so that a later phase finds Azurite as the earlier one
    did: Azurite's in-memory lookups slow down as the number of blobs grows."""
    gate = asyncio.Semaphore(concurrency)

    async def one(container, name):
        async with gate:
            try:
                await service.get_blob_client(container, name).delete_blob()
            except Exception:  # noqa: BLE001 - a failed export left no copy
                pass
    await asyncio.gather(*(one(c, n) for c, n in blobs))


def backups_and_copies(exports):
    return [(BACKUPS, e.name) for e in exports] + [(MODELS, e.copy) for e in exports]


async def upload_large(service, export):
    """1 GiB as 256 staged blocks of 4 MiB and one block list: never one buffer of 1 GiB."""
    blob = service.get_blob_client(BACKUPS, export.name)
    block = os.urandom(LARGE_BLOCK)
    ids = [f"{i:08d}" for i in range(LARGE // LARGE_BLOCK)]
    gate = asyncio.Semaphore(4)

    async def stage(block_id):
        async with gate:
            await blob.stage_block(block_id, block, length=LARGE_BLOCK)
    await asyncio.gather(*(stage(b) for b in ids))
    await blob.commit_block_list(ids)


async def verify(service, exports, action, size):
    """The copy exists, has the source's bytes count, the four index tags (the Rust handler adds
    a fifth, `kind`) and the metadata with the backup's current ETag; for `both`, the backup is
    tagged in place too."""
    problems, bad = [], 0
    for e in exports:
        before = len(problems)
        want_tags = {"projectId": e.project, "iterationId": e.iteration, "platform": "ONNX",
                     "source": f"{BACKUPS}/{e.name}"}
        backup = service.get_blob_client(BACKUPS, e.name)
        bprops = await backup.get_blob_properties()
        try:
            copy = service.get_blob_client(MODELS, e.copy)
            cprops = await copy.get_blob_properties()
            ctags = await copy.get_blob_tags()
        except Exception as err:  # noqa: BLE001 - reported, not raised
            problems.append(f"{e.copy}: no copy ({type(err).__name__})")
            bad += 1
            continue
        if cprops.size != size:
            problems.append(f"{e.copy}: {cprops.size} bytes, want {size}")
        if {k: v for k, v in ctags.items() if k != "kind"} != want_tags:
            problems.append(f"{e.copy}: tags {ctags}")
        meta = cprops.metadata or {}
        if (meta.get("cvprojectid"), meta.get("cviterationid"), meta.get("cvplatform"),
                meta.get("cvsourceblob")) != (e.project, e.iteration, "ONNX", f"{BACKUPS}/{e.name}"):
            problems.append(f"{e.copy}: metadata {meta}")
        if meta.get("cvsourceetag", "").strip('"') != (bprops.etag or "").strip('"'):
            problems.append(f"{e.copy}: cvsourceetag {meta.get('cvsourceetag')} != {bprops.etag}")
        btags = await backup.get_blob_tags()
        if action == "both":
            if {k: v for k, v in btags.items() if k != "kind"} != want_tags:
                problems.append(f"{e.name}: backup tags {btags}")
            if (bprops.metadata or {}).get("cvsourceblob") != f"{BACKUPS}/{e.name}":
                problems.append(f"{e.name}: backup metadata {bprops.metadata}")
        elif btags:
            problems.append(f"{e.name}: backup tagged under copy: {btags}")
        bad += len(problems) > before
    return problems, bad


async def check(r, phase, service, exports, action, size):
    problems, bad = await verify(service, exports, action, size)
    r["verify"] += [f"[{phase}] {p}" for p in problems]
    r["verify_bad"] += bad
    r["verified"] += len(exports)


# ---------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------

def median(xs):
    return statistics.median(xs) if xs else float("nan")


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def counted_phases(azurite, handler, service, results, count, concurrency):
    """Through the counting proxy: `both` first delivery, redelivery, then `copy`."""
    r = results[handler.kind]
    for action in ("both", "copy"):
        proxy = await CountingProxy(azurite.blob_port).start()
        warm = [Export() for _ in range(5)]
        batch = [Export() for _ in range(count)]
        await upload_small(service, warm + batch)
        running = Running(handler, azurite.connection_string(proxy.port), action)
        try:
            await asyncio.to_thread(running.wait_ready)
            pool = []
            out, _ = await invoke_all(running.port, [e.body(proxy.port) for e in warm], 1, pool)
            r["failures"] += out.failures
            proxy.reset()
            out, _ = await invoke_all(running.port, [e.body(proxy.port) for e in batch],
                                      concurrency, pool)
            r["failures"] += out.failures
            r[f"requests_{action}"] = sum(proxy.requests.values()) / count
            r[f"ops_{action}"] = {k: v / count for k, v in sorted(proxy.requests.items())}
            r[f"internal_{action}"] = sum(proxy.internal.values()) / count
            r[f"ops_{action}"].update({f"Azurite to itself: `{k}`": v / count
                                       for k, v in sorted(proxy.internal.items())})
            r[f"accepted_{action}"] = proxy.accepted - proxy.internal_connections
            if action == "both":
                r["connections"] = len(proxy.client_ports)
                proxy.reset()
                out, _ = await invoke_all(
                    running.port, [e.body(proxy.port, 2) for e in batch], concurrency, pool)
                r["failures"] += out.failures
                r["requests_redelivery"] = sum(proxy.requests.values()) / count
                r["ops_redelivery"] = {k: v / count for k, v in sorted(proxy.requests.items())}
                r["connections_redelivery"] = len(proxy.client_ports)
                r["accepted_redelivery"] = proxy.accepted - proxy.internal_connections
            for c in pool:
                c.close()
        finally:
            running.stop()
            await proxy.stop()
        sample = random.sample(batch, min(10, len(batch)))
        await check(r, action, service, sample, action, SMALL)
        await delete(service, backups_and_copies(warm + batch))


def busy_seconds():
    """CPU time the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLK_TCK


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system


async def throughput_phase(azurite, handlers, service, results, sets, concurrency):
    """Both handlers up at once (the idle one costs nothing), each warmed up, then their exports
    in halves, in the order Rust, peer, peer, Rust: drift on the machine (other work, Azurite's
    growing blob count) falls on both alike. Each handler keeps its connections across halves,
    as the host's pool does."""
    running = {h.kind: Running(h, azurite.connection_string(), "both") for h in handlers}
    acc = {h.kind: {"ok": 0, "wall": 0.0, "cpu": 0.0, "azurite": 0.0, "others": 0.0,
                    "latencies": [], "peak": 0, "seen": set()} for h in handlers}
    try:
        for run in running.values():
            await asyncio.to_thread(run.wait_ready)
        pools = {kind: [] for kind in running}
        for h in handlers:
            warmup = sets[h.kind][0]
            out, _ = await invoke_all(running[h.kind].port,
                                      [e.body(azurite.blob_port) for e in warmup], concurrency,
                                      pools[h.kind])
            results[h.kind]["failures"] += out.failures
        first, second = HANDLERS
        for kind, half in ((first, 0), (second, 0), (second, 1), (first, 1)):
            exports = sets[kind][1]
            middle = len(exports) // 2
            part = exports[:middle] if half == 0 else exports[middle:]
            run, a = running[kind], acc[kind]
            bodies = [e.body(azurite.blob_port) for e in part]
            stop = threading.Event()

            def watch(pid=run.pid, a=a, stop=stop):
                while not stop.wait(0.25):
                    now = storage_sockets(pid, azurite.blob_port)
                    a["seen"].update(now)
                    a["peak"] = max(a["peak"], len(now))
            watcher = threading.Thread(target=watch, daemon=True)
            pids = [p.pid for p in running.values()]
            before = (cpu_seconds(run.pid), cpu_seconds(azurite.proc.pid), busy_seconds(),
                      own_cpu_seconds(), sum(cpu_seconds(p) for p in pids))
            watcher.start()
            out, wall = await invoke_all(run.port, bodies, concurrency, pools[kind])
            after = (cpu_seconds(run.pid), cpu_seconds(azurite.proc.pid), busy_seconds(),
                     own_cpu_seconds(), sum(cpu_seconds(p) for p in pids))
            stop.set()
            watcher.join()
            d = [y - x for x, y in zip(before, after)]
            a["ok"] += out.ok
            a["wall"] += wall
            a["cpu"] += d[0]
            a["azurite"] += d[1]
            a["others"] += max(0.0, d[2] - d[1] - d[3] - d[4])
            a["latencies"] += out.latencies
            results[kind]["failures"] += out.failures
            log(f"  {kind} half {half + 1}: {len(part)} exports in {wall:.1f} s")
        for kind, run in running.items():
            mem = memory_kib(run.pid)
            results[kind]["hwm_mib"] = mem["VmHWM"] / 1024
            results[kind]["rss_mib"] = mem["VmRSS"] / 1024
        for conns in pools.values():
            for c in conns:
                c.close()
    finally:
        for run in running.values():
            run.stop()
    for kind, a in acc.items():
        r, n = results[kind], len(sets[kind][1])
        r["throughput"] = a["ok"] / a["wall"]
        r["wall"] = a["wall"]
        r["cpu_ms"] = a["cpu"] * 1000 / n
        r["azurite_cpu_ms"] = a["azurite"] * 1000 / n
        r["others_cores"] = a["others"] / a["wall"]
        r["p50_ms"] = percentile(a["latencies"], 50) * 1000
        r["p99_ms"] = percentile(a["latencies"], 99) * 1000
        r["latency"] = f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}"
        r["peak_sockets"] = a["peak"]
        r["sockets_seen"] = len(a["seen"])
        sample = random.sample(sets[kind][1], min(25, n))
        await check(r, "throughput", service, sample, "both", SMALL)


async def large_phase(azurite, handler, service, results, large, warm):
    r = results[handler.kind]
    running = Running(handler, azurite.connection_string(), "both")
    try:
        await asyncio.to_thread(running.wait_ready)
        pool = []
        out, _ = await invoke_all(running.port, [e.body(azurite.blob_port) for e in warm], 1, pool)
        r["failures"] += out.failures
        before = memory_kib(running.pid)
        cpu0 = cpu_seconds(running.pid)
        out, wall = await invoke_all(running.port, [large.body(azurite.blob_port)], 1, pool)
        after = memory_kib(running.pid)
        cpu1 = cpu_seconds(running.pid)
        for c in pool:
            c.close()
    finally:
        running.stop()
    r["failures"] += [f"[1 GiB] {f}" for f in out.failures]
    r["large_failed"] = bool(out.failures)
    r["large_wall"] = wall
    r["large_cpu_ms"] = (cpu1 - cpu0) * 1000
    r["large_hwm"] = (before["VmHWM"] / 1024, after["VmHWM"] / 1024)
    r["large_rss"] = (before["VmRSS"] / 1024, after["VmRSS"] / 1024)
    await check(r, "1 GiB", service, [large], "both", LARGE)


async def strace_phase(azurite, handler, service, results, per):
    """`strace -f -e trace=openat,connect`: files opened and connect() calls at start-up, and per
    export over `per` exports (the difference between a start-only run and a run with exports)."""
    if not shutil.which("strace"):
        return
    r = results[handler.kind]
    counts = []
    for n in (0, per):
        batch = [Export() for _ in range(n)]
        await upload_small(service, batch)
        with tempfile.NamedTemporaryFile(prefix="bench-strace-", delete=False) as f:
            trace = f.name
        wrapper = ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=openat,connect",
                   "-e", "signal=none", "-o", trace]
        running = Running(handler, azurite.connection_string(), "both", wrapper)
        try:
            await asyncio.to_thread(running.wait_ready, 60)
            out, _ = await invoke_all(running.port, [e.body(azurite.blob_port) for e in batch],
                                      1 if n else 1)
            r["failures"] += [f"[strace] {f}" for f in out.failures]
        finally:
            running.stop()
        await delete(service, backups_and_copies(batch))
        text = Path(trace).read_text(errors="replace")
        os.unlink(trace)
        opened = sum(1 for line in text.splitlines()
                     if "openat(" in line and not re.search(r"= -1 ", line))
        port = f"sin_port=htons({azurite.blob_port})"
        connects = sum(1 for line in text.splitlines() if "connect(" in line and port in line)
        counts.append((opened, connects))
    r["files_startup"] = counts[0][0]
    r["files_per_export"] = (counts[1][0] - counts[0][0]) / per
    r["connects_per_export"] = (counts[1][1] - counts[0][1]) / per


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": mem_kib / 1024 / 1024,
            "kernel": platform.release(), "load": os.getloadavg()}


def git(*args):
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != v:
            return "—"
        return f"{v:,.{digits}f}"
    return str(v)


def ratio(a, b):
    if a is None or b is None or not b or a != a or b != b:
        return None
    return a / b


def report(results, args, info):
    rust, peer = results["rust"], results["peer"]
    rows = []  # (figure, Rust, peer, Rust/peer, target, verdict)

    for h in (rust, peer):
        if "accepted_redelivery" in h:
            h["redelivery_connections"] = (f"{h['accepted_redelivery']} / "
                                           f"{h['connections_redelivery']}")

    def verdict(ok):
        return "" if ok is None else ("met" if ok else "**not met**")

    def row(name, key, digits=1, target="", check=None, show_ratio=True):
        """`check(rust_value, ratio)` says whether the target is met."""
        a, b = rust.get(key), peer.get(key)
        rat = ratio(a, b) if show_ratio else None
        ok = None
        if check is not None:
            ok = a is not None and check(a, rat)
        rows.append((name, fmt(a, digits), fmt(b, digits),
                     f"{rat:.2f}" if rat is not None else "—", target, verdict(ok)))

    row(f"cold start, exec → first `GET /` answer, median of {args.cold_starts} (ms)",
        "cold_ms", 2, "Rust ≤ 5 ms", lambda a, _: a <= 5)
    row("cold start, min / max (ms)", "cold_range", show_ratio=False)
    row("handler CPU per export, utime+stime over the run / exports (ms)", "cpu_ms", 3,
        "≤ 1/5 of peer (ratio ≤ 0.20)", lambda a, r: r is not None and r <= 0.2)
    row(f"throughput, {args.exports} exports at concurrency {args.concurrency} (exports/s)",
        "throughput", 1, "≥ 2× peer (ratio ≥ 2.00)", lambda a, r: r is not None and r >= 2)
    row("latency per export, p50 / p99 (ms)", "latency", show_ratio=False)
    row("peak RSS under that load, VmHWM (MiB)", "hwm_mib", 1,
        "≤ 1/5 of peer (ratio ≤ 0.20)", lambda a, r: r is not None and r <= 0.2)
    for key, label, limit in (("requests_both", "`both`, first delivery", 4),
                              ("requests_copy", "`copy`, first delivery", 2),
                              ("requests_redelivery", "`both`, redelivery (all done)", 3)):
        row(f"blob requests per export, {label}", key, 2, f"Rust ≤ {limit}",
            lambda a, _, limit=limit: a <= limit + 1e-9)
    row("… and requests Azurite makes to itself per export, `both` (it downloads a "
        "SAS-signed copy source to check it; not counted above)", "internal_both", 2,
        show_ratio=False)
    row(f"TCP connections opened to storage over {args.count} exports at concurrency "
        f"{args.concurrency}, `both` first delivery (accepted by the proxy)", "accepted_both", 0)
    row("… of which sent a request (distinct client ports)", "connections", 0)
    row("… over their redelivery: opened / sent a request", "redelivery_connections",
        show_ratio=False)
    row(f"… over {args.count} exports, `copy` first delivery: opened", "accepted_copy", 0)
    row("storage connections open at once, peak during the throughput run (/proc, every "
        "0.25 s)", "peak_sockets", 0)
    row("… distinct storage connections seen by that sampling (a lower bound)",
        "sockets_seen", 0)
    row("connect() calls to storage per export (strace)", "connects_per_export", 2)
    row("files opened at start-up (strace openat, successful)", "files_startup", 0)
    row("files opened per export (strace openat, successful)", "files_per_export", 2)
    row("Azurite CPU per export during the throughput run (ms)", "azurite_cpu_ms", 3)
    row("other processes' CPU during that run, average cores busy (machine noise: the whole "
        "machine's busy time less handlers, Azurite and driver)", "others_cores", 2,
        show_ratio=False)
    if args.large:
        for h in (rust, peer):
            if h.get("large_failed"):
                h["large_wall_text"] = f"failed after {h['large_wall']:.2f}"
            elif "large_wall" in h:
                h["large_wall_text"] = f"{h['large_wall']:.2f}"
        row("1 GiB backup, `both` (tags in place + server-side copy): wall time (s)",
            "large_wall_text", show_ratio=False)
        if not (rust.get("large_failed") or peer.get("large_failed")) and "large_wall" in rust:
            rows[-1] = rows[-1][:3] + (f"{ratio(rust['large_wall'], peer['large_wall']):.2f}",
                                       *rows[-1][4:])
        row("… handler CPU for it (ms)", "large_cpu_ms", 0)
        hwm = rust.get("large_hwm")
        grow = None if hwm is None else hwm[1] - hwm[0]
        flat = None if grow is None else grow < 8
        rows.append(("… peak RSS (VmHWM) before → after (MiB)", fmt_pair(hwm),
                     fmt_pair(peer.get("large_hwm")), "—",
                     "flat (Rust grows < 8 MiB, and the copy is made)",
                     verdict(None if flat is None else flat and not rust.get("large_failed"))))
        rows.append(("… RSS (VmRSS) before → after (MiB)", fmt_pair(rust.get("large_rss")),
                     fmt_pair(peer.get("large_rss")), "—", "", ""))
    size = info["binary"]
    rows.append(("release binary `target/release/handler` (bytes)", f"{size:,}", "—", "—",
                 "≤ 6 MB (6,000,000 bytes)", verdict(size <= 6_000_000)))
    musl = info["musl"]
    rows.append(("musl build (`make release`, `target/x86_64-unknown-linux-musl/release/"
                 "handler`) (bytes)", f"{musl:,}" if isinstance(musl, int) else musl, "—", "—",
                 "≤ 6 MB (6,000,000 bytes)",
                 verdict(musl <= 6_000_000) if isinstance(musl, int) else "not measured"))
    for h in (rust, peer):
        h["failure_count"] = len(h["failures"])
        h["verify_summary"] = f"{h['verified'] - h['verify_bad']} of {h['verified']} right"
    row("non-200 (or non-JSON) answers, all phases", "failure_count", 0, "0 for both",
        lambda a, _: a == 0 and peer["failure_count"] == 0, show_ratio=False)
    row("sampled copies checked after the runs (size, 4 tags, metadata, source ETag; backup "
        "tags and metadata for `both`)", "verify_summary", show_ratio=False)

    m = info["machine"]
    out = [
        "# Benchmark results: Rust handler vs Python reference peer",
        "",
        "Written by `bench/driver.py` (`make bench`); the method is in [`README.md`](README.md). "
        "Re-run `make bench` after changing the handler: this file is overwritten.",
        "",
        f"- date: {info['date']}",
        f"- command: `{info['command']}`",
        f"- machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}, {m['ram_gib']:.1f} GiB RAM, "
        f"Linux {m['kernel']}; load average when the run started {m['load'][0]:.2f} / "
        f"{m['load'][1]:.2f} / {m['load'][2]:.2f}, when it ended {info['load_end'][0]:.2f} "
        "(1-min load averages; above 2 the run shared its 2 cores with other work)",
        f"- Rust handler: sources (`src/`, `Cargo.*`) as of commit `{info['source_commit']}`"
        f"{info['dirty']}, checkout at `{info['commit']}`; `target/release/handler serve`, "
        "`RUST_LOG=warn`",
        f"- peer: `bench/peer/handler.py` (reference only), Python {platform.python_version()}, "
        f"{info['peer_versions']}",
        f"- Azurite {info['azurite']}, in memory, `--silent`: one instance for both handlers",
        f"- the run took {info['elapsed']:.0f} s",
        "",
        "| figure | Rust | peer | Rust/peer | target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    out += [f"| {' | '.join(r)} |" for r in rows]
    out += ["", "## Blob requests per export, by operation (counting proxy)", "",
            "| operation | Rust `both` | peer `both` | Rust `copy` | peer `copy` | "
            "Rust redelivery | peer redelivery |", "|---|---:|---:|---:|---:|---:|---:|"]
    cases = ("ops_both", "ops_copy", "ops_redelivery")
    ops = sorted({op for h in (rust, peer) for k in cases for op in h.get(k, {})})
    for op in ops:
        cells = [fmt(h.get(k, {}).get(op, 0.0), 2) for k in cases for h in (rust, peer)]
        out.append(f"| {op} | {' | '.join(cells)} |")
    criterion = ROOT / "bench/.criterion.txt"
    if criterion.exists():
        out += ["", "## In-process parts (criterion, `cargo bench --bench inprocess`)", "",
                "| benchmark | time per iteration |", "|---|---:|"]
        for line in criterion.read_text().splitlines():
            # bencher format: "test <name> ... bench:  <ns> ns/iter (+/- <dev>)"
            if line.startswith("test ") and " bench:" in line:
                name = line[5:line.index(" ... ")]
                ns = line.split("bench:")[1].split("ns/iter")[0].strip().replace(",", "")
                out.append(f"| {name} | {int(ns) / 1000:.2f} µs |")
    for h in (rust, peer):
        if h["failures"] or h["verify"]:
            out += ["", f"## Problems: {h['label']}", ""]
            out += [f"- {p}" for p in (h["failures"][:10] + h["verify"][:10])]
            if h.get("large_failed") and h.get("internal_both"):
                out += ["", "This handler signs a SAS into its copy-source URL, and Azurite checks "
                        "such a source by downloading it; over 512 MiB that download fails inside "
                        "Azurite (500), so the 1 GiB copy cannot succeed on Azurite. Azure does "
                        "not do this check by download (see README.md, \"Azurite's own "
                        "requests\")."]
    out.append("")
    return "\n".join(out)


def fmt_pair(p):
    return "—" if p is None else f"{p[0]:.1f} → {p[1]:.1f}"


# ---------------------------------------------------------------------------------------------

async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exports", type=int, default=int(os.environ.get("BENCH_EXPORTS", 1000)))
    parser.add_argument("--large", type=int, default=int(os.environ.get("BENCH_LARGE", 1)))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--cold-starts", type=int, default=20)
    parser.add_argument("--count", type=int, default=0,
                        help="exports per counted (proxied) phase; default min(100, exports)")
    parser.add_argument("--strace-exports", type=int, default=20)
    parser.add_argument("--results", default=str(ROOT / "bench/RESULTS.md"))
    parser.add_argument("--command", default=os.environ.get("BENCH_COMMAND",
                                                            " ".join(sys.argv)))
    args = parser.parse_args()
    args.count = args.count or min(100, args.exports)
    began = time.monotonic()
    info = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": args.command, "machine": machine(),
            "commit": git("rev-parse", "--short=12", "HEAD"),
            "source_commit": git("log", "-1", "--format=%h", "--abbrev=12", "--", "src",
                                 "Cargo.toml", "Cargo.lock"),
            "dirty": " (+ uncommitted changes)" if git("status", "--porcelain", "--", "src",
                                                       "Cargo.toml", "Cargo.lock") else ""}
    binary = ROOT / "target/release/handler"
    if not binary.exists():
        sys.exit(f"{binary} missing: run `cargo build --release`")
    info["binary"] = binary.stat().st_size
    # `make bench` runs `make release` first and says how it went; run by hand, a musl binary at
    # least as new as the release binary is taken as current.
    musl = ROOT / "target/x86_64-unknown-linux-musl/release/handler"
    status = os.environ.get("BENCH_MUSL_STATUS")
    if status == "ok" or (status is None and musl.exists()
                          and musl.stat().st_mtime >= binary.stat().st_mtime):
        info["musl"] = musl.stat().st_size
    else:
        info["musl"] = status or "not built"
    from importlib.metadata import version
    info["peer_versions"] = ", ".join(f"{p} {version(p)}" for p in
                                      ("azure-storage-blob", "azure-core", "aiohttp"))

    handlers = [Handler(k, sys.executable) for k in HANDLERS]
    results = {h.kind: {"failures": [], "verify": [], "verified": 0, "verify_bad": 0,
                         "label": h.label()}
               for h in handlers}
    log(f"machine: {info['machine']}")
    azurite = Azurite()
    info["azurite"] = azurite.version
    log(f"Azurite {azurite.version} on blob port {azurite.blob_port}")
    try:
        async with BlobServiceClient.from_connection_string(
                azurite.connection_string()) as service:
            for c in (BACKUPS, MODELS):
                await service.create_container(c)

            # 1. Cold start, interleaved so that drift on the machine hits both alike.
            log(f"cold start: {args.cold_starts} starts each")
            starts = {h.kind: [] for h in handlers}
            for _ in range(args.cold_starts):
                for h in handlers:
                    starts[h.kind].append(cold_start(h, azurite.connection_string()) * 1000)
            for h in handlers:
                s = starts[h.kind]
                results[h.kind]["cold_ms"] = median(s)
                results[h.kind]["cold_range"] = f"{min(s):.2f} / {max(s):.2f}"
                log(f"  {h.kind}: median {median(s):.2f} ms")

            # 2. Requests and connections, through the counting proxy.
            for h in handlers:
                log(f"counting requests ({h.kind}): {args.count} exports per case")
                await counted_phases(azurite, h, service, results, args.count, args.concurrency)
                r = results[h.kind]
                log(f"  both {r['requests_both']:.2f}, copy {r['requests_copy']:.2f}, "
                    f"redelivery {r['requests_redelivery']:.2f} requests/export; "
                    f"{r['accepted_both']} connections accepted, {r['connections']} used")

            # 3. Throughput, CPU and memory: every backup uploaded before either handler runs.
            log(f"uploading {2 * (args.exports + args.warmup)} backups of 64 KiB")
            sets = {h.kind: ([Export() for _ in range(args.warmup)],
                             [Export() for _ in range(args.exports)]) for h in handlers}
            await upload_small(service, [e for w, x in sets.values() for e in w + x])
            log(f"throughput: {args.exports} exports per handler at concurrency "
                f"{args.concurrency} after {args.warmup} warm-up, in halves: rust, peer, peer, "
                "rust")
            await throughput_phase(azurite, handlers, service, results, sets, args.concurrency)
            for h in handlers:
                r = results[h.kind]
                log(f"  {h.kind}: {r['throughput']:.1f} exports/s, {r['cpu_ms']:.3f} ms "
                    f"CPU/export, VmHWM {r['hwm_mib']:.1f} MiB")

            # 4. Files opened and connect() calls (strace).
            for h in handlers:
                log(f"strace ({h.kind}): start-up, then {args.strace_exports} exports")
                await strace_phase(azurite, h, service, results, args.strace_exports)

            # 5. One 1 GiB backup per handler.
            if args.large:
                for h in handlers:
                    large, warm = Export(), [Export() for _ in range(5)]
                    log(f"1 GiB ({h.kind}): uploading in {LARGE // LARGE_BLOCK} blocks")
                    await upload_small(service, warm)
                    await upload_large(service, large)
                    log(f"1 GiB ({h.kind}): exporting")
                    await large_phase(azurite, h, service, results, large, warm)
                    r = results[h.kind]
                    log(f"  {r['large_wall']:.2f} s, VmHWM {fmt_pair(r['large_hwm'])} MiB")
                    for f in r["failures"]:
                        if f.startswith("[1 GiB]"):
                            log(f"  {f}")
                    # Free Azurite's memory before the next one.
                    await delete(service, backups_and_copies([large] + warm))
    finally:
        azurite.stop()
    info["elapsed"] = time.monotonic() - began
    info["load_end"] = os.getloadavg()
    text = report(results, args, info)
    Path(args.results).write_text(text)
    print()
    print(text)
    log(f"written to {args.results}")


if __name__ == "__main__":
    asyncio.run(main())
