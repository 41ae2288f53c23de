// Optional: a Key Vault holding the Custom Vision training key, for a Function App that must
// use Training-Key (a resource without a custom subdomain, or local auth required) instead of
// its managed identity. The app setting CUSTOM_VISION_TRAINING_KEY is then a Key Vault
// reference; the key is put in by whoever deploys (infra/README.md), never by this template,
// so it appears in no deployment history or output.
// Also created for the webhook signing secrets (main.bicep webhookSecret, issue 16), which
// keyvault-secret.bicep puts in from @secure() parameters.

param name string
param location string = resourceGroup().location
param tags object = {}

@description('Secret that holds the training key.')
param secretName string = 'custom-vision-training-key'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  // checkov:skip=CKV_AZURE_109: the Function App (Flex, no VNet) resolves Key Vault references over the public endpoint; RBAC-only access and one secret-scoped reader protect it
  // checkov:skip=CKV_AZURE_189: public network access stays enabled for the same reason as CKV_AZURE_109
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

output name string = vault.name
output id string = vault.id
output secretName string = secretName
output uri string = vault.properties.vaultUri
