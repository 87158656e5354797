fn main() -> std::process::ExitCode {
    jpki::cli::main()
}
