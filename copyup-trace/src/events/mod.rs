//! A record's way from the ring buffer to the outputs: `decode` turns its bytes into a
//! `CopyUp` or `OpDone`, `enrich` adds what only user space knows (mount, layer,
//! container) from `attribution`. What happens to the records next is `output`'s.

pub mod decode;
pub mod enrich;
