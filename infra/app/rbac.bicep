// Every role assignment of the deployment, in one place. Least privilege: data roles are
// scoped to the container or queue that needs them, never to the resource group.
// Names are guid(scope, principalId, roleId), so re-deploying is idempotent.

@description('Custom Vision data storage account (containers and queues below).')
param dataStorageAccountName string
@description('Functions host storage account (AzureWebJobsStorage, deployment package).')
param hostStorageAccountName string
param applicationInsightsName string
param customVisionName string

param backupContainerName string
param modelStoreContainerName string
@description('Container the functions keep large rejected messages in (blob output binding).')
param rejectedContainerName string
@description('Container Notifications records handled ConnectionTests in (blob output binding).')
param statusContainerName string
param notificationQueueName string

@description('Queues a function triggers on (they may also be written by an output binding).')
param triggerQueueNames array

@description('Queues the Function App only writes to: output-only queues and the -poison queues.')
param sendOnlyQueueNames array

@description('Principal id of the Custom Vision system-assigned identity.')
param customVisionPrincipalId string

@description('Principal id of the Function App user-assigned identity.')
param functionPrincipalId string

@description('Object id of the deploying user (or CI principal); empty grants nothing.')
param userPrincipalId string = ''
@allowed(['User', 'ServicePrincipal', 'Group'])
param userPrincipalType string = 'User'

@description('The Key Vault holding the training key; empty when there is none.')
param keyVaultName string = ''

@description('Give the Custom Vision identity its two roles on the whole data account instead of the backup container and notification queue.')
param widenCustomVisionRolesToAccount bool = false

// ---- Events out (issue 16) ----

@description('Container PublishEvents keeps its per-sink de-duplication markers in.')
param eventsDeliveredContainerName string
@description('The outbox queue: triggers PublishEvents; the store functions and the handler write it.')
param eventsQueueName string
@description('Where PublishEvents moves an event that was refused or ran out of retries.')
param eventsFailedQueueName string

@description('The Event Grid custom topic; empty when none is deployed.')
param eventGridTopicName string = ''
@description('Principal id of the topic\'s system-assigned identity; empty: no example subscription.')
param eventGridTopicPrincipalId string = ''
@description('Queue the example subscription delivers to (with eventGridTopicPrincipalId).')
param eventsExampleQueueName string = ''
@description('Container the example subscription dead-letters into (with eventGridTopicPrincipalId).')
param eventsDeadLetterContainerName string = ''

@description('Key Vault holding the webhook secrets; empty when no webhook secret is given.')
param webhookKeyVaultName string = ''
@description('Names of the webhook secrets in that vault.')
param webhookSecretNames array = []

// Built-in role definition ids (identical in every tenant).
var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  cognitiveServicesCustomVisionTrainer: '0a5ae4ab-0d65-4eeb-be61-29fc9b54394b'
  cognitiveServicesCustomVisionContributor: 'c1ff6cc2-c111-46fe-8896-e0ef812ad9f3'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  // MicrosoftDocs/azure-docs articles/role-based-access-control/built-in-roles/integration.md
  // (commit ebcc6966a7046d3791c4edb32d29bb9332c2e7d6): dataActions
  // Microsoft.EventGrid/events/send/action only; actions are reads.
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
}

var useKeyVault = !empty(keyVaultName)

var grantUser = !empty(userPrincipalId)
var useTopic = !empty(eventGridTopicName)
var useExampleSubscription = useTopic && !empty(eventGridTopicPrincipalId)
var useWebhookSecrets = !empty(webhookKeyVaultName)

resource dataAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageAccountName
}

resource dataBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: dataAccount
  name: 'default'
}

resource backupContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: dataBlobService
  name: backupContainerName
}

resource modelStoreContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: dataBlobService
  name: modelStoreContainerName
}

resource rejectedContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: dataBlobService
  name: rejectedContainerName
}

resource statusContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: dataBlobService
  name: statusContainerName
}

resource eventsDeliveredContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: dataBlobService
  name: eventsDeliveredContainerName
}

resource eventsDeadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = if (useExampleSubscription) {
  parent: dataBlobService
  name: eventsDeadLetterContainerName
}

resource dataQueueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: dataAccount
  name: 'default'
}

resource notificationQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: dataQueueService
  name: notificationQueueName
}

resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: dataQueueService
  name: eventsQueueName
}

resource eventsFailedQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: dataQueueService
  name: eventsFailedQueueName
}

resource eventsExampleQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = if (useExampleSubscription) {
  parent: dataQueueService
  name: eventsExampleQueueName
}

resource triggerQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [for queueName in triggerQueueNames: {
  parent: dataQueueService
  name: queueName
}]

resource sendOnlyQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [for queueName in sendOnlyQueueNames: {
  parent: dataQueueService
  name: queueName
}]

resource hostAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource customVision 'Microsoft.CognitiveServices/accounts@2023-05-01' existing = {
  name: customVisionName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = if (useKeyVault) {
  name: keyVaultName
}

resource eventGridTopic 'Microsoft.EventGrid/topics@2025-02-15' existing = if (useTopic) {
  name: eventGridTopicName
}

resource webhookVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = if (useWebhookSecrets) {
  name: webhookKeyVaultName
}

resource webhookSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [for secretName in webhookSecretNames: if (useWebhookSecrets) {
  parent: webhookVault
  name: secretName
}]

// ---- Custom Vision system-assigned identity: writes backups and notifications ----

resource cvBackupBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!widenCustomVisionRolesToAccount) {
  name: guid(backupContainer.id, customVisionPrincipalId, roles.storageBlobDataContributor)
  scope: backupContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: customVisionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource cvNotificationQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!widenCustomVisionRolesToAccount) {
  name: guid(notificationQueue.id, customVisionPrincipalId, roles.storageQueueDataContributor)
  scope: notificationQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: customVisionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource cvAccountBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (widenCustomVisionRolesToAccount) {
  name: guid(dataAccount.id, customVisionPrincipalId, roles.storageBlobDataContributor)
  scope: dataAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: customVisionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource cvAccountQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (widenCustomVisionRolesToAccount) {
  name: guid(dataAccount.id, customVisionPrincipalId, roles.storageQueueDataContributor)
  scope: dataAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: customVisionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Function App user-assigned identity ----

// Queues, following the Functions docs' table (MicrosoftDocs/azure-docs,
// includes/functions-queue-permissions.md): trigger = Storage Queue Data Reader + Storage Queue
// Data Message Processor; output binding = Storage Queue Data Contributor / Message Sender.
//
// Triggered queues: Contributor. Reader + Message Processor cover Get Messages, Peek and Delete
// Message, but the trigger also calls Update Message (QueueProcessor.ReleaseMessageAsync puts a
// failed message back after host.json's visibilityTimeout; UpdateQueueMessageVisibilityCommand
// renews a long invocation's lease), and Update Message needs queues/messages/write, which
// among the built-in queue roles only Contributor has (Azure Storage REST, "Permissions for
// Queue service operations"). With Reader + Processor that call gets 403, ReleaseMessageAsync
// rethrows it, and the listener hands it to the host's exception handler: "An unhandled
// exception has occurred. Host is shutting down." on every failed invocation. Contributor also
// covers the output bindings that write these queues (Notifications writes training, exports).
resource fnTriggerQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (queueName, i) in triggerQueueNames: {
  name: guid(triggerQueues[i].id, functionPrincipalId, roles.storageQueueDataContributor)
  scope: triggerQueues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// Output-only and -poison queues: Message Sender (messages/add/action), which cannot read,
// delete or remove the queue. The output binding and the host's poison move both call
// AddMessageAndCreateIfNotExistsAsync, which creates the queue only after a 404 on Put Message;
// these queues are created by storage.bicep, so Put Message is the only call. If one is
// deleted by hand the create gets 403 and the host stops as above, the message staying on its
// source queue (not lost) until a redeploy recreates the queue.
resource fnSendQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (queueName, i) in sendOnlyQueueNames: {
  name: guid(sendOnlyQueues[i].id, functionPrincipalId, roles.storageQueueDataMessageSender)
  scope: sendOnlyQueues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// Owner, not Contributor: writing blob index tags needs Owner.
resource fnBackupOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(backupContainer.id, functionPrincipalId, roles.storageBlobDataOwner)
  scope: backupContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource fnModelStoreOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(modelStoreContainer.id, functionPrincipalId, roles.storageBlobDataOwner)
  scope: modelStoreContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The blob output binding writes large rejected messages. Contributor, not the Owner the docs'
// table suggests (MicrosoftDocs/azure-docs includes/functions-blob-permissions.md): the
// binding's calls are container Exists (containers/read) and CreateIfNotExists only when it is
// missing (containers/write), blob GetProperties (blobs/read) and OpenWrite with metadata
// (blobs/write), all in Storage Blob Data Contributor; no tags, no ACLs (Azure/azure-sdk-for-net,
// Microsoft.Azure.WebJobs.Extensions.Storage.Blobs: BlobsExtensionConfigProvider.GetBlobAsync,
// WriteBlobArgumentBinding.BindStreamAsync). infra/README.md has the details.
resource fnRejectedBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(rejectedContainer.id, functionPrincipalId, roles.storageBlobDataContributor)
  scope: rejectedContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Notifications' blob output records each handled ConnectionTest there; Contributor for the
// same reason as fnRejectedBlob (WriteBlobArgumentBinding needs no more).
resource fnStatusBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(statusContainer.id, functionPrincipalId, roles.storageBlobDataContributor)
  scope: statusContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// AzureWebJobsStorage (leases, host keys, diagnostics) and the Flex deployment package.
resource fnHostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostAccount.id, functionPrincipalId, roles.storageBlobDataOwner)
  scope: hostAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource fnHostQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostAccount.id, functionPrincipalId, roles.storageQueueDataContributor)
  scope: hostAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource fnHostTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostAccount.id, functionPrincipalId, roles.storageTableDataContributor)
  scope: hostAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry ingestion with Entra auth (App Insights local auth is disabled).
resource fnMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, functionPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Training API for the follow-up automation: read iterations and figures, export, publish.
// Trainer's data actions are CustomVision/* less project create, delete, import and export;
// PublishIteration is one of them, so publishing needs no further role. Trainer cannot create
// or delete projects, which the handler never needs.
resource fnCustomVisionTrainer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(customVision.id, functionPrincipalId, roles.cognitiveServicesCustomVisionTrainer)
  scope: customVision
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesCustomVisionTrainer)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The training key through a Key Vault reference: read secrets, nothing else. The vault holds
// that one secret, so vault scope is secret scope (the secret is created after deployment);
// with a webhook secret it holds those too, which the app reads anyway (fnWebhookSecretsUser).
resource fnKeyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useKeyVault) {
  name: guid(keyVault.id, functionPrincipalId, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Function App: events out (issue 16) ----
// The outbox is in triggerQueueNames (Contributor: PublishEvents triggers on it, the store
// functions' queue output writes it, and the handler re-enqueues with a visibility delay, Put
// Message with visibilitytimeout); its -poison queue and the failed queue are in
// sendOnlyQueueNames (Message Sender: the host's poison move, the handler's Put Message).

// Per-sink de-duplication markers: read (exists?) and write small blobs, no tags: Contributor.
resource fnEventsDeliveredBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsDeliveredContainer.id, functionPrincipalId, roles.storageBlobDataContributor)
  scope: eventsDeliveredContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Publish to the topic with an Entra token (the topic has local auth off). On the topic only,
// never the resource group: EventGrid Data Sender there could publish to every topic in it.
resource fnEventGridSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useTopic) {
  name: guid(eventGridTopic.id, functionPrincipalId, roles.eventGridDataSender)
  scope: eventGridTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The webhook secrets' Key Vault references: read those secrets, and only those (secret scope;
// each secret is created by keyvault-secret.bicep before this module).
resource fnWebhookSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (secretName, i) in webhookSecretNames: if (useWebhookSecrets) {
  name: guid(webhookSecrets[i].id, functionPrincipalId, roles.keyVaultSecretsUser)
  scope: webhookSecrets[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// ---- Event Grid topic system-assigned identity: the example subscription's delivery ----
// The roles MicrosoftDocs/azure-docs articles/event-grid/add-identity-roles.md names for a
// custom topic's identity: Storage Queue Data Message Sender on the destination queue, Storage
// Blob Data Contributor for the dead-letter blobs; each on its one queue or container.

resource topicExampleQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useExampleSubscription) {
  name: guid(eventsExampleQueue.id, eventGridTopicPrincipalId, roles.storageQueueDataMessageSender)
  scope: eventsExampleQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: eventGridTopicPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource topicDeadLetterBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useExampleSubscription) {
  name: guid(eventsDeadLetterContainer.id, eventGridTopicPrincipalId, roles.storageBlobDataContributor)
  scope: eventsDeadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: eventGridTopicPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Deploying user: run the CLI/demo and the CreateProject call with an Entra token ----

resource userBackupBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(backupContainer.id, userPrincipalId, roles.storageBlobDataContributor)
  scope: backupContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userModelStoreBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(modelStoreContainer.id, userPrincipalId, roles.storageBlobDataContributor)
  scope: modelStoreContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userNotificationQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(notificationQueue.id, userPrincipalId, roles.storageQueueDataContributor)
  scope: notificationQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// `cvctl verify` reads the records of handled ConnectionTests.
resource userStatusReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(statusContainer.id, userPrincipalId, roles.storageBlobDataReader)
  scope: statusContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// CreateProject/UpdateProject with an Entra token need a Custom Vision data role;
// Owner/Contributor on the resource grant no data actions.
resource userCustomVisionContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(customVision.id, userPrincipalId, roles.cognitiveServicesCustomVisionContributor)
  scope: customVision
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesCustomVisionContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// Puts the training key into the vault after deployment (az keyvault secret set).
resource userKeyVaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser && useKeyVault) {
  name: guid(keyVault.id, userPrincipalId, roles.keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// ---- Deploying user: the events commands ----

// `cvctl events test-fire` (through the outbox) and `cvctl events redeliver` put messages on
// the outbox: Put Message only.
resource userEventsQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(eventsQueue.id, userPrincipalId, roles.storageQueueDataMessageSender)
  scope: eventsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// `cvctl events failed` reads the failed queue; `redeliver` takes each event off it (Get
// Messages, Delete Message) after putting it back on the outbox.
resource userEventsFailedQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(eventsFailedQueue.id, userPrincipalId, roles.storageQueueDataContributor)
  scope: eventsFailedQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// `cvctl verify` checks that a ping left the outbox: its delivery markers.
resource userEventsDeliveredReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(eventsDeliveredContainer.id, userPrincipalId, roles.storageBlobDataReader)
  scope: eventsDeliveredContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// `cvctl events test-fire --direct` publishes to the topic with the caller's own token.
resource userEventGridSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser && useTopic) {
  name: guid(eventGridTopic.id, userPrincipalId, roles.eventGridDataSender)
  scope: eventGridTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

// Peek what the example subscription delivered (read only).
resource userEventsExampleQueueReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser && useExampleSubscription) {
  name: guid(eventsExampleQueue.id, userPrincipalId, roles.storageQueueDataReader)
  scope: eventsExampleQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataReader)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}
