//! Delta sync: ship an app tree to a node in a few SSH round trips.

pub mod delta;
pub mod manifest;
pub mod plan;
pub mod scan;
