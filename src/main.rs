fn main() -> std::process::ExitCode {
    candybar::cli::main()
}
