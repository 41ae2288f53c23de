// customvision-events: everything the Custom Vision "storage integration" page sets up by
// hand in the portal, plus the Function App that reacts to the notifications.
// Resource-group scope, so both `azd up` and `az deployment group create` deploy it.
// Modules: app/storage.bicep (x2), app/customvision.bicep, app/identity.bicep,
// app/monitoring.bicep, app/function.bicep, app/rbac.bicep (every role assignment); optional:
// app/keyvault.bicep, app/keyvault-secret.bicep, app/eventgrid.bicep,
// app/eventgrid-subscription.bicep (events out, docs/events-infra.md).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Environment name; seeds the resource token of every generated name.')
param environmentName string

@description('Location of every resource (Custom Vision: see customVisionLocation).')
param location string = resourceGroup().location

@description('Custom Vision Training is offered in fewer regions than Functions.')
param customVisionLocation string = location

@description('Object id of the deploying user or CI principal; empty grants no user roles.')
param principalId string = ''

// azd fills it from ${AZURE_PRINCIPAL_TYPE} (main.parameters.json): 'User' after `azd auth
// login`, 'ServicePrincipal' when azd is logged in with a client id, as in CI
// (Azure/azure-dev cli/azd/pkg/infra/provisioning/current_principal_id_provider.go,
// CurrentPrincipalType; substituted in cli/azd/pkg/infra/provisioning/bicep/bicep_provider.go).
@allowed(['User', 'ServicePrincipal', 'Group'])
@description('Type of principalId: User (azd auth login, az login), ServicePrincipal (CI), Group.')
param principalType string = 'User'

@allowed(['F0', 'S0'])
@description('F0 is free but limited to one per subscription and 2 projects.')
param customVisionSku string = 'S0'

// Turns Custom Vision keys off when the app uses its managed identity (the default). Not with
// trainingKeyInKeyVault=true: a Training-Key is local auth and would get 401 (infra/README.md).
@description('true: the created Custom Vision resource accepts only Entra ID tokens (no Training-Key). Do not combine with trainingKeyInKeyVault=true.')
param customVisionDisableLocalAuth bool = false

@description('Use this existing Custom Vision training resource (same resource group, system-assigned identity enabled) instead of creating one.')
param existingCustomVisionName string = ''

@description('Grant the Custom Vision identity its roles on the whole data account rather than on the backup container and notification queue.')
param widenCustomVisionRolesToAccount bool = false

@allowed(['copy', 'tag', 'both'])
@description('What ExportCompleted does with a backed-up model: copy it to the model store, tag it in place, or both.')
param exportAction string = 'both'

@description('Blob path of a model in the model store.')
param modelPathTemplate string = '{projectId}/{iterationId}/{platform}/{blobName}'

@description('Hosts a SAS modelUri may name (projects without a backup container). Sovereign clouds: *.blob.core.chinacloudapi.cn, *.blob.core.usgovcloudapi.net.')
param modelUriHosts string = '*.blob.core.windows.net'

@description('Keep {projectId}/latest/{platform}/model.{ext} on the newest iteration.')
param latestAlias bool = true

@description('Keep {projectId}/index.json, the per-project model registry.')
param modelIndex bool = true

@description('Training-Key from a Key Vault reference instead of the managed identity (which needs the resource\'s custom subdomain). The key is put in after deployment (infra/README.md).')
param trainingKeyInKeyVault bool = false

@description('Export platforms to request after each training, e.g. ONNX,TensorFlow:TensorFlowLite; empty: none.')
param autoExportPlatforms string = ''

@description('Publish each iteration above the bar under this name; empty: never publish.')
param publishName string = ''

@description('Resource id of the Custom Vision prediction resource to publish to.')
param predictionResourceId string = ''

@description('The bar to publish at, fractions in [0, 1].')
param publishMinPrecision string = '0'
param publishMinRecall string = '0'

@description('Probability threshold of the training report.')
param reportThreshold string = '0.5'

@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS'])
@description('Replication of the data account; GRS by default because a lost model is the worst outcome.')
param dataStorageSku string = 'Standard_GRS'

@minValue(1)
@maxValue(365)
param dataRetentionDays int = 30

// ---- Events out (issue 16; docs/events-infra.md). Every sink is off by default. ----

@description('Deploy an Event Grid custom topic (CloudEvents 1.0, Entra ID only) and have PublishEvents send every event to it.')
param eventGridTopic bool = false

@description('With eventGridTopic: also an example subscription that puts events whose subject ends with /latest on the queue customvision-events-latest, dead-lettering into the container customvision-events-deadletter.')
param eventGridExampleSubscription bool = false

@description('CV_WEBHOOK_URL: a Standard Webhooks endpoint (https) to send every event to; empty: no webhook.')
param webhookUrl string = ''

@secure()
@description('CV_WEBHOOK_SECRET (whsec_...): kept in a Key Vault, the app setting is a reference to it. Needed with webhookUrl.')
param webhookSecret string = ''

@secure()
@description('CV_WEBHOOK_SECRET_PREVIOUS during a secret rotation; empty: none.')
param webhookSecretPrevious string = ''

@description('CV_WEBHOOK_TYPES: the event types the webhook gets, comma-separated; empty: all.')
param webhookTypes string = ''

// Optional name overrides (empty: generated from abbreviations.json + resourceToken).
param functionAppName string = ''
param dataStorageAccountName string = ''
param hostStorageAccountName string = ''
param customVisionName string = ''

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

// Fixed names the handler and Custom Vision agree on.
var backupContainerName = 'customvision-backups'
var modelStoreContainerName = 'models'
// Rejected messages too large for their queue record; written by the functions' blob output.
var rejectedContainerName = 'customvision-rejected'
// A record of each ConnectionTest the app handled; `cvctl verify` reads it.
var statusContainerName = 'customvision-status'
var notificationQueueName = 'customvision-notifications'
var trainingQueueName = 'customvision-training'
var exportQueueName = 'customvision-exports'
var rejectedQueueName = 'customvision-rejected'
// Events out: the outbox (PublishEvents triggers on it), its -poison queue, the failed queue
// and the de-duplication markers (handler settings CV_EVENTS_*).
var eventsQueueName = 'customvision-events'
var eventsFailedQueueName = 'customvision-events-failed'
var eventsDeliveredContainerName = 'customvision-events-delivered'
// The example subscription's destination queue and dead-letter container.
var eventsExampleQueueName = 'customvision-events-latest'
var eventsDeadLetterContainerName = 'customvision-events-deadletter'
var deployExampleSubscription = eventGridTopic && eventGridExampleSubscription
var queueNames = [
  notificationQueueName
  '${notificationQueueName}-poison'
  trainingQueueName
  '${trainingQueueName}-poison'
  exportQueueName
  '${exportQueueName}-poison'
  rejectedQueueName
  eventsQueueName
  '${eventsQueueName}-poison'
  eventsFailedQueueName
]

var appName = !empty(functionAppName) ? functionAppName : '${abbrs.webSitesFunctions}cv-${resourceToken}'
var dataAccountName = !empty(dataStorageAccountName) ? dataStorageAccountName : '${abbrs.storageStorageAccounts}cv${resourceToken}'
var hostAccountName = !empty(hostStorageAccountName) ? hostStorageAccountName : '${abbrs.storageStorageAccounts}fn${resourceToken}'
var cvName = !empty(customVisionName) ? customVisionName : '${abbrs.cognitiveServicesCustomVisionTraining}${resourceToken}'
var deploymentContainerName = 'app-package-${take(appName, 32)}-${take(resourceToken, 7)}'

module dataStorage 'app/storage.bicep' = {
  name: 'dataStorage'
  params: {
    name: dataAccountName
    location: location
    tags: tags
    skuName: dataStorageSku
    // The example subscription's queue and dead-letter container exist only with it.
    containerNames: concat([
      backupContainerName
      modelStoreContainerName
      rejectedContainerName
      statusContainerName
      eventsDeliveredContainerName
    ], deployExampleSubscription ? [eventsDeadLetterContainerName] : [])
    queueNames: concat(queueNames, deployExampleSubscription ? [eventsExampleQueueName] : [])
    enableDataProtection: true
    deleteRetentionDays: dataRetentionDays
  }
}

module hostStorage 'app/storage.bicep' = {
  name: 'hostStorage'
  params: {
    name: hostAccountName
    location: location
    tags: tags
    skuName: 'Standard_LRS'
    containerNames: [
      deploymentContainerName
    ]
    queueNames: []
    enableDataProtection: true
    deleteRetentionDays: 7
  }
}

module customVision 'app/customvision.bicep' = if (empty(existingCustomVisionName)) {
  name: 'customVision'
  params: {
    name: cvName
    location: customVisionLocation
    tags: tags
    skuName: customVisionSku
    customSubDomainName: cvName
    disableLocalAuth: customVisionDisableLocalAuth
  }
}

// An existing training resource in this resource group; its system-assigned identity
// must be on (az cognitiveservices account identity assign).
resource existingCustomVision 'Microsoft.CognitiveServices/accounts@2023-05-01' existing = if (!empty(existingCustomVisionName)) {
  name: existingCustomVisionName
}

var useExistingCustomVision = !empty(existingCustomVisionName)
var customVisionAccountName = useExistingCustomVision ? existingCustomVision.name : customVision.outputs.name
var customVisionEndpoint = useExistingCustomVision ? existingCustomVision.properties.endpoint : customVision.outputs.endpoint
var customVisionPrincipalId = useExistingCustomVision ? existingCustomVision.identity.principalId : customVision.outputs.principalId

// One vault for the training key and the webhook secrets, whichever is used.
var useWebhookSecret = !empty(webhookSecret)
module keyVault 'app/keyvault.bicep' = if (trainingKeyInKeyVault || useWebhookSecret) {
  name: 'keyVault'
  params: {
    name: '${abbrs.keyVaultVaults}cv-${take(resourceToken, 17)}'
    location: location
    tags: tags
  }
}

// A Key Vault reference, resolved by the platform with the app's identity; no key in settings.
var trainingKeySettings = trainingKeyInKeyVault ? {
  CUSTOM_VISION_TRAINING_KEY: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=${keyVault.outputs.secretName})'
} : {}

var useWebhookSecretPrevious = useWebhookSecret && !empty(webhookSecretPrevious)
module webhookKvSecret 'app/keyvault-secret.bicep' = if (useWebhookSecret) {
  name: 'webhookSecret'
  params: {
    keyVaultName: keyVault.outputs.name
    name: 'webhook-secret'
    value: webhookSecret
  }
}

module webhookKvSecretPrevious 'app/keyvault-secret.bicep' = if (useWebhookSecretPrevious) {
  name: 'webhookSecretPrevious'
  params: {
    keyVaultName: keyVault.outputs.name
    name: 'webhook-secret-previous'
    value: webhookSecretPrevious
  }
}

module eventGrid 'app/eventgrid.bicep' = if (eventGridTopic) {
  name: 'eventGrid'
  params: {
    name: '${abbrs.eventGridDomainsTopics}cv-${resourceToken}'
    location: location
    tags: tags
  }
}

// Events out: the sinks the app has, each only when configured. CV_EVENTS_RETRY_SCHEDULE is
// never set here: the handler's default schedule applies. The Event Grid connection is named
// like the identity-based Functions connections (CV_STORAGE__*): __credential + __clientId.
var eventGridSettings = eventGridTopic ? {
  CV_EVENTGRID__topicEndpointUri: eventGrid.outputs.endpoint
  CV_EVENTGRID__credential: 'managedidentity'
  CV_EVENTGRID__clientId: identity.outputs.clientId
} : {}
var webhookUrlSettings = empty(webhookUrl) ? {} : {
  CV_WEBHOOK_URL: webhookUrl
}
var webhookTypesSettings = empty(webhookTypes) ? {} : {
  CV_WEBHOOK_TYPES: webhookTypes
}
// Key Vault references (versionless SecretUri), resolved by the platform with the app's identity
// (keyVaultReferenceIdentity); the secret itself is in no setting, output or log.
var webhookSecretSettings = useWebhookSecret ? {
  CV_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${webhookKvSecret.outputs.uri})'
} : {}
var webhookSecretPreviousSettings = useWebhookSecretPrevious ? {
  CV_WEBHOOK_SECRET_PREVIOUS: '@Microsoft.KeyVault(SecretUri=${webhookKvSecretPrevious.outputs.uri})'
} : {}
var webhookSettings = union(webhookUrlSettings, webhookTypesSettings, webhookSecretSettings, webhookSecretPreviousSettings)

module identity 'app/identity.bicep' = {
  name: 'functionIdentity'
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}cv-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

// Roles first: the app module's dependsOn makes ARM create every role assignment before the
// app. That orders the writes, not their effect: a new assignment can take minutes to
// propagate (Azure/azure-dev#8026), so right after the first provision a first publish and
// the host's queue polls may get 403 until it has; a 403 on a poll stops the host ("An unhandled
// exception has occurred. Host is shutting down.", QueueListener -> TaskSeriesTimer), which the
// platform starts again. The deploy steps wait for the roles before publishing (azure.yaml
// postprovision hook, docs/deploy.md).
module rbac 'app/rbac.bicep' = {
  name: 'rbacAssignments'
  params: {
    dataStorageAccountName: dataStorage.outputs.name
    hostStorageAccountName: hostStorage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    customVisionName: customVisionAccountName
    backupContainerName: backupContainerName
    modelStoreContainerName: modelStoreContainerName
    rejectedContainerName: rejectedContainerName
    statusContainerName: statusContainerName
    notificationQueueName: notificationQueueName
    // Every queue of queueNames, split by what the functions do with it (rbac.bicep says why).
    triggerQueueNames: [
      notificationQueueName
      trainingQueueName
      exportQueueName
      eventsQueueName
    ]
    sendOnlyQueueNames: [
      '${notificationQueueName}-poison'
      '${trainingQueueName}-poison'
      '${exportQueueName}-poison'
      rejectedQueueName
      '${eventsQueueName}-poison'
      eventsFailedQueueName
    ]
    customVisionPrincipalId: customVisionPrincipalId
    functionPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    widenCustomVisionRolesToAccount: widenCustomVisionRolesToAccount
    keyVaultName: trainingKeyInKeyVault ? keyVault.outputs.name : ''
    eventsQueueName: eventsQueueName
    eventsFailedQueueName: eventsFailedQueueName
    eventsDeliveredContainerName: eventsDeliveredContainerName
    eventGridTopicName: eventGridTopic ? eventGrid.outputs.name : ''
    eventGridTopicPrincipalId: deployExampleSubscription ? eventGrid.outputs.principalId : ''
    eventsExampleQueueName: deployExampleSubscription ? eventsExampleQueueName : ''
    eventsDeadLetterContainerName: deployExampleSubscription ? eventsDeadLetterContainerName : ''
    webhookKeyVaultName: useWebhookSecret ? keyVault.outputs.name : ''
    webhookSecretNames: concat(useWebhookSecret ? [webhookKvSecret.outputs.name] : [], useWebhookSecretPrevious ? [webhookKvSecretPrevious.outputs.name] : [])
  }
}

// After the topic identity's two roles: the subscription delivers with that identity.
module eventGridSubscription 'app/eventgrid-subscription.bicep' = if (deployExampleSubscription) {
  name: 'eventGridSubscription'
  dependsOn: [
    rbac
  ]
  params: {
    topicName: eventGrid.outputs.name
    dataStorageAccountName: dataStorage.outputs.name
    queueName: eventsExampleQueueName
    deadLetterContainerName: eventsDeadLetterContainerName
  }
}

module function 'app/function.bicep' = {
  name: 'functionApp'
  dependsOn: [
    rbac
  ]
  params: {
    name: appName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    hostStorageQueueEndpoint: hostStorage.outputs.queueEndpoint
    hostStorageTableEndpoint: hostStorage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    appSettings: union(trainingKeySettings, eventGridSettings, webhookSettings, {
      CV_NOTIFICATION_QUEUE: notificationQueueName
      CV_TRAINING_QUEUE: trainingQueueName
      CV_EXPORT_QUEUE: exportQueueName
      CV_REJECTED_QUEUE: rejectedQueueName
      CV_REJECTED_CONTAINER: rejectedContainerName
      CV_STATUS_CONTAINER: statusContainerName
      CV_BACKUP_CONTAINER: backupContainerName
      MODEL_STORE_CONTAINER: modelStoreContainerName
      EXPORT_ACTION: exportAction
      MODEL_PATH_TEMPLATE: modelPathTemplate
      CV_MODEL_URI_HOSTS: modelUriHosts
      LATEST_ALIAS: string(latestAlias)
      MODEL_INDEX: string(modelIndex)
      CUSTOM_VISION_ENDPOINT: customVisionEndpoint
      AUTO_EXPORT_PLATFORMS: autoExportPlatforms
      PUBLISH_NAME: publishName
      PREDICTION_RESOURCE_ID: predictionResourceId
      PUBLISH_MIN_PRECISION: publishMinPrecision
      PUBLISH_MIN_RECALL: publishMinRecall
      REPORT_THRESHOLD: reportThreshold
      CV_STORAGE__credential: 'managedidentity'
      CV_STORAGE__clientId: identity.outputs.clientId
      CV_STORAGE__blobServiceUri: dataStorage.outputs.blobEndpoint
      CV_STORAGE__queueServiceUri: dataStorage.outputs.queueEndpoint
      CV_EVENTS_QUEUE: eventsQueueName
      CV_EVENTS_FAILED_QUEUE: eventsFailedQueueName
      CV_EVENTS_DELIVERED_CONTAINER: eventsDeliveredContainerName
    })
  }
}

// Outputs (azd stores them in .azure/<env>/.env).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output SERVICE_HANDLER_NAME string = function.outputs.name
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_NAME string = dataStorage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = dataStorage.outputs.blobEndpoint
output AZURE_STORAGE_QUEUE_ENDPOINT string = dataStorage.outputs.queueEndpoint
output AZURE_HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output CUSTOM_VISION_NAME string = customVisionAccountName
output CUSTOM_VISION_ENDPOINT string = customVisionEndpoint
// The two values for the CreateProject/UpdateProject call of the storage-integration page.
output NOTIFICATION_QUEUE_URI string = '${dataStorage.outputs.queueEndpoint}${notificationQueueName}'
output EXPORT_MODEL_CONTAINER_URI string = '${dataStorage.outputs.blobEndpoint}${backupContainerName}'
output MODEL_STORE_CONTAINER_URI string = '${dataStorage.outputs.blobEndpoint}${modelStoreContainerName}'
output CV_NOTIFICATION_QUEUE string = notificationQueueName
output CV_TRAINING_QUEUE string = trainingQueueName
output CV_EXPORT_QUEUE string = exportQueueName
output CV_REJECTED_QUEUE string = rejectedQueueName
output CV_REJECTED_CONTAINER string = rejectedContainerName
output CV_BACKUP_CONTAINER string = backupContainerName
output MODEL_STORE_CONTAINER string = modelStoreContainerName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output KEY_VAULT_NAME string = trainingKeyInKeyVault ? keyVault.outputs.name : ''
output CV_STATUS_CONTAINER string = statusContainerName
// Events out: the queues and container `cvctl events ...` uses, and the topic endpoint for
// `cvctl events test-fire --direct` (empty when no topic). The webhook URL and secret are not
// outputs: a URL can carry a credential, and outputs are kept in the deployment history.
output CV_EVENTS_QUEUE string = eventsQueueName
output CV_EVENTS_FAILED_QUEUE string = eventsFailedQueueName
output CV_EVENTS_DELIVERED_CONTAINER string = eventsDeliveredContainerName
output EVENTGRID_TOPIC_NAME string = eventGridTopic ? eventGrid.outputs.name : ''
output EVENTGRID_TOPIC_ENDPOINT string = eventGridTopic ? eventGrid.outputs.endpoint : ''
output EVENTS_EXAMPLE_QUEUE string = deployExampleSubscription ? eventsExampleQueueName : ''
