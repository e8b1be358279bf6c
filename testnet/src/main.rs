//! `agora-testnet`: local testnets in one command.
fn main() {
    println!("agora-testnet {}", env!("CARGO_PKG_VERSION"));
}
