//! `checkpoint-shim`: options → validate → config → serve until SIGTERM, as
//! [`apiserver_lib::command::run`] runs both servers.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    apiserver_lib::command::run::<kubelet_shim::Options>().await
}
