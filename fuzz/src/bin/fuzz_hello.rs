//! Fuzz target `hello`: see [`agora_fuzz::targets::hello`].

agora_fuzz::fuzz_main!(agora_fuzz::targets::hello);
