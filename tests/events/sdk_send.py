"""Sends one CloudEvent with the official Event Grid SDK (azure-eventgrid's
EventGridPublisherClient with an AzureKeyCredential) to ENDPOINT, as a user of a real topic
would. Exits 0 when the SDK reports success, 1 with the SDK's error otherwise.

The SDK sends the key as `aeg-sas-key` and the CloudEvents batch content type; it does not
refuse an http endpoint with a key credential (only a bearer token policy insists on https),
so the fake topic on loopback is reached as it is.

Usage: sdk_send.py ENDPOINT KEY
"""
import sys

from azure.core.credentials import AzureKeyCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient


def main(endpoint: str, key: str) -> int:
    client = EventGridPublisherClient(endpoint, AzureKeyCredential(key))
    event = CloudEvent(
        source="https://account.blob.core.windows.net/models",
        type="CustomVisionEvents.Ping",
        subject="test",
        data={"nonce": "sdk"},
    )
    try:
        client.send([event])
    except Exception as e:  # noqa: BLE001 - the SDK's refusal, reported
        print(f"the SDK's send failed: {type(e).__name__}: {e}")
        return 1
    print("sent")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
