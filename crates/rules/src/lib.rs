//! vigil-rules owns the rule set: the rule files' format, the compiler that turns them into a
//! validated [`RuleSet`] (reporting every problem with `file:line:col`), filter predicates, and
//! the event decoder that applies the sources' allow-listed schemas.

pub mod compile;
pub mod decode;
pub mod diag;
pub mod filter;
pub mod raw;
#[doc(hidden)]
pub mod testing;
pub mod types;
pub mod zone;

pub use compile::{RuleFiles, compile, load};
pub use diag::{Diagnostic, Diagnostics};
pub use types::*;
