//! Fuzz target `tx`: see [`agora_fuzz::targets::tx`].

agora_fuzz::fuzz_main!(agora_fuzz::targets::tx);
