//! The two modes as array indices: every per-mode table (customers, defaults, counts) is a
//! `[T; 2]`. A leaf, so the store and the customer tables can both use it.

use tollgate_shared::Mode;

/// Index of a mode in the per-mode arrays.
pub fn slot(mode: Mode) -> usize {
    match mode {
        Mode::Test => 0,
        Mode::Live => 1,
    }
}

pub const MODES: [Mode; 2] = [Mode::Test, Mode::Live];
