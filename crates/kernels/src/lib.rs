//! ferrogpt kernels: plain functions over contiguous f32 slices, in the style of llm.c.
//!
//! Conventions (docs/ARCHITECTURE.md#conventions):
//! - Outputs first, then inputs, then dimensions. Dimension letters: B batch, T time,
//!   C channels, NH heads, HS head size (C / NH), V vocab, OC output channels,
//!   N = number of rows (usually B*T).
//! - Every buffer carries a shape comment. Buffers are row-major and contiguous.
//! - Kernels never allocate. Kernels that need scratch memory take `scratch: &mut [f32]`
//!   of at least `<kernel>_scratch_len(..)` floats; the caller owns and reuses it.
//! - Backward kernels ACCUMULATE (`+=`) into every gradient buffer they write (parameter
//!   and activation gradients alike); the caller zeroes them. Where an activation gradient
//!   often has a single writer, an `overwrite` argument (matmul_backward's dinp,
//!   attention, gelu and crossentropy backward) writes it instead: the same bits as
//!   zeroing it first.
//! - Kernels do not validate arguments beyond debug assertions: the bindings
//!   (crates/node, the TS wasm backend) check lengths, shapes and ids first.
//! - Multi-threading goes through the `Parallel` trait, so this crate has no threads of
//!   its own; the wasm binding (crates/wasm) runs it on a pool of Web Workers.
//! - registry.rs lists every kernel the bindings export (`for_each_kernel!`): crates/node
//!   and crates/wasm generate their exports from that one list.
//! - Feature `bench` (off by default): the benchmark probes `peak` and `stream`, for the
//!   benchmark build of the addon (npm run build:native:bench) and for the wasm build (its
//!   ABI includes the peak loop).

pub mod adamw;
pub mod attention;
pub mod compact;
pub mod crossentropy;
pub mod decode;
pub mod dropout;
pub mod encoder;
pub mod gelu;
pub mod layernorm;
pub mod matmul;
pub mod mixed;
pub mod norm;
pub mod parallel;
#[cfg(feature = "bench")]
pub mod peak;
mod registry;
pub mod residual;
pub mod rng;
pub mod rows;
pub mod simd;
#[cfg(feature = "bench")]
pub mod stream;

pub use parallel::{Parallel, Serial};
