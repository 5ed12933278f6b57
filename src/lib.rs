pub mod domain;
pub mod grpc;
