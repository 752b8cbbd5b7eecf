//! The Key Vault emulator as a program: `cargo run -p keyvault-emulator -- --help`.

fn main() {
    keyvault_emulator::cli::main()
}
