//! The core: event model, decoding, store, filter, aggregates and registry model. No egui, no
//! tokio, no sockets — unit-testable and benchmarkable alone.

pub mod agents;
pub mod aggregates;
pub mod decode;
pub mod demo;
pub mod event;
pub mod export;
pub mod filter;
pub mod flow;
pub mod glob;
pub mod intern;
pub mod layout;
pub mod registry;
pub mod store;
pub mod time;
