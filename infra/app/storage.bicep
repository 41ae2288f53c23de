// One hardened storage account: Entra ID only (no shared keys), TLS 1.2, no public blobs.
// Used twice by main.bicep: the Custom Vision data account (backups, models, queues) and
// the Functions host account (AzureWebJobsStorage + Flex deployment package), so that the
// host's Storage Blob Data Owner never reaches the models.

@description('Storage account name (3-24 lowercase letters and digits).')
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Replication. GRS keeps a copy of the models in the paired region.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_RAGZRS'])
param skuName string = 'Standard_LRS'

@description('Blob containers created up front.')
param containerNames array = []

@description('Queues created up front.')
param queueNames array = []

@description('Blob versioning plus blob and container soft delete.')
param enableDataProtection bool = true

@minValue(1)
@maxValue(365)
param deleteRetentionDays int = 7

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  // checkov:skip=CKV_AZURE_35: Custom Vision writes from its own service and the Function App has no VNet; Entra-only auth (allowSharedKeyAccess false) plus container/queue-scoped roles guard access instead of the network
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35: the public endpoint must stay reachable for Custom Vision and Flex Consumption without VNet integration
  // checkov:skip=CKV_AZURE_206: replication is the skuName parameter: main.bicep sets Standard_GRS for the data account; the host account (re-creatable host state and deployment package) is Standard_LRS
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: enableDataProtection
    deleteRetentionPolicy: {
      enabled: enableDataProtection
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: enableDataProtection
      days: deleteRetentionDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in containerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
