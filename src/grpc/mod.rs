pub mod pb {
    tonic::include_proto!("leadgate.v1");
}
