// Optional example: an event subscription on the custom topic that puts every event whose
// subject ends with /latest (CustomVisionEvents.LatestMoved:
// projects/{p}/models/{platform}/latest) on a storage queue, and dead-letters what it cannot
// deliver into a blob container. Both with the topic's system-assigned identity
// (deliveryWithResourceIdentity / deadLetterWithResourceIdentity): the data account accepts no
// shared key, so Event Grid's own key-based delivery would be refused. The identity's roles
// (Storage Queue Data Message Sender on the queue, Storage Blob Data Contributor on the
// container: the roles MicrosoftDocs/azure-docs articles/event-grid/add-identity-roles.md
// names) are in rbac.bicep; main.bicep creates this module after them.

param topicName string
param dataStorageAccountName string
param queueName string
param deadLetterContainerName string

@description('Subject suffix to deliver.')
param subjectEndsWith string = '/latest'

resource topic 'Microsoft.EventGrid/topics@2025-02-15' existing = {
  name: topicName
}

resource dataAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageAccountName
}

resource latestToQueue 'Microsoft.EventGrid/topics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'latest-moved-to-queue'
  properties: {
    // The topic takes CloudEvents 1.0 in; deliver them as they came.
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    filter: {
      subjectEndsWith: subjectEndsWith
      isSubjectCaseSensitive: true
    }
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: dataAccount.id
          queueName: queueName
        }
      }
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: dataAccount.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
    // Event Grid's defaults, written out: 30 attempts within 24 hours, then dead-letter.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output name string = latestToQueue.name
