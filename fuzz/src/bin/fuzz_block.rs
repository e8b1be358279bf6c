//! Fuzz target `block`: see [`agora_fuzz::targets::block`].

agora_fuzz::fuzz_main!(agora_fuzz::targets::block);
