// The Custom Vision training resource whose system-assigned identity writes notifications
// and model backups into the data storage account. main.bicep deploys this module only
// when no existingCustomVisionName is given.

param name string
param location string = resourceGroup().location
param tags object = {}

@allowed(['F0', 'S0'])
param skuName string = 'S0'

@description('Subdomain of the endpoint https://<customSubDomainName>.cognitiveservices.azure.com/')
param customSubDomainName string = name

@description('true: only Entra ID tokens are accepted (no Training-Key).')
param disableLocalAuth bool = false

resource account 'Microsoft.CognitiveServices/accounts@2023-05-01' = {
  name: name
  // checkov:skip=CKV_AZURE_134: the customvision.ai portal and the CreateProject call from a workstation need the public endpoint; no private network in this template
  // checkov:skip=CKV_AZURE_236: parameterised (customVisionDisableLocalAuth); default false because the storage-integration page authenticates with Training-Key
  location: location
  tags: tags
  kind: 'CustomVision.Training'
  sku: {
    name: skuName
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: customSubDomainName
    disableLocalAuth: disableLocalAuth
    publicNetworkAccess: 'Enabled'
  }
}

output name string = account.name
output id string = account.id
output endpoint string = account.properties.endpoint
output principalId string = account.identity.principalId
