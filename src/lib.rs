//! customvision-events: an Azure Functions custom handler for Custom Vision notifications.
pub mod automation;
pub mod base64text;
pub mod devhost;
pub mod envelope;
pub mod export;
pub mod functions;
pub mod model_store;
pub mod naming;
pub mod notification;
pub mod redact;
pub mod seed;
pub mod serve;
pub mod server;
pub mod settings;
pub mod storage;
pub mod training;
