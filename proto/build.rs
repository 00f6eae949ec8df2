//! Compiles Shoal's protocol definitions with a vendored `protoc`, so a fresh machine needs no
//! system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let files = [
        "proto/metapb.proto",
        "proto/errorpb.proto",
        "proto/raft_cmdpb.proto",
        "proto/raft_serverpb.proto",
        "proto/deadlock.proto",
        "proto/kvrpcpb.proto",
        "proto/tikvpb.proto",
        "proto/pdpb.proto",
        "proto/keyspacepb.proto",
    ];
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::WireCodec")
        .compile_protos(&files, &["proto"])?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
