//! Fuzz target `certificate`: see [`agora_fuzz::targets::certificate`].

agora_fuzz::fuzz_main!(agora_fuzz::targets::certificate);
