//! Fuzz target `state_proof`: see [`agora_fuzz::state_targets::state_proof`].

agora_fuzz::fuzz_main!(agora_fuzz::state_targets::state_proof);
