//! Fuzz target `light_block`: see [`agora_fuzz::light_target::light_block`].

agora_fuzz::fuzz_main!(agora_fuzz::light_target::light_block);
