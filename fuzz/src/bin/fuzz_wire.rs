//! Fuzz target `wire`: see [`agora_fuzz::targets::wire`].

agora_fuzz::fuzz_main!(agora_fuzz::targets::wire);
