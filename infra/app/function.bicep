// The Function App running the Rust custom handler on Flex Consumption (FC1, Linux), the only
// plan this template offers: every storage connection is identity-based through the
// user-assigned identity, and no connection string with a key exists anywhere. Elastic
// Premium was removed because it cannot be published without a storage key (infra/README.md,
// "Why Flex Consumption only").

param name string
param planName string
param location string = resourceGroup().location
param tags object = {}

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string
param identityClientId string

@description('Host storage (AzureWebJobsStorage and the Flex deployment package).')
param hostStorageBlobEndpoint string
param hostStorageQueueEndpoint string
param hostStorageTableEndpoint string
param deploymentContainerName string

param applicationInsightsConnectionString string

@description('Settings the handler reads (CV_*, MODEL_*, EXPORT_ACTION, ...).')
param appSettings object = {}

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  // checkov:skip=CKV_AZURE_225: zone redundancy needs at least 3 always-ready instances and a zone-enabled region; a queue-driven handler retries through the queue instead
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// AzureWebJobsStorage__* is the host's own storage; CV_STORAGE__* is the
// "connection": "CV_STORAGE" of every function.json binding. No FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION or WEBSITE_RUN_FROM_PACKAGE: on Flex, functionAppConfig.runtime
// and functionAppConfig.deployment replace them.
var identitySettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: hostStorageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: hostStorageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: hostStorageTableEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  // The docs' form for a user-assigned identity, in the docs' order (MicrosoftDocs/azure-docs,
  // articles/azure-monitor/app/azure-ad-authentication.md, "Environment variable configuration").
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identityClientId}'
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  // checkov:skip=CKV_AZURE_222: `func azure functionapp publish` deploys through the app's public SCM endpoint; the app has no HTTP triggers, only queue triggers
  // checkov:skip=CKV_AZURE_17: no HTTP triggers, so there is no caller to authenticate with a client certificate
  // checkov:skip=CKV_AZURE_212: queue-triggered and scale-from-zero by design; an interrupted invocation is retried from the queue
  // checkov:skip=CKV_AZURE_213: no HTTP endpoint to probe; the host's queue listener health is visible in Application Insights
  location: location
  // checkov:skip=CKV_AZURE_78: Flex Consumption rejects siteConfig.ftpsState (FTPS not supported, in the Flex deprecation list of the docs), so the property this check reads cannot be set; FTP basic auth is off (ftpBasicAuth)
  tags: union(tags, {
    'azd-service-name': 'handler'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    // Nothing from the "Flex Consumption plan deprecations" list of the docs (ftpsState, alwaysOn,
    // use32BitWorkerProcess, linuxFxVersion, ...): Flex rejects them ("... for Flex Consumption
    // sites is invalid", microsoft/azure-pipelines-tasks#21032); tests/infra/test_flex.py holds
    // the list. FTP basic auth is off through basicPublishingCredentialsPolicies below.
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      appSettings: [for setting in items(union(appSettings, identitySettings)): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

// No basic-auth (publishing user/password) access to the SCM and FTP endpoints. Neither deploy
// route uses it: Core Tools posts the Flex package to https://<scm>/api/publish with an ARM
// bearer token (basic auth only for Kubernetes apps; Azure/azure-functions-core-tools
// src/Cli/func/Actions/AzureActions/PublishFunctionAppAction.cs, GetRemoteZipClient and
// PerformFlexDeployment), and azd does the same through an ARM token pipeline
// (Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go, Publish).
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
