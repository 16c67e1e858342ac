//! Integration tests of the contract against the shared files in `schemas/`.

mod asyncapi;
mod fixtures;
mod round_trip;
mod support;
