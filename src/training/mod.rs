//! Custom Vision Training API v3.3 client: the few operations the functions need after a
//! notification (look at an iteration and its performance, export it, list its exports,
//! publish it), those that wire a project to storage (get, update, create a project), and the
//! list of a project's iterations that `cvctl backfill` walks.
//!
//! - [`client`]: [`TrainingClient`], its requests, authorisation and the retry loop;
//! - [`models`]: the spec's data, typed where we read it, lossless where we write it back;
//! - [`error`]: [`TrainingError`], transient (answer 500, the host retries) or not;
//! - [`retry`]: [`RetryPolicy`], back-off and `Retry-After`;
//!
//! Its settings, [`TrainingSettings`], are read with the rest in [`crate::settings::training`].
//!
//! Paths, parameters and shapes follow `shared/specs/customvision-training-v3.3.json`;
//! `tests/suite/training_contract.rs` checks every request against it with Stoplight Prism.

pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod models;
pub(crate) mod retry;

pub use crate::settings::training::{TrainingAuthSettings, TrainingSettings};
pub use client::{TrainingAuth, TrainingClient, COGNITIVE_SERVICES_SCOPE};
pub use error::{ConfigError, TrainingError, TransientReason};
pub use models::{
    Classifier, Export, ExportState, Iteration, IterationPerformance, NewProject, Project,
    ProjectSettings, TagPerformance,
};
pub use retry::RetryPolicy;
