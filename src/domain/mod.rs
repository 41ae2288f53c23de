//! The values Custom Vision names, each built only by parsing: past `parse`, an id is a
//! hyphenated GUID and a platform one the Training API knows, so no blob name, tag or request
//! is built from raw text (as zero2prod's `src/domain/`). One type per file; each fails with a
//! [`DomainError`], whoever reads it: a notification, blob metadata, a Training API answer, a
//! command line.
//!
//! The bottom layer: it uses nothing else of the crate.

mod error;
mod export_flavor;
mod export_platform;
mod guid;
mod iteration_id;
mod project_id;

pub(crate) use error::truncate;
pub use error::DomainError;
pub use export_flavor::ExportFlavor;
pub use export_platform::ExportPlatform;
pub use iteration_id::IterationId;
pub use project_id::ProjectId;

/// The ids the unit tests, the integration tests and the documented examples use, defined
/// once. Public (hidden) so `tests/` can name them too; nothing else should.
#[doc(hidden)]
pub mod examples {
    pub const PROJECT: &str = "9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b";
    pub const ITERATION: &str = "1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0";
    /// The iteration of the events' examples (`events::model::examples`): docs/events.md and
    /// the README show their ids, which are hashes of it, so it keeps this value.
    pub const EVENTS_ITERATION: &str = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
}
