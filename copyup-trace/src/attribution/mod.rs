//! Where user space looks up what a copy-up's kernel ids name: overlay mounts
//! (`mounts`), their lower layers (`layers`) and the image steps that made them
//! (`history`), cgroups and the containers they hold
//! (`cgroups`), and the runtimes' own stores for names and images (`runtimes`). It
//! answers lookups only; `events::enrich` decides when to ask.

pub mod cgroups;
pub mod history;
pub mod layers;
pub mod mounts;
pub mod runtimes;
