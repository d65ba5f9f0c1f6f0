//! The gRPC ceiling: a tonic server (the workspace's tonic version) whose only service answers
//! `grpc.health.v1.Health/Check` without doing anything else. Driven by the same load generator
//! as `registryd`, it shows what this machine's gRPC stack costs per call. Prints
//! `listening on ADDRESS` and serves until killed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        let (_reporter, health) = tonic_health::server::health_reporter();
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            )
            .await?;
        Ok(())
    })
}
