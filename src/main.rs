fn main() -> std::process::ExitCode {
    ca::cli::main()
}
