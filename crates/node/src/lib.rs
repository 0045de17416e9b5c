//! N-API surface of ferrogpt (placeholder until the bindings land).
use napi_derive::napi;

#[napi]
pub fn simd_name() -> String {
    ferrogpt_kernels::simd::simd_name().to_string()
}
