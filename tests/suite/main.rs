//! The integration tests, one binary (so `support` is compiled once and linked once):
//! - `e2e`: the functions, the model store, the training automation and `cvctl`, end to end on
//!   a real Azurite;
//! - `reliability`: the promises under faults, restarts, kills, scale-out and load
//!   (`make reliability` runs it alone);
//! - `training_behaviour`, `training_contract`: the Training API client against its behaviour
//!   fixture and against Prism with the official contract;
//! - `preflight_behaviour`, `preflight_contract`: `cvctl preflight` against the ARM fixture and
//!   the ARM contract;
//! - `package`: the packaged handler (ignored; `make package-check` runs it).
//!
//! A module alone: `cargo test --test suite reliability::`.

mod e2e;
mod package;
mod preflight_behaviour;
mod preflight_contract;
mod reliability;
mod support;
mod training_behaviour;
mod training_contract;
