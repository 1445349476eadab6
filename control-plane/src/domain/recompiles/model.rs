//! A catalog edit's recompile: the customers it affects are recompiled after the edit, in
//! chunks, from a durable queue (`workers::recompile` runs it).

use tollgate_shared::Mode;

/// A catalog edit's recompile, waiting or part-done.
#[derive(Debug, Clone)]
pub struct Recompile {
    pub id: String,
    pub mode: Mode,
    /// `None`: every customer of the mode.
    pub plans: Option<Vec<String>>,
    /// The last customer recompiled ("" before the first chunk).
    pub cursor: String,
}
