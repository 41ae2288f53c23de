// The Function App's user-assigned managed identity. It exists, and its role assignments
// (rbac.bicep) are created, before the app; the roles may still take minutes to propagate
// (main.bicep, above the rbac module).

param name string
param location string = resourceGroup().location
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
