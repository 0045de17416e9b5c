//! Token + position embedding: out[b,t,:] = wte[ids[b,t],:] + wpe[t,:].

/// out (B,T,C) = wte[ids] + wpe[t]. ids (B,T) must be in 0..V (checked by the caller);
/// wte (V,C); wpe (maxT,C) with maxT >= T.
pub fn encoder_forward(out: &mut [f32], ids: &[i32], wte: &[f32], wpe: &[f32], b: usize, t: usize, c: usize) {
    let _ = (out, ids, wte, wpe, b, t, c);
    unimplemented!("encoder_forward")
}

/// Scatters dout (B,T,C) into the tables: dwte[ids[b,t]] += dout[b,t]; dwpe[t] += dout[b,t].
/// Accumulates.
pub fn encoder_backward(dwte: &mut [f32], dwpe: &mut [f32], dout: &[f32], ids: &[i32], b: usize, t: usize, c: usize) {
    let _ = (dwte, dwpe, dout, ids, b, t, c);
    unimplemented!("encoder_backward")
}

/// Index of the first id outside 0..v, if any. Bindings call this before the encoder.
pub fn first_invalid_id(ids: &[i32], v: usize) -> Option<usize> {
    ids.iter().position(|&id| id < 0 || id as usize >= v)
}
