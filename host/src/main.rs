//! `aihub`: a self-hosted AI gateway. The binary only hands the command line to the library.

fn main() -> std::process::ExitCode {
    aihub::cli::main()
}
