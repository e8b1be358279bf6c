//! Fuzz target `state_sync`: see [`agora_fuzz::state_targets::state_sync`].

agora_fuzz::fuzz_main!(agora_fuzz::state_targets::state_sync);
