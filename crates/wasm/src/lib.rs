//! Placeholder: raw extern "C" exports for wasm32 arrive with the bindings work.
pub use ferrogpt_kernels as kernels;
