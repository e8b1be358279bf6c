//! Fuzz target `signing_state`: see [`agora_fuzz::targets::signing_state`].

agora_fuzz::fuzz_main!(agora_fuzz::targets::signing_state);
