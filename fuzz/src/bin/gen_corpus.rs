//! Writes the seed corpus: `gen_corpus [DIR]` (default `fuzz/corpus`) makes
//! `DIR/<target>/<seed>` for every seed of [`agora_fuzz::corpus::seeds`],
//! replacing what was there.

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| std::path::PathBuf::from("fuzz/corpus"), Into::into);
    for (target, seeds) in agora_fuzz::corpus::seeds() {
        let d = dir.join(target);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let mut total = 0;
        for (name, bytes) in &seeds {
            total += bytes.len();
            std::fs::write(d.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        println!("{target}: {} seeds, {total} bytes", seeds.len());
    }
}
