//! The SDK worker process (see `wecom_sdk::worker`): spawned by `wecom_sdk::SdkPool`, never by hand.

fn main() -> std::process::ExitCode {
    wecom_sdk::worker::worker_main()
}
