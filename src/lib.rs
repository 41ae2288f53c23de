//! customvision-events: an Azure Functions custom handler for Custom Vision notifications, and
//! the library under its two binaries (`handler`, what the Functions host runs; `cvctl`, the
//! tool for people).
//!
//! The data path, top to bottom:
//! - `server` (private): the HTTP face the host talks to (chunked bodies, timeouts, JSON answers);
//! - [`envelope`]: the host's invocation request and response, and their decoding quirks;
//! - [`notification`]: the message contract, parsed into [`domain`] ids and its statuses;
//! - [`functions`]: one module per function folder, parse → decide → act, the dead-letter
//!   record, and a handled ConnectionTest's record (which `cvctl verify` finds);
//! - [`events`]: events out, a CloudEvent for every change to the model store, put on the
//!   outbox by the store functions and delivered (Event Grid, a signed webhook) by
//!   `PublishEvents`;
//! - [`export`] and [`model_store`]: a finished export, copied and tagged, the `latest` alias
//!   and the index; [`automation`] with [`training`]: a finished training's report, exports and
//!   publish through the Training API, and the project's dashboard (`cvctl demo` reads the
//!   reports back with `automation::load_report`, the index with `model_store::load_index`);
//! - [`storage`]: the storage clients, Shared Key and SAS, and the server-side copy both the
//!   export and the `latest` alias make (`storage::copy`); under it, [`SharedHttp`], the
//!   process's one HTTP client (also the Training API's and ARM's).
//!
//! Under everything: [`domain`], the values Custom Vision names (project and iteration ids,
//! export platforms and flavors), each built only by parsing, one per file.
//!
//! The store's reading side: [`pull`], one model fetched only when it changed (`cvctl pull`);
//! and its history: [`backfill`], the iterations trained before the app brought in through
//! [`export`] and [`automation`] (`cvctl backfill`).
//!
//! Beside it: [`settings`] (read once, a bad one named; the Training API's and the automation's
//! too, and `local.settings.json` for local runs), [`naming`] (blob names, paths, tags; every
//! stored name once, in [`naming::stored`]), [`redact`] (no secret leaves as text), [`error_chain`] (an error and its
//! causes, for a log line),
//! [`telemetry`] (the tracing set-up, its writer redacting each line), [`base64text`] (base64
//! as .NET reads it), [`seed`] (the seed document's examples), [`startup`] (the `handler`
//! binary's wiring), [`devhost`] (the local stand-in for the Functions host, used by `cvctl`
//! and the tests), and [`arm`] (the few Azure Resource Manager reads behind `cvctl preflight`).
//!
//! Layers point down only: `functions` → `export` → `model_store` → `storage` → `settings` →
//! `domain`; `functions` → `events` → `export`, `automation` (their outcomes), `storage`,
//! `settings` (`backfill`, beside `functions`, → `export`, `automation` and `events`, which
//! builds the events of both, `events::emit`; `pull` → `model_store`); `scripts/module-cycles.py` (in `make lint`) fails on any cycle
//! between top-level modules.
//!
//! Visibility, as mini-redis's `lib.rs` keeps it: a module's API is re-exported at its root
//! (`training::TrainingClient`, `model_store::ModelIndex`, `storage::quoted_etag`), and its
//! submodules are `pub(crate)` unless the binaries, benches, fuzz targets or tests name them
//! (`arm::{flex, permissions, providers, skus}`, `devhost::{azurite, custom_vision, probe, webhook}`, `export::{hint,
//! in_place}`, `naming::stored`, `settings::hosts`, `storage::sas`). `server` is private:
//! only `startup` reaches it; `automation` is public for its report (`report`, `html`) and
//! dashboard modules, which `cvctl demo` reads and the browser test renders. A reach into
//! another module's internals from outside the crate does not compile.

// Module docs link their crate-private submodules on purpose: they are the map for readers of
// the code (`cargo doc --document-private-items` renders them).
#![allow(rustdoc::private_intra_doc_links)]
pub mod arm;
pub mod automation;
pub mod backfill;
pub mod base64text;
pub mod devhost;
pub mod domain;
pub mod envelope;
pub mod error_chain;
pub mod events;
pub mod export;
pub mod functions;
mod http;
pub mod model_store;
pub mod naming;
pub mod notification;
pub mod pull;
pub mod redact;
pub mod seed;
mod server;
pub mod settings;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod training;

pub use http::{http_client, HttpClientError, SharedHttp};
