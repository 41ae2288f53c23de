"""Built-in Azure role definition ids the infra may assign, defined once.

Ids are the same in every tenant (Azure built-in roles reference). The key is the
camelCase name rbac.bicep uses in its `roles` variable.
"""

ALLOWED_ROLES: dict[str, tuple[str, str]] = {
    # key in rbac.bicep: (role definition id, display name)
    "storageBlobDataContributor": ("ba92f5b4-2d11-453d-a403-e96b0029c9fe", "Storage Blob Data Contributor"),
    "storageBlobDataOwner": ("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "Storage Blob Data Owner"),
    "storageBlobDataReader": ("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1", "Storage Blob Data Reader"),
    "storageQueueDataContributor": ("974c5e8b-45b9-4653-ba55-5f855dd0fb88", "Storage Queue Data Contributor"),
    # Ids from MicrosoftDocs/azure-docs articles/role-based-access-control/built-in-roles/storage.md
    # (commit 9f00316210565693b99eaf70023cd7fe6bb75a71): Reader = queues/read + messages/read;
    # Message Processor = messages/read + messages/process/action; Message Sender =
    # messages/add/action. None has messages/write (Update Message): only Contributor does.
    "storageQueueDataReader": ("19e7f393-937e-4f77-808e-94535e297925", "Storage Queue Data Reader"),
    "storageQueueDataMessageProcessor": ("8a0f0c08-91a1-4084-bc3d-661d67233fed", "Storage Queue Data Message Processor"),
    "storageQueueDataMessageSender": ("c6a89b2d-59bc-44d0-9896-0f6e12d7b80a", "Storage Queue Data Message Sender"),
    "storageTableDataContributor": ("0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "Storage Table Data Contributor"),
    "monitoringMetricsPublisher": ("3913510d-42f4-4e42-8a64-420c390055eb", "Monitoring Metrics Publisher"),
    "cognitiveServicesCustomVisionTrainer": ("0a5ae4ab-0d65-4eeb-be61-29fc9b54394b", "Cognitive Services Custom Vision Trainer"),
    "cognitiveServicesCustomVisionContributor": ("c1ff6cc2-c111-46fe-8896-e0ef812ad9f3", "Cognitive Services Custom Vision Contributor"),
    "keyVaultSecretsUser": ("4633458b-17de-408a-b874-0445c86b69e6", "Key Vault Secrets User"),
    "keyVaultSecretsOfficer": ("b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "Key Vault Secrets Officer"),
    # MicrosoftDocs/azure-docs articles/role-based-access-control/built-in-roles/integration.md
    # (commit ebcc6966a7046d3791c4edb32d29bb9332c2e7d6), "EventGrid Data Sender": data action
    # Microsoft.EventGrid/events/send/action; its actions are reads (topics, domains, ...).
    "eventGridDataSender": ("d5a91429-5739-47e2-a06b-3470a27159e7", "EventGrid Data Sender"),
}

# Data roles that must be scoped to a container or queue (not an account) unless the
# account is the Functions host account or the assignment is the opt-in widening.
STORAGE_DATA_ROLES = {
    "storageBlobDataContributor",
    "storageBlobDataReader",
    "storageBlobDataOwner",
    "storageQueueDataContributor",
    "storageQueueDataReader",
    "storageQueueDataMessageProcessor",
    "storageQueueDataMessageSender",
    "storageTableDataContributor",
}


# Queue permissions of the built-in queue roles (actions and data actions, same source as the
# ids above), and what the Functions queue extension needs per use (Azure Storage REST,
# "Permissions for Queue service operations"; the calls are listed in infra/README.md).
QUEUE_ROLE_PERMISSIONS: dict[str, set[str]] = {
    "storageQueueDataReader": {"queues/read", "messages/read"},
    "storageQueueDataMessageProcessor": {"messages/read", "messages/process/action"},
    "storageQueueDataMessageSender": {"messages/add/action"},
    "storageQueueDataContributor": {"queues/read", "queues/write", "queues/delete", "messages/read",
                                    "messages/write", "messages/delete", "messages/process/action"},
}
QUEUE_NEEDS = {
    # Get Queue Metadata, Get Messages, Delete Message, Update Message (release, lease renewal)
    "trigger": {"queues/read", "messages/process/action", "messages/write"},
    # Put Message (output binding, the host's poison move; the queues exist, so no Create Queue)
    "send": {"messages/add/action"},
}


def grants(role_keys: set[str], permission: str) -> bool:
    """Put Message is allowed by add/action or write (REST permissions table)."""
    have = set().union(*(QUEUE_ROLE_PERMISSIONS[k] for k in role_keys)) if role_keys else set()
    if permission == "messages/add/action":
        return bool(have & {"messages/add/action", "messages/write"})
    return permission in have
