//! Fuzz target `signing_file`: see [`agora_fuzz::targets::signing_file`].

agora_fuzz::fuzz_main!(agora_fuzz::targets::signing_file);
