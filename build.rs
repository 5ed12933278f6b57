//! Compiles `proto/` with protox (no protoc binary needed) and writes the descriptor set that
//! server reflection serves.

use std::{env, fs, path::PathBuf};

const PROTO_ROOT: &str = "proto";
const PROTOS: &[&str] = &[
    "leadgate/v1/lead.proto",
    "leadgate/v1/lead_service.proto",
    "leadgate/v1/audit.proto",
    "leadgate/v1/audit_service.proto",
    "leadgate/v1/policy_service.proto",
    "leadgate/v1/report_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The PostgreSQL half of the contract suite runs when a database is given, and is reported
    // as ignored (with the reason) otherwise.
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo:rerun-if-env-changed=LEADGATE_TEST_POSTGRES_URL");
    if env::var("LEADGATE_TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo:rustc-cfg=postgres_tests");
    }
    // Migrations are embedded by `sqlx::migrate!`.
    println!("cargo:rerun-if-changed=migrations");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{proto}");
    }
    let descriptors = protox::compile(PROTOS, [PROTO_ROOT])?;

    // `compile_fds` ignores `file_descriptor_set_path`, so the reflection set is written here.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("leadgate_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // A request that does not decode is the caller's mistake, not INTERNAL: see src/grpc/codec.rs.
        .codec_path("crate::grpc::codec::ProtoCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
