//! Signatures on components and registry artifacts, with keys users already have, and
//! the `[trust]` policy `tessera up` enforces at load. Formats are existing ones so that
//! users can check signatures with tools they know: WebAssembly signatures (`wasmsign2`)
//! embedded in components, cosign's blob and image signatures.
#![deny(missing_docs)]

pub mod artifact;
pub mod component;
mod keys;
mod policy;

pub use component::{Signed, Trusted, Untrusted};
pub use keys::{PublicKey, SecretKey};
pub use policy::TrustPolicy;
