//! Compiles the etcd KV API subset that shoal-bench's comparison runs use, with a vendored
//! `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    tonic_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_protos(&["proto/etcd_kv.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/etcd_kv.proto");
    Ok(())
}
