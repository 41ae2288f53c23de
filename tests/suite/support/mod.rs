//! What the tests share, compiled once with them: the dev-host test app (`helpers`), the
//! counting storage proxy (`proxy`), the behaviour fixtures of the Training API
//! (`custom_vision`, the library's Custom Vision stand-in, which `cvctl demo` runs too) and of
//! ARM (`arm`), the events' sinks (`events`: a fake Event Grid topic and a Standard Webhooks
//! receiver; `identity`: App Service's managed-identity endpoint), the contract mock (`prism`), and the accept loop of every HTTP/1.1 test server
//! (`http1`).

pub mod arm;
pub use customvision_events::devhost::custom_vision;
pub mod events;
pub mod helpers;
pub mod http1;
pub mod identity;
pub mod prism;
pub mod proxy;
