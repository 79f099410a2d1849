//! The realtime core: what a live-chat server is whatever the product around it does.
//!
//! - [`protocol`]: the frames clients and server exchange, and their validation.
//! - [`hub`]: this node's live connections per tenant, and delivery to them.
//! - [`writer`]: durable, group-committed message writes; a message is delivered once stored.
//! - [`presence`]: agents' presence beyond their connections (grace, activity, auto-away).
//! - [`bus`]: the other nodes (NATS): what one hub delivers, the others deliver too.
//! - [`socket`]: the loop that carries frames between one connection and the hub.
//!
//! Nothing here knows a feature: no HTTP framework, no merchant settings, no webhooks.
//! Features reach in (the chat feature routes conversations and drives the sockets); the
//! core calls out only through the hooks it is given ([`writer::AfterStore`],
//! [`bus::Node`]). `tests/it/static_checks.rs` holds it to that.

pub mod bus;
pub mod hub;
pub mod presence;
pub mod protocol;
pub mod socket;
pub mod writer;
