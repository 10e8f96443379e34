//! Apps in OCI registries. An app is pushed as Spin 4.1 writes it (one layer per
//! component, one per file above 128 bytes, the locked app last), so apps pushed by Spin
//! run on Tessera and the reverse; a pull keeps blobs in a content-addressed cache and
//! writes the app out as a directory with a `spin.toml` that loads like a local app.
#![deny(missing_docs)]

mod blobs;
pub mod locked;
mod oci;
mod signatures;
mod sources;

pub use blobs::digest_of;
pub use signatures::{ArtifactSignature, sign_artifact, verify_artifact};
pub use sources::SourceCache;

pub use oci::{
    Artifact, CNCF_WASM_LAYER, DATA_LAYER, LOCKED_APP, Pulled, Pushed, RegistryOptions, WASM_LAYER, artifact, auth_for,
    login, looks_like_reference, parse_reference, pull, push,
};
