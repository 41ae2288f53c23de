"""Events out (issue 16), infra side: the optional Event Grid topic, its one role, the outbox
queues and the markers container, the settings, the webhook secret as a Key Vault reference,
and the example subscription. Sources are in docs/events-infra.md.

As in test_structure.py, each rule is a function returning problems, run on the real infra
(expect none) and on a broken snippet (expect the problem named).
"""
from __future__ import annotations

import re
from pathlib import Path

import bicep_ast as b

MAIN = b.INFRA / "main.bicep"
RBAC = b.INFRA / "app" / "rbac.bicep"
EVENTGRID = b.INFRA / "app" / "eventgrid.bicep"
SUBSCRIPTION = b.INFRA / "app" / "eventgrid-subscription.bicep"
KV_SECRET = b.INFRA / "app" / "keyvault-secret.bicep"
STORAGE = b.INFRA / "app" / "storage.bicep"
TOPIC = "Microsoft.EventGrid/topics"
EVENT_SUBSCRIPTION = "Microsoft.EventGrid/topics/eventSubscriptions"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
# The newest GA API of Microsoft.EventGrid (Azure/azure-rest-api-specs,
# specification/eventgrid/resource-manager/Microsoft.EventGrid/stable/2025-02-15/EventGrid.json):
# TopicProperties has inputSchema, disableLocalAuth, publicNetworkAccess and minimumTlsVersionAllowed.
API_VERSION = "2025-02-15"


def _resources(path: Path) -> list[b.Resource]:
    return b.resources(b.parse_file(path), path)


def _storage_public_network_access() -> str | None:
    acct = next(r for r in _resources(STORAGE) if r.type == "Microsoft.Storage/storageAccounts")
    return b.literal(b.prop(acct.body, "properties.publicNetworkAccess"))


# ---------------------------------------------------------------- the topic

def topic_problems(path: Path = EVENTGRID) -> list[str]:
    topics = [r for r in _resources(path) if r.type == TOPIC and not r.existing]
    if not topics:
        return [f"{path.name}: no {TOPIC} declared"]
    problems = []
    want = {
        "properties.inputSchema": "CloudEventSchemaV1_0",
        "properties.disableLocalAuth": True,
        "properties.minimumTlsVersionAllowed": "1.2",
        # The same decision as the storage accounts (storage.bicep): public endpoint, no VNet.
        "properties.publicNetworkAccess": _storage_public_network_access(),
    }
    for t in topics:
        for key, value in want.items():
            got = b.literal(b.prop(t.body, key))
            if got != value:
                problems.append(f"{t.where}: {key} is {b.text(b.prop(t.body, key)) or 'absent'}, want {value!r}")
        if t.api_version != API_VERSION:
            problems.append(f"{t.where}: API version {t.api_version}, want {API_VERSION}")
        if b.prop(t.body, "properties.inputSchemaMapping") is not None:
            problems.append(f"{t.where}: inputSchemaMapping is for custom schemas, not CloudEvents")
    return problems


def test_topic_takes_cloudevents_with_entra_only_and_tls_1_2():
    problems = topic_problems()
    assert not problems, "\n".join(problems)


def test_topic_rule_catches_a_key_based_event_grid_schema_topic(tmp_path):
    f = tmp_path / "eventgrid.bicep"
    f.write_text("resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {\n  name: 't'\n"
                 "  properties: {\n    inputSchema: 'EventGridSchema'\n    disableLocalAuth: false\n  }\n}\n")
    text = "\n".join(topic_problems(f))
    for expected in ("inputSchema", "disableLocalAuth", "minimumTlsVersionAllowed", "publicNetworkAccess", "API version"):
        assert expected in text, f"{expected!r} not reported in:\n{text}"


def test_the_topic_is_optional_and_off_by_default():
    tree = b.parse_file(MAIN)
    params = b.declarations(tree, "parameter_declaration")
    assert b.text(params["eventGridTopic"]).endswith("param eventGridTopic bool = false")
    assert b.text(params["eventGridExampleSubscription"]).endswith("param eventGridExampleSubscription bool = false")
    decl = b.declarations(tree, "module_declaration")["eventGrid"]
    assert "= if (eventGridTopic)" in b.text(decl).splitlines()[0], b.text(decl).splitlines()[0]


# ---------------------------------------------------------------- EventGrid Data Sender, on the topic only

def sender_role_problems(path: Path = RBAC) -> list[str]:
    tree = b.parse_file(path)
    res = b.resources(tree, path)
    by_symbol = {r.symbol: r for r in res}
    roles = {k: b.literal(v) for k, v in b.object_props(b.variable_values(tree).get("roles")).items()}
    problems = []
    found = False
    for ra in res:
        if ra.type != ROLE_ASSIGNMENT or ra.existing:
            continue
        role_def = b.text(b.prop(ra.body, "properties.roleDefinitionId"))
        m = re.search(r"roles\.(\w+)", role_def)
        if not m or roles.get(m.group(1)) != "d5a91429-5739-47e2-a06b-3470a27159e7":
            continue
        found = True
        scope = b.prop(ra.body, "scope")
        target = by_symbol.get(b.identifiers_in(scope)[0]) if scope is not None else None
        if target is None or target.type != TOPIC:
            problems.append(f"{ra.where}: EventGrid Data Sender scoped to {b.text(scope) or 'the resource group'}, not the topic")
    if not found:
        problems.append(f"{path.name}: no EventGrid Data Sender assignment")
    return problems


def test_event_grid_data_sender_is_on_the_topic_only():
    problems = sender_role_problems()
    assert not problems, "\n".join(problems)
    # The function identity's only Event Grid role, and the topic is the one main.bicep deploys.
    params = b.module_params(b.parse_file(MAIN), "rbac")
    assert b.text(b.prop(params, "eventGridTopicName")) == "eventGridTopic ? eventGrid.outputs.name : ''"


def test_sender_rule_catches_a_resource_group_scope(tmp_path):
    f = tmp_path / "rbac.bicep"
    f.write_text(
        "var roles = {\n  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'\n}\n"
        "resource rgWide 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n"
        "  name: guid(resourceGroup().id, p, roles.eventGridDataSender)\n"
        "  properties: {\n"
        "    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)\n"
        "    principalId: p\n    principalType: 'ServicePrincipal'\n  }\n}\n")
    text = "\n".join(sender_role_problems(f))
    assert "rgWide" in text and "not the topic" in text, text


# ---------------------------------------------------------------- queues, container, settings

def test_outbox_failed_poison_queues_and_markers_container_exist():
    tree = b.parse_file(MAIN)
    values = b.variable_values(tree)
    queues = b.text(values["queueNames"])
    for name in ("eventsQueueName", "'${eventsQueueName}-poison'", "eventsFailedQueueName"):
        assert name in queues, name
    assert b.literal(values["eventsQueueName"]) == "customvision-events"
    assert b.literal(values["eventsFailedQueueName"]) == "customvision-events-failed"
    assert b.literal(values["eventsDeliveredContainerName"]) == "customvision-events-delivered"
    data = b.module_params(tree, "dataStorage")
    containers = b.text(b.prop(data, "containerNames"))
    assert "eventsDeliveredContainerName" in containers
    # The example subscription's queue and dead-letter container only come with it.
    assert "deployExampleSubscription ? [eventsDeadLetterContainerName] : []" in containers
    assert "deployExampleSubscription ? [eventsExampleQueueName] : []" in b.text(b.prop(data, "queueNames"))


def test_the_outbox_roles_follow_the_queue_split():
    """Outbox: triggered and written (Contributor, as the other triggered queues); its -poison
    and the failed queue: Put Message only; the markers: Blob Data Contributor on their container."""
    tree = b.parse_file(MAIN)
    params = b.module_params(tree, "rbac")
    assert "eventsQueueName" in b.text(b.prop(params, "triggerQueueNames"))
    send = b.text(b.prop(params, "sendOnlyQueueNames"))
    assert "'${eventsQueueName}-poison'" in send and "eventsFailedQueueName" in send
    assert b.text(b.prop(params, "eventsDeliveredContainerName")) == "eventsDeliveredContainerName"
    res = {r.symbol: r for r in _resources(RBAC)}
    marker = res["fnEventsDeliveredBlob"]
    assert b.text(b.prop(marker.body, "scope")) == "eventsDeliveredContainer"
    assert b.text(b.prop(marker.body, "properties.roleDefinitionId")).endswith("roles.storageBlobDataContributor)")
    assert marker.condition is None


def _settings_object(tree, var: str) -> dict[str, b.Node]:
    node = b.variable_values(tree)[var]
    objs = [c for c in node.children if c.type == "object"] if node.type != "object" else [node]
    return b.object_props(objs[0]) if objs else {}


def test_event_grid_settings_are_an_identity_connection_like_cv_storage():
    tree = b.parse_file(MAIN)
    eg = _settings_object(tree, "eventGridSettings")
    assert set(eg) == {"CV_EVENTGRID__topicEndpointUri", "CV_EVENTGRID__credential", "CV_EVENTGRID__clientId"}, set(eg)
    assert b.text(eg["CV_EVENTGRID__topicEndpointUri"]) == "eventGrid.outputs.endpoint"
    assert b.literal(eg["CV_EVENTGRID__credential"]) == "managedidentity"
    # The same identity, spelled the same way, as the CV_STORAGE connection.
    node = b.prop(b.module_params(tree, "function"), "appSettings")
    literal = [n for n in node.children[-1].children if n.type == "object"][-1]
    storage = b.object_props(literal)
    assert b.text(eg["CV_EVENTGRID__clientId"]) == b.text(storage["CV_STORAGE__clientId"]) == "identity.outputs.clientId"
    assert b.text(b.variable_values(tree)["eventGridSettings"]).startswith("eventGridTopic ? {")
    # Every settings object reaches the app.
    assert b.text(node).startswith("union(trainingKeySettings, eventGridSettings, webhookSettings, {")
    # The retry schedule stays the handler's default.
    for f in b.bicep_files():
        assert "CV_EVENTS_RETRY_SCHEDULE:" not in f.read_text(), f.name


# ---------------------------------------------------------------- the webhook secret

SECURE_PARAMS = ("webhookSecret", "webhookSecretPrevious")


def _uses(node: b.Node, name: str) -> list[b.Node]:
    out = []

    def visit(n: b.Node) -> None:
        if n.type == "identifier" and b.text(n) == name:
            out.append(n)
        for c in n.children:
            visit(c)

    visit(node)
    return out


def webhook_secret_problems(main: Path = MAIN) -> list[str]:
    text = main.read_text()
    tree = b.parse_file(main)
    problems = []
    for name in SECURE_PARAMS:
        if not re.search(rf"@secure\(\)\n(@description\(.*\)\n)?param {name} string = ''", text):
            problems.append(f"param {name} is not @secure() with an empty default")
        decl = b.declarations(tree, "parameter_declaration").get(name)
        for use in _uses(tree.root_node, name):
            if decl is not None and use.start_byte >= decl.start_byte and use.end_byte <= decl.end_byte:
                continue
            # Allowed: a test for presence, empty(x), or the value handed to the Key Vault module.
            parent = use.parent
            in_empty = parent is not None and parent.parent is not None and b.text(parent.parent).startswith("empty(")
            as_module_value = parent is not None and parent.type == "object_property" and b.text(parent.children[0]) == "value"
            if not (in_empty or as_module_value):
                problems.append(f"{main.name}:{use.start_point[0] + 1}: {name} used as {b.text(parent)[:60]!r}")
    for setting, var in (("CV_WEBHOOK_SECRET", "webhookSecretSettings"), ("CV_WEBHOOK_SECRET_PREVIOUS", "webhookSecretPreviousSettings")):
        values = b.variable_values(tree)
        obj = _settings_object(tree, var) if var in values else {}
        value = b.text(obj.get(setting))
        if not re.fullmatch(r"'@Microsoft\.KeyVault\(SecretUri=\$\{\w+\.outputs\.uri\}\)'", value):
            problems.append(f"{setting} is {value or 'absent'!r}, not a Key Vault reference to a secret's URI")
    return problems


def test_webhook_secrets_are_only_key_vault_references():
    problems = webhook_secret_problems()
    assert not problems, "\n".join(problems)
    # The module keeps the value to itself: secure parameter in, name and URI out.
    text = KV_SECRET.read_text()
    assert re.search(r"@secure\(\)\nparam value string", text)
    outputs = b.declarations(b.parse_file(KV_SECRET), "output_declaration")
    assert set(outputs) == {"name", "uri"}, set(outputs)
    assert all("value" not in b.text(o.children[-1]) for o in outputs.values())
    assert b.text(outputs["uri"].children[-1]) == "secret.properties.secretUri"  # versionless
    # The vault exists whenever a webhook secret is given, and the app's identity reads exactly
    # those secrets (secret scope), never the vault.
    tree = b.parse_file(MAIN)
    kv = b.declarations(tree, "module_declaration")["keyVault"]
    assert "if (trainingKeyInKeyVault || useWebhookSecret)" in b.text(kv).splitlines()[0]
    res = {r.symbol: r for r in _resources(RBAC)}
    user = res["fnWebhookSecretsUser"]
    assert b.text(b.prop(user.body, "scope")) == "webhookSecrets[i]"
    assert res["webhookSecrets"].type == "Microsoft.KeyVault/vaults/secrets"


def test_webhook_rule_catches_a_plain_secret_setting(tmp_path):
    f = tmp_path / "main.bicep"
    f.write_text("param webhookSecret string = ''\n"
                 "@secure()\nparam webhookSecretPrevious string = ''\n"
                 "var webhookSecretSettings = {\n  CV_WEBHOOK_SECRET: webhookSecret\n}\n"
                 "output LEAK string = webhookSecretPrevious\n")
    text = "\n".join(webhook_secret_problems(f))
    for expected in ("param webhookSecret is not @secure()", "webhookSecret used as", "webhookSecretPrevious used as",
                     "CV_WEBHOOK_SECRET is", "CV_WEBHOOK_SECRET_PREVIOUS is"):
        assert expected in text, f"{expected!r} not reported in:\n{text}"


def test_webhook_url_and_types_are_set_only_when_given():
    tree = b.parse_file(MAIN)
    values = b.variable_values(tree)
    assert b.text(values["webhookUrlSettings"]).startswith("empty(webhookUrl) ? {} : {")
    assert b.text(values["webhookTypesSettings"]).startswith("empty(webhookTypes) ? {} : {")
    assert b.text(values["webhookSettings"]) == (
        "union(webhookUrlSettings, webhookTypesSettings, webhookSecretSettings, webhookSecretPreviousSettings)")
    # No output names a webhook parameter (a URL can carry a credential).
    for name, decl in b.declarations(tree, "output_declaration").items():
        assert "webhook" not in b.text(decl.children[-1]).lower(), name


# ---------------------------------------------------------------- the example subscription

def subscription_problems(path: Path = SUBSCRIPTION) -> list[str]:
    tree = b.parse_file(path)
    subs = [r for r in b.resources(tree, path) if r.type == EVENT_SUBSCRIPTION and not r.existing]
    if not subs:
        return [f"{path.name}: no {EVENT_SUBSCRIPTION}"]
    params = b.declarations(tree, "parameter_declaration")
    problems = []
    for s in subs:
        w = s.where
        if s.api_version != API_VERSION:
            problems.append(f"{w}: API version {s.api_version}, want {API_VERSION}")
        if b.literal(b.prop(s.body, "properties.eventDeliverySchema")) != "CloudEventSchemaV1_0":
            problems.append(f"{w}: eventDeliverySchema is not CloudEventSchemaV1_0")
        ends = b.prop(s.body, "properties.filter.subjectEndsWith")
        value = b.literal(ends)
        if value is None and ends is not None and b.text(ends) in params:
            m = re.search(r"= '([^']*)'$", b.text(params[b.text(ends)]))
            value = m.group(1) if m else None
        if value != "/latest":
            problems.append(f"{w}: filter.subjectEndsWith is {b.text(ends) or 'absent'}, want '/latest'")
        # Key-based delivery would need the account key, which the data account refuses.
        for plain in ("destination", "deadLetterDestination"):
            if b.prop(s.body, f"properties.{plain}") is not None:
                problems.append(f"{w}: properties.{plain} delivers with Event Grid's key access; use the topic's identity")
        want = {
            "deliveryWithResourceIdentity.identity.type": "SystemAssigned",
            "deliveryWithResourceIdentity.destination.endpointType": "StorageQueue",
            "deadLetterWithResourceIdentity.identity.type": "SystemAssigned",
            "deadLetterWithResourceIdentity.deadLetterDestination.endpointType": "StorageBlob",
        }
        for key, v in want.items():
            if b.literal(b.prop(s.body, f"properties.{key}")) != v:
                problems.append(f"{w}: properties.{key} is not {v!r}")
        for key in ("deliveryWithResourceIdentity.destination.properties.queueName",
                    "deadLetterWithResourceIdentity.deadLetterDestination.properties.blobContainerName"):
            if b.prop(s.body, f"properties.{key}") is None:
                problems.append(f"{w}: properties.{key} is absent")
    return problems


def test_example_subscription_filters_latest_and_dead_letters_with_the_topic_identity():
    problems = subscription_problems()
    assert not problems, "\n".join(problems)


def test_subscription_rule_catches_key_based_unfiltered_delivery(tmp_path):
    f = tmp_path / "sub.bicep"
    f.write_text("resource s 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = {\n  name: 's'\n"
                 "  properties: {\n    destination: {\n      endpointType: 'StorageQueue'\n    }\n"
                 "    filter: {\n      subjectBeginsWith: 'projects/'\n    }\n  }\n}\n")
    text = "\n".join(subscription_problems(f))
    for expected in ("API version", "eventDeliverySchema", "subjectEndsWith", "properties.destination",
                     "deliveryWithResourceIdentity.identity.type", "deadLetterWithResourceIdentity.deadLetterDestination.endpointType"):
        assert expected in text, f"{expected!r} not reported in:\n{text}"


def test_example_subscription_comes_after_its_roles_on_its_own_queue_and_container():
    tree = b.parse_file(MAIN)
    decl = b.declarations(tree, "module_declaration")["eventGridSubscription"]
    body = b.text(decl)
    assert "= if (deployExampleSubscription)" in body.splitlines()[0]
    assert re.search(r"dependsOn: \[\s*rbac\s*\]", body), "the subscription must wait for the topic identity's roles"
    assert b.text(b.variable_values(tree)["deployExampleSubscription"]) == "eventGridTopic && eventGridExampleSubscription"
    sub = b.module_params(tree, "eventGridSubscription")
    rbac = b.module_params(tree, "rbac")
    # The queue and container it delivers to are the ones the topic identity gets its roles on.
    assert b.text(b.prop(sub, "queueName")) == "eventsExampleQueueName"
    assert b.text(b.prop(sub, "deadLetterContainerName")) == "eventsDeadLetterContainerName"
    assert "eventsExampleQueueName" in b.text(b.prop(rbac, "eventsExampleQueueName"))
    assert "eventsDeadLetterContainerName" in b.text(b.prop(rbac, "eventsDeadLetterContainerName"))
    assert b.text(b.prop(rbac, "eventGridTopicPrincipalId")) == "deployExampleSubscription ? eventGrid.outputs.principalId : ''"
    res = {r.symbol: r for r in _resources(RBAC)}
    for symbol, scope, role in (("topicExampleQueueSender", "eventsExampleQueue", "storageQueueDataMessageSender"),
                                ("topicDeadLetterBlob", "eventsDeadLetterContainer", "storageBlobDataContributor")):
        ra = res[symbol]
        assert b.text(b.prop(ra.body, "scope")) == scope
        assert b.text(b.prop(ra.body, "properties.roleDefinitionId")).endswith(f"roles.{role})")
        assert b.text(b.prop(ra.body, "properties.principalId")) == "eventGridTopicPrincipalId"
    topic = next(r for r in _resources(EVENTGRID) if r.type == TOPIC)
    assert b.literal(b.prop(topic.body, "identity.type")) == "SystemAssigned"


# ---------------------------------------------------------------- azd: nothing new to answer

def test_every_new_parameter_has_a_default_so_azd_up_asks_nothing():
    """azd prompts for a parameter with no default that main.parameters.json does not give;
    main.parameters.json gives only azd's own three, so every other one needs a default."""
    params = b.declarations(b.parse_file(MAIN), "parameter_declaration")
    no_default = [n for n, d in params.items() if "=" not in b.text(d).split(f"param {n}", 1)[1] and n != "environmentName"]
    assert not no_default, no_default


def test_outputs_for_the_events_commands():
    outputs = b.declarations(b.parse_file(MAIN), "output_declaration")
    for name in ("CV_EVENTS_QUEUE", "CV_EVENTS_FAILED_QUEUE", "CV_EVENTS_DELIVERED_CONTAINER",
                 "EVENTGRID_TOPIC_ENDPOINT", "EVENTGRID_TOPIC_NAME"):
        assert name in outputs, name
    assert b.text(outputs["EVENTGRID_TOPIC_ENDPOINT"].children[-1]) == "eventGridTopic ? eventGrid.outputs.endpoint : ''"
    out = next(d for d in b.declarations(b.parse_file(EVENTGRID), "output_declaration").items() if d[0] == "endpoint")[1]
    assert b.text(out.children[-1]) == "topic.properties.endpoint"
