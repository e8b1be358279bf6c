//! Fuzz target `wal`: see [`agora_fuzz::targets::wal`].

agora_fuzz::fuzz_main!(agora_fuzz::targets::wal);
