//! `handler`: what the Functions host runs (`host.json` `defaultExecutablePath`). The server and
//! the functions only; the people-facing tool is `cvctl`.

fn main() -> std::process::ExitCode {
    customvision_events::startup::main()
}
