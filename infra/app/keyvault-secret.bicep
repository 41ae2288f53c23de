// One Key Vault secret whose value comes from a @secure() parameter: the webhook signing secrets
// (Standard Webhooks `whsec_...`), so that the app settings CV_WEBHOOK_SECRET and
// CV_WEBHOOK_SECRET_PREVIOUS hold only a Key Vault reference. ARM keeps a secure parameter out
// of the deployment's recorded parameters and outputs; this module outputs the secret's name and
// versionless URI, never its value. The Function App's identity reads it through Key Vault
// Secrets User on this secret alone (rbac.bicep).
// (The Custom Vision training key is never put in by the template: infra/README.md.)

@description('The Key Vault (RBAC authorization) to keep the secret in.')
param keyVaultName string

param name string

@secure()
param value string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  // checkov:skip=CKV_AZURE_41: a webhook secret is rotated by redeploying with a new value (the old one passed as webhookSecretPrevious); an expiry would make the app's Key Vault reference fail and stop the signing
  properties: {
    value: value
    contentType: 'text/plain'
  }
}

output name string = secret.name
// Versionless: the app's reference follows the newest version after a redeploy.
output uri string = secret.properties.secretUri
