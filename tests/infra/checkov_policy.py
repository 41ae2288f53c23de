"""What the checkov scan of infra/ may report besides passes.

Prefer fixing. A finding that is a deliberate design choice is suppressed inline, inside
the resource body, as `// checkov:skip=CKV_ID: reason` (checkov 3.x honours that for
Bicep, verified), and listed here with the same reason so that a new suppression
cannot slip in unreviewed.

checkov's Bicep parser (pycep, checkov 3.3.30) reports a parsing error for a resource with
five comment lines in a row; spread the skips (test_every_file_parsed catches it).
"""

# Inline suppressions reviewed and accepted: check id -> reason.
REVIEWED_INLINE_SKIPS: dict[str, str] = {
    "CKV_AZURE_35": "Storage default network rule Allow: Custom Vision writes from its service and the app has no VNet; Entra-only auth and container/queue-scoped roles protect the data.",
    "CKV_AZURE_59": "Storage public network access stays enabled for the same reason as CKV_AZURE_35.",
    "CKV_AZURE_206": "Replication is a parameter: the data account is Standard_GRS from main.bicep; the host account (re-creatable state) is LRS.",
    "CKV_AZURE_134": "Custom Vision public endpoint: the customvision.ai portal and the CreateProject call from a workstation need it.",
    "CKV_AZURE_236": "Custom Vision local auth is the customVisionDisableLocalAuth parameter; default false because the seed's curl uses Training-Key.",
    "CKV_AZURE_225": "Zone-redundant plan needs >= 3 instances and a zone-enabled region; queue retries cover an instance loss.",
    "CKV_AZURE_222": "Function app public access: `func azure functionapp publish` uses the public SCM endpoint; there are no HTTP triggers.",
    "CKV_AZURE_17": "Client certificates: no HTTP triggers, so no caller to authenticate.",
    "CKV_AZURE_212": "Minimum instances: queue-triggered and scale-from-zero by design; failed invocations are retried from the queue.",
    "CKV_AZURE_78": "FTP state: Flex Consumption rejects siteConfig.ftpsState (docs' 'Flex Consumption plan deprecations', FTPS not supported); FTP basic auth is off through basicPublishingCredentialsPolicies 'ftp'.",
    "CKV_AZURE_213": "Health check: no HTTP endpoint to probe.",
    "CKV_AZURE_109": "Key Vault firewall: the Function App (Flex, no VNet) resolves Key Vault references over the public endpoint; RBAC-only access and a secrets-read role protect it.",
    "CKV_AZURE_189": "Key Vault public network access stays enabled for the same reason as CKV_AZURE_109.",
    "CKV_AZURE_193": "Event Grid topic public network access: the Function App (Flex, no VNet) publishes over the public endpoint; local auth is off, so only an Entra token with EventGrid Data Sender on the topic gets in.",
    "CKV_AZURE_41": "Key Vault secret expiry: the webhook secret is rotated by redeploying (old value as webhookSecretPrevious); an expiry would fail the app's Key Vault reference and stop the signing.",
}

# Failed (not suppressed) checks accepted without an inline comment: none.
ACCEPTED_FAILURES: dict[str, str] = {}
