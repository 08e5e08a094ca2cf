//! Gateway workers and the webhook receiver: one module per processor. Built in a later
//! issue; this crate holds its place in the workspace so the layout is fixed from day one.
