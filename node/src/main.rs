//! `agora`: the node and client command-line interface.
fn main() {
    println!("agora {}", env!("CARGO_PKG_VERSION"));
}
