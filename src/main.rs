fn main() -> std::process::ExitCode {
    // The window's "launch → first frame" is measured from here, or from when a launcher started
    // the process: `CANDYBAR_LAUNCH_US` (microseconds since the epoch; `candybar bench window`
    // sets it at spawn, so the time before `main` counts too).
    let started = candybar::launched_at();
    candybar::cli::main(started)
}
