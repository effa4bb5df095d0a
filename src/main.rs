fn main() -> std::process::ExitCode {
    // The window's "launch → first frame" is measured from here, before anything else runs.
    let started = std::time::Instant::now();
    candybar::cli::main(started)
}
