// Optional: the Event Grid custom topic PublishEvents sends every event to (issue 16).
// CloudEvents 1.0 in, Entra ID only (no aeg-sas-key, no SAS token): the Function App's
// user-assigned identity publishes with a token for https://eventgrid.azure.net and the
// EventGrid Data Sender role on this topic alone (rbac.bicep). docs/events-infra.md has the
// sources (API version 2025-02-15, TopicProperties in Azure/azure-rest-api-specs).

param name string
param location string = resourceGroup().location
param tags object = {}

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: name
  // checkov:skip=CKV_AZURE_193: the Function App (Flex, no VNet) publishes over the public endpoint; local auth is off, so only an Entra token with EventGrid Data Sender on this topic gets in
  location: location
  tags: tags
  // For event subscriptions that deliver with it (the example one). Without a role assignment
  // (rbac.bicep grants two, only with the example subscription) the identity can do nothing.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    minimumTlsVersionAllowed: '1.2'
  }
}

output name string = topic.name
output id string = topic.id
// https://<name>.<region>-1.eventgrid.azure.net/api/events: CV_EVENTGRID__topicEndpointUri.
output endpoint string = topic.properties.endpoint
output principalId string = topic.identity.principalId
