//! Helpers shared by the benches. Each bench declares `mod support;`.

pub mod side_by_side;
