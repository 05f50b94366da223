//! Where user space looks up what a copy-up's kernel ids name: overlay mounts
//! (`mounts`), their lower layers (`layers`), cgroups and the containers they hold
//! (`cgroups`), and the runtimes' own stores for names and images (`runtimes`). It
//! answers lookups only; `events::enrich` decides when to ask.

pub mod cgroups;
pub mod layers;
pub mod mounts;
pub mod runtimes;
