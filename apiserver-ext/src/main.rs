//! `checkpoint-apiserver`: options → validate → config → serve until SIGTERM, as
//! [`apiserver_lib::command::run`] runs both servers.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    apiserver_lib::command::run::<apiserver_ext::Options>().await
}
