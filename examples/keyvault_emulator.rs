//! A local Azure Key Vault emulator, for trying the CLI and the library without Azure:
//! `cargo run --example keyvault_emulator -- [--port 8443] [--import NAME=KEY.pem]...`
//! (the same as `cargo run -p keyvault-emulator`; see `crates/keyvault-emulator`).

fn main() {
    keyvault_emulator::cli::main()
}
