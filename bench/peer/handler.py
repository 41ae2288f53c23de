"""Reference peer for `make bench`: a minimal Azure Functions custom handler, in Python, doing the
same `ExportCompleted` work as the Rust handler with the official `azure-storage-blob` SDK.

NOT the product and not deployed. It exists only so the benchmark has something to compare with:
written the way a competent Python developer would write it (aiohttp server,
`azure.storage.blob.aio`, one `BlobServiceClient` for the life of the process), neither
deliberately slow nor tuned.

Per backup blob, as `src/export.rs` does:
- `EXPORT_ACTION` `tag`/`both`: index tags (merged, written only if they differ) and metadata
  (merged, written only if they differ, conditional on the ETag) on the backup in place;
- `copy`/`both`: server-side copy to `models/{projectId}/{iterationId}/{platform}/{blobName}` with
  the tags and metadata (including `cvsourceetag`) set in the copy call, conditional on the
  source ETag; a redelivery that finds the copy of the same ETag only checks the copy's tags.
"""

import asyncio
import base64
import json
import logging
import os
import re
import sys
from urllib.parse import unquote, urlparse

from aiohttp import web
from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient

log = logging.getLogger("peer")

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PLATFORMS = {
    p.lower(): p for p in ("CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK", "OpenVino")
}
COPY_DEADLINE_S = 120


class Transient(Exception):
    """Worth a retry: answered 500 so the host tries again."""


class Rejected(Exception):
    """A message that can never be processed: answered 200 with the reason in Logs."""


def answer(status=200, logs=()):
    body = {"Outputs": {}, "Logs": list(logs), "ReturnValue": None}
    return web.json_response(body, status=status)


def message_text(envelope):
    """`Data.notification` arrives JSON-encoded twice: remove the host's extra layer only."""
    value = envelope["Data"]["notification"]
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            return value
        if isinstance(inner, str):
            return inner
        return value
    return json.dumps(value)


def parse_export(text):
    text = text.strip()
    if not text.startswith("{"):
        try:
            text = base64.b64decode(text, validate=False).decode("utf-8")
        except ValueError as e:
            raise Rejected(f"neither JSON nor base64: {e}") from None
    try:
        message = json.loads(text)
    except ValueError as e:
        raise Rejected(f"not JSON: {e}") from None
    if not isinstance(message, dict):
        raise Rejected("JSON but not an object")
    top = {k.lower(): v for k, v in message.items()}
    if str(top.get("type", "")).lower() != "export":
        raise Rejected(f"expected an Export notification, got {top.get('type')!r}")
    content = top.get("content", top)
    content = {k.lower(): v for k, v in content.items()} if isinstance(content, dict) else {}
    project, iteration = content.get("projectid"), content.get("iterationid")
    for name, value in (("projectId", project), ("iterationId", iteration)):
        if not isinstance(value, str) or not GUID.match(value):
            raise Rejected(f"{name} is not a GUID")
    status = str(content.get("exportstatus", "")).lower()
    if status not in ("exportcompleted", "exportfailed"):
        raise Rejected(f"unknown exportStatus {content.get('exportstatus')!r}")
    model_uri = content.get("modeluri")
    return project.lower(), iteration.lower(), status == "exportcompleted", (
        model_uri if isinstance(model_uri, str) else None
    )


def classify(name, project, iteration):
    """The platform label if `name` is `{projectId} - {iterationId}.{platform|zip}`, else None."""
    prefix = f"{project} - {iteration}."
    if len(name) <= len(prefix) or name[: len(prefix)].lower() != prefix:
        return None
    ext = name[len(prefix):]
    if ext.lower() in PLATFORMS:
        return PLATFORMS[ext.lower()]
    return "zip" if ext.lower() == "zip" else None


class Exporter:
    def __init__(self, service: BlobServiceClient, action, backup_container, store_container):
        self.service = service
        self.action = action
        self.backup_container = backup_container
        self.backups = service.get_container_client(backup_container)
        self.store = service.get_container_client(store_container)

    async def locate(self, project, iteration, model_uri):
        if model_uri:
            uri, base = urlparse(model_uri), urlparse(self.backups.url)
            if (uri.scheme, uri.netloc.lower()) == (base.scheme, base.netloc.lower()):
                prefix = base.path.rstrip("/") + "/"
                if uri.path.startswith(prefix):
                    name = unquote(uri.path[len(prefix):])
                    if classify(name, project, iteration):
                        return [name]
        prefix = f"{project} - {iteration}."
        names = [
            b.name
            async for b in self.backups.list_blobs(name_starts_with=prefix)
            if classify(b.name, project, iteration)
        ]
        if not names:
            raise Transient(f"no backup blob '{prefix}<platform>' in '{self.backup_container}' yet")
        return names

    async def process(self, project, iteration, model_uri):
        logs = []
        for name in await self.locate(project, iteration, model_uri):
            logs.append(await self.process_one(project, iteration, name))
        return logs

    async def process_one(self, project, iteration, name):
        platform = classify(name, project, iteration)
        source_path = f"{self.backup_container}/{name}"
        tags = {"projectId": project, "iterationId": iteration, "platform": platform,
                "source": source_path}
        metadata = {"cvprojectid": project, "cviterationid": iteration, "cvplatform": platform,
                    "cvsourceblob": source_path}
        source = self.backups.get_blob_client(name)
        try:
            props = await source.get_blob_properties()
        except ResourceNotFoundError:
            raise Transient(f"backup '{source_path}' not there yet") from None
        etag = props.etag
        done = [f"backup '{source_path}'"]

        if self.action in ("tag", "both"):
            await ensure_tags(source, tags)
            current = dict(props.metadata or {})
            if any(current.get(k) != v for k, v in metadata.items()):
                current.update(metadata)
                updated = await source.set_blob_metadata(
                    current, etag=etag, match_condition=MatchConditions.IfNotModified
                )
                etag = updated["etag"]
            done.append("tagged in place")

        if self.action in ("copy", "both"):
            destination = f"{project}/{iteration}/{platform}/{name}"
            target = self.store.get_blob_client(destination)
            try:
                existing = await target.get_blob_properties()
            except ResourceNotFoundError:
                existing = None
            if (existing is not None
                    and (existing.metadata or {}).get("cvsourceetag") == etag
                    and existing.copy.status in (None, "success", "pending")):
                if existing.copy.status == "pending":
                    await wait_for_copy(target)
                await ensure_tags(target, tags)
                done.append(f"already in '{self.store.container_name}/{destination}'")
            else:
                result = await target.start_copy_from_url(
                    source.url,
                    metadata={**metadata, "cvsourceetag": etag},
                    tags=tags,
                    source_etag=etag,
                    source_match_condition=MatchConditions.IfNotModified,
                )
                if result.get("copy_status") != "success":
                    await wait_for_copy(target)
                done.append(f"copied to '{self.store.container_name}/{destination}'")
        return ", ".join(done)


async def ensure_tags(blob, ours):
    current = await blob.get_blob_tags()
    if any(current.get(k) != v for k, v in ours.items()):
        await blob.set_blob_tags({**current, **ours})


async def wait_for_copy(target):
    delay, waited = 0.05, 0.0
    while True:
        status = (await target.get_blob_properties()).copy.status
        if status in (None, "success"):
            return
        if status != "pending":
            raise Transient(f"copy to '{target.blob_name}' ended {status}")
        if waited >= COPY_DEADLINE_S:
            raise Transient(f"copy to '{target.blob_name}' still pending")
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 2.0)


async def ready(_request):
    return web.json_response({"status": "ready"})


async def export_completed(request):
    try:
        envelope = await request.json()
        text = message_text(envelope)
    except (ValueError, KeyError, TypeError) as e:
        return answer(400, [f"not an invocation: {e}"])
    try:
        project, iteration, completed, model_uri = parse_export(text)
    except Rejected as e:
        return answer(200, [f"warning: rejected: {e}"])
    if not completed:
        return answer(200, [f"warning: export of project {project} iteration {iteration} failed"])
    try:
        logs = await request.app["exporter"].process(project, iteration, model_uri)
    except (Transient, AzureError) as e:
        print(f"ExportCompleted failed, will retry: {e}", flush=True)
        return answer(500, [str(e)])
    return answer(200, [f"export of project {project} iteration {iteration} completed", *logs])


async def on_startup(app):
    service = BlobServiceClient.from_connection_string(os.environ["CV_STORAGE"])
    app["service"] = service
    app["exporter"] = Exporter(
        service,
        os.environ.get("EXPORT_ACTION", "both").lower(),
        os.environ.get("CV_BACKUP_CONTAINER", "customvision-backups"),
        os.environ.get("MODEL_STORE_CONTAINER", "models"),
    )


async def on_cleanup(app):
    await app["service"].close()


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    action = os.environ.get("EXPORT_ACTION", "both").lower()
    if action not in ("copy", "tag", "both"):
        sys.exit(f"EXPORT_ACTION must be copy, tag or both, not {action!r}")
    port = int(os.environ["FUNCTIONS_CUSTOMHANDLER_PORT"])
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/", ready)
    app.router.add_post("/ExportCompleted", export_completed)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
