//! Fuzz target `snapshot`: see [`agora_fuzz::targets::snapshot`].

agora_fuzz::fuzz_main!(agora_fuzz::targets::snapshot);
